"""Submitting audio to AssemblyAI, paying for each job once.

An intent is recorded before each request, and the job in the ledger the moment
AssemblyAI accepts it. An answer that leaves it unclear whether a job was made (a 5xx,
a reset, an unreadable body or id, a crash) is settled from the account's transcript
list: the job is reattached, or the audio sent again only when the list shows no such
job. A list that cannot be read settles nothing: the intent stays, and the item fails.

Which listed job is the one in doubt is decided by identity and by AssemblyAI's own
order, never by comparing its ``created`` with our clock (which may be hours off):

* its ``audio_url`` is the one sent (an upload's URL is unique to that upload);
* it is newer, in the list's order, than every job known to have been made before the
  request went out: the jobs this run had recorded before the intent, and the ledger's
  entries recorded before it (a rerun settling an earlier run's intent);
* no ledger entry owns it, it did not fail, and its own body reports the options sent;
* of those, the newest wins: a job made by the request in doubt is newer than any other.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from runner.api.pacing import paced
from runner.api.types import TranscriptResult
from runner.errors import ApiError, KeyRefused, MaybeSubmitted
from runner.execute.phases import step
from runner.execute.services import TranscriptsApi
from runner.items import Item
from runner.recipe.model import InputKind
from runner.results.records import ItemRecord
from runner.store import Intent, LedgerEntry, Store

# How long a stopping run waits for a transcription POST already on the wire, so the
# job it may have created is recorded in the ledger.
SUBMIT_GRACE_SECONDS = 30.0
# Submissions of one audio in one run: after an unclear answer the listing decides, and
# sending again is safe; a third unclear answer in a row is a fault worth stopping for.
MAX_SUBMISSIONS = 3
# Seconds to let a job made by an unclear request appear in the account's list.
LIST_SETTLE = 2.0


def unclear(exc: ApiError) -> bool:
    """Whether a failed submission may still have created a job: no clear refusal.

    A 4xx (and an exhausted 429) is a refusal; a 5xx, a dropped connection after
    sending, a timeout or an unreadable 2xx may hide a job that exists.
    """
    return isinstance(exc, MaybeSubmitted) or (exc.status is not None and exc.status >= 500)


class Submitter:
    """Submits audio once, recording each submission before anything else can fail."""

    def __init__(
        self,
        api: TranscriptsApi,
        store: Store | None,
        *,
        offline: bool = False,
        deadline: float | None = None,
    ) -> None:
        self.api = api
        self.store = store
        self.offline = offline  # --offline: nothing is submitted, nor looked for
        self.deadline = deadline  # per transcript; None: the client's default
        # Jobs this run recorded, in order: each was made before every later intent.
        self._recorded: list[str] = []
        self._earlier: Sequence[LedgerEntry] | None = None  # the ledger, read once

    async def submit(
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
            await self._keep(transcript_id, result.data)
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
            self._recorded.append(transcript_id)
            record.submitted = True
            record.transcript_id = transcript_id
            store = self.store
            if store is not None:
                await store.call(store.ledger_put, key, audio, options, transcript_id, "submitted")
            return transcript_id

        async def submit_and_record() -> str:
            for attempt in range(1, MAX_SUBMISSIONS + 1):
                known = len(self._recorded)  # jobs certainly made before this request
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
                    earlier = await self._made_before(started, self._recorded[:known])
                    found = await self._reconcile(key, audio_url, earlier, options, exc)
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

    async def _keep(self, transcript_id: str, data: Mapping[str, Any]) -> None:
        if self.store is not None:
            await self.store.call(self.store.transcript_put, transcript_id, "transcript", data)

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
        made_before: Collection[str],
        options: Mapping[str, Any],
        cause: ApiError,
    ) -> str | None:
        """The job an unclear submission created, if the account's list shows one.

        None means the listing shows no such job: the intent is closed and sending
        again is safe. When the list cannot say (it fails, cannot be read, or is too
        long to search), the intent stays open for the rerun, and the item fails.
        """
        found = await self._find_job(audio_url, made_before, options, cause.message)
        if found is None:
            await self._forget_intent(key)
        return found

    async def settle_open_intent(
        self, key: str, options: Mapping[str, Any], intent: Intent
    ) -> LedgerEntry | None:
        """An earlier run's submission in doubt (it died mid-request; ``intent``, read
        with the claim): its job, now in the ledger, or None (the intent is closed) when
        the account has no such job."""
        store = self.store
        if store is None or self.offline:
            return None
        made_before = await self._made_before(intent.started, ())
        doubt = "an earlier run stopped while its submission was on the wire"
        found = await self._find_job(intent.audio_url, made_before, options, doubt)
        if found is None:
            await store.call(store.intent_forget, key)
            return None
        self._recorded.append(found)
        await store.call(store.ledger_put, key, intent.audio, options, found, "reconciled")
        return await store.call(store.ledger_get, key)

    async def _made_before(self, started: float, recorded: Sequence[str]) -> frozenset[str]:
        """Jobs certainly made before the request of an intent written at ``started``:
        those this run recorded before it (``recorded``), and the ledger's entries
        recorded before it by earlier runs (both times are this machine's: no clock is
        compared with AssemblyAI's). An id this run recorded later is left out: its
        entry may be older than the job it now names."""
        store = self.store
        if store is not None and self._earlier is None:
            self._earlier = await store.call(_whole_ledger, store)
        ours = set(self._recorded)
        earlier = {
            entry.transcript_id
            for entry in self._earlier or ()
            if entry.created < started and entry.transcript_id not in ours
        }
        return frozenset(earlier.union(recorded))

    async def _find_job(
        self,
        audio_url: str,
        made_before: Collection[str],
        options: Mapping[str, Any],
        doubt: str,
    ) -> str | None:
        """The job the request in doubt made (see the module's rule), or None. A list
        that cannot be read is :class:`ApiError`, saying what happened and what did not."""
        await asyncio.sleep(paced(LIST_SETTLE))  # a job shows in the list a moment late
        try:
            for transcript_id in await self.api.jobs_for(audio_url, made_before):
                if self.store is not None and await self.store.call(
                    self.store.ledger_holds, transcript_id
                ):
                    continue
                job = await self.api.get(transcript_id)
                if job.get("status") != "error" and _made_with(job, options):
                    return transcript_id
        except ApiError as exc:
            raise ApiError(
                f"{doubt}; could not tell whether AssemblyAI created the job for "
                f"{audio_url}: {exc.message}; nothing was submitted again; the next run "
                "will look again before it submits anything",
                endpoint=exc.endpoint,
            ) from None
        return None


def _whole_ledger(store: Store) -> list[LedgerEntry]:
    return list(store.ledger())


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
