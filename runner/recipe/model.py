"""The recipe model: frozen, typed objects built from a schema-valid document.

Everything after loading works with these objects, never with raw YAML dicts.
Each template remembers where it was written (:class:`TemplateOrigin`) so a
template error can name the recipe line, even for an inline ``prompt: |`` block.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from runner.diagnostics import display_path
from runner.recipe.document import Document, KeyPath, format_path

if TYPE_CHECKING:
    from runner.execute.expectations import Expectation

DEFAULT_MODEL = "claude-sonnet-4-6"
DEFAULT_SPEECH_MODELS = ("universal-3-5-pro", "universal-2")
DEFAULT_OUTPUT_DIR = "out/{{ recipe.name }}/{{ item.name }}"
DEFAULT_LEMUR_MODEL = "anthropic/claude-sonnet-4-20250514"

JSON = Any  # a JSON-compatible value made read-only by :func:`freeze`


def freeze(value: Any) -> JSON:
    """Deep read-only copy: mappings become MappingProxyType, lists become tuples."""
    if isinstance(value, Mapping):
        return MappingProxyType({k: freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    return value


def thaw(value: JSON) -> Any:
    """The inverse of :func:`freeze`, for sending over the wire or to a JSON encoder."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [thaw(v) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class TemplateOrigin:
    """Where a template's text was written, to map template line N to a file line."""

    file: str  # display path of the file that holds the text
    key_path: KeyPath  # recipe key that holds (or names) the template
    first_line: int  # file line of the template's line 1
    column: int  # column of the template's first character (1-based)
    in_recipe: bool  # False when the text came from a prompt_file

    def line_of(self, template_line: int) -> int:
        return self.first_line + max(template_line, 1) - 1

    def describe(self) -> str:
        return format_path(self.key_path)


@dataclass(frozen=True, slots=True)
class Template:
    """Jinja source plus where it came from. Rendering lives in :mod:`runner.prompt.templating`."""

    source: str
    origin: TemplateOrigin
    name: str  # a label for Jinja: "tasks.summary.prompt"


class InputKind(StrEnum):
    URL = "url"
    FILE = "file"
    TRANSCRIPT_ID = "transcript_id"
    TRANSCRIPT_FILE = "transcript_file"
    LIST = "list"


@dataclass(frozen=True, slots=True)
class InputSpec:
    """One entry of ``inputs:``; :mod:`runner.items` expands it into items."""

    index: int
    kind: InputKind
    value: str
    name: Template | None
    vars: Mapping[str, JSON]
    line: int


class TaskApi(StrEnum):
    GATEWAY = "gateway"
    LEMUR = "lemur"


class PromptSource(StrEnum):
    PROMPT = "prompt"
    PROMPT_FILE = "prompt_file"
    MESSAGES = "messages"
    QUOTES = "quotes"


@dataclass(frozen=True, slots=True)
class Message:
    role: str
    content: Template


@dataclass(frozen=True, slots=True)
class PostStep:
    """A local post-processing step; ``argument`` is the field path for ``extract``."""

    name: str
    argument: str | None = None

    def describe(self) -> str:
        return f"extract {self.argument}" if self.argument is not None else self.name


@dataclass(frozen=True, slots=True)
class Fallback:
    model: str
    max_tokens: int | None = None
    temperature: float | None = None


@dataclass(frozen=True, slots=True)
class FallbackConfig:
    depth: int | None = None
    retry: bool | None = None


@dataclass(frozen=True, slots=True)
class LemurOptions:
    final_model: str
    context: JSON
    max_output_size: int | None


@dataclass(frozen=True, slots=True)
class QuotesOptions:
    count: int
    window: int
    overlap: int
    question: Template | None


