"""A transcript's sentences and paragraphs, where they come from, and the view templates see.

AssemblyAI splits a transcript into sentences and paragraphs of its own (served apart
from the transcript, at ``/sentences`` and ``/paragraphs``); the runner can also work
them out from the words. The two splits differ, so a prompt built on one is not the
prompt built on the other. ``run``, ``plan`` and ``render`` therefore follow one rule,
part by part, and build the view here:

1. **kept**: the state store holds AssemblyAI's split (a run fetched it): it is used;
2. **fetched**: else, when the transcript lives on AssemblyAI and the command sends
   requests (``run``, not ``--offline``), it is fetched, then kept (:mod:`transcribe`);
3. **derived**: else it is worked out from the words (a saved transcript file, one made
   on this machine, or ``plan`` and ``render``, which send nothing).

So ``render`` shows what ``run`` sends whenever the run's split is kept, and says
which split it used.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final, Literal, TypeVar

from runner.errors import ApiError, DamagedEntry
from runner.prompt.views import TranscriptView
from runner.store import Store
from runner.transcript.model import (
    Transcript,
    paragraphs_from_sentences,
    parse_paragraphs,
    parse_sentences,
    sentences_from_words,
)

T = TypeVar("T")

Part = Literal["sentences", "paragraphs"]
PARTS: Final[tuple[Part, ...]] = ("sentences", "paragraphs")


class Source(StrEnum):
    """Where a part came from."""

    KEPT = "kept"  # AssemblyAI's, from the state store
    FETCHED = "fetched"  # AssemblyAI's, fetched by this run (and kept)
    DERIVED = "derived"  # worked out from the words


@dataclass(frozen=True)
class Found:
    """AssemblyAI's envelope of one part (``GET /v2/transcript/{id}/sentences``), and
    whether it came from the store or the API."""

    data: Mapping[str, Any]
    source: Literal[Source.KEPT, Source.FETCHED]


def transcript_view(
    transcript: Transcript, found: Mapping[Part, Found], *, uses: Collection[Part] = PARTS
) -> TranscriptView:
    """The transcript as templates see it: AssemblyAI's own sentences and paragraphs
    where ``found``, the rest derived from the words (paragraphs from the sentences).
    A part not in ``uses`` is left empty: no template reads it."""
    sentences = (
        _parsed(parse_sentences, transcript, "sentences", found["sentences"])
        if "sentences" in found
        else None
    )
    paragraphs = (
        _parsed(parse_paragraphs, transcript, "paragraphs", found["paragraphs"])
        if "paragraphs" in found
        else None
    )
    if sentences is None and ("sentences" in uses or ("paragraphs" in uses and paragraphs is None)):
        sentences = sentences_from_words(transcript.words)
    if paragraphs is None and "paragraphs" in uses:
        paragraphs = paragraphs_from_sentences(sentences or ())
    return TranscriptView.build(transcript, sentences or (), paragraphs or ())


def sources(found: Mapping[Part, Found]) -> dict[str, str]:
    """Where each part came from, by name (``render`` says it)."""
    return {part: found[part].source if part in found else Source.DERIVED for part in PARTS}


def kept(store: Store | None, transcript: Transcript) -> dict[Part, Found]:
    """The parts of ``transcript`` the store keeps: all ``plan`` and ``render`` can
    have, since they send nothing."""
    if store is None or not transcript.id:
        return {}
    found: dict[Part, Found] = {}
    for part in PARTS:
        data = store.transcript_get(transcript.id, part)
        if data is not None:
            found[part] = Found(data, Source.KEPT)
    return found


def kept_view(store: Store | None, transcript: Transcript) -> TranscriptView:
    """The view ``plan`` and ``render`` build: the kept split, else the derived one."""
    return transcript_view(transcript, kept(store, transcript))


def _parsed(
    parser: Callable[[Mapping[str, Any]], T], transcript: Transcript, part: Part, found: Found
) -> T:
    """``found`` through ``parser``: a damaged kept part is the store's entry, named; a
    malformed fetched one is AssemblyAI's answer."""
    try:
        return parser(found.data)
    except ValueError as exc:
        if found.source is Source.KEPT:
            raise DamagedEntry(
                f"the stored {part} of transcript {transcript.id} is damaged ({exc}); "
                "remove it with `transcript-runner cache clear`"
            ) from None
        raise ApiError(f"AssemblyAI answered with a malformed transcript: {exc}") from None
