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
from fakeapi import FakeAssemblyAI, status, subtitles_of

from runner.transcript.captions import CaptionStyle, boundary, captions
from runner.transcript.exports import (
    ExportLayout,
    ExportProblem,
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
# The shipped recording (recipes/audio/team-sync.wav) as the local engine transcribed it.
TEAM_SYNC = Path(__file__).parent / "fixtures" / "transcripts" / "team-sync.json"
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
    """(start ms, end ms, text) of each caption of an SRT or VTT file, its lines joined
    by newlines, blank lines between captions or not."""
    found: list[tuple[int, int, list[str]]] = []
    ended = False  # a blank line ended the caption: what follows is no part of it
    for line in text.splitlines():
        match = _CUE_TIME.match(line)
        if match:
            g = match.groups()
            found.append((_ms(*g[:4]), _ms(*g[4:]), []))
            ended = False
        elif not line.strip():
            ended = bool(found and found[-1][2])
        elif found and not ended:
            found[-1][2].append(line)
    return [(start, end, "\n".join(lines)) for start, end, lines in found]


def spoken_text(caption: str) -> str:
    """A caption's words, without its speaker mark or voice tag."""
    return re.sub(r"^(\[\w+\] |<v [^>]+>)", "", caption).replace("\n", " ")


@pytest.fixture(scope="module")
def wildfires() -> Transcript:
    return load_saved(WILDFIRES)


@pytest.mark.parametrize("fmt", list(GOLDEN_FILES))
def test_each_format_is_byte_for_byte_the_golden_file(wildfires: Transcript, fmt: str) -> None:
    built = export(wildfires, fmt, title="wildfires")
    assert built == (GOLDEN / GOLDEN_FILES[fmt]).read_text(encoding="utf-8")


STYLES = [
    CaptionStyle(),
    CaptionStyle(chars_per_line=32, lines=1),
    CaptionStyle(chars_per_line=20, lines=3, min_seconds=0.5, max_seconds=4),
    CaptionStyle(chars_per_caption=30),
    CaptionStyle(chars_per_line=1),
]


@pytest.mark.parametrize("style", STYLES)
def test_captions_keep_every_word_in_order_within_the_limits(
    wildfires: Transcript, style: CaptionStyle
) -> None:
    words = wildfires.words
    parsed = cues(srt(words, style))
    assert " ".join(spoken_text(text) for _, _, text in parsed) == " ".join(w.text for w in words)
    longest_word = max(len(w.text) for w in words)
    for _, _, text in parsed:
        lines = text.split("\n")
        assert len(lines) <= style.lines
        assert all(len(line) <= max(style.chars_per_line, longest_word) for line in lines)
        if style.chars_per_caption and " " in text:
            assert len(text) <= style.chars_per_caption
    # Each caption starts at its first word; it ends at its last word's end, or later
    # (to be read) but never over the next one.
    position = 0
    for index, (start, end, text) in enumerate(parsed):
        count = len(spoken_text(text).split(" "))
        first, last = words[position], words[position + count - 1]
        assert start == first.start
        assert end >= last.end
        if index + 1 < len(parsed):
            assert end <= max(parsed[index + 1][0], last.end)
        if count > 1:  # a single word is never split, however long it is said
            assert last.end - first.start <= style.max_seconds * 1000
        position += count
    assert cues(vtt(words, style)) == parsed


# Phrases a caption must never end inside (the newcomer saw "…launch moved to" /
# "next Thursday…"), on the shipped recording and on the wildfires interview.
PINNED = {
    TEAM_SYNC: [
        "moved to next Thursday",
        "the payment page",
        "the release notes",
        "the support team",
        "the meeting room",
        "the launch review",
        "the marketing team",
        "the new servers",
        "on the old ones",
        "on Monday",
    ],
    WILDFIRES: [
        "hundreds of wildfires",
        "air quality alerts",
        "Peter DeCarlo",
        "Johns Hopkins University",
        "particulate matter",
        "micrograms per meter cubed",
        "New York City",
        "the smoke",
        "climate change",
        "the weather system",
        "going to",
    ],
}


@pytest.mark.parametrize("path", list(PINNED), ids=lambda p: p.stem)
def test_built_subtitles_read_like_broadcast_subtitles(path: Path) -> None:
    transcript = load_saved(path)
    built = captions(transcript.words)
    for caption in built:
        assert len(caption.lines) <= 2, caption
        assert all(len(line) <= 42 for line in caption.lines), caption
        assert caption.end - caption.start >= 1000 or caption is not built[-1], caption
    # No caption ends inside a pinned phrase.
    ends = [" ".join(spoken_text(c.text).split()) for c in built]
    for phrase in PINNED[path]:
        for index, text in enumerate(ends[:-1]):
            joined = f"{text} {ends[index + 1]}"
            where = joined.find(phrase)
            assert where < 0 or where + len(phrase) <= len(text) or where > len(text), (
                f"{phrase!r} split between {text!r} and {ends[index + 1]!r}"
            )
    # And none ends on a word that leans on the next ("to", "the", "and"...).
    words = transcript.words
    position = 0
    for caption in built[:-1]:
        position += len(spoken_text(caption.text).split(" "))
        assert boundary(words, position - 1) >= 0, caption


def test_a_caption_stays_on_screen_long_enough_to_read_unless_the_next_one_comes() -> None:
    words = (Word("Yes.", 0, 200), Word("No.", 5_000, 5_200), Word("Maybe.", 5_500, 5_900))
    built = captions(words, CaptionStyle(chars_per_line=6, lines=1))
    assert [(c.start, c.end) for c in built] == [(0, 1000), (5_000, 5_500), (5_500, 6_500)]
    slow = tuple(Word(f"w{i}", i * 1000, i * 1000 + 900) for i in range(12))
    assert all(c.end - c.start <= 3000 for c in captions(slow, CaptionStyle(max_seconds=3)))


def test_speakers_are_marked_in_srt_and_as_voices_in_vtt() -> None:
    assert cues(srt(SPOKEN.words)) == [
        (500, 1500, "[A] Welcome back."),
        (61_000, 62_000, "[B] Thanks, glad"),
    ]
    assert "<v Speaker A>Welcome back.\n" in vtt(SPOKEN.words)
    assert "<v Speaker B>Thanks, glad\n" in vtt(SPOKEN.words)
    unmarked = srt(SPOKEN.words, CaptionStyle(speakers=False))
    assert "[A]" not in unmarked
    assert "Welcome back." in unmarked


def test_srt_and_vtt_times_have_their_own_separators_and_hours() -> None:
    words = (Word("Late", 3_723_456, 3_724_000), Word("words.", 3_724_000, 3_725_010))
    assert srt(words).splitlines()[1] == "01:02:03,456 --> 01:02:05,010"
    early = (Word("Early", 12_340, 13_400),)
    assert vtt(early).splitlines()[2] == "00:12.340 --> 00:13.400"
    assert vtt(words).splitlines()[2] == "01:02:03.456 --> 01:02:05.010"


def test_a_transcript_without_words_cannot_be_subtitled() -> None:
    with pytest.raises(ExportProblem, match="no words with times"):
        srt(())
    assert captions(()) == []


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
    # The API's captions hold the same words as ours, laid out its own way.
    remote_transcript = Transcript.from_body((remote / "transcript.json").read_bytes())
    theirs = " ".join(t for _, _, t in cues((remote / "captions.vtt").read_text()))
    ours = " ".join(spoken_text(t) for _, _, t in cues(vtt(remote_transcript.words)))
    assert theirs.split() == ours.split()
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


def test_a_failed_subtitle_download_falls_back_to_subtitles_built_from_the_words(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli
) -> None:
    (served / "recipe.yaml").write_text(
        "version: 1\nname: exports\ninputs:\n  - url: https://example.com/wildfires.mp3\n"
        "tasks:\n  subtitles: {export: srt}\n"
    )
    fake.faults.add("GET /v2/transcript/*/srt", status(404), times=None)
    code, _, err = run_cli("run", "recipe.yaml", "--progress", "plain")
    assert code == 0, err
    assert "the subtitles were built here from the words" in err
    folder = served / "out" / "exports" / "wildfires"
    words = Transcript.from_body((folder / "transcript.json").read_bytes()).words
    assert (folder / "subtitles.srt").read_text() == srt(words)
    (item,) = json.loads((served / "out" / "run.json").read_text())["items"]
    (task,) = item["tasks"]
    assert (task["status"], task["export_source"]) == ("ok", "built")
    assert "/srt download failed (GET /v2/transcript/" in task["note"]


def test_a_layout_assemblyai_cannot_give_is_built_here(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli
) -> None:
    (served / "recipe.yaml").write_text(
        "version: 1\nname: exports\ninputs:\n  - url: https://example.com/wildfires.mp3\n"
        "tasks:\n  subtitles: {export: {format: vtt, chars_per_line: 30, max_seconds: 5}}\n"
    )
    code, _, err = run_cli("run", "recipe.yaml", "--progress", "plain")
    assert code == 0, err
    assert not fake.subtitle_requests
    folder = served / "out" / "exports" / "wildfires"
    words = Transcript.from_body((folder / "transcript.json").read_bytes()).words
    style = CaptionStyle(chars_per_line=30, max_seconds=5)
    assert (folder / "subtitles.vtt").read_text() == vtt(words, style)


def test_validate_refuses_a_caption_shorter_at_most_than_at_least(
    tmp_path: Path, run_cli: RunCli
) -> None:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        "version: 1\nname: x\ninputs: [{transcript_file: t.json}]\ntasks:\n"
        "  subtitles: {export: {format: srt, min_seconds: 3, max_seconds: 2}}\n"
    )
    (tmp_path / "t.json").write_text(WILDFIRES.read_text())
    code, out, err = run_cli("validate", str(recipe))
    assert code == 3, out + err
    assert "min_seconds 3 is more than max_seconds 2" in out + err


def test_speakers_appear_in_the_four_exports_of_a_transcript_with_turns() -> None:
    """Issue 22: srt, vtt, txt and markdown name the speakers, also when only the
    turns (not the words) carry them."""
    unnamed_words = Transcript.of_segments(
        tuple(Word(w.text, w.start, w.end) for w in SPOKEN.words),
        SPOKEN.utterances,
        id="t-turns",
        status="completed",
        text=SPOKEN.text,
    )
    for transcript in (SPOKEN, unnamed_words):
        assert "[A] Welcome back." in export(transcript, "srt")
        assert "[B] Thanks, glad" in export(transcript, "srt")
        assert "<v Speaker A>Welcome back." in export(transcript, "vtt")
        assert "<v Speaker B>Thanks, glad" in export(transcript, "vtt")
        assert "Speaker A [0:00]: Welcome back." in export(transcript, "txt")
        assert "**Speaker B** (1:01): Thanks, glad" in export(transcript, "markdown")
