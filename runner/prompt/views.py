"""What a prompt template sees: ``transcript``, ``item``, ``vars``, ``tasks``, ``recipe``.

Every value here is data. Transcript text, CSV cells, item vars and earlier task
replies are inserted as values and never rendered as templates, so a transcript
that says ``{{ 7*7 }}`` is sent as exactly that.

The namespaces know their own dotted path (``vars``, ``tasks.summary``) so the
template engine can name a missing variable precisely and suggest a fix.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from runner.recipe.model import Recipe, Task
from runner.transcript.model import Paragraph, Sentence, Transcript, Utterance, Word
from runner.transcript.understanding import (
    SAMPLE_RESULTS,
    Chapter,
    Entity,
    KeyPhrase,
    SentimentResult,
    Understanding,
    understanding_of,
)

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

    def __str__(self) -> str:
        # Printed whole into a prompt, a mapping reads as JSON, not as Python.
        import json

        return json.dumps(_plain(self), ensure_ascii=False, default=str)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


class NoJson:
    """``tasks.<name>.json`` of a task whose reply is plain text: empty, with a clear error."""

    __slots__ = ("task",)

    def __init__(self, task: str) -> None:
        self.task = task

    def __bool__(self) -> bool:
        return False

    def __str__(self) -> str:
        return ""


class TranscriptUsedAsText(Exception):
    """Raised when a template prints the whole transcript object instead of a field."""


class NoSpeakerLabels(Sequence[Utterance]):
    """``transcript.utterances`` of a transcript made without speaker labels.

    AssemblyAI sends ``utterances: null`` then. Iterating it would render an empty
    prompt that is still sent and paid for, so it is an error naming the cause and the
    fix. Testing it (``{% if transcript.utterances %}``) is allowed: it is false.
    """

    def __bool__(self) -> bool:
        return False

    def __len__(self) -> int:
        return 0

    def __getitem__(self, index: Any) -> Any:
        raise NoSpeakerLabelsUsed

    def __iter__(self) -> Iterator[Utterance]:
        raise NoSpeakerLabelsUsed

    def __str__(self) -> str:
        raise NoSpeakerLabelsUsed


NO_SPEAKERS = "this transcript was made without speaker labels"


class NoSpeakerLabelsUsed(Exception):
    """A template used the utterances of a transcript that has none."""

    def __init__(self) -> None:
        super().__init__(
            f"transcript.utterances is empty: {NO_SPEAKERS} "
            "(add `speaker_labels: true` under `transcription:`), or test it first with "
            "{% if transcript.utterances %} and fall back to {{ transcript.text }}"
        )


@dataclass(frozen=True, slots=True)
class TranscriptView:
    """The transcript as templates see it.

    ``sentences`` and ``paragraphs`` are AssemblyAI's own split or one derived from
    the words, by the one rule of :mod:`runner.execute.segments`. ``words``,
    ``utterances`` and ``speakers`` are read from the transcript when a template first
    uses them: most prompts need only the text.
    """

    id: str | None
    text: str
    sentences: tuple[Sentence, ...]
    paragraphs: tuple[Paragraph, ...]
    audio_duration: float | int | None
    language_code: str | None
    confidence: float | None
    speech_model: str | None
    # Underscored: the sandbox keeps templates from reaching past the view.
    _source: Transcript = field(repr=False, compare=False)

    # What templates see, in this order (docs, "did you mean", `tojson`): the fields
    # above and the properties read from the transcript on first use.
    template_fields: ClassVar[tuple[str, ...]] = (
        "id",
        "text",
        "words",
        "utterances",
        "sentences",
        "paragraphs",
        "audio_duration",
        "language_code",
        "speakers",
        "confidence",
        "speech_model",
        # AssemblyAI's speech understanding results (runner.transcript.understanding).
        "entities",
        "sentiment_analysis",
        "chapters",
        "key_phrases",
        "summary",
        "redacted",
        "unredacted_text",
        "translations",
    )

    def __str__(self) -> str:
        # `{{ transcript }}` is ambiguous: the whole object, or the Gateway's tag?
        # Refuse it and say which one to write.
        raise TranscriptUsedAsText(
            "write {{ transcript.text }} for the transcript text, or {{ gateway_transcript }} "
            "with `inject_transcript: true` to let the LLM Gateway insert it"
        )

    @property
    def words(self) -> tuple[Word, ...]:
        return self._source.words

    @property
    def utterances(self) -> Sequence[Utterance]:
        # A transcript with speech but no utterances was made without speaker labels.
        return self._source.utterances or (NoSpeakerLabels() if self.text.strip() else ())

    @property
    def speakers(self) -> tuple[str, ...]:
        return self._source.speakers

    def _understanding(self) -> Understanding:
        """Read from the transcript's JSON once, when a template first asks."""
        kept = self._source._segments
        found: Understanding | None = kept.get("understanding")
        if found is None:
            found = kept["understanding"] = understanding_of(self._source.raw)
        return found

    @property
    def entities(self) -> tuple[Entity, ...]:
        return self._understanding().entities

    @property
    def sentiment_analysis(self) -> tuple[SentimentResult, ...]:
        return self._understanding().sentiment_analysis

    @property
    def chapters(self) -> tuple[Chapter, ...]:
        return self._understanding().chapters

    @property
    def key_phrases(self) -> tuple[KeyPhrase, ...]:
        return self._understanding().key_phrases

    @property
    def summary(self) -> str | None:
        return self._understanding().summary

    @property
    def redacted(self) -> bool:
        return self._understanding().redacted

    @property
    def unredacted_text(self) -> str | None:
        return self._understanding().unredacted_text

    @property
    def translations(self) -> Namespace:
        return Namespace("transcript.translations", self._understanding().translations)

    def without_utterances(self) -> TranscriptView:
        """This transcript as made without speaker labels (``validate`` renders each
        prompt once so, to warn about unguarded ``transcript.utterances``)."""
        source = replace(self._source, _segments={"all": (self._source.words, ())})
        return replace(self, _source=source)

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
            sentences=sentences,
            paragraphs=paragraphs,
            audio_duration=transcript.audio_duration,
            language_code=transcript.language_code,
            confidence=transcript.confidence,
            speech_model=transcript.speech_model_used,
            _source=transcript,
        )


