"""Asking the LLM: from the reply cache when allowed, else once per identical request.

The cache key is the exact request (``runner.store.request_key``), so a changed
prompt, model or parameter asks again and an unchanged one never pays twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from runner.api.types import CallStats, Completion, Usage
from runner.errors import ApiError, ConfigurationError, NotStored
from runner.execute.claims import Claims
from runner.execute.services import Services
from runner.execute.single_flight import SingleFlight
from runner.prompt.payloads import Payload
from runner.recipe.model import Task, TaskApi
from runner.results.records import TaskRecord
from runner.store import Store, request_key

log = logging.getLogger(__name__)

# How long a stopping run waits for an LLM reply already on the wire, to cache it: most
# arrive within seconds, and a hung call must not hold a stop for long (a reply costs
# cents; a transcription, which is waited for longer, costs more).
STOP_GRACE_SECONDS = 5.0


class Asker:
    """Sends each task's request to the Gateway or LeMUR, through the reply cache."""

    def __init__(
        self,
        services: Services,
        store: Store | None,
        *,
        use_cache: bool = True,
        offline: bool = False,
        claims: Claims | None = None,
    ) -> None:
        self.services = services
        self.store = store
        self.claims = claims or Claims(store)
        self.use_cache = use_cache  # --no-cache: ask again (identical requests still share)
        self.offline = offline  # --offline: every reply must come from the cache
        # Items of one run sending the same request wait for the first reply.
        self._single_flight: SingleFlight[Completion] = SingleFlight()
        # Keys whose claim went with their reply's commit (:meth:`remember`): nothing
        # is left to let go of in the store when the item is done with them.
        self._let_go: set[str] = set()

    async def reply(
        self, task: Task, payload: Payload, label: str, record: TaskRecord
    ) -> Completion:
        """The reply to ``payload``: from the cache when allowed and present, else asked."""
        return await self.reply_to(payload, request_key(task, payload), label, record)

    async def reply_to(
        self, payload: Payload, key: str, label: str, record: TaskRecord
    ) -> Completion:
        """The reply to ``payload`` (cached under ``key``), from the cache when allowed
        and present, else asked: a task's request, or a judge's."""
        record.cache_key = key
        if self.offline:
            cached = await self._cached(key)
            if cached is None:
                raise NotStored(f"--offline: no cached reply for {label} (cache key {key[:12]})")
            record.cached = True
            return cached
        if self.use_cache and self.store is not None:
            # The cache first; then, since another run sharing this state folder may be
            # asking the same, its reply. The claim is held until the reply is cached
            # (:meth:`remember`), or else until :meth:`release`. One call to the store
            # does both.
            store = self.store
            kept = await self.claims.result_of_others(key, functools.partial(store.reply_get, key))
            if kept is not None:
                record.cached = True
                return completion_from_json(kept.reply)
        shared = await self._single_flight.join(key) if self.use_cache else None
        if shared is not None:
            record.cached = True
            return shared
        record.asked = True
        api = self.services
        # Kept for items asking the same until release(), after the reply is cached.
        if payload.api is TaskApi.LEMUR:
            call = functools.partial(api.lemur.task, payload.body)
        elif payload.provider is not None:
            server = api.providers.get(payload.provider.key)
            if server is None:
                raise ConfigurationError(f"provider {payload.provider.name!r} is not set up")
            call = functools.partial(server.complete, payload.body)
        else:
            call = functools.partial(api.gateway.complete, payload.body)
        job = asyncio.ensure_future(
            self._single_flight.run(
                key, functools.partial(self._asked_and_kept, call, key, label, payload), keep=True
            )
        )
        # Whoever stops waiting for it, its failure is read (never "never retrieved").
        job.add_done_callback(lambda done: done.cancelled() or done.exception())
        try:
            return await asyncio.shield(job)
        except asyncio.CancelledError:
            # The run is stopping: a reply already being paid for is kept for the rerun
            # (the request is on the wire; stop_sending() dropped those that were not).
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(job), STOP_GRACE_SECONDS)
            raise

    async def _asked_and_kept(
        self,
        call: Callable[[], Awaitable[Completion]],
        key: str,
        label: str,
        payload: Payload,
    ) -> Completion:
        """The reply, committed to the cache before anything else is done with it (it is
        processed, written, or asked on from after): a run killed while it processes a
        paid reply has it for the rerun. One that does not process cleanly is forgotten
        after (:meth:`keep_or_forget`), so the next run asks again as before."""
        completion = await call()
        if cacheable(completion):
            await self.remember(key, label, payload, completion)
        return completion

    async def first_reply(
        self, candidates: Sequence[tuple[Task, Payload]], label: str, record: TaskRecord
    ) -> tuple[Task, Payload, Completion]:
        """The first model to answer: the task's, then each client-side fallback in
        order when a request fails (a refused AssemblyAI key still stops the run)."""
        retries = 0
        for index, (task, payload) in enumerate(candidates):
            try:
                completion = await self.reply(task, payload, label, record)
                record.retries = retries
                return task, payload, completion
            except ApiError as exc:
                retries += exc.retries
                record.retries = retries
                if index + 1 == len(candidates):
                    raise
                following = candidates[index + 1][0].model
                log.info("%s: %s failed; trying %s", label, task.model, following)
                await self.release(record.cache_key or "")
                record.cache_key = None
        raise AssertionError("a task has at least one model")  # pragma: no cover

    async def keep_or_forget(self, record: TaskRecord, *, clean: bool) -> None:
        """What the cache keeps of a reply once it is processed, before any file of it
        is written. Every reply was kept the moment it arrived (:meth:`_asked_and_kept`);
        only one that processed ``clean`` stays: a broken one must be asked again on the
        next run, not replayed forever, and a kept one that no longer processes is
        forgotten."""
        if not clean:
            await self.forget(record.cache_key or "")

    async def _cached(self, key: str) -> Completion | None:
        if self.store is None:
            return None
        cached = await self.store.call(self.store.reply_get, key)
        return completion_from_json(cached.reply) if cached is not None else None

    async def forget(self, key: str) -> None:
        """A cached reply that no longer processes cleanly: ask again next time."""
        if self.store is not None:
            await self.store.call(self.store.reply_forget, key)

    async def release(self, key: str) -> None:
        """This item is done with ``key`` (its reply is cached, or failed): the reply
        leaves memory, and a run waiting for it looks again."""
        self._single_flight.forget(key)
        if key in self._let_go:
            self._let_go.discard(key)
            return
        async with self.claims.working_on(key):
            pass

    async def remember(
        self, key: str, label: str, payload: Payload, completion: Completion
    ) -> None:
        """Keep a reply for reruns, and let go of its claim in the same commit: once the
        reply is in the cache, a run sharing the state folder finds it before it looks
        at the claim (:meth:`Claims.result_of_others`), so holding the claim longer
        spares it nothing, and letting go here saves a trip to the store's thread per
        request. (A reply that then does not process cleanly is forgotten, and the
        next run to look asks again, as before.)"""
        if self.store is None:
            return
        store, owner = self.store, self.claims.owner
        body, reply = dict(payload.body), completion_to_json(completion)

        def put_and_let_go() -> None:
            store.reply_put(key, label, completion.model, body, reply)
            store.release_claims(owner, key)

        await store.call(put_and_let_go)
        self._let_go.add(key)


