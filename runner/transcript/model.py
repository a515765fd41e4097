"""The transcript as prompt templates see it, plus the text helpers that become Jinja filters.

This module is free of Jinja and network code (msgspec decodes bodies): it
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
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

import msgspec

from runner.errors import SourceUnreadable

__all__ = [
    "Paragraph",
    "Sentence",
    "Transcript",
    "Utterance",
    "Word",
    "ends_sentence",
    "parse_paragraphs",
    "parse_sentences",
    "sentences_from_words",
]

_T = TypeVar("_T")

# ---------------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------------


class _Head(msgspec.Struct):
    """The top-level fields a transcript lifts. Decoding a body into it skips the word
    lists without building them: 0.06 ms for a 90 kB transcript, where decoding it
    whole takes 0.28 ms and leaves thousands of objects for the garbage collector.
    Types are checked afterwards by :class:`_Fields`, which names the field."""

    id: Any = None
    status: Any = None
    text: Any = None
    confidence: Any = None
    audio_duration: Any = None
    language_code: Any = None
    speech_model_used: Any = None
    error: Any = None


_HEAD = msgspec.json.Decoder(_Head)


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
    """A read-only transcript. Build it with :meth:`from_api` (a decoded body) or
    :meth:`from_body` (the bytes received).

    ``text`` is ``""`` and ``words``/``utterances`` are empty until the transcript is
    ``completed`` (and ``utterances`` stays empty without speaker labels or multichannel).

    Words and utterances are parsed on first use: most prompts read only the text, and
    parsing ~1,000 word objects was the heaviest step of an item. A transcript built
    :meth:`from_body` keeps only the compact bytes received (about a fifth of the
    decoded JSON's memory) and decodes them again when words, utterances or ``raw`` are
    read. Call :meth:`parse_segments` to parse (and check) them up front, where a
    malformed body can be reported as the API's fault.
    """

    id: str | None
    status: str | None
    text: str = ""
    confidence: float | None = None
    audio_duration: int | float | None = None
    language_code: str | None = None
    speech_model_used: str | None = None
    error: str | None = None
    # The JSON as received (``from_body``), or the decoded object (``from_api``). Both
    # are huge: kept out of eq/hash/repr.
    body: bytes | None = field(default=None, compare=False, hash=False)
    data: Mapping[str, Any] | None = field(default=None, compare=False, hash=False)
    _segments: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> Transcript:
        """Build a transcript from the JSON of ``GET /v2/transcript/{id}``.

        >>> t = Transcript.from_api({"id": "x", "status": "queued", "text": None})
        >>> (t.status, t.text, t.words)
        ('queued', '', ())
        """
        fields = _Fields(_require_mapping(data, "transcript"), "transcript field ")
        # Copy first so later changes to the caller's dict cannot show through.
        return cls._of(fields, data=MappingProxyType(dict(data)))

    @classmethod
    def from_body(cls, body: bytes) -> Transcript:
        """Build a transcript from the bytes of ``GET /v2/transcript/{id}``, keeping
        those bytes (not the decoded object) for words, utterances and ``raw``.

        >>> Transcript.from_body(b'{"id": "x", "status": "completed", "text": "Hi."}').text
        'Hi.'
        """
        try:
            head = _HEAD.decode(body)
        except msgspec.ValidationError:  # JSON, but not an object
            raise ValueError("transcript must be a JSON object") from None
        except msgspec.DecodeError as exc:
            raise ValueError(f"transcript body is not JSON: {exc}") from None
        fields = _Fields(msgspec.structs.asdict(head), "transcript field ")
        return cls._of(fields, body=body)

    @classmethod
    def of_segments(
        cls,
        words: tuple[Word, ...],
        utterances: tuple[Utterance, ...] = (),
        **fields: Any,
    ) -> Transcript:
        """A transcript made from parsed words and utterances (samples, local engines)."""
        return cls(**fields, _segments={"all": (words, utterances)})

    @classmethod
    def _of(
        cls, fields: _Fields, *, body: bytes | None = None, data: Mapping[str, Any] | None = None
    ) -> Transcript:
        return cls(
            id=fields.opt_str("id"),
            status=fields.opt_str("status"),
            text=fields.opt_str("text") or "",
            confidence=fields.opt_float("confidence"),
            audio_duration=fields.opt_number("audio_duration"),
            language_code=fields.opt_str("language_code"),
            speech_model_used=fields.opt_str("speech_model_used"),
            error=fields.opt_str("error"),
            body=body,
            data=data,
        )

    @property
    def raw(self) -> Mapping[str, Any]:
        """The original JSON object, for fields this model does not lift (read-only at
        its top level; decoded again on each read when built :meth:`from_body`)."""
        if self.data is not None:
            return self.data
        if self.body is None:
            return MappingProxyType({})
        decoded: dict[str, Any] = msgspec.json.decode(self.body)
        return MappingProxyType(decoded)

    @property
    def words(self) -> tuple[Word, ...]:
        return self.parse_segments()[0]

    @property
    def utterances(self) -> tuple[Utterance, ...]:
        return self.parse_segments()[1]

    def parse_segments(self) -> tuple[tuple[Word, ...], tuple[Utterance, ...]]:
        """Words and utterances, parsed once; :class:`ValueError` names a malformed field."""
        parsed: tuple[tuple[Word, ...], tuple[Utterance, ...]] | None = self._segments.get("all")
        if parsed is None:
            fields = _Fields(self.raw, "transcript field ")
            parsed = (
                fields.words("words"),
                fields.items("utterances", _parse_utterance),
            )
            self._segments["all"] = parsed
        return parsed

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
        return tuple(sorted({label for label in labels if label}, key=speaker_sort_key))

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
        raise ValueError(f"{what} must be a JSON object, got {type_name(data)}")
    return data


def type_name(value: object) -> str:
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
            f"{self.prefix}'{self.path}{key}' must be {expected}, got {type_name(value)}"
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

    def words(self, key: str) -> tuple[Word, ...]:
        """``items(key, _parse_word)``, with each word of the usual shape made at once:
        a transcript has thousands, and checking each field in turn took most of the
        time of reading one. Any other word is parsed field by field, as before, so
        what is refused is refused with the same message."""
        value = self.data.get(key)
        if not isinstance(value, list | tuple):
            return self.items(key, _parse_word)
        parsed = []
        for index, item in enumerate(value):
            word = _usual_word(item)
            if word is None:
                word = _parse_word(self._child(f"{key}[{index}]", item))
            parsed.append(word)
        return tuple(parsed)

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


def _usual_word(item: object) -> Word | None:
    """The word :func:`_parse_word` makes of ``item`` when every field has its usual
    type (text a string, integer times, a float or no confidence, a string or no
    speaker and channel); None for anything else."""
    if type(item) is not dict:
        return None
    text, start, end = item.get("text"), item.get("start"), item.get("end")
    if type(text) is not str or type(start) is not int or type(end) is not int:
        return None
    confidence = item.get("confidence")
    if type(confidence) is int:
        confidence = float(confidence)
    elif confidence is not None and type(confidence) is not float:
        return None
    speaker, channel = item.get("speaker"), item.get("channel")
    if (speaker is not None and type(speaker) is not str) or (
        channel is not None and type(channel) is not str
    ):
        return None
    return Word(text, start, end, confidence, speaker, channel)


def _parse_utterance(f: _Fields) -> Utterance:
    return Utterance(
        speaker=f.req_str("speaker"),
        text=f.req_str("text"),
        start=f.req_ms("start"),
        end=f.req_ms("end"),
        confidence=f.opt_float("confidence"),
        words=f.words("words"),
        channel=f.opt_str("channel"),
    )


def _parse_sentence(f: _Fields) -> Sentence:
    return Sentence(
        text=f.req_str("text"),
        start=f.req_ms("start"),
        end=f.req_ms("end"),
        confidence=f.opt_float("confidence"),
        speaker=f.opt_str("speaker"),
        words=f.words("words"),
        channel=f.opt_str("channel"),
    )


def _parse_paragraph(f: _Fields) -> Paragraph:
    return Paragraph(
        text=f.req_str("text"),
        start=f.req_ms("start"),
        end=f.req_ms("end"),
        confidence=f.opt_float("confidence"),
        words=f.words("words"),
    )


def speaker_sort_key(label: str) -> tuple[int, int, str]:
    # "A" < "B" for diarization, but "2" < "10" for multichannel channel numbers.
    return (0, int(label), "") if label.isdecimal() else (1, 0, label)


# ---------------------------------------------------------------------------------------------
# Sentences
# ---------------------------------------------------------------------------------------------

# Closing quotes and brackets may follow the terminal mark: `me."` still ends a sentence.
_SENTENCE_END = re.compile(r"[.?!][\"'”’)\]]*$")


def ends_sentence(word: str) -> bool:
    """Whether a word ends its sentence (``.``, ``?`` or ``!``, then perhaps closing
    quotes or brackets): where the transcript's own sentences end, offline."""
    return _SENTENCE_END.search(word) is not None


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
        if ends_sentence(word.text):
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
    except RecursionError:
        raise SourceUnreadable(
            f"{path} nests its JSON thousands of levels deep; it is not a saved transcript"
        ) from None
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
        transcript = Transcript.from_api(data)
        transcript.parse_segments()  # a malformed word is the file's fault, said now
    except ValueError as exc:
        raise SourceUnreadable(f"{path}: {exc}") from None
    return transcript


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


def _text_of(segment: Word | Utterance | Sentence | Paragraph) -> str:
    return segment.text


# In a prompt, a word, utterance, sentence or paragraph prints as its text, never
# as a Python representation.
for _segment in (Word, Utterance, Sentence, Paragraph):
    _segment.__str__ = _text_of  # type: ignore[assignment,method-assign]
