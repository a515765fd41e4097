"""What a prompt template sees: ``transcript``, ``item``, ``vars``, ``tasks``, ``recipe``.

Every value here is data. Transcript text, CSV cells, item vars and earlier task
replies are inserted as values and never rendered as templates, so a transcript
that says ``{{ 7*7 }}`` is sent as exactly that.

The namespaces know their own dotted path (``vars``, ``tasks.summary``) so the
template engine can name a missing variable precisely and suggest a fix.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from runner.transcript import Paragraph, Sentence, Transcript, Utterance, Word

# The literal tag the LLM Gateway replaces with a transcript's text when the
# request carries its transcript_id. Templates write {{ gateway_transcript }} to
# emit it, so a Jinja {{ transcript }} can never be mistaken for it.
GATEWAY_TRANSCRIPT_TAG = "{{ transcript }}"


class Namespace(Mapping[str, Any]):
    """A read-only mapping that also allows attribute access (``vars.audience``)."""

    __slots__ = ("_path", "_values")

    def __init__(self, path: str, values: Mapping[str, Any]) -> None:
        self._path = path
        self._values = dict(values)

    @property
    def path(self) -> str:
        return self._path

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"<{self._path}: {', '.join(self._values)}>"


class TranscriptUsedAsText(Exception):
    """Raised when a template prints the whole transcript object instead of a field."""


@dataclass(frozen=True, slots=True)
class TranscriptView:
    """The transcript as templates see it.

    ``sentences`` and ``paragraphs`` come from the API's own segmentation when the
    runner fetched them (only when a template uses them); offline they are derived
    from the words.
    """

    id: str | None
    text: str
    words: tuple[Word, ...]
    utterances: tuple[Utterance, ...]
    sentences: tuple[Sentence, ...]
    paragraphs: tuple[Paragraph, ...]
    audio_duration: float | int | None
    language_code: str | None
    speakers: tuple[str, ...]
    confidence: float | None
    speech_model: str | None

    def __str__(self) -> str:
        # `{{ transcript }}` is ambiguous: the whole object, or the Gateway's tag?
        # Refuse it and say which one to write.
        raise TranscriptUsedAsText(
            "write {{ transcript.text }} for the transcript text, or {{ gateway_transcript }} "
            "with `inject_transcript: true` to let the LLM Gateway insert it"
        )

    @classmethod
    def build(
        cls,
        transcript: Transcript,
        sentences: tuple[Sentence, ...] = (),
        paragraphs: tuple[Paragraph, ...] = (),
    ) -> TranscriptView:
        return cls(
            id=transcript.id,
            text=transcript.text,
            words=transcript.words,
            utterances=transcript.utterances,
            sentences=sentences,
            paragraphs=paragraphs,
            audio_duration=transcript.audio_duration,
            language_code=transcript.language_code,
            speakers=transcript.speakers,
            confidence=transcript.confidence,
            speech_model=transcript.speech_model_used,
        )


TRANSCRIPT_FIELDS = frozenset(TranscriptView.__dataclass_fields__)


@dataclass(frozen=True, slots=True)
class TaskResultView:
    """An earlier task's reply: ``.text`` always, ``.json`` for structured replies."""

    text: str
    json: Any = None

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True, slots=True)
class ItemView:
    name: str
    source: str
    vars: Namespace


@dataclass(frozen=True, slots=True)
class RecipeView:
    name: str
    description: str


def prompt_context(
    *,
    transcript: TranscriptView,
    item: ItemView,
    variables: Mapping[str, Any],
    tasks: Mapping[str, TaskResultView],
    recipe: RecipeView,
    inject_transcript: bool = False,
) -> dict[str, Any]:
    """The variables a task's templates render with."""
    context: dict[str, Any] = {
        "transcript": transcript,
        "item": item,
        "vars": Namespace("vars", variables),
        "tasks": Namespace("tasks", tasks),
        "recipe": recipe,
    }
    if inject_transcript:
        context["gateway_transcript"] = GATEWAY_TRANSCRIPT_TAG
    return context
