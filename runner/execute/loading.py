"""Bringing a settled transcript into memory, once its item has room to work on it:
from the store when kept, else from AssemblyAI (then kept), with the sentences and
paragraphs its templates use."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from runner.errors import ApiError, DamagedEntry, NotStored
from runner.execute.services import TranscriptsApi
from runner.store import Store
from runner.transcript.model import (
    Paragraph,
    Sentence,
    Transcript,
    load_saved,
    paragraphs_from_sentences,
    parse_paragraphs,
    parse_sentences,
    sentences_from_words,
)

T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Settled:
    """An item's transcript is complete; its body stays where it is kept (the store,
    AssemblyAI, a saved file) until the item has room to work on it, so thousands of
    items waiting for their jobs hold no transcripts."""

    transcript_id: str | None = None
    data: Mapping[str, Any] | None = None  # in hand only when no store could keep it
    saved: Path | None = None  # a transcript_file input
    here: bool = False  # transcribed on this machine: nothing of it lives on AssemblyAI


@dataclass
class Obtained:
    """An item's transcript, with the sentences and paragraphs its templates use."""

    transcript: Transcript
    sentences: tuple[Sentence, ...]
    paragraphs: tuple[Paragraph, ...]
    local: bool  # read from a saved file: nothing to write back
    here: bool = False  # transcribed on this machine: AssemblyAI has none of it

    @property
    def on_assemblyai(self) -> bool:
        """Whether AssemblyAI holds this transcript (its subtitles can be fetched)."""
        return not self.local and not self.here


class TranscriptLoader:
    """Reads settled transcripts and their parts through the store."""

    def __init__(self, api: TranscriptsApi, store: Store | None, *, offline: bool = False) -> None:
        self.api = api
        self.store = store
        self.offline = offline  # --offline: everything must come from the store

    async def load(
        self,
        settled: Settled,
        *,
        sentences: bool = False,
        paragraphs: bool = False,
        words: bool = False,
    ) -> Obtained:
        """The settled transcript, with its sentences and paragraphs when asked (from
        AssemblyAI's own endpoints; a saved transcript derives them from words), and
        its words parsed up front when ``words`` (templates read them)."""
        if settled.saved is not None:
            saved = await asyncio.to_thread(load_saved, settled.saved)
            derived = sentences_from_words(saved.words)
            return Obtained(saved, derived, paragraphs_from_sentences(derived), True)
        # Parsing ~1,000 words (when templates use them) is the heaviest CPU work of an
        # item; in a thread the event loop keeps reading replies.
        if settled.data is not None:
            build: Callable[[], Transcript] = functools.partial(Transcript.from_api, settled.data)
            transcript = await asyncio.to_thread(_parse, _built, (build, words))
        else:
            transcript_id = settled.transcript_id or ""
            body, kept = await self._body(transcript_id, made_here=settled.here)
            build = functools.partial(Transcript.from_body, body)
            # Reading the top of a body takes 0.06 ms: less than a trip to a thread.
            transcript = (
                await asyncio.to_thread(_parse, _built, (build, words))
                if words
                else _parse(_built, (build, words))
            )
            if not kept:
                # Kept only once it reads as a completed transcript: a broken download
                # is fetched again by the next run, not replayed from the store.
                await self._keep_body(transcript_id, body)
        if settled.here:  # AssemblyAI has no sentences of it: made from its words
            derived = sentences_from_words(transcript.words) if sentences or paragraphs else ()
            return Obtained(transcript, derived, paragraphs_from_sentences(derived), False, True)
        found_sentences: tuple[Sentence, ...] = ()
        found_paragraphs: tuple[Paragraph, ...] = ()
        if sentences and transcript.id:
            found_sentences = _parse(parse_sentences, await self._part(transcript.id, "sentences"))
        if paragraphs and transcript.id:
            part = await self._part(transcript.id, "paragraphs")
            found_paragraphs = _parse(parse_paragraphs, part)
        return Obtained(transcript, found_sentences, found_paragraphs, False)

    async def _body(self, transcript_id: str, *, made_here: bool) -> tuple[bytes, bool]:
        """A completed transcript as received, and whether the store had it: from the
        store when kept, else downloaded (the caller keeps it once it reads)."""
        store = self.store
        if store is not None:
            kept = await self._read_kept(
                store.transcript_bytes, transcript_id, "transcript", refetch=not made_here
            )
            if kept is not None:
                return kept, True
        if self.offline:
            raise NotStored(f"--offline: transcript {transcript_id} is not stored")
        return await self.api.download(transcript_id), False

    async def _keep_body(self, transcript_id: str, body: bytes) -> None:
        store = self.store
        if store is not None:
            await store.call(store.transcript_put_bytes, transcript_id, "transcript", body)

    async def _part(self, transcript_id: str, part: str) -> Mapping[str, Any]:
        """Sentences or paragraphs: from the store when kept, else fetched and kept."""
        stored = await self._stored(transcript_id, part)
        if stored is not None:
            return stored
        if self.offline:
            raise NotStored(f"--offline: the {part} of transcript {transcript_id} are not stored")
        api = self.api
        data = await (api.sentences if part == "sentences" else api.paragraphs)(transcript_id)
        await self._keep(transcript_id, part, data)
        return data

    async def _stored(self, transcript_id: str, part: str) -> Mapping[str, Any] | None:
        if self.store is None:
            return None
        return await self._read_kept(self.store.transcript_get, transcript_id, part, refetch=True)

    async def _read_kept(
        self, read: Callable[[str, str], T | None], transcript_id: str, part: str, *, refetch: bool
    ) -> T | None:
        """A kept transcript part, or None when a damaged copy can be read again from
        AssemblyAI, which costs nothing (the copy is then replaced). Offline, or for a
        transcript made on this machine, the damage is the item's failure, named."""
        assert self.store is not None
        try:
            return await self.store.call(read, transcript_id, part)
        except DamagedEntry:
            if self.offline or not refetch:
                raise
            log.warning(
                "the kept %s of transcript %s is damaged; reading it again from AssemblyAI",
                part,
                transcript_id,
            )
            return None

    async def _keep(self, transcript_id: str, part: str, data: Mapping[str, Any]) -> None:
        if self.store is not None:
            await self.store.call(self.store.transcript_put, transcript_id, part, data)


def _built(how: tuple[Callable[[], Transcript], bool]) -> Transcript:
    """A transcript from ``build``, its words parsed (and checked) now when asked."""
    build, words = how
    transcript = build()
    if transcript.status not in (None, "completed"):
        raise ValueError(f"it was reported completed, but its status is {transcript.status!r}")
    if words:
        transcript.parse_segments()
    return transcript


def _parse(parser: Callable[[Any], T], data: Any) -> T:
    """An API body through ``parser``; a body of the wrong shape is the item's API error."""
    try:
        return parser(data)
    except ValueError as exc:
        raise ApiError(f"AssemblyAI answered with a malformed transcript: {exc}") from None
