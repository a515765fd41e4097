"""At the provider's limits: pacing under a model's window, and concurrency that follows
the server.

Why: the Gateway allows each model a number of requests per window and says so in
``x-ratelimit-*`` headers (notes §8); a run must use that rate without provoking 429s,
each model at its own rate. And a fixed number of calls at once is right for one server
only: a local server with 2 slots must not be flooded into timeouts, a fast one must be
used fully. The unit tests drive the bucket and the limit on a fake clock; the others
run the real client against the fakes over sockets, with small windows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from apiclient import config_for
from fakeapi import FakeAssemblyAI, serve_in_thread
from fakelocal import FakeLocalLLM

from runner.api.buckets import HEADROOM, Buckets, Rate, header_rate
from runner.api.concurrency import AdaptiveLimit
from runner.api.config import Limits, Timeouts
from runner.api.gateway import GatewayClient
from runner.api.http import HttpClient


class FakeTime:
    """A clock that moves only when slept on."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


def headers(limit: int, remaining: int, reset: int) -> dict[str, str]:
    return {
        "x-ratelimit-limit": str(limit),
        "x-ratelimit-remaining": str(remaining),
        "x-ratelimit-reset": str(reset),
    }


# -- the bucket ---------------------------------------------------------------------------


def test_the_bucket_adopts_the_limit_the_headers_say() -> None:
    clock = FakeTime()
    buckets = Buckets(clock, clock.sleep)
    gate = ("llm", "m")
    assert not buckets.paced(gate)  # nothing said yet: an unlimited server is not paced
    buckets.observe(gate, headers(60, 59, 6))
    assert buckets.rate(gate) == Rate(60, 6.0)
    # A later answer in the same window says fewer seconds left: the window stays 6 s.
    buckets.observe(gate, headers(60, 20, 2))
    assert buckets.rate(gate) == Rate(60, 6.0)
    assert buckets.learned() == {"llm:m": Rate(60, 6.0)}
    # Without a reset the documented minute is the window.
    assert header_rate({"x-ratelimit-limit": "30"}, None) == Rate(30, 60.0)


async def test_paced_requests_never_fill_a_window_and_use_nearly_all_of_it() -> None:
    clock = FakeTime()
    buckets = Buckets(clock, clock.sleep)
    gate = ("llm", "m")
    buckets.observe(gate, headers(60, 59, 6))
    sent: list[float] = []

    async def one() -> None:
        await buckets.wait(gate)
        sent.append(clock())

    await asyncio.gather(*(one() for _ in range(300)))
    sent.sort()
    # Any 6 s window, starting at any request: at most the limit.
    assert max(sum(1 for t in sent if start <= t < start + 6.0) for start in sent) <= 60
    rate = (len(sent) - 1) / (sent[-1] - sent[0])
    assert rate == pytest.approx(10.0 * HEADROOM, rel=1e-6)


async def test_each_model_has_its_own_bucket_and_a_recipe_ceiling_is_kept() -> None:
    clock = FakeTime()
    buckets = Buckets(clock, clock.sleep, {"slow": Rate(6, 60.0)})
    buckets.observe(("llm", "fast"), headers(60, 59, 6))
    buckets.observe(("llm", "slow"), headers(60, 59, 6))
    assert buckets.rate(("llm", "fast")) == Rate(60, 6.0)
    assert buckets.rate(("llm", "slow")) == Rate(6, 60.0)  # the recipe's is slower
    # A ceiling paces a model before any header says anything.
    everyone = Buckets(clock, clock.sleep, {None: Rate(30, 60.0)})
    assert everyone.rate(("llm", "any")) == Rate(30, 60.0)
    assert not everyone.paced(("v2", None))


async def test_a_pause_moves_the_next_turn_after_it() -> None:
    clock = FakeTime()
    buckets = Buckets(clock, clock.sleep)
    gate = ("llm", "m")
    buckets.observe(gate, headers(60, 59, 6))
    buckets.defer(gate, 5.0)
    await buckets.wait(gate)
    assert clock() == 5.0


