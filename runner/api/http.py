"""Retry, rate-limit and timeout policy, and the one aiohttp session that applies it.

Every request (to AssemblyAI, and to the OpenAI-compatible LLM and speech servers a
recipe names, each with a client of its own) goes through :meth:`HttpClient.request`,
so the rules live here and nowhere else:

* **Timeouts** (:class:`~runner.api.config.Timeouts`) are a config object, like
  httpx's: connect, read, LLM and upload budgets, plus how long a transcript may take.
* **Concurrency** (:class:`~runner.api.config.Limits`) is one limit per endpoint
  *family*: uploads, transcript submissions, polls (every GET on ``/v2``), LLM Gateway
  calls, LeMUR calls and files sent to a speech server. Submissions and model calls
  adapt below their ceiling to what the server answers
  (:class:`~runner.api.concurrency.AdaptiveLimit`). A slot is held only while a
  request is on the wire, never during a backoff sleep or while it is paced.
* **Pacing** (:mod:`runner.api.buckets`): once a Gateway model's ``x-ratelimit-*``
  headers are seen, its requests leave one every ``window / limit`` seconds, so the
  window is not overrun by a burst.
* **Memory**: answers are read whole, each at most ``MAX_BODY``, and every client
  of a run shares one :class:`~runner.api.transport.ByteBudget` of bytes being read
  at once, so many large answers arriving together cannot exhaust memory.
* **Retries** (:class:`~runner.api.config.RetryPolicy`) are bounded, with full-jitter
  exponential backoff, on 408/409/429/5xx and connection errors; ``Retry-After`` is a minimum wait.
* **Cooldowns**: after a ``Retry-After`` on a family (on the Gateway: on a model) *no*
  request to that family or model is sent until it has passed, whichever coroutine
  wants to send it. ``x-ratelimit-remaining <= 0`` on a gate that is not paced
  (below 0 on one that is) pauses the same way until ``x-ratelimit-reset``, so the
  Gateway's per-model limit (notes §8, 30 requests/min) is respected, not provoked.
* **Paying twice**: ``POST /v2/transcript`` creates a billed job, so it is resent only
  when the server certainly did not act on it: no connection was made, or it answered
  429 (notes §6; ``RetryPolicy.unprocessed_statuses``). A 5xx may come from a proxy
  after the API acted, so it is not resent here; a read timeout, a disconnect
  mid-response or a 2xx body cut short raise :class:`~runner.errors.MaybeSubmitted`.
  The executor then looks for the job in the account's transcript list before it
  submits again (``runner.execute.transcribe``).
  aiohttp itself resends a GET once when a reused keep-alive connection turns out to be
  closed, but never a POST; it drops idle connections after 15 s, sooner than servers
  usually do, so a POST rarely meets a stale connection.

The API key lives in the session's default headers only: it is never logged, never part
of an exception message and never shown by ``repr``. Whatever a server says back is
taken through the run's :class:`~runner.api.secrets.Secrets` as it is read: each body,
and each message made of a failure, in every form a key could come back in.
"""

from __future__ import annotations

import asyncio
import contextlib
import json as jsonlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from types import TracebackType
from typing import IO, Any, Final, NamedTuple, Self

import aiohttp
from yarl import URL

from runner import __version__
from runner.api.buckets import Buckets, Rate
from runner.api.concurrency import AdaptiveLimit
from runner.api.config import ADAPTIVE, ClientConfig
from runner.api.cooldowns import Clock, Cooldowns, Sleep, gate_of
from runner.api.families import FAMILIES, Family
from runner.api.pacing import paced
from runner.api.replies import (
    ErrorParser,
    ErrorText,
    loads_or_none,
    parse_retry_after,
    rate_limit_pause,
    rate_remaining,
    v2_error_text,
)
from runner.api.secrets import Secrets
from runner.api.transport import (
    TRANSPORT_ERRORS,
    BodyReader,
    ByteBudget,
    Malformed,
    ReservedNameResolver,
    Unreadable,
    describe_transport_error,
    never_sent,
    read_capped,
    transport_retryable,
)
from runner.api.types import CallStats
from runner.errors import ApiError, KeyRefused, MaybeSubmitted

