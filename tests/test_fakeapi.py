"""Tests for the fake AssemblyAI service, driven over loopback with a real aiohttp client.

Why: other integration tests trust the fake to behave like the documented API; these tests
pin that behaviour (shapes, lifecycle, error envelopes, faults) so a regression in the fake
cannot silently make the runner's tests meaningless.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from hashlib import sha256
from typing import Any

import aiohttp
import pytest
from fakeapi import (
    LOOKUP_ERROR,
    SPEAKER_CONFLICT_ERROR,
    TRANSCRIPT_TAG,
    V2_AUTH_ERROR,
    FakeAssemblyAI,
    after_processing_reset,
    build_completed_body,
    delay,
    download_error,
    encode_completed_body,
    fixture,
    malformed,
    minimal_instance,
    reset,
    serve,
    serve_in_thread,
    status,
)
from multidict import CIMultiDictProxy

KEY = "test-key"
AUDIO = b"RIFF....WAVEfmt fake audio bytes" * 100
WILDFIRES = fixture("transcript-wildfires.json")
SUBMIT = {"speech_models": ["universal-3-5-pro", "universal-2"]}


@pytest.fixture
def api_key() -> str:
    """The fake's default key: these tests pin the fake as ``FakeAssemblyAI()`` builds it."""
    return KEY


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """An authorized client session, as the runner would hold."""
    async with aiohttp.ClientSession(headers={"Authorization": KEY}) as client:
        yield client


async def call(
    session: aiohttp.ClientSession, method: str, url: str, body: Any = None, **kwargs: Any
) -> tuple[int, Any, CIMultiDictProxy[str]]:
    """One request; returns status, parsed JSON (or text) and headers."""
    async with session.request(method, url, json=body, **kwargs) as response:
        text = await response.text()
        try:
            parsed: Any = json.loads(text)
        except ValueError:
            parsed = text
        return response.status, parsed, response.headers


async def submit(
    session: aiohttp.ClientSession, base_url: str, audio_url: str, **options: Any
) -> Any:
    """POST /v2/transcript and return the queued body."""
    code, body, _ = await call(
        session, "POST", f"{base_url}/v2/transcript", {"audio_url": audio_url, **SUBMIT, **options}
    )
    assert code == 200, body
    return body


async def poll_until_done(session: aiohttp.ClientSession, base_url: str, tid: str) -> list[Any]:
    """Poll like the runner does; returns every body seen."""
    seen = []
    for _ in range(10):
        code, body, _ = await call(session, "GET", f"{base_url}/v2/transcript/{tid}")
        assert code == 200
        seen.append(body)
        if body["status"] in ("completed", "error"):
            break
    return seen


def chat(model: str = "claude-sonnet-4-6", **fields: Any) -> dict[str, Any]:
    """A valid chat-completions body with overrides."""
    return {"model": model, "messages": [{"role": "user", "content": "Hello there"}], **fields}


# -- REST /v2 -------------------------------------------------------------------------------


