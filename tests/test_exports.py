"""Export tasks: subtitles, readable transcripts and tables, with no LLM.

Formats built here are checked byte for byte on the saved wildfires transcript (the
golden files in tests/fixtures/exports were read through by a person: captions end on
the word whose end they give, and no word is lost or added) and, independently, by
parsing them back. Subtitles of a transcript that lives on AssemblyAI come from the
fake's /srt and /vtt endpoints, written as received.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest
from conftest import RunCli
from fakeapi import FakeAssemblyAI, subtitles_of

from runner.transcript.exports import (
    DEFAULT_CHARS_PER_CAPTION,
    ExportLayout,
    ExportProblem,
    captions,
    export,
    markdown,
    plain_text,
    srt,
    vtt,
    words_csv,
)
from runner.transcript.model import Transcript, Utterance, Word, load_saved

REPO = Path(__file__).resolve().parent.parent
WILDFIRES = REPO / "recipes" / "transcripts" / "wildfires.json"
GOLDEN = Path(__file__).parent / "fixtures" / "exports"
GOLDEN_FILES = {
    "srt": "wildfires.srt",
    "vtt": "wildfires.vtt",
    "txt": "wildfires.txt",
    "markdown": "wildfires.md",
    "json": "wildfires.json",
    "words-csv": "wildfires.csv",
}
_TIME = r"(?:(\d\d):)?(\d\d):(\d\d)[,.](\d{3})"  # SRT's HH:MM:SS,mmm or VTT's [HH:]MM:SS.mmm
_CUE_TIME = re.compile(rf"^{_TIME} --> {_TIME}$")


def _ms(hours: str | None, minutes: str, seconds: str, millis: str) -> int:
    return ((int(hours or 0) * 60 + int(minutes)) * 60 + int(seconds)) * 1000 + int(millis)


def cues(text: str) -> list[tuple[int, int, str]]:
    """(start ms, end ms, text) of each caption of an SRT or VTT file, blank lines or not."""
    found: list[tuple[int, int, str]] = []
    lines = [line for line in text.splitlines() if line.strip()]
    for index, line in enumerate(lines):
        match = _CUE_TIME.match(line)
        if match:
            g = match.groups()
            found.append((_ms(*g[:4]), _ms(*g[4:]), lines[index + 1]))
    return found


@pytest.fixture(scope="module")
def wildfires() -> Transcript:
    return load_saved(WILDFIRES)


@pytest.mark.parametrize("fmt", list(GOLDEN_FILES))
def test_each_format_is_byte_for_byte_the_golden_file(wildfires: Transcript, fmt: str) -> None:
    built = export(wildfires, fmt, title="wildfires")
    assert built == (GOLDEN / GOLDEN_FILES[fmt]).read_text(encoding="utf-8")


@pytest.mark.parametrize("chars", [1, 20, 32, DEFAULT_CHARS_PER_CAPTION, 500])
def test_captions_keep_every_word_in_order_within_the_limit(
    wildfires: Transcript, chars: int
) -> None:
    words = wildfires.words
    parsed = cues(srt(words, chars))
    assert " ".join(text for _, _, text in parsed) == " ".join(w.text for w in words)
    longest_word = max(len(w.text) for w in words)
    assert all(len(text) <= max(chars, longest_word) for _, _, text in parsed)
    # Each caption runs from its first word's start to its last word's end.
    position = 0
    for start, end, text in parsed:
        count = len(text.split(" "))
        assert (start, end) == (words[position].start, words[position + count - 1].end)
        position += count
    assert cues(vtt(words, chars)) == parsed


def test_srt_and_vtt_times_have_their_own_separators_and_hours() -> None:
    words = (Word("Late", 3_723_456, 3_724_000), Word("words.", 3_724_000, 3_725_010))
    assert srt(words).splitlines()[1] == "01:02:03,456 --> 01:02:05,010"
    early = (Word("Early", 12_340, 13_000),)
    assert vtt(early).splitlines()[2] == "00:12.340 --> 00:13.000"
    assert vtt(words).splitlines()[2] == "01:02:03.456 --> 01:02:05.010"


def test_a_transcript_without_words_cannot_be_subtitled() -> None:
    with pytest.raises(ExportProblem, match="no words with times"):
        srt(())
    assert captions((), 10) == []


SPOKEN = Transcript.of_segments(
    (
        Word("Welcome", 500, 900, 0.9, "A"),
        Word("back.", 900, 1300, 0.8, "A"),
        Word("Thanks,", 61_000, 61_400, 0.95, "B"),
        Word("glad", 61_400, 61_700, 0.99, "B"),
    ),
    (
        Utterance("A", "Welcome back.", 500, 1300),
        Utterance("B", "Thanks, glad", 61_000, 61_700),
    ),
    id="t-spoken",
    status="completed",
    text="Welcome back. Thanks, glad",
)


def test_markdown_and_text_give_one_paragraph_per_speaker_turn() -> None:
    assert markdown(SPOKEN, title="call  7\n") == (
        "# call 7\n\n**Speaker A** (0:00): Welcome back.\n\n**Speaker B** (1:01): Thanks, glad\n"
    )
    assert plain_text(SPOKEN) == (
        "Speaker A [0:00]: Welcome back.\n\nSpeaker B [1:01]: Thanks, glad\n"
    )
    assert plain_text(SPOKEN, ExportLayout(timestamps=False)) == (
        "Speaker A: Welcome back.\n\nSpeaker B: Thanks, glad\n"
    )
    unlabelled = plain_text(SPOKEN, ExportLayout(speakers=False, timestamps=False))
    assert unlabelled == "Welcome back. Thanks, glad\n"


def test_words_csv_reads_back_as_a_table(wildfires: Transcript) -> None:
    rows = list(csv.DictReader(io.StringIO(words_csv(wildfires))))
    assert len(rows) == len(wildfires.words)
    assert [r["text"] for r in rows] == [w.text for w in wildfires.words]
    assert rows[0]["start_ms"] == str(wildfires.words[0].start)
    spoken = list(csv.DictReader(io.StringIO(words_csv(SPOKEN))))
    assert [r["speaker"] for r in spoken] == ["A", "A", "B", "B"]
    assert spoken[2]["start"] == "1:01"


def test_the_json_export_has_text_turns_and_timed_words() -> None:
    data = json.loads(export(SPOKEN, "json"))
    assert data["text"] == "Welcome back. Thanks, glad"
    turn = {"speaker": "B", "start": 61_000, "end": 61_700, "text": "Thanks, glad"}
    assert data["utterances"][1] == turn
    word = {"text": "Welcome", "start": 500, "end": 900, "confidence": 0.9, "speaker": "A"}
    assert data["words"][0] == word


# --- as tasks of a run -----------------------------------------------------------------

RECIPE = """\
version: 1
name: exports
inputs:
  - url: https://example.com/wildfires.mp3
  - transcript_file: saved.json
