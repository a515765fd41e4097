"""Where requests go and under which policy: URLs and key, timeouts, limits, retries.

Plain frozen objects, like httpx's ``Timeout`` and ``Limits``: a recipe's settings
and the command line's options become one :class:`ClientConfig`, which the HTTP
client (:mod:`runner.api.http`) applies to every request.
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

import aiohttp

from runner.api.families import FAMILIES, Family
from runner.api.hosts import REGIONS, US_BASE_URL, US_GATEWAY_URL
from runner.errors import ConfigurationError

API_KEY_ENV: Final = "ASSEMBLYAI_API_KEY"
MISSING_KEY_MESSAGE: Final = (
    "ASSEMBLYAI_API_KEY is not set; copy your API key from the AssemblyAI dashboard and "
    "run `export ASSEMBLYAI_API_KEY=<your key>` (in CI, store it as a secret and expose "
    "it to the job as that environment variable). `validate` and `render` need no key."
)


@dataclass(frozen=True, slots=True)
class Timeouts:
    """How long to wait, in seconds. Defaults and why:

    * ``connect`` 10 s: TCP + TLS to a healthy API takes well under a second; ten
      seconds separates "slow network" from "unreachable" without stalling a run.
    * ``read`` 60 s: the longest silence allowed while waiting for a REST answer. The
      Python SDK uses one 30 s timeout for everything (notes §9); we allow double,
      because a retry after a timeout is costly for a POST that cannot be resent.
    * ``llm`` 180 s: a non-streamed completion sends nothing until the model has
      finished. The Gateway's default reply is at most 1,000 tokens (notes §8), under
      a minute even at 20 tokens a second; 8,000 tokens at 50 a second take under
      three. A call silent for longer is hung: it is sent once more, and a second
      timeout fails the task (:mod:`runner.api.http`), so a hung model costs a task
      six minutes at most, not ten.
    * ``upload`` 3600 s: the total for one upload (up to 2.2 GB, notes §2), since
      sending the body is not covered by the read timeout.
    * ``speech`` 3600 s: one file on a speech server, sent, decoded and answered; the
      server says nothing while it decodes, and a CPU may decode slower than real time.
    * ``transcript_deadline``: how long a transcript may take from submission to
      ``completed``; ``None`` scales with the audio (see :meth:`deadline_for`).
    """

    connect: float = 10.0
    read: float = 60.0
    llm: float = 180.0
    upload: float = 3600.0
    speech: float = 3600.0
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

        Bounded both by silence (``sock_read``) and by duration (``total``): a server that
        dribbles a byte a second never goes silent, so only a total ends it. A REST
        answer may take ``RESPONSE_READS`` silences in all; an LLM answer arrives whole
        when the model is done, so its silence and its total are the same budget.
        """
        if family == "uploads":
            return aiohttp.ClientTimeout(
                total=self.upload, sock_connect=self.connect, sock_read=self.read
            )
        if family in ("llm", "lemur"):
            return aiohttp.ClientTimeout(
                total=self.llm, sock_connect=self.connect, sock_read=self.llm
            )
        if family == "speech":  # silent while it decodes: only the total bounds it
            return aiohttp.ClientTimeout(
                total=self.speech, sock_connect=self.connect, sock_read=self.speech
            )
        return aiohttp.ClientTimeout(
            total=self.read * RESPONSE_READS, sock_connect=self.connect, sock_read=self.read
        )


@dataclass(frozen=True, slots=True)
class Limits:
    """The most requests allowed on the wire at once, per endpoint family: ceilings.

    ``llm``, ``lemur`` and ``transcriptions`` adapt below their ceiling to what the
    server answers (:class:`~runner.api.concurrency.AdaptiveLimit`): they start at
    ``START`` and grow while replies keep their pace, and back off on refusals and
    queueing. So the defaults are high (a fast server is used fully) and an explicit
    ``--limit`` is only ever a ceiling. Paid accounts run 200+ jobs at once and queue
    the rest (notes §6); the Gateway's rate limit per model is paced by
    :mod:`runner.api.buckets`, not by this count.

    ``uploads``, ``polls`` and ``speech`` stay fixed: an upload is bound by bandwidth,
    polls by the account's request budget (sweeps pace themselves), and a local speech
    server decodes on its CPU, one file after another.
    """

    uploads: int = 4
    transcriptions: int = 200
    polls: int = 16
    llm: int = 256
    lemur: int = 32
    speech: int = 4

    def __post_init__(self) -> None:
        for family in FAMILIES:
            if self.for_family(family) < 1:
                raise ConfigurationError(f"limit for {family} must be at least 1")

    def for_family(self, family: Family) -> int:
        """The ceiling for ``family``."""
        value: int = getattr(self, family)
        return value

    def start(self, family: Family) -> int:
        """Requests allowed at once before anything has been answered."""
        return min(self.for_family(family), START.get(family, self.for_family(family)))

    def total(self) -> int:
        """All slots together: the connection pool never needs more."""
        return sum(self.for_family(family) for family in FAMILIES)


# Where the adaptive families start: the fixed limits of before, right for AssemblyAI.
START: Final[Mapping[Family, int]] = {"transcriptions": 32, "llm": 8, "lemur": 4}
ADAPTIVE: Final = frozenset(START)


