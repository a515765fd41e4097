"""The recipe model: frozen, typed objects built from a schema-valid document.

Everything after loading works with these objects, never with raw YAML dicts.
Each template remembers where it was written (:class:`TemplateOrigin`) so a
template error can name the recipe line, even for an inline ``prompt: |`` block.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import Any

from runner.folders import DEFAULT_OUT, MANIFEST_FILE
from runner.recipe.document import KeyPath, format_path
from runner.recipe.prices import PriceTable
from runner.recipe.taskgraph import TaskGraph

DEFAULT_MODEL = "claude-sonnet-4-6"
DEFAULT_SPEECH_MODELS = ("universal-3-5-pro", "universal-2")
DEFAULT_OUTPUT_DIR = f"{DEFAULT_OUT.as_posix()}/{{{{ recipe.name }}}}/{{{{ item.name }}}}"
DEFAULT_LEMUR_MODEL = "anthropic/claude-sonnet-4-20250514"
TRANSCRIPT_FILE = "transcript.json"
# Files the runner itself writes, which no task output may take.
RESERVED_OUTPUTS = {MANIFEST_FILE: "the run manifest", TRANSCRIPT_FILE: "the item's transcript"}

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


GATEWAY_PROVIDER = "assemblyai"  # `model: {provider: assemblyai, name: ...}`: the Gateway


@dataclass(frozen=True, slots=True)
class Provider:
    """An OpenAI-compatible chat completions server (``providers:``): a local Ollama,
    llama.cpp ``llama-server``, vLLM or LM Studio, or any other."""

    name: str
    base_url: str  # up to and including /v1
    api_key_env: str | None = None  # the variable holding its key; None: no key sent
    headers: Mapping[str, str] = field(default_factory=dict)
    structured_output: str = "json_schema"  # json_schema | json_object | none
    tools: bool = True
    stream_usage: bool = False  # ask for a usage chunk at the end of a stream
    extra_body: Mapping[str, JSON] = field(default_factory=dict)
    # The names this server knows the recipe's models by (`models:`, --llm-model
    # FROM=TO), and the one it sends for every other (`model:`, --llm-model MODEL).
    models: Mapping[str, str] = field(default_factory=dict)
    default_model: str | None = None

    @property
    def key(self) -> str:
        """Which server this is: two recipes may give one name to different servers."""
        return f"{self.name} {self.base_url} {self.api_key_env or ''}"

    def model_for(self, name: str) -> str:
        """The model name this server is sent for the recipe's ``name``."""
        return self.models.get(name) or self.default_model or name

    def maps(self, name: str) -> bool:
        """Whether ``name`` reaches this server under a name given for it."""
        return name in self.models or self.default_model is not None


@dataclass(frozen=True, slots=True)
class LocalEngine:
    """``transcription: {engine: faster-whisper, ...}``: speech-to-text on this machine."""

    engine: str
    model: str | None = None  # a folder or a cached name; None: the bundled tiny.en
    language: str | None = None  # None: detected
    beam_size: int = 5
    compute_type: str = "int8"
    vad_filter: bool = False
    base_url: str | None = None  # openai-compatible: the speech server
    api_key_env: str | None = None  # openai-compatible: its key's variable

    @property
    def server(self) -> str:
        """Which speech server this is (``openai-compatible``): recipes naming the same
        URL and key variable share it, and with it its limit."""
        return f"{(self.base_url or '').rstrip('/')} {self.api_key_env or ''}"

    def options(self) -> dict[str, Any]:
        """What identifies a transcription by this engine (with the audio's bytes)."""
        if self.engine == "openai-compatible":
            return {
                "engine": self.engine,
                "base_url": self.base_url,
                "model": self.model,
                "language": self.language,
            }
        return {
            "engine": self.engine,
            "model": self.model,
            "language": self.language,
            "beam_size": self.beam_size,
            "compute_type": self.compute_type,
            "vad_filter": self.vad_filter,
        }


