"""Status sweeps: many waiting jobs learn they are done from the account's list.

Why: polling each job costs a request per job per poll, so 200 jobs polled every 3 s
spend the account's whole request budget and still notice completion late. A sweep of
the list (newest first, pages of 200) sees them all at once.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from fakeapi import FakeAssemblyAI

from runner.api.http import HttpClient
from runner.api.listing import ListedJob, Page
from runner.api.pacing import set_testing
from runner.api.sweeps import (
    ACCOUNT_BUDGET,
    MAX_PAGES,
    MIN_PAGES,
    SWEEP_FROM,
    SWEEP_INTERVAL,
    Sighting,
    StatusSweeper,
    pages_for,
)
from runner.api.transcripts import TranscriptsClient
from runner.errors import ApiError, KeyRefused
from runner.results.progress import summary_text
from runner.results.records import Totals

OPTIONS: dict[str, Any] = {"speech_models": ["universal-3-5-pro", "universal-2"]}


def page(entries: list[tuple[str, str]], older: str | None = None) -> Page:
    """A list page of (id, status) entries; ``older`` names the next older page."""
    return Page(
        tuple(
            ListedJob(
                tid, "https://x.test/a.mp3", status, "bad audio" if status == "error" else None
            )
            for tid, status in entries
        ),
        f"/v2/transcript?limit=200&before_id={older}" if older else None,
    )


def error_of(status: str) -> str | None:
    return "bad audio" if status == "error" else None


class Pages:
    """A page reader over fixed pages: the newest for None, then by ``before_id``."""

    def __init__(self, *pages: Page) -> None:
        self.pages = pages
        self.read: list[str | None] = []

    async def __call__(self, url: str | None) -> Page:
        self.read.append(url)
        return self.pages[len(self.read) - 1]


async def test_a_sweep_resolves_finished_jobs_and_leaves_the_others() -> None:
    pages = Pages(
        page([("new", "queued"), ("a", "completed"), ("other", "completed")], older="other"),
        page([("b", "error"), ("c", "processing")]),
    )
    sweeper = StatusSweeper(pages)
    seen = {tid: sweeper.watch(tid) for tid in ("a", "b", "c")}
    await sweeper.sweep()
    await sweeper.close()
    assert seen["a"].result() == Sighting("completed")
    assert seen["b"].result() == Sighting("error", "bad audio")
    assert not seen["c"].done()  # still processing: it waits for the next sweep
    # The second page was read because "b" and "c" were not on the first.
    assert pages.read == [None, "/v2/transcript?limit=200&before_id=other"]


async def test_a_sweep_stops_once_every_job_was_seen() -> None:
    pages = Pages(page([("a", "processing")], older="a"), page([("z", "completed")]))
    sweeper = StatusSweeper(pages)
    sweeper.watch("a")
    await sweeper.sweep()
    await sweeper.close()
    assert len(pages.read) == 1


async def test_a_sweep_reads_as_many_pages_as_the_waiting_jobs_fill() -> None:
    # A straggler behind thousands of newer jobs is left to its own checks.
    many = [page([(f"j{n}", "completed")], older=f"j{n}") for n in range(MIN_PAGES + 3)]
    pages = Pages(*many)
    sweeper = StatusSweeper(pages)
    straggler = sweeper.watch("straggler")
    await sweeper.sweep()
    await sweeper.close()
    assert len(pages.read) == MIN_PAGES
    assert not straggler.done()
    # 1,000 waiting jobs fill 5 pages; 10,000 fill 50, and one more is allowed.
    assert [pages_for(n) for n in (1, 1000, 1001, 10_000, 50_000)] == [5, 6, 7, 51, MAX_PAGES]


async def test_a_failed_sweep_hands_every_job_back_and_a_refused_key_ends_them(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def failing(url: str | None) -> Page:
        raise ApiError("GET /v2/transcript failed (503)", status=503)

    sweeper = StatusSweeper(failing, interval=0.0)
    futures = [sweeper.watch(f"t{n}") for n in range(SWEEP_FROM)]
    results = await asyncio.gather(*futures)
    assert results == [Sighting(None)] * SWEEP_FROM  # "check on your own"

    async def refused(url: str | None) -> Page:
        raise KeyRefused("GET /v2/transcript", 401, "Invalid API key")

    sweeper = StatusSweeper(refused, interval=0.0)
    futures = [sweeper.watch(f"t{n}") for n in range(SWEEP_FROM)]
    outcomes = await asyncio.gather(*futures, return_exceptions=True)
    assert all(isinstance(outcome, KeyRefused) for outcome in outcomes)

    async def broken(url: str | None) -> Page:
        raise TypeError("a bug")

    sweeper = StatusSweeper(broken, interval=0.0)
    futures = [sweeper.watch(f"t{n}") for n in range(SWEEP_FROM)]
    with caplog.at_level(logging.WARNING, logger="runner.api.sweeps"):
        assert await asyncio.gather(*futures) == [Sighting(None)] * SWEEP_FROM
    # One line saying what broke, no traceback: the jobs go on without sweeps.
    (warning,) = caplog.records
    assert warning.getMessage() == (
        "status sweep broke (TypeError: a bug); jobs are checked one by one"
    )
    assert warning.exc_info is None


async def test_sweeps_slow_down_to_stay_within_their_share_of_the_budget() -> None:
    sweeper = StatusSweeper(Pages(*[page([], older="x")] * MIN_PAGES))
    assert sweeper.pause() == SWEEP_INTERVAL
    sweeper.watch("a")
    await sweeper.sweep()  # reads MIN_PAGES pages: the next sweep waits longer
    await sweeper.close()
    per_second = MIN_PAGES / sweeper.pause()
    assert per_second * 300 / ACCOUNT_BUDGET == pytest.approx(0.10)
    assert sweeper.peak_window_requests == MIN_PAGES


async def test_many_waiting_jobs_are_noticed_by_sweeps_without_polling_each(
    fake: FakeAssemblyAI, http: HttpClient
) -> None:
    # Real time (test mode off): jobs finish 0.3 s after submission, and sweeps, not
    # each job's own schedule (first check at 1 s), must notice them.
    set_testing(False)
    fake.complete_after = 0.3
    client = TranscriptsClient(http)
    queued = [await client.submit(f"https://media.example.com/{n}.mp3", OPTIONS) for n in range(6)]
    results = await asyncio.gather(*(client.wait(job["id"], deadline=30) for job in queued))
    await client.sweeper.close()
    assert [r.transcript_id for r in results] == [job["id"] for job in queued]
    assert all(r.data is None and r.polls == 0 for r in results)  # downloaded later
    assert fake.list_requests >= 1
    assert sum(job.status_requests for job in fake.transcripts.values()) == 0
    lateness = [job.notice_lateness for job in fake.transcripts.values()]
    assert all(late is not None and late < 1.5 for late in lateness)
    body = await client.download(queued[0]["id"], bytes)
    assert b'"status":"completed"' in body.replace(b" ", b"")


def test_the_summary_states_status_checks_and_the_share_of_the_budget() -> None:
    totals = Totals()
    totals.transcripts_waited, totals.polls = 200, 4
    text = summary_text(
        totals,
        outcome="completed",
        wall=12.0,
        manifest="out/run.json",
        left=0,
        status_pages=11,
        peak_budget_share=11 / ACCOUNT_BUDGET,
    )
    assert (
        "  status checks: 11 list pages (0.1% of the account's request budget at most) "
        "and 4 polls, 0.07 per transcript"
    ) in text


async def test_jobs_parked_on_sweeps_go_back_to_their_own_checks_when_few_are_left() -> None:
    pages = Pages(*[page([(f"t{n}", "processing") for n in range(SWEEP_FROM)])] * 50)
    sweeper = StatusSweeper(pages, interval=0.0)
    parked = [sweeper.watch(f"t{n}") for n in range(SWEEP_FROM)]
    await asyncio.sleep(0.05)  # a sweep or more: every job seen running
    assert sweeper.saw_lately("t0")
    assert not any(f.done() for f in parked)
    sweeper.unwatch("t3")  # one finished on its own: too few left to sweep for
    assert await asyncio.wait_for(asyncio.gather(*parked[:3]), 1) == [Sighting(None)] * 3
    assert not sweeper.saw_lately("t0")
    await sweeper.close()