log = logging.getLogger(__name__)

# (family, model): the slots a request takes, and with gate_of() the cooldown it waits on.
RequestKey = tuple[Family, str | None]

# Opened afresh for each attempt, so a retry resends the whole body: a file (an upload
# streamed from disk), or a multipart form around a file opened for that attempt.
BodyFactory = Callable[[], AbstractContextManager[IO[bytes] | aiohttp.FormData]]

# Seconds the other requests wait for the client's first answer before going anyway.
FIRST_ANSWER_WAIT: Final = 2.0
USER_AGENT: Final = f"transcript-runner/{__version__}"

# ---------------------------------------------------------------------------------------
# The client.
# ---------------------------------------------------------------------------------------


_UNPARSED: Any = object()
# Bodies above this size are decoded in a worker thread: a finished transcript is
# ~150 KB and takes milliseconds to parse, and dozens finishing together would
# otherwise stall the event loop (and with it the reading of 429s) for a second.
LARGE_BODY = 64 * 1024


async def decode_json(body: bytes) -> Any:
    """:func:`loads_or_none`, off the event loop for large bodies."""
    if len(body) > LARGE_BODY:
        return await asyncio.to_thread(loads_or_none, body)
    return loads_or_none(body)


def json_object(body: bytes) -> dict[str, Any]:
    """A body that must be a JSON object (every JSON answer the APIs send is one)."""
    data = loads_or_none(body)
    if data is None:
        raise Unreadable("not valid JSON")
    if not isinstance(data, dict):
        raise Unreadable(f"JSON that is not an object (a {type(data).__name__})")
    return data


async def read_body(body: bytes, read: BodyReader) -> Any:
    """``read(body)``, off the event loop for large bodies; a ``ValueError`` (a body of
    the wrong shape, cut short, garbage) is :class:`Malformed`: a transport fault."""
    try:
        if len(body) > LARGE_BODY:
            return await asyncio.to_thread(read, body)
        return read(body)
    except Unreadable as exc:
        raise Malformed(body, str(exc)) from None
    except (ValueError, RecursionError) as exc:
        raise Malformed(body, f"not usable ({exc})") from None


