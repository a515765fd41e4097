"""The executor's seams: what it needs from the APIs, and whom it tells of progress.

``runner.api`` satisfies these protocols over HTTP; tests pass ``FakeServices``
(tests/fakeservices.py) to run each stage in milliseconds, with no server at all.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from runner.api.types import Completion, TranscriptResult
from runner.errors import NotStored
from runner.results.records import ItemRecord

T = TypeVar("T")


class TranscriptsApi(Protocol):
    async def upload(self, path: Path) -> str: ...
    async def submit(self, audio_url: str, options: Mapping[str, Any]) -> Mapping[str, Any]: ...
    async def get(self, transcript_id: str) -> Mapping[str, Any]: ...
    async def download(self, transcript_id: str, read: Callable[[bytes], T]) -> T: ...
    async def sentences(self, transcript_id: str) -> Mapping[str, Any]: ...
    async def paragraphs(self, transcript_id: str) -> Mapping[str, Any]: ...
    async def subtitles(
        self, transcript_id: str, fmt: str, chars_per_caption: int | None = None
    ) -> str: ...
    # The account's jobs of audio_url, newest first, down to one in made_before.
    async def jobs_for(self, audio_url: str, made_before: Collection[str]) -> list[str]: ...
    async def wait(
        self, transcript_id: str, *, audio_duration: float | None, deadline: float | None
    ) -> TranscriptResult: ...


class CompletionApi(Protocol):
    async def complete(self, body: Mapping[str, Any]) -> Completion: ...


class LemurApi(Protocol):
    async def task(self, body: Mapping[str, Any]) -> Completion: ...


class Speech(Protocol):
    """A speech server (``transcription: {engine: openai-compatible}``): ``path``
    transcribed with ``options``, as an AssemblyAI-shaped transcript whose id derives
    from ``audio`` (the audio's identity) and the options."""

    async def transcribe(
        self, path: Path, options: Mapping[str, Any], audio: str
    ) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class Services:
    transcripts: TranscriptsApi
    gateway: CompletionApi
    lemur: LemurApi
    # OpenAI-compatible servers (`providers:`, --llm-url), by Provider.key.
    providers: Mapping[str, CompletionApi] = field(default_factory=dict)
    # Speech servers (`transcription: {engine: openai-compatible}`), by LocalEngine.server:
    # one client each for the whole run, so its limit holds across the run's files.
    speech: Mapping[str, Speech] = field(default_factory=dict)


class ProgressDisplay(Protocol):
    """Progress display: told when items start and finish."""

    def start(self, total: int) -> None: ...
    def item_started(self, recipe: str, item: str) -> None: ...
    def item_finished(self, record: ItemRecord) -> None: ...
    def tick(self, phases: Mapping[str, int]) -> None: ...  # each second: items by phase
    def stop(self) -> None: ...


class _Offline:
    """Services for ``--offline``: any call means the store lacked something."""

    def __getattr__(self, name: str) -> Any:
        async def refuse(*args: Any, **kwargs: Any) -> Any:
            raise NotStored(f"--offline: {name} would need the network")

        return refuse


def offline_services() -> Services:
    """Services that send nothing: ``--offline`` replays come from the state store."""
    offline: Any = _Offline()
    return Services(transcripts=offline, gateway=offline, lemur=offline)
