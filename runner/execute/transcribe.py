"""Getting each item's transcript, paying for none twice.

The order of preference: a saved transcript on disk; the same audio already being
transcribed by another item of this run (single flight); the ledger's job from an
earlier run (reattached, not resubmitted); only then a new submission, recorded in
the ledger the moment AssemblyAI accepts it, before anything else can fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from runner.api.pacing import paced
from runner.api.types import TranscriptResult
from runner.errors import (
    ApiError,
    ConfigurationError,
    DamagedEntry,
    KeyRefused,
    MaybeSubmitted,
    NotStored,
    SourceUnreadable,
    TranscriptFailed,
)
from runner.execute.claims import Claims
from runner.execute.phases import step
from runner.execute.segments import PARTS, Found, Part, Source, transcript_view
from runner.execute.services import Speech, TranscriptsApi
from runner.execute.single_flight import SingleFlight
from runner.items import Item
from runner.prompt.views import TranscriptView
from runner.recipe.model import InputKind, LocalEngine, Recipe
from runner.results.manifest import ItemRecord
from runner.store import LedgerEntry, Store, audio_identity, ledger_key, transcription_key
from runner.transcript.local_engine import LocalEngineUnavailable, transcribe_file
from runner.transcript.model import Transcript, load_saved

T = TypeVar("T")
log = logging.getLogger(__name__)

# How long a stopping run waits for a transcription POST already on the wire, so the
# job it may have created is recorded in the ledger.
SUBMIT_GRACE_SECONDS = 30.0
# Submissions of one audio in one run: after an unclear answer the listing decides, and
# sending again is safe; a third unclear answer in a row is a fault worth stopping for.
MAX_SUBMISSIONS = 3
# Threads per local decode (CTranslate2): two, since a Whisper decode gains little from more
# on a small machine, and files at once share the other cores.
DECODE_THREADS = 2
# Seconds to let a job made by an unclear request appear in the account's list.
LIST_SETTLE = 2.0


def unclear(exc: ApiError) -> bool:
    """Whether a failed submission may still have created a job: no clear refusal.

    A 4xx (and an exhausted 429) is a refusal; a 5xx, a dropped connection after
    sending, a timeout or an unreadable 2xx may hide a job that exists.
    """
    return isinstance(exc, MaybeSubmitted) or (exc.status is not None and exc.status >= 500)


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
    """An item's transcript, and the view its templates see (:mod:`segments`)."""

    transcript: Transcript
    view: TranscriptView
    local: bool  # read from a saved file: nothing to write back
    here: bool = False  # transcribed on this machine: AssemblyAI has none of it

    @property
    def on_assemblyai(self) -> bool:
        """Whether AssemblyAI holds this transcript (its subtitles can be fetched)."""
        return not self.local and not self.here


