"""The LLM Gateway's OpenAI-compatible ``POST /v1/chat/completions`` (notes §8).

Replies are normalized into :class:`~runner.api.types.Completion`: text parts joined,
Claude's finish reasons mapped to OpenAI's, tool calls read from the choice or the
message, usage in either naming style, and SSE streams reassembled.

Retries: a completion POST is sent as *idempotent*: a duplicate costs tokens, not a
transcription, and the Gateway itself retries 5xx server-side (notes §8,
``fallback_config.retry``), so resending after a timeout or a 429/5xx is the useful
choice. Rate limits are per model, so the model is passed to the policy: a 429 or an
exhausted ``x-ratelimit-remaining`` pauses that model only.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final

from runner.api.config import ClientConfig
from runner.api.http import HttpClient, HttpResponse
from runner.api.replies import ErrorText, fallback_text, loads_or_none
from runner.api.types import CallStats, Completion, Usage
from runner.errors import ApiError

ROUTE: Final = "POST /v1/chat/completions"

# Claude (and Gemini, upper-cased) report their own finish reasons (notes §8).
FINISH_REASONS: Final[Mapping[str, str]] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
}

_LINE_BREAK = re.compile(r"\r\n|\r|\n")  # not str.splitlines: JSON may hold U+2028


# ---------------------------------------------------------------------------------------
# Errors: three envelopes (notes §8) and plain text.
# ---------------------------------------------------------------------------------------


def gateway_error_text(status: int, body: bytes) -> ErrorText:
    """One message from any Gateway error envelope, keeping the request id.

    * spec ``{"error": {"code", "message", "metadata"}}``
    * observed ``{"code", "message", "request_id", "metadata": {"errors": [...]}}``,
      read as ``"invalid request body: model X does not support response_format"``
    * auth ``{"error": "...", "status": "error", "request_id"}``
    * anything else: the body as text, or the status phrase.
    """
    data = loads_or_none(body)
    if not isinstance(data, dict):
        return ErrorText(fallback_text(status, body))
    request_id = _text(data.get("request_id"))
    error = data.get("error")
    if isinstance(error, dict):
        message, details = _text(error.get("message")), _details(error.get("metadata"))
        request_id = request_id or _text(error.get("request_id"))
    elif isinstance(error, str):
        message, details = error.strip(), []
    else:
        message, details = _text(data.get("message")), _details(data.get("metadata"))
    return ErrorText(_join(message, details) or fallback_text(status, body), request_id)


def _text(value: Any) -> str | None:
    """A non-blank string, stripped; None otherwise."""
    return value.strip() or None if isinstance(value, str) else None


def _details(metadata: Any) -> list[str]:
    """``metadata.errors`` as strings (entries may be strings or ``{message}`` objects)."""
    errors = metadata.get("errors") if isinstance(metadata, dict) else None
    if not isinstance(errors, list):
        return []
    found = (
        _text(entry.get("message")) if isinstance(entry, dict) else _text(entry) for entry in errors
    )
    return [text for text in found if text]


def _join(message: str | None, details: list[str]) -> str:
    """``"message: detail; detail"`` without repeating the message as its own detail."""
    extra = [d for d in details if d != message]
    if message and extra:
        return f"{message}: {'; '.join(extra)}"
    return message or "; ".join(extra)


# ---------------------------------------------------------------------------------------
# Parsing replies.
# ---------------------------------------------------------------------------------------


def normalize_finish_reason(value: Any) -> str | None:
    """``stop``, ``length`` or ``tool_calls`` whatever the model's vendor calls them."""
    if not isinstance(value, str) or not value:
        return None
    lowered = value.lower()
    return FINISH_REASONS.get(lowered, lowered)


