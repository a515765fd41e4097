"""A stand-in for local OpenAI-compatible LLM servers, taught by recorded replies of real
ones (tests/fixtures/local-llm/): llama.cpp's ``llama-server`` and
llama-cpp-python's ``python -m llama_cpp.server``.

What it reproduces (the fixtures' README says what each server did):

- OpenAI's usage names (``prompt_tokens``, ``completion_tokens``), never the Gateway's;
  llama-server adds ``prompt_tokens_details`` and a ``timings`` object;
- llama-cpp-python answers **HTTP 500** to ``response_format.type: json_schema`` (with
  the recorded error body) and accepts ``json_object`` with a ``schema``; llama-server
  takes both;
- llama-cpp-python ignores ``tools`` and sends no usage chunk when streaming;
- ``GET /v1/models`` as each recorded it.

As a speech server (``POST /v1/audio/transcriptions``) it answers OpenAI's verbose_json,
counts the requests it holds at once (``speech_peak``) and answers the faults queued in
``speech_faults`` first, one per request.

With ``known_models`` it checks model names as Ollama and vLLM do, answering 404 with
Ollama's OpenAI-compatible error body (``{"error": {"message": "model \"NAME\" not
found, try pulling it first", "type": "api_error", ...}}``) to any other.

As a chat server it can have ``slots`` like ``llama-server --parallel N``: each
completion holds a slot for ``service_seconds`` and requests beyond the slots wait in
its queue (never refused), so a client sending too many at once sees its replies slow
down; ``chat_peak`` is the most completions it held at once, queued or served.

It records every request (headers included) so tests can check what reached it, and
answers with ``responder(body)`` or the recorded content of the ``bullets`` request.
Served with :func:`fakeapi.serve_in_thread`, like the AssemblyAI fake.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "local-llm"
SERVERS = {
    "llama-server": "llama-server-smollm2.json",
    "llama-cpp-python": "llama-cpp-python-smollm2.json",
}


@dataclass
class LocalRequest:
    body: dict[str, Any]
    authorization: str | None
    headers: dict[str, str]


@dataclass
class FakeLocalLLM:
    """One local server of the kind ``server`` ("llama-server" or "llama-cpp-python")."""

    server: str = "llama-server"
    key: str | None = None  # when set, requests need `Authorization: Bearer key`
    responder: Callable[[dict[str, Any]], str] | None = None
    requests: list[LocalRequest] = field(default_factory=list)
    base_url: str | None = None
    # When set, the model names the server has, refusing any other as Ollama does
    # (vLLM refuses them too, with its own words): a recipe's Gateway names fail here.
    known_models: set[str] | None = None
    # POST /v1/audio/transcriptions: what the "recording" says, with times in seconds;
    # `speech_words` False answers as faster-whisper-server 0.0.3 does, segments only.
    speech: list[tuple[str, float, float]] = field(default_factory=list)
    speech_words: bool = True
    speech_forms: list[dict[str, list[str]]] = field(default_factory=list)
    # Answered first, one per request: (status, headers, JSON body).
    speech_faults: deque[tuple[int, dict[str, str], dict[str, Any]]] = field(default_factory=deque)
    # Each transcription is held until `speech_gather` are in flight (or `speech_hold`
    # seconds passed), so the peak counted is the client's limit, not an accident of
    # timing; `speech_peak` is the most requests the server held at once.
    speech_gather: int = 1
    speech_hold: float = 1.0
    speech_in_flight: int = 0
    speech_peak: int = 0
    # Chat completions: `slots` served at once, each for `service_seconds`; None: all at once.
    slots: int | None = None
    service_seconds: float = 0.0
    chat_in_flight: int = 0
    chat_peak: int = 0
    chat_times: list[tuple[float, float]] = field(default_factory=list)  # arrived, answered
    _slot_gate: asyncio.Semaphore | None = None

    @property
    def recording(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads((FIXTURES / SERVERS[self.server]).read_text())
        return loaded

    def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/chat/completions", self._complete)
        app.router.add_post("/v1/audio/transcriptions", self._transcribe)
        return app

    async def _transcribe(self, request: web.Request) -> web.Response:
        self.speech_in_flight += 1
        self.speech_peak = max(self.speech_peak, self.speech_in_flight)
        try:
            return await self._transcribed(request)
        finally:
            self.speech_in_flight -= 1

    async def _transcribed(self, request: web.Request) -> web.Response:
        """OpenAI's verbose_json: text, language (a name), duration, segments, and
        top-level words when asked for with timestamp_granularities[]=word."""
        fields: dict[str, list[str]] = {}
        reader = await request.multipart()
        async for part in reader:
            value = await part.read()
            text = (
                value.decode("utf-8", "replace") if part.name != "file" else f"{len(value)} bytes"
            )
            fields.setdefault(str(part.name), []).append(text)
        self.speech_forms.append(fields)
        held_until = time.monotonic() + self.speech_hold
        while self.speech_in_flight < self.speech_gather and time.monotonic() < held_until:
            await asyncio.sleep(0.01)
        if self.speech_faults:
            status, headers, body = self.speech_faults.popleft()
            return web.json_response(body, status=status, headers=headers)
        if self.key is not None and request.headers.get("Authorization") != f"Bearer {self.key}":
            return web.json_response({"error": {"message": "Invalid API Key"}}, status=401)
        end = self.speech[-1][2] if self.speech else 0.0
        reply: dict[str, Any] = {
            "task": "transcribe",
            "language": "english",
            "duration": end + 0.5,
            "text": " ".join(word for word, _, _ in self.speech),
            "segments": [
                {
                    "id": 0,
                    "start": self.speech[0][1] if self.speech else 0.0,
                    "end": end,
                    "text": " ".join(word for word, _, _ in self.speech),
                }
            ],
        }
        if self.speech_words and "word" in fields.get("timestamp_granularities[]", []):
            reply["words"] = [{"word": w, "start": a, "end": b} for w, a, b in self.speech]
        return web.json_response(reply)

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response(self.recording["models"])

    async def _complete(self, request: web.Request) -> web.Response:
        self.chat_in_flight += 1
        self.chat_peak = max(self.chat_peak, self.chat_in_flight)
        arrived = time.monotonic()
        try:
            if self.slots is None:
                if self.service_seconds:
                    await asyncio.sleep(self.service_seconds)
                return await self._completed(request)
            if self._slot_gate is None:
                self._slot_gate = asyncio.Semaphore(self.slots)
            async with self._slot_gate:
                await asyncio.sleep(self.service_seconds)
                return await self._completed(request)
        finally:
            self.chat_in_flight -= 1
            self.chat_times.append((arrived, time.monotonic()))

    async def _completed(self, request: web.Request) -> web.Response:
        body = await request.json()
        authorization = request.headers.get("Authorization")
        self.requests.append(LocalRequest(body, authorization, dict(request.headers)))
        if self.key is not None and authorization != f"Bearer {self.key}":
            return web.json_response({"error": {"message": "Invalid API Key"}}, status=401)
        if self.known_models is not None and body.get("model") not in self.known_models:
            # Ollama's OpenAI-compatible answer to a model it does not have.
            message = f'model "{body.get("model")}" not found, try pulling it first'
            error = {"message": message, "type": "api_error", "param": None, "code": None}
            return web.json_response({"error": error}, status=404)
        fmt = (body.get("response_format") or {}).get("type")
        if self.server == "llama-cpp-python" and fmt == "json_schema":
            error = self.recording["json_openai_shape"]["error_body"]
            return web.Response(status=500, text=error, content_type="application/json")
        content = self.responder(body) if self.responder else self.recording["bullets"]["content"]
        usage: dict[str, Any] = {
            "prompt_tokens": sum(len(str(m.get("content", ""))) // 4 for m in body["messages"]),
            "completion_tokens": max(1, len(content) // 4),
        }
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        reply: dict[str, Any] = {
            "id": f"chatcmpl-{len(self.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
            "usage": usage,
        }
        if self.server == "llama-server":
            usage["prompt_tokens_details"] = {"cached_tokens": 0}
            reply["system_fingerprint"] = "b0-fake"
            reply["timings"] = {"prompt_n": usage["prompt_tokens"], "predicted_n": 1}
        return web.json_response(reply)
