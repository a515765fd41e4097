"""Retry, rate-limit and timeout policy, and the one aiohttp session that applies it.

Every request to AssemblyAI goes through :meth:`HttpClient.request`, so the rules live
here and nowhere else:

* **Timeouts** (:class:`Timeouts`) are a config object, like httpx's: connect, read,
  LLM and upload budgets, plus how long a transcript may take overall.
* **Concurrency** (:class:`Limits`) is one :class:`asyncio.Semaphore` per endpoint
  *family*: uploads, transcript submissions, polls (every GET on ``/v2``), LLM Gateway
  calls and LeMUR calls. A slot is held only while a request is on the wire, never
  during a backoff sleep.
* **Retries** (:class:`RetryPolicy`) are bounded, with full-jitter exponential backoff,
  on 408/409/429/5xx and connection errors; ``Retry-After`` is a minimum wait.
* **Cooldowns**: after a ``Retry-After`` on a family (on the Gateway: on a model) *no*
  request to that family or model is sent until it has passed, whichever coroutine
  wants to send it. ``x-ratelimit-remaining <= 0`` pauses the same way until
  ``x-ratelimit-reset``, so the Gateway's per-model limit (notes §8, 30 requests/min)
  is respected instead of provoked.
* **Paying twice**: ``POST /v2/transcript`` creates a billed job, so it is resent only
  when the server certainly did not act on it: no connection was made, or it answered
  429 (notes §6) or 503 ("currently unable to handle the request", RFC 9110 §15.6.4).
  The notes list only 429; 503 is a deliberate, configurable addition
  (``RetryPolicy.unprocessed_statuses``). A read timeout, a disconnect mid-response or a
  2xx body cut short raise :class:`~runner.api.types.MaybeSubmitted` instead.
  aiohttp itself resends a GET once when a reused keep-alive connection turns out to be
  closed, but never a POST; it drops idle connections after 15 s, sooner than servers
  usually do, so a POST rarely meets a stale connection.

The API key lives in the session's default headers only: it is never logged, never part
of an exception message and never shown by ``repr``.
"""

from __future__ import annotations

import asyncio
import email.utils
import json as jsonlib
import logging
import math
import os
import random
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from types import TracebackType
from typing import IO, Any, Final, Literal, NamedTuple, Self

import aiohttp
from yarl import URL

from runner import __version__
from runner.api.pacing import paced
from runner.api.types import EU_BASE_URL, EU_GATEWAY_URL, US_BASE_URL, US_GATEWAY_URL, CallStats
from runner.errors import ApiError, ConfigurationError, MaybeSubmitted

log = logging.getLogger(__name__)

Family = Literal["uploads", "transcriptions", "polls", "llm", "lemur"]
FAMILIES: Final[tuple[Family, ...]] = ("uploads", "transcriptions", "polls", "llm", "lemur")
GateKey = tuple[Family, str | None]  # (family, model): Gateway limits are per model (§8)
Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]
BodyFactory = Callable[[], IO[bytes]]  # opened afresh for each attempt, so retries resend

USER_AGENT: Final = f"transcript-runner/{__version__}"
SNIPPET_CHARS: Final = 200

MISSING_KEY_MESSAGE: Final = (
    "ASSEMBLYAI_API_KEY is not set; copy your API key from the AssemblyAI dashboard and "
    "run `export ASSEMBLYAI_API_KEY=<your key>` (in CI, store it as a secret and expose "
    "it to the job as that environment variable). `validate` and `render` need no key."
)


