"""The /v2 client: streamed uploads, submissions that are never paid for twice, polling.

Why: a resubmitted transcript is billed again, a fixed 3 s poll wastes requests on long
audio, and a job that never finishes must fail with a way to reuse it. Each is checked
over loopback against tests/fakeapi.py.
"""

from __future__ import annotations

import asyncio
import random
from hashlib import sha256
from itertools import accumulate, islice
from pathlib import Path
from typing import Any

import pytest
from apiclient import config_for
from fakeapi import (
    FakeAssemblyAI,
    after_processing_reset,
    delay,
    download_error,
    fixture,
    reset,
    status,
)

from runner.api.config import Timeouts
from runner.api.http import HttpClient
from runner.api.pacing import set_testing
from runner.api.transcripts import PollSchedule, TranscriptsClient, poll_delays
from runner.errors import (
    ApiError,
    DeadlineExceeded,
    MaybeSubmitted,
    SourceUnreadable,
    TranscriptFailed,
)

OPTIONS: dict[str, Any] = {"speech_models": ["universal-3-5-pro", "universal-2"]}
WILDFIRES_TEXT = fixture("transcript-wildfires.json")["text"]
NOT_RESENT = "the request may have reached AssemblyAI; not sent again, to avoid paying twice"


class FakeTime:
    """An injectable clock and sleep: waits are recorded and advance the clock instantly."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


@pytest.fixture
def fake_time() -> FakeTime:
    """A fake clock measures the production schedule itself, so test mode is off."""
    set_testing(False)
    return FakeTime()


@pytest.fixture
def client(http: HttpClient, fake_time: FakeTime) -> TranscriptsClient:
    """Polls without real waiting; the schedule has no jitter so waits are exact."""
    return TranscriptsClient(
        http,
        schedule=PollSchedule(jitter=0.0),
        sleep=fake_time.sleep,
        clock=fake_time.clock,
    )


# -- upload -------------------------------------------------------------------------------


async def test_upload_streams_the_file_from_disk(
    fake: FakeAssemblyAI, client: TranscriptsClient, tmp_path: Path
) -> None:
    audio = random.Random(3).randbytes(700_000)
    path = tmp_path / "call.wav"
    path.write_bytes(audio)
    upload_url = await client.upload(path)
    stored = fake.uploads[0]
    assert upload_url == stored.url
    assert (stored.sha256, stored.size) == (sha256(audio).hexdigest(), len(audio))
    assert stored.content_type == "application/octet-stream"
    sent = fake.history[0].headers
    assert sent["Content-Length"] == str(len(audio))  # a sized stream, not chunked


async def test_refused_upload_is_resent_from_the_start(
    fake: FakeAssemblyAI, client: TranscriptsClient, tmp_path: Path
) -> None:
    audio = b"RIFF" + bytes(range(256)) * 400
    path = tmp_path / "a.wav"
    path.write_bytes(audio)
    fake.faults.add("POST /v2/upload", status(503))
    await client.upload(path)
    assert [u.sha256 for u in fake.uploads] == [sha256(audio).hexdigest()]
    assert len(fake.requests_to("POST /v2/upload")) == 2


async def test_upload_of_a_missing_file_says_which(
    client: TranscriptsClient, tmp_path: Path
) -> None:
    with pytest.raises(SourceUnreadable, match=r"cannot upload .*nope\.wav: No such file"):
        await client.upload(tmp_path / "nope.wav")


# -- submit and wait ----------------------------------------------------------------------


async def test_upload_submit_wait_completes_with_polls_counted(
    fake: FakeAssemblyAI, client: TranscriptsClient, fake_time: FakeTime, tmp_path: Path
) -> None:
    path = tmp_path / "a.wav"
    path.write_bytes(b"RIFF fake audio" * 1000)
    upload_url = await client.upload(path)
    queued = await client.submit(upload_url, {**OPTIONS, "speaker_labels": True})
    assert queued["status"] == "queued"
    result = await client.wait(queued["id"], audio_duration=None, deadline=60)
    assert result.data["status"] == "completed"
    assert result.data["text"] == WILDFIRES_TEXT
    assert result.polls == fake.polls[queued["id"]] == 2
    assert fake_time.slept == [1.0, 2.0]
    assert fake.submissions[0].options == {**OPTIONS, "speaker_labels": True}
    sentences = await client.sentences(queued["id"])
    paragraphs = await client.paragraphs(queued["id"])
    assert sentences["sentences"][0]["speaker"] == "A"
    assert paragraphs["paragraphs"]


async def test_validation_error_message(client: TranscriptsClient) -> None:
    with pytest.raises(ApiError) as failure:
        await client.submit("https://example.com/a.mp3", {**OPTIONS, "format_text": "yes"})
    assert (
        failure.value.message == "POST /v2/transcript failed (400): format_text must be a Boolean"
    )
    assert failure.value.status == 400


async def test_unknown_transcript(client: TranscriptsClient) -> None:
    with pytest.raises(ApiError) as failure:
        await client.get("nope")
    assert failure.value.message == (
        "GET /v2/transcript/nope failed (404): Transcript lookup error, transcript id not found"
    )


async def test_transcript_error_raises_transcript_failed(
    fake: FakeAssemblyAI, client: TranscriptsClient
) -> None:
    url = "https://example.com/missing.mp3"
    fake.fail_audio("missing")
    queued = await client.submit(url, OPTIONS)
    with pytest.raises(TranscriptFailed) as failure:
        await client.wait(queued["id"], audio_duration=None, deadline=60)
    assert failure.value.transcript_id == queued["id"]
    assert failure.value.reason == download_error(url)
    assert failure.value.message == f"transcript {queued['id']} failed: {download_error(url)}"


async def test_deadline_names_the_job_and_how_to_reuse_it(
    fake: FakeAssemblyAI, client: TranscriptsClient, fake_time: FakeTime
) -> None:
    fake.on_audio("slow", polls_to_processing=1, polls_to_completed=10_000)
    queued = await client.submit("https://example.com/slow.mp3", OPTIONS)
    tid = queued["id"]
    with pytest.raises(DeadlineExceeded) as failure:
        await client.wait(tid, audio_duration=None, deadline=30)
    assert failure.value.message == (
        f"transcript {tid} did not finish within 30 s (last status: processing). The job may "
        "still finish on AssemblyAI; to use it without paying again, add "
        f"`transcript_id: {tid}` to the recipe's inputs"
    )
    assert (failure.value.transcript_id, failure.value.last_status) == (tid, "processing")
    assert sum(fake_time.slept) == pytest.approx(30.0)
    assert fake.polls[tid] == len(fake_time.slept)


async def test_default_deadline_comes_from_timeouts(
    fake: FakeAssemblyAI, base_url: str, fake_time: FakeTime
) -> None:
    fake.on_audio("slow", polls_to_completed=10_000)
    timeouts = Timeouts(connect=2.0, read=2.0, transcript_deadline=5.0)
    async with HttpClient(config_for(base_url, timeouts=timeouts)) as http:
        client = TranscriptsClient(http, sleep=fake_time.sleep, clock=fake_time.clock)
        queued = await client.submit("https://example.com/slow.mp3", OPTIONS)
        with pytest.raises(DeadlineExceeded, match="did not finish within 5 s"):
            await client.wait(queued["id"])


async def test_polling_survives_a_burst_of_server_errors(
    fake: FakeAssemblyAI, client: TranscriptsClient
) -> None:
    queued = await client.submit("https://example.com/a.mp3", OPTIONS)
    fake.faults.add("GET /v2/transcript/*", status(502), times=3)
    result = await client.wait(queued["id"], deadline=60)
    assert result.data["status"] == "completed"
    assert result.polls == 2


# -- never paying twice -----------------------------------------------------------------


async def test_dropped_answer_to_a_submission_is_never_resent(
    fake: FakeAssemblyAI, client: TranscriptsClient
) -> None:
    fake.faults.add("POST /v2/transcript", after_processing_reset())
    with pytest.raises(MaybeSubmitted) as failure:
        await client.submit("https://example.com/a.mp3", OPTIONS)
    assert failure.value.message == (
        "POST /v2/transcript got no usable answer (the server closed the connection without "
        f"a complete response); {NOT_RESENT}"
    )
    assert len(fake.submissions) == 1
    assert len(fake.requests_to("POST /v2/transcript")) == 1


async def test_read_timeout_on_a_submission_is_never_resent(
    fake: FakeAssemblyAI, base_url: str
) -> None:
    fake.faults.add("POST /v2/transcript", delay(0.4))
    async with HttpClient(config_for(base_url, timeouts=Timeouts(connect=2.0, read=0.1))) as http:
        with pytest.raises(MaybeSubmitted, match="timed out waiting for the response"):
            await TranscriptsClient(http).submit("https://example.com/a.mp3", OPTIONS)
    assert len(fake.requests_to("POST /v2/transcript")) == 1


async def test_reset_before_processing_is_still_treated_as_uncertain(
    fake: FakeAssemblyAI, client: TranscriptsClient
) -> None:
    # The client cannot tell a reset before processing from one after it.
    fake.faults.add("POST /v2/transcript", reset(hard=True))
    with pytest.raises(MaybeSubmitted):
        await client.submit("https://example.com/a.mp3", OPTIONS)
    assert fake.submissions == []
    assert len(fake.requests_to("POST /v2/transcript")) == 1


async def test_a_429_on_a_submission_is_retried_and_a_503_is_not(
    fake: FakeAssemblyAI, client: TranscriptsClient
) -> None:
    """A 429 refuses before any work; a 503 may come from a proxy after the job was made,
    so it is left to the executor to look the job up, never resent blindly."""
    fake.faults.add("POST /v2/transcript", status(429, retry_after=0.3))
    queued = await client.submit("https://example.com/a.mp3", OPTIONS)
    assert [s.transcript_id for s in fake.submissions] == [queued["id"]]
    assert len(fake.requests_to("POST /v2/transcript")) == 2
    assert fake.retry_after_violations() == []
    fake.faults.add("POST /v2/transcript", status(503))
    with pytest.raises(ApiError) as failure:
        await client.submit("https://example.com/b.mp3", OPTIONS)
    assert failure.value.status == 503
    assert len(fake.requests_to("POST /v2/transcript")) == 3


async def test_jobs_for_reads_the_list_down_to_a_job_known_to_be_older(
    fake: FakeAssemblyAI, client: TranscriptsClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """By identity and the server's order, never by a clock: the server's clock here is
    hours behind ours, and the job is still found, pages back."""
    import runner.api.listing as listing

    fake.clock_offset = -2 * 3600
    monkeypatch.setattr(listing, "LIST_PAGE", 2)
    known = await client.submit("https://example.com/known.mp3", OPTIONS)
    ours = await client.submit("https://example.com/a.mp3", OPTIONS)
    for n in range(5):  # newer jobs push it onto an older page
        await client.submit(f"https://example.com/other-{n}.mp3", OPTIONS)
    assert await client.jobs_for("https://example.com/a.mp3", {known["id"]}) == [ours["id"]]
    assert len(fake.requests_to("GET /v2/transcript")) == 4  # it followed prev_url
    # Nothing of an audio never sent; the whole list when no job is known to be older.
    assert await client.jobs_for("https://example.com/never.mp3", {known["id"]}) == []
    assert await client.jobs_for("https://example.com/a.mp3", ()) == [ours["id"]]
    # A job below the first page holding a job known to be older is not the one.
    newer = fake.submissions[-1].transcript_id
    assert await client.jobs_for("https://example.com/a.mp3", {newer}) == []


async def test_500_on_a_submission_is_not_retried(
    fake: FakeAssemblyAI, client: TranscriptsClient
) -> None:
    fake.faults.add("POST /v2/transcript", status(500))
    with pytest.raises(ApiError) as failure:
        await client.submit("https://example.com/a.mp3", OPTIONS)
    assert failure.value.message == "POST /v2/transcript failed (500): Internal Server Error"
    assert len(fake.requests_to("POST /v2/transcript")) == 1


# -- the poll schedule ---------------------------------------------------------------------


def first(n: int, audio_duration: float | None = None, **kwargs: Any) -> list[float]:
    return list(islice(poll_delays(audio_duration, **kwargs), n))


def test_poll_schedule_without_duration_grows_with_elapsed_time() -> None:
    delays = first(200)
    assert delays[:3] == [1.0, 2.0, 2.0]
    assert delays == sorted(delays)
    assert max(delays) == 15.0
    waited = list(accumulate(delays))
    for before, wait in zip(waited, delays[1:], strict=False):
        assert wait <= max(2.0, 0.1 * before) + 1e-9  # never more than 10 % of time spent
    polls_in_ten_minutes = sum(1 for t in waited if t <= 600)
    assert polls_in_ten_minutes < 80  # a fixed 3 s interval would take 200


def test_poll_schedule_scales_with_audio_duration() -> None:
    assert first(3, 3600) == [1.0, 15.0, 15.0]  # an hour of audio: no need to hurry
    assert first(3, 300) == [1.0, 9.0, 9.0]  # 10 % of the expected 90 s
    assert first(2, 30) == [1.0, 2.0]
    long_after = first(60, 300)[-1]
    assert long_after == 15.0  # slower than expected: back off to the ceiling


def test_poll_schedule_jitter_is_bounded_and_seeded() -> None:
    plain = first(30)
    jittered = first(30, rng=random.Random(9))
    assert jittered == first(30, rng=random.Random(9))
    assert jittered != plain
    for base, actual in zip(plain, jittered, strict=True):
        assert 0.9 * base <= actual <= 1.1 * base
    custom = first(3, schedule=PollSchedule(first=0.5, minimum=4.0, maximum=4.0, jitter=0))
    assert custom == [0.5, 4.0, 4.0]
