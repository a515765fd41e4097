"""An item's transcript in report.html: paragraphs with their times and speakers, the
quoted words marked.

Read from the item's ``transcript.json`` (or the saved file it read), which is most of a
report's work: a report of 2,000 items read and laid out 2,000 transcripts of about 900
words. So the file is decoded into only what is shown (each word's text and start, the
utterances, the text), and the paragraphs are found from the words' texts in a few
passes over lists instead of a step per word. A file that is not the usual shape (a
word that is no object, ``words`` that is no list, NaN) is decoded whole and shown the
same way.
"""

from __future__ import annotations

import bisect
import html
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec

from runner.transcript.model import ends_sentence
from runner.transcript.text import format_timestamp

MAX_TRANSCRIPT_WORDS = 20_000  # a longer transcript is cut, saying so
SENTENCES_PER_PARAGRAPH = 5  # as readable.md groups them (runner.transcript.exports)
MAX_PARAGRAPH_WORDS = 200  # a transcript without punctuation still gets paragraphs
# The last character of every word that ends a sentence (``ends_sentence``: a mark,
# then perhaps closing quotes or brackets; its ``$`` also matches before a final newline).
_MAY_END_SENTENCE = frozenset(".?!\"'”’)]\n")


class _Word(msgspec.Struct):
    """What the report shows of a word; a missing ``text`` reads as "" (as ``get``)."""

    text: Any = ""
    start: Any = None


class _Shown(msgspec.Struct):
    """What the report shows of a transcript; every other field is skipped unread."""

    words: list[_Word] | None = None
    utterances: Any = None
    text: Any = None


_SHOWN = msgspec.json.Decoder(_Shown)


class Words:
    """The words of a block that are JSON objects: their texts (as strings) and starts."""

    __slots__ = ("starts", "texts")

    def __init__(self, texts: list[str], starts: list[Any]) -> None:
        self.texts = texts
        self.starts = starts

    @classmethod
    def of_objects(cls, words: Sequence[Any]) -> Words:
        """From decoded JSON. Decoded JSON makes dicts, and ``type() is`` costs a tenth
        of ``isinstance(w, Mapping)``'s ABC check, run per word."""
        objects = [w for w in words if type(w) is dict]
        texts = [w.get("text", "") for w in objects]
        return cls(
            [t if type(t) is str else str(t) for t in texts], [w.get("start") for w in objects]
        )

    @classmethod
    def of_shown(cls, words: Sequence[_Word]) -> Words:
        texts = [w.text for w in words]
        return cls([t if type(t) is str else str(t) for t in texts], [w.start for w in words])


# A transcript as read: only what is shown, or (a file of another shape) all of it.
TranscriptShown = _Shown | Mapping[str, Any]


def read_shown(candidates: Sequence[Path]) -> TranscriptShown | None:
    """The first of ``candidates`` that reads as a transcript (a JSON object)."""
    for path in candidates:
        try:
            body = path.read_bytes()
        except OSError:
            continue
        try:
            return _SHOWN.decode(body)
        except (msgspec.DecodeError, RecursionError):  # (ValidationError is a DecodeError)
            pass
        try:
            data = _decode(body)
        except (ValueError, RecursionError):
            continue
        if isinstance(data, Mapping):
            return data
    return None


def _decode(body: bytes) -> Any:
    """JSON with msgspec; what it refuses and json takes (NaN, in a saved file of
    someone's) goes to json."""
    try:
        return msgspec.json.decode(body)
    except msgspec.DecodeError:
        return json.loads(body)