# -- the adaptive limit -----------------------------------------------------------------


async def saturate(limit: AdaptiveLimit, clock: FakeTime, latency: float, rounds: int) -> None:
    """``rounds`` round trips with every allowed slot in use, each reply ``latency`` s."""
    for _ in range(rounds):
        taken = limit.allowed
        for _ in range(taken):
            await limit.acquire()
        clock.now += latency
        for _ in range(taken):
            limit.release(latency)


async def test_the_limit_grows_to_its_ceiling_while_replies_keep_their_pace() -> None:
    clock = FakeTime()
    limit = AdaptiveLimit(256, 8, clock=clock)
    await saturate(limit, clock, 0.1, rounds=6)  # slow start: doubles each round trip
    assert limit.allowed == 256
    await saturate(limit, clock, 0.1, rounds=3)
    assert limit.allowed == 256  # never above the ceiling


async def test_the_limit_halves_on_a_refusal() -> None:
    clock = FakeTime()
    limit = AdaptiveLimit(64, 32, clock=clock)
    await limit.acquire()
    limit.release(overloaded=True)
    assert limit.allowed == 16


async def two_slots_server(limit: AdaptiveLimit, clock: FakeTime, rounds: int) -> list[int]:
    """Round trips to a server with 2 slots (replies take 1 s each, the rest queue),
    the first request alone as the client sends it; the limit of each round."""
    seen = []
    for round_trip in range(rounds):
        sent = 1 if round_trip == 0 else limit.allowed
        for _ in range(sent):
            await limit.acquire()
        latency = max(1.0, sent / 2)
        clock.now += latency
        for _ in range(sent):
            limit.release(latency)
        seen.append(sent)
    return seen


async def test_a_server_that_queues_keeps_the_limit_near_its_slots() -> None:
    clock = FakeTime()
    limit = AdaptiveLimit(256, 8, clock=clock)
    seen = await two_slots_server(limit, clock, rounds=40)
    assert max(seen) <= 8  # never grew past its start: replies slowed at once
    assert 2 <= limit.allowed <= 6  # 2 in service, a few queued


async def test_a_slow_client_stops_the_growth_but_does_not_collapse_the_limit() -> None:
    clock = FakeTime()
    limit = AdaptiveLimit(256, 8, clock=clock)
    await saturate(limit, clock, 0.1, rounds=6)
    before = limit.allowed
    # From now on every reply is read 0.25 s late: this process is short of CPU.
    await saturate(limit, clock, 0.35, rounds=20)
    assert limit.allowed >= before // 2


async def test_a_fixed_limit_stays_where_it_is() -> None:
    clock = FakeTime()
    limit = AdaptiveLimit(4, 4, clock=clock, adaptive=False)
    await saturate(limit, clock, 0.1, rounds=3)
    await limit.acquire()
    limit.release(overloaded=True)
    assert limit.allowed == 4


async def test_waiters_are_served_in_order_and_a_cancelled_one_gives_its_turn_away() -> None:
    limit = AdaptiveLimit(1, 1)
    await limit.acquire()
    order: list[int] = []

    async def wait(n: int) -> None:
        await limit.acquire()
        order.append(n)
        limit.release()

    first, second, third = (asyncio.create_task(wait(n)) for n in (1, 2, 3))
    await asyncio.sleep(0)
    second.cancel()
    limit.release()
    await asyncio.gather(first, third)
    assert order == [1, 3]
    assert limit.in_flight == 0


# -- against the fakes, over sockets --------------------------------------------------------