async def test_upload_submit_poll_sentences_paragraphs(
    fake: FakeAssemblyAI, base_url: str, session: aiohttp.ClientSession
) -> None:
    code, uploaded, _ = await call(
        session,
        "POST",
        f"{base_url}/v2/upload",
        data=AUDIO,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert code == 200
    assert uploaded["upload_url"].startswith(f"{base_url}/cdn/upload/")
    assert (fake.uploads[0].sha256, fake.uploads[0].size) == (sha256(AUDIO).hexdigest(), len(AUDIO))

    queued = await submit(session, base_url, uploaded["upload_url"], punctuate=True)
    assert queued["status"] == "queued"
    assert queued["audio_url"] == uploaded["upload_url"]
    assert queued["speech_models"] == SUBMIT["speech_models"]
    assert queued["text"] is None
    assert {"language_model", "acoustic_model", "webhook_auth"} <= set(queued)

    seen = await poll_until_done(session, base_url, queued["id"])
    assert [b["status"] for b in seen] == ["processing", "completed"]
    done = seen[-1]
    assert done["text"] == WILDFIRES["text"]
    assert len(done["words"]) == len(WILDFIRES["words"])
    assert done["utterances"] is None
    assert done["speech_model_used"] == "universal-3-5-pro"
    assert fake.polls[queued["id"]] == 2

    code, sentences, _ = await call(
        session, "GET", f"{base_url}/v2/transcript/{queued['id']}/sentences"
    )
    assert code == 200
    assert {"id", "confidence", "audio_duration", "sentences"} <= set(sentences)
    first = sentences["sentences"][0]
    assert first["text"].startswith("Smoke from hundreds of wildfires")
    assert first["text"].endswith(".")
    assert first["speaker"] is None
    assert "channel" in first
    assert " ".join(s["text"] for s in sentences["sentences"]) == WILDFIRES["text"]

    code, paragraphs, _ = await call(
        session, "GET", f"{base_url}/v2/transcript/{queued['id']}/paragraphs"
    )
    assert code == 200
    assert len(paragraphs["paragraphs"]) == -(-len(sentences["sentences"]) // 4)
    assert all("speaker" not in p for p in paragraphs["paragraphs"])

    assert all(r.authorized for r in fake.history)
    assert all("authorization" not in {k.lower() for k in r.headers} for r in fake.history)
    assert KEY not in repr(fake.history)


async def test_lifecycle_is_configurable_and_sentences_need_completion(
    base_url: str, session: aiohttp.ClientSession, fake: FakeAssemblyAI
) -> None:
    fake.on_audio("slow.mp3", polls_to_processing=2, polls_to_completed=3)
    queued = await submit(session, base_url, "https://example.com/slow.mp3")
    code, body, _ = await call(session, "GET", f"{base_url}/v2/transcript/{queued['id']}/sentences")
    assert code == 400
    assert set(body) == {"error"}
    statuses = [b["status"] for b in await poll_until_done(session, base_url, queued["id"])]
    assert statuses == ["queued", "processing", "completed"]


async def test_error_rule_ends_in_status_error(
    fake: FakeAssemblyAI, base_url: str, session: aiohttp.ClientSession
) -> None:
    fake.fail_audio("missing")
    url = "https://example.com/missing.mp3"
    queued = await submit(session, base_url, url)
    done = (await poll_until_done(session, base_url, queued["id"]))[-1]
    assert done["status"] == "error"
    assert done["error"] == download_error(url)
    assert "Please make sure the file exists and is accessible from the internet." in done["error"]


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"speaker_labels": True},
        {"speaker_labels": True, "speakers_expected": 3, "language_detection": True},
        {"multichannel": True, "speech_models": ["universal-2"]},
        {"custom_spelling": [{"from": ["words-"], "to": '\u0000 "utterances"'}]},
    ],
)
def test_a_completed_body_is_encoded_as_json_dumps_would(options: dict[str, Any]) -> None:
    """The words' encoding is reused across jobs; the bytes served stay those of
    ``json.dumps`` of the whole body, and each job's words are its own labelling."""
    base = {"id": "an-id", "status": "queued", "audio_url": "https://a.example/x.mp3", **options}
    expected = json.dumps(build_completed_body(dict(base), options)).encode()
    assert encode_completed_body(dict(base), options) == expected
    assert encode_completed_body(dict(base), options) == expected  # from the cache
    decoded = json.loads(expected)
    assert len(decoded["words"]) == len(WILDFIRES["words"])
    assert decoded["text"] == WILDFIRES["text"]


