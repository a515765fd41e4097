"""AssemblyAI's REST ``/v2`` API: upload, submit, get, sentences, paragraphs, and waiting.

The endpoints are described here; retries, limits and timeouts come from
:mod:`runner.api.http`. Polling is smarter than the SDKs' fixed 3 s (notes §9): the
first poll comes after one second, later ones wait a fraction of the time already spent
(or of the expected processing time, when the audio duration is known), up to 15 s.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final, TypeGuard, TypeVar
from urllib.parse import quote, urlsplit

from runner.api.config import ClientConfig
from runner.api.cooldowns import Clock, Sleep
from runner.api.http import HttpClient, HttpResponse, json_object
from runner.api.listing import LIST_PAGE, Page, first_page, is_transcript_id, read_page
from runner.api.pacing import paced
from runner.api.sweeps import FALLBACK_SECONDS, Sighting, StatusSweeper
from runner.api.transport import Unreadable
from runner.api.types import TranscriptResult
from runner.errors import (
    ApiError,
    DeadlineExceeded,
    MaybeSubmitted,
    SourceUnreadable,
    TranscriptFailed,
)

MAX_LIST_PAGES: Final = 50  # 10,000 transcripts back at most: a bound, not a guess
MAX_UPLOAD_URL: Final = 2048  # characters: an upload URL is sent back, and kept in intents
T = TypeVar("T")


# ---------------------------------------------------------------------------------------
# The poll schedule: a pure function, so tests can read it without waiting.
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PollSchedule:
    """How often to poll a transcript.

    * ``first``: the first poll comes soon: short files and early failures (a download
      error, notes §4) are often known within seconds.
    * ``fraction``: afterwards each wait is this share of the time that matters: the
      time spent so far, or the expected processing time if that is longer. So polling
      adds at most about 10 % to a job's latency, and the number of polls grows with the
      logarithm of the job's length instead of linearly.
    * ``minimum`` / ``maximum``: bounds on one wait; 2 s keeps a few hundred parallel
      jobs well inside the account's 20,000 requests per 5 minutes (notes §6).
    * ``realtime_factor``: expected processing time per second of audio. An assumption
      (UNCONFIRMED): it shapes the cadence only, never correctness.
    * ``jitter``: ± share applied to every wait, so parallel jobs do not poll in step.
    """

    first: float = 1.0
    minimum: float = 2.0
    maximum: float = 15.0
    fraction: float = 0.1
    realtime_factor: float = 0.3
    jitter: float = 0.1


def poll_delays(
    audio_duration: float | None = None,
    schedule: PollSchedule | None = None,
    rng: random.Random | None = None,
) -> Iterator[float]:
    """Seconds to wait before each poll, forever (the caller stops at its deadline).

    Without a duration the waits grow geometrically with elapsed time (each is 10 % of
    the time spent, within the bounds); with one, they start at 10 % of the expected
    processing time and grow once that has passed. ``rng`` adds jitter; without it the
    sequence is deterministic.
    """
    plan = schedule or PollSchedule()
    expected = 0.0
    if audio_duration is not None and audio_duration > 0:
        expected = plan.realtime_factor * audio_duration
    elapsed = 0.0
    delay = plan.first
    while True:
        yield _jittered(delay, plan.jitter, rng)
        elapsed += delay
        horizon = max(elapsed, expected)
        delay = min(plan.maximum, max(plan.minimum, plan.fraction * horizon))


def _jittered(delay: float, jitter: float, rng: random.Random | None) -> float:
    """``delay`` scaled by a random factor in [1 - jitter, 1 + jitter]."""
    if rng is None or jitter <= 0:
        return delay
    return delay * rng.uniform(1.0 - jitter, 1.0 + jitter)


# ---------------------------------------------------------------------------------------
# The client.
# ---------------------------------------------------------------------------------------


class TranscriptsClient:
    """Upload, submit and poll transcripts; every call goes through ``http``'s policy."""

    def __init__(
        self,
        http: HttpClient,
        config: ClientConfig | None = None,
        *,
        schedule: PollSchedule | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Clock = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self._http = http
        self._config = config or http.config
        self._schedule = schedule or PollSchedule()
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()
        self.sweeper = StatusSweeper(self.list_page)

    def _url(self, path: str) -> str:
        return f"{self._config.base_url}{path}"

    async def upload(self, path: Path) -> str:
        """``POST /v2/upload`` streaming ``path`` from disk; returns its ``upload_url`` (§2).

        The file is reopened for each attempt, so a refused attempt can be resent. It is
        sent as not idempotent: after a timeout or a dropped connection the upload may
        have been stored, and the failure says so instead of uploading again.
        """

        def open_audio() -> IO[bytes]:
            # Reopened for each attempt: the file may have moved since it was hashed.
            try:
                return path.open("rb")
            except OSError as exc:
                raise SourceUnreadable(f"cannot upload {path}: {exc.strerror or exc}") from None

        open_audio().close()  # unreadable audio fails here, before any request is sent
        route = "POST /v2/upload"
        response = await self._http.request(
            "POST",
            self._url("/v2/upload"),
            family="uploads",
            data=open_audio,
            headers={"Content-Type": "application/octet-stream"},
            idempotent=False,
            expect_json=True,
            # A refused upload stored nothing and costs nothing: a 503 is sent again.
            resend_statuses=frozenset({429, 503}),
        )
        upload_url = _object(response, route).get("upload_url")
        if not _is_web_url(upload_url):
            # Stored nothing we could use (an upload costs nothing): the item fails.
            raise ApiError(f"{route} answered without a usable upload_url", endpoint=route)
        return upload_url

    async def submit(self, audio_url: str, options: Mapping[str, Any]) -> Mapping[str, Any]:
        """``POST /v2/transcript`` with ``options`` plus ``audio_url``; the queued job (§3).

        Never resent after a possible delivery: a second job would be billed again.
        """
        route = "POST /v2/transcript"
        response = await self._http.request(
            "POST",
            self._url("/v2/transcript"),
            family="transcriptions",
            json={**options, "audio_url": audio_url},
            idempotent=False,
            expect_json=True,
        )
        body = response.json()
        if not isinstance(body, dict) or not is_transcript_id(body.get("id")):
            # A 2xx says the job was made; without an id in AssemblyAI's shape ("", "..",
            # "a/b") it is unknown, not refused: looked for in the list, never recorded.
            raise MaybeSubmitted(
                f"{route} answered without a transcript id; the job may exist", endpoint=route
            )
        return body

    async def get(self, transcript_id: str) -> Mapping[str, Any]:
        """``GET /v2/transcript/{id}``: the transcript in its current state (§4)."""
        return await self._get_json(f"/v2/transcript/{quote(transcript_id, safe='')}")

    async def download(self, transcript_id: str, read: Callable[[bytes], T]) -> T:
        """``GET /v2/transcript/{id}``, read by ``read`` from the bytes received (redacted
        like every body, so a finished transcript can be kept as it came). ``read``
        runs inside the retry loop: a body it refuses with a ``ValueError`` (cut short,
        an HTML page, a transcript of the wrong shape) is fetched again."""
        path = f"/v2/transcript/{quote(transcript_id, safe='')}"
        response = await self._http.request(
            "GET", self._url(path), family="polls", idempotent=True, read=read
        )
        result: T = response.data
        return result

    async def sentences(self, transcript_id: str) -> Mapping[str, Any]:
        """``GET /v2/transcript/{id}/sentences`` (§5)."""
        path = f"/v2/transcript/{quote(transcript_id, safe='')}/sentences"
        return await self._get_json(path, read=_envelope_of("sentences"))

    async def paragraphs(self, transcript_id: str) -> Mapping[str, Any]:
        """``GET /v2/transcript/{id}/paragraphs`` (§5)."""
        path = f"/v2/transcript/{quote(transcript_id, safe='')}/paragraphs"
        return await self._get_json(path, read=_envelope_of("paragraphs"))

    async def subtitles(
        self, transcript_id: str, fmt: str, chars_per_caption: int | None = None
    ) -> str:
        """``GET /v2/transcript/{id}/srt`` or ``/vtt`` (§5): the captions as text, with at
        most ``chars_per_caption`` characters each when given (else AssemblyAI's choice)."""
        query = f"?chars_per_caption={chars_per_caption}" if chars_per_caption else ""
        path = f"/v2/transcript/{quote(transcript_id, safe='')}/{quote(fmt, safe='')}{query}"
        response = await self._http.request("GET", self._url(path), family="polls", idempotent=True)
        return response.body.decode("utf-8", errors="replace")

    async def list_page(self, url: str | None = None) -> Page:
        """One page of the account's list (``GET /v2/transcript``, newest first): the
        newest for None, else ``url``, an older page's URL as the previous page gave it
        (:attr:`Page.older`). A page that is not a list of jobs is retried like a
        transport fault, then fails (:mod:`runner.api.listing`)."""
        base = self._config.base_url
        response = await self._http.request(
            "GET",
            url or first_page(base),
            family="polls",
            idempotent=True,
            expect_json=True,
            shape=lambda body: read_page(body, base),
        )
        return read_page(response.json(), base)

    async def jobs_for(self, audio_url: str, made_before: Collection[str]) -> list[str]:
        """Ids of the account's jobs of ``audio_url``, newest first, that may have been
        made by a request in doubt; ``made_before`` holds ids of jobs known to have been
        made before that request was sent.

        The rule, by identity and by the server's own order, never by a clock (ours may
        be hours off AssemblyAI's): a job is a candidate when its ``audio_url`` is ours;
        the list is read from the newest job down to the first job in ``made_before``,
        and to the end of that page (a margin for jobs created within moments of each
        other), or to the list's end. Everything below was made before the request.
        The caller decides between the candidates (their options, the ledger). More than
        ``MAX_LIST_PAGES`` pages without such a job is no answer: :class:`ApiError`.
        """
        found: list[str] = []
        url: str | None = None
        read: set[str | None] = set()
        for _ in range(MAX_LIST_PAGES):
            page = await self.list_page(url)
            read.add(url)
            found += [job.id for job in page.jobs if job.audio_url == audio_url]
            if page.older is None or any(job.id in made_before for job in page.jobs):
                return found
            if page.older in read:
                raise ApiError(
                    "GET /v2/transcript: the list's prev_url leads back to a page already "
                    "read; it cannot be read to its end",
                    endpoint="GET /v2/transcript",
                )
            url = page.older
        raise ApiError(
            f"GET /v2/transcript: more than {MAX_LIST_PAGES * LIST_PAGE:,} transcripts are "
            "newer than any job known to be older than the request in doubt; the list was "
            "not searched to its end",
            endpoint="GET /v2/transcript",
        )

    async def _get_json(
        self, path: str, read: Callable[[bytes], Mapping[str, Any]] = json_object
    ) -> Mapping[str, Any]:
        """A GET whose answer is a JSON object (``read`` may ask more of it), retried
        inside the policy when it is not."""
        response = await self._http.request(
            "GET", self._url(path), family="polls", idempotent=True, read=read
        )
        return _object(response, f"GET {path}")

    async def wait(
        self,
        transcript_id: str,
        *,
        audio_duration: float | None = None,
        deadline: float | None = None,
    ) -> TranscriptResult:
        """Wait until ``completed`` (returned) or ``error`` (:class:`TranscriptFailed`).

        ``deadline`` is seconds from now; ``None`` uses :meth:`Timeouts.deadline_for`.
        While many jobs wait, status sweeps of the account's list
        (:mod:`runner.api.sweeps`) say when each is done, and the result carries no body
        (``data`` None): the caller fetches it when it has room. A job waiting alone is
        polled on its own schedule, and its last poll's body is returned. The first
        poll comes after ``schedule.first``: callers holding an id of unknown state
        should :meth:`get` it first. A failed job is an HTTP 200 with
        ``status: "error"`` (notes §4), so it is raised here rather than returned as
        the SDKs do.
        """
        allowed = deadline if deadline is not None else self._timeouts_deadline(audio_duration)
        started = self._clock()
        delays = poll_delays(audio_duration, self._schedule, self._rng)
        polls, status = 0, "queued"
        try:
            while True:
                left = started + allowed - self._clock()
                if left <= 0:
                    raise _deadline_exceeded(transcript_id, allowed, status)
                sighting = await self._sighting(transcript_id, next(delays), left)
                if sighting is None and self.sweeper.saw_lately(transcript_id):
                    continue  # the last sweep saw it running: no check of its own needed
                if sighting is not None and sighting.status is not None:
                    if sighting.status == "error":
                        raise TranscriptFailed(transcript_id, sighting.error or "unknown error")
                    seconds = self._clock() - started
                    return TranscriptResult(None, transcript_id, polls, seconds=seconds)
                body = await self.get(transcript_id)
                polls += 1
                status = str(body.get("status"))
                if status == "completed":
                    seconds = self._clock() - started
                    return TranscriptResult(body, transcript_id, polls, seconds=seconds)
                if status == "error":
                    raise TranscriptFailed(transcript_id, str(body.get("error") or "unknown"))
        finally:
            self.sweeper.unwatch(transcript_id)

    async def _sighting(self, transcript_id: str, delay: float, left: float) -> Sighting | None:
        """What a sweep saw within the next poll's wait, or None: time to poll the job.

        While sweeps cover the jobs, a job is polled on its own only every
        ``FALLBACK_SECONDS`` (a job outside the sweeps' window is still noticed)."""
        seen = self.sweeper.watch(transcript_id)
        if not self.sweeper.covering:
            await self._sleep(min(paced(delay), left))
            return seen.result() if seen.done() else None
        try:
            # Varied, so the jobs a sweep cannot see do not check on themselves in step.
            fallback = FALLBACK_SECONDS * self._rng.uniform(0.9, 1.1)
            # (At least 10 ms: in test mode paced() is 0, and a job the sweeps saw
            # running would otherwise spin until the next sweep.)
            wait = min(max(paced(max(delay, fallback)), 0.01), left)
            return await asyncio.wait_for(asyncio.shield(seen), wait)
        except TimeoutError:
            return None

    def _timeouts_deadline(self, audio_duration: float | None) -> float:
        return self._config.timeouts.deadline_for(audio_duration)


def _is_web_url(value: Any) -> TypeGuard[str]:
    """Whether ``value`` is an absolute http(s) URL of a sane length (an upload URL)."""
    if not isinstance(value, str) or not value or len(value) > MAX_UPLOAD_URL:
        return False
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in ("https", "http") and bool(parts.hostname)


def _deadline_exceeded(transcript_id: str, allowed: float, status: str) -> DeadlineExceeded:
    """Say what happened, that the job may still finish, and how to reuse it."""
    return DeadlineExceeded(
        f"transcript {transcript_id} did not finish within {allowed:g} s "
        f"(last status: {status}). The job may still finish on AssemblyAI; to use it "
        f"without paying again, add `transcript_id: {transcript_id}` to the recipe's inputs",
        transcript_id=transcript_id,
        last_status=status,
    )


def _envelope_of(part: str) -> Callable[[bytes], Mapping[str, Any]]:
    """A reader of the sentences or paragraphs envelope: an object with a list (or
    null) under ``part``; anything else is fetched again."""

    def read(body: bytes) -> Mapping[str, Any]:
        data = json_object(body)
        if not isinstance(data.get(part), list | None):
            raise Unreadable(f"a {part} answer without a list of {part}")
        return data

    return read


def _object(response: HttpResponse, route: str) -> Mapping[str, Any]:
    """The body as a JSON object; anything else is an API error worth reporting."""
    body = response.json()
    if not isinstance(body, dict):
        raise ApiError(f"{route} answered with JSON that is not an object", endpoint=route)
    return body