async def test_two_models_at_their_own_rates_without_a_429_storm(
    fake: FakeAssemblyAI, http: HttpClient
) -> None:
    # 100 and 50 requests per 1 s window: the first answer of each model sizes its bucket.
    fake.gateway.rate_limit_per_minute = {"fast": 100, "slow": 50}
    fake.gateway.rate_window_seconds = 1.0
    gateway = GatewayClient(http)

    async def ask(model: str) -> None:
        body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
        await gateway.complete(body)

    await asyncio.gather(*(ask("fast") for _ in range(24)), *(ask("slow") for _ in range(12)))
    statuses = [r.status for r in fake.history if r.path.endswith("/chat/completions")]
    assert statuses.count(429) <= 1  # at most the burst before the first answer
    assert http.learned_rates() == {"llm:fast": Rate(100, 1.0), "llm:slow": Rate(50, 1.0)}
    slow = sorted(r.at for r in fake.history if r.model == "slow" and r.status == 200)
    # After the first answer, paced at 1 s / 50 (give or take the loop's jitter).
    assert slow[-1] - slow[1] >= 0.9 * (len(slow) - 2) / 50


@pytest.fixture
def two_slots() -> Iterator[FakeLocalLLM]:
    server = FakeLocalLLM("llama-server", slots=2, service_seconds=0.005)
    with serve_in_thread(server):  # type: ignore[arg-type]
        yield server


async def test_a_local_server_with_two_slots_is_not_flooded(two_slots: FakeLocalLLM) -> None:
    config = config_for(
        str(two_slots.base_url), timeouts=Timeouts(connect=2, read=2, llm=2, upload=10)
    )
    async with HttpClient(config, assemblyai=False) as http:
        gateway = GatewayClient(http)
        body: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        await asyncio.gather(*(gateway.complete(body) for _ in range(100)))
    assert len(two_slots.requests) == 100  # every call answered, none timed out
    # A short queue, not the 100 calls at once a ceiling of 256 would allow (some
    # slack: the server shares this process, and a loaded machine blurs its latency).
    assert two_slots.chat_peak <= 32
    assert Limits().llm > 100  # while its ceiling is far above


async def test_replies_nearing_the_timeout_shrink_the_limit_whatever_the_baseline() -> None:
    clock = FakeTime()
    limit = AdaptiveLimit(64, 8, clock=clock, timeout=180.0)
    await saturate(limit, clock, 60.0, rounds=3)  # slow from the first reply on
    assert limit.allowed < 8


async def test_an_explicit_limit_is_a_ceiling(fake: FakeAssemblyAI, base_url: str) -> None:
    async with HttpClient(config_for(base_url, limits=Limits(llm=3))) as http:
        gateway = GatewayClient(http)
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        await asyncio.gather(*(gateway.complete(body) for _ in range(30)))
        assert http.peak_in_flight("llm") <= 3


def test_a_recipes_rates_reach_the_client_the_slowest_for_each_model(tmp_path: Any) -> None:
    from runner.checks import load_recipe
    from runner.execute.forecast import merged_rates

    def recipe(name: str, rates: str) -> Any:
        path = tmp_path / f"{name}.yaml"
        path.write_text(
            f"version: 1\nname: {name}\ninputs: [{{url: 'https://x.test/a.mp3'}}]\n"
            f"limits: {{llm: 16, llm_per_minute: {rates}}}\n"
            "tasks: {s: {prompt: '{{ transcript.text }}'}}\n"
        )
        return load_recipe(path)

    first, second = recipe("a", "{m: 30, n: 100}"), recipe("b", "60")
    assert dict(first.limits) == {"llm": 16}  # a rate is no count of requests at once
    assert dict(first.llm_per_minute) == {"m": 30, "n": 100}
    assert dict(second.llm_per_minute) == {None: 60}
    assert merged_rates([first, second]) == {"m": 30, "n": 100, None: 60}


def test_every_models_rate_and_a_models_own_the_slower_holds() -> None:
    from runner.execute.forecast import rate_for

    clock = FakeTime()
    buckets = Buckets(clock, clock.sleep, {"n": Rate(100, 60.0), None: Rate(60, 60.0)})
    assert buckets.rate(("llm", "n")) == Rate(60, 60.0)
    assert rate_for("n", {"n": 100, None: 60}, {})[0] == 60
    assert rate_for("n", {"n": 20, None: 60}, {})[0] == 20
