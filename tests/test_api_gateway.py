"""The LLM Gateway and LeMUR clients: replies normalized, errors readable, limits per model.

Why: the Gateway answers in three error envelopes, two usage vocabularies and two
finish-reason vocabularies (notes §8); recipes must see one of each. Its rate limit is
per model, so pausing one model must not slow another.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from apiclient import config_for
from fakeapi import FakeAssemblyAI, status

from runner.api.gateway import (
    GatewayClient,
    completion_from_json,
    completion_from_sse,
    gateway_error_text,
)
from runner.api.http import HttpClient
from runner.api.lemur import LemurClient
from runner.api.types import CallStats, Usage
from runner.errors import ApiError, KeyRefused

ROUTE = "POST /v1/chat/completions"
V2_AUTH_ERROR = "Authentication error, API token missing/invalid"


def chat(model: str = "claude-sonnet-4-6", **fields: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "Hello there"}], **fields}


@pytest.fixture
def gateway(http: HttpClient) -> GatewayClient:
    return GatewayClient(http)


# -- replies ------------------------------------------------------------------------------


async def test_reply_is_normalized(fake: FakeAssemblyAI, gateway: GatewayClient) -> None:
    fake.gateway.enqueue("PONG", model="claude-haiku-4-5-20251001", finish_reason="end_turn")
    reply = await gateway.complete(chat(max_tokens=16))
    assert reply.content == "PONG"
    assert reply.model == "claude-haiku-4-5-20251001"  # the model that answered
    assert reply.finish_reason == "stop"
    assert isinstance(reply.request_id, str)
    assert isinstance(reply.response_time_ns, int)
    usage = reply.usage
    assert usage.input_tokens
    assert usage.output_tokens
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    assert (reply.stats.attempts, reply.stats.retries) == (1, 0)
    assert fake.gateway.calls[0].request["max_tokens"] == 16


async def test_tool_calls_from_the_wire(fake: FakeAssemblyAI, gateway: GatewayClient) -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    fake.gateway.enqueue(None, tool_calls=[call], finish_reason="tool_use")
    reply = await gateway.complete(chat())
    assert (reply.content, reply.tool_calls, reply.finish_reason) == ("", (call,), "tool_calls")


def test_content_parts_usage_names_and_tool_call_places() -> None:
    call = {"id": "c", "type": "function", "function": {"name": "g", "arguments": "{}"}}
    body = {
        "request_id": "r-1",
        "choices": [
            {
                "message": {
                    "role": "assistant",
                    "content": [
                        {"type": "text", "text": "Hello, "},
                        {"type": "text", "text": "world"},
                    ],
                    "tool_calls": [call],
                },
                "finish_reason": "max_tokens",
            }
        ],
        "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
    }
    reply = completion_from_json(body, requested_model="gpt-4.1", stats=CallStats())
    assert reply.content == "Hello, world"
    assert reply.model == "gpt-4.1"  # not echoed: the model asked for
    assert reply.usage == Usage(input_tokens=7, output_tokens=3, total_tokens=10)
    assert reply.tool_calls == (call,)  # from the message when the choice has none
    assert reply.finish_reason == "length"
    gateway_style = {"choices": [{"message": {"content": "x"}}], "usage": {"input_tokens": 2}}
    assert completion_from_json(gateway_style, requested_model=None, stats=CallStats()).usage == (
        Usage(input_tokens=2)
    )


async def test_sse_stream_is_reassembled(fake: FakeAssemblyAI, gateway: GatewayClient) -> None:
    content = "The capital of France is Paris, and it has been for a long time."
    fake.gateway.enqueue(content, model="gpt-4.1")
    reply = await gateway.complete(chat(model="gpt-4.1", stream=True))
    assert reply.content == content
    assert reply.model == "gpt-4.1"
    assert reply.finish_reason == "stop"
    assert reply.usage.output_tokens
    assert reply.usage.input_tokens
    assert fake.gateway.calls[0].stream


def sse_event(delta: dict[str, Any], finish: str | None = None) -> str:
    """One OpenAI-style ``chat.completion.chunk`` event."""
    choice = {"delta": delta, "finish_reason": finish}
    return f"data: {json.dumps({'id': 's-1', 'model': 'gpt-4.1', 'choices': [choice]})}\n\n"


def test_sse_tool_call_fragments_and_truncated_streams() -> None:
    opening = {"index": 0, "id": "c1", "function": {"name": "lookup", "arguments": '{"q": '}}
    rest = {"index": 0, "function": {"arguments": '"Paris"}'}}
    stream = [
        sse_event({"role": "assistant", "tool_calls": [opening]}),
        ": a comment line\n\n",
        sse_event({"tool_calls": [rest]}),
        sse_event({}, "tool_calls"),
        "data: [DONE]\n\n",
    ]
    reply = completion_from_sse("".join(stream).encode(), requested_model=None, stats=CallStats())
    function = {"name": "lookup", "arguments": '{"q": "Paris"}'}
    assert reply.tool_calls == ({"id": "c1", "type": "function", "function": function},)
    assert (reply.finish_reason, reply.request_id, reply.model) == ("tool_calls", "s-1", "gpt-4.1")
    truncated = sse_event({"content": "Par"}).encode()
    with pytest.raises(ApiError, match=r"stream ended before \[DONE\]"):
        completion_from_sse(truncated, requested_model=None, stats=CallStats())


# -- errors: three envelopes and plain text -------------------------------------------------


async def test_observed_envelope_joins_metadata_errors(gateway: GatewayClient) -> None:
    with pytest.raises(ApiError) as failure:
        await gateway.complete(chat(model_region="eu", max_tokens=0))
    assert failure.value.message == (
        f"{ROUTE} failed (400): invalid request body: max_tokens must be an integer greater "
        "than or equal to 1; model_region can only be set to global"
    )
    assert failure.value.status == 400
    assert isinstance(failure.value.request_id, str)


async def test_spec_envelope(fake: FakeAssemblyAI, gateway: GatewayClient) -> None:
    fake.faults.add("POST /v1/chat/completions", status(403, envelope="spec"))
    with pytest.raises(ApiError) as failure:
        await gateway.complete(chat())
    assert failure.value.message == (
        f"{ROUTE} failed (403): Your account does not have access to this LLM Gateway model"
    )


async def test_a_refused_key_stops_with_the_gateway_s_reason_and_hides_the_key(
    base_url: str,
) -> None:
    wrong = "sk-wrong-55aa-secret"
    async with HttpClient(config_for(base_url, key=wrong)) as http:
        with pytest.raises(KeyRefused) as failure:
            await GatewayClient(http).complete(chat())
        with pytest.raises(KeyRefused):  # refused before it is sent
            await GatewayClient(http).complete(chat())
    assert f"{ROUTE} answered 401 ({V2_AUTH_ERROR})" in failure.value.message
    assert failure.value.exit_code == 2
    assert wrong not in f"{failure.value!s} {failure.value!r}"


async def test_non_json_error_after_retries(fake: FakeAssemblyAI, gateway: GatewayClient) -> None:
    fake.faults.add("POST /v1/chat/completions", status(502), times=None)
    with pytest.raises(ApiError) as failure:
        await gateway.complete(chat())
    assert failure.value.message == f"{ROUTE} failed (502) after 8 retries: 502 Bad Gateway"
    assert failure.value.retries == 8


def test_envelope_parser_on_the_documented_examples() -> None:
    observed = {
        "code": 400,
        "message": "invalid request body",
        "request_id": "req-1",
        "metadata": {"errors": ["model X does not support response_format"]},
    }
    text = gateway_error_text(400, json.dumps(observed).encode())
    assert text.message == "invalid request body: model X does not support response_format"
    assert text.request_id == "req-1"
    spec = {"error": {"code": 400, "message": "bad", "metadata": {"errors": ["why"]}}}
    assert gateway_error_text(400, json.dumps(spec).encode()).message == "bad: why"
    repeated = {"code": 400, "message": "m", "metadata": {"errors": ["m"]}}
    assert gateway_error_text(400, json.dumps(repeated).encode()).message == "m"
    assert gateway_error_text(503, b"").message == "Service Unavailable"


# -- retries and per-model rate limits ----------------------------------------------------


async def test_5xx_and_429_are_retried(fake: FakeAssemblyAI, gateway: GatewayClient) -> None:
    fake.faults.add("POST /v1/chat/completions", status(500))
    fake.faults.add("POST /v1/chat/completions", status(429, retry_after=0.2))
    reply = await gateway.complete(chat())
    assert reply.stats.retries == 2
    assert len(fake.gateway.calls) == 1
    assert fake.retry_after_violations() == []


async def test_429_pauses_only_that_model(fake: FakeAssemblyAI, gateway: GatewayClient) -> None:
    fake.faults.add("POST /v1/chat/completions", status(429, retry_after=0.3), model="m-busy")
    started = time.monotonic()

    async def timed(model: str) -> float:
        await gateway.complete(chat(model=model))
        return time.monotonic() - started

    busy, free = await asyncio.gather(timed("m-busy"), timed("m-free"))
    assert busy >= 0.3
    assert free < 0.3
    assert fake.retry_after_violations() == []


async def test_exhausted_ratelimit_waits_for_reset_per_model(
    fake: FakeAssemblyAI, gateway: GatewayClient
) -> None:
    # One request per window: the first answer says remaining 0, reset 1 s.
    fake.gateway.rate_limit_per_minute = {"m-limited": 1}
    fake.gateway.rate_window_seconds = 0.5
    await gateway.complete(chat(model="m-limited"))
    await asyncio.gather(
        gateway.complete(chat(model="m-limited")), gateway.complete(chat(model="m-free"))
    )
    limited = [r for r in fake.history if r.model == "m-limited"]
    free = [r for r in fake.history if r.model == "m-free"]
    assert [r.status for r in fake.history] == [200, 200, 200]  # no 429 provoked
    assert limited[1].at - limited[0].at >= 1.0
    assert free[0].at - limited[0].at < 0.5


# -- LeMUR ----------------------------------------------------------------------------------


async def test_lemur_task(fake: FakeAssemblyAI, http: HttpClient) -> None:
    tid = fake.create_transcript()
    fake.lemur.enqueue("- Maine\n- Maryland")
    body = {
        "final_model": "anthropic/claude-3-7-sonnet-20250219",
        "prompt": "List all the locations affected by wildfires.",
        "context": "This is an interview about wildfires.",
        "transcript_ids": [tid],
    }
    reply = await LemurClient(http).task(body)
    assert reply.content == "- Maine\n- Maryland"
    assert reply.model == "anthropic/claude-3-7-sonnet-20250219"
    assert isinstance(reply.request_id, str)
    assert reply.usage.input_tokens
    assert reply.usage.output_tokens
    assert reply.finish_reason is None
    assert fake.lemur.calls[0].request == body


async def test_lemur_error(http: HttpClient) -> None:
    with pytest.raises(ApiError) as failure:
        await LemurClient(http).task({"prompt": "x", "input_text": "y"})
    assert failure.value.message == (
        "POST /lemur/v3/generate/task failed (400): final_model is required"
    )


async def test_an_error_sent_with_http_200_keeps_its_words(
    fake: FakeAssemblyAI, gateway: GatewayClient
) -> None:
    body = {"error": {"message": "Model overloaded, try later", "code": 529}}
    fake.faults.add("POST /v1/chat/completions", status(200, body=body))
    with pytest.raises(ApiError) as failure:
        await gateway.complete(chat())
    assert failure.value.message.startswith(f"{ROUTE} answered without choices: ")
    assert "Model overloaded, try later" in failure.value.message


def test_negative_or_missing_token_counts_are_unknown() -> None:
    usage = Usage.from_api({"input_tokens": -5, "completion_tokens": 7})
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (None, 7, None)