# ---------------------------------------------------------------------------------------
# Configuration objects.
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Timeouts:
    """How long to wait, in seconds. Defaults and why:

    * ``connect`` 10 s: TCP + TLS to a healthy API takes well under a second; ten
      seconds separates "slow network" from "unreachable" without stalling a run.
    * ``read`` 60 s: the longest silence allowed while waiting for a REST answer. The
      Python SDK uses one 30 s timeout for everything (notes §9); we allow double,
      because a retry after a timeout is costly for a POST that cannot be resent.
    * ``llm`` 300 s: a non-streamed completion sends nothing until the model has
      finished, and a long answer from a large model can take minutes.
    * ``upload`` 3600 s: the total for one upload (up to 2.2 GB, notes §2), since
      sending the body is not covered by the read timeout.
    * ``transcript_deadline``: how long a transcript may take from submission to
      ``completed``; ``None`` scales with the audio (see :meth:`deadline_for`).
    """

    connect: float = 10.0
    read: float = 60.0
    llm: float = 300.0
    upload: float = 3600.0
    transcript_deadline: float | None = None
    min_transcript_deadline: float = 600.0
    deadline_per_audio_second: float = 3.0
    unknown_duration_deadline: float = 3600.0

    def deadline_for(self, audio_duration: float | None) -> float:
        """Seconds a transcript may take: explicit, else max(600, 3 × duration), else 1 h.

        Three times real time is far beyond AssemblyAI's usual turnaround, so the
        deadline only catches stuck jobs. Without a duration (the common case: the
        queued response does not carry one) an hour covers several hours of audio.
        """
        if self.transcript_deadline is not None:
            return self.transcript_deadline
        if audio_duration is None or audio_duration <= 0:
            return self.unknown_duration_deadline
        return max(self.min_transcript_deadline, self.deadline_per_audio_second * audio_duration)

    def for_family(self, family: Family) -> aiohttp.ClientTimeout:
        """The aiohttp timeout for one attempt on ``family``.

        aiohttp starts its read timer only after the body is sent, so an upload also gets
        a ``total`` budget; everything else is bounded by silence, not by duration.
        """
        if family == "uploads":
            return aiohttp.ClientTimeout(
                total=self.upload, sock_connect=self.connect, sock_read=self.read
            )
        read = self.llm if family in ("llm", "lemur") else self.read
        return aiohttp.ClientTimeout(total=None, sock_connect=self.connect, sock_read=read)


@dataclass(frozen=True, slots=True)
class Limits:
    """Requests allowed on the wire at once, per endpoint family.

    ``transcriptions`` bounds concurrent ``POST /v2/transcript`` calls; the executor may
    also use it to bound jobs in flight (paid accounts run 200+ jobs at once and queue
    the rest, notes §6). ``polls`` covers every GET on ``/v2/transcript``. ``llm`` is
    shared by all Gateway models; their rate limits are handled by cooldowns.
    """

    uploads: int = 4
    transcriptions: int = 32
    polls: int = 16
    llm: int = 8
    lemur: int = 4

    def __post_init__(self) -> None:
        for family in FAMILIES:
            if self.for_family(family) < 1:
                raise ConfigurationError(f"limit for {family} must be at least 1")

    def for_family(self, family: Family) -> int:
        """The slot count for ``family``."""
        value: int = getattr(self, family)
        return value

    def total(self) -> int:
        """All slots together: the connection pool never needs more."""
        return sum(self.for_family(family) for family in FAMILIES)