@dataclass(frozen=True, slots=True)
class Task:
    """One prompt run over each item's transcript."""

    name: str
    api: TaskApi
    source: PromptSource
    messages: tuple[Message, ...]  # prompt, prompt_file and system resolve to messages
    prompt_file: Path | None
    model: str
    max_tokens: int | None
    temperature: float | None
    needs: tuple[str, ...]
    json_schema: Mapping[str, JSON] | None
    post_process: tuple[PostStep, ...]
    gateway_post_processing: tuple[str, ...]
    fallbacks: tuple[Fallback, ...]
    fallback_config: FallbackConfig | None
    tools: tuple[Mapping[str, JSON], ...]
    tool_choice: JSON
    stream: bool
    inject_transcript: bool
    output: str
    lemur: LemurOptions | None
    quotes: QuotesOptions | None
    description: str
    line: int
    explicit_output: bool = False
    expectations: tuple[Expectation, ...] = ()

    @property
    def structured(self) -> bool:
        """True when the reply is JSON: a json_schema, or a JSON-producing step."""
        return self.json_schema is not None or any(
            step.name in ("json-repair", "json-schema") for step in self.post_process
        )

    @property
    def templates(self) -> tuple[Template, ...]:
        found = [m.content for m in self.messages]
        if self.quotes is not None and self.quotes.question is not None:
            found.append(self.quotes.question)
        return tuple(found)


@dataclass(frozen=True, slots=True)
class Recipe:
    """A whole recipe file, validated and resolved."""

    path: Path
    display: str  # the path as shown in messages (relative to where the user ran us)
    version: int
    name: str
    description: str
    inputs: tuple[InputSpec, ...]
    transcription: Mapping[str, JSON]
    vars: Mapping[str, JSON]
    tasks: Mapping[str, Task]
    output_dir: Template
    limits: Mapping[str, int] = field(default_factory=dict)
    timeouts: Mapping[str, float] = field(default_factory=dict)
    line_of_tasks: int = 1
    warnings: tuple[str, ...] = field(default=())

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def ordered_tasks(self) -> tuple[Task, ...]:
        """Tasks with every task after the ones it needs; otherwise in recipe order."""
        done: list[str] = []
        pending = list(self.tasks)
        while pending:
            ready = [n for n in pending if all(d in done for d in self.tasks[n].needs)]
            if not ready:  # a cycle; validate reports it, keep the rest in order
                ready = pending[:1]
            done.append(ready[0])
            pending.remove(ready[0])
        return tuple(self.tasks[n] for n in done)

    def transcription_request(self) -> dict[str, Any]:
        """The POST /v2/transcript options (without audio_url), with our default models."""
        options = thaw(self.transcription)
        if "speech_models" not in options and "speech_model" not in options:
            options["speech_models"] = list(DEFAULT_SPEECH_MODELS)
        return dict(options)


# --- building -------------------------------------------------------------------


class _MissingFile(Exception):
    """A prompt_file that cannot be read; the validator reports it, located."""

    def __init__(self, key_path: KeyPath, message: str) -> None:
        super().__init__(message)
        self.key_path = key_path
        self.message = message


def build(doc: Document, path: Path) -> tuple[Recipe, list[tuple[KeyPath, str]]]:
    """Build a :class:`Recipe` from a schema-valid document.

    Returns the recipe and the problems found while resolving files (a missing
    ``prompt_file``), as ``(key path, message)`` pairs for the validator to locate.
    """
    data: Mapping[str, Any] = doc.data
    problems: list[tuple[KeyPath, str]] = []
    defaults: Mapping[str, Any] = data.get("defaults", {})
    tasks: dict[str, Task] = {}
    for name, spec in data["tasks"].items():
        try:
            tasks[name] = _task(doc, path, name, spec, defaults)
        except _MissingFile as missing:
            problems.append((missing.key_path, missing.message))
    output = data.get("output", {})
    recipe = Recipe(
        path=path,
        display=doc.file,
        version=int(data["version"]),
        name=str(data["name"]),
        description=str(data.get("description", "")),
        inputs=tuple(_input(doc, i, entry) for i, entry in enumerate(data["inputs"])),
        transcription=freeze(data.get("transcription", {})),
        vars=freeze(data.get("vars", {})),
        tasks=MappingProxyType(tasks),
        output_dir=_inline(
            doc, ("output", "dir"), output.get("dir", DEFAULT_OUTPUT_DIR), "output.dir"
        ),
        limits=MappingProxyType(dict(data.get("limits", {}))),
        timeouts=MappingProxyType(dict(data.get("timeouts", {}))),
        line_of_tasks=doc.mark(("tasks",)).line,
    )
    return recipe, problems


