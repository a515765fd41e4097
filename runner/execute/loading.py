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
from runner.execute.segments import PARTS, Found, Part, Source, transcript_view
from runner.execute.services import TranscriptsApi
from runner.prompt.views import TranscriptView
from runner.store import Store
from runner.transcript.model import Transcript, load_saved

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
    # False when this run submitted the job and kept no body of it (the job finished
    # without a poll bringing it): there is nothing to look for in the store.
    maybe_kept: bool = True


@dataclass
class Obtained:
    """An item's transcript, and the view its templates see (:mod:`segments`)."""

    transcript: Transcript
    view: TranscriptView
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
        """The settled transcript, and its view with the sentences and paragraphs when
        asked (AssemblyAI's when kept or on AssemblyAI to fetch, else derived from the
        words: the rule of :mod:`segments`), its words parsed up front when ``words``
        (templates read them)."""
        uses = [part for part, used in zip(PARTS, (sentences, paragraphs), strict=True) if used]
        if settled.saved is not None:
            saved = await asyncio.to_thread(load_saved, settled.saved)
            found = await self._segments(saved, uses, on_assemblyai=False)
            return Obtained(saved, transcript_view(saved, found, uses=uses), True)
        # Parsing ~1,000 words (when templates use them) is the heaviest CPU work of an
        # item; in a thread the event loop keeps reading replies.
        if settled.data is not None:
            build: Callable[[], Transcript] = functools.partial(Transcript.from_api, settled.data)
            transcript = await asyncio.to_thread(_parse, _built, (build, words))
        else:
            transcript_id = settled.transcript_id or ""
            read = functools.partial(_read_body, words=words)
            kept_body = (
                await self._kept_body(transcript_id, made_here=settled.here)
                if settled.maybe_kept
                else None
            )
            if kept_body is not None:
                # Reading the top of a body takes 0.06 ms: less than a trip to a thread.
                _, transcript = (
                    await asyncio.to_thread(_parse, read, kept_body)
                    if words
                    else _parse(read, kept_body)
                )
            else:
                if self.offline:
                    raise NotStored(f"--offline: transcript {transcript_id} is not stored")
                # Read inside the client's retry loop: a body that does not read as a
                # completed transcript is fetched again, not the item's failure.
                body, transcript = await self.api.download(transcript_id, read)
                # Kept only once it reads as a completed transcript: a broken download
                # is fetched again by the next run, not replayed from the store.
                await self._keep_body(transcript_id, body)
        # Made on this machine: AssemblyAI has no sentences of it.
        found = await self._segments(transcript, uses, on_assemblyai=not settled.here)
        view = transcript_view(transcript, found, uses=uses)
        return Obtained(transcript, view, False, settled.here)

    async def _segments(
        self, transcript: Transcript, uses: list[Part], *, on_assemblyai: bool
    ) -> dict[Part, Found]:
        """AssemblyAI's sentences or paragraphs that templates use: kept, else fetched
        (and kept) when the transcript lives on AssemblyAI; a part of neither is left
        for :func:`transcript_view` to derive."""
        found: dict[Part, Found] = {}
        transcript_id = transcript.id
        if not transcript_id:
            return found
        for part in uses:
            stored = await self._stored(transcript_id, part)
            if stored is not None:
                found[part] = Found(stored, Source.KEPT)
            elif on_assemblyai:
                found[part] = Found(await self._fetch_part(transcript_id, part), Source.FETCHED)
        return found

    async def _kept_body(self, transcript_id: str, *, made_here: bool) -> bytes | None:
        """A completed transcript as it was received, when the store keeps it."""
        store = self.store
        if store is None:
            return None
        return await self._read_kept(
            store.transcript_bytes, transcript_id, "transcript", refetch=not made_here
        )

    async def _keep_body(self, transcript_id: str, body: bytes) -> None:
        store = self.store
        if store is not None:
            await store.call(store.transcript_put_bytes, transcript_id, "transcript", body)

    async def _fetch_part(self, transcript_id: str, part: Part) -> Mapping[str, Any]:
        """Sentences or paragraphs from AssemblyAI, then kept."""
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


def _read_body(body: bytes, *, words: bool) -> tuple[bytes, Transcript]:
    """A downloaded or kept body, and the completed transcript it reads as (a
    ``ValueError`` when it does not)."""
    return body, _built((functools.partial(Transcript.from_body, body), words))


def _parse(parser: Callable[[Any], T], data: Any) -> T:
    """An API body through ``parser``; a body of the wrong shape is the item's API error."""
    try:
        return parser(data)
    except ValueError as exc:
        raise ApiError(f"AssemblyAI answered with a malformed transcript: {exc}") from None