def content_text(content: Any) -> str:
    """Message content as text: a string, or a list of ``{type: "text", text}`` parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part["text"]
            for part in content
            if isinstance(part, dict)
            and part.get("type", "text") == "text"
            and isinstance(part.get("text"), str)
        )
    return ""


def _tool_calls(container: Any) -> tuple[Mapping[str, Any], ...]:
    """``tool_calls`` of a choice or a message, if it is a list of objects."""
    calls = container.get("tool_calls") if isinstance(container, dict) else None
    if not isinstance(calls, list):
        return ()
    return tuple(call for call in calls if isinstance(call, dict))


def _obj(value: Any) -> Mapping[str, Any]:
    """``value`` if it is a JSON object, else an empty one."""
    return value if isinstance(value, dict) else {}


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def completion_from_json(
    data: Mapping[str, Any], *, requested_model: str | None, stats: CallStats
) -> Completion:
    """A non-streamed reply. Tool calls are read from the choice, else the message (§8)."""
    choices = data.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices else None
    if not isinstance(choice, dict):
        # The Gateway sometimes reports an error with HTTP 200: keep its words.
        said = gateway_error_text(200, json.dumps(data).encode()).message
        reason = f": {said}" if "error" in data and said else ""
        raise ApiError(
            f"{ROUTE} answered without choices{reason}",
            request_id=_text(data.get("request_id")),
            endpoint=ROUTE,
        )
    message = _obj(choice.get("message"))
    return Completion(
        content=content_text(message.get("content")),
        model=_text(data.get("model")) or requested_model,
        usage=Usage.from_api(_obj(data.get("usage"))),
        request_id=_text(data.get("request_id")),
        finish_reason=normalize_finish_reason(choice.get("finish_reason")),
        tool_calls=_tool_calls(choice) or _tool_calls(message),
        response_time_ns=_int(data.get("response_time")),
        stats=stats,
        http_status_code=_int(data.get("http_status_code")),
        llm_status_code=_int(data.get("llm_status_code")),
    )


def sse_data(raw: bytes) -> Iterator[str]:
    """The ``data`` of each server-sent event; multi-line data joined by newlines."""
    lines: list[str] = []
    for line in _LINE_BREAK.split(raw.decode("utf-8", errors="replace")):
        if not line:
            if lines:
                yield "\n".join(lines)
                lines = []
            continue
        name, _, value = line.partition(":")
        if name == "data":
            lines.append(value.removeprefix(" "))
    if lines:
        yield "\n".join(lines)


@dataclass
class _StreamState:
    """What the chunks of one streamed reply add up to."""

    parts: list[str] = field(default_factory=list)
    calls: dict[int, dict[str, Any]] = field(default_factory=dict)
    whole_calls: tuple[Mapping[str, Any], ...] = ()
    finish_reason: str | None = None
    model: str | None = None
    usage: Mapping[str, Any] | None = None
    request_id: str | None = None
    response_time: int | None = None
    http_status_code: int | None = None
    llm_status_code: int | None = None
    done: bool = False

    def feed(self, chunk: Mapping[str, Any]) -> None:
        """Fold one ``chat.completion.chunk`` in; an ``error`` chunk ends the call."""
        if chunk.get("error") is not None:
            text = gateway_error_text(200, json.dumps(chunk).encode())
            raise ApiError(
                f"{ROUTE} stream failed: {text.message}",
                request_id=text.request_id or self.request_id,
                endpoint=ROUTE,
            )
        self.model = _text(chunk.get("model")) or self.model
        self.request_id = self.request_id or _text(chunk.get("request_id") or chunk.get("id"))
        self.response_time = _int(chunk.get("response_time")) or self.response_time
        self.http_status_code = _int(chunk.get("http_status_code")) or self.http_status_code
        self.llm_status_code = _int(chunk.get("llm_status_code")) or self.llm_status_code
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        choices = chunk.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], dict):
            self._feed_choice(choices[0])

    def _feed_choice(self, choice: Mapping[str, Any]) -> None:
        delta = _obj(choice.get("delta"))
        self.parts.append(content_text(delta.get("content")))
        for piece in _tool_calls(delta):
            self._merge_call(piece)
        self.whole_calls = _tool_calls(choice) or self.whole_calls
        self.finish_reason = normalize_finish_reason(choice.get("finish_reason")) or (
            self.finish_reason
        )

    def _merge_call(self, piece: Mapping[str, Any]) -> None:
        """OpenAI streams a tool call as fragments keyed by ``index``; concatenate them."""
        index = _int(piece.get("index"))
        key = len(self.calls) if index is None else index
        call = self.calls.setdefault(
            key, {"id": None, "type": "function", "function": {"name": "", "arguments": ""}}
        )
        for name in ("id", "type"):
            if isinstance(piece.get(name), str):
                call[name] = piece[name]
        function = _obj(piece.get("function"))
        for name in ("name", "arguments"):
            if isinstance(function.get(name), str):
                call["function"][name] += function[name]

    def completion(self, *, requested_model: str | None, stats: CallStats) -> Completion:
        calls = tuple(self.calls[i] for i in sorted(self.calls)) or self.whole_calls
        return Completion(
            content="".join(self.parts),
            model=self.model or requested_model,
            usage=Usage.from_api(self.usage),
            request_id=self.request_id,
            finish_reason=self.finish_reason,
            tool_calls=calls,
            response_time_ns=self.response_time,
            stats=stats,
            http_status_code=self.http_status_code,
            llm_status_code=self.llm_status_code,
        )


def completion_from_sse(raw: bytes, *, requested_model: str | None, stats: CallStats) -> Completion:
    """Reassemble a streamed reply: ``data: {chunk}`` events until ``data: [DONE]``."""
    state = _StreamState()
    for data in sse_data(raw):
        if data.strip() == "[DONE]":
            state.done = True
            break
        chunk = loads_or_none(data.encode("utf-8"))
        if isinstance(chunk, dict):
            state.feed(chunk)
    if not state.done and state.finish_reason is None:
        raise ApiError(
            f"{ROUTE} stream ended before [DONE]; the reply may be incomplete",
            request_id=state.request_id,
            endpoint=ROUTE,
        )
    return state.completion(requested_model=requested_model, stats=stats)


def _is_event_stream(response: HttpResponse) -> bool:
    """SSE by content type; a JSON object body means the server did not stream."""
    content_type = response.headers.get("Content-Type", "")
    if content_type.startswith("text/event-stream"):
        return True
    return not response.body.lstrip().startswith(b"{")


# ---------------------------------------------------------------------------------------
# The client.
# ---------------------------------------------------------------------------------------


class GatewayClient:
    """``complete(body)`` against ``{gateway_url}/chat/completions``."""

    def __init__(self, http: HttpClient, config: ClientConfig | None = None) -> None:
        self._http = http
        self._config = config or http.config

    async def complete(self, body: Mapping[str, Any]) -> Completion:
        """Send one chat-completions request (streamed if ``body["stream"]``)."""
        model = body.get("model") if isinstance(body.get("model"), str) else None
        stream = body.get("stream") is True
        response = await self._http.request(
            "POST",
            f"{self._config.gateway_url}/chat/completions",
            family="llm",
            json=dict(body),
            idempotent=True,
            model=model,
            expect_json=not stream,
            describe_error=gateway_error_text,
        )
        if stream and _is_event_stream(response):
            streamed = completion_from_sse(
                response.body, requested_model=model, stats=response.stats
            )
            return self._redacted(streamed)
        data = loads_or_none(response.body)
        if not isinstance(data, dict):
            raise ApiError(f"{ROUTE} answered with JSON that is not an object", endpoint=ROUTE)
        return self._redacted(
            completion_from_json(data, requested_model=model, stats=response.stats)
        )

    def _redacted(self, completion: Completion) -> Completion:
        """The reply as text, redacted again: a streamed one is put together from
        pieces, each redacted as it was read, that may join into a key."""
        secrets = self._http.secrets
        return replace(
            completion,
            content=secrets.redact(completion.content),
            tool_calls=secrets.redact_data(completion.tool_calls),
        )
