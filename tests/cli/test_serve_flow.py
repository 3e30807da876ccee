"""The interface contract end to end: ``serve`` as a real server, ``send`` signed webhooks to it,
``deliveries`` / ``jobs`` show what arrived and what ran, as JSON Lines for scripts."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.cli.helpers import Server, clean_env, cli, ghapplets, poll, serving
from tests.conftest import ProjectBuilder, free_port, write

WEBHOOK_SECRET = "flow-webhook-secret-4f1c"
API_TOKEN = "flow-api-token-9a7e2d51"

CONFIG = """\
project: flow
sources:
  github:
    kind: github
    secret: ${env:GITHUB_WEBHOOK_SECRET}
    replay_protection: false  # the tests send the same fixtures under new delivery ids
applets: [applets]
"""

ECHO = """\
#!/bin/sh
cat > /dev/null
echo "calling the API with token $GHAPPLETS_SECRET_API_TOKEN" >&2
printf '{"type": "%s", "delivery": "%s"}\\n' "$GHAPPLETS_EVENT_TYPE" "$GHAPPLETS_DELIVERY_ID"
"""


GRUMPY = """\
#!/bin/sh
cat > /dev/null
echo "[bold]no[/bold] stars [please]" >&2
exit 3
"""


@dataclass
class Flow:
    root: Path
    env: dict[str, str]
    server: Server

    def send(self, *args: object, subprocess: bool = False) -> Any:
        if subprocess:
            return ghapplets("send", *args, "--url", self.server.url, cwd=self.root, env=self.env)
        return cli("send", *args, "--url", self.server.url, "-p", self.root, env=self.env)

    def deliveries(self, *args: object) -> list[dict[str, Any]]:
        result = cli("deliveries", "--json", "-p", self.root, *args)
        assert result.code == 0, result
        return result.json_lines()

    def delivered(self, delivery_id: str) -> dict[str, Any]:
        """The delivery once all its jobs are done."""

        def done() -> dict[str, Any] | None:
            rows = [d for d in self.deliveries() if d["id"] == delivery_id]
            return rows[0] if rows and rows[0]["status"] == "succeeded" else None

        return poll(done)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flow]:
    root = tmp_path_factory.mktemp("flow") / "project"
    builder = ProjectBuilder(root)
    builder.exec_applet("echo", ECHO, "on: [com.github.*]\nsecrets: [api-token]\n")
    builder.exec_applet("grumpy", GRUMPY, "on: [com.github.star.*]\nretry: {max_attempts: 1}\n")
    write(root / "ghapplets.yaml", CONFIG)
    env = clean_env(GITHUB_WEBHOOK_SECRET=WEBHOOK_SECRET)
    stored = ghapplets("secrets", "set", "api-token", cwd=root, env=env, input=API_TOKEN + "\n")
    assert stored.code == 0, stored
    with serving(root, env=env) as server:  # a free port, picked again if another takes it
        yield Flow(root, env, server)


def test_send_gets_202_and_the_delivery_succeeds(flow: Flow) -> None:
    delivery_id = str(uuid.uuid4())
    sent = flow.send("issues.opened", "--delivery-id", delivery_id, subprocess=True)
    assert sent.code == 0, sent
    assert sent.out.startswith("202 "), sent
    assert "/hooks/github" in sent.out and delivery_id in sent.out

    row = flow.delivered(delivery_id)
    assert row["source"] == "github"
    assert row["type"] == "com.github.issues.opened"
    assert row["jobs_total"] == row["jobs_succeeded"] == 1 and row["jobs_dead"] == 0
    # the default data folder
    assert (flow.root / ".ghapplets" / "ghapplets.db").is_file()


def test_jobs_and_show_commands(flow: Flow) -> None:
    delivery_id = str(uuid.uuid4())
    assert flow.send("push", "--delivery-id", delivery_id).code == 0
    flow.delivered(delivery_id)

    listed = cli("jobs", "--json", "--delivery", delivery_id, "-p", flow.root)
    assert listed.code == 0, listed
    (job,) = listed.json_lines()
    assert job["applet"] == "echo" and job["status"] == "succeeded"
    assert job["delivery_id"] == delivery_id and job["source"] == "github"
    assert job["result"] == {"type": "com.github.push", "delivery": delivery_id}
    assert job["id"] in [j["id"] for j in cli("jobs", "--json", "-p", flow.root).json_lines()]

    shown = cli("jobs", "-p", flow.root, "show", job["id"], "--json")
    assert shown.code == 0, shown
    (doc,) = shown.json_lines()
    assert doc["id"] == job["id"] and doc["attempts"] == 1
    (attempt,) = doc["attempt_log"]
    assert attempt["outcome"] == "ok"
    logs = "\n".join(attempt["logs"])
    assert "calling the API with token ***" in logs and API_TOKEN not in logs

    delivery = cli("deliveries", "-p", flow.root, "show", delivery_id, "--json", "--body")
    assert delivery.code == 0, delivery
    (d,) = delivery.json_lines()
    assert d["id"] == delivery_id and d["type"] == "com.github.push"
    assert [j["id"] for j in d["jobs"]] == [job["id"]]
    assert d["headers"]["x-github-delivery"] == delivery_id
    assert d["data"]["ref"].startswith("refs/")

    # the human forms print the same things
    table = cli("jobs", "-p", flow.root, "show", job["id"])
    assert table.code == 0 and job["id"] in table.out
    # --project / --data-dir may also come after `show`
    data = flow.root / ".ghapplets"
    after = cli("deliveries", "show", delivery_id, "--json", "-p", flow.root, "--data-dir", data)
    assert after.code == 0 and after.json_lines()[0]["id"] == delivery_id, after
    after = cli("jobs", "show", job["id"], "--json", "--data-dir", data)
    assert after.code == 0 and after.json_lines()[0]["id"] == job["id"], after
    missing = cli("jobs", "show", "nope", "--data-dir", data)
    assert missing.code == 4 and "no job 'nope'" in missing.err


def test_deliveries_json_lines_filters(flow: Flow) -> None:
    delivery_id = str(uuid.uuid4())
    assert flow.send("issues.opened", "--delivery-id", delivery_id).code == 0
    flow.delivered(delivery_id)
    rows = flow.deliveries("--type", "com.github.issues.", "--source", "github")
    assert delivery_id in [r["id"] for r in rows]
    assert {r["type"] for r in rows} == {"com.github.issues.opened"}
    for row in rows:
        assert set(row) >= {"id", "source", "type", "status", "received_at", "jobs_total"}
    assert flow.deliveries("--source", "nope") == []
    assert flow.deliveries("--limit", "1")[0]["received_at"] == max(
        r["received_at"] for r in flow.deliveries()
    )


def test_a_failed_job_shows_its_error_verbatim(flow: Flow) -> None:
    delivery_id = str(uuid.uuid4())
    assert flow.send("star.created", "--delivery-id", delivery_id).code == 0

    def finished() -> dict[str, Any] | None:
        rows = [d for d in flow.deliveries() if d["id"] == delivery_id]
        done = rows and rows[0]["jobs_dead"] + rows[0]["jobs_succeeded"] == 2
        return rows[0] if done else None

    row = poll(finished)
    assert row["jobs_total"] == 2 and row["jobs_succeeded"] == row["jobs_dead"] == 1
    dead = cli("jobs", "--json", "--status", "dead", "--delivery", delivery_id, "-p", flow.root)
    (job,) = dead.json_lines()
    assert job["applet"] == "grumpy" and "[bold]no[/bold] stars [please]" in job["error_message"]
    # the table shows webhook-controlled text as text, not as Rich markup
    table = cli(
        "jobs", "--status", "dead", "--delivery", delivery_id, "-p", flow.root,
        env={"COLUMNS": "300"},
    )  # fmt: skip
    assert table.code == 0, table
    assert "[bold]no[/bold] stars [please]" in table.out, table


def test_bad_signature_is_answered_401_and_not_stored(flow: Flow) -> None:
    bad, good = str(uuid.uuid4()), str(uuid.uuid4())
    sent = flow.send("issues.opened", "--bad-signature", "--delivery-id", bad, subprocess=True)
    assert sent.code == 0, sent  # success: the gateway refused it
    assert sent.out.startswith("401 "), sent
    assert "bad_signature" in sent.out
    # a good delivery sent afterwards is stored; the bad one never is
    assert flow.send("issues.opened", "--delivery-id", good).code == 0
    flow.delivered(good)
    assert bad not in [d["id"] for d in flow.deliveries()]
    missing = cli("deliveries", "-p", flow.root, "show", bad)
    assert missing.code == 4 and f"no delivery {bad!r}" in missing.err


def test_send_signed_with_the_wrong_secret_exits_1(flow: Flow) -> None:
    env = {**flow.env, "GITHUB_WEBHOOK_SECRET": "not-what-the-server-has"}
    result = ghapplets("send", "push", "--url", flow.server.url, cwd=flow.root, env=env)
    assert result.code == 1, result
    assert result.out.startswith("401 ")


def test_send_to_a_source_not_in_the_config(flow: Flow) -> None:
    result = flow.send("issues.opened", "--source", "gitlab", subprocess=True)
    assert result.code == 4, result
    assert "no source 'gitlab' in ghapplets.yaml; known: github" in result.err


def test_send_to_a_closed_port_exits_1(flow: Flow) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = cli("send", "issues.opened", "--url", url, "-p", flow.root, env=flow.env)
    assert result.code == 1, result
    assert f"cannot reach {url}/hooks/github" in result.err


def test_send_an_unknown_fixture_or_a_bad_url(flow: Flow) -> None:
    env = flow.env
    unknown = cli("send", "issues.exploded", "--url", flow.server.url, "-p", flow.root, env=env)
    assert unknown.code == 2 and "issues.exploded" in unknown.err, unknown
    bad_url = cli("send", "push", "--url", "http://[::1", "-p", flow.root, env=env)
    assert bad_url.code == 1 and "cannot reach" in bad_url.err, bad_url


def test_send_without_the_secret_variable_names_it(flow: Flow) -> None:
    result = ghapplets("send", "push", "--url", flow.server.url, cwd=flow.root)
    assert result.code == 3, result
    assert "GITHUB_WEBHOOK_SECRET" in result.err


def test_no_secret_value_reaches_the_server_log(flow: Flow) -> None:
    delivery_id = str(uuid.uuid4())
    assert flow.send("issues.opened", "--delivery-id", delivery_id).code == 0
    flow.delivered(delivery_id)
    log = flow.server.log_text()
    assert "calling the API with token ***" in log  # the applet's stderr, redacted
    assert API_TOKEN not in log
    assert WEBHOOK_SECRET not in log
    assert "Traceback" not in log


# -- serve with a scaffolded project: ${secret:...}, --data-dir, GHAPPLETS_SERVER__PORT ---------


def test_serve_a_scaffolded_project_with_data_dir_and_port_override(
    tmp_path: Path, ghapplets_fakes: Any
) -> None:
    root, data = tmp_path / "demo", tmp_path / "data"
    assert cli("init", root, "--data-dir", data).code == 0
    # the example Python applet comments through the GitHub connector: on the fake, with the
    # fake App's key stored under --data-dir as the configuration says
    ghapplets_fakes.github.add_issue("octo-org/hello-world", 1347)
    pem = ghapplets_fakes.private_keys[1001]
    stored = cli("secrets", "set", "github-app-key", "-p", root, "--data-dir", data, input=pem)
    assert stored.code == 0, stored
    port = free_port()
    env = clean_env(
        GHAPPLETS_SERVER__PORT=str(port),
        GHAPPLETS_DATA_DIR=str(data),
        GHAPPLETS_CONNECTORS__GITHUB__BASE_URL=ghapplets_fakes.github.base_url,
        GHAPPLETS_CONNECTORS__GITHUB__APP_ID="1001",
        GHAPPLETS_CONNECTORS__GITHUB__INSTALLATION_ID="2001",
    )
    # the source's secret is ${secret:github-webhook}, from the vault under --data-dir
    with serving(root, "--data-dir", data, env=env, port=port) as server:
        delivery_id = str(uuid.uuid4())
        sent = ghapplets(
            "send", "issues.opened", "--url", server.url, "--delivery-id", delivery_id,
            cwd=root, env=env,
        )  # fmt: skip
        assert sent.code == 0 and sent.out.startswith("202 "), sent

        def done() -> dict[str, Any] | None:
            rows = cli("deliveries", "--json", "-p", root, "--data-dir", data).json_lines()
            return next((r for r in rows if r["status"] == "succeeded"), None)

        row = poll(done)
        assert row["id"] == delivery_id
        assert row["jobs_total"] == row["jobs_succeeded"] == 2  # hello-python and hello-shell
    assert not (root / ".ghapplets").exists()
    assert (data / "ghapplets.db").is_file()


# -- serve refuses to start, with a message and no traceback -------------------------------------


def _serve_fails(root: Path, env: dict[str, str], code: int = 3) -> str:
    port = free_port()
    result = ghapplets("serve", "--port", port, "--log-format", "json", cwd=root, env=env)
    assert result.code == code, result
    return result.err


def test_serve_names_an_unset_environment_variable(flow: Flow) -> None:
    err = _serve_fails(flow.root, clean_env())
    assert "environment variable GITHUB_WEBHOOK_SECRET is not set" in err


def test_serve_names_an_unknown_stored_secret(scaffolded: Path) -> None:
    assert cli("secrets", "rm", "github-webhook", "-p", scaffolded).code == 0
    err = _serve_fails(scaffolded, clean_env())
    assert "no stored secret named 'github-webhook'" in err
    assert "ghapplets secrets set github-webhook" in err


def test_serve_with_the_wrong_key_says_so(scaffolded: Path) -> None:
    from ghapplets.secrets.crypto import generate_key

    err = _serve_fails(scaffolded, clean_env(GHAPPLETS_SECRET_KEY=generate_key()))
    assert "secret 'github-webhook' is encrypted with key" in err
    assert "wrong GHAPPLETS_SECRET_KEY or secret.key?" in err


def test_serve_with_a_broken_manifest_names_the_line(scaffolded: Path) -> None:
    manifest = scaffolded / "applets/hello-shell/applet.yaml"
    manifest.write_text(manifest.read_text().replace("timeout: 10", "timeout: soon"))
    err = _serve_fails(scaffolded, clean_env())
    assert f"{manifest}:8:1: timeout:" in err


def test_serve_on_a_port_in_use_exits_1(scaffolded: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = ghapplets("serve", "--port", port, "--log-format", "json", cwd=scaffolded)
    assert result.code == 1, result
    assert "address already in use" in result.err
    assert f"error: the server did not start on 127.0.0.1:{port}" in result.err


def test_serve_rejects_an_unknown_log_format(scaffolded: Path) -> None:
    result = cli("serve", "--log-format", "xml", "-p", scaffolded)
    assert result.code == 2, result
    assert "--log-format must be auto, console or json, not 'xml'" in result.err


def test_replay_from_another_process_runs_on_the_server(flow: Flow) -> None:
    delivery_id = str(uuid.uuid4())
    assert flow.send("push", "--delivery-id", delivery_id).code == 0
    flow.delivered(delivery_id)
    (job,) = cli("jobs", "--json", "--delivery", delivery_id, "-p", flow.root).json_lines()
    replayed = cli("replay", delivery_id, "-p", flow.root)  # publishes into the server's file
    assert replayed.code == 0 and f"queued {job['id']}" in replayed.out, replayed

    def attempts() -> int:
        shown = cli("jobs", "-p", flow.root, "show", job["id"], "--json")
        (doc,) = shown.json_lines()
        return len(doc["attempt_log"]) == 2 and doc["status"] == "succeeded"

    poll(attempts, timeout=10, interval=0.05)


def test_a_second_server_on_the_same_data_folder_is_refused(flow: Flow) -> None:
    port = free_port()
    second = ghapplets("serve", "--port", port, cwd=flow.root, env=flow.env, timeout=30)
    assert second.code == 1, second
    data = flow.root / ".ghapplets"
    assert f"the data folder {data} is in use by another Ghapplets process" in second.err
    assert f"(PID {flow.server.proc.pid}: ghapplets serve " in second.err


def test_replay_of_unknown_ids_exits_4(flow: Flow) -> None:
    delivery = cli("replay", "no-such-delivery", "-p", flow.root)
    assert delivery.code == 4 and "no delivery 'no-such-delivery'" in delivery.err, delivery
    job = cli("replay", "--job", "github:no-such:echo", "-p", flow.root)
    assert job.code == 4 and "no job 'github:no-such:echo'" in job.err, job
