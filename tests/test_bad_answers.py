"""One bad answer costs one item at most: every 2xx body that does not read as what was
asked for is a transport fault, fetched again when the request is safe to resend, and
otherwise the failure of its own item; never a traceback. Over real sockets against
tests/fakeapi.py, and through the command line."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from apiclient import config_for
from conftest import RunCli
from fakeapi import FakeAssemblyAI, after_processing_reset, delay, malformed, status

from runner.api.config import Timeouts
from runner.api.gateway import GatewayClient
from runner.api.http import HttpClient
from runner.api.transcripts import TranscriptsClient
from runner.api.transport import ByteBudget
from runner.errors import ApiError, MaybeSubmitted

CHAT = {"model": "claude-sonnet-4-6", "messages": [{"role": "user", "content": "Hi"}]}
OPTIONS = {"speech_models": ["universal-2"]}
HTML = "<html><body>502 Bad Gateway</body></html>"


def transcript_of(body: bytes) -> dict[str, object]:
    data = json.loads(body)
    if data.get("status") != "completed":
        raise ValueError("not completed")
    return dict(data)


async def test_a_download_that_is_not_json_is_fetched_again(
    fake: FakeAssemblyAI, http: HttpClient
) -> None:
    transcript_id = fake.create_transcript()
    route = f"GET /v2/transcript/{transcript_id}"
    fake.faults.add(route, malformed(HTML), times=2)
    fake.faults.add(route, malformed('{"status": "compl'), times=1)
    data = await TranscriptsClient(http).download(transcript_id, transcript_of)
    assert data["id"] == transcript_id
    assert len(fake.requests_to(route)) == 4  # three bad answers, then the transcript


async def test_a_download_the_reader_refuses_is_fetched_again(
    fake: FakeAssemblyAI, http: HttpClient
) -> None:
    transcript_id = fake.create_transcript()
    route = f"GET /v2/transcript/{transcript_id}"
    fake.faults.add(route, malformed('{"status": "processing"}'), times=1)
    data = await TranscriptsClient(http).download(transcript_id, transcript_of)
    assert data["status"] == "completed"
    assert len(fake.requests_to(route)) == 2


async def test_a_download_that_never_reads_is_an_api_error_naming_it(
    fake: FakeAssemblyAI, http: HttpClient
) -> None:
    transcript_id = fake.create_transcript()
    fake.faults.add(f"GET /v2/transcript/{transcript_id}", malformed(HTML), times=None)
    with pytest.raises(ApiError, match=r"8 retries: the response is not usable \(.*\): 502 Bad"):
        await TranscriptsClient(http).download(transcript_id, transcript_of)


@pytest.mark.parametrize("part", ["sentences", "paragraphs"])
async def test_segments_of_the_wrong_shape_are_fetched_again(
    fake: FakeAssemblyAI, http: HttpClient, part: str
) -> None:
    transcript_id = fake.create_transcript()
    route = f"GET /v2/transcript/{transcript_id}/{part}"
    fake.faults.add(route, malformed("[1, 2]"), times=1)
    fake.faults.add(route, malformed(f'{{"{part}": "none"}}'), times=1)
    client = TranscriptsClient(http)
    data = await (client.sentences if part == "sentences" else client.paragraphs)(transcript_id)
    assert isinstance(data[part], list)
    assert len(fake.requests_to(route)) == 3


async def test_a_get_answered_with_a_json_array_is_fetched_again(
    fake: FakeAssemblyAI, http: HttpClient
) -> None:
    transcript_id = fake.create_transcript()
    route = f"GET /v2/transcript/{transcript_id}"
    fake.faults.add(route, malformed("[]"), times=1)
    body = await TranscriptsClient(http).get(transcript_id)
    assert body["id"] == transcript_id


RECIPE = """\
version: 1
name: calls
inputs:
  - url: https://media.example.com/a.mp3
  - url: https://media.example.com/b.mp3
  - url: https://media.example.com/c.mp3
tasks:
  summary:
    prompt: "Summarize: {{ transcript.text[:40] }}"
