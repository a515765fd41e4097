"""The retry, rate-limit and timeout policy, over real sockets against the fake API.

Why: paying twice, hammering a rate-limited account and leaking the API key are the
expensive failures of an HTTP layer; each is pinned here against tests/fakeapi.py, with
nothing inside runner/ patched.
"""

from __future__ import annotations

import asyncio
import random
import socket
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from apiclient import KEY, config_for
from fakeapi import FakeAssemblyAI, deep_json, delay, hold, malformed, raw_bytes, reset, status
from multidict import CIMultiDict

from runner import __version__
from runner.api import pacing
from runner.api.config import (
    MISSING_KEY_MESSAGE,
    ClientConfig,
    Limits,
    RetryPolicy,
    Timeouts,
)
from runner.api.hosts import (
    EU_BASE_URL,
    EU_GATEWAY_URL,
    US_BASE_URL,
    US_GATEWAY_URL,
    rest_region,
)
from runner.api.http import HttpClient
from runner.api.replies import parse_retry_after, rate_limit_pause
from runner.errors import ApiError, ConfigurationError, KeyRefused, MaybeSubmitted


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- configuration ---------------------------------------------------------------------


def test_from_env_regions_and_explicit_urls() -> None:
    us = ClientConfig.from_env(environ={"ASSEMBLYAI_API_KEY": " k "})
    assert (us.api_key, us.base_url, us.gateway_url) == ("k", US_BASE_URL, US_GATEWAY_URL)
    eu = ClientConfig.from_env("EU", environ={"ASSEMBLYAI_API_KEY": "k"})
    assert (eu.base_url, eu.gateway_url) == (EU_BASE_URL, EU_GATEWAY_URL)
    local = ClientConfig.from_env(
        "eu",
        environ={
            "ASSEMBLYAI_API_KEY": "k",
            "ASSEMBLYAI_BASE_URL": "http://127.0.0.1:9/",
            "ASSEMBLYAI_LLM_GATEWAY_URL": "",
        },
    )
    assert (local.base_url, local.gateway_url) == ("http://127.0.0.1:9", EU_GATEWAY_URL)


def test_the_region_of_the_rest_requests_follows_the_host_that_wins() -> None:
    eu_host = {"ASSEMBLYAI_BASE_URL": " https://api.eu.assemblyai.com/ "}
    assert rest_region(None, {}) == ("us", "")
    assert rest_region("EU", {}) == ("eu", "")
    assert rest_region(None, eu_host) == (
        "eu",
        "ASSEMBLYAI_BASE_URL is https://api.eu.assemblyai.com",
    )
    assert rest_region("us", eu_host)[0] == "eu"  # the variable wins, as in from_env
    assert rest_region("eu", eu_host) == ("eu", "")
    assert rest_region("eu", {"ASSEMBLYAI_BASE_URL": US_BASE_URL}) == (
        "us",
        "ASSEMBLYAI_BASE_URL is https://api.assemblyai.com",
    )
    # A host of one's own (a proxy, a test server) says nothing: --region decides.
    assert rest_region("eu", {"ASSEMBLYAI_BASE_URL": "http://127.0.0.1:9"}) == ("eu", "")


def test_from_env_errors_say_what_to_do() -> None:
    with pytest.raises(ConfigurationError) as missing:
        ClientConfig.from_env(environ={"ASSEMBLYAI_API_KEY": "  "})
    assert missing.value.message == MISSING_KEY_MESSAGE
    assert missing.value.message.startswith("ASSEMBLYAI_API_KEY is not set; ")
    assert "export ASSEMBLYAI_API_KEY=" in missing.value.message
    with pytest.raises(ConfigurationError, match="unknown region 'mars'; use 'us' or 'eu'"):
        ClientConfig.from_env("mars", environ={"ASSEMBLYAI_API_KEY": "k"})


async def test_repr_never_shows_the_key(base_url: str) -> None:
    config = config_for(base_url)
    async with HttpClient(config) as client:
        shown = [repr(config), str(config), repr(client), repr(client.snapshot())]
    assert all(KEY not in text for text in shown)
    assert "ClientConfig(base_url=" in repr(config)


