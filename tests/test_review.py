"""`review`: a recipe change in git, base against head, over the fake API."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import time
import wave
from html.parser import HTMLParser
from pathlib import Path

import pytest
from conftest import RunCli
from fakeapi import CHAT_PATH, FakeAssemblyAI
from gitrepo import commit_all, git, saved_transcripts

ROOT = Path(__file__).resolve().parent.parent
ITEMS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot")

RECIPE = """\
version: 1
name: calls
inputs:
  - transcript_file: transcripts/*.json
tasks:
  summary:
    prompt: "Summarize: {{ transcript.text[:60] }}"
    expect: [{contains: Summarize}]
  headline:
    needs: [summary]
    prompt: "Headline for: {{ tasks.summary.text }}"
  topics:
    prompt: "Topics of: {{ transcript.text[:60] }}"
"""

pytestmark = pytest.mark.slow  # git subprocesses


def _git(*args: str) -> None:
    git(Path.cwd(), *args)


def _commit(message: str) -> None:
    commit_all(Path.cwd(), message)


def _repository(folder: Path) -> None:
    """A repository with the recipe over six saved transcripts, committed."""
    saved_transcripts(folder, ITEMS)
    (folder / "calls.yaml").write_text(RECIPE)
    (folder / ".gitignore").write_text(".transcript-runner/\nresults/\nreview/\nrun.json\n")
    _git("init", "-q")
    _commit("the recipe")


def _chats(fake: FakeAssemblyAI) -> list[str]:
    """The first words of each prompt the fake was asked."""
    return [
        r.json["messages"][-1]["content"].split(":")[0]
        for r in fake.requests_to(f"POST {CHAT_PATH}")
    ]


def test_review_runs_only_the_changed_task_and_its_dependant(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli, capsys: pytest.CaptureFixture[str]
) -> None:
    _repository(served)
    assert run_cli("run", "calls.yaml").exit_code == 0  # the base, cached
    assert len(_chats(fake)) == 3 * len(ITEMS)
    (served / "calls.yaml").write_text(RECIPE.replace("Summarize:", "Summarize briefly:"))
    _commit("a shorter summary")
    fake.history.clear()

    began = time.monotonic()
    result = run_cli("review", "calls.yaml", "--base", "HEAD~1")
    with capsys.disabled():
        print(f"\nreview of 5 items x 2 changed tasks: {time.monotonic() - began:.2f} s")

    assert result.exit_code == 0, result.stderr
    asked = _chats(fake)
    assert sorted(asked) == sorted(["Summarize briefly"] * 5 + ["Headline for"] * 5)
    assert not fake.requests_to("POST /v2/transcript")  # nothing transcribed
    markdown = (served / "review" / "review.md").read_text()
    assert "#### `summary`: changed (its request changed)" in markdown
    assert "#### `headline`: affected (needs summary)" in markdown
    assert "Unchanged tasks: topics." in markdown
    assert "Reply to: Summarize: " in markdown  # base, from the cache
    assert "Reply to: Summarize briefly: " in markdown  # head
    assert "base: ok, cached" in markdown
    data = json.loads((served / "review" / "review.json").read_text())
    (recipe,) = data["recipes"]
    assert [t["task"] for t in recipe["tasks"]] == ["summary", "headline"]
    assert len(recipe["items"]) == 5
    assert not data["regressions"]
    assert data["llm_calls_sent"] == 10

    # An expectation changed so that it fails now: a regression, named; nothing sent.
    (served / "calls.yaml").write_text(
        RECIPE.replace("Summarize:", "Summarize briefly:").replace(
            "{contains: Summarize}", "{contains: Maine}"
        )
    )
    fake.history.clear()
    failed = run_cli("review", "calls.yaml", "--base", "HEAD~1")
    assert failed.exit_code == 1, failed.stderr
    assert "regression: calls/summary/" in failed.stderr
    assert "expect contains 'Maine'" in failed.stderr
    assert _chats(fake) == []  # both replies are cached now
    assert "❌ regressed" in (served / "review" / "review.md").read_text()


def test_review_offline_sends_nothing_and_lists_what_it_skipped(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli
) -> None:
    _repository(served)
    assert run_cli("run", "calls.yaml").exit_code == 0
    (served / "calls.yaml").write_text(RECIPE.replace("Topics of:", "Main topics of:"))
    fake.history.clear()

    result = run_cli("review", "calls.yaml", "--base", "HEAD", "--offline", "--sample", "2")

    assert result.exit_code == 0, result.stderr
    assert fake.history == []
    assert result.stderr.count("not compared: calls/topics/") == 2
    data = json.loads((served / "review" / "review.json").read_text())
    assert len(data["not_compared"]) == 2
    assert data["llm_calls_sent"] == 0


def test_review_refuses_what_it_cannot_compare(served: Path, run_cli: RunCli) -> None:
    (served / "calls.yaml").write_text(RECIPE)
    outside = run_cli("review", "calls.yaml", "--base", "HEAD")
    assert outside.exit_code == 2
    assert "not inside a git repository" in outside.stderr
    _repository(served)
    unknown = run_cli("review", "calls.yaml", "--base", "no-such-branch")
    assert unknown.exit_code == 2
    assert "--base no-such-branch: no such commit" in unknown.stderr
    (served / "calls.yaml").write_text(RECIPE.replace("needs: [summary]", "needs: [sumary]"))
    invalid = run_cli("review", "calls.yaml", "--base", "HEAD")
    assert invalid.exit_code == 3
    assert "calls.yaml:" in invalid.stderr
    _commit("a typo in needs")
    (served / "calls.yaml").write_text(RECIPE)
    invalid_base = run_cli("review", "calls.yaml", "--base", "HEAD")
    assert invalid_base.exit_code == 3
    assert "HEAD:calls.yaml:10:" in invalid_base.stderr  # the base's file, at its line


def test_the_recipe_names_the_items_and_the_budget_is_kept(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli
) -> None:
    _repository(served)
    assert run_cli("run", "calls.yaml").exit_code == 0
    changed = RECIPE.replace("Topics of:", "Main topics of:")
    (served / "calls.yaml").write_text(changed + "review: {items: [bravo, delta]}\n")
    fake.history.clear()

    over = run_cli("review", "calls.yaml", "--base", "HEAD", "--budget", "1")
    assert over.exit_code == 2
    assert "would send 2 LLM calls, over --budget 1; nothing was sent" in over.stderr
    assert fake.history == []

    within = run_cli("review", "calls.yaml", "--base", "HEAD", "--budget", "2")
    assert within.exit_code == 0, within.stderr
    assert sorted(_chats(fake)) == ["Main topics of", "Main topics of"]
    data = json.loads((served / "review" / "review.json").read_text())
    assert data["recipes"][0]["items"] == ["bravo", "delta"]

    (served / "calls.yaml").write_text(changed + "review: {items: [brav]}\n")
    unknown = run_cli("review", "calls.yaml", "--base", "HEAD")
    assert unknown.exit_code == 2
    assert "review.items names 'brav'" in unknown.stderr


# --- review.html ----------------------------------------------------------------------

BALTIMORE = "The levels outside right now in Baltimore are considered unhealthy."
SMOKE = "Smoke from hundreds of wildfires in Canada is triggering air quality alerts"
TALK = """\
version: 1
name: talk
inputs:
  - file: audio/talk.wav
tasks:
  summary:
    prompt: "Summarize: {{ transcript.text[:40] }}"
    expect: [{contains: Summarize}]
  best:
    quotes: {count: 1}
"""
ARTIFACTS = ROOT / "test-artifacts"


def _talk_reply(request: dict[str, object]) -> str:
    """A quote from the recording when asked for quotes; else a reply holding markup."""
    messages = request["messages"]
    assert isinstance(messages, list)
    content = str(messages[-1]["content"])
    if "best quotes" in content:
        return f'"{BALTIMORE}"' if "2 best" not in content else f'"{BALTIMORE}"\n"{SMOKE}"'
    return f"<script>alert(1)</script> {content[:40]}"


def _silence(path: Path, *, seconds: int) -> None:
    """A WAV of silence (8 kHz, 8-bit: small, and every browser plays it)."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(1)
        out.setframerate(8000)
        out.writeframes(b"\x80" * 8000 * seconds)


def _talk_review(served: Path, fake: FakeAssemblyAI, run_cli: RunCli) -> Path:
    """A recording (transcribed by the fake) whose summary prompt and quote count change
    in the working tree: review.html, written."""
    fake.gateway.responder = _talk_reply
    (served / "audio").mkdir()
    # The fake transcribes any recording as the wildfires interview (282 s): the page's
    # players get silence that long, so every quote's ▶ lands inside the recording.
    _silence(served / "audio" / "talk.wav", seconds=282)
    (served / "talk.yaml").write_text(TALK)
    (served / ".gitignore").write_text(".transcript-runner/\nout/\nreview/\nrun.json\n")
    _git("init", "-q")
    _commit("the recipe")
    assert run_cli("run", "talk.yaml").exit_code == 0
    changed = TALK.replace("Summarize:", "Summarize briefly:").replace("count: 1", "count: 2")
    (served / "talk.yaml").write_text(changed)
    result = run_cli("review", "talk.yaml", "--base", "HEAD")
    assert result.exit_code == 0, result.stderr
    return served / "review" / "review.html"


class ReviewPage(HTMLParser):
    """What review.html holds: its scripts, its CSP, seek buttons, marks, players."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts = 0
        self.csp: str | None = None
        self.seeks: list[dict[str, str | None]] = []
        self.players: list[dict[str, str | None]] = []
        self.inserted: list[str] = []
        self.deleted: list[str] = []
        self._in: str | None = None
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "script":
            self.scripts += 1
        if tag == "meta" and found.get("http-equiv") == "Content-Security-Policy":
            self.csp = found.get("content")
        if tag == "button" and "seek" in (found.get("class") or ""):
            self.seeks.append(found)
        if tag == "audio":
            self.players.append(found)
        if tag in ("ins", "del"):
            self._in = tag

    def handle_endtag(self, tag: str) -> None:
        if tag in ("ins", "del"):
            self._in = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._in == "ins":
            self.inserted.append(data)
        elif self._in == "del":
            self.deleted.append(data)


def test_review_html_shows_both_sides_escaped_with_one_script(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli
) -> None:
    page_path = _talk_review(served, fake, run_cli)
    page = ReviewPage()
    page.feed(page_path.read_text())

    assert page.scripts == 1
    assert page.csp is not None
    assert "script-src 'sha256-" in page.csp
    text = "".join(page.text)
    assert text.count("<script>alert(1)</script>") >= 2  # each side's reply, as text
    assert "briefly:" in "".join(page.inserted)  # the head's new word, marked
    assert '+    prompt: "Summarize briefly:' in text  # the recipe's diff
    assert "-    quotes: {count: 1}" in text
    assert "expect contains 'Summarize'" in text
    assert " in / " in text
    assert "out tokens" in text
    (player,) = {p["src"] for p in page.players}
    assert player == "./../audio/talk.wav"
    assert len(page.seeks) == 3  # one quote on base, two on head
    assert all(s["data-player"] for s in page.seeks)
    markdown = (served / "review" / "review.md").read_text()
    assert "`review.html`" in markdown


@pytest.mark.skipif(
    shutil.which("chromium") is None, reason=".ci/run installs chromium (Debian's package)"
)
async def test_a_person_opens_review_html_in_a_browser(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli
) -> None:
    from browser import Browser

    page = await asyncio.to_thread(_talk_review, served, fake, run_cli)
    async with Browser() as browser:
        await browser.open(page)
        seek = "document.querySelector('button.seek')"
        start = int(await browser.evaluate(f"{seek}.dataset.start"))
        assert start > 0
        await browser.evaluate(f"{seek}.click()")
        player = f"document.getElementById({seek}.dataset.player)"
        for _ in range(40):  # a loaded machine may take a moment to load the media
            at = await browser.evaluate(f"{player}.currentTime")
            if at == pytest.approx(start / 1000, abs=0.05):
                break
            await asyncio.sleep(0.05)
        assert at == pytest.approx(start / 1000, abs=0.05)
        await browser.screenshot(ARTIFACTS / "review.png")
        assert browser.errors == []


def _quoted_review_md() -> str:
    """The review.md that docs/reviewing.md quotes, from its fenced block."""
    page = (ROOT / "docs" / "reviewing.md").read_text()
    found = re.search(r"<!-- review\.md -->\n````markdown\n(.*?)````\n", page, re.DOTALL)
    assert found, "docs/reviewing.md quotes a review.md in a ````markdown block"
    return found.group(1)


def test_the_review_md_docs_reviewing_quotes_is_what_the_command_writes(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli
) -> None:
    """The documented scenario: calls.yaml run, its summary prompt changed in the
    working tree, reviewed against HEAD on two items."""
    _repository(served)
    assert run_cli("run", "calls.yaml").exit_code == 0
    (served / "calls.yaml").write_text(RECIPE.replace("Summarize:", "Summarize briefly:"))
    result = run_cli("review", "calls.yaml", "--base", "HEAD", "--sample", "2")
    assert result.exit_code == 0, result.stderr
    written = (served / "review" / "review.md").read_text()
    (ROOT / "test-artifacts").mkdir(exist_ok=True)
    (ROOT / "test-artifacts" / "review.md").write_text(written)
    assert written == _quoted_review_md()


def test_a_var_reaches_both_sides(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli, capsys: pytest.CaptureFixture[str]
) -> None:
    _repository(served)
    with_var = RECIPE.replace("Summarize:", "Summarize for {{ vars.audience }}:")
    (served / "calls.yaml").write_text(
        with_var.replace("name: calls\n", "name: calls\nvars: {audience: x}\n")
    )
    _commit("an audience")
    (served / "calls.yaml").write_text(
        with_var.replace("name: calls\n", "name: calls\nvars: {audience: y}\n").replace(
            "Topics of:", "Topics in:"
        )
    )
    result = run_cli("review", "calls.yaml", "--base", "HEAD", "--var", "audience=board")
    assert result.exit_code == 0, result.stderr
    # The vars are the command line's on both sides: the summary's audience changed in
    # the recipe, and not in what either side sends.
    markdown = (served / "review" / "review.md").read_text()
    assert "#### `topics`: changed (its request changed)" in markdown
    assert "Unchanged tasks: summary." in markdown
