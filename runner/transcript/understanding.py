"""AssemblyAI's speech understanding results of a transcript, as templates see them.

A transcription asked with ``entity_detection``, ``sentiment_analysis``,
``auto_chapters``, ``auto_highlights``, ``summarization``, ``redact_pii`` or
``speech_understanding.request.translation`` comes back with their results in the
transcript's own JSON (the spec's ``Transcript``): ``entities``,
``sentiment_analysis_results``, ``chapters``, ``auto_highlights_result``, ``summary``,
``unredacted_text`` and ``translated_texts``. They are read from it here, on first
use, under the names templates use (``transcript.entities``,
``transcript.sentiment_analysis``, ``transcript.chapters``, ``transcript.key_phrases``,
``transcript.summary``, ``transcript.redacted``, ``transcript.unredacted_text``,
``transcript.translations``). A result the transcription did not ask for is empty.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from runner.transcript.model import _Fields


@dataclass(frozen=True, slots=True)
class Entity:
    """A detected entity (``entity_detection``); times in ms."""

    entity_type: str  # location, person_name, organization, date... (the spec's EntityType)
    text: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class SentimentResult:
    """One sentence's sentiment (``sentiment_analysis``): POSITIVE, NEUTRAL or NEGATIVE."""

    text: str
    start: int
    end: int
    sentiment: str
    confidence: float | None = None
    speaker: str | None = None
    channel: str | None = None


@dataclass(frozen=True, slots=True)
class Chapter:
    """A chapter of the recording (``auto_chapters``)."""

    gist: str  # a few words
    headline: str  # one sentence
    summary: str  # one paragraph
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Timestamp:
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class KeyPhrase:
    """A key phrase (``auto_highlights``): how often it was said, its rank and when."""

    text: str
    count: int | None
    rank: float | None
    timestamps: tuple[Timestamp, ...] = ()


@dataclass(frozen=True, slots=True)
class Understanding:
    """Every speech understanding result of one transcript (empty when not asked for)."""

    entities: tuple[Entity, ...] = ()
    sentiment_analysis: tuple[SentimentResult, ...] = ()
    chapters: tuple[Chapter, ...] = ()
    key_phrases: tuple[KeyPhrase, ...] = ()
    summary: str | None = None
    redacted: bool = False  # `text` has its PII replaced (redact_pii)
    unredacted_text: str | None = None  # redact_pii_return_unredacted: the text as said
    translations: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


# The sample meeting's results (runner.prompt.views.sample_transcript_view), in
# AssemblyAI's own shapes (the spec's Transcript): what `validate` renders prompts with.
SAMPLE_RESULTS: Mapping[str, Any] = {
    "entities": [
        {"entity_type": "date", "text": "June", "start": 5650, "end": 6100},
        {"entity_type": "date", "text": "Friday", "start": 11300, "end": 12000},
    ],
    "sentiment_analysis_results": [
        {
            "text": "Thanks for joining.",
            "start": 0,
            "end": 1800,
            "sentiment": "POSITIVE",
            "confidence": 0.91,
            "speaker": "A",
        },
        {
            "text": "The launch moves to June.",
            "start": 4300,
            "end": 6100,
            "sentiment": "NEUTRAL",
            "confidence": 0.84,
            "speaker": "B",
        },
        {
            "text": "Marketing needs the final copy.",
            "start": 6100,
            "end": 9100,
            "sentiment": "NEGATIVE",
            "confidence": 0.62,
            "speaker": "B",
        },
    ],
    "chapters": [
        {
            "gist": "The launch plan",
            "headline": "The launch moves to June, and marketing needs the final copy by Friday.",
            "summary": "The team reviews the launch plan: it "
            "moves to June, and the final copy is due on Friday.",
            "start": 0,
            "end": 12000,
        },
    ],
    "auto_highlights_result": {
        "status": "success",
        "results": [
            {
                "count": 2,
                "rank": 0.09,
                "text": "final copy",
                "timestamps": [{"start": 7300, "end": 9100}, {"start": 10900, "end": 11300}],
            },
            {
                "count": 1,
                "rank": 0.07,
                "text": "launch plan",
                "timestamps": [{"start": 3000, "end": 4200}],
            },
        ],
    },
    "summary": "- The launch moves to June.\n- The final copy is due on Friday.",
    "redact_pii": False,
    "unredacted_text": None,
    "translated_texts": {"es": "Gracias por venir. Repasemos el plan de lanzamiento."},
}


def understanding_of(raw: Mapping[str, Any]) -> Understanding:
    """The results in a transcript's JSON; :class:`ValueError` names a malformed field."""
    fields = _Fields(raw, "transcript field ")
    highlights = raw.get("auto_highlights_result")
    if highlights is not None and not isinstance(highlights, Mapping):
        raise ValueError("transcript field 'auto_highlights_result' must be an object")
    phrases = _Fields(highlights or {}, "transcript field ", "auto_highlights_result.")
    return Understanding(
        entities=fields.items("entities", _entity),
        sentiment_analysis=fields.items("sentiment_analysis_results", _sentiment),
        chapters=fields.items("chapters", _chapter),
        key_phrases=phrases.items("results", _key_phrase),
        summary=fields.opt_str("summary"),
        redacted=raw.get("redact_pii") is True,
        unredacted_text=fields.opt_str("unredacted_text"),
        translations=MappingProxyType(_translations(raw.get("translated_texts"))),
    )


def _entity(f: _Fields) -> Entity:
    return Entity(f.req_str("entity_type"), f.req_str("text"), f.req_ms("start"), f.req_ms("end"))


def _sentiment(f: _Fields) -> SentimentResult:
    return SentimentResult(
        text=f.req_str("text"),
        start=f.req_ms("start"),
        end=f.req_ms("end"),
        sentiment=f.req_str("sentiment"),
        confidence=f.opt_float("confidence"),
        speaker=f.opt_str("speaker"),
        channel=f.opt_str("channel"),
    )


def _chapter(f: _Fields) -> Chapter:
    return Chapter(
        gist=f.req_str("gist"),
        headline=f.req_str("headline"),
        summary=f.req_str("summary"),
        start=f.req_ms("start"),
        end=f.req_ms("end"),
    )


def _key_phrase(f: _Fields) -> KeyPhrase:
    count = f.opt_number("count")
    return KeyPhrase(
        text=f.req_str("text"),
        count=int(count) if count is not None else None,
        rank=f.opt_float("rank"),
        timestamps=f.items("timestamps", lambda t: Timestamp(t.req_ms("start"), t.req_ms("end"))),
    )


def _translations(value: Any) -> dict[str, str]:
    """``translated_texts``: text by language code (the spec's Transcript)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ValueError("transcript field 'translated_texts' must map language codes to text")
    return dict(value)