tasks:
  subtitles: {export: srt}
  captions:
    export: {format: vtt, chars_per_caption: 20}
  readable: {export: markdown, expect: [{contains: "Smoke"}]}
  table: {export: words-csv, output: tables/words.csv}
"""


def test_a_run_fetches_assemblyai_subtitles_and_builds_the_rest(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli
) -> None:
    (served / "saved.json").write_text(WILDFIRES.read_text())
    (served / "recipe.yaml").write_text(RECIPE)
    code, _, err = run_cli("run", "recipe.yaml", "--progress", "plain")
    assert code == 0, err
    assert not fake.gateway.calls  # no LLM anywhere

    remote = served / "out" / "exports" / "wildfires"
    words = json.loads((remote / "transcript.json").read_text())["words"]
    assert (remote / "subtitles.srt").read_text() == subtitles_of(words, "srt", 32)
    assert (remote / "captions.vtt").read_text() == subtitles_of(words, "vtt", 20)
    (job_id,) = {tid for tid, _, _ in fake.subtitle_requests}
    assert sorted(fake.subtitle_requests) == [(job_id, "srt", None), (job_id, "vtt", "20")]
    # The API's captions and ours are the same captions, whatever the blank lines.
    remote_transcript = Transcript.from_body((remote / "transcript.json").read_bytes())
    assert cues((remote / "captions.vtt").read_text()) == cues(vtt(remote_transcript.words, 20))
    assert (remote / "readable.md").read_text().startswith("# wildfires\n\n**0:00** Smoke")
    assert (remote / "tables" / "words.csv").read_text().startswith("start_ms,end_ms,")

    saved = served / "out" / "exports" / "saved"
    assert (saved / "subtitles.srt").read_text() == (GOLDEN / "wildfires.srt").read_text()
    assert len(fake.subtitle_requests) == 2  # the saved transcript's were built here

    manifest = json.loads((served / "out" / "run.json").read_text())
    tasks = {(i["item"], t["task"]): t for i in manifest["items"] for t in i["tasks"]}
    assert tasks[("wildfires", "subtitles")]["export_source"] == "assemblyai"
    assert tasks[("saved", "subtitles")]["export_source"] == "built"
    assert tasks[("wildfires", "readable")]["expectations"][0]["passed"] is True
    assert tasks[("wildfires", "subtitles")]["api"] == "export"
    assert tasks[("wildfires", "subtitles")]["output"] == "out/exports/wildfires/subtitles.srt"


def test_offline_runs_build_subtitles_without_asking(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli
) -> None:
    (served / "saved.json").write_text(WILDFIRES.read_text())
    (served / "recipe.yaml").write_text(RECIPE)
    assert run_cli("run", "recipe.yaml", "--progress", "plain").exit_code == 0
    asked = len(fake.subtitle_requests)
    code, _, err = run_cli("run", "recipe.yaml", "--progress", "plain", "--offline")
    assert code == 0, err
    assert len(fake.subtitle_requests) == asked
    remote = served / "out" / "exports" / "wildfires"
    words = Transcript.from_body((remote / "transcript.json").read_bytes()).words
    assert (remote / "subtitles.srt").read_text() == srt(words)


@pytest.mark.parametrize(
    ("task", "message"),
    [
        (
            "{export: srt, model: gpt-4.1}",
            "'model' does not apply to an export task",
        ),
        (
            "{export: {format: markdown, chars_per_caption: 30}}",
            "chars_per_caption applies to format srt or vtt only, not markdown",
        ),
        (
            "{export: {format: srt, timestamps: false}}",
            "timestamps applies to format txt or markdown only, not srt",
        ),
        ("{export: docx}", "'docx' is not allowed here; use one of srt, vtt, txt"),
        ("{export: srt, prompt: hi}", "has 'prompt' and 'export'; keep only one"),
    ],
)
def test_validate_locates_what_an_export_cannot_take(
    tmp_path: Path, run_cli: RunCli, task: str, message: str
) -> None:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        f"version: 1\nname: x\ninputs: [{{transcript_file: t.json}}]\ntasks:\n  subtitles: {task}\n"
    )
    (tmp_path / "t.json").write_text(WILDFIRES.read_text())
    code, out, err = run_cli("validate", str(recipe))
    assert code == 3, out + err
    assert message in out + err
    assert "recipe.yaml:5:" in out + err


def test_render_leaves_exports_out(tmp_path: Path, run_cli: RunCli) -> None:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        "version: 1\nname: x\ninputs: [{transcript_file: t.json}]\n"
        "tasks:\n  subtitles: {export: srt}\n  summary: {prompt: 'Sum up {{ transcript.text }}'}\n"
    )
    (tmp_path / "t.json").write_text(WILDFIRES.read_text())
    code, out, err = run_cli("render", str(recipe))
    assert code == 0, err
    assert "summary" in out
    assert "subtitles" not in out
    code, _, err = run_cli("render", str(recipe), "--task", "subtitles")
    assert code == 2
    assert "is an export" in err
