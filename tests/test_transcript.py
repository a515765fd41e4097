"""Tests for runner.transcript.model: the transcript model and the text helpers used as filters."""

from __future__ import annotations

import dataclasses
import doctest
import itertools
import json
import math
import re
import types
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runner.transcript import captions as transcript_captions
from runner.transcript import model as transcript_module
from runner.transcript import text as transcript_text
from runner.transcript.model import (
    Paragraph,
    Sentence,
    Transcript,
    Utterance,
    Word,
    parse_paragraphs,
    parse_sentences,
    sentences_from_words,
)
from runner.transcript.text import (
    SpeakerStats,
    dialogue,
    estimate_tokens,
    format_timestamp,
    sentence_windows,
    speaker_stats,
    truncate_tokens,
    word_count,
)

FIXTURES = Path(__file__).parent / "fixtures" / "assemblyai"


def load_fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return data


@pytest.fixture(scope="module")
def wildfires() -> Transcript:
    return Transcript.from_api(load_fixture("transcript-wildfires.json"))


def _word(text: str, start: int, end: int, speaker: str) -> dict[str, Any]:
    return {"text": text, "start": start, "end": end, "confidence": 0.99, "speaker": speaker}


def _utterance(speaker: str, start: int, words: list[tuple[str, int, int]]) -> dict[str, Any]:
    """An utterance shaped like the spec's TranscriptUtterance example."""
    return {
        "confidence": 0.9359033333333334,
        "end": words[-1][2],
        "speaker": speaker,
        "start": start,
        "text": " ".join(w[0] for w in words),
        "words": [_word(text, s, e, speaker) for text, s, e in words],
    }


def diarized_transcript() -> dict[str, Any]:
    """Two speakers, four utterances, plus unknown keys the model must ignore."""
    utterances = [
        _utterance(
            "A", 250, [("Good", 250, 650), ("morning,", 730, 1022), ("professor.", 1076, 1800)]
        ),
        _utterance("B", 2100, [("Good", 2100, 2400), ("morning.", 2450, 2900)]),
        _utterance("A", 65_000, [("Why", 65_000, 65_300), ("now?", 65_350, 65_900)]),
        _utterance(
            "B", 3_725_500, [("Dry", 3_725_500, 3_725_900), ("weather.", 3_726_000, 3_726_700)]
        ),
    ]
    return {
        "id": "5d0563f8-0000-4000-8000-000000000000",
        "status": "completed",
        "text": " ".join(u["text"] for u in utterances),
        "words": [w for u in utterances for w in u["words"]],
        "utterances": utterances,
        "confidence": 0.95,
        "audio_duration": 3727,
        "language_code": "en_us",
        "speech_model_used": "universal-3-5-pro",
        "error": None,
        "speaker_labels": True,
        "project_id": 12345,  # undocumented key: ignored
    }


# --- Transcript.from_api -------------------------------------------------------------------


def test_wildfires_fixture_loads(wildfires: Transcript) -> None:
    assert len(wildfires.words) == 861
    assert wildfires.text.startswith("Smoke from hundreds of wildfires")
    assert wildfires.audio_duration == 282
    assert wildfires.utterances == ()
    assert wildfires.speakers == ()
    assert wildfires.id == "e5a56f4f-b658-44b0-925a-f7d761ec0d96"
    assert wildfires.status == "completed"
    assert wildfires.error is None
    assert wildfires.confidence == pytest.approx(0.9786635)
    assert wildfires.language_code == "en_us"
    assert wildfires.speech_model_used == "universal-2"
    assert wildfires.words[0] == Word("Smoke", 240, 640, 0.90152997, None, None)
    assert wildfires.words[-1].text == "me."


def test_raw_is_read_only_copy(wildfires: Transcript) -> None:
    assert wildfires.raw["metadata"]["domain_used"] is None
    with pytest.raises(TypeError):
        wildfires.raw["text"] = "changed"  # type: ignore[index]
    source = {"id": "x", "status": "queued"}
    t = Transcript.from_api(source)
    source["status"] = "completed"
    assert t.raw["status"] == "queued"


