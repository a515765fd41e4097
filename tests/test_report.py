"""report.html: a run of real recipes against the fake, read back as a person would see it
(parsed, not by eye: the browser test is still to come)."""

from __future__ import annotations

import asyncio
import html
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from conftest import RunCli
from fakeapi import FakeAssemblyAI

REPO = Path(__file__).resolve().parent.parent
WILDFIRES = REPO / "recipes" / "transcripts" / "wildfires.json"
BALTIMORE = "The levels outside right now in Baltimore are considered unhealthy."
HOSTILE = '<script>alert("x")</script> **bold** [link](javascript:alert(1))'

RECIPE = """\
version: 1
name: report
inputs:
  - url: https://media.example.com/board-meeting.mp3
  - url: https://media.example.com/broken.mp3
  - transcript_file: saved.json
tasks:
  notes:
    prompt: "Notes: {{ transcript.text[:200] }}"
  best:
    quotes: {count: 1}
"""


def reply_for(request: dict[str, Any]) -> str:
    content = request["messages"][-1]["content"]
    return f'"{BALTIMORE}"' if "best quotes" in content else HOSTILE


@pytest.fixture
def fake(api_key: str) -> FakeAssemblyAI:
    api = FakeAssemblyAI(api_key=api_key)
    api.gateway.responder = reply_for
    api.fail_audio("broken", "Transcoding failed: the file holds no audio")
    api.fail_audio("wildfires.mp3", "Download error: the file could not be reached")
    return api


