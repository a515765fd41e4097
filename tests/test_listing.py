"""The account's transcript list, read strictly: what a page must be, where its
``prev_url`` may lead, and what a transcript id looks like."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from fakeapi import FakeAssemblyAI, listing_with, listing_with_entry

from runner.api.http import HttpClient
from runner.api.listing import is_transcript_id, older_page, read_page
from runner.api.transcripts import TranscriptsClient
from runner.api.transport import Misshapen
from runner.errors import ApiError

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "assemblyai"
BASE = "https://api.assemblyai.com"


def listed() -> dict[str, Any]:
    """The real list page (transcript-list.json) with real ids in it."""
    body: dict[str, Any] = json.loads((FIXTURES / "transcript-list.json").read_text())
    for n, job in enumerate(body["transcripts"]):
        job["id"] = [
            "b33f4691-85b7-4f31-be12-a87cef1c1229",
            "28a73d01-98db-41dd-9e98-2533ba0af117",
        ][n]
    return body


def test_ids_in_assemblyai_s_shape_and_nothing_else() -> None:
    # The fixtures' own ids are placeholders ("TRANSCRIPT_ID"), but the wildfires one.
    wildfires = json.loads((FIXTURES / "transcript-wildfires.json").read_text())
    real = [
        wildfires["id"],
        "9ea68fd3-f953-42c1-9742-976c447fb463",  # the spec's examples
        "62nfw3mlar-01ad-4631-92f6-629929496eed",
        "5551722-f677",
    ]
    assert all(is_transcript_id(value) for value in real)
    for value in ("", "..", "a/b", "x" * 100_000, "abc", "-abcdefgh", "abcd--efgh", None, 7):
        assert not is_transcript_id(value), value


def test_a_real_page_reads_as_jobs_and_the_next_older_page() -> None:
    page = read_page(listed(), BASE)
    assert [job.id for job in page.jobs] == [
        "b33f4691-85b7-4f31-be12-a87cef1c1229",
        "28a73d01-98db-41dd-9e98-2533ba0af117",
    ]
    assert page.jobs[0].audio_url == "http://deleted_by_user"
    assert page.older == f"{BASE}/v2/transcript?limit=2&before_id=TRANSCRIPT_ID_2"


def damaged(change: str) -> Any:
    body = listed()
    jobs = body["transcripts"]
    if change == "not an object":
        return [body]
    if change == "transcripts not a list":
        body["transcripts"] = {"0": jobs[0]}
    elif change == "transcripts missing":
        del body["transcripts"]
    elif change == "a null entry":
        jobs.insert(1, None)
    elif change == "no id":
        del jobs[0]["id"]
    elif change == "an id that is a path":
        jobs[0]["id"] = "../../v2/upload"
    elif change == "no audio_url":
        jobs[1]["audio_url"] = None
    elif change == "page_details missing":
        del body["page_details"]
    return body


@pytest.mark.parametrize(
    "change",
    [
        "not an object",
        "transcripts not a list",
        "transcripts missing",
        "a null entry",
        "no id",
        "an id that is a path",
        "no audio_url",
        "page_details missing",
    ],
)
def test_a_page_that_is_not_a_list_of_jobs_is_no_page(change: str) -> None:
    with pytest.raises(Misshapen):
        read_page(damaged(change), BASE)


@pytest.mark.parametrize(
    ("base", "prev_url", "followed"),
    [
        (BASE, None, None),
        (BASE, "https://api.assemblyai.com/v2/transcript?limit=2", f"{BASE}/v2/transcript?limit=2"),
        # Another host named: only the path and query are kept, on our origin.
        (BASE, "https://evil.test/v2/transcript?limit=2", f"{BASE}/v2/transcript?limit=2"),
        (BASE, "/v2/transcript?before_id=x", f"{BASE}/v2/transcript?before_id=x"),
        # A base URL with a path (a proxy): the server names its own path, kept under it.
        (f"{BASE}/aai", f"{BASE}/v2/transcript?a=1", f"{BASE}/aai/v2/transcript?a=1"),
    ],
)
def test_prev_url_is_followed_as_a_path_and_query_on_our_origin(
    base: str, prev_url: str | None, followed: str | None
) -> None:
    assert older_page(prev_url, base) == followed


@pytest.mark.parametrize(
    "prev_url",
    [
        "@evil.test/v2/transcript?limit=2",  # glued on: userinfo, then another host
        "2:8080/v2/transcript",  # glued on: http://127.0.0.12:8080
        ".evil.test/v2/transcript",
        "/v2/upload",
        "/v2/transcript/../upload",
        "/v2/transcript/abc",
        "",
        7,
        {"url": "/v2/transcript"},
        "/v2/transcript?" + "x" * 10_000,
    ],
)
def test_a_prev_url_leading_anywhere_else_is_no_page(prev_url: Any) -> None:
    with pytest.raises(Misshapen):
        older_page(prev_url, "http://127.0.0.1")


async def test_a_misshapen_page_is_read_again_before_it_fails(
    fake: FakeAssemblyAI, http: HttpClient
) -> None:
    client = TranscriptsClient(http)
    queued = await client.submit("https://example.com/a.mp3", {"speech_models": ["universal-2"]})
    fake.faults.add("GET /v2/transcript", listing_with_entry(None), times=2)
    assert await client.jobs_for("https://example.com/a.mp3", ()) == [queued["id"]]
    assert len(fake.requests_to("GET /v2/transcript")) == 3  # two unreadable, retried
    fake.faults.add("GET /v2/transcript", listing_with(transcripts=None), times=None)
    with pytest.raises(ApiError, match="cannot be read: `transcripts` is missing"):
        await client.jobs_for("https://example.com/a.mp3", ())


def test_the_fixture_is_not_changed_by_reading() -> None:
    body = listed()
    before = copy.deepcopy(body)
    read_page(body, BASE)
    assert body == before
