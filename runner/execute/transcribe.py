"""Getting each item's transcript, paying for none twice.

The order of preference: a saved transcript on disk; the same audio already being
transcribed by another item of this run (single flight); the ledger's job from an
earlier run (reattached, not resubmitted); only then a new submission
(:mod:`runner.execute.submissions`), recorded in the ledger the moment AssemblyAI
accepts it, before anything else can fail.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from runner.api.types import TranscriptResult
from runner.errors import (
    ApiError,
    ConfigurationError,
    NotStored,
    SourceUnreadable,
    TranscriptFailed,
)
from runner.execute.claims import Claims
from runner.execute.loading import Settled
from runner.execute.services import Speech, TranscriptsApi
from runner.execute.single_flight import SingleFlight
from runner.execute.submissions import MAX_SUBMISSIONS, Submitter
from runner.items import Item
from runner.recipe.model import InputKind, LocalEngine, Recipe
from runner.results.records import ItemRecord
from runner.store import (
    Intent,
    LedgerEntry,
    Store,
    audio_identity,
    ledger_key,
    transcription_key,
)
from runner.transcript.local_engine import LocalEngineUnavailable, transcribe_file

# Threads per local decode (CTranslate2): two, since a Whisper decode gains little from more
# on a small machine, and files at once share the other cores.
DECODE_THREADS = 2


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
        if claims is not None and claims.store is not store:
            # The open intent is read in the claim's own transaction: on another store
            # it would be missed, and a submission in doubt sent again.
            raise ValueError("a Transcriber's claims must be on its own store")
        self.claims = claims or Claims(store)
        self.offline = offline  # --offline: everything must come from the store
        self.deadline = deadline  # per transcript; None: the client's default
        self._submissions = Submitter(api, store, offline=offline, deadline=deadline)
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
        # Submitted here and no body in hand: none was kept, so none is looked for.
        kept = not (result.submitted and result.data is None)
        return Settled(transcript_id=result.transcript_id, data=data, maybe_kept=kept)

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
        # Online, the first look at the ledger is the claim's own (the same transaction
        # finds the entry or takes the claim): looking here first was one more trip to
        # the store's thread per item.
        entry = await self._ledger_entry(key) if self.offline else None
        if entry is None and self.offline:
            raise NotStored(
                f"--offline: no stored transcript for {item.kind.value} {item.source!r} "
                "with these transcription options"
            )
        async with self.claims.working_on(key):
            for _ in range(MAX_SUBMISSIONS):
                intent: Intent | None = None
                if entry is None and self.store is not None:
                    # Another run sharing this state folder may be submitting the same
                    # audio: wait for its job rather than paying for a second one. Once
                    # the claim is this run's, the same transaction reads the intent an
                    # earlier run may have left open (a submission in doubt).
                    entry, intent = await self.claims.result_or_claim(
                        key,
                        functools.partial(self.store.ledger_get, key),
                        None if self.offline else functools.partial(self.store.intent_get, key),
                    )
                if entry is None and intent is not None:
                    # This run holds the claim: a submission left in doubt is its to settle.
                    entry = await self._submissions.settle_open_intent(key, options, intent)
                if entry is None:
                    return await self._submissions.submit(item, record, key, audio, options)
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
