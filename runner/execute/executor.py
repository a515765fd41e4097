"""The async scheduler: items flow through transcription, then their task graph.

* A bounded pool of item workers keeps memory flat for 10,000-item runs; the HTTP
  layer (:mod:`runner.api.http`) bounds uploads, submissions, polls and LLM
  calls separately, with retries and rate limits.
* Within an item, each task starts as soon as the tasks it ``needs`` finished.
* One item's failure (a transcript in ``status: error``, a bad reply) never stops
  the others; every outcome lands in the manifest with its cause.
* Every output is written atomically as soon as it exists, so Ctrl-C or
  ``--timeout`` keeps all finished work.

The executor depends on three small protocols, so tests run it against a real
aiohttp server on loopback rather than patched internals.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from runner.api.types import CallStats, Completion, TranscriptResult, Usage
from runner.errors import (
    ApiError,
    ItemError,
    NotStored,
    PostProcessFailed,
    RunnerError,
    TranscriptFailed,
)
from runner.execute.expectations import check
from runner.execute.postprocess import apply
from runner.items import Item, expand
from runner.prompt.payloads import Payload, build_payload, task_context
from runner.prompt.views import TaskResultView, TranscriptView
from runner.recipe.model import MANIFEST_FILE, TRANSCRIPT_FILE, InputKind, Recipe, Task, TaskApi
from runner.results.manifest import ItemRecord, ManifestWriter, TaskRecord
from runner.results.outputs import contained, item_dir, write_atomic, write_json
from runner.store import LedgerEntry, Store, file_identity, ledger_key, reply_key
from runner.transcript.quotes import match_quotes

if TYPE_CHECKING:
    from runner.items import Shard
from runner.diagnostics import display_path
from runner.errors import TemplateProblem
from runner.prompt.templating import TemplateEngine, used_transcript_fields
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

DEFAULT_ITEMS_IN_FLIGHT = 64
# How long a stopping run waits for a transcription POST already on the wire, so the
# job it may have created is recorded in the ledger.
SUBMIT_GRACE_SECONDS = 30.0


class _SingleFlight(Generic[T]):
    """Items of one run that need the same work wait for the first to do it.

    A finished result is shared with every later item; a failed attempt is not: each
    waiting item then tries on its own, as if there had been no other.
    """

    def __init__(self) -> None:
        self._running: dict[str, asyncio.Future[T]] = {}

    async def join(self, key: str) -> T | None:
        """The result of the same work done or under way, or None: do it yourself."""
        running = self._running.get(key)
        if running is None:
            return None
        try:
            return await asyncio.shield(running)
        except RunnerError:
            return None

    async def run(self, key: str, work: Callable[[], Awaitable[T]]) -> T:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._running[key] = future
        try:
            result = await work()
        except BaseException as exc:
            if self._running.get(key) is future:
                del self._running[key]
            future.set_exception(exc if isinstance(exc, Exception) else RuntimeError(str(exc)))
            future.exception()  # retrieved: waiting items handle the failure themselves
            raise
        future.set_result(result)
        return result


class TranscriptsApi(Protocol):
    async def upload(self, path: Path) -> str: ...
    async def submit(self, audio_url: str, options: Mapping[str, Any]) -> Mapping[str, Any]: ...
    async def get(self, transcript_id: str) -> Mapping[str, Any]: ...
    async def sentences(self, transcript_id: str) -> Mapping[str, Any]: ...
    async def paragraphs(self, transcript_id: str) -> Mapping[str, Any]: ...
    async def wait(
        self, transcript_id: str, *, audio_duration: float | None, deadline: float | None
    ) -> TranscriptResult: ...


class CompletionApi(Protocol):
    async def complete(self, body: Mapping[str, Any]) -> Completion: ...


class LemurApi(Protocol):
    async def task(self, body: Mapping[str, Any]) -> Completion: ...


@dataclass(frozen=True)
class Services:
    transcripts: TranscriptsApi
    gateway: CompletionApi
    lemur: LemurApi


class Reporter(Protocol):
    """Progress display: told when items start and finish."""

    def start(self, total: int) -> None: ...
    def item_started(self, recipe: str, item: str) -> None: ...
    def item_finished(self, record: ItemRecord) -> None: ...
    def stop(self) -> None: ...


@dataclass(frozen=True)
class RunOptions:
    out: Path | None = None  # --out: DIR/<recipe>/<item> instead of the recipe's output.dir
    manifest: Path = Path("out") / MANIFEST_FILE
    timeout: float | None = None  # --timeout for the whole run, seconds
    transcript_deadline: float | None = None  # per transcript; None: the client's default
    items_in_flight: int = DEFAULT_ITEMS_IN_FLIGHT
    use_cache: bool = True  # --no-cache: ask the LLM again (the ledger is always used)
    offline: bool = False  # --offline: everything must come from the state store
    shard: Shard | None = None  # --shard K/N: only this job's share of the items


@dataclass
class RunOutcome:
    manifest: Path
    outcome: str  # completed, interrupted, timed out
    wall_seconds: float
    writer: ManifestWriter
    not_started: int = 0

    @property
    def failed(self) -> bool:
        totals = self.writer.totals
        return bool(
            self.outcome != "completed"
            or totals.items["failed"]
            or totals.tasks["failed"]
            or totals.tasks["skipped"]
        )


@dataclass
class _Plan:
    """What one recipe needs at run time, computed once."""

    recipe: Recipe
    engine: TemplateEngine
    items: list[Item]
    tasks: tuple[Task, ...]
    needs_sentences: bool
    needs_paragraphs: bool


@dataclass
class _Obtained:
    transcript: Transcript
    sentences: tuple[Sentence, ...]
    paragraphs: tuple[Paragraph, ...]
    local: bool


@dataclass
class _State:
    in_flight: dict[tuple[str, str], ItemRecord] = field(default_factory=dict)
    started: int = 0


def plan_recipe(recipe: Recipe, shard: Shard | None = None) -> _Plan:
    engine = TemplateEngine(recipe.base_dir)
    tasks = recipe.ordered_tasks()
    used = used_transcript_fields(engine, [t for task in tasks for t in task.templates])
    quotes = any(task.quotes is not None for task in tasks)
    items = expand(recipe, engine)
    return _Plan(
        recipe=recipe,
        engine=engine,
        items=shard.select(recipe, items) if shard else items,
        tasks=tasks,
        needs_sentences=quotes or bool(used & {"sentences", "*"}),
        needs_paragraphs=bool(used & {"paragraphs", "*"}),
    )


class Executor:
    """Runs recipes to completion, interruption or timeout, streaming the manifest."""

    def __init__(
        self,
        services: Services,
        options: RunOptions,
        reporter: Reporter,
        store: Store | None = None,
    ) -> None:
        self.services = services
        self.options = options
        self.reporter = reporter
        self.store = store
        self._state = _State()
        self.outcome: RunOutcome | None = None  # set even when the run is interrupted
        # Single flight: items of one run that need the same transcription or the same
        # LLM request wait for the first one instead of paying for their own.
        self._transcribing: _SingleFlight[TranscriptResult] = _SingleFlight()
        self._asking: _SingleFlight[Completion] = _SingleFlight()

    async def run(self, recipes: Sequence[Recipe]) -> RunOutcome:
        plans = [plan_recipe(r, self.options.shard) for r in recipes]
        work = [(plan, item) for plan in plans for item in plan.items]
        writer = ManifestWriter(
            self.options.manifest,
            {
                "recipes": [{"name": p.recipe.name, "file": p.recipe.display} for p in plans],
                "shard": f"{shard.index}/{shard.count}" if (shard := self.options.shard) else None,
            },
        )
        began = time.monotonic()
        self.reporter.start(len(work))
        outcome = "completed"
        try:
            async with asyncio.timeout(self.options.timeout):
                await self._run_pool(work, writer)
        except TimeoutError:
            outcome = "timed out"
        except asyncio.CancelledError:
            self.outcome = self._close(writer, "interrupted", began, len(work))
            raise
        finally:
            self.reporter.stop()
        self.outcome = self._close(writer, outcome, began, len(work))
        return self.outcome

    def _close(self, writer: ManifestWriter, outcome: str, began: float, total: int) -> RunOutcome:
        for record in self._state.in_flight.values():
            record.status = "interrupted"
            record.error = record.error or f"the run was {outcome} before this item finished"
            writer.add(record)
        self._state.in_flight.clear()
        wall = time.monotonic() - began
        path = writer.close(outcome, wall)
        not_started = total - self._state.started
        return RunOutcome(path, outcome, wall, writer, not_started)

    async def _run_pool(self, work: list[tuple[_Plan, Item]], writer: ManifestWriter) -> None:
        queue: asyncio.Queue[tuple[_Plan, Item]] = asyncio.Queue()
        for entry in work:
            queue.put_nowait(entry)

        async def worker() -> None:
            while True:
                try:
                    plan, item = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                record = await self._process_item(plan, item)
                self._state.in_flight.pop((plan.recipe.name, item.name), None)
                writer.add(record)
                self.reporter.item_finished(record)

        count = max(1, min(self.options.items_in_flight, len(work)))
        async with asyncio.TaskGroup() as group:
            for _ in range(count):
                group.create_task(worker())

    # --- one item -------------------------------------------------------------------

    async def _process_item(self, plan: _Plan, item: Item) -> ItemRecord:
        recipe = plan.recipe
        folder = item_dir(recipe, item, plan.engine, self.options.out)
        record = ItemRecord(
            recipe=recipe.name,
            item=item.name,
            source=item.source,
            recipe_file=recipe.display,
            kind=item.kind.value,
            status="ok",
            folder=str(folder),
        )
        self._state.in_flight[(recipe.name, item.name)] = record
        self._state.started += 1
        self.reporter.item_started(recipe.name, item.name)
        try:
            obtained = await self._obtain(plan, item, record)
        except ItemError as exc:
            # One item's trouble (an API error, a failed transcript, an unreadable file,
            # a store problem) is that item's failure; the others go on.
            record.status = "failed"
            record.error = str(exc)
            return record
        transcript = obtained.transcript
        record.transcript_id = transcript.id
        record.audio_duration = _seconds(transcript.audio_duration)
        if not obtained.local:
            # File writes run in a thread: on the event loop they would hold back every
            # other item's requests (and the reading of 429s) while the disk works.
            await asyncio.to_thread(write_json, folder / TRANSCRIPT_FILE, dict(transcript.raw))
        view = TranscriptView.build(transcript, obtained.sentences, obtained.paragraphs)
        await self._run_tasks(plan, item, folder, transcript, view, record)
        if any(t.status != "ok" for t in record.tasks):
            record.status = "failed"
        return record

    async def _obtain(self, plan: _Plan, item: Item, record: ItemRecord) -> _Obtained:
        """The item's completed transcript, and its sentences/paragraphs if templates use them."""
        if item.kind is InputKind.TRANSCRIPT_FILE:
            saved = await asyncio.to_thread(load_saved, Path(item.source))
            derived = sentences_from_words(saved.words)
            return _Obtained(saved, derived, paragraphs_from_sentences(derived), True)
        result = await self._transcribe(plan, item, record)
        # Building ~1,000 word objects is the heaviest CPU work of an item; in a thread
        # the event loop keeps reading replies (a 429 read late means requests sent late).
        transcript = await asyncio.to_thread(_parse, Transcript.from_api, result.data)
        record.polls = result.polls
        record.submitted = result.submitted
        record.transcript_seconds = round(result.seconds, 3)
        sentences: tuple[Sentence, ...] = ()
        paragraphs: tuple[Paragraph, ...] = ()
        if plan.needs_sentences and transcript.id:
            sentences = _parse(parse_sentences, await self._part(transcript.id, "sentences"))
        if plan.needs_paragraphs and transcript.id:
            paragraphs = _parse(parse_paragraphs, await self._part(transcript.id, "paragraphs"))
        return _Obtained(transcript, sentences, paragraphs, False)

    async def _part(self, transcript_id: str, part: str) -> Mapping[str, Any]:
        """Sentences or paragraphs: from the store when kept, else fetched and kept."""
        stored = await self._stored(transcript_id, part)
        if stored is not None:
            return stored
        if self.options.offline:
            raise NotStored(f"--offline: the {part} of transcript {transcript_id} are not stored")
        api = self.services.transcripts
        data = await (api.sentences if part == "sentences" else api.paragraphs)(transcript_id)
        await self._keep(transcript_id, part, data)
        return data

    async def _stored(self, transcript_id: str, part: str) -> Mapping[str, Any] | None:
        if self.store is None:
            return None
        return await asyncio.to_thread(self.store.transcript_get, transcript_id, part)

    async def _keep(self, transcript_id: str, part: str, data: Mapping[str, Any]) -> None:
        if self.store is not None:
            await asyncio.to_thread(self.store.transcript_put, transcript_id, part, data)

    async def _transcribe(self, plan: _Plan, item: Item, record: ItemRecord) -> TranscriptResult:
        if item.kind is InputKind.TRANSCRIPT_ID:
            return await self._fetch(item.source)
        options = plan.recipe.transcription_request()
        audio = item.source
        if item.kind is InputKind.FILE:
            audio = await asyncio.to_thread(file_identity, Path(item.source))
        key = ledger_key(audio, options)
        # Two items of one run with the same audio and options share one job.
        shared = await self._transcribing.join(key)
        if shared is not None:
            record.reused = True
            return TranscriptResult(data=shared.data, polls=0)
        return await self._transcribing.run(
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
        entry = None
        if self.store is not None:
            entry = await asyncio.to_thread(self.store.ledger_get, key)
        if entry is not None:
            reused = await self._reattach(entry, key)
            if reused is not None:
                record.reused = True
                return reused
        if self.options.offline:
            raise NotStored(
                f"--offline: no stored transcript for {item.kind.value} {item.source!r} "
                "with these transcription options"
            )
        return await self._submit(item, record, key, audio, options)

    async def _fetch(self, transcript_id: str) -> TranscriptResult:
        """An existing transcript by id: from the store when kept, else from the API."""
        stored = await self._stored(transcript_id, "transcript")
        if stored is not None:
            return TranscriptResult(data=stored)
        if self.options.offline:
            raise NotStored(f"--offline: transcript {transcript_id} is not stored")
        api = self.services.transcripts
        data = await api.get(transcript_id)
        if data.get("status") == "error":
            raise TranscriptFailed(transcript_id, str(data.get("error") or "unknown error"))
        if data.get("status") != "completed":
            result = await api.wait(
                transcript_id, audio_duration=None, deadline=self.options.transcript_deadline
            )
            data = result.data
        await self._keep(transcript_id, "transcript", data)
        return TranscriptResult(data=data)

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
                await asyncio.to_thread(self.store.ledger_forget, key)
            raise ApiError(
                f"the ledger's transcript {entry.transcript_id} for this audio is no longer "
                "available (404: deleted, or another account or region); the entry was "
                "removed, so the next run submits the audio again",
                status=404,
            ) from None
        except TranscriptFailed:
            # A failed job is not billed and a rerun should try again.
            if self.store is not None:
                await asyncio.to_thread(self.store.ledger_forget, key)
            return None
        return TranscriptResult(data=result.data, polls=result.polls)

    async def _submit(
        self,
        item: Item,
        record: ItemRecord,
        key: str,
        audio: str,
        options: Mapping[str, Any],
    ) -> TranscriptResult:
        api = self.services.transcripts
        began = time.monotonic()
        audio_url = item.source
        if item.kind is InputKind.FILE:
            audio_url = await api.upload(Path(item.source))
        transcript_id = await self._submit_recorded(record, key, audio, audio_url, options)
        result = await api.wait(
            transcript_id, audio_duration=None, deadline=self.options.transcript_deadline
        )
        await self._keep(transcript_id, "transcript", result.data)
        return TranscriptResult(
            data=result.data,
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
        """Submit, and put the job in the ledger the moment AssemblyAI accepts it.

        The POST runs shielded: a Ctrl-C, SIGTERM or --timeout while it is on the wire
        waits for its answer (bounded by the request timeout) so the job's id is
        recorded before the run stops; otherwise a rerun would pay for it again. The
        ledger write is a synchronous call with no await before it, so it cannot be
        cancelled or queued behind other work.
        """

        async def submit_and_record() -> str:
            queued = await self.services.transcripts.submit(audio_url, options)
            transcript_id = str(queued["id"])
            record.submitted = True
            record.transcript_id = transcript_id
            if self.store is not None:
                self.store.ledger_put(key, audio, options, transcript_id, "submitted")
            return transcript_id

        job = asyncio.ensure_future(submit_and_record())
        try:
            return await asyncio.shield(job)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(job), SUBMIT_GRACE_SECONDS)
            raise

    # --- the task graph ---------------------------------------------------------------

    async def _run_tasks(
        self,
        plan: _Plan,
        item: Item,
        folder: Path,
        transcript: Transcript,
        view: TranscriptView,
        item_record: ItemRecord,
    ) -> None:
        """Run the item's tasks; each record joins ``item_record`` as soon as it exists,
        so an interrupted item still shows the tasks that finished."""
        done: dict[str, asyncio.Future[TaskResultView | None]] = {
            task.name: asyncio.get_running_loop().create_future() for task in plan.tasks
        }
        records = item_record.tasks

        async def run(task: Task) -> None:
            needed = [await done[n] for n in task.needs]
            if any(result is None for result in needed):
                failed = [n for n, r in zip(task.needs, needed, strict=True) if r is None]
                records.append(
                    TaskRecord(
                        task=task.name,
                        line=task.line,
                        status="skipped",
                        error=f"not run because {', '.join(failed)} failed",
                        api=task.api.value,
                        model_requested=_model_of(task),
                    )
                )
                done[task.name].set_result(None)
                return
            results = {n: r for n, r in zip(task.needs, needed, strict=True) if r is not None}
            record, result = await self._run_task(
                plan, item, task, folder, transcript, view, results
            )
            records.append(record)
            done[task.name].set_result(result)

        async with asyncio.TaskGroup() as group:
            for task in plan.tasks:
                group.create_task(run(task))
        order = {task.name: i for i, task in enumerate(plan.tasks)}
        records.sort(key=lambda r: order[r.task])

    async def _run_task(
        self,
        plan: _Plan,
        item: Item,
        task: Task,
        folder: Path,
        transcript: Transcript,
        view: TranscriptView,
        results: Mapping[str, TaskResultView],
    ) -> tuple[TaskRecord, TaskResultView | None]:
        record = TaskRecord(
            task=task.name,
            status="ok",
            line=task.line,
            api=task.api.value,
            model_requested=_model_of(task),
        )
        try:
            context = task_context(plan.recipe, item.view(plan.recipe), task, view, results)
            payload = build_payload(
                plan.engine,
                task,
                context,
                transcript_id=transcript.id,
                transcript_text=transcript.text,
            )
        except TemplateProblem as problem:
            return _failed(record, problem.message), None
        label = f"{plan.recipe.name}/{item.name}/{task.name}"
        try:
            began = time.monotonic()
            completion = await self._complete(task, payload, label, record)
        except ApiError as exc:
            record.retries = exc.retries
            return _failed(record, str(exc)), None
        _record_completion(record, completion, time.monotonic() - began, task)
        reply = _reply_text(completion)
        finished = await asyncio.to_thread(self._finish, task, folder, view, reply, record)
        if record.asked and finished[1] is not None and _cacheable(completion):
            # Only a reply that post-processed cleanly is kept: a broken or cut-off one
            # must be asked again on the next run, not replayed forever.
            await self._remember(record.cache_key or "", label, payload, completion)
        return finished

    async def _complete(
        self, task: Task, payload: Payload, label: str, record: TaskRecord
    ) -> Completion:
        """The reply to ``payload``: from the cache when allowed and present, else asked."""
        key = reply_key(task.api.value, payload.path, payload.body, {})
        record.cache_key = key
        if self.store is not None and (self.options.use_cache or self.options.offline):
            cached = await asyncio.to_thread(self.store.reply_get, key)
            if cached is not None:
                record.cached = True
                return completion_from_json(cached.reply)
        if self.options.offline:
            raise NotStored(f"--offline: no cached reply for {label} (cache key {key[:12]})")
        shared = await self._asking.join(key) if self.options.use_cache else None
        if shared is not None:
            record.cached = True
            return shared
        record.asked = True
        if task.api is TaskApi.LEMUR:
            return await self._asking.run(key, lambda: self.services.lemur.task(payload.body))
        return await self._asking.run(key, lambda: self.services.gateway.complete(payload.body))

    async def _remember(
        self, key: str, label: str, payload: Payload, completion: Completion
    ) -> None:
        if self.store is not None:
            await asyncio.to_thread(
                self.store.reply_put,
                key,
                label,
                completion.model,
                dict(payload.body),
                completion_to_json(completion),
            )

    def _finish(
        self, task: Task, folder: Path, view: TranscriptView, reply: str, record: TaskRecord
    ) -> tuple[TaskRecord, TaskResultView | None]:
        output = contained(folder, task.output)
        raw_path = contained(folder, task.raw_output)
        if task.keeps_raw_reply:
            write_atomic(raw_path, reply)
            record.raw_output = display_path(raw_path)
        try:
            if task.quotes is not None:
                quotes = match_quotes(
                    reply,
                    view.sentences,
                    count=task.quotes.count,
                    window=task.quotes.window,
                    overlap=task.quotes.overlap,
                )
                data: Any = [q.as_json() for q in quotes]
                text = json.dumps(data, indent=2, ensure_ascii=False)
                record.post_process = ["match quotes to sentences"]
            else:
                processed = apply(reply, task.post_process, task.json_schema)
                data, text = processed.data, processed.text
                record.post_process = list(processed.steps)
        except PostProcessFailed as exc:
            return _failed(record, f"{exc} (the raw reply is in {raw_path.name})"), None
        write_atomic(output, text if text.endswith("\n") else text + "\n")
        record.output = display_path(output)
        result = TaskResultView.build(task.name, text, data, structured=task.structured)
        if task.expectations:
            self._expect(task, record, text, data, view.text)
        # A failed expectation fails the task but its output stands, so the tasks that
        # need it still run.
        return record, result

    @staticmethod
    def _expect(task: Task, record: TaskRecord, text: str, data: Any, transcript: str) -> None:
        record.expectations = check(
            task.expectations,
            text=text,
            data=data,
            transcript_text=transcript,
            json_schema=task.json_schema,
        )
        failed = [e for e in record.expectations if not e.passed]
        if failed:
            record.status = "failed"
            more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
            record.error = f"expectation failed: {failed[0].expect}: {failed[0].message}{more}"


def _parse(parser: Callable[[Mapping[str, Any]], T], data: Mapping[str, Any]) -> T:
    """An API body through ``parser``; a body of the wrong shape is the item's API error."""
    try:
        return parser(data)
    except ValueError as exc:
        raise ApiError(f"AssemblyAI answered with a malformed transcript: {exc}") from None


def _model_of(task: Task) -> str:
    return task.lemur.final_model if task.lemur is not None else task.model


def _failed(record: TaskRecord, message: str) -> TaskRecord:
    record.status = "failed"
    record.error = message
    return record


def _record_completion(
    record: TaskRecord, completion: Completion, seconds: float, task: Task
) -> None:
    record.model_used = completion.model
    record.fallback_used = bool(
        completion.model and task.api is TaskApi.GATEWAY and completion.model != task.model
    )
    record.input_tokens = completion.usage.input_tokens
    record.output_tokens = completion.usage.output_tokens
    record.request_id = completion.request_id
    record.latency_seconds = round(seconds, 3)
    record.retries = completion.stats.retries


def _cacheable(completion: Completion) -> bool:
    """A reply worth keeping: not cut off by max_tokens, and not empty."""
    return completion.finish_reason != "length" and bool(
        completion.content or completion.tool_calls
    )


def _reply_text(completion: Completion) -> str:
    """The reply's text; a reply that only calls tools is recorded as those calls, in JSON."""
    if completion.content or not completion.tool_calls:
        return completion.content
    return json.dumps([dict(c) for c in completion.tool_calls], indent=2, ensure_ascii=False)


def _seconds(value: float | int | None) -> float | None:
    return float(value) if value is not None else None


def completion_to_json(completion: Completion) -> dict[str, Any]:
    """What the cache keeps of a reply (never a request header, so never a key)."""
    return {
        "content": completion.content,
        "model": completion.model,
        "usage": {
            "input_tokens": completion.usage.input_tokens,
            "output_tokens": completion.usage.output_tokens,
            "total_tokens": completion.usage.total_tokens,
        },
        "request_id": completion.request_id,
        "finish_reason": completion.finish_reason,
        "tool_calls": [dict(c) for c in completion.tool_calls],
        "response_time_ns": completion.response_time_ns,
    }


def completion_from_json(data: Mapping[str, Any]) -> Completion:
    return Completion(
        content=str(data.get("content") or ""),
        model=data.get("model"),
        usage=Usage.from_api(data.get("usage")),
        request_id=data.get("request_id"),
        finish_reason=data.get("finish_reason"),
        tool_calls=tuple(data.get("tool_calls") or ()),
        response_time_ns=data.get("response_time_ns"),
        stats=CallStats(attempts=0, retries=0, seconds=0.0),
    )