def _input(doc: Document, index: int, entry: Mapping[str, Any]) -> InputSpec:
    kind = next(k for k in InputKind if k.value in entry)
    name = entry.get("name")
    return InputSpec(
        index=index,
        kind=kind,
        value=str(entry[kind.value]),
        name=_inline(doc, ("inputs", index, "name"), name, f"inputs[{index}].name")
        if name is not None
        else None,
        vars=freeze(entry.get("vars", {})),
        line=doc.mark(("inputs", index)).line,
    )


def _task(
    doc: Document, path: Path, name: str, spec: Mapping[str, Any], defaults: Mapping[str, Any]
) -> Task:
    here: KeyPath = ("tasks", name)
    api = TaskApi(spec.get("api", TaskApi.GATEWAY.value))
    source = next(s for s in PromptSource if s.value in spec)
    prompt_file = None
    messages: list[Message] = []
    # LeMUR has no system message; a recipe-wide default applies to Gateway tasks only.
    system = spec.get("system", defaults.get("system") if api is TaskApi.GATEWAY else None)
    if system is not None and source is not PromptSource.MESSAGES:
        system_path = (*here, "system") if "system" in spec else ("defaults", "system")
        messages.append(Message("system", _inline(doc, system_path, system, f"{name}.system")))
    if source is PromptSource.PROMPT:
        messages.append(Message("user", _inline(doc, (*here, "prompt"), spec["prompt"], name)))
    elif source is PromptSource.PROMPT_FILE:
        prompt_file = _resolve_prompt_file(path, (*here, "prompt_file"), spec["prompt_file"])
        messages.append(Message("user", _file_template(doc, prompt_file, (*here, "prompt_file"))))
    elif source is PromptSource.MESSAGES:
        for i, message in enumerate(spec["messages"]):
            content_path = (*here, "messages", i, "content")
            label = f"{name}.messages[{i}]"
            messages.append(
                Message(message["role"], _inline(doc, content_path, message["content"], label))
            )
    json_schema = spec.get("json_schema")
    post_process = tuple(_post_step(step) for step in spec.get("post_process", []))
    structured = (
        json_schema is not None
        or source is PromptSource.QUOTES
        or any(s.name in ("json-repair", "json-schema") for s in post_process)
    )
    output = spec.get("output") or f"{name}.{'json' if structured else 'md'}"
    return Task(
        name=name,
        api=api,
        source=source,
        messages=tuple(messages),
        prompt_file=prompt_file,
        model=str(spec.get("model", defaults.get("model", DEFAULT_MODEL))),
        max_tokens=spec.get("max_tokens", defaults.get("max_tokens")),
        temperature=spec.get("temperature", defaults.get("temperature")),
        needs=tuple(spec.get("needs", [])),
        json_schema=freeze(json_schema) if json_schema is not None else None,
        post_process=post_process,
        gateway_post_processing=tuple(spec.get("gateway_post_processing", [])),
        fallbacks=tuple(
            Fallback(f["model"], f.get("max_tokens"), f.get("temperature"))
            for f in spec.get("fallbacks", defaults.get("fallbacks", []))
        ),
        fallback_config=_fallback_config(
            spec.get("fallback_config", defaults.get("fallback_config"))
        ),
        tools=tuple(freeze(t) for t in spec.get("tools", [])),
        tool_choice=freeze(spec.get("tool_choice")),
        stream=bool(spec.get("stream", defaults.get("stream", False))),
        inject_transcript=bool(spec.get("inject_transcript", False)),
        output=str(output),
        lemur=_lemur(spec) if api is TaskApi.LEMUR else None,
        quotes=_quotes(doc, name, spec) if source is PromptSource.QUOTES else None,
        description=str(spec.get("description", "")),
        line=doc.mark(here).line,
        explicit_output="output" in spec,
        expectations=tuple(
            _expectation(doc, (*here, "expect", i), entry)
            for i, entry in enumerate(spec.get("expect", []))
        ),
    )


