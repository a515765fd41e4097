"""The transcript as prompt templates see it, plus the text helpers that become Jinja filters.

This module is deliberately standard-library only and free of Jinja and network code: it
turns the JSON of an AssemblyAI transcript (``GET /v2/transcript/{id}``) and of its
``/sentences`` and ``/paragraphs`` companions into small, frozen, typed objects, and offers
pure functions over them. The templating module registers the functions as filters.

Parsing rules (see ``assemblyai-api-notes.md`` sections 4 and 5):

* Unknown keys are ignored: the API adds undocumented keys over time.
* A key that is missing or ``null`` becomes ``None`` (or ``""`` / an empty tuple for ``text``
  and lists), because almost every field is nullable, e.g. a queued transcript has
  ``text``, ``words`` and ``utterances`` all ``null``.
* The fields that place or attribute an *item* (a word's, utterance's, sentence's or
  paragraph's ``text``, ``start`` and ``end``, and an utterance's ``speaker``) are required:
  the spec marks them non-nullable, and inventing a value (say ``start=0``) would silently
  put quotes at the wrong time.
* A present field of the wrong type raises :class:`ValueError` naming the field, e.g.
  ``transcript field 'words[3].start' must be an integer (milliseconds), got str``.

Times of words, utterances, sentences and paragraphs are integer milliseconds;
``Transcript.audio_duration`` is in seconds, as in the API.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol, TypeVar

from runner.errors import SourceUnreadable

__all__ = [
    "Paragraph",
    "Sentence",
    "SpeakerStats",
    "Transcript",
    "Utterance",
    "Window",
    "Word",
    "dialogue",
    "estimate_tokens",
    "format_timestamp",
    "parse_paragraphs",
    "parse_sentences",
    "sentence_windows",
    "sentences_from_words",
    "speaker_stats",
    "truncate_tokens",
    "word_count",
]

_T = TypeVar("_T")

# ---------------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Word:
    """One recognised word; ``start``/``end`` in ms. ``speaker`` needs speaker labels."""

    text: str
    start: int
    end: int
    confidence: float | None = None
    speaker: str | None = None
    channel: str | None = None


@dataclass(frozen=True, slots=True)
class Utterance:
    """A stretch of uninterrupted speech by one speaker (speaker labels or multichannel).

    With multichannel audio ``speaker`` and ``channel`` are ``"1"``, ``"2"``, …; with speaker
    identification the labels can be roles or names such as ``"Adjuster"``.
    """

    speaker: str
    text: str
    start: int
    end: int
    confidence: float | None = None
    words: tuple[Word, ...] = ()
    channel: str | None = None


@dataclass(frozen=True, slots=True)
class Sentence:
    """A sentence from ``/v2/transcript/{id}/sentences`` or :func:`sentences_from_words`."""

    text: str
    start: int
    end: int
    confidence: float | None = None
    speaker: str | None = None
    words: tuple[Word, ...] = ()
    # The spec's TranscriptSentence has a channel (multichannel audio); it is kept last so
    # positional construction as (text, start, end, confidence, speaker, words) still works.
    channel: str | None = None


@dataclass(frozen=True, slots=True)
class Paragraph:
    """A paragraph from ``/v2/transcript/{id}/paragraphs``. The API gives paragraphs no
    speaker: one paragraph can span several speakers."""

    text: str
    start: int
    end: int
    confidence: float | None = None
    words: tuple[Word, ...] = ()


@dataclass(frozen=True, slots=True, repr=False)
class Transcript:
    """A read-only transcript. Build it with :meth:`Transcript.from_api`.

    ``text`` is ``""`` and ``words``/``utterances`` are empty until the transcript is
    ``completed`` (and ``utterances`` stays empty without speaker labels or multichannel).
    ``raw`` is the original JSON object for fields this model does not lift; its top level
    is a read-only copy (nested lists and objects are shared with the caller's data).
    """

    id: str | None
    status: str | None
    text: str = ""
    words: tuple[Word, ...] = ()
    utterances: tuple[Utterance, ...] = ()
    confidence: float | None = None
    audio_duration: int | float | None = None
    language_code: str | None = None
    speech_model_used: str | None = None
    error: str | None = None
    # A mappingproxy is unhashable and a full transcript is huge: keep it out of eq/hash/repr.
    raw: Mapping[str, Any] = field(
        default_factory=lambda: MappingProxyType({}), compare=False, hash=False
    )

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> Transcript:
        """Build a transcript from the JSON of ``GET /v2/transcript/{id}``.

        >>> t = Transcript.from_api({"id": "x", "status": "queued", "text": None})
        >>> (t.status, t.text, t.words)
        ('queued', '', ())
        """
        fields = _Fields(_require_mapping(data, "transcript"), "transcript field ")
        return cls(
            id=fields.opt_str("id"),
            status=fields.opt_str("status"),
            text=fields.opt_str("text") or "",
            words=fields.items("words", _parse_word),
            utterances=fields.items("utterances", _parse_utterance),
            confidence=fields.opt_float("confidence"),
            audio_duration=fields.opt_number("audio_duration"),
            language_code=fields.opt_str("language_code"),
            speech_model_used=fields.opt_str("speech_model_used"),
            error=fields.opt_str("error"),
            # Copy first so later changes to the caller's dict cannot show through.
            raw=MappingProxyType(dict(data)),
        )

    @property
    def speakers(self) -> tuple[str, ...]:
        """Distinct speaker labels, from utterances or else from words; ``()`` without any.

        Numeric (multichannel) labels sort numerically, so ``"10"`` comes after ``"2"``.
        """
        labels: Iterable[str | None] = (
            (u.speaker for u in self.utterances)
            if self.utterances
            else (w.speaker for w in self.words)
        )
        return tuple(sorted({label for label in labels if label}, key=_label_sort_key))

    def __repr__(self) -> str:
        # The generated repr would print every word; a summary is what a log line needs.
        return (
            f"Transcript(id={self.id!r}, status={self.status!r}, words={len(self.words)}, "
            f"utterances={len(self.utterances)}, audio_duration={self.audio_duration!r})"
        )


def parse_sentences(data: Mapping[str, Any]) -> tuple[Sentence, ...]:
    """Sentences from the ``GET /v2/transcript/{id}/sentences`` envelope.

    >>> parse_sentences({"id": "x", "sentences": [{"text": "Hi.", "start": 0, "end": 300}]})
    (Sentence(text='Hi.', start=0, end=300, confidence=None, speaker=None, words=(), channel=None),)
    """
    fields = _Fields(_require_mapping(data, "sentences response"), "sentences response field ")
    return fields.items("sentences", _parse_sentence)


def parse_paragraphs(data: Mapping[str, Any]) -> tuple[Paragraph, ...]:
    """Paragraphs from the ``GET /v2/transcript/{id}/paragraphs`` envelope.

    >>> parse_paragraphs({"id": "x", "paragraphs": None})
    ()
    """
    fields = _Fields(_require_mapping(data, "paragraphs response"), "paragraphs response field ")
    return fields.items("paragraphs", _parse_paragraph)


# ---------------------------------------------------------------------------------------------
# Field parsing
# ---------------------------------------------------------------------------------------------


def _require_mapping(data: object, what: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise ValueError(f"{what} must be a JSON object, got {_type_name(data)}")
    return data


def _type_name(value: object) -> str:
    return "null" if value is None else type(value).__name__


class _Fields:
    """Typed, null-tolerant access to one JSON object; ``prefix`` + ``path`` name the field
    in errors (``"transcript field 'words[3].start'"``)."""

    __slots__ = ("data", "path", "prefix")

    def __init__(self, data: Mapping[str, Any], prefix: str, path: str = "") -> None:
        self.data = data
        self.prefix = prefix
        self.path = path

    def _error(self, key: str, expected: str, value: object) -> ValueError:
        return ValueError(
            f"{self.prefix}'{self.path}{key}' must be {expected}, got {_type_name(value)}"
        )

    def opt_str(self, key: str) -> str | None:
        value = self.data.get(key)
        if value is None or isinstance(value, str):
            return value
        raise self._error(key, "a string", value)

    def req_str(self, key: str) -> str:
        value = self.data.get(key)
        if isinstance(value, str):
            return value
        raise self._error(key, "a string", value)

    def opt_number(self, key: str) -> int | float | None:
        value = self.data.get(key)
        # bool is an int subclass, but `true` is never a meaningful duration or score.
        if value is None or (isinstance(value, int | float) and not isinstance(value, bool)):
            return value
        raise self._error(key, "a number", value)

    def opt_float(self, key: str) -> float | None:
        value = self.opt_number(key)
        return None if value is None else float(value)

    def req_ms(self, key: str) -> int:
        value = self.data.get(key)
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise self._error(key, "an integer (milliseconds)", value)
        # The spec says integer; tolerate 250.0 from re-serialised JSON, floor like the API.
        return int(value)

    def items(self, key: str, parse: Callable[[_Fields], _T]) -> tuple[_T, ...]:
        value = self.data.get(key)
        if value is None:
            return ()
        if not isinstance(value, list | tuple):
            raise self._error(key, "a list", value)
        return tuple(parse(self._child(f"{key}[{i}]", item)) for i, item in enumerate(value))

    def _child(self, key: str, item: object) -> _Fields:
        if not isinstance(item, Mapping):
            raise self._error(key, "an object", item)
        return _Fields(item, self.prefix, f"{self.path}{key}.")


def _parse_word(f: _Fields) -> Word:
    return Word(
        text=f.req_str("text"),
        start=f.req_ms("start"),
        end=f.req_ms("end"),
        confidence=f.opt_float("confidence"),
        speaker=f.opt_str("speaker"),
        channel=f.opt_str("channel"),
    )


def _parse_utterance(f: _Fields) -> Utterance:
    return Utterance(
        speaker=f.req_str("speaker"),
        text=f.req_str("text"),
        start=f.req_ms("start"),
        end=f.req_ms("end"),
        confidence=f.opt_float("confidence"),
        words=f.items("words", _parse_word),
        channel=f.opt_str("channel"),
    )


def _parse_sentence(f: _Fields) -> Sentence:
    return Sentence(
        text=f.req_str("text"),
        start=f.req_ms("start"),
        end=f.req_ms("end"),
        confidence=f.opt_float("confidence"),
        speaker=f.opt_str("speaker"),
        words=f.items("words", _parse_word),
        channel=f.opt_str("channel"),
    )


def _parse_paragraph(f: _Fields) -> Paragraph:
    return Paragraph(
        text=f.req_str("text"),
        start=f.req_ms("start"),
        end=f.req_ms("end"),
        confidence=f.opt_float("confidence"),
        words=f.items("words", _parse_word),
    )


def _label_sort_key(label: str) -> tuple[int, int, str]:
    # "A" < "B" for diarization, but "2" < "10" for multichannel channel numbers.
    return (0, int(label), "") if label.isdecimal() else (1, 0, label)


# ---------------------------------------------------------------------------------------------
# Sentences
# ---------------------------------------------------------------------------------------------

# Closing quotes and brackets may follow the terminal mark: `me."` still ends a sentence.
_SENTENCE_END = re.compile(r"[.?!][\"'”’)\]]*$")


def sentences_from_words(words: Iterable[Word]) -> tuple[Sentence, ...]:
    """Split words into sentences locally: after a word ending in ``.``, ``?`` or ``!``
    (optionally followed by closing quotes or brackets), and wherever the speaker or
    channel changes.

    This is an offline fallback. Prefer the API's own segmentation
    (``/v2/transcript/{id}/sentences`` via :func:`parse_sentences`) when it is stored: it
    knows about abbreviations such as "Dr." or "U.S.", which split here, and it does not
    depend on punctuation (with ``punctuate: false`` this yields one sentence per speaker
    turn). A sentence's confidence is the mean of its words' confidences.

    >>> ws = [Word("Hi.", 0, 200), Word("Bye", 300, 500), Word("now!", 500, 800)]
    >>> [(s.text, s.start, s.end) for s in sentences_from_words(ws)]
    [('Hi.', 0, 200), ('Bye now!', 300, 800)]
    """
    sentences: list[Sentence] = []
    current: list[Word] = []
    for word in words:
        if current and _turn_changed(current[-1], word):
            sentences.append(_sentence_of(current))
            current = []
        current.append(word)
        if _SENTENCE_END.search(word.text):
            sentences.append(_sentence_of(current))
            current = []
    if current:
        sentences.append(_sentence_of(current))
    return tuple(sentences)


def paragraphs_from_sentences(
    sentences: Sequence[Sentence], size: int = 5
) -> tuple[Paragraph, ...]:
    """Group sentences into paragraphs of ``size``: an offline stand-in for the API's own.

    >>> paragraphs_from_sentences(())
    ()
    """
    if size < 1:
        raise ValueError(f"size must be at least 1, got {size}")
    groups = [sentences[i : i + size] for i in range(0, len(sentences), size)]
    return tuple(
        Paragraph(
            text=" ".join(s.text for s in group),
            start=group[0].start,
            end=group[-1].end,
            confidence=_mean([s.confidence for s in group]),
            words=tuple(w for s in group for w in s.words),
        )
        for group in groups
    )


def _mean(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def load_saved(path: Path) -> Transcript:
    """A transcript saved as the JSON of GET /v2/transcript/{id}.

    Raises :class:`SourceUnreadable` saying what is wrong with the file.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except OSError as exc:
        raise SourceUnreadable(f"cannot read {path}: {exc.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SourceUnreadable(f"{path} is not JSON: {exc}") from None
    if not isinstance(data, Mapping):
        raise SourceUnreadable(f"{path} is not a saved transcript (expected a JSON object)")
    if data.get("status") not in (None, "completed"):
        raise SourceUnreadable(
            f"{path} holds a transcript with status {data.get('status')!r}; "
            "only completed transcripts can be used"
        )
    if not isinstance(data.get("text"), str) and not data.get("words"):
        raise SourceUnreadable(
            f"{path} has no 'text' or 'words': is it a GET /v2/transcript response?"
        )
    try:
        return Transcript.from_api(data)
    except ValueError as exc:
        raise SourceUnreadable(f"{path}: {exc}") from None


def _turn_changed(previous: Word, word: Word) -> bool:
    # The API never attributes one sentence to two speakers; neither do we.
    return (previous.speaker, previous.channel) != (word.speaker, word.channel)


def _sentence_of(words: Sequence[Word]) -> Sentence:
    scores = [w.confidence for w in words if w.confidence is not None]
    return Sentence(
        text=" ".join(w.text for w in words),
        start=words[0].start,
        end=words[-1].end,
        confidence=sum(scores) / len(scores) if scores else None,
        speaker=words[0].speaker,
        words=tuple(words),
        channel=words[0].channel,
    )


# ---------------------------------------------------------------------------------------------
# Timestamps and dialogue
# ---------------------------------------------------------------------------------------------

_TIMESTAMP_STYLES = ("clock", "srt", "vtt", "short")


def format_timestamp(ms: int | float | None, style: str = "clock") -> str:
    """Format a time in milliseconds. Fractions are floored, never rounded up, so a
    timestamp never points past the moment it labels.

    Styles: ``clock`` ``HH:MM:SS``, ``srt`` ``HH:MM:SS,mmm``, ``vtt`` ``HH:MM:SS.mmm``,
    ``short`` ``M:SS`` (``H:MM:SS`` from one hour on).

    >>> format_timestamp(83_999)
    '00:01:23'
    >>> format_timestamp(3_723_456, "srt"), format_timestamp(3_723_456, "vtt")
    ('01:02:03,456', '01:02:03.456')
    >>> format_timestamp(83_999, "short"), format_timestamp(3_723_456, "short")
    ('1:23', '1:02:03')

    Raises :class:`ValueError` for ``None``, negative or non-finite times and unknown styles,
    :class:`TypeError` for non-numbers.
    """
    total_ms = _whole_ms(ms)
    if style not in _TIMESTAMP_STYLES:
        raise ValueError(
            f"format_timestamp: unknown style {style!r}; use one of {', '.join(_TIMESTAMP_STYLES)}"
        )
    hours, rest = divmod(total_ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    if style == "srt":
        return f"{hours:02d}:{minutes:02d}:{seconds:02d},{millis:03d}"
    if style == "vtt":
        return f"{hours:02d}:{minutes:02d}:{seconds:02d}.{millis:03d}"
    if style == "short":
        return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}"


def _whole_ms(ms: object) -> int:
    if ms is None:
        raise ValueError("format_timestamp: time is missing (None); expected milliseconds >= 0")
    if isinstance(ms, bool) or not isinstance(ms, int | float):
        raise TypeError(
            f"format_timestamp: expected milliseconds as a number, got {_type_name(ms)}"
        )
    if not math.isfinite(ms) or ms < 0:
        raise ValueError(f"format_timestamp: time must be a finite number of ms >= 0, got {ms!r}")
    return math.floor(ms)


class _Spoken(Protocol):
    """Anything with a speaker, a start and a text: utterances, and sentences too."""

    @property
    def speaker(self) -> str | None: ...
    @property
    def start(self) -> int: ...
    @property
    def text(self) -> str: ...


def dialogue(
    utterances: Iterable[_Spoken],
    *,
    timestamps: bool = True,
    speaker_names: Mapping[str, str] | None = None,
) -> str:
    """Render utterances one per line as ``Speaker A [00:00:12]: text``.

    ``speaker_names`` maps labels to names (``{"A": "Alice"}`` gives ``Alice [00:00:12]: …``);
    unmapped labels stay ``Speaker <label>``. Multichannel labels ``"1"``, ``"2"`` therefore
    render as ``Speaker 1``, ``Speaker 2`` (not "Channel 1"): name them with
    ``speaker_names={"1": "Agent", "2": "Customer"}``. An item without a speaker (e.g. a
    sentence of an undiarized transcript) renders as ``Unknown speaker``. The API's own
    ``{{ transcript }}`` injection has no speakers at all, which is why this exists.

    >>> us = [Utterance("A", "Hello.", 12_000, 13_000), Utterance("B", "Hi!", 13_500, 14_000)]
    >>> print(dialogue(us, speaker_names={"A": "Alice"}))
    Alice [00:00:12]: Hello.
    Speaker B [00:00:13]: Hi!
    >>> dialogue(us, timestamps=False).splitlines()[0]
    'Speaker A: Hello.'
    """
    names = speaker_names or {}
    lines = []
    for item in utterances:
        label = _speaker_label(item.speaker, names)
        stamp = f" [{format_timestamp(item.start)}]" if timestamps else ""
        lines.append(f"{label}{stamp}: {item.text}")
    return "\n".join(lines)


def _speaker_label(speaker: str | None, names: Mapping[str, str]) -> str:
    if speaker is None:
        return "Unknown speaker"
    return names.get(speaker, f"Speaker {speaker}")


@dataclass(frozen=True, slots=True)
class SpeakerStats:
    """Per-speaker totals from :func:`speaker_stats`."""

    speaker: str
    utterances: int
    words: int
    talk_time_ms: int


def speaker_stats(utterances: Iterable[Utterance]) -> dict[str, SpeakerStats]:
    """Utterance count, word count and talk time (sum of ``end - start``) per speaker,
    ordered by speaker label. Words are counted from ``words`` when present, else from text.

    >>> us = [Utterance("A", "one two", 0, 1000), Utterance("B", "three", 1000, 1500)]
    >>> speaker_stats(us)["A"]
    SpeakerStats(speaker='A', utterances=1, words=2, talk_time_ms=1000)
    """
    totals: dict[str, tuple[int, int, int]] = {}
    for u in utterances:
        count, words, talk = totals.get(u.speaker, (0, 0, 0))
        n_words = len(u.words) if u.words else word_count(u.text)
        # max(): a malformed utterance with end < start must not subtract talk time.
        totals[u.speaker] = (count + 1, words + n_words, talk + max(0, u.end - u.start))
    return {
        label: SpeakerStats(label, *totals[label]) for label in sorted(totals, key=_label_sort_key)
    }


# ---------------------------------------------------------------------------------------------
# Sentence windows
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Window:
    """Consecutive sentences: ``text`` joined by spaces, ``start`` of the first and ``end``
    of the last sentence (ms), and ``index``, the window's position in the list."""

    text: str
    start: int
    end: int
    sentences: tuple[Sentence, ...]
    index: int


def sentence_windows(
    sentences: Sequence[Sentence], size: int = 5, overlap: int = 2
) -> list[Window]:
    """Sliding windows of ``size`` sentences, each sharing ``overlap`` with the previous one.

    Windows step by ``size - overlap``. Unlike the cookbook's ``sliding_window`` (which loops
    ``while idx + distance < len(elements)`` and so drops the last full window, and returns
    nothing for ``size`` sentences or fewer) every sentence is covered: when the stepped
    windows stop short of the end, one more window ending at the last sentence is added
    (it may overlap its predecessor by more than ``overlap``). Fewer than ``size``
    sentences give a single window; none give ``[]``.

    >>> ss = [Sentence(f"S{i}.", i * 1000, i * 1000 + 900) for i in range(6)]
    >>> [(w.text, w.start, w.end) for w in sentence_windows(ss, size=3, overlap=1)]
    [('S0. S1. S2.', 0, 2900), ('S2. S3. S4.', 2000, 4900), ('S3. S4. S5.', 3000, 5900)]
    """
    _check_window_params(size, overlap)
    items = tuple(sentences)
    return [
        _window(items[first : first + size], index)
        for index, first in enumerate(_window_starts(len(items), size, size - overlap))
    ]


def _check_window_params(size: int, overlap: int) -> None:
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"sentence_windows: size must be an integer >= 1, got {size!r}")
    if isinstance(overlap, bool) or not isinstance(overlap, int) or not 0 <= overlap < size:
        raise ValueError(
            f"sentence_windows: overlap must be an integer with 0 <= overlap < size ({size}), "
            f"got {overlap!r}"
        )


def _window_starts(count: int, size: int, step: int) -> list[int]:
    if count == 0:
        return []
    if count <= size:
        return [0]
    starts = list(range(0, count - size + 1, step))
    if starts[-1] + size < count:
        starts.append(count - size)
    return starts


def _window(sentences: tuple[Sentence, ...], index: int) -> Window:
    return Window(
        text=" ".join(s.text for s in sentences),
        start=sentences[0].start,
        end=sentences[-1].end,
        sentences=sentences,
        index=index,
    )


# ---------------------------------------------------------------------------------------------
# Token estimates and truncation
# ---------------------------------------------------------------------------------------------


def word_count(text: str) -> int:
    """Number of whitespace-separated words.

    >>> word_count("  Smoke from   hundreds\\nof wildfires ")
    5
    """
    return len(text.split())


def estimate_tokens(text: str) -> int:
    """Estimate the LLM tokens of ``text`` without a tokenizer (none is available offline).

    Heuristic: ``max(ceil(chars / 4), ceil(words * 4 / 3)) + wide``, where ``wide`` counts
    East Asian wide characters (one token each) and ``chars``/``words`` are measured on the
    rest. The two halves are the usual published rules of thumb for English with BPE
    tokenizers such as OpenAI's cl100k/o200k: about 4 characters, or 0.75 words, per token.
    Taking the larger errs towards over-estimating, the safe side for a budget.

    Error band (from those rules of thumb; not measured against a real tokenizer here):
    ordinary English prose and transcripts land within roughly -10 % to +25 % of the real
    count. Text dense in digits, symbols, code or URLs, and alphabetic non-Latin scripts
    (Cyrillic, Greek, Devanagari, …) can be under-counted by 2x or more; Chinese, Japanese
    and Korean are roughly right thanks to the ``wide`` term. Other LLM families' tokenizers
    differ by a further 10-30 %. Keep a margin below hard context limits.

    The estimate is 0 for ``""`` and never decreases when text is appended or prepended.

    >>> estimate_tokens(""), estimate_tokens("Smoke from hundreds of wildfires in Canada")
    (0, 11)
    """
    # isascii() is a fast path: a transcript of a few hundred kB is estimated repeatedly
    # by truncate_tokens' binary search.
    if not text.isascii():
        # Wide characters are counted apart; blanking them keeps a run of CJK text from
        # also counting as a "word".
        text, wide = _blank_wide(text)
    else:
        wide = 0
    by_chars = -(-(len(text) - wide) // 4)
    by_words = -(-(word_count(text) * 4) // 3)
    return max(by_chars, by_words) + wide


def _blank_wide(text: str) -> tuple[str, int]:
    """``text`` with East Asian wide characters replaced by spaces, and how many there were."""
    chars = list(text)
    wide = 0
    for i, ch in enumerate(chars):
        if unicodedata.east_asian_width(ch) in ("W", "F"):
            chars[i] = " "
            wide += 1
    return "".join(chars), wide


_DEFAULT_MARKER = "\n[… transcript truncated: {omitted} of {total} estimated tokens omitted …]\n"
_WORD = re.compile(r"\S+")


def truncate_tokens(
    text: str,
    budget: int,
    marker: str = _DEFAULT_MARKER,
    *,
    keep: str = "head",
) -> str:
    """Shorten ``text`` on word boundaries so its :func:`estimate_tokens` (not counting the
    marker) fits ``budget``; text already within budget is returned unchanged.

    ``keep="head"`` keeps the beginning and appends ``marker``; ``"tail"`` keeps the end and
    prepends it; ``"middle"`` keeps the beginning and the end (about half the budget each)
    with the marker between them. ``{omitted}`` and ``{total}`` in the marker are replaced
    by estimated token counts (other braces are left alone). If not even one word fits, only
    the marker remains.

    >>> truncate_tokens("one two three four five six", 4, " […]")
    'one two three […]'
    >>> truncate_tokens("one two three four five six", 6, " … ", keep="middle")
    'one two … five six'
    """
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise ValueError(f"truncate_tokens: budget must be an integer >= 1, got {budget!r}")
    if keep not in ("head", "middle", "tail"):
        raise ValueError(f"truncate_tokens: keep must be 'head', 'middle' or 'tail', got {keep!r}")
    total = estimate_tokens(text)
    if total <= budget:
        return text
    spans = [m.span() for m in _WORD.finditer(text)]
    if keep == "head":
        head = _head(text, spans, budget)
        return head + _render_marker(marker, total, head)
    if keep == "tail":
        tail = _tail(text, spans, budget, 0)
        return _render_marker(marker, total, tail) + tail
    head = _head(text, spans, budget - budget // 2)
    # The tail gets whatever the head left over; it cannot overlap the head (see _tail).
    tail = _tail(text, spans, budget - estimate_tokens(head), len(head))
    return head + _render_marker(marker, total, head + tail) + tail


def _head(text: str, spans: list[tuple[int, int]], budget: int) -> str:
    """Longest prefix ending at a word end whose estimate fits; binary search is valid
    because the estimate of a prefix grows with its length."""
    low, high = 0, len(spans)  # number of words kept
    while low < high:
        mid = (low + high + 1) // 2
        if estimate_tokens(text[: spans[mid - 1][1]]) <= budget:
            low = mid
        else:
            high = mid - 1
    return text[: spans[low - 1][1]] if low else ""


def _tail(text: str, spans: list[tuple[int, int]], budget: int, not_before: int) -> str:
    """Longest suffix starting at a word start (at or after ``not_before``) that fits."""
    # Estimates are subadditive, so when the whole text is over budget a fitting head and a
    # fitting tail can never meet; the bound only makes that explicit.
    low, high = 0, len(spans)  # index of the first word kept; len(spans) keeps nothing
    while low < high:
        mid = (low + high) // 2
        start = spans[mid][0]
        if start >= not_before and estimate_tokens(text[start:]) <= budget:
            high = mid
        else:
            low = mid + 1
    return text[spans[low][0] :] if low < len(spans) else ""


def _render_marker(marker: str, total: int, kept: str) -> str:
    omitted = max(0, total - estimate_tokens(kept))
    # str.replace rather than str.format: a user's marker may contain other braces.
    return marker.replace("{omitted}", str(omitted)).replace("{total}", str(total))


def _text_of(segment: Word | Utterance | Sentence | Paragraph) -> str:
    return segment.text


# In a prompt, a word, utterance, sentence or paragraph prints as its text, never
# as a Python representation.
for _segment in (Word, Utterance, Sentence, Paragraph):
    _segment.__str__ = _text_of  # type: ignore[assignment,method-assign]
