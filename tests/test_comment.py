"""The review comment (runner.results.ci.comment) against a fake GitHub on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakegithub import FakeGitHub, serve_github

from runner.results.ci.comment import COMMENT_LIMIT, MARKER, comment_body, main

TOKEN = "ghs_secretTokenValue123"
NUMBER = 7


@pytest.fixture
def github() -> Iterator[tuple[FakeGitHub, str]]:
    fake = FakeGitHub()
    with serve_github(fake) as url:
        yield fake, url


def _environ(tmp_path: Path, url: str, **more: str) -> dict[str, str]:
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"number": NUMBER}}), encoding="utf-8")
    return {
        "GITHUB_API_URL": url,
        "GITHUB_REPOSITORY": "owner/recipes",
        "GITHUB_EVENT_PATH": str(event),
        "GITHUB_TOKEN": TOKEN,
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
        **more,
    }


def _review(tmp_path: Path, text: str) -> str:
    path = tmp_path / "review.md"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_posts_one_comment_then_updates_it(
    tmp_path: Path, github: tuple[FakeGitHub, str], capsys: pytest.CaptureFixture[str]
) -> None:
    fake, url = github
    fake.add(NUMBER, "LGTM")  # someone else's comment, left alone
    fake.add(NUMBER + 1, MARKER + "\nanother pull request's review")
    environ = _environ(tmp_path, url)

    assert main([_review(tmp_path, "## first\n")], environ) == 0
    assert [(s.method, s.path) for s in fake.history] == [
        ("GET", f"/repos/owner/recipes/issues/{NUMBER}/comments"),
        ("POST", f"/repos/owner/recipes/issues/{NUMBER}/comments"),
    ]
    assert all(s.authorization == f"Bearer {TOKEN}" for s in fake.history)
    ours = [c for c in fake.on(NUMBER) if MARKER in str(c["body"])]
    assert [c["body"] for c in ours] == [f"{MARKER}\n## first\n"]

    fake.history.clear()
    assert main([_review(tmp_path, "## second\n")], environ) == 0
    assert [s.method for s in fake.history] == ["GET", "PATCH"]
    assert fake.history[1].path == f"/repos/owner/recipes/issues/comments/{ours[0]['id']}"
    assert [c["body"] for c in fake.on(NUMBER)] == ["LGTM", f"{MARKER}\n## second\n"]

    summary = (tmp_path / "summary.md").read_text(encoding="utf-8")
    assert summary == "## first\n\n## second\n"  # appended, each run
    printed = capsys.readouterr()
    assert "posted on pull request #7" in printed.err
    assert "updated on pull request #7" in printed.err
    assert TOKEN not in printed.out + printed.err


def test_the_marked_comment_is_found_past_the_first_page(
    tmp_path: Path, github: tuple[FakeGitHub, str]
) -> None:
    fake, url = github
    for n in range(130):
        fake.add(NUMBER, f"chatter {n}")
    marked = fake.add(NUMBER, MARKER + "\nold")
    assert main([_review(tmp_path, "new\n")], _environ(tmp_path, url)) == 0
    assert [s.method for s in fake.history] == ["GET", "GET", "PATCH"]
    assert fake.comments[marked]["body"] == f"{MARKER}\nnew\n"


def test_a_forks_read_only_token_is_a_warning_not_a_failure(
    tmp_path: Path, github: tuple[FakeGitHub, str], capsys: pytest.CaptureFixture[str]
) -> None:
    fake, url = github
    fake.refuse = True
    assert main([_review(tmp_path, "## review\n")], _environ(tmp_path, url)) == 0
    out = capsys.readouterr()
    assert out.out.startswith("::warning title=transcript-runner review::")
    assert "403" in out.out
    assert TOKEN not in out.out + out.err
    assert fake.comments == {}
    assert (tmp_path / "summary.md").read_text(encoding="utf-8") == "## review\n"


def test_other_failures_fail_and_name_no_secret(
    tmp_path: Path, github: tuple[FakeGitHub, str], capsys: pytest.CaptureFixture[str]
) -> None:
    _, url = github
    environ = _environ(tmp_path, url + "/nowhere")  # every path 404
    assert main([_review(tmp_path, "x\n")], environ) == 1
    err = capsys.readouterr().err
    assert "the review comment was not posted: GET " in err
    assert "HTTP 404" in err
    assert TOKEN not in err


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"GITHUB_API_URL": ""}, "GITHUB_API_URL is not set"),
        ({"GITHUB_API_URL": "file:///etc"}, "GITHUB_API_URL is not set"),
        ({"GITHUB_REPOSITORY": ""}, "GITHUB_REPOSITORY is not set"),
        ({"GITHUB_TOKEN": ""}, "GITHUB_TOKEN is empty"),
    ],
)
def test_a_missing_setting_is_named(
    tmp_path: Path,
    github: tuple[FakeGitHub, str],
    capsys: pytest.CaptureFixture[str],
    change: dict[str, str],
    says: str,
) -> None:
    fake, url = github
    assert main([_review(tmp_path, "x\n")], {**_environ(tmp_path, url), **change}) == 1
    assert says in capsys.readouterr().err
    assert fake.history == []


def test_an_event_that_is_not_a_pull_request_is_named(
    tmp_path: Path, github: tuple[FakeGitHub, str], capsys: pytest.CaptureFixture[str]
) -> None:
    _, url = github
    environ = _environ(tmp_path, url)
    Path(environ["GITHUB_EVENT_PATH"]).write_text('{"ref": "refs/heads/main"}', encoding="utf-8")
    assert main([_review(tmp_path, "x\n")], environ) == 1
    assert "the event is not a pull request" in capsys.readouterr().err


def test_a_missing_review_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(tmp_path / "review.md")], {}) == 2
    assert "run `transcript-runner review` first" in capsys.readouterr().err


def test_a_long_review_is_cut_to_what_github_accepts() -> None:
    body = comment_body("x" * (COMMENT_LIMIT * 2))
    assert len(body) <= COMMENT_LIMIT
    assert body.startswith(MARKER)
    assert body.rstrip().endswith("review.md.")