class Page(HTMLParser):
    """What a report shows: its scripts, links, seek buttons, marks and item classes."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts = 0
        self.links: list[str] = []
        self.seeks: list[dict[str, str | None]] = []
        self.marks: list[str] = []
        self.items: list[str] = []
        self._in_mark = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "script":
            self.scripts += 1
        elif tag == "a":
            self.links.append(found.get("href") or "")
        elif tag == "button" and "seek" in (found.get("class") or ""):
            self.seeks.append(found)
        elif tag == "mark":
            self._in_mark = True
        elif tag == "section" and "item" in (found.get("class") or "").split():
            self.items.append(found.get("class") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "mark":
            self._in_mark = False

    def handle_data(self, data: str) -> None:
        if self._in_mark:
            self.marks.append(data)


def test_the_report_shows_the_run_and_escapes_what_models_wrote(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli
) -> None:
    shutil.copy(WILDFIRES, served / "saved.json")
    (served / "recipe.yaml").write_text(RECIPE)
    code, _, err = run_cli("run", "recipe.yaml", "--progress", "plain")
    assert code == 1, err  # the broken recording fails its item
    assert "  report: out/report.html" in err
    text = (served / "out" / "report.html").read_text()
    page = Page()
    page.feed(text)
    assert page.scripts == 1  # the report's own: the model's <script> is text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in text
    assert "<strong>bold</strong>" in text  # Markdown rendered
    assert all(not link.startswith("javascript:") for link in page.links)
    assert sorted(page.items) == ["item failed", "item ok", "item ok"]
    assert "Transcoding failed" in text
    # A saved transcript is named relative to the report, never by this machine's path.
    assert '<div class="time">transcript_file: ../saved.json</div>' in text
    assert str(served) not in text
    # The quote: a button that seeks the URL item's player to its first word, and its
    # words marked in the transcript.
    (seek,) = [s for s in page.seeks if s.get("data-start") == "63350"]
    assert seek["data-player"] is not None
    assert f'id="{seek["data-player"]}"' in text
    assert re.search(r'<audio controls preload="none" id="player-\d" src="https://media', text)
    assert " ".join(page.marks[:10]) == BALTIMORE


def test_no_report_writes_none(served: Path, fake: FakeAssemblyAI, run_cli: RunCli) -> None:
    shutil.copy(WILDFIRES, served / "saved.json")
    (served / "recipe.yaml").write_text(RECIPE)
    run_cli("run", "recipe.yaml", "--progress", "plain", "--no-report")
    assert not (served / "out" / "report.html").exists()
    run_cli("run", "recipe.yaml", "--progress", "plain", "--report", "elsewhere/r.html")
    assert (served / "elsewhere" / "r.html").is_file()


ARTIFACTS = REPO / "test-artifacts"


@pytest.mark.slow
async def test_a_person_opens_the_report_of_the_shipped_recipes_in_a_browser(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli
) -> None:
    """The shipped first-run (a recording transcribed here, exports, a summary and best
    quotes), meeting-notes, whose recording the fake refuses: one failed item, and
    docs/examples/compare-engines: the same recording by AssemblyAI (the fake, which hears the
    wildfires interview in anything) and by Whisper here, each measured against the
    recording's script. Whisper decodes it once for both recipes (the same audio and
    options: one ledger key)."""
    fake.gateway.responder = None  # the fake's own replies: real sentences as quotes
    shutil.copytree(REPO / "recipes", served / "recipes")
    (served / "docs" / "examples").mkdir(parents=True)
    shutil.copy(REPO / "docs" / "examples" / "compare-engines.yaml", served / "docs" / "examples")
    code, _, err = await asyncio.to_thread(
        run_cli,
        "run",
        "recipes/first-run.yaml",
        "recipes/meeting-notes.yaml",
        "docs/examples/compare-engines.yaml",
        "--progress",
        "plain",
    )
    assert code == 1, err
    manifest = json.loads((served / "out" / "run.json").read_text())
    compared = next(i for i in manifest["items"] if i["recipe"] == "compare-engines")
    assistant, here = compared["transcriptions"]
    assert (here["engine"], here["primary"], here["status"]) == ("faster-whisper", False, "ok")
    assert here["wer"] <= 0.10  # tiny.en on the script, after the normaliser
    assert here["expectations"][0]["score"] == here["wer"]
    assert (assistant["engine"], assistant["primary"], assistant["submitted"]) == (
        "assemblyai",
        True,
        True,
    )
    assert assistant["wer"] > 0.9  # the fake's wildfires transcript is another text
    assert assistant["status"] == "failed"
    assert compared["status"] == "failed"  # the item, not the run: every item finished
    assert compared["error"].startswith("transcription check failed: assemblyai: wer ≤ 0.15")
    assert [t["status"] for t in compared["tasks"]] == ["ok"]  # its task still ran
    assert sum(1 for i in manifest["items"] if i["status"] == "ok") == 1  # first-run
    table = (served / "out" / "compare-engines" / "results.csv").read_text().splitlines()
    assert table[0].startswith("item,status,source,transcript_id,audio_duration,error,wer,")
    assert "wer faster-whisper" in table[0]
    report = served / "out" / "report.html"
    if shutil.which("chromium") is None:
        pytest.skip(".ci/run installs chromium (Debian's package)")
    from browser import Browser

    async with Browser() as browser:
        await browser.open(report)
        items = await browser.evaluate(
            "[...document.querySelectorAll('section.item h2')].map(h => h.textContent)"
        )
        assert sorted(items) == [
            "compare-engines / team-sync failed",
            "first-run / team-sync ok",
            "meeting-notes / wildfires-interview failed",
        ]
        seek = "document.querySelector('button.seek')"
        start = int(await browser.evaluate(f"{seek}.dataset.start"))
        await browser.evaluate(f"{seek}.click()")
        player = f"document.getElementById({seek}.dataset.player)"
        assert await browser.evaluate(f"{player}.currentTime") == pytest.approx(
            start / 1000, abs=0.05
        )
        marked = await browser.evaluate(
            "[...document.querySelectorAll('mark')].map(m => m.textContent).join(' ')"
        )
        assert marked  # the quote's words are marked in the transcript
        # The engines compared: both transcriptions of the recording, with their rates.
        engines = await browser.evaluate(
            "[...document.querySelectorAll('#engines tbody tr')]"
            ".map(r => [...r.cells].slice(1, 3).map(c => c.textContent))"
        )
        assert engines == [
            ["assemblyai (primary)", f"{assistant['wer']:.3f}"],
            ["faster-whisper", f"{here['wer']:.3f}"],
        ]
        # The checks matrix: the worst item first, its failed cell's reason a click away.
        matrix = "document.getElementById('checks-matrix')"
        first = await browser.evaluate(f"{matrix}.tBodies[0].rows[0].cells[0].textContent")
        assert first == "compare-engines / team-sync"
        failed = f"{matrix}.querySelector('td.fail details')"
        assert await browser.evaluate(f"{failed}.open") is False
        await browser.evaluate(f"{failed}.querySelector('summary').click()")
        assert await browser.evaluate(f"{failed}.open") is True
        reason = await browser.evaluate(f"{failed}.querySelector('.reason').textContent")
        # Its words counted: the fake's long interview holds far more words than the script.
        assert reason.startswith(f"WER {assistant['wer']:.3f}: ")
        assert reason.endswith(" extra of 88 words, above 0.15")
        await browser.evaluate("document.getElementById('only-failed').click()")
        shown = await browser.evaluate(
            "[...document.querySelectorAll('section.item')]"
            ".filter(s => getComputedStyle(s).display !== 'none').length"
        )
        assert shown == 2  # only the failed items
        await browser.evaluate("document.getElementById('only-failed').click()")
        await browser.evaluate("document.querySelector('details.transcript').open = true")
        await browser.screenshot(ARTIFACTS / "report.png")
        assert browser.errors == []


def test_the_report_command_rebuilds_it_from_the_manifest(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli
) -> None:
    shutil.copy(WILDFIRES, served / "saved.json")
    (served / "recipe.yaml").write_text(RECIPE)
    run_cli("run", "recipe.yaml", "--progress", "plain", "--no-report")
    code, out, err = run_cli("report", "out/run.json")
    assert code == 0, err
    assert out == "report: out/report.html\n"
    assert "report / broken" in (served / "out" / "report.html").read_text()
    code, _, err = run_cli("report", "missing/run.json")
    assert code == 2
    assert "missing/run.json" in err


def test_untrusted_markdown_cannot_load_or_link_anywhere_odd() -> None:
    from runner.results.html_report import _markdown

    page = _markdown(
        "![t](https://evil.example/t.gif?leak=1) [a](ms-msdt:x) [b](//evil.example) "
        "[c](https://assemblyai.com) <img src=x onerror=alert(1)>"
    )
    assert "<img" not in page
    assert 'href="ms-msdt' not in page
    assert 'href="//evil' not in page
    assert 'href="https://assemblyai.com"' in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page


def test_a_hostile_manifest_cannot_inject_html(tmp_path: Path) -> None:
    import json as jsonlib

    from runner.results.html_report import write_report

    task = {"task": "t", "status": "failed", "error": "<b>x</b>", "line": "<img src=x>"}
    item = {
        "recipe": "r<script>",
        "item": "i",
        "source": "s",
        "kind": "url",
        "status": "failed",
        "tasks": [task],
    }
    manifest = {"recipes": [{"name": "<script>x</script>"}], "items": [item], "summary": {}}
    path = tmp_path / "run.json"
    path.write_text(jsonlib.dumps(manifest))
    page = write_report(manifest, path, tmp_path / "report.html").read_text()
    assert page.count("<script>") == 1  # the report's own
    assert "<img src=x>" not in page
    assert "<b>x</b>" not in page


def test_the_report_never_overwrites_its_manifest(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli
) -> None:
    shutil.copy(WILDFIRES, served / "saved.json")
    (served / "recipe.yaml").write_text(RECIPE)
    run_cli("run", "recipe.yaml", "--progress", "plain", "--no-report")
    before = (served / "out" / "run.json").read_text()
    code, _, err = run_cli("report", "out/run.json", "--html", "out/run.json")
    assert code == 2
    assert "is one of the manifests" in err
    assert (served / "out" / "run.json").read_text() == before


def test_a_report_past_its_size_shows_the_rest_of_the_items_in_short(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """10,000 long recordings in full would be gigabytes: past the limit, each item is
    its status, its errors and a link to its folder."""
    import runner.results.html_report as report_module

    shutil.copy(WILDFIRES, served / "saved.json")
    (served / "recipe.yaml").write_text(RECIPE)
    run_cli("run", "recipe.yaml", "--progress", "plain", "--no-report")
    monkeypatch.setattr(report_module, "MAX_DETAILED_BYTES", 1)  # only the first in full
    code, _, err = run_cli("report", "out/run.json")
    assert code == 0, err
    text = (served / "out" / "report.html").read_text()
    page = Page()
    page.feed(text)
    assert sorted(page.items) == ["item failed", "item ok", "item ok"]  # every item is there
    first = json.loads((served / "out" / "run.json").read_text())["items"][0]["item"]
    in_full = 0 if first == "broken" else 1  # (the broken recording has no transcript)
    assert text.count("<summary>Transcript</summary>") == in_full
    assert "The last 2 of 3 items are shown in short" in text
    assert "Transcoding failed" in text  # the failed item's cause, in short or in full
    # Each ok item in short links to its folder; the broken one made none. (Which item
    # comes first, in full, depends on which finished first.)
    folders = [link for link in page.links if link.startswith("./")]
    assert folders
    assert {link.rsplit("/", 1)[1] for link in folders} <= {"board-meeting", "saved"}
    assert all((served / "out" / link / "notes.md").is_file() for link in folders)


def test_a_report_that_cannot_be_written_costs_the_run_nothing(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli
) -> None:
    """Where it cannot be written, every output and run.json are still there, and the
    run says so and exits 1. (A --report PATH that cannot work is refused before the
    run, tests/test_user_paths.py; here a folder is in the way of the default one.)"""
    shutil.copy(WILDFIRES, served / "saved.json")
    (served / "recipe.yaml").write_text(RECIPE)
    (served / "out" / "report.html").mkdir(parents=True)
    code, _, err = run_cli("run", "recipe.yaml", "--progress", "plain")
    assert code == 1, err
    assert "Traceback" not in err
    assert "error: the report could not be written: out/report.html" in err
    summary = json.loads((served / "out" / "run.json").read_text())["summary"]
    assert summary["items"] == {"failed": 1, "ok": 2}  # the broken recording, as always
    assert (served / "out" / "report" / "saved" / "notes.md").is_file()
    assert not list(served.glob("**/.*.tmp"))  # no spool left behind


def test_a_report_path_that_is_the_manifest_is_refused_before_anything_runs(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli
) -> None:
    shutil.copy(WILDFIRES, served / "saved.json")
    (served / "recipe.yaml").write_text(RECIPE)
    code, _, err = run_cli("run", "recipe.yaml", "--report", "out/run.json")
    assert code == 2, err
    assert "--report out/run.json is the manifest itself" in err
    assert fake.history == []


# --- what the colours and the words mean -------------------------------------------------

NOT_RUN_WHY = (
    "the LLM tasks need an LLM: set ASSEMBLYAI_API_KEY to run them on AssemblyAI's LLM "
    "Gateway, or pass --llm-url http://127.0.0.1:8080/v1 to run them on a local server"
)


def mixed_manifest(transcript: Path) -> dict[str, Any]:
    """A failed item with an ok task, and two items whose LLM tasks were not run."""

    def task(name: str, status: str, error: str | None = None) -> dict[str, Any]:
        return {"task": name, "status": status, "error": error}

    def item(name: str, status: str, tasks: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "recipe": "mixed",
            "item": name,
            "source": str(transcript),
            "kind": "transcript_file",
            "status": status,
            "tasks": tasks,
        }

    return {
        "recipes": [{"name": "mixed"}],
        "items": [
            item("broken", "failed", [task("subtitles", "ok"), task("notes", "failed", "boom")]),
            item("quiet-1", "ok", [task("subtitles", "ok"), task("notes", "not run", NOT_RUN_WHY)]),
            item("quiet-2", "ok", [task("subtitles", "ok"), task("notes", "not run", NOT_RUN_WHY)]),
        ],
        "summary": {"outcome": "completed", "items": {"ok": 2, "failed": 1}},
    }


def test_each_status_is_coloured_by_its_own_value_and_not_run_is_explained_once(
    tmp_path: Path,
) -> None:
    from runner.results.html_report import write_report

    shutil.copy(WILDFIRES, tmp_path / "saved.json")
    out = write_report(
        mixed_manifest(tmp_path / "saved.json"), tmp_path / "run.json", tmp_path / "r.html"
    )  # type: ignore[arg-type]
    text = out.read_text()
    # The ok task of the failed item is ok, by its class; only the failed task is failed.
    broken = text[text.index('id="item-0"') : text.index('id="item-1"')]
    assert '<div class="task ok"><h3>subtitles <span class="status ok">ok</span>' in broken
    assert '<div class="task failed"><h3>notes <span class="status failed">failed</span>' in broken
    # Not run is not a failure: its own class, and its reason said once for the run.
    assert text.count('<div class="task not-run">') == 2
    assert 'class="task failed"' not in text.replace(broken, "")
    why = html.escape(NOT_RUN_WHY)
    assert text.count(why) == 1
    assert "<li>2 tasks: " + why in text
    # The stylesheet colours a status by itself, never by the item around it.
    assert ".failed .status" not in text


def test_transcript_paragraphs_end_where_sentences_end(tmp_path: Path) -> None:
    from runner.results.html_report import write_report

    shutil.copy(WILDFIRES, tmp_path / "saved.json")
    out = write_report(
        mixed_manifest(tmp_path / "saved.json"), tmp_path / "run.json", tmp_path / "r.html"
    )  # type: ignore[arg-type]
    transcript = out.read_text().split('<details class="transcript">')[1].split("</details>")[0]
    paragraphs = re.findall(r'<p><span class="time">[^<]*</span>(.*?)</p>', transcript)
    assert len(paragraphs) > 5
    for paragraph in paragraphs:
        assert re.search(r"[.?!]$", paragraph), paragraph[-60:]


def test_each_run_keeps_its_report_beside_its_manifest(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli
) -> None:
    shutil.copytree(REPO / "recipes", served / "recipes")
    for recipe in ("recipes/exports.yaml", "recipes/customer-calls.yaml"):
        code, _, err = run_cli("run", recipe, "--progress", "plain")
        assert code == 0, err
    runs = served / "out" / "runs"
    kept = sorted(runs.glob("*.html"))
    assert len(kept) == 2
    assert sorted(p.name.split("-")[-1] for p in kept) == ["calls.html", "exports.html"]
    assert {p.with_suffix(".json").is_file() for p in kept} == {True}
    first = next(p for p in kept if p.name.endswith("-exports.html")).read_text()
    assert "Run of exports" in first  # the first run's report, kept
    assert '<base href="../">' in first  # its links lead where report.html's do
    latest = (served / "out" / "report.html").read_text()
    assert "Run of customer-calls" in latest


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("chromium") is None, reason=".ci/run installs chromium (Debian's package)"
)
async def test_a_browser_colours_an_ok_task_of_a_failed_item_green_and_not_run_grey(
    tmp_path: Path,
) -> None:
    """The colours a person sees, from computed styles: an ok task is green inside a
    failed item, a failed one red, a not-run one grey and dashed, never red."""
    from browser import Browser

    from runner.results.html_report import write_report

    shutil.copy(WILDFIRES, tmp_path / "saved.json")
    manifest = mixed_manifest(tmp_path / "saved.json")
    report = write_report(manifest, tmp_path / "run.json", tmp_path / "r.html")  # type: ignore[arg-type]
    status = "getComputedStyle(document.querySelector('#item-{} .task.{} .status')).color"
    border = "getComputedStyle(document.querySelector('#item-{} .task.{}')).{}"
    async with Browser() as browser:
        await browser.open(report)
        assert await browser.evaluate(status.format(0, "ok")) == "rgb(26, 127, 55)"
        assert await browser.evaluate(status.format(0, "failed")) == "rgb(204, 51, 51)"
        assert await browser.evaluate(status.format(1, "not-run")) == "rgb(102, 102, 102)"
        assert await browser.evaluate(border.format(1, "not-run", "borderLeftStyle")) == "dashed"
        not_run_border = await browser.evaluate(border.format(1, "not-run", "borderLeftColor"))
        assert not_run_border == "rgb(187, 187, 187)"
        assert browser.errors == []