class HttpResponse(NamedTuple):
    """A successful (2xx) answer: ``(status, headers, body, stats)``."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    stats: CallStats

    data: Any = _UNPARSED

    def json(self) -> Any:
        """The body parsed as JSON (parsed once, when the request expected JSON)."""
        return jsonlib.loads(self.body) if self.data is _UNPARSED else self.data


@dataclass(frozen=True, slots=True)
class PolicySnapshot(Mapping[str, int]):
    """Counters for the progress display.

    The attributes break counts down by family; as a mapping it is the flat totals a
    status line wants: ``in_flight``, ``waiting``, ``requests``, ``retries``, ``paused``.
    """

    in_flight_by_family: Mapping[str, int]  # requests on the wire
    waiting_by_family: Mapping[str, int]  # requests waiting for a slot or a cooldown
    requests: int  # HTTP requests sent, retries included
    retries: int
    paused: Mapping[str, float]  # "family" or "family:model" → seconds until allowed
    retries_by_family: Mapping[str, int] = field(default_factory=dict)  # those sent again
    allowed_by_family: Mapping[str, int] | None = None  # the adaptive limits, now

    def _totals(self) -> dict[str, int]:
        return {
            "in_flight": sum(self.in_flight_by_family.values()),
            "waiting": sum(self.waiting_by_family.values()),
            "requests": self.requests,
            "retries": self.retries,
            "paused": len(self.paused),
        }

    def __getitem__(self, key: str) -> int:
        return self._totals()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._totals())

    def __len__(self) -> int:
        return len(self._totals())


class _Raw(NamedTuple):
    status: int
    headers: Mapping[str, str]
    body: bytes


# What can go wrong between sending and having the whole answer.
def _after(retries: int, elapsed: float = 0.0) -> str:
    """The ``" after 3 retries (41 s)"`` suffix of a message (empty when there were none)."""
    if retries == 0:
        return ""
    spent = f" ({elapsed:.0f} s)" if elapsed >= 1 else ""
    return f" after {retries} {'retry' if retries == 1 else 'retries'}{spent}"


def _sends(retries: int) -> str:
    """`` to its 3rd send (the 2 before were refused unprocessed)``; empty for the first.

    A request that is not resent blindly was sent again only after answers saying it
    had not been acted on (a 429, no connection): the message says so, and counts."""
    if retries == 0:
        return ""
    sends = retries + 1
    suffix = "th" if sends % 100 in (11, 12, 13) else {2: "nd", 3: "rd"}.get(sends % 10, "th")
    ordinal = f"{sends}{'st' if sends % 10 == 1 and sends % 100 != 11 else suffix}"
    before = "the one before was" if retries == 1 else f"the {retries} before were"
    return f" to its {ordinal} send ({before} refused unprocessed)"


def route_of(method: str, url: str) -> str:
    """``"POST /v2/transcript"``: the method and path, as messages name endpoints."""
    return f"{method.upper()} {URL(url).path}"


class HttpClient:
    """Owns one :class:`aiohttp.ClientSession` and applies the policy to every request.

    Use as ``async with HttpClient(config) as http``. ``sleep`` and ``clock`` are
    injectable for tests; they drive backoff and cooldowns.
    """

    def __init__(
        self,
        config: ClientConfig,
        *,
        sleep: Sleep = asyncio.sleep,
        clock: Clock = time.monotonic,
        authorization: str | None = None,
        assemblyai: bool = True,
        headers: Mapping[str, str] | None = None,
        secrets: Secrets | None = None,
        budget: ByteBudget | None = None,
    ) -> None:
        """``budget`` bounds the bytes of answers being read at once; a run gives all
        its clients the same one. ``assemblyai`` False: a client for another server (an
        OpenAI-compatible provider), which gets ``authorization`` (e.g. ``Bearer KEY``;
        None: no header) instead of the AssemblyAI key, and whose 401s fail their
        request instead of stopping the run as a refused AssemblyAI key. ``secrets``:
        every key of the run, redacted from what this server says (its own key is always
        among them)."""
        self.config = config
        self._assemblyai = assemblyai
        self._server = "AssemblyAI" if assemblyai else "the server"  # as messages name it
        # An empty key (a run that sends AssemblyAI nothing) is no header at all.
        self._authorization = (config.api_key or None) if assemblyai else authorization
        self._headers = dict(headers or {})
        self._sleep = sleep
        self._clock = clock
        self._session: aiohttp.ClientSession | None = None
        self._slots = slots_for(config, clock)
        # Made once: an aiohttp timeout per request is a measurable share of its CPU.
        self._timeouts = {family: config.timeouts.for_family(family) for family in FAMILIES}
        self._gate = Cooldowns(clock, sleep, config.retry.rng)
        self._buckets = Buckets(
            clock,
            sleep,
            {model: Rate(n, 60.0) for model, n in config.llm_per_minute.items()},
            {_gate_key(gate): Rate(*rate) for gate, rate in config.known_rates.items()},
        )
        self._in_flight: Counter[str] = Counter()
        self._waiting: Counter[str] = Counter()
        self._requests = 0
        self._retries = 0
        self._retries_by_family: Counter[str] = Counter()
        self._key_refused: KeyRefused | None = None
        self._first_sent = False  # has the first request of this client gone out?
        self._stopping = False  # set by stop_sending(): the run is being stopped
        own = {config.api_key, (authorization or "").removeprefix("Bearer ").strip()}
        self.secrets = (secrets or Secrets()).with_keys(own)
        self._first_answer = asyncio.Event()
        self.budget = budget or ByteBudget()

    def __repr__(self) -> str:
        state = "open" if self._session is not None else "closed"
        return (
            f"HttpClient(base_url={self.config.base_url!r}, "
            f"gateway_url={self.config.gateway_url!r}, {state})"
        )

    async def __aenter__(self) -> Self:
        # allow_redirects=False per request keeps the key on the hosts we were given.
        connector = aiohttp.TCPConnector(
            limit=self.config.limits.total(), resolver=ReservedNameResolver()
        )
        headers = {**self._headers, "User-Agent": USER_AGENT}
        if self._authorization is not None:
            headers["Authorization"] = self._authorization
        self._session = aiohttp.ClientSession(connector=connector, headers=headers)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def stop_sending(self) -> None:
        """From now on nothing new is sent: requests waiting for their turn fail as not
        sent; those already on the wire finish (a created job gets recorded)."""
        self._stopping = True

    async def _redact(self, body: bytes) -> bytes:
        """The body with every form of every key of the run replaced, whatever a server
        echoes (an error quoting the ``Authorization`` header, a proxy's debug page, a
        key written with JSON escapes or in base64): what is read here is all that
        reaches messages, outputs, the manifest and the cache. Off the event loop for
        a large body, as its decoding is."""
        if len(body) > LARGE_BODY:
            return await asyncio.to_thread(self.secrets.redact_bytes, body)
        return self.secrets.redact_bytes(body)

    def _redacting(self, describe_error: ErrorParser) -> ErrorParser:
        """``describe_error`` whose message is redacted once more, as text: a parser may
        join pieces of a body (a message and its details) into a key."""

        def described(status: int, body: bytes) -> ErrorText:
            text = describe_error(status, body)
            return ErrorText(self.secrets.redact(text.message), text.request_id)

        return described

    def snapshot(self) -> PolicySnapshot:
        """In-flight and waiting requests per family, totals, and open cooldowns."""
        return PolicySnapshot(
            in_flight_by_family={f: self._in_flight[f] for f in FAMILIES},
            waiting_by_family={f: self._waiting[f] for f in FAMILIES},
            requests=self._requests,
            retries=self._retries,
            paused=self._gate.snapshot(),
            retries_by_family=dict(self._retries_by_family),
            allowed_by_family={f: self._slots[f].allowed for f in FAMILIES},
        )

    def learned_rates(self) -> dict[str, Rate]:
        """What the servers' rate-limit headers said, by gate (``"llm:MODEL"``)."""
        return self._buckets.learned()

    def peak_in_flight(self, family: Family) -> int:
        """The most requests of ``family`` on the wire at once so far."""
        return self._slots[family].peak

    async def request(
        self,
        method: str,
        url: str,
        *,
        family: Family,
        json: Any = None,
        data: bytes | BodyFactory | None = None,
        idempotent: bool,
        model: str | None = None,
        timeout: aiohttp.ClientTimeout | None = None,
        headers: Mapping[str, str] | None = None,
        expect_json: bool = False,
        read: BodyReader | None = None,
        describe_error: ErrorParser = v2_error_text,
        resend_statuses: frozenset[int] | None = None,
        shape: Callable[[Any], object] | None = None,
    ) -> HttpResponse:
        """Send one logical request, retrying under the policy; a 2xx or an exception.

        ``resend_statuses`` widens, for one non-idempotent request whose repetition costs
        nothing (an upload), the statuses on which it is sent again.

        ``data`` is bytes or a factory opening a fresh binary file per attempt (uploads
        stream from disk). ``read`` is what a 2xx body must read as (``expect_json``: a
        JSON object), run inside the retry loop: a body it refuses with a ``ValueError``
        is a transport fault, retried when idempotent, :class:`MaybeSubmitted`
        otherwise; what it returns is the response's ``data``. ``shape``, called on what
        ``read`` returned, does the same for JSON that is not what the endpoint sends by
        raising :class:`~runner.api.transport.Misshapen`.
        Non-2xx answers become :class:`ApiError` with the message ``describe_error``
        reads from the body.
        """
        route = route_of(method, url)
        describe_error = self._redacting(describe_error)
        key: RequestKey = (family, model)
        body, send_headers = _encode(json, data, headers)
        attempt_timeout = timeout or self._timeouts[family]
        reader = read or (json_object if expect_json else None)
        started = self._clock()
        # The retry budget counts from the first failure: waiting for a slot, or for a
        # long first attempt (an upload, a transcription), is not retrying.
        failed_at: float | None = None
        retries = 0
        timed_out = False
        while True:
            try:
                raw = await self._send_once(
                    method, url, key, body, send_headers, attempt_timeout, route, describe_error
                )
                parsed: Any = _UNPARSED
                if reader is not None and _ok(raw.status):
                    parsed = await read_body(raw.body, reader)
                    if shape is not None:
                        shape(parsed)
            except TRANSPORT_ERRORS as exc:
                failed_at = self._clock() if failed_at is None else failed_at
                elapsed = self._clock() - failed_at
                if _timed_out(exc) and family in ONE_MORE_AFTER_TIMEOUT:
                    if timed_out:
                        raise self._hung(route, retries, attempt_timeout) from exc
                    timed_out = True
                delay = self._transport_delay(route, exc, idempotent, retries, elapsed)
            else:
                if _ok(raw.status):
                    stats = CallStats(retries + 1, retries, self._clock() - started)
                    return HttpResponse(raw.status, raw.headers, raw.body, stats, parsed)
                resend = idempotent or raw.status in (resend_statuses or ())
                failed_at = self._clock() if failed_at is None else failed_at
                elapsed = self._clock() - failed_at
                delay = self._status_delay(
                    route, key, raw, resend, retries, elapsed, describe_error
                )
            retries += 1
            self._retries += 1
            self._retries_by_family[family] += 1
            log.debug("retry %d of %s in %.2f s", retries, route, delay)
            await self._sleep(delay)

    # -- one attempt ---------------------------------------------------------------------

    async def _send_once(
        self,
        method: str,
        url: str,
        key: RequestKey,
        body: bytes | BodyFactory | None,
        headers: Mapping[str, str],
        timeout: aiohttp.ClientTimeout,
        route: str,
        describe_error: ErrorParser,
    ) -> _Raw:
        """Send once and read the whole answer; the client's first request goes alone.

        The others wait for its answer (at most ``FIRST_ANSWER_WAIT`` seconds): a wrong
        key then costs one refused request, not one per item in flight.
        """
        if not self._first_sent:
            self._first_sent = True  # this request goes first; the others wait for it
            try:
                raw = await self._send_admitted(method, url, key, body, headers, timeout, route)
                if self._assemblyai and _refuses_key(key[0], raw.status):
                    text = describe_error(raw.status, raw.body)
                    self._key_refused = KeyRefused(route, raw.status, text.message)
                return raw
            finally:
                self._first_answer.set()
        if not self._first_answer.is_set():
            # Until the first answer a wrong key would be refused once per request in
            # flight; a slow first answer (a long upload or LLM call) holds no one long.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._first_answer.wait(), FIRST_ANSWER_WAIT)
        if self._key_refused is not None:
            raise self._key_refused  # the key was refused: nothing more is sent
        return await self._send_admitted(method, url, key, body, headers, timeout, route)

    async def _send_admitted(
        self,
        method: str,
        url: str,
        key: RequestKey,
        body: bytes | BodyFactory | None,
        headers: Mapping[str, str],
        timeout: aiohttp.ClientTimeout,
        route: str,
    ) -> _Raw:
        """Wait for a slot and an open gate, then send once and read the whole answer."""
        session = self._require_session()
        family = key[0]
        await self._admit(key, route)
        if self._stopping:  # stopped while this request waited for its turn
            self._slots[family].release()
            raise ApiError(f"{route} not sent: the run is stopping", endpoint=route)
        self._in_flight[family] += 1
        self._requests += 1
        sent = self._clock()
        outcome: tuple[float | None, bool] = (None, False)  # (latency, overloaded)
        try:
            with _open_body(body) as payload, self.budget.reader() as token:
                async with session.request(
                    method,
                    url,
                    data=payload,
                    headers=headers,
                    timeout=timeout,
                    allow_redirects=False,
                ) as response:
                    overloaded = response.status in OVERLOAD_STATUSES
                    outcome = (None if overloaded else self._clock() - sent, overloaded)
                    body = await self._redact(await read_capped(response, self.budget, token))
                    raw = _Raw(response.status, response.headers, body)
        except TimeoutError:
            outcome = (None, True)
            raise
        finally:
            self._in_flight[family] -= 1
            self._slots[family].release(outcome[0], overloaded=outcome[1])
            self._buckets.answered(gate_of(*key))
        gate = gate_of(*key)
        # Whether this request was paced: a first answer's "0 left" is honoured as a
        # pause, since the requests sent beside it were not spread.
        paced = self._buckets.paced(gate)
        self._buckets.observe(gate, raw.headers)
        pause = rate_limit_pause(raw.headers)
        remaining = rate_remaining(raw.headers)
        paced = paced and remaining is not None and remaining >= 0
        if pause is not None and not paced:
            self._gate.pause(gate, pause)
            self._buckets.defer(gate, self._clock() + pause)
        return raw

    async def _admit(self, key: RequestKey, route: str) -> None:
        """Take a slot of the family once its cooldown is over (re-checked under the slot).

        The cooldown is awaited *before* taking a slot, so requests for a paused Gateway
        model do not occupy slots other models could use.
        """
        family = key[0]
        slot = self._slots[family]
        self._waiting[family] += 1
        gate = gate_of(*key)
        try:
            while True:
                self._refuse_long_pause(key, route)
                await self._gate.wait(gate)
                await self._buckets.wait(gate, FIRST_ANSWER_WAIT)
                if self._gate.remaining(gate) > 0:
                    continue  # paused while it waited for its turn: a new turn after it
                await slot.acquire()
                if self._gate.remaining(gate) <= 0:
                    return
                slot.release()
        finally:
            self._waiting[family] -= 1

    def _refuse_long_pause(self, key: RequestKey, route: str) -> None:
        """Fail rather than sit out a cooldown longer than ``max_retry_after``."""
        left = self._gate.remaining(gate_of(*key))
        limit = self.config.retry.max_retry_after
        if left > limit:
            raise ApiError(
                f"{route} not sent: {self._server} asked clients to wait {left:.0f} s, longer "
                f"than the {limit:g} s this run allows (RetryPolicy.max_retry_after)",
                endpoint=route,
            )

    def _require_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("HttpClient is not open; use `async with HttpClient(config)`")
        return self._session

    # -- deciding what a failure means ------------------------------------------------------

    def _hung(self, route: str, retries: int, timeout: aiohttp.ClientTimeout) -> ApiError:
        """A model call that timed out twice: hung, not a blip; each may have been paid."""
        return ApiError(
            f"{route} timed out twice ({timeout.total:g} s each){_after(retries)}: the "
            f"model or {self._server} is not answering; not sent a third time (a "
            "timed-out call may still be billed); raise timeouts.llm if replies are "
            "this slow",
            endpoint=route,
            retries=retries,
        )

    def _transport_delay(
        self, route: str, exc: BaseException, idempotent: bool, retries: int, elapsed: float
    ) -> float:
        """The backoff before retrying a transport failure, or raise the final error."""
        what = self.secrets.redact(describe_transport_error(exc))
        if not transport_retryable(exc, idempotent=idempotent):
            if idempotent or never_sent(exc):
                raise ApiError(f"{route} failed{_after(retries)}: {what}", endpoint=route) from exc
            raise MaybeSubmitted(
                f"{route} got no usable answer{_sends(retries)} ({what}); the request may "
                f"have reached {self._server}; not sent again, to avoid paying twice",
                endpoint=route,
                retries=retries,
            ) from exc
        delay = paced(self.config.retry.backoff(retries))
        if self.config.retry.gives_up(retries, elapsed, delay):
            raise ApiError(
                f"{route} failed{_after(retries, elapsed)}: {what}",
                endpoint=route,
                retries=retries,
            ) from exc
        return delay

    def _status_delay(
        self,
        route: str,
        key: RequestKey,
        raw: _Raw,
        idempotent: bool,
        retries: int,
        elapsed: float,
        describe_error: ErrorParser,
    ) -> float:
        """The wait before retrying an error status, or raise :class:`ApiError`.

        A ``Retry-After`` closes the gate for the whole family (or model) first, even when
        this call gives up, so no other coroutine sends early.
        """
        policy = self.config.retry
        retry_after = parse_retry_after(raw.headers.get("Retry-After"))
        if retry_after is not None and raw.status in policy.retry_statuses:
            self._gate.pause(gate_of(*key), retry_after)
            self._buckets.defer(gate_of(*key), self._clock() + retry_after)
        retryable = policy.may_retry(raw.status, idempotent=idempotent)
        too_long = retry_after is not None and retry_after > policy.max_retry_after
        backoff = paced(policy.backoff(retries))
        delay = max(backoff, retry_after or 0.0)
        # The retry budget bounds our own backoff; a wait the server asks for is its own
        # bound (max_retry_after), which every request of the family honours alike.
        if not retryable or too_long or policy.gives_up(retries, elapsed, backoff):
            raise self._status_error(route, key[0], raw, retries, describe_error, elapsed)
        return delay

    def _status_error(
        self,
        route: str,
        family: Family,
        raw: _Raw,
        retries: int,
        describe_error: ErrorParser,
        elapsed: float = 0.0,
    ) -> ApiError:
        """``"POST /v2/transcript failed (400): format_text must be a Boolean"``.

        A refused key (see :func:`_refuses_key`) is raised as :class:`KeyRefused`, and
        every later request of this client is refused before it is sent.
        """
        text = describe_error(raw.status, raw.body)
        if self._assemblyai and _refuses_key(family, raw.status):
            self._key_refused = KeyRefused(route, raw.status, text.message)
            raise self._key_refused
        return ApiError(
            f"{route} failed ({raw.status}){_after(retries, elapsed)}: {text.message}",
            status=raw.status,
            request_id=text.request_id,
            endpoint=route,
            retries=retries,
        )