async def test_speaker_labels_produce_utterances(
    base_url: str, session: aiohttp.ClientSession
) -> None:
    queued = await submit(
        session, base_url, "https://assembly.ai/wildfires.mp3", speaker_labels=True
    )
    done = (await poll_until_done(session, base_url, queued["id"]))[-1]
    utterances = done["utterances"]
    assert [u["speaker"] for u in utterances[:4]] == ["A", "B", "A", "B"]
    assert {w["speaker"] for w in done["words"]} == {"A", "B"}
    assert [w for u in utterances for w in u["words"]] == done["words"]
    assert all(
        {"speaker", "text", "start", "end", "confidence", "words"} <= set(u) for u in utterances
    )
    code, sentences, _ = await call(
        session, "GET", f"{base_url}/v2/transcript/{queued['id']}/sentences"
    )
    assert code == 200
    assert [s["speaker"] for s in sentences["sentences"][:2]] == ["A", "B"]


async def test_multichannel_labels_channels(
    fake: FakeAssemblyAI, base_url: str, session: aiohttp.ClientSession
) -> None:
    tid = fake.create_transcript(multichannel=True, speech_models=["universal-2"])
    _, body, _ = await call(session, "GET", f"{base_url}/v2/transcript/{tid}")
    assert body["audio_channels"] == 2
    assert {(w["speaker"], w["channel"]) for w in body["words"]} == {("1", "1"), ("2", "2")}
    assert body["utterances"][0]["channel"] == "1"


async def test_submission_validation(
    fake: FakeAssemblyAI, base_url: str, session: aiohttp.ClientSession
) -> None:
    url = f"{base_url}/v2/transcript"
    audio = {"audio_url": "https://example.com/a.mp3", **SUBMIT}
    cases: list[tuple[dict[str, Any], str | None]] = [
        ({**audio, "word_boost": ["x"]}, None),
        (
            {**audio, "speakers_expected": 2, "speaker_options": {"min_speakers_expected": 1}},
            SPEAKER_CONFLICT_ERROR,
        ),
        ({**audio, "format_text": "yes"}, "format_text must be a Boolean"),
        ({"audio_url": "https://example.com/a.mp3"}, None),
    ]
    for body, message in cases:
        code, reply, _ = await call(session, "POST", url, body)
        assert code == 400
        assert isinstance(reply["error"], str)
        if message is not None:
            assert reply["error"] == message
    assert fake.submissions == []


async def test_unknown_id_and_auth_errors(base_url: str, session: aiohttp.ClientSession) -> None:
    code, body, _ = await call(session, "GET", f"{base_url}/v2/transcript/nope")
    assert (code, body) == (404, {"error": LOOKUP_ERROR})
    async with aiohttp.ClientSession() as anonymous:
        code, body, _ = await call(anonymous, "GET", f"{base_url}/v2/transcript/nope")
        assert (code, body) == (401, {"error": V2_AUTH_ERROR})
        bearer = {"Authorization": f"Bearer {KEY}"}
        code, _, _ = await call(anonymous, "GET", f"{base_url}/v2/transcript/x", headers=bearer)
        assert code == 401  # /v2 takes the raw key only
        code, _, _ = await call(
            anonymous, "POST", f"{base_url}/v1/chat/completions", chat(), headers=bearer
        )
        assert code == 200  # the Gateway also takes Bearer


async def test_delete_removes_text_and_upload(
    fake: FakeAssemblyAI, base_url: str, session: aiohttp.ClientSession
) -> None:
    _, uploaded, _ = await call(session, "POST", f"{base_url}/v2/upload", data=AUDIO)
    queued = await submit(session, base_url, uploaded["upload_url"])
    code, deleted, _ = await call(session, "DELETE", f"{base_url}/v2/transcript/{queued['id']}")
    assert code == 200
    assert (deleted["text"], deleted["audio_url"], deleted["words"]) == (
        "Deleted by user.",
        "http://deleted_by_user",
        None,
    )
    again = await submit(session, base_url, uploaded["upload_url"])
    done = (await poll_until_done(session, base_url, again["id"]))[-1]
    assert done["status"] == "error"
    assert fake.duplicate_submissions() == {uploaded["upload_url"]: 2}