@dataclass(frozen=True, slots=True)
class TaskResultView:
    """An earlier task's reply: ``.text`` always, ``.json`` for structured replies."""

    task: str
    text: str
    json: Any = None

    def __str__(self) -> str:
        return self.text

    @classmethod
    def build(
        cls, task: str, text: str, data: Any = None, *, structured: bool = True
    ) -> TaskResultView:
        if not structured:
            return cls(task, text, NoJson(task))
        return cls(task, text, wrap_json(data, f"tasks.{task}.json"))

    @classmethod
    def sample(cls, task: Task, text: str) -> TaskResultView:
        """A stand-in for ``tasks.<name>`` before the task has run (``validate``,
        ``render``): ``text``, and JSON shaped by the task's schema when it has one."""
        return cls.build(task.name, text, sample_json(task.json_schema), structured=task.structured)


def wrap_json(value: Any, path: str) -> Any:
    """JSON objects become namespaces that know their path, for precise error messages."""
    if isinstance(value, Mapping):
        return Namespace(path, {str(k): wrap_json(v, f"{path}.{k}") for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(wrap_json(v, f"{path}[{i}]") for i, v in enumerate(value))
    return value


@dataclass(frozen=True, slots=True)
class ItemView:
    """``{{ item }}``: built by ``runner.items.Item.view`` (or :meth:`sample`), nowhere else."""

    name: str
    source: str  # files relative to the recipe's folder, as every template shows them
    vars: Namespace

    def __str__(self) -> str:
        return self.name

    @classmethod
    def sample(cls, variables: Mapping[str, Any] | None = None) -> ItemView:
        """The stand-in item ``validate`` renders templates with."""
        return cls("sample", "sample", Namespace("item.vars", variables or {}))


@dataclass(frozen=True, slots=True)
class RecipeView:
    """``{{ recipe }}``."""

    name: str
    description: str

    def __str__(self) -> str:
        return self.name

    @classmethod
    def of(cls, recipe: Recipe) -> RecipeView:
        return cls(recipe.name, recipe.description)


def item_variables(recipe: Recipe, item: ItemView) -> dict[str, Any]:
    """``{{ vars }}`` for one item: the recipe's variables, overridden by the item's."""
    return {**recipe.vars, **item.vars}


def folder_context(recipe: Recipe, item: ItemView) -> dict[str, Any]:
    """What ``output.dir`` renders with: the recipe, the item and the variables."""
    return {
        "recipe": RecipeView.of(recipe),
        "item": item,
        "vars": Namespace("vars", item_variables(recipe, item)),
    }


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


@dataclass(frozen=True, slots=True)
class ItemEntry:
    """One entry of ``{{ items }}`` in a group task (``over:``): what a per-item task
    sees of the item: ``item``, ``transcript``, and ``tasks`` (the ones it needs)."""

    item: ItemView
    transcript: TranscriptView
    tasks: Namespace

    def __str__(self) -> str:
        return self.item.name


@dataclass(frozen=True, slots=True)
class GroupView:
    """``{{ group }}`` in a group task: its name, and the field and value it groups by
    (None for ``over: all``)."""

    name: str
    by: str | None = None
    value: Any = None

    def __str__(self) -> str:
        return self.name


def group_context(
    *,
    entries: Sequence[ItemEntry],
    group: GroupView,
    variables: Mapping[str, Any],
    recipe: RecipeView,
) -> dict[str, Any]:
    """The variables a group task's templates render with: ``items`` instead of one
    item and its transcript."""
    return {
        "items": list(entries),
        "group": group,
        "vars": Namespace("vars", variables),
        "recipe": recipe,
    }


# --- a typed sample, for checking templates offline ---------------------------------


def sample_transcript_view() -> TranscriptView:
    """A small two-speaker transcript with every field filled, for ``validate``.

    Templates are rendered against it so a misspelled field or a filter used on
    the wrong kind of value is caught before anything is spent.
    """
    lines = [
        ("A", 0, 4200, "Thanks for joining. Let's review the launch plan."),
        ("B", 4300, 9100, "The launch moves to June. Marketing needs the final copy."),
        ("A", 9200, 12000, "Good. I will send the copy on Friday."),
    ]
    words: list[Word] = []
    utterances: list[Utterance] = []
    sentences: list[Sentence] = []
    for speaker, start, end, text in lines:
        tokens = text.split()
        step = (end - start) // len(tokens)
        own = tuple(
            Word(t, start + i * step, start + (i + 1) * step, 0.95, speaker, None)
            for i, t in enumerate(tokens)
        )
        words.extend(own)
        utterances.append(Utterance(speaker, text, start, end, 0.95, own, None))
        sentences.append(Sentence(text, start, end, 0.95, speaker, own, None))
    full_text = " ".join(text for _, _, _, text in lines)
    paragraphs = (Paragraph(full_text, 0, 12000, 0.95, tuple(words)),)
    transcript = Transcript.of_segments(
        tuple(words),
        tuple(utterances),
        id="00000000-0000-4000-8000-000000000000",
        status="completed",
        text=full_text,
        audio_duration=12,
        language_code="en_us",
        confidence=0.95,
        speech_model_used="universal-3-5-pro",
        data=SAMPLE_RESULTS,
    )
    return TranscriptView.build(transcript, tuple(sentences), paragraphs)


class AnyJson:
    """Stands for a JSON reply of unknown shape: any field, index or loop works once."""

    def __getattr__(self, name: str) -> AnyJson:
        if name.startswith("__"):
            raise AttributeError(name)
        return self

    def __getitem__(self, key: object) -> AnyJson:
        return self

    def __iter__(self) -> Iterator[AnyJson]:
        return iter((self,))

    def __len__(self) -> int:
        return 1

    def __str__(self) -> str:
        return "sample"


def sample_json(schema: Mapping[str, Any] | None) -> Any:
    """A JSON value shaped like ``schema`` with every declared property present."""
    if not schema:
        return AnyJson()
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for combinator in ("oneOf", "anyOf", "allOf"):
        options = schema.get(combinator)
        if options:
            return sample_json(options[0])
    kind = schema.get("type")
    if isinstance(kind, list | tuple):
        kind = next((k for k in kind if k != "null"), None)
    if kind == "object" or (kind is None and "properties" in schema):
        properties: Mapping[str, Any] = schema.get("properties", {})
        if not properties:
            return AnyJson()
        return {name: sample_json(sub) for name, sub in properties.items()}
    if kind == "array":
        return [sample_json(schema.get("items") or {})]
    samples = {"string": "sample", "integer": 1, "number": 1.0, "boolean": True, "null": None}
    if kind in samples:
        return samples[kind]
    return AnyJson()