def _expectation(doc: Document, path: KeyPath, entry: Mapping[str, Any]) -> Expectation:
    # Imported here: runner.execute.expectations builds on this module.
    from runner.execute.expectations import KINDS, Expectation

    kind = next(k for k in KINDS if k in entry)
    return Expectation(
        kind=kind,
        value=freeze(entry[kind]),
        ignore_case=bool(entry.get("ignore_case", False)),
        line=doc.mark((*path, kind)).line,
    )


def _post_step(step: str | Mapping[str, str]) -> PostStep:
    if isinstance(step, str):
        return PostStep(step)
    return PostStep("extract", str(step["extract"]))


def _fallback_config(spec: Mapping[str, Any] | None) -> FallbackConfig | None:
    if spec is None:
        return None
    return FallbackConfig(depth=spec.get("depth"), retry=spec.get("retry"))


def _lemur(spec: Mapping[str, Any]) -> LemurOptions:
    return LemurOptions(
        final_model=str(spec.get("final_model", DEFAULT_LEMUR_MODEL)),
        context=freeze(spec.get("context")),
        max_output_size=spec.get("max_output_size"),
    )


def _quotes(doc: Document, name: str, spec: Mapping[str, Any]) -> QuotesOptions:
    quotes = spec["quotes"]
    question = quotes.get("question")
    return QuotesOptions(
        count=int(quotes.get("count", 3)),
        window=int(quotes.get("window", 5)),
        overlap=int(quotes.get("overlap", 2)),
        question=_inline(doc, ("tasks", name, "quotes", "question"), question, f"{name}.question")
        if question is not None
        else None,
    )


def _inline(doc: Document, key_path: KeyPath, text: str, label: str) -> Template:
    """A template written in the recipe itself, with its first line located."""
    mark = doc.mark(key_path, key=False)
    scalar = doc.scalars.get(key_path)
    first_line, column = mark.line, mark.column
    if scalar is not None and scalar.style in ("|", ">"):
        # Block scalars start on the line after the indicator, at the content's indent.
        first_line = mark.line + 1
        column = _indent_of(doc.lines, first_line) + 1
    elif scalar is not None and scalar.style in ("'", '"'):
        column += 1  # skip the opening quote
    origin = TemplateOrigin(doc.file, key_path, first_line, column, in_recipe=True)
    return Template(source=str(text), origin=origin, name=label)


def _indent_of(lines: list[str], line: int) -> int:
    if 1 <= line <= len(lines):
        text = lines[line - 1]
        return len(text) - len(text.lstrip(" "))
    return 0


def _resolve_prompt_file(recipe_path: Path, key_path: KeyPath, relative: str) -> Path:
    """The prompt file, confined to the recipe's folder tree."""
    candidate = Path(relative)
    if candidate.is_absolute():
        raise _MissingFile(
            key_path,
            f"prompt_file {relative!r} is an absolute path; give a path relative to the recipe",
        )
    base = recipe_path.parent.resolve()
    resolved = (base / candidate).resolve()
    if not resolved.is_relative_to(base):
        raise _MissingFile(
            key_path,
            f"prompt_file {relative!r} points outside the recipe's folder; "
            "keep prompt files beside the recipe or below it",
        )
    if not resolved.is_file():
        raise _MissingFile(
            key_path,
            f"prompt_file {relative!r} not found (looked for {display_path(resolved)}); "
            "paths are relative to the recipe file",
        )
    return resolved


def _file_template(doc: Document, file: Path, key_path: KeyPath) -> Template:
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise _MissingFile(
            key_path, f"cannot read prompt_file {display_path(file)}: {exc}"
        ) from None
    origin = TemplateOrigin(display_path(file), key_path, 1, 1, in_recipe=False)
    return Template(source=text, origin=origin, name=display_path(file))