async def test_list_pages_newest_first(base_url: str, session: aiohttp.ClientSession) -> None:
    ids = [
        (await submit(session, base_url, f"https://example.com/{i}.mp3"))["id"] for i in range(3)
    ]
    code, page, _ = await call(session, "GET", f"{base_url}/v2/transcript?limit=2")
    assert code == 200
    assert [t["id"] for t in page["transcripts"]] == [ids[2], ids[1]]
    _, older, _ = await call(session, "GET", page["page_details"]["prev_url"])
    assert [t["id"] for t in older["transcripts"]] == [ids[0]]
    assert older["page_details"]["prev_url"] is None


async def test_unknown_keys_accepted_without_spec(session: aiohttp.ClientSession) -> None:
    fake = FakeAssemblyAI(spec_path=None, require_speech_models=False)
    async with serve(fake) as url:
        code, _, _ = await call(
            session,
            "POST",
            f"{url}/v2/transcript",
            {"audio_url": "https://x/a.mp3", "future_option": 1},
        )
    assert code == 200


# -- LLM Gateway ----------------------------------------------------------------------------


async def test_gateway_reply_from_queue(
    fake: FakeAssemblyAI, base_url: str, session: aiohttp.ClientSession
) -> None:
    fake.gateway.enqueue(
        content="PONG", model="claude-haiku-4-5-20251001", finish_reason="end_turn"
    )
    code, body, _ = await call(
        session, "POST", f"{base_url}/v1/chat/completions", chat(max_tokens=16)
    )
    assert code == 200
    assert body["choices"][0]["message"]["content"] == "PONG"
    assert body["choices"][0]["finish_reason"] == "end_turn"
    assert body["model"] == "claude-haiku-4-5-20251001"
    assert "messages" not in body["request"]
    assert body["request"]["max_tokens"] == 16
    usage = body["usage"]
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert isinstance(body["response_time"], int)
    assert body["llm_status_code"] == 200
    assert isinstance(body["request_id"], str)


async def test_gateway_default_replies_and_responder(
    fake: FakeAssemblyAI, base_url: str, session: aiohttp.ClientSession
) -> None:
    url = f"{base_url}/v1/chat/completions"
    schema = {
        "type": "object",
        "properties": {
            "title": {"type": "string"},
            "items": {"type": "array"},
            "n": {"type": "integer"},
        },
        "required": ["title", "items", "n"],
    }
    fmt = {"type": "json_schema", "json_schema": {"name": "summary", "schema": schema}}
    _, body, _ = await call(session, "POST", url, chat(response_format=fmt))
    assert json.loads(body["choices"][0]["message"]["content"]) == {
        "title": "",
        "items": [],
        "n": 0,
    }

    _, body, _ = await call(
        session, "POST", url, {"model": "m", "prompt": "Summarize the call in one line please"}
    )
    assert (
        body["choices"][0]["message"]["content"]
        == "Reply to: Summarize the call in one line please"
    )

    fake.gateway.responder = lambda request: {"content": request["messages"][-1]["content"].upper()}
    _, body, _ = await call(session, "POST", url, chat())
    assert body["choices"][0]["message"]["content"] == "HELLO THERE"


async def test_injection_substitutes_only_the_first_tag(
    fake: FakeAssemblyAI, base_url: str, session: aiohttp.ClientSession
) -> None:
    tid = fake.create_transcript()
    messages = [
        {"role": "system", "content": "Be brief. {{transcript}} stays."},
        {"role": "user", "content": f"A {TRANSCRIPT_TAG} B {TRANSCRIPT_TAG}"},
        {"role": "user", "content": f"C {TRANSCRIPT_TAG}"},
    ]
    code, _, _ = await call(
        session,
        "POST",
        f"{base_url}/v1/chat/completions",
        chat(messages=messages, transcript_id=tid),
    )
    assert code == 200
    seen = fake.gateway.calls[-1].messages
    assert seen[0]["content"] == "Be brief. {{transcript}} stays."
    assert seen[1]["content"] == f"A {WILDFIRES['text']} B {TRANSCRIPT_TAG}"
    assert seen[2]["content"] == f"C {TRANSCRIPT_TAG}"

    code, body, _ = await call(
        session,
        "POST",
        f"{base_url}/v1/chat/completions",
        chat(messages=messages, transcript_id="nope"),
    )
    assert code == 404
    assert body["message"] == "transcript not found"
    assert body["code"] == 404


