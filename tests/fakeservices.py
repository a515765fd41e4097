"""In-memory stand-ins for the executor's services (runner.execute.services), for tests
that exercise one stage of the pipeline in milliseconds, with no server at all.

In the spirit of ``llm``'s ``MockModel``: replies are queued with ``enqueue()`` and
everything the runner sent is kept in ``history``, so a test asserts on what was
asked, not on how the runner's internals were called. An enqueued exception is raised
instead of answering. The HTTP layer has its own fake (tests/fakeapi.py): use that one
to test retries, timeouts and the wire; use these to test the pipeline's decisions.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any, TypeVar

from runner.api.speech import shaped
from runner.api.types import Completion, TranscriptResult, Usage
from runner.errors import ApiError
from runner.execute.services import Services

T = TypeVar("T")

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "assemblyai"
Sent = tuple[str, Any]  # (what was called, with what)


def wildfires() -> dict[str, Any]:
    """AssemblyAI's real completed transcript of wildfires.mp3."""
    data: dict[str, Any] = json.loads((FIXTURES / "transcript-wildfires.json").read_text())
    return data


class FakeTranscripts:
    """Uploads, submissions and waits. A submission is ``t-1``, ``t-2``…; waiting on it
    answers the next enqueued transcript body (by default the wildfires transcript with
    that id), or raises the next enqueued exception."""

    def __init__(self) -> None:
        self.history: list[Sent] = []
        self._bodies: deque[Mapping[str, Any] | BaseException] = deque()
        self.stored: dict[str, Mapping[str, Any]] = {}  # GET answers by id
        self.upload_errors: dict[str, BaseException] = {}  # by file name
        self.submit_errors: deque[BaseException] = deque()  # raised after the job is made
        self.lost: set[str] = set()  # jobs the account's list does not show
        self.listed: dict[str, list[str]] = {}  # jobs made elsewhere, by audio URL
        self._submitted = 0

    def enqueue(self, *bodies: Mapping[str, Any] | BaseException) -> None:
        self._bodies.extend(bodies)

    def _next(self, transcript_id: str) -> Mapping[str, Any]:
        body = self._bodies.popleft() if self._bodies else {**wildfires(), "id": transcript_id}
        if isinstance(body, BaseException):
            raise body
        self.stored[transcript_id] = body
        return body

    def sent(self, what: str) -> list[Any]:
        """The arguments of every call of ``what`` (``"submit"``, ``"get"``…), in order."""
        return [args for name, args in self.history if name == what]

    async def upload(self, path: Path) -> str:
        self.history.append(("upload", path))
        if path.name in self.upload_errors:
            raise self.upload_errors[path.name]
        return f"https://cdn.example.com/upload/{path.name}"

    async def submit(self, audio_url: str, options: Mapping[str, Any]) -> Mapping[str, Any]:
        self.history.append(("submit", (audio_url, dict(options))))
        self._submitted += 1
        if self.submit_errors:
            raise self.submit_errors.popleft()
        return {"id": f"t-{self._submitted}", "status": "queued"}

    async def get(self, transcript_id: str) -> Mapping[str, Any]:
        self.history.append(("get", transcript_id))
        return self.stored.get(transcript_id) or self._next(transcript_id)

    async def download(self, transcript_id: str, read: Callable[[bytes], T]) -> T:
        self.history.append(("download", transcript_id))
        body = json.dumps(self.stored.get(transcript_id) or self._next(transcript_id)).encode()
        try:
            return read(body)
        except ValueError as exc:  # as the client's retry loop ends: the item's API error
            raise ApiError(f"GET /v2/transcript/{transcript_id} failed: {exc}") from None

    async def wait(
        self, transcript_id: str, *, audio_duration: float | None, deadline: float | None
    ) -> TranscriptResult:
        self.history.append(("wait", transcript_id))
        return TranscriptResult(data=self._next(transcript_id), polls=1)

    async def jobs_for(self, audio_url: str, made_before: Collection[str]) -> list[str]:
        """The jobs this fake created for ``audio_url``, newest first, down to the first
        in ``made_before`` (``listed`` adds others, older)."""
        self.history.append(("jobs_for", audio_url))
        made = [f"t-{n}" for n, (url, _) in enumerate(self.sent("submit"), 1) if url == audio_url]
        kept = [tid for tid in made if tid not in self.lost]
        listed = kept[::-1] + self.listed.get(audio_url, [])
        older = next((n for n, tid in enumerate(listed) if tid in made_before), len(listed))
        return listed[:older]

    async def sentences(self, transcript_id: str) -> Mapping[str, Any]:
        self.history.append(("sentences", transcript_id))
        return {"id": transcript_id, "sentences": []}

    async def paragraphs(self, transcript_id: str) -> Mapping[str, Any]:
        self.history.append(("paragraphs", transcript_id))
        return {"id": transcript_id, "paragraphs": []}

    async def subtitles(
        self, transcript_id: str, fmt: str, chars_per_caption: int | None = None
    ) -> str:
        self.history.append((fmt, transcript_id))
        return f"subtitles of {transcript_id} as {fmt}, {chars_per_caption} characters\n"