def test_transcript_is_frozen_and_repr_is_short(wildfires: Transcript) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        wildfires.text = ""  # type: ignore[misc]
    assert repr(wildfires) == (
        "Transcript(id='e5a56f4f-b658-44b0-925a-f7d761ec0d96', status='completed', words=861, "
        "utterances=0, audio_duration=282)"
    )


@pytest.mark.parametrize("name", ["transcript-queued.json", "transcript-deleted.json"])
def test_nulls_are_tolerated_in_real_fixtures(name: str) -> None:
    t = Transcript.from_api(load_fixture(name))
    assert t.words == ()
    assert t.utterances == ()
    assert t.speakers == ()


def test_missing_keys_are_tolerated() -> None:
    t = Transcript.from_api({})
    assert (t.id, t.status, t.text, t.words, t.utterances) == (None, None, "", (), ())
    assert (t.confidence, t.audio_duration, t.language_code) == (None, None, None)
    assert (t.speech_model_used, t.error) == (None, None)


def test_error_transcript_keeps_message() -> None:
    t = Transcript.from_api({"id": "x", "status": "error", "error": "Audio duration is too short."})
    assert t.error == "Audio duration is too short."


def test_diarized_transcript_parses() -> None:
    t = Transcript.from_api(diarized_transcript())
    assert t.speakers == ("A", "B")
    assert len(t.utterances) == 4
    first = t.utterances[0]
    assert (first.speaker, first.start, first.end, first.text) == (
        "A",
        250,
        1800,
        "Good morning, professor.",
    )
    assert first.words[1] == Word("morning,", 730, 1022, 0.99, "A", None)
    assert first.channel is None
    assert len(t.words) == 9


def test_speakers_fall_back_to_words_and_sort_channels_numerically() -> None:
    words = [{"text": "x", "start": 0, "end": 1, "speaker": s} for s in ["2", "10", "1", None]]
    assert Transcript.from_api({"words": words}).speakers == ("1", "2", "10")