async def test_gateway_three_error_envelopes(
    fake: FakeAssemblyAI, base_url: str, session: aiohttp.ClientSession
) -> None:
    url = f"{base_url}/v1/chat/completions"
    code, observed, _ = await call(session, "POST", url, {"model": "m"})
    assert code == 400
    assert observed["code"] == 400
    assert observed["message"] == "invalid request body"
    assert observed["metadata"] == {"errors": ["one of messages or prompt required"]}
    assert isinstance(observed["request_id"], str)

    fake.faults.add("POST /v1/chat/completions", status(500, envelope="spec"))
    code, spec, _ = await call(session, "POST", url, chat())
    assert code == 500
    assert spec == {"error": {"code": 500, "message": "internal server error", "metadata": {}}}

    async with aiohttp.ClientSession(headers={"Authorization": "wrong"}) as wrong:
        code, auth, _ = await call(wrong, "POST", url, chat())
    assert code == 401
    assert set(auth) == {"error", "status", "request_id"}
    assert auth["status"] == "error"

    for bad, expected in [
        (chat(model_region="eu"), "model_region can only be set to global"),
        (chat(max_tokens=0), "max_tokens must be an integer greater than or equal to 1"),
    ]:
        code, body, _ = await call(session, "POST", url, bad)
        assert code == 400
        assert body["metadata"]["errors"] == [expected]


async def test_tool_calls_and_gateway_429_fault(
    fake: FakeAssemblyAI, base_url: str, session: aiohttp.ClientSession
) -> None:
    url = f"{base_url}/v1/chat/completions"
    tool_call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    fake.gateway.enqueue(content=None, tool_calls=[tool_call], finish_reason="tool_calls")
    _, body, _ = await call(session, "POST", url, chat())
    choice = body["choices"][0]
    assert choice["tool_calls"] == choice["message"]["tool_calls"] == [tool_call]
    assert choice["finish_reason"] == "tool_calls"

    fake.faults.add("POST /v1/chat/completions", status(429, retry_after=30))
    code, body, headers = await call(session, "POST", url, chat())
    assert code == 429
    assert headers["retry-after"] == "30"
    assert {k: body[k] for k in ("message", "code")} == {
        "message": "too many requests for this action",
        "code": 429,
    }


async def test_gateway_fallback_serves_when_primary_fails(
    fake: FakeAssemblyAI, base_url: str, session: aiohttp.ClientSession
) -> None:
    fake.faults.add("POST /v1/chat/completions", status(500), model="claude-sonnet-4-6", times=None)
    body = chat(fallbacks=[{"model": "gemini-2.5-flash", "temperature": 0.2}])
    code, reply, _ = await call(session, "POST", f"{base_url}/v1/chat/completions", body)
    assert code == 200
    assert reply["model"] == "gemini-2.5-flash"
    assert fake.gateway.calls[-1].fallback_used
    code, _, _ = await call(session, "POST", f"{base_url}/v1/chat/completions", chat())
    assert code == 500


async def test_json_repair_strips_fences(
    fake: FakeAssemblyAI, base_url: str, session: aiohttp.ClientSession
) -> None:
    fake.gateway.enqueue(content='```json\n{"a": 1}\n```')
    body = chat(post_processing_steps=[{"type": "json-repair"}])
    _, reply, _ = await call(session, "POST", f"{base_url}/v1/chat/completions", body)
    assert json.loads(reply["choices"][0]["message"]["content"]) == {"a": 1}
    assert "post_processing_steps" not in reply["request"]


