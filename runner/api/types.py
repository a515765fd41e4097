"""Plain results and errors of the API layer, shared by the clients and the executor."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None

    @classmethod
    def from_api(cls, data: Mapping[str, Any] | None) -> Usage:
        """The Gateway's ``input_tokens``/``output_tokens``, else OpenAI's names."""
        if not data:
            return cls()

        def pick(*names: str) -> int | None:
            for name in names:
                value = data.get(name)
                # A negative count is no count: unknown, so it is never summed.
                if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                    return value
            return None

        return cls(
            input_tokens=pick("input_tokens", "prompt_tokens"),
            output_tokens=pick("output_tokens", "completion_tokens"),
            total_tokens=pick("total_tokens"),
        )


@dataclass(frozen=True, slots=True)
class CallStats:
    """How one logical call went over the wire."""

    attempts: int = 1  # HTTP requests sent, including retries
    retries: int = 0
    seconds: float = 0.0  # wall time of the whole call, retries included


@dataclass(frozen=True, slots=True)
class Completion:
    """A reply from the LLM Gateway or LeMUR."""

    content: str
    model: str | None  # the model that actually answered (a fallback, if one was used)
    usage: Usage
    request_id: str | None
    finish_reason: str | None  # normalized: stop, length, tool_calls
    tool_calls: tuple[Mapping[str, Any], ...] = ()
    response_time_ns: int | None = None
    stats: CallStats = field(default_factory=CallStats)
    # The Gateway's own status fields of the answer (seeds/004), where it sends them:
    # its HTTP status, and the LLM provider's behind it.
    http_status_code: int | None = None
    llm_status_code: int | None = None


@dataclass(frozen=True, slots=True)
class TranscriptResult:
    """A completed transcript and how it was obtained.

    ``data`` is the ``GET /v2/transcript/{id}`` body when it is in hand, or None when
    only the job's completion is known (a status sweep saw it): the body is fetched
    when the item has room to work on it, so thousands of waiting items hold no
    transcripts.
    """

    data: Mapping[str, Any] | None
    transcript_id: str | None = None
    polls: int = 0
    submitted: bool = False  # True when this run created the job
    upload_url: str | None = None
    seconds: float = 0.0
