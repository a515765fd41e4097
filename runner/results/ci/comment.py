"""review.md on its pull request: one comment, updated on every push.

``python -m runner.results.ci.comment review/review.md`` is what action.yml runs after
``review``. The comment is found again by a hidden marker (:data:`MARKER`) among the
pull request's issue comments, then PATCHed; when none has it, one is POSTed. The
review is also appended to ``$GITHUB_STEP_SUMMARY`` when that is set.

Everything comes from the environment a GitHub runner gives a step: ``GITHUB_API_URL``
(the only host spoken to; redirects are not followed), ``GITHUB_REPOSITORY``,
``GITHUB_EVENT_PATH`` (the event payload: the pull request's number) and
``GITHUB_TOKEN`` (sent only as the ``Authorization`` header, never printed). A token
refused (403: a pull request from a fork gets a read-only token) is a warning, not a
failure: the review is still in the step summary.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from runner.diagnostics import workflow_command
from runner.errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE

MARKER = "<!-- transcript-runner review -->"
PER_PAGE = 100  # comments per page, GitHub's largest
MAX_PAGES = 30  # 3,000 comments: past that, a new comment rather than an endless search
COMMENT_LIMIT = 65_536  # characters GitHub accepts in a comment body
TIMEOUT_SECONDS = 30.0
TITLE = "transcript-runner review"


class CommentProblem(Exception):
    """Why the comment was not posted: a message that names no secret."""

    def __init__(self, message: str, *, refused: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.refused = refused  # 403: a fork's read-only token


@dataclass(frozen=True)
class PullRequest:
    api_url: str  # GITHUB_API_URL, no trailing slash
    repository: str  # owner/name
    number: int


def pull_request_of(environ: Mapping[str, str]) -> PullRequest:
    """The pull request this job runs for, from the runner's environment and event payload."""
    api_url = environ.get("GITHUB_API_URL", "").rstrip("/")
    if urlsplit(api_url).scheme not in ("http", "https") or not urlsplit(api_url).netloc:
        raise CommentProblem("GITHUB_API_URL is not set to an http(s) URL: run this in a workflow")
    repository = environ.get("GITHUB_REPOSITORY", "")
    if repository.count("/") != 1:
        raise CommentProblem("GITHUB_REPOSITORY is not set to owner/name: run this in a workflow")
    event_path = environ.get("GITHUB_EVENT_PATH", "")
    if not event_path:
        raise CommentProblem("GITHUB_EVENT_PATH is not set: run this in a workflow")
    try:
        event = json.loads(Path(event_path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CommentProblem(f"cannot read the event payload {event_path}: {exc}") from None
    number = event.get("pull_request", {}).get("number") if isinstance(event, dict) else None
    if not isinstance(number, int) or isinstance(number, bool):
        raise CommentProblem(
            "the event is not a pull request (no pull_request.number in GITHUB_EVENT_PATH): "
            "run the review on `pull_request` events"
        )
    return PullRequest(api_url, repository, number)


def comment_body(review_markdown: str) -> str:
    """The marker, then review.md, cut to what GitHub accepts."""
    body = f"{MARKER}\n{review_markdown}"
    if len(body) <= COMMENT_LIMIT:
        return body
    note = "\n\n…cut: the whole review is in the job's summary and its review.md.\n"
    return body[: COMMENT_LIMIT - len(note)] + note


async def post_comment(pull: PullRequest, token: str, body: str) -> str:
    """PATCH the comment that has the marker, or POST one; ``"updated"`` or ``"posted"``."""
    headers = {
        "Accept": "application/vnd.github+json",
        "Authorization": f"Bearer {token}",
        "X-GitHub-Api-Version": "2022-11-28",
    }
    timeout = aiohttp.ClientTimeout(total=TIMEOUT_SECONDS)
    async with aiohttp.ClientSession(headers=headers, timeout=timeout) as session:
        repo = f"{pull.api_url}/repos/{pull.repository}"
        existing = await _marked_comment(session, f"{repo}/issues/{pull.number}/comments")
        if existing is None:
            await _send(session, "POST", f"{repo}/issues/{pull.number}/comments", body)
            return "posted"
        await _send(session, "PATCH", f"{repo}/issues/comments/{existing}", body)
        return "updated"


async def _marked_comment(session: aiohttp.ClientSession, url: str) -> int | None:
    for page in range(1, MAX_PAGES + 1):
        comments = await _request(session, "GET", url, params={"per_page": PER_PAGE, "page": page})
        if not isinstance(comments, list):
            raise CommentProblem(f"GET {url}: the answer is not a list of comments")
        for comment in comments:
            if isinstance(comment, dict) and MARKER in str(comment.get("body") or ""):
                found = comment.get("id")
                if isinstance(found, int):
                    return found
        if len(comments) < PER_PAGE:
            return None
    return None


async def _send(session: aiohttp.ClientSession, method: str, url: str, body: str) -> None:
    await _request(session, method, url, json_body={"body": body})


async def _request(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    params: Mapping[str, int] | None = None,
    json_body: Mapping[str, str] | None = None,
) -> Any:
    try:
        async with session.request(
            method, url, params=params, json=json_body, allow_redirects=False
        ) as answer:
            if answer.status == 403:
                raise CommentProblem(
                    f"{method} {url}: 403, the token may not comment (a pull request from a "
                    "fork has a read-only token); the review is in the step summary",
                    refused=True,
                )
            if answer.status >= 300:
                raise CommentProblem(f"{method} {url}: HTTP {answer.status}")
            return await answer.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        raise CommentProblem(f"{method} {url}: {type(exc).__name__}") from None


def append_summary(review_markdown: str, environ: Mapping[str, str]) -> str | None:
    """Append the review to ``$GITHUB_STEP_SUMMARY`` when set; what went wrong, if anything."""
    summary_file = environ.get("GITHUB_STEP_SUMMARY")
    if not summary_file:
        return None
    try:
        with open(summary_file, "a", encoding="utf-8") as stream:
            stream.write(("\n" if stream.tell() else "") + review_markdown)
    except OSError as exc:
        return f"cannot append to GITHUB_STEP_SUMMARY ({summary_file}): {exc.strerror or exc}"
    return None


def main(argv: Sequence[str], environ: Mapping[str, str]) -> int:
    """Summary, then comment; 0 when posted, updated or refused (a warning), 1 or 2 else."""
    if len(argv) != 1:
        print("usage: python -m runner.results.ci.comment REVIEW_MD", file=sys.stderr)
        return EXIT_USAGE
    try:
        markdown = Path(argv[0]).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        print(
            f"cannot read {argv[0]}: {exc} (run `transcript-runner review` first)", file=sys.stderr
        )
        return EXIT_USAGE
    problem = append_summary(markdown, environ)
    if problem:
        print(problem, file=sys.stderr)
        return EXIT_FAILED
    token = environ.get("GITHUB_TOKEN", "")
    try:
        pull = pull_request_of(environ)
        if not token:
            raise CommentProblem("GITHUB_TOKEN is empty: give the action a token that may comment")
        done = asyncio.run(post_comment(pull, token, comment_body(markdown)))
    except CommentProblem as exc:
        message = exc.message.replace(token, "***") if token else exc.message
        if exc.refused:
            print(workflow_command("warning", message, title=TITLE), file=sys.stdout)
            return EXIT_OK
        print(f"the review comment was not posted: {message}", file=sys.stderr)
        return EXIT_FAILED
    print(f"review comment {done} on pull request #{pull.number}", file=sys.stderr)
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover - the action's entry
    import os

    sys.exit(main(sys.argv[1:], os.environ))