def test_limits_reject_zero() -> None:
    with pytest.raises(ConfigurationError, match="limit for polls must be at least 1"):
        Limits(polls=0)


def test_transcript_deadline_scales_with_audio() -> None:
    timeouts = Timeouts()
    assert timeouts.deadline_for(None) == 3600.0
    assert timeouts.deadline_for(60) == 600.0  # never below ten minutes
    assert timeouts.deadline_for(3600) == 10800.0  # three times real time
    assert Timeouts(transcript_deadline=42).deadline_for(3600) == 42


# -- pure helpers ----------------------------------------------------------------------


def test_parse_retry_after_forms() -> None:
    now = datetime(2026, 9, 24, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("56") == 56.0
    assert parse_retry_after("0.3") == 0.3
    assert parse_retry_after("Thu, 24 Sep 2026 12:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("Thu, 24 Sep 2026 11:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("-5") == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_rate_limit_pause_reads_headers_case_insensitively() -> None:
    def headers(**values: str) -> CIMultiDict[str]:
        return CIMultiDict({k.replace("_", "-"): v for k, v in values.items()})

    assert rate_limit_pause(headers(X_RateLimit_Remaining="0", X_RateLimit_Reset="7")) == 7.0
    assert rate_limit_pause(headers(x_ratelimit_remaining="-3", x_ratelimit_reset="2")) == 2.0
    assert rate_limit_pause(headers(x_ratelimit_remaining="1", x_ratelimit_reset="60")) is None
    assert rate_limit_pause(headers(x_ratelimit_remaining="0")) is None
    epoch = headers(x_ratelimit_remaining="0", x_ratelimit_reset="2000000010")
    assert rate_limit_pause(epoch, now=2_000_000_000) == 10.0


def test_backoff_is_full_jitter_and_reproducible() -> None:
    first = RetryPolicy(rng=random.Random(3))
    second = RetryPolicy(rng=random.Random(3))
    delays = [first.backoff(n) for n in range(10)]
    assert delays == [second.backoff(n) for n in range(10)]
    caps = [min(30.0, 0.5 * 2**n) for n in range(10)]
    assert all(0.0 <= d <= cap for d, cap in zip(delays, caps, strict=True))
    assert RetryPolicy().may_retry(409, idempotent=True)
    assert not RetryPolicy().may_retry(500, idempotent=False)
    assert RetryPolicy().may_retry(429, idempotent=False)


# -- retries over the wire ---------------------------------------------------------------


async def test_retry_after_holds_back_every_coroutine_of_the_family(
    fake: FakeAssemblyAI, base_url: str
) -> None:
    # One poll slot, so no request is already on the wire when the 429 arrives: every
    # later request was *sent* after the client knew, and must wait for the window.
    tid = fake.create_transcript()
    fake.faults.add("GET /v2/transcript/*", status(429, retry_after=0.3))
    url = f"{base_url}/v2/transcript/{tid}"
    async with HttpClient(config_for(base_url, limits=Limits(polls=1))) as client:
        started = time.monotonic()
        results = await asyncio.gather(
            *(
                client.request("GET", url, family="polls", idempotent=True, expect_json=True)
                for _ in range(20)
            )
        )
        elapsed = time.monotonic() - started
        snapshot = client.snapshot()
    assert [r.status for r in results] == [200] * 20
    assert sum(r.stats.retries for r in results) == 1
    assert fake.retry_after_violations() == []
    assert fake.retry_after_violations("route") == []
    assert elapsed >= 0.3
    assert (snapshot["retries"], snapshot["requests"], snapshot["in_flight"]) == (1, 21, 0)


async def test_5xx_burst_is_retried_then_succeeds(
    fake: FakeAssemblyAI, http: HttpClient, base_url: str
) -> None:
    tid = fake.create_transcript()
    for code in (500, 502, 503, 504):
        fake.faults.add("GET /v2/transcript/*", status(code))
    response = await http.request(
        "GET", f"{base_url}/v2/transcript/{tid}", family="polls", idempotent=True
    )
    assert response.status == 200
    assert response.json()["id"] == tid
    assert (response.stats.attempts, response.stats.retries) == (5, 4)


async def test_exhausted_retries_carry_the_api_message_and_count(
    fake: FakeAssemblyAI, http: HttpClient, base_url: str
) -> None:
    tid = fake.create_transcript()
    fake.faults.add("GET /v2/transcript/*", status(500), times=None)
    with pytest.raises(ApiError) as failure:
        await http.request(
            "GET", f"{base_url}/v2/transcript/{tid}", family="polls", idempotent=True
        )
    error = failure.value
    assert error.message == (
        f"GET /v2/transcript/{tid} failed (500) after 8 retries: Internal Server Error"
    )
    assert (error.status, error.retries, error.endpoint) == (
        500,
        8,
        f"GET /v2/transcript/{tid}",
    )
    assert len(fake.requests_to("GET /v2/transcript/*")) == 9


async def test_non_json_error_bodies_become_short_text(fake: FakeAssemblyAI, base_url: str) -> None:
    tid = fake.create_transcript()
    fake.faults.add("GET /v2/transcript/*", status(504), times=None)
    retry = RetryPolicy(max_retries=1, base_delay=0.01, rng=random.Random(1))
    async with HttpClient(config_for(base_url, retry=retry)) as client:
        with pytest.raises(ApiError) as failure:
            await client.request(
                "GET", f"{base_url}/v2/transcript/{tid}", family="polls", idempotent=True
            )
    assert failure.value.message == (
        f"GET /v2/transcript/{tid} failed (504) after 1 retry: 504 Gateway Time-out"
    )


async def test_client_errors_are_not_retried(
    fake: FakeAssemblyAI, http: HttpClient, base_url: str
) -> None:
    with pytest.raises(ApiError) as failure:
        await http.request("GET", f"{base_url}/v2/transcript/nope", family="polls", idempotent=True)
    assert failure.value.message == (
        "GET /v2/transcript/nope failed (404): Transcript lookup error, transcript id not found"
    )
    assert failure.value.retries == 0
    assert len(fake.history) == 1


async def test_connection_resets_on_a_get_are_retried(
    fake: FakeAssemblyAI, http: HttpClient, base_url: str
) -> None:
    tid = fake.create_transcript()
    fake.faults.add("GET /v2/transcript/*", reset())
    fake.faults.add("GET /v2/transcript/*", reset(hard=True))
    response = await http.request(
        "GET", f"{base_url}/v2/transcript/{tid}", family="polls", idempotent=True
    )
    # aiohttp itself resends a GET once on a dropped keep-alive connection (RFC 9112
    # §9.3.1), so the policy may see one failure instead of two; the server saw three.
    assert response.status == 200
    assert response.stats.retries >= 1
    assert len(fake.requests_to("GET /v2/transcript/*")) == 3


async def test_read_timeout_and_malformed_body_on_a_get_are_retried(
    fake: FakeAssemblyAI, base_url: str
) -> None:
    tid = fake.create_transcript()
    fake.faults.add("GET /v2/transcript/*", delay(0.5))
    fake.faults.add("GET /v2/transcript/*", malformed())
    timeouts = Timeouts(connect=2, read=0.2)
    async with HttpClient(config_for(base_url, timeouts=timeouts)) as client:
        response = await client.request(
            "GET",
            f"{base_url}/v2/transcript/{tid}",
            family="polls",
            idempotent=True,
            expect_json=True,
        )
    assert response.json()["id"] == tid
    assert response.stats.retries == 2


async def test_unreadable_answers_are_retried_on_a_get_and_never_crash(
    fake: FakeAssemblyAI, http: HttpClient, base_url: str
) -> None:
    """A broken status line, a header over aiohttp's limit and JSON nested 100,000 deep
    are transport faults: a GET asks again, and the last one's words are in the error."""
    tid = fake.create_transcript()
    fake.faults.add("GET /v2/transcript/*", raw_bytes(b"HTTP/1.1 2OO OK\r\n\r\n"))
    oversized = b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n{}"
    fake.faults.add("GET /v2/transcript/*", raw_bytes(oversized))
    fake.faults.add("GET /v2/transcript/*", deep_json())
    response = await http.request(
        "GET", f"{base_url}/v2/transcript/{tid}", family="polls", idempotent=True, expect_json=True
    )
    assert response.json()["id"] == tid
    assert response.stats.retries == 3
    fake.faults.add("GET /v2/transcript/*", deep_json(), times=None)
    with pytest.raises(ApiError, match="after 8 retries: the response is not valid JSON"):
        await http.request(
            "GET", f"{base_url}/v2/transcript/{tid}", family="polls", idempotent=True,
            expect_json=True,
        )  # fmt: skip


async def test_an_unreadable_answer_to_a_submission_may_hide_a_job(
    fake: FakeAssemblyAI, http: HttpClient, base_url: str
) -> None:
    fake.faults.add("POST /v2/transcript", raw_bytes(b"garbage\r\n\r\n", after_processing=True))
    with pytest.raises(MaybeSubmitted, match="could not be read"):
        await http.request(
            "POST",
            f"{base_url}/v2/transcript",
            family="transcriptions",
            json={"audio_url": "https://example.com/a.mp3", "speech_models": ["universal-2"]},
            idempotent=False,
            expect_json=True,
        )
    assert len(fake.submissions) == 1  # the job exists; reconciliation will find it


async def test_refused_connections_are_retried_even_for_a_post() -> None:
    base_url = f"http://127.0.0.1:{free_port()}"
    async with HttpClient(config_for(base_url)) as client:
        with pytest.raises(ApiError) as failure:
            await client.request(
                "POST",
                f"{base_url}/v2/transcript",
                family="transcriptions",
                json={"audio_url": "https://example.com/a.mp3"},
                idempotent=False,
            )
        requests = client.snapshot()["requests"]
    assert not isinstance(failure.value, MaybeSubmitted)
    assert failure.value.message == (
        f"POST /v2/transcript failed after 8 retries: connection refused by "
        f"{base_url.removeprefix('http://')}: nothing listens there; check that the server "
        "is running and the URL's host and port"
    )
    assert client.snapshot().retries_by_family == {"transcriptions": 8}
    assert requests == 9


async def test_retry_after_beyond_the_limit_fails_fast_for_everyone(
    fake: FakeAssemblyAI, base_url: str
) -> None:
    tid = fake.create_transcript()
    fake.faults.add("GET /v2/transcript/*", status(429, retry_after=30))
    retry = RetryPolicy(max_retry_after=1.0, base_delay=0.01, rng=random.Random(1))
    url = f"{base_url}/v2/transcript/{tid}"
    async with HttpClient(config_for(base_url, retry=retry)) as client:
        with pytest.raises(ApiError) as first:
            await client.request("GET", url, family="polls", idempotent=True)
        with pytest.raises(ApiError) as second:
            await client.request("GET", url, family="polls", idempotent=True)
        paused = client.snapshot().paused
    assert first.value.message == f"GET /v2/transcript/{tid} failed (429): Too Many Requests"
    assert second.value.message.startswith(
        f"GET /v2/transcript/{tid} not sent: AssemblyAI asked clients to wait 30 s"
    )
    assert len(fake.history) == 1
    assert set(paused) == {"v2"}  # AssemblyAI's REST budget is per account


async def test_a_429_on_v2_pauses_every_v2_request_not_the_gateway(
    fake: FakeAssemblyAI, http: HttpClient, base_url: str
) -> None:
    tid = fake.create_transcript()
    fake.faults.add("GET /v2/transcript/*", status(429, retry_after=0.5))
    await http.request("GET", f"{base_url}/v2/transcript/{tid}", family="polls", idempotent=True)
    assert set(http.snapshot().paused) == set()  # over by the time the retry succeeded
    fake.faults.add("GET /v2/transcript/*", status(429, retry_after=0.5))
    poll = asyncio.create_task(
        http.request("GET", f"{base_url}/v2/transcript/{tid}", family="polls", idempotent=True)
    )
    await asyncio.sleep(0.1)  # the 429 has been read: the /v2 gate is closed
    assert set(http.snapshot().paused) == {"v2"}
    submit = asyncio.create_task(
        http.request(
            "POST",
            f"{base_url}/v2/transcript",
            family="transcriptions",
            json={"audio_url": "https://example.com/a.mp3", "speech_models": ["universal-2"]},
            idempotent=False,
        )
    )
    await asyncio.gather(poll, submit)
    gate_closed = fake.retry_after_windows[-1].sent_at
    (posted,) = fake.requests_to("POST /v2/transcript")
    assert posted.at - gate_closed >= 0.45  # the submission waited for the poll's 429 too


def test_the_retry_budget_bounds_a_request_in_time_as_well_as_in_count() -> None:
    policy = RetryPolicy(max_retries=8, budget=120.0)
    assert not policy.gives_up(retries=3, elapsed=60.0, delay=30.0)
    assert policy.gives_up(retries=3, elapsed=100.0, delay=30.0)  # past two minutes
    assert policy.gives_up(retries=8, elapsed=1.0, delay=0.0)


async def test_the_retry_budget_counts_from_the_first_failure_not_from_the_wait_for_a_turn(
    fake: FakeAssemblyAI, base_url: str
) -> None:
    """A request that waited its turn longer than the budget (behind a long upload or
    transcription) still has its retries: waiting is not retrying."""
    tid = fake.create_transcript()
    fake.faults.add("GET /v2/transcript/*", delay(0.6))  # the first holds the only slot
    fake.faults.add("GET /v2/transcript/*", status(503))  # the other is refused once
    retry = RetryPolicy(budget=0.3, rng=random.Random(1))
    url = f"{base_url}/v2/transcript/{tid}"
    async with HttpClient(config_for(base_url, retry=retry, limits=Limits(polls=1))) as client:
        both = [client.request("GET", url, family="polls", idempotent=True) for _ in "ab"]
        answers = await asyncio.gather(*both)
    assert sorted(answer.stats.retries for answer in answers) == [0, 1]
    assert len(fake.requests_to("GET /v2/transcript/*")) == 3


async def test_snapshot_counts_requests_in_flight(
    fake: FakeAssemblyAI, http: HttpClient, base_url: str
) -> None:
    tid = fake.create_transcript()
    fake.faults.add("GET /v2/transcript/*", delay(0.3))
    call = asyncio.create_task(
        http.request("GET", f"{base_url}/v2/transcript/{tid}", family="polls", idempotent=True)
    )
    await asyncio.sleep(0.1)
    during = http.snapshot()
    await call
    assert during.in_flight_by_family["polls"] == 1
    assert during["in_flight"] == 1
    assert http.snapshot()["in_flight"] == 0


# -- what goes over the wire, and what never does ------------------------------------------


async def test_headers_sent_and_the_key_never_in_errors(
    fake: FakeAssemblyAI, base_url: str
) -> None:
    errors: list[BaseException] = []
    wrong_key = "sk-wrong-3f9a-secret"
    async with HttpClient(config_for(base_url, key=wrong_key)) as client:
        for url in (f"{base_url}/v2/transcript/x", f"{base_url}/v1/chat/completions"):
            with pytest.raises(KeyRefused) as unauthorized:
                await client.request("POST", url, family="llm", json={}, idempotent=True)
            errors.append(unauthorized.value)
    assert len(fake.history) == 1  # after the first 401, nothing more was sent
    fake.faults.add("POST /v2/transcript", reset())
    async with HttpClient(config_for(base_url)) as client:
        with pytest.raises(MaybeSubmitted) as maybe:
            await client.request(
                "POST",
                f"{base_url}/v2/transcript",
                family="transcriptions",
                json={},
                idempotent=False,
            )
        errors.append(maybe.value)
    assert fake.history[0].headers["User-Agent"] == f"transcript-runner/{__version__}"
    assert not fake.history[0].authorized
    assert fake.history[-1].authorized
    for error in errors:
        chain = [error, error.__cause__, error.__context__]
        text = " ".join(f"{e!s} {e!r} {getattr(e, 'args', '')}" for e in chain if e)
        assert KEY not in text
        assert wrong_key not in text


# -- test mode ------------------------------------------------------------------------------


@pytest.mark.real_pacing
def test_a_run_outside_the_tests_keeps_its_waits() -> None:
    assert not pacing.testing()
    assert pacing.paced(1.5) == 1.5


@pytest.mark.slow
def test_test_mode_reaches_subprocesses_through_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pacing.set_testing(None)  # defer to the environment, as a fresh process does
    monkeypatch.setenv(pacing.TEST_MODE_ENV, "1")
    assert pacing.paced(1.5) == 0.0
    monkeypatch.setenv(pacing.TEST_MODE_ENV, "0")
    assert pacing.paced(1.5) == 1.5


async def test_a_slow_first_request_holds_the_others_only_briefly(
    fake: FakeAssemblyAI, base_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The first request goes alone (a wrong key costs one refusal), but a slow first
    answer (a long upload or LLM call) does not hold the run."""
    import runner.api.http as http_module

    monkeypatch.setattr(http_module, "FIRST_ANSWER_WAIT", 0.2)
    tid = fake.create_transcript()
    answered = tmp_path / "answer-the-first"  # the first is answered only after the others
    fake.faults.add("GET /v2/transcript/*", hold(answered))
    url = f"{base_url}/v2/transcript/{tid}"
    async with HttpClient(config_for(base_url)) as client:
        first = asyncio.create_task(client.request("GET", url, family="polls", idempotent=True))
        await asyncio.sleep(0.05)  # the first is on the wire
        others = [client.request("GET", url, family="polls", idempotent=True) for _ in range(3)]
        await asyncio.gather(*others)
        assert not first.done()  # the others finished while the slow first still waits
        answered.touch()
        await first


async def test_a_retry_after_longer_than_the_budget_is_waited_for(
    fake: FakeAssemblyAI, base_url: str
) -> None:
    """The budget bounds our own backoff; AssemblyAI's asked-for wait is honoured (up to
    max_retry_after), as every other request of the family honours it."""
    tid = fake.create_transcript()
    fake.faults.add("GET /v2/transcript/*", status(429, retry_after=0.6))
    retry = RetryPolicy(budget=0.3, max_retry_after=5.0, rng=random.Random(1))
    async with HttpClient(config_for(base_url, retry=retry)) as client:
        response = await client.request(
            "GET", f"{base_url}/v2/transcript/{tid}", family="polls", idempotent=True
        )
    assert response.stats.retries == 1


def test_one_list_of_limit_kinds_for_the_limits_the_schema_and_the_help() -> None:
    """`--limit`, a recipe's `limits:`, the client's slots: the same kinds, in one list."""
    import dataclasses
    import json
    from pathlib import Path

    from click.testing import CliRunner

    from runner.api.config import Limits
    from runner.api.families import FAMILIES, LIMIT_KINDS
    from runner.cli import cli

    assert tuple(f.name for f in dataclasses.fields(Limits)) == FAMILIES
    schema = json.loads(
        (Path(__file__).resolve().parent.parent / "schemas" / "recipe.schema.json").read_text()
    )
    # and a rate, which is no count of requests at once
    assert tuple(schema["properties"]["limits"]["properties"]) == (*LIMIT_KINDS, "llm_per_minute")
    help_text = " ".join(CliRunner().invoke(cli, ["run", "--help"]).output.split())
    assert f"per kind: {', '.join(LIMIT_KINDS)}." in help_text


def test_the_key_is_read_in_one_place_and_an_empty_one_means_none_is_sent() -> None:
    from runner.api.config import MISSING_KEY_MESSAGE, read_api_key

    assert read_api_key({"ASSEMBLYAI_API_KEY": "  k1  "}) == "k1"
    assert read_api_key({"ASSEMBLYAI_API_KEY": "   "}) is None
    assert read_api_key({}) is None
    with pytest.raises(ConfigurationError, match="invisible character"):
        read_api_key({"ASSEMBLYAI_API_KEY": "k1\nk2"})
    with pytest.raises(ConfigurationError) as missing:
        ClientConfig.for_key(None, environ={})
    assert missing.value.message == MISSING_KEY_MESSAGE
    # A run that sends AssemblyAI nothing has no key, not a placeholder one.
    assert ClientConfig.for_key("", environ={}).api_key == ""