Reply = str | Completion | BaseException


class FakeCompletions:
    """The LLM Gateway (``complete``) or LeMUR (``task``): each request answers the next
    enqueued reply; with the queue empty, ``default(body)`` if set, else the test fails."""

    def __init__(self, default: Callable[[Mapping[str, Any]], str] | None = None) -> None:
        self.history: list[Mapping[str, Any]] = []
        self._replies: deque[Reply] = deque()
        self.default = default

    def enqueue(self, *replies: Reply) -> None:
        self._replies.extend(replies)

    async def complete(self, body: Mapping[str, Any]) -> Completion:
        return self._answer(body)

    async def task(self, body: Mapping[str, Any]) -> Completion:
        return self._answer(body)

    def _answer(self, body: Mapping[str, Any]) -> Completion:
        self.history.append(body)
        if self._replies:
            reply = self._replies.popleft()
        elif self.default is not None:
            reply = self.default(body)
        else:
            raise AssertionError(f"no reply enqueued for request {len(self.history)}")
        if isinstance(reply, BaseException):
            raise reply
        if isinstance(reply, Completion):
            return reply
        model = body.get("model") or body.get("final_model")
        usage = Usage(input_tokens=10, output_tokens=5)
        return Completion(reply, model, usage, f"req-{len(self.history)}", "stop")


class FakeSpeech:
    """A speech server (``transcription: {engine: openai-compatible}``): each file is
    answered with the next enqueued verbose_json reply (or raises the next enqueued
    exception), else with one that says the file's name; ``history`` keeps each
    request's ``(path, options)``."""

    def __init__(self) -> None:
        self.history: list[tuple[Path, dict[str, Any]]] = []
        self._replies: deque[Mapping[str, Any] | BaseException] = deque()

    def enqueue(self, *replies: Mapping[str, Any] | BaseException) -> None:
        self._replies.extend(replies)

    async def transcribe(
        self, path: Path, options: Mapping[str, Any], audio: str
    ) -> Mapping[str, Any]:
        self.history.append((path, dict(options)))
        reply = self._replies.popleft() if self._replies else None
        if isinstance(reply, BaseException):
            raise reply
        said = ("words", "of", path.name)
        words = [{"word": word, "start": n, "end": n + 0.5} for n, word in enumerate(said)]
        return shaped(reply or {"text": " ".join(said), "words": words}, options, audio)


class FakeServices(Services):
    """All the services, each with its ``enqueue()`` and ``history``; speech servers
    by ``LocalEngine.server``."""

    transcripts: FakeTranscripts
    gateway: FakeCompletions
    lemur: FakeCompletions
    speech: Mapping[str, FakeSpeech]

    def __init__(
        self,
        default_reply: Callable[[Mapping[str, Any]], str] | None = None,
        speech: Mapping[str, FakeSpeech] | None = None,
    ) -> None:
        super().__init__(
            transcripts=FakeTranscripts(),
            gateway=FakeCompletions(default_reply),
            lemur=FakeCompletions(default_reply),
            speech=speech or {},
        )