RETRYABLE_STATUSES: Final = frozenset({408, 409, 429, 500, 502, 503, 504})
# Statuses meaning "not processed": safe to resend even a POST that creates a job.
UNPROCESSED_STATUSES: Final = frozenset({429, 503})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded retries with full-jitter exponential backoff (AWS "full jitter").

    ``retry_statuses`` apply to idempotent requests. ``unprocessed_statuses`` are the
    only statuses on which a non-idempotent request is resent: 429 says the request was
    refused before any work; 503 is taken to mean the same (see the module docstring).
    Idempotent requests follow notes §6: GETs retry on 429, 5xx and network errors.
    A ``Retry-After`` longer than ``max_retry_after`` fails the call instead of stalling
    the run. ``rng`` is injectable so tests get reproducible jitter.
    """

    max_retries: int = 4
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_retry_after: float = 300.0
    retry_statuses: frozenset[int] = RETRYABLE_STATUSES
    unprocessed_statuses: frozenset[int] = UNPROCESSED_STATUSES
    rng: random.Random = field(default_factory=random.Random, repr=False, compare=False)

    def backoff(self, retries: int) -> float:
        """Seconds before retry number ``retries + 1``: uniform in [0, min(max, base·2ⁿ)]."""
        cap = min(self.max_delay, self.base_delay * 2 ** min(retries, 32))
        return self.rng.uniform(0.0, cap)

    def may_retry(self, status: int, *, idempotent: bool) -> bool:
        """Whether a response with ``status`` may be resent."""
        return status in (self.retry_statuses if idempotent else self.unprocessed_statuses)


_REGIONS: Final[dict[str, tuple[str, str]]] = {
    "us": (US_BASE_URL, US_GATEWAY_URL),
    "eu": (EU_BASE_URL, EU_GATEWAY_URL),
}


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """Where to send requests, with which key, under which policy. ``repr`` hides the key."""

    api_key: str = field(repr=False)
    base_url: str = US_BASE_URL
    gateway_url: str = US_GATEWAY_URL
    timeouts: Timeouts = field(default_factory=Timeouts)
    limits: Limits = field(default_factory=Limits)
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    @classmethod
    def from_env(
        cls,
        region: str | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        timeouts: Timeouts | None = None,
        limits: Limits | None = None,
        retry: RetryPolicy | None = None,
    ) -> ClientConfig:
        """Read ``ASSEMBLYAI_API_KEY``, ``ASSEMBLYAI_BASE_URL``, ``ASSEMBLYAI_LLM_GATEWAY_URL``.

        ``region`` ("us" or "eu") picks the default hosts (notes §1); an explicit URL in
        the environment wins over the region, so a loopback test server always works.
        """
        env = os.environ if environ is None else environ
        api_key = env.get("ASSEMBLYAI_API_KEY", "").strip()
        if not api_key:
            raise ConfigurationError(MISSING_KEY_MESSAGE)
        name = (region or "us").strip().lower()
        if name not in _REGIONS:
            raise ConfigurationError(f"unknown region {region!r}; use 'us' or 'eu'")
        base_default, gateway_default = _REGIONS[name]
        return cls(
            api_key=api_key,
            base_url=_clean_url(env.get("ASSEMBLYAI_BASE_URL")) or base_default,
            gateway_url=_clean_url(env.get("ASSEMBLYAI_LLM_GATEWAY_URL")) or gateway_default,
            timeouts=timeouts or Timeouts(),
            limits=limits or Limits(),
            retry=retry or RetryPolicy(),
        )


def _clean_url(value: str | None) -> str | None:
    """An environment URL without surrounding blanks or a trailing slash; empty is unset."""
    cleaned = (value or "").strip().rstrip("/")
    return cleaned or None


# ---------------------------------------------------------------------------------------
# Reading headers and error bodies.
# ---------------------------------------------------------------------------------------


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """``Retry-After`` in seconds: an integer, a float (our fake) or an HTTP date (RFC 9110)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if math.isnan(seconds):
        return None
    return max(0.0, seconds)


def _header_number(headers: Mapping[str, str], name: str) -> float | None:
    """A numeric header, or None when absent or not a number."""
    value = headers.get(name)
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return None if math.isnan(number) else number