RETRYABLE_STATUSES: Final = frozenset({408, 409, 429, 500, 502, 503, 504})
# Statuses meaning "not processed": safe to resend even a POST that creates a job. Only
# a 429 says so for certain (notes §6); a 503 from a proxy may come after the API acted,
# so a submission answered 503 is reconciled against the transcript list instead.
UNPROCESSED_STATUSES: Final = frozenset({429})
# A REST answer may take this many read timeouts in all, however it trickles in.
RESPONSE_READS: Final = 5


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded retries with full-jitter exponential backoff (AWS "full jitter").

    A request is retried until it succeeds, ``max_retries`` retries were spent, or the
    next wait would take it past ``budget`` seconds from its first failure: two minutes
    outlast an ordinary blip (a deploy, a burst of 5xx) without holding a run hostage to
    an outage. Waiting for a slot and the first attempt (an upload, a transcription on
    a speech server: minutes) are not retrying, so they do not spend the budget.

    ``retry_statuses`` apply to idempotent requests. ``unprocessed_statuses`` are the
    only statuses on which a non-idempotent request is resent: 429 says the request was
    refused before any work. Any other failure of a submission may hide a created job,
    and is reconciled by the executor (``runner.execute.transcribe``), never resent here.
    Idempotent requests follow notes §6: GETs retry on 429, 5xx and network errors.
    A ``Retry-After`` longer than ``max_retry_after`` fails the call instead of stalling
    the run. ``rng`` is injectable so tests get reproducible jitter.
    """

    max_retries: int = 8
    base_delay: float = 0.5
    max_delay: float = 30.0
    budget: float = 120.0  # seconds from a request's first failure, waits included
    max_retry_after: float = 300.0
    retry_statuses: frozenset[int] = RETRYABLE_STATUSES
    unprocessed_statuses: frozenset[int] = UNPROCESSED_STATUSES
    rng: random.Random = field(default_factory=random.Random, repr=False, compare=False)

    def backoff(self, retries: int) -> float:
        """Seconds before retry number ``retries + 1``: uniform in [0, min(max, base·2ⁿ)]."""
        cap = min(self.max_delay, self.base_delay * 2 ** min(retries, 32))
        return self.rng.uniform(0.0, cap)

    def gives_up(self, retries: int, elapsed: float, delay: float) -> bool:
        """Whether retry number ``retries + 1``, after ``delay`` more seconds, is one too
        many: past ``max_retries``, or past the time ``budget`` of the request."""
        return retries >= self.max_retries or elapsed + delay > self.budget

    def may_retry(self, status: int, *, idempotent: bool) -> bool:
        """Whether a response with ``status`` may be resent."""
        return status in (self.retry_statuses if idempotent else self.unprocessed_statuses)


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """Where to send requests, with which key, under which policy. ``repr`` hides the key."""

    api_key: str = field(repr=False)
    base_url: str = US_BASE_URL
    gateway_url: str = US_GATEWAY_URL
    timeouts: Timeouts = field(default_factory=Timeouts)
    limits: Limits = field(default_factory=Limits)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    # A recipe's `limits: {llm_per_minute: ...}`: requests a minute per model (the key
    # None: every model), a ceiling on the pace the Gateway's headers allow.
    llm_per_minute: Mapping[str | None, int] = field(default_factory=dict)
    # What an earlier run in the state folder learned from the headers: "llm:MODEL" →
    # (requests, window seconds); the headers of this run win as soon as they are seen.
    known_rates: Mapping[str, tuple[int, float]] = field(default_factory=dict)

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
        return cls.for_key(
            read_api_key(env), region, environ=env, timeouts=timeouts, limits=limits, retry=retry
        )

    @classmethod
    def for_key(
        cls,
        api_key: str | None,
        region: str | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        timeouts: Timeouts | None = None,
        limits: Limits | None = None,
        retry: RetryPolicy | None = None,
    ) -> ClientConfig:
        """As :meth:`from_env`, with the key a caller has read (:func:`read_api_key`):
        None is a missing key, the user's error; ``""`` is a client that sends no key,
        for a run that sends nothing to AssemblyAI (``--offline``, saved transcripts
        and exports only, or no key for a run that transcribes on this machine)."""
        if api_key is None:
            raise ConfigurationError(MISSING_KEY_MESSAGE)
        env = os.environ if environ is None else environ
        name = (region or "us").strip().lower()
        if name not in REGIONS:
            raise ConfigurationError(f"unknown region {region!r}; use 'us' or 'eu'")
        base_default, gateway_default = REGIONS[name]
        return cls(
            api_key=api_key,
            base_url=_clean_url(env.get("ASSEMBLYAI_BASE_URL")) or base_default,
            gateway_url=_clean_url(env.get("ASSEMBLYAI_LLM_GATEWAY_URL")) or gateway_default,
            timeouts=timeouts or Timeouts(),
            limits=limits or Limits(),
            retry=retry or RetryPolicy(),
        )


def read_api_key(environ: Mapping[str, str] | None = None) -> str | None:
    """``ASSEMBLYAI_API_KEY`` without the blanks around it; None when unset or blank.

    The one place the key is read. A key with a space, a line break or another
    invisible character inside is a :class:`ConfigurationError`, said at once.
    """
    env = os.environ if environ is None else environ
    api_key = env.get(API_KEY_ENV, "").strip()
    if not api_key:
        return None
    if any(not char.isprintable() or char.isspace() for char in api_key):
        raise ConfigurationError(
            f"{API_KEY_ENV} contains a space, a line break or another invisible "
            "character; copy the key again from the AssemblyAI dashboard (in CI, check "
            "how the secret was stored)"
        )
    return api_key


def _clean_url(value: str | None) -> str | None:
    """An environment URL without surrounding blanks or a trailing slash; empty is unset."""
    cleaned = (value or "").strip().rstrip("/")
    return cleaned or None