ASSEMBLYAI = "assemblyai"  # a transcription's engine when it names none


@dataclass(frozen=True, slots=True)
class WerCheck:
    """``expect: [{wer: {reference, max}}]`` on a transcription: its word error rate
    against what was really said (:mod:`runner.transcript.wer`), at most ``max``."""

    max: float
    line: int
    reference_file: Template | None = None  # a text file, relative to the recipe's folder
    reference_column: str | None = None  # or the item's variable (a list's or CSV's column)
    where: KeyPath = ()  # the `wer` key, for validate's messages

    def describe(self) -> str:
        return f"wer ≤ {self.max:g}"


@dataclass(frozen=True, slots=True)
class Transcription:
    """One block of ``transcription:`` (a list holds several, the first the primary):
    AssemblyAI's options, or a local engine, and the checks on its transcripts."""

    label: str  # how the report names it: the engine, and its model when two share one
    options: Mapping[str, JSON]  # as written, without the runner's own `expect`
    local_engine: LocalEngine | None = None
    checks: tuple[WerCheck, ...] = ()


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
    # Not a recipe value: an export task asks no model (AssemblyAI's subtitle endpoints
    # at most, which cost nothing).
    EXPORT = "export"


class PromptSource(StrEnum):
    PROMPT = "prompt"
    PROMPT_FILE = "prompt_file"
    MESSAGES = "messages"
    QUOTES = "quotes"
    EXPORT = "export"


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
    """A model tried when the task's own fails, with any of the task's request fields
    overridden for it (the rest are inherited): seeds/004's "any field"."""

    model: str
    # The recipe keys this fallback gives itself (`json_schema`, `messages`, ...), in order.
    overrides: tuple[str, ...] = ()
    # The task as this fallback asks it: the task's fields with the overrides (its
    # prompt, schema, post-processing), so a reply is finished by the settings of the
    # model that answered it. None only for a fallback made by hand.
    task: Task | None = None
    provider: str | None = None  # on a provider (`NAME/model`): asked on our side
    # `model: {provider: NAME, name: MODEL}`: the provider named, not read off the name
    model_provider: str | None = None


@dataclass(frozen=True, slots=True)
class FallbackConfig:
    depth: int | None = None
    retry: bool | None = None


@dataclass(frozen=True, slots=True)
class LemurOptions:
    final_model: str
    context: JSON
    max_output_size: int | None
    input_text: Template | None = None  # sent instead of the transcript's id


# Export formats (``export:``) and the file extension each is written with.
EXPORT_EXTENSIONS = {
    "srt": "srt",
    "vtt": "vtt",
    "txt": "txt",
    "markdown": "md",
    "json": "json",
    "words-csv": "csv",
}


@dataclass(frozen=True, slots=True)
class ExportOptions:
    """An export task: the transcript itself in ``format``, with no LLM."""

    format: str
    chars_per_caption: int | None = None  # srt and vtt
    chars_per_line: int | None = None  # srt and vtt: built captions (default 42)
    lines_per_caption: int | None = None  # srt and vtt: built captions (default 2)
    min_seconds: float | None = None  # srt and vtt: a caption's least time on screen
    max_seconds: float | None = None  # srt and vtt: a caption's most time on screen
    speakers: bool = True  # txt and markdown: one paragraph per speaker turn; srt, vtt: marked

    @property
    def layout_only_built(self) -> bool:
        """Whether the task asks for a caption layout AssemblyAI's subtitle endpoints
        cannot give (they take only ``chars_per_caption``): then subtitles are built."""
        return any(
            v is not None
            for v in (
                self.chars_per_line,
                self.lines_per_caption,
                self.min_seconds,
                self.max_seconds,
            )
        )

    paragraphs: bool = True  # txt and markdown, without speakers
    timestamps: bool = True  # txt and markdown


@dataclass(frozen=True, slots=True)
class Over:
    """``over:``: a task run once per group of items, not once per item."""

    group_by: str | None = None  # an item variable (or list column); None: every item

    def describe(self) -> str:
        return "all" if self.group_by is None else f"group_by {self.group_by}"