def _gate_key(text: str) -> tuple[str, str | None]:
    """``"llm:MODEL"`` (as :meth:`Buckets.learned` names gates) as a gate key."""
    family, _, model = text.partition(":")
    return family, model or None


# Answers that say the server is overloaded: the family's limit halves.
OVERLOAD_STATUSES: Final = frozenset({429, 503})


def slots_for(config: ClientConfig, clock: Clock) -> dict[Family, AdaptiveLimit]:
    """Each family's limit: adaptive below its ceiling, or fixed at it."""
    limits = config.limits
    return {
        family: AdaptiveLimit(
            limits.for_family(family),
            limits.start(family),
            clock=clock,
            adaptive=family in ADAPTIVE,
            timeout=config.timeouts.for_family(family).total,
        )
        for family in FAMILIES
    }


# Families whose timed-out call is sent once more, and only once: a model's reply
# arrives whole when it is done, so one timeout may be a slow reply, two are a hang.
ONE_MORE_AFTER_TIMEOUT: Final = frozenset({"llm", "lemur"})


def _timed_out(exc: BaseException) -> bool:
    """A timeout waiting for the answer (a connect timeout is ``never_sent``)."""
    return isinstance(exc, TimeoutError) and not never_sent(exc)


def _refuses_key(family: Family, status: int) -> bool:
    """A 401 refuses the key anywhere; a 403 on ``/v2`` refuses the key's project (its
    uploads). On the Gateway a 403 refuses one model to this account: that task's error."""
    return status == 401 or (status == 403 and family not in ("llm", "lemur"))


def _ok(status: int) -> bool:
    return 200 <= status < 300


def _encode(
    json: Any, data: bytes | BodyFactory | None, headers: Mapping[str, str] | None
) -> tuple[bytes | BodyFactory | None, dict[str, str]]:
    """Serialize a JSON body once (it is resent as is on retries) and set its type."""
    merged = dict(headers or {})
    if json is None:
        return data, merged
    merged.setdefault("Content-Type", "application/json")
    return jsonlib.dumps(json, ensure_ascii=False).encode("utf-8"), merged


def _open_body(body: bytes | BodyFactory | None) -> AbstractContextManager[Any]:
    """A context giving this attempt's payload; a factory's file is closed afterwards.

    aiohttp sends a file object (alone, or as a part of a form) reading it in chunks, so
    an upload never holds the whole file in memory.
    """
    if body is None or isinstance(body, bytes):
        return nullcontext(body)
    return body()
