"""The benchmark's webhook: one realistic GitHub ``issues.opened`` payload of about 8 KB, and
the no-op applet the benchmarks run.

Both servers get the identical bytes and the identical ``X-Hub-Signature-256`` (HMAC-SHA256 of
the raw body with the shared secret); only ``X-GitHub-Delivery`` differs per request (set by
``bench/wrk/post.lua``). The payload has the shape GitHub sends for a GitHub App (``action``,
``issue``, ``repository``, ``organization``, ``sender``, ``installation``); the issue body is
padded with prose until the compact JSON reaches the target size.

Run ``python bench/payload.py --out DIR`` to write ``body.json`` and ``signature.txt`` there.
Standard library only.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
from pathlib import Path

TARGET_BYTES = 8 * 1024
SECRET = "ghapplets-bench-secret"  # a throwaway secret used only by the benchmark
EVENT = "issues"

_API = "https://api.github.com"
_WEB = "https://github.com"
_PROSE = (
    "Steps to reproduce: open the settings page, change the webhook secret, save, then send a "
    "test delivery. Expected: the delivery is accepted. Actual: the first delivery after the "
    "change is rejected with 401 and the retry succeeds. Logs and a screenshot are attached. "
)


def _user(login: str, uid: int, kind: str = "User") -> dict[str, object]:
    base = f"{_API}/users/{login}"
    return {
        "login": login,
        "id": uid,
        "node_id": f"MDQ6VXNlcj{uid}",
        "avatar_url": f"https://avatars.githubusercontent.com/u/{uid}?v=4",
        "gravatar_id": "",
        "url": base,
        "html_url": f"{_WEB}/{login}",
        "followers_url": f"{base}/followers",
        "following_url": f"{base}/following{{/other_user}}",
        "gists_url": f"{base}/gists{{/gist_id}}",
        "starred_url": f"{base}/starred{{/owner}}{{/repo}}",
        "subscriptions_url": f"{base}/subscriptions",
        "organizations_url": f"{base}/orgs",
        "repos_url": f"{base}/repos",
        "events_url": f"{base}/events{{/privacy}}",
        "received_events_url": f"{base}/received_events",
        "type": kind,
        "site_admin": False,
    }


def _payload(body: str) -> dict[str, object]:
    full = "octo-org/hello-world"
    repo_api = f"{_API}/repos/{full}"
    org = _user("octo-org", 6811672, "Organization")
    sender = _user("octocat", 583231)
    issue_api = f"{repo_api}/issues/1347"
    return {
        "action": "opened",
        "issue": {
            "url": issue_api,
            "repository_url": repo_api,
            "labels_url": f"{issue_api}/labels{{/name}}",
            "comments_url": f"{issue_api}/comments",
            "events_url": f"{issue_api}/events",
            "html_url": f"{_WEB}/{full}/issues/1347",
            "id": 2187654321,
            "node_id": "I_kwDOABCD1M6Bxyz0",
            "number": 1347,
            "title": "Webhook deliveries rejected after rotating the secret",
            "user": sender,
            "labels": [
                {
                    "id": 208045946,
                    "node_id": "MDU6TGFiZWwyMDgwNDU5NDY=",
                    "url": f"{repo_api}/labels/bug",
                    "name": "bug",
                    "color": "d73a4a",
                    "default": True,
                    "description": "Something isn't working",
                }
            ],
            "state": "open",
            "locked": False,
            "assignee": None,
            "assignees": [],
            "milestone": None,
            "comments": 0,
            "created_at": "2024-05-14T09:21:07Z",
            "updated_at": "2024-05-14T09:21:07Z",
            "closed_at": None,
            "author_association": "MEMBER",
            "active_lock_reason": None,
            "body": body,
            "reactions": {
                "url": f"{issue_api}/reactions",
                "total_count": 0,
                "+1": 0,
                "-1": 0,
                "laugh": 0,
                "hooray": 0,
                "confused": 0,
                "heart": 0,
                "rocket": 0,
                "eyes": 0,
            },
            "timeline_url": f"{issue_api}/timeline",
            "performed_via_github_app": None,
            "state_reason": None,
        },
        "repository": {
            "id": 1296269,
            "node_id": "MDEwOlJlcG9zaXRvcnkxMjk2MjY5",
            "name": "hello-world",
            "full_name": full,
            "private": False,
            "owner": org,
            "html_url": f"{_WEB}/{full}",
            "description": "This your first repo!",
            "fork": False,
            "url": repo_api,
            "created_at": "2011-01-26T19:01:12Z",
            "updated_at": "2024-05-14T09:11:52Z",
            "pushed_at": "2024-05-14T09:11:50Z",
            "git_url": f"git://github.com/{full}.git",
            "ssh_url": f"git@github.com:{full}.git",
            "clone_url": f"{_WEB}/{full}.git",
            "homepage": None,
            "size": 108,
            "stargazers_count": 80,
            "watchers_count": 80,
            "language": "Python",
            "has_issues": True,
            "has_projects": True,
            "has_downloads": True,
            "has_wiki": True,
            "has_pages": False,
            "forks_count": 9,
            "archived": False,
            "disabled": False,
            "open_issues_count": 2,
            "license": None,
            "allow_forking": True,
            "is_template": False,
            "topics": [],
            "visibility": "public",
            "forks": 9,
            "open_issues": 2,
            "watchers": 80,
            "default_branch": "main",
        },
        "organization": {
            "login": "octo-org",
            "id": 6811672,
            "node_id": "MDEyOk9yZ2FuaXphdGlvbjY4MTE2NzI=",
            "url": f"{_API}/orgs/octo-org",
            "repos_url": f"{_API}/orgs/octo-org/repos",
            "events_url": f"{_API}/orgs/octo-org/events",
            "hooks_url": f"{_API}/orgs/octo-org/hooks",
            "issues_url": f"{_API}/orgs/octo-org/issues",
            "members_url": f"{_API}/orgs/octo-org/members{{/member}}",
            "public_members_url": f"{_API}/orgs/octo-org/public_members{{/member}}",
            "avatar_url": "https://avatars.githubusercontent.com/u/6811672?v=4",
            "description": "",
        },
        "sender": sender,
        "installation": {
            "id": 41234567,
            "node_id": "MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9uNDEyMzQ1Njc=",
        },
    }


def _encode(doc: dict[str, object]) -> bytes:
    # compact, key order kept: like GitHub's own bodies
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def build_body(target: int = TARGET_BYTES) -> bytes:
    """The payload, its issue body padded so the whole document is ``target`` bytes."""
    base = len(_encode(_payload("")))
    room = max(0, target - base)
    prose = (_PROSE * (room // len(_PROSE) + 1))[:room]
    body = _encode(_payload(prose))
    assert len(body) == target or room == 0, len(body)
    return body


def signature(body: bytes, secret: str = SECRET) -> str:
    """GitHub's ``X-Hub-Signature-256`` value for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def write(out: Path, secret: str = SECRET, target: int = TARGET_BYTES) -> tuple[Path, str]:
    """Write ``body.json`` into ``out``; return its path and the signature."""
    out.mkdir(parents=True, exist_ok=True)
    body = build_body(target)
    path = out / "body.json"
    path.write_bytes(body)
    sig = signature(body, secret)
    (out / "signature.txt").write_text(sig + "\n")
    return path, sig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / ".work")
    parser.add_argument("--secret", default=SECRET)
    parser.add_argument("--bytes", type=int, default=TARGET_BYTES)
    args = parser.parse_args()
    path, sig = write(args.out, args.secret, args.bytes)
    print(f"{path} ({path.stat().st_size} bytes)\nX-Hub-Signature-256: {sig}")


if __name__ == "__main__":
    main()


# the applet the benchmarks run: it does nothing, so the platform is what is measured
NOOP_MANIFEST = "name: noop\nruntime: python\nentry: handler.py\n"
NOOP_HANDLER = (
    "from ghapplets import Applet\n"
    'app = Applet("noop")\n'
    '@app.on("com.github.issues.opened")\n'
    "async def noop(ctx):\n"
    "    return None\n"
)