MAP_REDUCE = "map-reduce"  # `long: map-reduce`

# The reduce prompt of a `long: map-reduce` task that gives none: `request` is the
# task's own prompt as written for one part, with the part's text left out.
DEFAULT_REDUCE_PROMPT = """\
The material was too long to read at once, so it was read in {{ parts | length }} parts, \
in order, and the same request was answered for each part. The request was:

{{ request }}

The answers for each part:
{% for part in parts %}
--- Part {{ part.index }}{% if part.start is not none %} \
({{ part.start | timestamp }} to {{ part.end | timestamp }}){% endif %} ---
{{ part.text }}
{% endfor %}
Combine them into one answer to the request, as if it had been read whole. Keep every \
timestamp and quotation exactly as it is, and answer in the form the request asks for."""


@dataclass(frozen=True, slots=True)
class QuotesOptions:
    count: int
    window: int
    overlap: int
    question: Template | None
    allow_paraphrases: bool = False  # reworded quotes count toward `count`
    match: str = "words"  # or "semantic": sentence windows by meaning (the [semantic] extra)
    model: str | None = None  # the embedding model of `match: semantic`, a name or a path


# Expectation kinds (`expect:` entries) and the operators of a `json:` expectation.
KINDS = (
    "contains",
    "not_contains",
    "regex",
    "not_regex",
    "equals",
    "min_length",
    "max_length",
    "json_schema",
    "json",
    "quotes_in_transcript",
    "judge",
    "similar_to",
    "grounded",
)
# Checks that grade the result rather than test it: each has a score and a reason.
GRADED_KINDS = ("judge", "similar_to", "grounded")
JSON_OPS = ("equals", "exists", "min_items", "max_items", "min", "max", "contains")
SEVERITIES = ("error", "warn")  # `severity: warn`: recorded and shown, never failing
DEFAULT_MIN_SIMILARITY = 0.75  # `similar_to` without `min:`
GROUNDED_WHATS = ("quotes", "claims")


@dataclass(frozen=True, slots=True)
class Judge:
    """`judge:`: a model grades the result against a rubric (``Expectation.text``)."""

    model: str  # as sent; "" when neither the check nor `defaults.judge_model` names one
    provider: Provider | None = None  # an OpenAI-compatible server; None: the Gateway
    model_provider: str | None = None  # `model: {provider: NAME, ...}` as written
    min_score: float | None = None  # 0..1: a pass below it fails
    repeat: int = 1  # asked this many times (each its own request, each cached)
    min_pass: int = 1  # of which at least this many must pass


@dataclass(frozen=True, slots=True)
class Expectation:
    kind: str
    value: Any  # frozen recipe data
    ignore_case: bool
    line: int
    severity: str = "error"  # or "warn"
    # The check's text, a template over `item` and `vars`: a judge's rubric, the text
    # `similar_to` compares with, or (`from_file`) the path of the file that holds it.
    text: Template | None = None
    from_file: bool = False
    judge: Judge | None = None
    min_similarity: float = DEFAULT_MIN_SIMILARITY  # similar_to
    max_unsupported: int = 0  # grounded
    what: str = "quotes"  # grounded: quotes | claims

    @property
    def graded(self) -> bool:
        """Whether the check grades the result (a score and a reason), not tests it."""
        return self.kind in GRADED_KINDS

    @property
    def failing(self) -> bool:
        """Whether a failure of this check fails its task (`severity: warn` never does)."""
        return self.severity != "warn"

    def describe(self) -> str:
        """What the check is, the same for every item: its name in run.json, the
        reports and `review` (templates are shown as written, never rendered)."""
        if self.kind == "json":
            spec = thaw(self.value)
            ops = ", ".join(f"{k} {spec[k]!r}" for k in JSON_OPS if k in spec)
            return f"json {spec['path']}: {ops}"
        if self.kind in ("json_schema", "quotes_in_transcript"):
            return self.kind.replace("_", " ")
        if self.kind == "judge":
            return f"judge {_short_text(self.text)!r}"
        if self.kind == "similar_to":
            source = (
                f"file {_short_text(self.text)}" if self.from_file else repr(_short_text(self.text))
            )
            return f"similar to {source} (min {self.min_similarity:g})"
        if self.kind == "grounded":
            return f"grounded {self.what} (at most {self.max_unsupported} unsupported)"
        return f"{self.kind.replace('_', ' ')} {thaw(self.value)!r}"