async def test_sse_stream_reassembles(
    fake: FakeAssemblyAI, base_url: str, session: aiohttp.ClientSession
) -> None:
    content = "The capital of France is Paris, and it has been for a long time."
    fake.gateway.enqueue(content=content)
    async with session.post(f"{base_url}/v1/chat/completions", json=chat(stream=True)) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        lines = [line.decode().strip() async for line in response.content]
    events = [line.removeprefix("data: ") for line in lines if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert len(chunks) > 2
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text == content
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


async def test_gateway_rate_limit_headers_and_429(
    fake: FakeAssemblyAI, base_url: str, session: aiohttp.ClientSession
) -> None:
    fake.gateway.rate_limit_per_minute = 2
    url = f"{base_url}/v1/chat/completions"
    results = [await call(session, "POST", url, chat()) for _ in range(3)]
    assert [r[0] for r in results] == [200, 200, 429]
    assert results[0][2]["x-ratelimit-limit"] == "2"
    assert results[0][2]["x-ratelimit-remaining"] == "1"
    assert "x-ratelimit-reset" in results[0][2]
    code, body, headers = results[2]
    assert body["message"] == "too many requests for this action"
    assert body["code"] == 429
    assert int(headers["retry-after"]) > 0
    code, _, headers = await call(session, "POST", url, chat(model="other-model"))
    assert code == 200  # the limit is per model
    assert fake.retry_after_violations() == []


# -- Faults and Retry-After --------------------------------------------------------------


async def test_retry_after_violation_detected(
    fake: FakeAssemblyAI, base_url: str, session: aiohttp.ClientSession
) -> None:
    fake.faults.add("POST /v2/transcript", status(429, retry_after=0.2))
    body = {"audio_url": "https://example.com/a.mp3", **SUBMIT}
    code, reply, headers = await call(session, "POST", f"{base_url}/v2/transcript", body)
    assert (code, reply, headers["Retry-After"]) == (429, {"error": "Too Many Requests"}, "0.2")
    assert fake.retry_after_violations() == []
    code, _, _ = await call(session, "POST", f"{base_url}/v2/transcript", body)  # ignores it
    assert code == 200
    violations = fake.retry_after_violations()
    assert len(violations) == 1
    assert violations[0].request.path == "/v2/transcript"
    assert violations[0].early_by > 0


async def test_retry_after_respected(
    fake: FakeAssemblyAI, base_url: str, session: aiohttp.ClientSession
) -> None:
    fake.faults.add("GET /v2/transcript/*", status(429, retry_after=0.1))
    tid = (await submit(session, base_url, "https://example.com/a.mp3"))["id"]
    code, _, headers = await call(session, "GET", f"{base_url}/v2/transcript/{tid}")
    assert code == 429
    await asyncio.sleep(float(headers["Retry-After"]))
    code, _, _ = await call(session, "GET", f"{base_url}/v2/transcript/{tid}")
    assert code == 200
    assert fake.retry_after_violations() == []
    assert fake.polls[tid] == 1  # the 429 was not a served poll


async def test_reset_faults_surface_as_connection_errors(
    fake: FakeAssemblyAI, base_url: str, session: aiohttp.ClientSession
) -> None:
    url = f"{base_url}/v2/transcript"
    body = {"audio_url": "https://example.com/a.mp3", **SUBMIT}
    fake.faults.add("POST /v2/transcript", reset())
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await call(session, "POST", url, body)
    fake.faults.add("POST /v2/transcript", reset(hard=True))
    with pytest.raises(aiohttp.ClientOSError):
        await call(session, "POST", url, body)
    assert fake.submissions == []

    fake.faults.add("POST /v2/transcript", after_processing_reset())
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await call(session, "POST", url, body)
    assert len(fake.submissions) == 1  # the job exists although the client never heard of it
    assert fake.history[-1].status is None
    assert fake.history[-1].fault == "after_processing_reset"


async def test_status_delay_malformed_and_counting(
    fake: FakeAssemblyAI, base_url: str, session: aiohttp.ClientSession
) -> None:
    tid = fake.create_transcript()
    url = f"{base_url}/v2/transcript/{tid}"
    fake.faults.add("GET /v2/transcript/*", status(503), times=2)
    replies = [(await call(session, "GET", url))[:2] for _ in range(3)]
    assert replies[0] == (503, "upstream connect error or disconnect/reset before headers")
    assert [code for code, _ in replies] == [503, 503, 200]

    fake.faults.add("GET /v2/transcript/*", malformed())
    async with session.get(url) as response:
        assert response.status == 200
        with pytest.raises(json.JSONDecodeError):
            json.loads(await response.text())

    fake.faults.add("GET /v2/transcript/*", delay(0.5))
    with pytest.raises(asyncio.TimeoutError):
        await call(session, "GET", url, timeout=aiohttp.ClientTimeout(total=0.05))

    fake.faults.clear()
    rule = fake.faults.add("GET /v2/transcript/*/sentences", status(500), times=None, every=2)
    codes = [(await call(session, "GET", f"{url}/sentences"))[0] for _ in range(4)]
    assert codes == [200, 500, 200, 500]
    assert (rule.matched, rule.applied) == (4, 2)


async def test_probability_faults_are_seeded(
    fake: FakeAssemblyAI, base_url: str, session: aiohttp.ClientSession
) -> None:
    async def run(seed: int) -> list[int]:
        fake.faults.clear()
        fake.faults.add("GET /v2/transcript/*", status(502), times=None, probability=0.5, seed=seed)
        return [(await call(session, "GET", f"{base_url}/v2/transcript/x"))[0] for _ in range(8)]

    first, second = await run(7), await run(7)
    assert first == second
    assert set(first) == {404, 502}


# -- LeMUR ----------------------------------------------------------------------------------


async def test_lemur_task(
    fake: FakeAssemblyAI, base_url: str, session: aiohttp.ClientSession
) -> None:
    tid = fake.create_transcript()
    url = f"{base_url}/lemur/v3/generate/task"
    task = {
        "final_model": "anthropic/claude-3-5-sonnet",
        "prompt": "List the locations.",
        "transcript_ids": [tid],
    }
    fake.lemur.enqueue(response="- Maine\n- Maryland")
    code, body, _ = await call(session, "POST", url, task)
    assert code == 200
    assert set(body) == {"request_id", "response", "usage"}
    assert body["response"] == "- Maine\n- Maryland"
    assert set(body["usage"]) == {"input_tokens", "output_tokens"}
    _, body, _ = await call(session, "POST", url, task)
    assert body["response"] == "LeMUR response to: List the locations."
    code, body, _ = await call(session, "POST", url, {"prompt": "x", "input_text": "y"})
    assert code == 400
    assert "final_model" in body["error"]


# -- Serving from a thread, helpers ----------------------------------------------------------


def test_serve_in_thread_with_sync_client() -> None:
    fake = FakeAssemblyAI()
    with serve_in_thread(fake) as base_url:
        request = urllib.request.Request(
            f"{base_url}/v2/upload", data=AUDIO, method="POST", headers={"Authorization": KEY}
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            upload_url = json.loads(response.read())["upload_url"]
        with pytest.raises(urllib.error.HTTPError) as excinfo:
            urllib.request.urlopen(f"{base_url}/v2/transcript/nope", timeout=5)
        assert excinfo.value.code == 401
    assert fake.uploads[0].url == upload_url
    assert [r.authorized for r in fake.history] == [True, False]


def test_minimal_instance_follows_refs_and_types() -> None:
    schema = {
        "type": "object",
        "required": ["a", "b", "c"],
        "properties": {
            "a": {"$ref": "#/$defs/item"},
            "b": {"type": ["null", "boolean"]},
            "c": {"enum": ["x", "y"]},
        },
        "$defs": {
            "item": {"type": "array", "minItems": 1, "items": {"type": "number", "minimum": 1}}
        },
    }
    assert minimal_instance(schema) == {"a": [1], "b": False, "c": "x"}
