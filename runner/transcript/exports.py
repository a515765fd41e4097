"""Exports: a transcript as subtitles, plain text, Markdown, JSON or a table of words.

No LLM is involved: an export is the transcript itself, laid out for people (a
subtitle file for a video player, a readable transcript) or for spreadsheets.

Subtitles of a transcript that lives on AssemblyAI are fetched from its ``/srt`` and
``/vtt`` endpoints (see :mod:`runner.execute.export`); this module builds them, in the
same format, for transcripts read from a file or kept by an earlier run, and builds
every other format for all transcripts.

Captions are laid out for reading (:mod:`runner.transcript.captions`): at most two
lines of 42 characters, broken at sentence, clause or phrase boundaries, on screen long
enough to read; a change of speaker starts a caption that names them.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace

from runner.transcript.captions import READABLE, Caption, CaptionStyle, captions, speaker_mark
from runner.transcript.model import (
    Paragraph,
    Transcript,
    Utterance,
    Word,
    paragraphs_from_sentences,
    sentences_from_words,
)
from runner.transcript.text import format_timestamp

FORMATS = ("srt", "vtt", "txt", "markdown", "json", "words-csv")
SUBTITLE_FORMATS = ("srt", "vtt")


@dataclass(frozen=True, slots=True)
class ExportLayout:
    """How a readable export (txt, markdown) is laid out.

    ``speakers``: one paragraph per speaker turn, labelled, when the transcript has
    speakers (``speaker_labels``). ``paragraphs``: otherwise, sentences grouped into
    paragraphs (else one block of text). ``timestamps``: each paragraph or turn starts
    with the time it starts at.
    """

    speakers: bool = True
    paragraphs: bool = True
    timestamps: bool = True


class ExportProblem(ValueError):
    """The transcript cannot be exported in the format asked (no words to time)."""


def srt(words: Sequence[Word], style: CaptionStyle = READABLE) -> str:
    """SubRip subtitles: numbered captions, ``HH:MM:SS,mmm`` times, a blank line after each.

    >>> print(srt([Word("Hello", 250, 650), Word("world.", 650, 1300)]), end="")
    1
    00:00:00,250 --> 00:00:01,300
    Hello world.
    <BLANKLINE>
    """
    blocks = [
        f"{n}\n{format_timestamp(c.start, 'srt')} --> {format_timestamp(c.end, 'srt')}\n{c.text}\n"
        for n, c in enumerate(_timed_captions(words, style), start=1)
    ]
    return "\n".join(blocks) + ("\n" if blocks else "")


def vtt(words: Sequence[Word], style: CaptionStyle = READABLE) -> str:
    """WebVTT subtitles: ``WEBVTT``, then each caption with ``MM:SS.mmm`` times (hours
    from the first hour on, as AssemblyAI writes them), a blank line between captions;
    a caption whose speaker is known starts with a voice tag, ``<v Speaker A>``.

    >>> print(vtt([Word("Hello", 12_340, 13_000), Word("world.", 13_000, 16_220)]), end="")
    WEBVTT
    <BLANKLINE>
    00:12.340 --> 00:16.220
    Hello world.
    <BLANKLINE>
    """
    blocks = [
        f"{_vtt_time(c.start)} --> {_vtt_time(c.end)}\n{_vtt_text(c)}\n"
        for c in _timed_captions(words, style)
    ]
    return "WEBVTT\n\n" + "\n".join(blocks) + ("\n" if blocks else "")


def speaking_words(transcript: Transcript) -> Sequence[Word]:
    """The transcript's words, each with its speaker: its own, else the speaker of the
    turn (utterance) it falls in, so subtitles name speakers whenever the transcript
    has turns."""
    words = transcript.words
    turns = transcript.utterances
    if not turns or all(w.speaker is not None for w in words):
        return words
    named = []
    turn = 0
    for word in words:
        while turn + 1 < len(turns) and word.start >= turns[turn + 1].start:
            turn += 1
        inside = turns[turn].start <= word.start <= turns[turn].end
        speaker = word.speaker or (turns[turn].speaker if inside else None)
        named.append(replace(word, speaker=speaker))
    return named


def _vtt_text(caption: Caption) -> str:
    """The caption's lines, its speaker as WebVTT's voice tag rather than ``[A]``."""
    if caption.speaker is None:
        return caption.text
    mark = speaker_mark(caption.speaker)
    return f"<v Speaker {caption.speaker}>{caption.text.removeprefix(mark)}"


def _timed_captions(words: Sequence[Word], style: CaptionStyle) -> list[Caption]:
    if not words:
        raise ExportProblem(
            "the transcript has no words with times, so subtitles cannot be made from it"
        )
    return captions(words, style)


def _vtt_time(ms: int) -> str:
    full = format_timestamp(ms, "vtt")  # HH:MM:SS.mmm
    return full[3:] if full.startswith("00:") else full


def plain_text(transcript: Transcript, layout: ExportLayout = ExportLayout()) -> str:
    """The transcript as plain text: speaker turns or paragraphs separated by blank lines.

    >>> words = (Word("Hi.", 0, 300), Word("Bye.", 400, 900))
    >>> t = Transcript.of_segments(words, id="t1", status=None)
    >>> print(plain_text(t, ExportLayout(timestamps=False)), end="")
    Hi. Bye.
    """
    return "\n\n".join(_blocks(transcript, layout, bold=False)) + "\n"


def markdown(
    transcript: Transcript, layout: ExportLayout = ExportLayout(), *, title: str = ""
) -> str:
    """The transcript as Markdown: a title, then speaker turns (``**Speaker A** 0:12``)
    or paragraphs, each with the time it starts at when ``layout.timestamps``.

    >>> words = (Word("Hi.", 0, 300), Word("Bye.", 12_400, 12_900))
    >>> t = Transcript.of_segments(words, id="t1", status=None)
    >>> print(markdown(t, ExportLayout(paragraphs=False), title="call-1"), end="")
    # call-1
    <BLANKLINE>
    **0:00** Hi. Bye.
    """
    heading = f"# {_one_line(title)}\n\n" if title else ""
    return heading + "\n\n".join(_blocks(transcript, layout, bold=True)) + "\n"


def _blocks(transcript: Transcript, layout: ExportLayout, *, bold: bool) -> list[str]:
    """One string per speaker turn (when asked and known) or paragraph."""
    if layout.speakers and transcript.utterances:
        return [_turn(u, layout.timestamps, bold) for u in transcript.utterances]
    if not transcript.words:
        return [transcript.text] if transcript.text else []
    sentences = sentences_from_words(transcript.words)
    size = 5 if layout.paragraphs else max(len(sentences), 1)
    paragraphs = paragraphs_from_sentences(sentences, size)
    return [_paragraph(p, layout.timestamps, bold) for p in paragraphs]


def _turn(utterance: Utterance, timestamps: bool, bold: bool) -> str:
    """``Speaker A [0:12]: text`` in text, ``**Speaker A** (0:12): text`` in Markdown."""
    label = f"Speaker {utterance.speaker}"
    if bold:
        label = f"**{label}**"
    if timestamps:
        stamp = format_timestamp(utterance.start, "short")
        label += f" ({stamp})" if bold else f" [{stamp}]"
    return f"{label}: {utterance.text}"


def _paragraph(paragraph: Paragraph, timestamps: bool, bold: bool) -> str:
    if not timestamps:
        return paragraph.text
    stamp = format_timestamp(paragraph.start, "short")
    return f"**{stamp}** {paragraph.text}" if bold else f"[{stamp}] {paragraph.text}"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def transcript_json(transcript: Transcript) -> str:
    """The transcript's text and timings as indented JSON, without the API's request
    options: what a person or a script reads, where ``transcript.json`` is what the API
    sent."""
    data: dict[str, object] = {
        "id": transcript.id,
        "language_code": transcript.language_code,
        "audio_duration": transcript.audio_duration,
        "confidence": transcript.confidence,
        "text": transcript.text,
    }
    if transcript.utterances:
        data["utterances"] = [
            {"speaker": u.speaker, "start": u.start, "end": u.end, "text": u.text}
            for u in transcript.utterances
        ]
    data["words"] = [_word_row(w) for w in transcript.words]
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def _word_row(word: Word) -> dict[str, object]:
    row: dict[str, object] = {"text": word.text, "start": word.start, "end": word.end}
    if word.confidence is not None:
        row["confidence"] = word.confidence
    if word.speaker is not None:
        row["speaker"] = word.speaker
    return row


WORDS_CSV_COLUMNS = ("start_ms", "end_ms", "start", "speaker", "confidence", "text")


def words_csv(transcript: Transcript) -> str:
    """One row per word: times in milliseconds and as ``H:MM:SS``, speaker, confidence.

    >>> t = Transcript.of_segments((Word("Hi,", 0, 300, 0.98),), id="t", status=None)
    >>> print(words_csv(t), end="")
    start_ms,end_ms,start,speaker,confidence,text
    0,300,0:00,,0.98,"Hi,"
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(WORDS_CSV_COLUMNS)
    for w in transcript.words:
        confidence = "" if w.confidence is None else w.confidence
        start = format_timestamp(w.start, "short")
        writer.writerow((w.start, w.end, start, w.speaker or "", confidence, w.text))
    return buffer.getvalue()


def export(
    transcript: Transcript,
    fmt: str,
    *,
    style: CaptionStyle = READABLE,
    layout: ExportLayout = ExportLayout(),
    title: str = "",
) -> str:
    """``transcript`` in ``fmt`` (one of :data:`FORMATS`), built here."""
    if fmt == "srt":
        return srt(speaking_words(transcript), style)
    if fmt == "vtt":
        return vtt(speaking_words(transcript), style)
    if fmt == "txt":
        return plain_text(transcript, layout)
    if fmt == "markdown":
        return markdown(transcript, layout, title=title)
    if fmt == "json":
        return transcript_json(transcript)
    if fmt == "words-csv":
        return words_csv(transcript)
    raise ValueError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