def rate_limit_pause(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds to pause when ``x-ratelimit-remaining`` is used up, else None.

    The reset header is "seconds until the window resets" (notes §6, §8); a value that
    looks like a Unix timestamp is converted, in case a service sends that instead.
    """
    remaining = _header_number(headers, "x-ratelimit-remaining")
    reset = _header_number(headers, "x-ratelimit-reset")
    if remaining is None or reset is None or remaining > 0:
        return None
    if reset > 1e9:
        reset -= time.time() if now is None else now
    return reset if reset > 0 else None


@dataclass(frozen=True, slots=True)
class ErrorText:
    """What an error body says, made readable, and the request id if it carried one."""

    message: str
    request_id: str | None = None


ErrorParser = Callable[[int, bytes], ErrorText]

_TAG = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")


def body_snippet(body: bytes, limit: int = SNIPPET_CHARS) -> str:
    """A non-JSON body as one short line: HTML tags dropped, whitespace collapsed."""
    text = _SPACE.sub(" ", _TAG.sub(" ", body.decode("utf-8", errors="replace"))).strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def loads_or_none(body: bytes) -> Any:
    """Parsed JSON, or None for an empty or non-JSON body."""
    try:
        return jsonlib.loads(body) if body else None
    except (ValueError, UnicodeDecodeError):
        return None


def fallback_text(status: int, body: bytes) -> str:
    """The body as text, else the status phrase: 503/504 from proxies are not JSON (§6)."""
    snippet = body_snippet(body)
    if snippet:
        return snippet
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "no error message"


def v2_error_text(status: int, body: bytes) -> ErrorText:
    """``/v2`` and LeMUR errors: ``{"error": "<message>"}`` (spec ``Error``, notes §6)."""
    data = loads_or_none(body)
    if isinstance(data, dict):
        message = data.get("error")
        request_id = data.get("request_id")
        if isinstance(message, str) and message.strip():
            return ErrorText(message.strip(), request_id if isinstance(request_id, str) else None)
    return ErrorText(fallback_text(status, body))


# ---------------------------------------------------------------------------------------
# Cooldowns: "nobody calls this family/model before T".
# ---------------------------------------------------------------------------------------


class Cooldowns:
    """Per (family, model) times before which no request may be sent.

    Waiters re-check after sleeping, because another response may have extended the
    pause meanwhile; each adds a little jitter so a crowd does not stampede at once.
    """

    def __init__(self, clock: Clock, sleep: Sleep, rng: random.Random) -> None:
        self._clock = clock
        self._sleep = sleep
        self._rng = rng
        self._until: dict[GateKey, float] = {}

    def pause(self, key: GateKey, seconds: float) -> None:
        """Close the gate for ``seconds`` from now (never shortens an existing pause)."""
        until = self._clock() + seconds
        if until > self._until.get(key, 0.0):
            self._until[key] = until

    def remaining(self, key: GateKey) -> float:
        """Seconds until the gate opens; 0 when open."""
        return max(0.0, self._until.get(key, 0.0) - self._clock())

    async def wait(self, key: GateKey) -> None:
        """Return once the gate for ``key`` is open."""
        while (left := self.remaining(key)) > 0:
            await self._sleep(left + self._rng.uniform(0.0, min(0.05 * left, 1.0)))

    def snapshot(self) -> dict[str, float]:
        """Open pauses as ``"family"`` or ``"family:model"`` → seconds left."""
        now = self._clock()
        return {
            f"{family}:{model}" if model else family: round(until - now, 3)
            for (family, model), until in self._until.items()
            if until > now
        }


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


class _Malformed(Exception):
    """A 2xx answer whose body should be JSON but is not (cut short, or garbage)."""

    def __init__(self, body: bytes) -> None:
        super().__init__(body_snippet(body))


class _Raw(NamedTuple):
    status: int
    headers: Mapping[str, str]
    body: bytes


# What can go wrong between sending and having the whole answer.
_TRANSPORT_ERRORS: Final = (
    aiohttp.ClientConnectionError,
    aiohttp.ClientPayloadError,
    TimeoutError,
    _Malformed,
)


def never_sent(exc: BaseException) -> bool:
    """True only when no connection was made, so the server cannot have seen the request."""
    return isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError)


def _transport_retryable(exc: BaseException, *, idempotent: bool) -> bool:
    """Whether a transport failure may be retried. TLS certificate errors never will heal."""
    if isinstance(exc, aiohttp.ClientSSLError):
        return False
    return idempotent or never_sent(exc)


def describe_transport_error(exc: BaseException) -> str:
    """A short, key-free description of a transport failure."""
    if isinstance(exc, _Malformed):
        return f"the response is not valid JSON: {exc}"
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return "timed out while connecting"
    if isinstance(exc, aiohttp.ClientConnectorError):
        error = exc.os_error
        reason = os.strerror(error.errno) if error.errno else (error.strerror or str(error))
        return f"could not connect to {exc.host}:{exc.port} ({reason})"
    if isinstance(exc, TimeoutError):
        return "timed out waiting for the response"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the server closed the connection without a complete response"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "the response body was cut off"
    if isinstance(exc, aiohttp.ClientOSError):
        return f"connection error ({exc.strerror or type(exc).__name__})"
    return f"connection error ({type(exc).__name__})"


def _after(retries: int) -> str:
    """The ``" after 3 retries"`` suffix of a message (empty when there were none)."""
    if retries == 0:
        return ""
    return f" after {retries} {'retry' if retries == 1 else 'retries'}"


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
    ) -> None:
        self.config = config
        self._sleep = sleep
        self._clock = clock
        self._session: aiohttp.ClientSession | None = None
        self._slots = {
            family: asyncio.Semaphore(config.limits.for_family(family)) for family in FAMILIES
        }
        self._gate = Cooldowns(clock, sleep, config.retry.rng)
        self._in_flight: Counter[str] = Counter()
        self._waiting: Counter[str] = Counter()
        self._requests = 0
        self._retries = 0

    def __repr__(self) -> str:
        state = "open" if self._session is not None else "closed"
        return (
            f"HttpClient(base_url={self.config.base_url!r}, "
            f"gateway_url={self.config.gateway_url!r}, {state})"
        )

    async def __aenter__(self) -> Self:
        # allow_redirects=False per request keeps the key on the hosts we were given.
        connector = aiohttp.TCPConnector(limit=self.config.limits.total())
        self._session = aiohttp.ClientSession(
            connector=connector,
            headers={"Authorization": self.config.api_key, "User-Agent": USER_AGENT},
        )
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

    def snapshot(self) -> PolicySnapshot:
        """In-flight and waiting requests per family, totals, and open cooldowns."""
        return PolicySnapshot(
            in_flight_by_family={f: self._in_flight[f] for f in FAMILIES},
            waiting_by_family={f: self._waiting[f] for f in FAMILIES},
            requests=self._requests,
            retries=self._retries,
            paused=self._gate.snapshot(),
        )

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
        describe_error: ErrorParser = v2_error_text,
    ) -> HttpResponse:
        """Send one logical request, retrying under the policy; a 2xx or an exception.

        ``data`` is bytes or a factory opening a fresh binary file per attempt (uploads
        stream from disk). ``expect_json`` treats a 2xx body that is not JSON as a
        transport fault: retried when idempotent, :class:`MaybeSubmitted` otherwise.
        Non-2xx answers become :class:`ApiError` with the message ``describe_error``
        reads from the body.
        """
        route = route_of(method, url)
        key: GateKey = (family, model)
        body, send_headers = _encode(json, data, headers)
        attempt_timeout = timeout or self.config.timeouts.for_family(family)
        started = self._clock()
        retries = 0
        while True:
            try:
                raw = await self._send_once(
                    method, url, key, body, send_headers, attempt_timeout, route
                )
                parsed: Any = _UNPARSED
                if expect_json and _ok(raw.status):
                    parsed = await decode_json(raw.body)
                    if parsed is None:
                        raise _Malformed(raw.body)
            except _TRANSPORT_ERRORS as exc:
                delay = self._transport_delay(route, exc, idempotent=idempotent, retries=retries)
            else:
                if _ok(raw.status):
                    stats = CallStats(retries + 1, retries, self._clock() - started)
                    return HttpResponse(raw.status, raw.headers, raw.body, stats, parsed)
                delay = self._status_delay(route, key, raw, idempotent, retries, describe_error)
            retries += 1
            self._retries += 1
            log.debug("retry %d of %s in %.2f s", retries, route, delay)
            await self._sleep(delay)

    # -- one attempt ---------------------------------------------------------------------

    async def _send_once(
        self,
        method: str,
        url: str,
        key: GateKey,
        body: bytes | BodyFactory | None,
        headers: Mapping[str, str],
        timeout: aiohttp.ClientTimeout,
        route: str,
    ) -> _Raw:
        """Wait for a slot and an open gate, then send once and read the whole answer."""
        session = self._require_session()
        family = key[0]
        await self._admit(key, route)
        self._in_flight[family] += 1
        self._requests += 1
        try:
            with _open_body(body) as payload:
                async with session.request(
                    method,
                    url,
                    data=payload,
                    headers=headers,
                    timeout=timeout,
                    allow_redirects=False,
                ) as response:
                    raw = _Raw(response.status, response.headers, await response.read())
        finally:
            self._in_flight[family] -= 1
            self._slots[family].release()
        pause = rate_limit_pause(raw.headers)
        if pause is not None:
            self._gate.pause(key, pause)
        return raw

    async def _admit(self, key: GateKey, route: str) -> None:
        """Take a slot of the family once its cooldown is over (re-checked under the slot).

        The cooldown is awaited *before* taking a slot, so requests for a paused Gateway
        model do not occupy slots other models could use.
        """
        family = key[0]
        slot = self._slots[family]
        self._waiting[family] += 1
        try:
            while True:
                self._refuse_long_pause(key, route)
                await self._gate.wait(key)
                await slot.acquire()
                if self._gate.remaining(key) <= 0:
                    return
                slot.release()
        finally:
            self._waiting[family] -= 1

    def _refuse_long_pause(self, key: GateKey, route: str) -> None:
        """Fail rather than sit out a cooldown longer than ``max_retry_after``."""
        left = self._gate.remaining(key)
        limit = self.config.retry.max_retry_after
        if left > limit:
            raise ApiError(
                f"{route} not sent: AssemblyAI asked clients to wait {left:.0f} s, longer "
                f"than the {limit:g} s this run allows (RetryPolicy.max_retry_after)",
                endpoint=route,
            )

    def _require_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("HttpClient is not open; use `async with HttpClient(config)`")
        return self._session

    # -- deciding what a failure means ------------------------------------------------------

    def _transport_delay(
        self, route: str, exc: BaseException, *, idempotent: bool, retries: int
    ) -> float:
        """The backoff before retrying a transport failure, or raise the final error."""
        what = describe_transport_error(exc)
        if not _transport_retryable(exc, idempotent=idempotent):
            if idempotent or never_sent(exc):
                raise ApiError(f"{route} failed{_after(retries)}: {what}", endpoint=route) from exc
            raise MaybeSubmitted(
                f"{route} got no usable answer ({what}); the request may have reached "
                "AssemblyAI; not resent to avoid paying twice",
                endpoint=route,
                retries=retries,
            ) from exc
        if retries >= self.config.retry.max_retries:
            raise ApiError(
                f"{route} failed{_after(retries)}: {what}", endpoint=route, retries=retries
            ) from exc
        return paced(self.config.retry.backoff(retries))

    def _status_delay(
        self,
        route: str,
        key: GateKey,
        raw: _Raw,
        idempotent: bool,
        retries: int,
        describe_error: ErrorParser,
    ) -> float:
        """The wait before retrying an error status, or raise :class:`ApiError`.

        A ``Retry-After`` closes the gate for the whole family (or model) first, even when
        this call gives up, so no other coroutine sends early.
        """
        policy = self.config.retry
        retry_after = parse_retry_after(raw.headers.get("Retry-After"))
        if retry_after is not None and raw.status in policy.retry_statuses:
            self._gate.pause(key, retry_after)
        retryable = policy.may_retry(raw.status, idempotent=idempotent)
        too_long = retry_after is not None and retry_after > policy.max_retry_after
        if not retryable or retries >= policy.max_retries or too_long:
            raise self._status_error(route, raw, retries, describe_error)
        return max(paced(policy.backoff(retries)), retry_after or 0.0)

    @staticmethod
    def _status_error(route: str, raw: _Raw, retries: int, describe_error: ErrorParser) -> ApiError:
        """``"POST /v2/transcript failed (400): format_text must be a Boolean"``."""
        text = describe_error(raw.status, raw.body)
        return ApiError(
            f"{route} failed ({raw.status}){_after(retries)}: {text.message}",
            status=raw.status,
            request_id=text.request_id,
            endpoint=route,
            retries=retries,
        )


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

    aiohttp sends a file object with Content-Length, reading it in chunks, so an upload
    never holds the whole file in memory.
    """
    if body is None or isinstance(body, bytes):
        return nullcontext(body)
    return body()
