"""The dashboard in a real browser (Debian's headless Chromium, driven by Playwright), against a
real ``ghapplets serve``: sign in; find a delivery by its subject; open a failed job, replay it
and see it succeed live (the page is not reloaded); bulk-replay dead letters; follow a
blueprint run to the task it waits on; a viewer cannot replay; a signed-out browser sees
nothing; forged forms are refused; and on every page the CSP holds (no inline script or
style), axe-core finds no serious or critical violation, and a 390 px wide phone does not
scroll sideways. Screenshots of every page go to ``test-results/dashboard/``."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    Playwright,
    ViewportSize,
    expect,
    sync_playwright,
)

from ghapplets.dashboard.security import CSP
from ghapplets.store.records import Role
from tests.cli.helpers import poll
from tests.conftest import ProjectBuilder
from tests.dashboard.browser import (
    CHROMIUM,
    NEEDLE,
    SHOTS,
    Running,
    issue_payload,
    needle_payload,
    needs_chromium,
    running_site,
)

pytestmark = [pytest.mark.slow, needs_chromium]
PHONE: ViewportSize = {"width": 390, "height": 844}
LAPTOP: ViewportSize = {"width": 1366, "height": 900}
INLINE_HANDLER = re.compile(r"<[^>]+\son[a-z]+\s*=", re.IGNORECASE)
INLINE_STYLE = re.compile(r"<[^>]+\sstyle\s*=", re.IGNORECASE)
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    folder = tmp_path_factory.mktemp("dashboard")
    with running_site(ProjectBuilder(folder / "project"), folder) as running:
        yield running


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    launched = playwright.chromium.launch(
        executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
    )
    yield launched
    launched.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    made = browser.new_context(viewport=LAPTOP)
    yield made
    made.close()


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def sign_in(context: BrowserContext, site: Running, role: Role) -> Page:
    page = context.new_page()
    page.goto(f"{site.admin_url}/login")
    page.get_by_label("API token").fill(site.tokens[role])
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{site.admin_url}/")
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    return page


def any_job(site: Running) -> dict[str, Any]:
    return site.api("/jobs", applet="picky")["items"][0]  # type: ignore[no-any-return]


def fresh_dead_jobs(site: Running, count: int) -> list[str]:
    """``count`` new dead jobs of picky (whatever the tests before did with the marker)."""
    site.marker.unlink(missing_ok=True)
    ids = [f"dead-{uuid.uuid4().hex[:12]}" for _ in range(count)]
    for delivery in ids:
        site.send("issues.opened", "--delivery-id", delivery)
    jobs = [f"github:{d}:picky" for d in ids]

    def all_dead() -> bool:
        return all(site.api(f"/jobs/{quote(j)}")["status"] == "dead" for j in jobs)

    poll(all_dead, timeout=30)
    return jobs


def csrf_of(page: Page) -> str:
    return str(page.locator("input[name=csrf]").first.get_attribute("value"))


def test_a_signed_out_browser_sees_only_the_login(context: BrowserContext, site: Running) -> None:
    page = context.new_page()
    job = any_job(site)
    for path in ("/", "/deliveries", f"/jobs/{quote(job['id'])}", "/runs", "/dead-letters", "/x"):
        page.goto(site.admin_url + path)
        expect(page).to_have_url(f"{site.admin_url}/login")
        assert job["id"] not in page.content()
    expect(page.get_by_label("API token")).to_be_visible()
    assert page.locator("input:not([type=hidden])").count() == 1  # one field: token
    assert page.locator("input[name=token]").count() == 1
    shot(page, "login")
    api = page.request.get(f"{site.admin_url}/api/v1/deliveries")
    assert api.status == 401
    live = page.request.get(f"{site.admin_url}/events?topic=deliveries")
    assert live.status == 401
    # a wrong token: a clear error, no detail of why, still signed out
    page.get_by_label("API token").fill("gha_0123456789abcdef_" + "x" * 43)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("That token was not accepted.")
    page.goto(site.admin_url + "/")
    expect(page).to_have_url(f"{site.admin_url}/login")


def test_find_a_delivery_by_subject(context: BrowserContext, site: Running) -> None:
    page = sign_in(context, site, Role.VIEWER)
    page.get_by_role("link", name="Deliveries").click()
    page.get_by_label("Subject contains").fill("NEEDLE-SERV")  # any case, a part of it
    page.get_by_role("button", name="Filter").click()
    rows = page.locator("#delivery-rows tr")
    expect(rows).to_have_count(1)
    shot(page, "deliveries")
    rows.get_by_role("link").click()
    expect(page.get_by_role("heading", name=re.compile("^Delivery"))).to_be_visible()
    expect(page.locator("dl.facts")).to_contain_text(NEEDLE)
    headers = page.locator("section", has=page.get_by_role("heading", name="Verified headers"))
    expect(headers).to_contain_text("x-github-event")
    text = page.content().lower()
    assert "x-hub-signature" not in text and "sha256=" not in text  # credentials never shown
    payload = page.locator(".json details").first
    expect(payload).to_be_visible()
    expect(page.locator(".json")).to_contain_text(NEEDLE)
    shot(page, "delivery")


def test_the_deliveries_list_updates_live(
    context: BrowserContext, site: Running, tmp_path: Path
) -> None:
    page = sign_in(context, site, Role.VIEWER)
    page.goto(f"{site.admin_url}/deliveries")
    expect(page.locator("table.list caption")).to_have_text("Newest first, updated live")
    page.evaluate("document.body.dataset.sameDocument = 'yes'")
    fresh = "acme-corp/arrives-live"
    site.send("issues.opened", "--file", needle_payload(tmp_path, fresh))
    expect(page.locator("#delivery-rows")).to_contain_text(fresh, timeout=15_000)
    assert page.evaluate("document.body.dataset.sameDocument") == "yes"


def test_replay_a_failed_job_and_see_it_succeed_live(
    context: BrowserContext, site: Running
) -> None:
    page = sign_in(context, site, Role.OPERATOR)
    (job,) = fresh_dead_jobs(site, 1)
    page.goto(f"{site.admin_url}/jobs/{quote(job)}")
    status = page.locator("#job-status")
    expect(status).to_have_text("dead")
    expect(page.locator("#job-live")).to_contain_text("not ready yet")
    shot(page, "job-dead")
    page.evaluate("document.body.dataset.sameDocument = 'yes'")  # gone if the page reloads
    site.marker.write_text("go")
    page.get_by_role("button", name="Replay job").click()
    expect(page.locator("#notice")).to_contain_text("Queued again.")
    expect(status).to_have_text("succeeded", timeout=30_000)
    assert page.evaluate("document.body.dataset.sameDocument") == "yes"
    expect(page.locator(".attempt")).to_have_count(2)
    shot(page, "job-replayed")


def test_bulk_replay_dead_letters(context: BrowserContext, site: Running) -> None:
    page = sign_in(context, site, Role.OPERATOR)
    fresh_dead_jobs(site, 2)
    site.marker.write_text("go")
    page.goto(f"{site.admin_url}/dead-letters?applet=picky")
    letters = site.api("/dead-letters", applet="picky")["items"]
    assert len(letters) >= 2
    expect(page.locator("table.list tbody tr")).to_have_count(len(letters))
    shot(page, "dead-letters")
    page.get_by_role("button", name=re.compile("Replay the dead letters")).click()
    expect(page.get_by_role("heading", name="Replay dead letters?")).to_be_visible()
    expect(page.locator("main")).to_contain_text(f"{len(letters)} dead letter(s) match")
    assert_accessible(page, "confirm")
    page.get_by_role("button", name="Yes, replay them").click()
    expect(page.locator("#bulk-result")).to_contain_text(f"{len(letters)} job(s) queued again")
    shot(page, "dead-letters-replayed")

    def none_left() -> bool:
        return not site.api("/dead-letters", applet="picky")["items"]

    poll(none_left, timeout=30)
    page.goto(f"{site.admin_url}/dead-letters?applet=picky")
    expect(page.locator("table.list tbody")).to_contain_text("No dead letters.")


def test_follow_a_run_to_its_waiting_task(context: BrowserContext, site: Running) -> None:
    page = sign_in(context, site, Role.VIEWER)
    page.get_by_role("link", name="Runs").click()
    page.get_by_label("Status").select_option("waiting")
    page.get_by_role("button", name="Filter").click()
    shot(page, "runs")
    page.locator("table.list tbody tr").first.get_by_role("link").click()
    expect(page.locator("#run-status")).to_have_text("waiting")
    graph = page.get_by_role("img", name=re.compile("as a graph"))
    expect(graph).to_be_visible()
    expect(page.locator("g.node[data-task=remember]")).to_have_class(re.compile("task-completed"))
    expect(page.locator("g.node[data-task=approval]")).to_have_class(re.compile("task-waiting"))
    waiting = page.locator("section.listening")
    expect(waiting).to_contain_text("com.github.issue_comment.created")
    expect(waiting.locator(".until")).to_contain_text("UTC")
    expect(page.locator("ol.timeline")).to_contain_text("remember")
    # a viewer has no controls
    assert page.get_by_role("button", name="Cancel").count() == 0
    shot(page, "run")


def test_a_run_moves_on_live_when_its_event_arrives(
    context: BrowserContext, site: Running, tmp_path: Path
) -> None:
    number = 900_000 + uuid.uuid4().int % 99_999  # an issue of this test's own
    site.send("issues.opened", "--file", issue_payload(tmp_path, "issues.opened", number))

    def mine() -> str | None:
        for run in site.api("/runs", status="waiting", limit=200)["items"]:
            shown = site.api(f"/runs/{quote(run['id'])}")
            if shown["input"][0]["data"]["issue"]["number"] == number:
                return str(run["id"])
        return None

    run_id = poll(mine, timeout=30)
    page = sign_in(context, site, Role.VIEWER)
    page.goto(f"{site.admin_url}/runs/{quote(run_id)}")
    expect(page.locator("#run-status")).to_have_text("waiting")
    page.evaluate("document.body.dataset.sameDocument = 'yes'")
    comment = issue_payload(tmp_path, "issue_comment.created", number, "approved")
    site.send("issue_comment.created", "--file", comment)
    expect(page.locator("#run-status")).to_have_text("completed", timeout=30_000)
    expect(page.locator("g.node[data-task=approval]")).to_have_class(re.compile("task-completed"))
    expect(page.locator("section.listening")).to_have_count(0)
    expect(page.locator("ol.timeline")).to_contain_text("approved")
    assert page.evaluate("document.body.dataset.sameDocument") == "yes"
    shot(page, "run-completed")


def test_a_viewer_cannot_replay(context: BrowserContext, site: Running) -> None:
    page = sign_in(context, site, Role.VIEWER)
    job = site.api("/jobs", applet="picky")["items"][0]
    page.goto(f"{site.admin_url}/jobs/{quote(job['id'])}")
    expect(page.locator("#job-status")).to_be_visible()
    assert page.get_by_role("button", name="Replay job").count() == 0
    csrf = csrf_of(page)  # the session's own token: the POST is still refused, by role
    forged = page.request.post(
        f"{site.admin_url}/jobs/{quote(job['id'])}/replay", form={"csrf": csrf}
    )
    assert forged.status == 403
    through_api = page.request.post(
        f"{site.admin_url}/api/v1/jobs/{quote(job['id'])}/replay",
        headers={"X-Requested-With": "XMLHttpRequest"},
    )
    assert through_api.status == 403
    page.goto(f"{site.admin_url}/dead-letters")
    assert page.get_by_role("button", name=re.compile("Replay")).count() == 0


def test_forged_forms_are_refused(context: BrowserContext, site: Running) -> None:
    page = sign_in(context, site, Role.OPERATOR)
    job = site.api("/jobs", applet="echo")["items"][0]
    url = f"{site.admin_url}/jobs/{quote(job['id'])}/replay"
    before = site.api(f"/jobs/{quote(job['id'])}")["attempts"]
    assert page.request.post(url, form={}).status == 403
    assert page.request.post(url, form={"csrf": "wrong"}).status == 403
    run = site.api("/runs", status="waiting")["items"][0]
    cancel = f"{site.admin_url}/runs/{run['id']}/cancel"
    assert page.request.post(cancel, form={"csrf": ""}).status == 403
    # the API with the cookie but without X-Requested-With (what another site's form sends)
    api = f"{site.admin_url}/api/v1/jobs/{quote(job['id'])}/replay"
    assert page.request.post(api).status == 403
    assert site.api(f"/jobs/{quote(job['id'])}")["attempts"] == before
    assert site.api(f"/runs/{run['id']}")["status"] == "waiting"
    # the login form without its double-submit cookie
    bare = httpx.post(
        f"{site.admin_url}/login",
        data={"csrf": "x", "token": site.tokens[Role.ADMIN]},
        follow_redirects=False,
    )
    assert bare.status_code == 403 and "ghapplets_session" not in bare.headers.get("set-cookie", "")


def assert_accessible(page: Page, name: str) -> None:
    results = Axe().run(page)
    bad = [
        (v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert not bad, f"{name}: {bad}"


def assert_no_inline_code(html: str, name: str) -> None:
    assert not INLINE_SCRIPT.search(html), name
    assert not INLINE_HANDLER.search(html), name
    assert not INLINE_STYLE.search(html), name


def test_every_page_is_safe_accessible_and_fits_a_phone(
    browser: Browser, context: BrowserContext, site: Running
) -> None:
    page = sign_in(context, site, Role.ADMIN)
    delivery = site.api("/deliveries", q="needle")["items"][0]
    job = site.api("/jobs", applet="picky")["items"][0]
    run = site.api("/runs")["items"][0]
    pages = {
        "overview": "/",
        "deliveries-list": "/deliveries",
        "delivery-page": f"/deliveries/{delivery['source']}/{quote(delivery['id'])}",
        "job-page": f"/jobs/{quote(job['id'])}",
        "dead-letters-list": "/dead-letters",
        "runs-list": "/runs",
        "run-page": f"/runs/{quote(run['id'])}",
        "not-found": "/nowhere",
    }
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    phone = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    phone.add_cookies(context.cookies())  # type: ignore[arg-type]
    small = phone.new_page()
    try:
        for name, path in pages.items():
            answer = page.goto(site.admin_url + path)
            assert answer is not None
            headers = answer.headers
            assert headers["content-security-policy"] == CSP, name
            assert headers["x-frame-options"] == "DENY", name
            assert headers["x-content-type-options"] == "nosniff", name
            assert headers["cache-control"] == "no-store", name
            assert_no_inline_code(page.content(), name)
            assert_accessible(page, name)
            shot(page, name)
            small.goto(site.admin_url + path)
            overflow = small.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, f"{name} scrolls sideways on a phone by {overflow}px"
            shot(small, f"{name}-phone")
        login = browser.new_page()
        login.goto(f"{site.admin_url}/login")
        assert_no_inline_code(login.content(), "login")
        assert_accessible(login, "login")
        login.close()
    finally:
        phone.close()
    blocked = [e for e in errors if "Content Security Policy" in e]
    assert not blocked, blocked  # nothing the pages load or run is refused by the CSP


def test_no_token_reaches_the_log(site: Running) -> None:
    text = Path(site.server.log).read_text()
    for token in site.tokens.values():
        assert token not in text
        secret = token[len("gha_0123456789abcdef_") :]  # (it may hold "_" itself)
        assert len(secret) == 43 and secret not in text