"""


def test_a_run_survives_downloads_answered_with_html(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli
) -> None:
    """The audit's regression: a 200 that is not JSON failed its item instead of being
    fetched again (17 of 63 items). Eight jobs are watched by sweeps of the list, so
    each finished transcript is downloaded on its own: every other download is HTML."""
    inputs = "".join(f"  - url: https://media.example.com/{n}.mp3\n" for n in range(8))
    (served / "calls.yaml").write_text(
        RECIPE.replace(RECIPE[RECIPE.index("  - url") : RECIPE.index("tasks:")], inputs)
    )
    fake.faults.add("GET /v2/transcript/*", malformed(HTML), every=2, times=None)
    code, out, err = run_cli("run", "calls.yaml", "--progress", "plain")
    assert code == 0, out + err
    run = json.loads((served / "out" / "run.json").read_text())
    assert [item["status"] for item in run["items"]] == ["ok"] * 8
    assert len(fake.submissions) == 8  # nothing was paid twice
    assert len(fake.requests_to("GET /v2/transcript/*")) >= 12  # the HTML was fetched again


def test_answers_that_never_read_fail_their_items_with_a_message(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli
) -> None:
    (served / "calls.yaml").write_text(RECIPE)
    fake.faults.add("GET /v2/transcript/*", malformed(HTML), times=None)
    code, out, err = run_cli("run", "calls.yaml", "--progress", "plain")
    assert code == 1, out + err
    assert "Traceback" not in out + err
    run = json.loads((served / "out" / "run.json").read_text())
    for item in run["items"]:
        assert item["status"] == "failed"
        assert "the response is not valid JSON: 502 Bad Gateway" in item["error"]
    assert len(fake.submissions) == 3


# -- the bytes being read at once ------------------------------------------------------


async def test_the_bytes_read_at_once_stay_within_the_budget(
    fake: FakeAssemblyAI, base_url: str
) -> None:
    """Eight 3 MB answers read at once through a 4 MiB budget: the bytes held never pass
    the budget plus one answer (counted, not timed), and every answer arrives whole."""
    big = "word " * (3 * 2**20 // 5)  # words, as a transcript is (not one 3 MB run)
    budget = ByteBudget(4 * 2**20)
    ids = [fake.create_transcript(f"https://media.example.com/{n}.mp3") for n in range(8)]
    for transcript_id in ids:
        fake.faults.add(
            f"GET /v2/transcript/{transcript_id}",
            malformed(json.dumps({"id": transcript_id, "status": "completed", "text": big})),
            times=1,
        )
    async with HttpClient(config_for(base_url), budget=budget) as http:
        client = TranscriptsClient(http)
        bodies = await asyncio.gather(*(client.download(i, transcript_of) for i in ids))
    assert all(body["text"] == big for body in bodies)
    assert budget.peak <= budget.limit + 3 * 2**20 + 2**16
    assert budget.peak >= 3 * 2**20  # it did count them
    assert budget.held == 0


# -- what a message says ---------------------------------------------------------------


async def test_a_submission_lost_after_refusals_says_how_many_sends_it_took(
    fake: FakeAssemblyAI, http: HttpClient
) -> None:
    """Two 429s (sent again: nothing was made), then the third send's answer is lost:
    the message counts the sends instead of saying the request was never resent."""
    fake.faults.add("POST /v2/transcript", status(429), times=2)
    fake.faults.add("POST /v2/transcript", after_processing_reset(), times=1)
    with pytest.raises(MaybeSubmitted) as lost:
        await TranscriptsClient(http).submit("https://media.example.com/a.mp3", OPTIONS)
    assert len(fake.requests_to("POST /v2/transcript")) == 3
    message = str(lost.value)
    assert "got no usable answer to its 3rd send (the 2 before were refused unprocessed)" in (
        message
    )
    assert "not sent again, to avoid paying twice" in message
    assert "not resent" not in message


# -- a model that does not answer ------------------------------------------------------


async def test_a_timed_out_llm_call_is_sent_once_more(fake: FakeAssemblyAI, base_url: str) -> None:
    fake.faults.add("POST /v1/chat/completions", delay(0.6), times=1)
    fake.gateway.enqueue("PONG")
    timeouts = Timeouts(connect=2, read=2, llm=0.3)
    async with HttpClient(config_for(base_url, timeouts=timeouts)) as http:
        reply = await GatewayClient(http).complete(CHAT)
    assert reply.content == "PONG"
    assert reply.stats.retries == 1


async def test_an_llm_call_that_times_out_twice_is_not_sent_a_third_time(
    fake: FakeAssemblyAI, base_url: str
) -> None:
    """Each timed-out call may be billed; two in a row are a hang, not a blip."""
    fake.faults.add("POST /v1/chat/completions", delay(0.6), times=3)
    timeouts = Timeouts(connect=2, read=2, llm=0.3)
    async with HttpClient(config_for(base_url, timeouts=timeouts)) as http:
        with pytest.raises(ApiError, match="timed out twice") as hung:
            await GatewayClient(http).complete(CHAT)
    assert "raise timeouts.llm" in str(hung.value)
    assert len(fake.requests_to("POST /v1/chat/completions")) == 2


def test_the_default_llm_timeout_fits_real_replies_and_a_retry() -> None:
    """One hung call costs a task two timeouts: six minutes at most, not ten."""
    assert 2 * Timeouts().llm <= 360


async def test_a_reader_waiting_for_its_first_bytes_holds_no_one_up() -> None:
    """Age counts from the first bytes: a slow model's call, registered first but still
    silent, does not make later answers wait for it (nor do they wait on each other)."""
    budget = ByteBudget(100)
    with budget.reader(), budget.reader() as first:  # the first token stays silent
        await budget.take(first, 80)
        await asyncio.wait_for(budget.take(first, 80), 1)  # the oldest with bytes: goes on
        assert budget.held == budget.peak == 160
    assert budget.held == 0


async def test_a_reader_over_the_budget_waits_until_bytes_are_given_back() -> None:
    budget = ByteBudget(100)
    with budget.reader() as first:
        await budget.take(first, 90)
        with budget.reader() as second:
            waiting = asyncio.ensure_future(budget.take(second, 20))
            await asyncio.sleep(0)
            assert not waiting.done()  # 110 would pass the limit; first is the oldest
            budget.give_back(first, 50)
            await asyncio.wait_for(waiting, 1)
            assert budget.held == 60