class Transcriber:
    """Obtains completed transcripts through the ledger, the store and the API."""

    def __init__(
        self,
        api: TranscriptsApi,
        store: Store | None,
        *,
        offline: bool = False,
        deadline: float | None = None,
        claims: Claims | None = None,
        speech: Mapping[str, Speech] | None = None,
    ) -> None:
        self.api = api
        self.speech = speech or {}  # speech servers, by LocalEngine.server
        self.store = store
        self.claims = claims or Claims(store)
        self.offline = offline  # --offline: everything must come from the store
        self.deadline = deadline  # per transcript; None: the client's default
        # Items of one run with the same audio and options share one job.
        self._single_flight: SingleFlight[TranscriptResult] = SingleFlight()
        # Local decoding is CPU-bound: one file at a time per core, each on its threads.
        self._decoding = asyncio.Semaphore(max(1, (os.cpu_count() or 1) // DECODE_THREADS))

    async def settle(self, recipe: Recipe, item: Item, record: ItemRecord) -> Settled:
        """Wait until the item's transcript is complete (paying for it at most once),
        without holding its body: the executor loads it when the item can go on."""
        if item.kind is InputKind.TRANSCRIPT_FILE:
            return Settled(saved=Path(item.source))
        if recipe.local_engine is not None:
            return await self._transcribe_here(recipe.local_engine, item, record)
        result = await self._transcribe(recipe, item, record)
        record.polls = result.polls
        record.submitted = result.submitted
        record.transcript_seconds = round(result.seconds, 3)
        if result.transcript_id:
            record.transcript_id = result.transcript_id
        # A body already kept in the store is read back when needed, not held meanwhile.
        data = None if self.store is not None and result.transcript_id else result.data
        return Settled(transcript_id=result.transcript_id, data=data)

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

    async def _transcribe_here(
        self, engine: LocalEngine, item: Item, record: ItemRecord
    ) -> Settled:
        """Transcribe a local file on this machine, once: the ledger keys it by the
        audio's bytes and the engine's options, as it keys AssemblyAI's jobs."""
        if item.kind is not InputKind.FILE:
            raise SourceUnreadable(
                f"engine {engine.engine} transcribes local audio files; {item.kind.value} "
                f"{item.source!r} needs AssemblyAI: remove `engine` from `transcription:`, "
                "or download the audio and give it as a `file` input"
            )
        audio = await asyncio.to_thread(audio_identity, item)
        options = engine.options()
        key = ledger_key(audio, options)
        shared = await self._single_flight.join(key)
        if shared is not None:
            record.reused = True
            return Settled(transcript_id=shared.transcript_id, data=shared.data, here=True)
        result = await self._single_flight.run(
            key, lambda: self._decode_once(engine, item, record, key, audio)
        )
        record.transcript_id = result.transcript_id
        return Settled(transcript_id=result.transcript_id, data=result.data, here=True)

    async def _decode_once(
        self, engine: LocalEngine, item: Item, record: ItemRecord, key: str, audio: str
    ) -> TranscriptResult:
        options = engine.options()
        entry = await self._ledger_entry(key)
        if entry is not None and await self._kept(entry.transcript_id):
            record.reused = True
            return TranscriptResult(data=None, transcript_id=entry.transcript_id)
        if self.offline:
            raise NotStored(f"--offline: {item.source!r} was not transcribed by an earlier run")
        began = time.monotonic()
        data: Mapping[str, Any]
        if engine.engine == "openai-compatible":
            server = self.speech.get(engine.server)
            if server is None:
                raise ConfigurationError(f"speech server {engine.base_url} is not set up")
            data = await server.transcribe(Path(item.source), options, audio)
        else:
            async with self._decoding:
                try:
                    data = await asyncio.to_thread(
                        transcribe_file, Path(item.source), options, audio, threads=DECODE_THREADS
                    )
                except LocalEngineUnavailable as problem:
                    raise SourceUnreadable(str(problem)) from None
        record.transcript_seconds = round(time.monotonic() - began, 3)
        transcript_id = str(data["id"])
        store = self.store
        if store is None:
            return TranscriptResult(data=data, transcript_id=transcript_id)
        body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
        await store.call(store.transcript_put_bytes, transcript_id, "transcript", body)
        await store.call(store.ledger_put, key, audio, options, transcript_id, "completed")
        return TranscriptResult(data=None, transcript_id=transcript_id)

    async def _kept(self, transcript_id: str) -> bool:
        store = self.store
        return store is not None and await store.call(
            store.transcript_has, transcript_id, "transcript"
        )

    async def _transcribe(self, recipe: Recipe, item: Item, record: ItemRecord) -> TranscriptResult:
        if item.kind is InputKind.TRANSCRIPT_ID:
            return await self._fetch(item.source)
        options = recipe.transcription_request()
        # Hashing a local file reads it all: off the event loop. A URL is its own identity.
        audio = (
            await asyncio.to_thread(audio_identity, item)
            if item.kind is InputKind.FILE
            else audio_identity(item)
        )
        key = transcription_key(recipe, audio)
        # Two items of one run with the same audio and options share one job.
        shared = await self._single_flight.join(key)
        if shared is not None:
            record.reused = True
            # Only the id is shared: each item reads the body when it has room for it.
            return TranscriptResult(data=None, transcript_id=shared.transcript_id)
        return await self._single_flight.run(
            key, lambda: self._transcribe_once(item, record, key, audio, options)
        )

    async def _transcribe_once(
        self,
        item: Item,
        record: ItemRecord,
        key: str,
        audio: str,
        options: Mapping[str, Any],
    ) -> TranscriptResult:
        entry = await self._ledger_entry(key)
        if entry is None and self.offline:
            raise NotStored(
                f"--offline: no stored transcript for {item.kind.value} {item.source!r} "
                "with these transcription options"
            )
        async with self.claims.working_on(key):
            for _ in range(MAX_SUBMISSIONS):
                if entry is None:
                    # Another run sharing this state folder may be submitting the same
                    # audio: wait for its job rather than paying for a second one.
                    entry = (
                        await self.claims.result_of_others(
                            key, functools.partial(self.store.ledger_get, key)
                        )
                        if self.store is not None
                        else None
                    )
                if entry is None:
                    # This run holds the claim: a submission left in doubt is its to settle.
                    entry = await self._settle_open_intent(key, options)
                if entry is None:
                    return await self._submit(item, record, key, audio, options)
                reused = await self._reattach(entry, key)
                if reused is not None:
                    record.reused = True
                    return reused
                entry = None  # that job failed and left the ledger: claim the audio again
            raise ApiError(f"the transcription of {item.source} failed {MAX_SUBMISSIONS} times")

    async def _ledger_entry(self, key: str) -> LedgerEntry | None:
        if self.store is None:
            return None
        return await self.store.call(self.store.ledger_get, key)

    # --- submissions in doubt --------------------------------------------------------

    async def _intend(
        self, key: str, audio: str, audio_url: str, options: Mapping[str, Any]
    ) -> float:
        """Record the intent to submit, committed before the request is sent; a store
        that cannot record it stops the spending here."""
        store = self.store
        if store is None:
            return time.time()
        intent = await store.call(store.intent_put, key, audio, audio_url, options)
        return intent.started

    async def _forget_intent(self, key: str) -> None:
        store = self.store
        if store is not None:
            await store.call(store.intent_forget, key)

    async def _reconcile(
        self,
        key: str,
        audio_url: str,
        started: float,
        options: Mapping[str, Any],
        cause: ApiError,
    ) -> str | None:
        """The job an unclear submission created, if the account's list shows one.

        None means the listing shows no such job: the intent is closed and sending
        again is safe. When the list cannot say (it fails, or is too long to search),
        the intent stays open for the rerun, and the item fails saying so.
        """
        try:
            found = await self._find_job(audio_url, started, options)
        except ApiError as exc:
            raise ApiError(
                f"{cause.message}; the job may exist, and the account's transcript list "
                f"could not tell ({exc.message}). Nothing was sent again: the next run "
                "looks for the job before it submits anything",
                status=cause.status,
                endpoint=cause.endpoint,
            ) from None
        if found is None:
            await self._forget_intent(key)
        return found

    async def _settle_open_intent(self, key: str, options: Mapping[str, Any]) -> LedgerEntry | None:
        """An earlier run's submission in doubt (it died mid-request): its job, now in
        the ledger, or None (the intent is closed) when the account has no such job."""
        store = self.store
        if store is None or self.offline:
            return None
        intent = await store.call(store.intent_get, key)
        if intent is None:
            return None
        found = await self._find_job(intent.audio_url, intent.started, options)
        if found is None:
            await store.call(store.intent_forget, key)
            return None
        await store.call(store.ledger_put, key, intent.audio, options, found, "reconciled")
        return await store.call(store.ledger_get, key)

    async def _find_job(
        self, audio_url: str, since: float, options: Mapping[str, Any]
    ) -> str | None:
        """The account's job of ``audio_url`` made since ``since`` with ``options``,
        that no ledger entry claims already; the first made wins (the request in doubt
        was the first to go out). A URL is not unique across recipes or runs, so a
        candidate's own options decide, not its URL alone."""
        await asyncio.sleep(paced(LIST_SETTLE))  # a job shows in the list a moment late
        for transcript_id in await self.api.jobs_for(audio_url, since):
            if self.store is not None and await self.store.call(
                self.store.ledger_holds, transcript_id
            ):
                continue
            job = await self.api.get(transcript_id)
            if job.get("status") != "error" and _made_with(job, options):
                return transcript_id
        return None

    async def _fetch(self, transcript_id: str) -> TranscriptResult:
        """An existing transcript by id, once complete: kept in the store, or in hand."""
        if self.store is not None and await self.store.call(
            self.store.transcript_has, transcript_id, "transcript"
        ):
            return TranscriptResult(data=None, transcript_id=transcript_id)
        if self.offline:
            raise NotStored(f"--offline: transcript {transcript_id} is not stored")
        data = await self.api.get(transcript_id)
        if data.get("status") == "error":
            raise TranscriptFailed(transcript_id, str(data.get("error") or "unknown error"))
        if data.get("status") == "completed":
            await self._keep(transcript_id, "transcript", data)
            return TranscriptResult(data=data, transcript_id=transcript_id)
        result = await self.api.wait(transcript_id, audio_duration=None, deadline=self.deadline)
        if result.data is not None:  # a poll brought the body; sweeps bring none
            await self._keep(transcript_id, "transcript", result.data)
        return TranscriptResult(result.data, transcript_id, result.polls)

    async def _reattach(self, entry: LedgerEntry, key: str) -> TranscriptResult | None:
        """The ledger's job for this audio, or None when it failed and must be redone."""
        try:
            result = await self._fetch(entry.transcript_id)
        except ApiError as exc:
            if exc.status != 404:
                raise
            # The job is gone (deleted, or another account or region): forget it so the
            # next run submits afresh, and say so rather than failing the same way forever.
            if self.store is not None:
                await self.store.call(self.store.ledger_forget, key)
            raise ApiError(
                f"the ledger's transcript {entry.transcript_id} for this audio is no longer "
                "available (404: deleted, or another account or region); the entry was "
                "removed, so the next run submits the audio again",
                status=404,
            ) from None
        except TranscriptFailed:
            # A failed job is not billed and a rerun should try again.
            if self.store is not None:
                await self.store.call(self.store.ledger_forget, key)
            return None
        return result

    async def _submit(
        self,
        item: Item,
        record: ItemRecord,
        key: str,
        audio: str,
        options: Mapping[str, Any],
    ) -> TranscriptResult:
        api = self.api
        began = time.monotonic()
        audio_url = item.source
        if item.kind is InputKind.FILE:
            with step("uploading"):
                audio_url = await api.upload(Path(item.source))
        transcript_id = await self._submit_recorded(record, key, audio, audio_url, options)
        result = await api.wait(transcript_id, audio_duration=None, deadline=self.deadline)
        if result.data is not None:
            await self._keep(transcript_id, "transcript", result.data)
        return TranscriptResult(
            data=result.data,
            transcript_id=transcript_id,
            polls=result.polls,
            submitted=True,
            upload_url=audio_url if item.kind is InputKind.FILE else None,
            seconds=time.monotonic() - began,
        )

    async def _submit_recorded(
        self,
        record: ItemRecord,
        key: str,
        audio: str,
        audio_url: str,
        options: Mapping[str, Any],
    ) -> str:
        """Submit once, and put the job in the ledger the moment AssemblyAI accepts it.

        An intent is written before the request: if the answer is unclear (a 5xx, a
        reset, an unreadable body, a crash), the account's transcript list says whether
        the job exists, and it is reattached, or submitted again only when it does not.
        The POST runs shielded: a Ctrl-C, SIGTERM or --timeout while it is on the wire
        waits for its answer (``SUBMIT_GRACE_SECONDS`` at most) so the job's id is
        recorded before the run stops. The ledger write goes to the store's thread at
        once, inside the shielded job: a stop cannot cancel it, and the store finishes
        every queued call before it closes. Should the process die first, the intent
        is there, and the next run finds the job in the account's list.
        """

        async def recorded(transcript_id: str) -> str:
            record.submitted = True
            record.transcript_id = transcript_id
            store = self.store
            if store is not None:
                await store.call(store.ledger_put, key, audio, options, transcript_id, "submitted")
            return transcript_id

        async def submit_and_record() -> str:
            for attempt in range(1, MAX_SUBMISSIONS + 1):
                started = await self._intend(key, audio, audio_url, options)
                try:
                    queued = await self.api.submit(audio_url, options)
                except KeyRefused:
                    await self._forget_intent(key)  # refused: no job was created
                    raise
                except ApiError as exc:
                    if not unclear(exc):
                        await self._forget_intent(key)  # refused: no job was created
                        raise
                    found = await self._reconcile(key, audio_url, started, options, exc)
                    if found is not None:
                        return await recorded(found)
                    if attempt == MAX_SUBMISSIONS:
                        raise
                    continue  # the listing shows no such job: sending again is safe
                return await recorded(str(queued["id"]))
            raise AssertionError("unreachable")

        job = asyncio.ensure_future(submit_and_record())
        try:
            return await asyncio.shield(job)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(job), SUBMIT_GRACE_SECONDS)
            raise


# Model routing lists: the body may report the models used rather than those asked for.
_ROUTING = frozenset({"speech_models", "speech_model"})


def _made_with(job: Mapping[str, Any], options: Mapping[str, Any]) -> bool:
    """Whether ``job`` (a GET /v2/transcript body) was requested with ``options``: every
    option the body reports back (model routing aside) has the value asked for."""
    return all(
        job[name] == value
        for name, value in options.items()
        if name in job and name not in _ROUTING
    )


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