def test_integral_float_times_are_accepted() -> None:
    t = Transcript.from_api({"words": [{"text": "a", "start": 250.0, "end": 650.0}]})
    assert t.words[0].start == 250
    assert isinstance(t.words[0].start, int)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"words": "abc"}, "transcript field 'words' must be a list, got str"),
        ({"utterances": {"a": 1}}, "transcript field 'utterances' must be a list, got dict"),
        ({"words": [1]}, "transcript field 'words[0]' must be an object, got int"),
        (
            {"words": [{"text": "a", "start": "0", "end": 1}]},
            "transcript field 'words[0].start' must be an integer (milliseconds), got str",
        ),
        (
            {"words": [{"text": "a", "end": 1}]},
            "transcript field 'words[0].start' must be an integer (milliseconds), got null",
        ),
        (
            {"words": [{"text": "a", "start": True, "end": 1}]},
            "transcript field 'words[0].start' must be an integer (milliseconds), got bool",
        ),
        ({"text": 5}, "transcript field 'text' must be a string, got int"),
        ({"status": ["completed"]}, "transcript field 'status' must be a string, got list"),
        ({"audio_duration": "282"}, "transcript field 'audio_duration' must be a number, got str"),
        ({"confidence": True}, "transcript field 'confidence' must be a number, got bool"),
        (
            {
                "utterances": [
                    {
                        "speaker": "A",
                        "text": "hi",
                        "start": 0,
                        "end": 1,
                        "words": [{"text": "hi", "start": 0, "end": 1, "speaker": 3}],
                    }
                ]
            },
            "transcript field 'utterances[0].words[0].speaker' must be a string, got int",
        ),
        (
            {"utterances": [{"text": "hi", "start": 0, "end": 1}]},
            "transcript field 'utterances[0].speaker' must be a string, got null",
        ),
    ],
)
def test_from_api_wrong_types_name_the_field(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        Transcript.from_api(data).parse_segments()


def test_words_are_parsed_on_first_use_and_the_bytes_received_are_kept() -> None:
    # Most prompts read only the text: a malformed word list costs nothing until a
    # template (or parse_segments, which the executor calls when templates use words)
    # reads it, and then it names the field.
    body = json.dumps({"id": "x", "status": "completed", "text": "Hi.", "words": "oops"})
    transcript = Transcript.from_body(body.encode())
    assert (transcript.text, transcript.body) == ("Hi.", body.encode())
    with pytest.raises(ValueError, match=re.escape("'words' must be a list, got str")):
        _ = transcript.words
    data = load_fixture("transcript-wildfires.json")
    good = Transcript.from_body(json.dumps(data).encode())
    assert good.words == Transcript.from_api(data).words
    assert good.raw["id"] == data["id"]


def test_from_api_rejects_non_objects() -> None:
    with pytest.raises(ValueError, match="transcript must be a JSON object, got list"):
        Transcript.from_api([])  # type: ignore[arg-type]


# --- sentences and paragraphs -------------------------------------------------------------

SENTENCES_RESPONSE: dict[str, Any] = {
    "id": "d5a3d302-066e-43fb-b63b-8f57baf185db",
    "confidence": 0.9,
    "audio_duration": 281.0,
    "speech_model_used": "universal-3-5-pro",
    "sentences": [
        {
            "text": "Smoke from hundreds of wildfires in Canada is triggering air quality alerts.",
            "start": 250,
            "end": 6350,
            "confidence": 0.72412,
            "speaker": None,
            "channel": None,
            "words": [
                {"text": "Smoke", "start": 250, "end": 650, "confidence": 0.72412, "speaker": None}
            ],
        },
        {
            "text": "Skylines from Maine to Maryland to Minnesota are gray and smoggy.",
            "start": 6500,
            "end": 11050,
            "confidence": 0.99819,
            "speaker": "B",
            "words": [],
        },
    ],
}


def test_parse_sentences() -> None:
    sentences = parse_sentences(SENTENCES_RESPONSE)
    assert len(sentences) == 2
    assert sentences[0].words == (Word("Smoke", 250, 650, 0.72412, None, None),)
    assert (sentences[1].start, sentences[1].end, sentences[1].speaker) == (6500, 11050, "B")


def test_parse_paragraphs() -> None:
    data = {
        "id": "d5a3d302-066e-43fb-b63b-8f57baf185db",
        "confidence": 0.95,
        "audio_duration": 281,
        "paragraphs": [
            {"text": "Good morning.", "start": 27850, "end": 28920, "confidence": 1, "words": None}
        ],
    }
    assert parse_paragraphs(data) == (Paragraph("Good morning.", 27850, 28920, 1.0, ()),)
    assert parse_paragraphs({"id": "x"}) == ()


def test_envelope_errors_name_the_response() -> None:
    with pytest.raises(ValueError, match=r"sentences response field 'sentences' must be a list"):
        parse_sentences({"sentences": "nope"})
    with pytest.raises(ValueError, match=r"paragraphs response field 'paragraphs\[0\]\.text'"):
        parse_paragraphs({"paragraphs": [{"start": 0, "end": 1}]})


def test_sentences_from_words_on_real_fixture(wildfires: Transcript) -> None:
    sentences = sentences_from_words(wildfires.words)
    assert [w for s in sentences for w in s.words] == list(wildfires.words)
    assert sentences[0].text.startswith("Smoke from hundreds")
    assert sentences[-1].text == "Thank you for having me."
    assert sentences[-1].end == wildfires.words[-1].end
    assert all(re.search(r"[.?!]$", s.text) for s in sentences)


def test_sentences_from_words_splits_on_speaker_change_and_quotes() -> None:
    words = [
        Word("He", 0, 1, 1.0, "A"),
        Word('said "no."', 1, 2, 0.5, "A"),
        Word("Really", 3, 4, None, "A"),
        Word("yes", 5, 6, 0.8, "B"),
    ]
    sentences = sentences_from_words(words)
    assert [(s.text, s.speaker) for s in sentences] == [
        ('He said "no."', "A"),
        ("Really", "A"),
        ("yes", "B"),
    ]
    assert sentences[0].confidence == pytest.approx(0.75)
    assert sentences[1].confidence is None
    assert sentences_from_words([]) == ()


# --- dialogue and speaker stats -----------------------------------------------------------


def test_dialogue_exact_output() -> None:
    t = Transcript.from_api(diarized_transcript())
    assert dialogue(t.utterances) == (
        "Speaker A [00:00:00]: Good morning, professor.\n"
        "Speaker B [00:00:02]: Good morning.\n"
        "Speaker A [00:01:05]: Why now?\n"
        "Speaker B [01:02:05]: Dry weather."
    )
    assert dialogue(t.utterances, timestamps=False) == (
        "Speaker A: Good morning, professor.\n"
        "Speaker B: Good morning.\n"
        "Speaker A: Why now?\n"
        "Speaker B: Dry weather."
    )
    named = dialogue(t.utterances, speaker_names={"A": "Alice"})
    assert named.splitlines()[:2] == [
        "Alice [00:00:00]: Good morning, professor.",
        "Speaker B [00:00:02]: Good morning.",
    ]


def test_dialogue_multichannel_sentences_and_empty() -> None:
    utterances = [Utterance("1", "Hello.", 0, 500, channel="1"), Utterance("2", "Hi.", 600, 900)]
    assert dialogue(utterances, timestamps=False) == "Speaker 1: Hello.\nSpeaker 2: Hi."
    assert dialogue([Sentence("Hm.", 1000, 1200)]) == "Unknown speaker [00:00:01]: Hm."
    assert dialogue([]) == ""


def test_speaker_stats() -> None:
    t = Transcript.from_api(diarized_transcript())
    assert speaker_stats(t.utterances) == {
        "A": SpeakerStats("A", utterances=2, words=5, talk_time_ms=1550 + 900),
        "B": SpeakerStats("B", utterances=2, words=4, talk_time_ms=800 + 1200),
    }
    assert speaker_stats([]) == {}


# --- format_timestamp ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ms", "clock", "srt", "vtt", "short"),
    [
        (0, "00:00:00", "00:00:00,000", "00:00:00.000", "0:00"),
        (999, "00:00:00", "00:00:00,999", "00:00:00.999", "0:00"),
        (1000, "00:00:01", "00:00:01,000", "00:00:01.000", "0:01"),
        (83_999, "00:01:23", "00:01:23,999", "00:01:23.999", "1:23"),
        (599_999, "00:09:59", "00:09:59,999", "00:09:59.999", "9:59"),
        (3_599_999, "00:59:59", "00:59:59,999", "00:59:59.999", "59:59"),
        (3_600_000, "01:00:00", "01:00:00,000", "01:00:00.000", "1:00:00"),
        (3_723_456, "01:02:03", "01:02:03,456", "01:02:03.456", "1:02:03"),
        (36_000_000, "10:00:00", "10:00:00,000", "10:00:00.000", "10:00:00"),
        (360_000_000, "100:00:00", "100:00:00,000", "100:00:00.000", "100:00:00"),
        # Fractions floor: 999.9 ms is still in second 0 and millisecond 999.
        (999.9, "00:00:00", "00:00:00,999", "00:00:00.999", "0:00"),
        (59_999.99, "00:00:59", "00:00:59,999", "00:00:59.999", "0:59"),
        (0.4, "00:00:00", "00:00:00,000", "00:00:00.000", "0:00"),
    ],
)
def test_format_timestamp_styles(ms: float, clock: str, srt: str, vtt: str, short: str) -> None:
    assert format_timestamp(ms) == clock
    assert format_timestamp(ms, "clock") == clock
    assert format_timestamp(ms, "srt") == srt
    assert format_timestamp(ms, "vtt") == vtt
    assert format_timestamp(ms, "short") == short


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        (None, ValueError, "time is missing"),
        (-1, ValueError, "got -1"),
        (-0.5, ValueError, "got -0.5"),
        (math.nan, ValueError, "finite"),
        (math.inf, ValueError, "finite"),
        ("83", TypeError, "got str"),
        (True, TypeError, "got bool"),
    ],
)
def test_format_timestamp_rejects_bad_times(
    value: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        format_timestamp(value)


def test_format_timestamp_rejects_unknown_style() -> None:
    with pytest.raises(ValueError, match=r"unknown style 'iso'; use one of clock, srt, vtt, short"):
        format_timestamp(0, "iso")


def _parse_srt(stamp: str) -> int:
    match = re.fullmatch(r"(\d{2,}):(\d{2}):(\d{2}),(\d{3})", stamp)
    assert match, stamp
    hours, minutes, seconds, millis = map(int, match.groups())
    assert minutes < 60
    assert seconds < 60
    return ((hours * 60 + minutes) * 60 + seconds) * 1000 + millis


@given(st.integers(min_value=0, max_value=500 * 3_600_000))
def test_srt_round_trips(ms: int) -> None:
    assert _parse_srt(format_timestamp(ms, "srt")) == ms


@given(st.floats(min_value=0, max_value=1e9, allow_nan=False, allow_infinity=False))
def test_srt_of_float_is_its_floor(ms: float) -> None:
    assert _parse_srt(format_timestamp(ms, "srt")) == math.floor(ms)


# --- sentence_windows ----------------------------------------------------------------------


def make_sentences(n: int) -> list[Sentence]:
    return [Sentence(f"S{i}.", i * 1000, i * 1000 + 900) for i in range(n)]


def seed_sliding_window(
    elements: list[Sentence], distance: int, stride: int
) -> list[list[Sentence]]:
    """The cookbook's version, verbatim (AssemblyAI's best-quotes guide), kept to show its bug."""
    idx = 0
    results = []
    while idx + distance < len(elements):
        results.append(elements[idx : idx + distance])
        idx += distance - stride
    return results


def assert_windows_valid(n: int, size: int, overlap: int) -> None:
    sentences = make_sentences(n)
    windows = sentence_windows(sentences, size=size, overlap=overlap)
    if n == 0:
        assert windows == []
        return
    covered = [s for w in windows for s in w.sentences]
    assert set(covered) == set(sentences)  # every sentence, and nothing beyond the data
    assert windows[0].sentences[0] == sentences[0]
    assert windows[-1].sentences[-1] == sentences[-1]  # the last sentence is always included
    assert [w.index for w in windows] == list(range(len(windows)))
    for window in windows:
        first = sentences.index(window.sentences[0])
        assert list(window.sentences) == sentences[first : first + len(window.sentences)]
        assert len(window.sentences) == min(size, n)
        assert window.text == " ".join(s.text for s in window.sentences)
        assert (window.start, window.end) == (window.sentences[0].start, window.sentences[-1].end)
    firsts = [sentences.index(w.sentences[0]) for w in windows]
    assert firsts == sorted(set(firsts))
    # Stepped windows advance by size - overlap; only the added final one may step less.
    steps = [b - a for a, b in itertools.pairwise(firsts)]
    assert all(step == size - overlap for step in steps[:-1])
    assert all(0 < step <= size - overlap for step in steps[-1:])


@pytest.mark.parametrize(("size", "overlap"), [(5, 2), (3, 0), (1, 0)])
@pytest.mark.parametrize("n", range(13))
def test_sentence_windows_cover_everything(n: int, size: int, overlap: int) -> None:
    assert_windows_valid(n, size, overlap)


def test_sentence_windows_exact_for_seed_defaults() -> None:
    firsts = [w.sentences[0].text for w in sentence_windows(make_sentences(12), 5, 2)]
    assert firsts == ["S0.", "S3.", "S6.", "S7."]
    assert sentence_windows(make_sentences(11), 5, 2)[-1].text == "S6. S7. S8. S9. S10."


def test_seed_drops_last_sentence_but_ours_does_not() -> None:
    sentences = make_sentences(6)
    seed = seed_sliding_window(sentences, 5, 2)
    assert seed == [sentences[:5]]
    assert sentences[-1] not in [s for group in seed for s in group]
    ours = sentence_windows(sentences, 5, 2)
    assert [w.sentences for w in ours] == [tuple(sentences[:5]), tuple(sentences[1:6])]
    # Exactly `size` sentences: the seed returns nothing at all.
    assert seed_sliding_window(sentences[:5], 5, 2) == []
    assert len(sentence_windows(sentences[:5], 5, 2)) == 1


@given(st.integers(0, 60), st.integers(1, 10), st.data())
def test_sentence_windows_coverage_property(n: int, size: int, data: st.DataObject) -> None:
    overlap = data.draw(st.integers(0, size - 1))
    assert_windows_valid(n, size, overlap)


@pytest.mark.parametrize(
    ("size", "overlap", "message"),
    [
        (0, 0, "size must be"),
        (-1, 0, "size must be"),
        (5, 5, "overlap must be"),
        (5, -1, "overlap must be"),
    ],
)
def test_sentence_windows_validates(size: int, overlap: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        sentence_windows(make_sentences(3), size=size, overlap=overlap)


def test_sentence_windows_on_real_fixture(wildfires: Transcript) -> None:
    sentences = sentences_from_words(wildfires.words)
    windows = sentence_windows(sentences)
    assert windows[-1].end == wildfires.words[-1].end
    assert windows[0].start == wildfires.words[0].start


# --- word_count, estimate_tokens, truncate_tokens ------------------------------------------


def test_word_count() -> None:
    assert word_count("") == 0
    assert word_count("  a  b\tc\nd ") == 4


def test_estimate_tokens_values(wildfires: Transcript) -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("a") == 2  # one word is about 1.33 tokens, rounded up
    assert estimate_tokens("Smoke from hundreds of wildfires in Canada") == 11
    assert estimate_tokens("日本語のテキスト") == 8  # wide characters count one each
    # 861 words of real speech: within the documented band of the usual 1.3 tokens/word.
    assert 861 * 1.2 <= estimate_tokens(wildfires.text) <= 861 * 1.6


@given(st.text(), st.text())
def test_estimate_tokens_is_monotonic(a: str, b: str) -> None:
    assert estimate_tokens(a + b) >= estimate_tokens(a)
    assert estimate_tokens(a + b) >= estimate_tokens(b)


MARKER = "\n[… transcript truncated: {omitted} of {total} estimated tokens omitted …]\n"


def split_marker(result: str) -> tuple[str, str, str]:
    match = re.search(
        r"\n\[… transcript truncated: (\d+) of (\d+) estimated tokens omitted …\]\n", result
    )
    assert match, result
    return result[: match.start()], match.group(0), result[match.end() :]


def test_truncate_tokens_returns_text_within_budget_unchanged() -> None:
    assert truncate_tokens("one two three", 100) == "one two three"
    assert truncate_tokens("", 1) == ""


@pytest.mark.parametrize("budget", [1, 2, 10, 50, 333, 1000])
def test_truncate_tokens_head(wildfires: Transcript, budget: int) -> None:
    text = wildfires.text
    head, marker, tail = split_marker(truncate_tokens(text, budget))
    assert tail == ""
    assert estimate_tokens(head) <= budget
    assert text.startswith(head)
    assert head == "" or text[len(head)] == " "  # cut on a word boundary
    # Nearly all the budget is used: one more word would not fit.
    next_word = text[len(head) :].split()[0]
    assert estimate_tokens(f"{head} {next_word}".strip()) > budget
    assert f"of {estimate_tokens(text)} estimated" in marker


@pytest.mark.parametrize("budget", [1, 2, 10, 50, 333, 1000])
def test_truncate_tokens_middle(wildfires: Transcript, budget: int) -> None:
    text = wildfires.text
    head, _, tail = split_marker(truncate_tokens(text, budget, keep="middle"))
    assert estimate_tokens(head + tail) <= budget
    assert text.startswith(head)
    assert text.endswith(tail)
    assert len(head) + len(tail) < len(text)
    if budget >= 50:
        assert head.startswith("Smoke from hundreds")
        assert tail.endswith("Thank you for having me.")


def test_truncate_tokens_tail_and_marker_counts() -> None:
    text = "one two three four five six"  # estimate 8 (by words)
    assert truncate_tokens(text, 4, "[{omitted}/{total}] ", keep="tail") == "[4/8] four five six"
    assert truncate_tokens(text, 4, " {x} {total}") == "one two three {x} 8"


def test_truncate_tokens_validates() -> None:
    with pytest.raises(ValueError, match="budget must be an integer >= 1, got 0"):
        truncate_tokens("text", 0)
    with pytest.raises(ValueError, match="keep must be"):
        truncate_tokens("text", 5, keep="end")


# --- docstring examples (they are user documentation for the filters) ----------------------


@pytest.mark.parametrize("module", [transcript_module, transcript_text])
def test_docstring_examples(module: types.ModuleType) -> None:
    result = doctest.testmod(module)
    assert result.attempted > 3
    assert result.failed == 0


def test_the_captions_docstring_example_holds() -> None:
    result = doctest.testmod(transcript_captions)
    assert result.attempted >= 1
    assert result.failed == 0