def _short_text(template: Template | None, limit: int = 60) -> str:
    text = " ".join((template.source if template is not None else "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def structured_reply(
    json_schema: Mapping[str, Any] | None, post_process: tuple[PostStep, ...], quotes: bool
) -> bool:
    """The one rule for "the reply is JSON": a json_schema, a JSON-producing step, or
    best quotes (matched quotes are written as JSON)."""
    return (
        json_schema is not None
        or quotes
        or any(step.name in ("json-repair", "json-schema") for step in post_process)
    )


def raw_output_name(name: str) -> str:
    """Where the unprocessed reply is kept beside the result: ``summary.raw.txt``."""
    path = PurePosixPath(name.replace("\\", "/"))
    return str(path.with_name(f"{path.stem}.raw.txt"))


def template_syntax_problem(what: str, value: str, hint: str = "give a fixed name") -> str | None:
    """Why ``value`` of a key that is not a template must not look like one: it would
    be used as written, ``{{ item.name }}`` and all (a file named with braces)."""
    if not any(mark in value for mark in ("{{", "{%", "}}", "%}")):
        return None
    return (
        f"{what} {value!r} holds template syntax, but it is not a template: it would be "
        f"used exactly as written; {hint}"
    )


def output_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a task's output file inside the item folder, if it cannot."""
    hint = "give a fixed name (each item has its own folder, so it needs no item in it)"
    if problem := template_syntax_problem("output", name, hint):
        return problem
    normalized = name.replace("\\", "/")
    path = PurePosixPath(normalized)
    if path.is_absolute() or normalized[1:3] == ":/":
        return f"output {name!r} must be a file name inside the item's folder, not an absolute path"
    if ".." in path.parts:
        return f"output {name!r} must stay inside the item's folder; remove '..'"
    if normalized.endswith("/") or not path.name or path.name in (".",):
        return f"output {name!r} must name a file"
    if path.name in RESERVED_OUTPUTS:
        owner = RESERVED_OUTPUTS[path.name]
        return f"output {path.name!r} is reserved for {owner}; choose another name"
    return None


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
    export: ExportOptions | None = None
    strict: bool = False  # json_schema sent with strict: true
    send_as_prompt: bool = False  # the Gateway's `prompt` string instead of `messages`
    provider: Provider | None = None  # None: AssemblyAI (the Gateway, or LeMUR)
    # `model: {provider: NAME, name: MODEL}`: the provider named, not read off the name
    model_provider: str | None = None
    context_window: int | None = None  # `context_window:`: overrides what is known of the model
    long: str | None = None  # `long: map-reduce`; None: a prompt over the window is refused
    reduce: Template | None = None  # the prompt combining the parts (None: the built-in one)
    over: Over | None = None  # `over:`: once per group of items
    # `pass_rate:` (0..1): its checks may fail on some items; the run fails only when
    # fewer than this share of the items pass them all. None: every item must pass.
    pass_rate: float | None = None

    @property
    def asks_model(self) -> bool:
        """Whether the task sends a prompt to a model (an export does not)."""
        return self.export is None

    @property
    def gateway_only(self) -> tuple[str, ...]:
        """The keys this task uses that only AssemblyAI's LLM Gateway does (another
        server cannot): `--llm-url` refuses them, and so does a fallback on a provider."""
        used = (
            ("inject_transcript", self.inject_transcript),
            ("gateway_post_processing", bool(self.gateway_post_processing)),
            ("fallback_config", self.fallback_config is not None),
            ("send_as", self.send_as_prompt),
        )
        return tuple(key for key, on in used if on)

    @property
    def structured(self) -> bool:
        """True when the result is JSON (``tasks.<name>.json`` exists): see structured_reply."""
        return structured_reply(self.json_schema, self.post_process, self.quotes is not None)

    @property
    def requested_model(self) -> str:
        """The model the task asks for: LeMUR's ``final_model``, else ``model``."""
        return self.lemur.final_model if self.lemur is not None else self.model

    @property
    def keeps_raw_reply(self) -> bool:
        """Whether the reply is written beside the result before it is processed, so a
        person can read what the model said when processing changed or rejected it."""
        return bool(self.post_process) or self.json_schema is not None or self.quotes is not None

    @property
    def raw_output(self) -> str:
        """The file the raw reply goes to, when :attr:`keeps_raw_reply`."""
        return raw_output_name(self.output)

    @property
    def templates(self) -> tuple[Template, ...]:
        found = [m.content for m in self.messages]
        if self.quotes is not None and self.quotes.question is not None:
            found.append(self.quotes.question)
        if self.lemur is not None and self.lemur.input_text is not None:
            found.append(self.lemur.input_text)
        for fallback in self.fallbacks:
            if fallback.task is not None:  # its own templates; the task's are listed
                found += [t for t in fallback.task.templates if t not in found]
        if self.reduce is not None:
            found.append(self.reduce)
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
    # `limits: {llm_per_minute: N | {MODEL: N}}`: requests a minute per model (None: every
    # model), a ceiling on the pace, and what `plan` forecasts with.
    llm_per_minute: Mapping[str | None, int] = field(default_factory=dict)
    timeouts: Mapping[str, float] = field(default_factory=dict)
    line_of_tasks: int = 1
    warnings: tuple[str, ...] = field(default=())
    table: str | None = None  # output.table: one row per item, beside the manifest
    prices: PriceTable = field(default_factory=PriceTable)  # `prices:`, for real costs
    local_engine: LocalEngine | None = None  # transcription on this machine, not AssemblyAI
    providers: Mapping[str, Provider] = field(default_factory=dict)
    # `review:`: the items `review` compares (by name), or how many it chooses
    review_items: tuple[str, ...] = ()
    review_sample: int | None = None
    # The command line's vars (--var, --vars), already in `vars`: kept apart for run.json.
    var_overrides: Mapping[str, JSON] = field(default_factory=dict)
    # Every block of `transcription:`, the primary (`transcription`, `local_engine`) first;
    # empty for a recipe built without one.
    transcriptions: tuple[Transcription, ...] = ()

    @property
    def compared(self) -> tuple[Transcription, ...]:
        """The transcriptions made beside the primary, to compare engines."""
        return self.transcriptions[1:]

    def transcribed_by(self, transcription: Transcription) -> Recipe:
        """This recipe with ``transcription`` as its primary: what the transcriber
        needs to make (or reuse) that transcription."""
        return replace(
            self, transcription=transcription.options, local_engine=transcription.local_engine
        )

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    @property
    def graph(self) -> TaskGraph:
        """Which task needs which (see :class:`~runner.recipe.taskgraph.TaskGraph`)."""
        return TaskGraph({name: task.needs for name, task in self.tasks.items()})

    def ordered_tasks(self) -> tuple[Task, ...]:
        """The tasks in the order they can run: :meth:`TaskGraph.order`."""
        return tuple(self.tasks[name] for name in self.graph.order())

    def transcription_request(self) -> dict[str, Any]:
        """The POST /v2/transcript options (without audio_url), with our default models."""
        options = thaw(self.transcription)
        if "speech_models" not in options and "speech_model" not in options:
            options["speech_models"] = list(DEFAULT_SPEECH_MODELS)
        return dict(options)