def transcript_html(data: TranscriptShown, quotes: Sequence[Mapping[str, Any]]) -> str:
    spans = [
        (int(q["start"]), int(q["end"]))
        for q in quotes
        if isinstance(q.get("start"), int) and isinstance(q.get("end"), int)
    ]
    if isinstance(data, _Shown):
        utterances, text = data.utterances, data.text
        words = Words.of_shown(data.words or [])
    else:
        utterances, text = data.get("utterances"), data.get("text")
        given = data.get("words")
        words = Words.of_objects(given if isinstance(given, list) else [])
    # Each block: speaker, start, its words, how many words it holds (objects or not),
    # and its text (shown when it has no words).
    blocks: list[tuple[str | None, Any, Words, int, Any]]
    if isinstance(utterances, list) and utterances:
        blocks = [_utterance(u) for u in utterances if isinstance(u, Mapping)]
    else:
        blocks = [
            (None, words.starts[a], Words(words.texts[a:b], words.starts[a:b]), b - a, None)
            for a, b in _paragraphs(words.texts)
        ]
    shown, paragraphs = 0, []
    for speaker, start, block, count, said in blocks:
        if shown > MAX_TRANSCRIPT_WORDS:
            paragraphs.append("<p>… (cut here; the whole transcript is in transcript.json)</p>")
            break
        stamp = _stamp(start)
        label = f"<b>{_e(speaker)}</b> " if speaker else ""
        body = _marked_words(block, spans) if count else _e(str(said or ""))
        shown += count
        paragraphs.append(f'<p><span class="time">{_e(stamp)}</span>{label}{body}</p>')
    if not paragraphs and isinstance(text, str):
        paragraphs.append(f"<p>{_e(text)}</p>")
    return (
        f'<details class="transcript"><summary>Transcript</summary>{"".join(paragraphs)}</details>'
    )


def _utterance(utterance: Mapping[str, Any]) -> tuple[str, Any, Words, int, Any]:
    given = utterance.get("words")
    said: list[Any] = given if isinstance(given, list) else []
    speaker, start = utterance.get("speaker"), utterance.get("start")
    return f"Speaker {speaker}", start, Words.of_objects(said), len(said), utterance.get("text")


def _stamp(start: Any) -> str:
    try:
        return format_timestamp(start, "short")
    except (ValueError, TypeError):  # a time that is no time: none shown
        return ""


def _paragraphs(texts: Sequence[str]) -> list[tuple[int, int]]:
    """Words in paragraphs (as index ranges) that end where sentences end, five sentences
    each, as the readable export has them: never a break in the middle of a sentence
    (unless one runs past MAX_PARAGRAPH_WORDS, as without punctuation).

    The sentences' ends are found first (the regular expression only for words whose
    last character can end one: most end in a letter), then the breaks from them."""
    ends = [
        i for i, text in enumerate(texts) if text[-1:] in _MAY_END_SENTENCE and ends_sentence(text)
    ]
    found: list[tuple[int, int]] = []
    start = sentences = 0
    for end in ends:
        while end >= start + MAX_PARAGRAPH_WORDS:  # a paragraph full before its sentence ends
            found.append((start, start + MAX_PARAGRAPH_WORDS))
            start, sentences = start + MAX_PARAGRAPH_WORDS, 0
        sentences += 1
        if sentences == SENTENCES_PER_PARAGRAPH:
            found.append((start, end + 1))
            start, sentences = end + 1, 0
    while len(texts) - start > MAX_PARAGRAPH_WORDS:
        found.append((start, start + MAX_PARAGRAPH_WORDS))
        start += MAX_PARAGRAPH_WORDS
    if start < len(texts):
        found.append((start, len(texts)))
    return found


def _marked_words(words: Words, spans: Sequence[tuple[int, int]]) -> str:
    """The words, each quoted one marked; the unmarked ones between escaped together."""
    if not spans:  # most paragraphs: one escape for the whole of it
        return _e(" ".join(words.texts))
    quoted = _Spans(spans)
    out: list[str] = []
    plain: list[str] = []
    for text, start in zip(words.texts, words.starts, strict=True):
        if type(start) is int and quoted.holds(start):
            if plain:
                out.append(_e(" ".join(plain)))
                plain = []
            out.append(f"<mark>{_e(text)}</mark>")
        else:
            plain.append(text)
    if plain:
        out.append(_e(" ".join(plain)))
    return " ".join(out)


class _Spans:
    """Quoted times (closed ranges), merged and sorted: whether a time is in any of them
    is one bisection, not a look at each quote per word."""

    def __init__(self, spans: Sequence[tuple[int, int]]) -> None:
        merged: list[list[int]] = []
        for start, end in sorted(span for span in spans if span[0] <= span[1]):
            if merged and start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        self._starts = [start for start, _ in merged]
        self._ends = [end for _, end in merged]

    def holds(self, time: int) -> bool:
        at = bisect.bisect_right(self._starts, time) - 1
        return at >= 0 and time <= self._ends[at]


def _e(text: str) -> str:
    return html.escape(text, quote=True)