def record_completion(
    record: TaskRecord, completion: Completion, seconds: float, task: Task
) -> None:
    record.model_used = completion.model
    record.fallback_used = bool(
        completion.model and task.api is TaskApi.GATEWAY and completion.model != task.model
    )
    record.input_tokens = completion.usage.input_tokens
    record.output_tokens = completion.usage.output_tokens
    record.request_id = completion.request_id
    record.http_status_code = completion.http_status_code
    record.llm_status_code = completion.llm_status_code
    record.latency_seconds = round(seconds, 3)
    record.retries = completion.stats.retries
    if completion.content and completion.tool_calls:
        record.tool_calls = [dict(call) for call in completion.tool_calls]


def cacheable(completion: Completion) -> bool:
    """A reply worth keeping: not cut off by max_tokens, and not empty."""
    return completion.finish_reason != "length" and bool(
        completion.content or completion.tool_calls
    )


def reply_text(completion: Completion) -> str:
    """The reply's text; a reply that only calls tools is recorded as those calls, in JSON."""
    if completion.content or not completion.tool_calls:
        return completion.content
    return json.dumps([dict(c) for c in completion.tool_calls], indent=2, ensure_ascii=False)


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
        "http_status_code": completion.http_status_code,
        "llm_status_code": completion.llm_status_code,
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
        http_status_code=data.get("http_status_code"),
        llm_status_code=data.get("llm_status_code"),
    )
