"""Building the recipe model from a schema-valid document: defaults, prompt files,
and the file line of every template."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from runner.diagnostics import display_path
from runner.recipe import transcriptions
from runner.recipe.document import Document, KeyPath, format_path
from runner.recipe.model import (
    DEFAULT_LEMUR_MODEL,
    DEFAULT_MIN_SIMILARITY,
    DEFAULT_MODEL,
    DEFAULT_OUTPUT_DIR,
    DEFAULT_REDUCE_PROMPT,
    EXPORT_EXTENSIONS,
    GATEWAY_PROVIDER,
    KINDS,
    MAP_REDUCE,
    Expectation,
    ExportOptions,
    Fallback,
    FallbackConfig,
    InputKind,
    InputSpec,
    Judge,
    LemurOptions,
    LocalEngine,
    Message,
    Over,
    PostStep,
    PromptSource,
    Provider,
    QuotesOptions,
    Recipe,
    Task,
    TaskApi,
    Template,
    TemplateOrigin,
    Transcription,
    WerCheck,
    freeze,
    structured_reply,
)
from runner.recipe.prices import PriceTable, PriceTableError, price_table
from runner.recipe.transcriptions import sent_options


class _MissingFile(Exception):
    """A prompt_file that cannot be read; the validator reports it, located."""

    def __init__(self, key_path: KeyPath, message: str) -> None:
        super().__init__(message)
        self.key_path = key_path
        self.message = message


def build(
    doc: Document, path: Path, variables: Mapping[str, Any] | None = None
) -> tuple[Recipe, list[tuple[KeyPath, str]]]:
    """Build a :class:`Recipe` from a schema-valid document, with the command line's
    ``variables`` (``--var``, ``--vars``) over its ``vars:``.

    Returns the recipe and the problems found while resolving files (a missing
    ``prompt_file``), as ``(key path, message)`` pairs for the validator to locate.
    """
    data: Mapping[str, Any] = doc.data
    problems: list[tuple[KeyPath, str]] = []
    defaults: Mapping[str, Any] = data.get("defaults", {})
    providers = {
        name: _provider(name, spec) for name, spec in (data.get("providers") or {}).items()
    }
    tasks: dict[str, Task] = {}
    for name, spec in data["tasks"].items():
        try:
            tasks[name] = _with_provider(_task(doc, path, name, spec, defaults), providers)
        except _MissingFile as missing:
            problems.append((missing.key_path, missing.message))
    output = data.get("output", {})
    review = data.get("review") or {}
    primary = transcriptions.primary(data)
    recipe = Recipe(
        path=path,
        display=doc.file,
        version=int(data["version"]),
        name=str(data["name"]),
        description=str(data.get("description", "")),
        inputs=tuple(_input(doc, i, entry) for i, entry in enumerate(data["inputs"])),
        transcription=freeze(sent_options(primary)),
        vars=freeze({**data.get("vars", {}), **(variables or {})}),
        var_overrides=freeze(dict(variables or {})),
        tasks=MappingProxyType(tasks),
        output_dir=_inline(
            doc, ("output", "dir"), output.get("dir", DEFAULT_OUTPUT_DIR), "output.dir"
        ),
        limits=MappingProxyType(
            {k: v for k, v in data.get("limits", {}).items() if k != "llm_per_minute"}
        ),
        llm_per_minute=_per_minute(data.get("limits", {}).get("llm_per_minute")),
        timeouts=MappingProxyType(dict(data.get("timeouts", {}))),
        line_of_tasks=doc.mark(("tasks",)).line,
        table=output.get("table"),
        prices=_prices(data.get("prices"), problems).enabling(
            sent_options(transcriptions.primary(data))
        ),
        local_engine=_local_engine(transcriptions.primary(data)),
        providers=MappingProxyType(providers),
        review_items=tuple(str(name) for name in review.get("items", ())),
        review_sample=review.get("sample"),
        transcriptions=_transcriptions(doc),
    )
    return recipe, problems


def _transcriptions(doc: Document) -> tuple[Transcription, ...]:
    """Every block of ``transcription:``, the primary first, with its checks."""
    found = transcriptions.blocks(doc.data)
    names = transcriptions.labels([block for _, block in found])
    return tuple(
        Transcription(
            label=name,
            options=freeze(sent_options(block)),
            local_engine=_local_engine(block),
            checks=tuple(
                _wer_check(doc, (*path, "expect", index, "wer"), entry["wer"])
                for index, entry in enumerate(block.get("expect") or ())
            ),
        )
        for (path, block), name in zip(found, names, strict=True)
    )


def _wer_check(doc: Document, path: KeyPath, spec: Mapping[str, Any]) -> WerCheck:
    reference = spec["reference"]
    line = doc.mark(path).line
    limit = float(spec["max"])
    if isinstance(reference, Mapping):
        column = str(reference["column"])
        return WerCheck(limit, line, reference_column=column, where=path)
    label = "transcription.expect.wer.reference"
    written = _inline(doc, (*path, "reference"), reference, label)
    return WerCheck(limit, line, reference_file=written, where=path)


def _provider(name: str, spec: Mapping[str, Any]) -> Provider:
    return Provider(
        name=name,
        base_url=str(spec["base_url"]).rstrip("/"),
        api_key_env=spec.get("api_key_env"),
        headers=MappingProxyType({str(k): str(v) for k, v in (spec.get("headers") or {}).items()}),
        structured_output=str(spec.get("structured_output", "json_schema")),
        tools=bool(spec.get("tools", True)),
        stream_usage=bool(spec.get("stream_usage", False)),
        extra_body=freeze(spec.get("extra_body") or {}),
        models=MappingProxyType({str(k): str(v) for k, v in (spec.get("models") or {}).items()}),
        default_model=str(spec["model"]) if spec.get("model") else None,
    )


def _model(value: Any) -> tuple[str, str | None]:
    """A model as written: ``NAME`` or ``{provider: NAME, name: MODEL}`` (the provider
    named, for a model whose own name holds a ``/``)."""
    if isinstance(value, Mapping):
        return str(value.get("name", "")), str(value.get("provider", ""))
    return str(value), None


def _provider_of(
    model: str, named: str | None, providers: Mapping[str, Provider]
) -> tuple[str, str | None]:
    """The model's name as sent, and its provider's name (None: the Gateway). A named
    provider is taken as given (an unknown one is validate's to refuse); otherwise
    ``NAME/model`` picks the provider NAME when there is one."""
    if named is not None:
        return model, None if named == GATEWAY_PROVIDER else named
    prefix, slash, rest = model.partition("/")
    if slash and prefix in providers:
        return rest, prefix
    return model, None


def _with_provider(task: Task, providers: Mapping[str, Provider]) -> Task:
    """``model: NAME/model`` (or ``{provider: NAME, name: ...}``) sends the task to the
    provider NAME; any other model is the Gateway's. Fallbacks on a provider are
    marked: we ask them, not the Gateway. A judge's model is placed the same way."""
    task = replace(task, expectations=_judges_placed(task, providers))
    if task.api is not TaskApi.GATEWAY or not task.model:
        return task
    fallbacks = []
    for fallback in task.fallbacks:
        model, provider = _provider_of(fallback.model, fallback.model_provider, providers)
        asked = replace(fallback.task, model=model) if fallback.task is not None else None
        fallbacks.append(replace(fallback, model=model, provider=provider, task=asked))
    task = replace(task, fallbacks=tuple(fallbacks))
    model, provider = _provider_of(task.model, task.model_provider, providers)
    if provider is not None and provider in providers:
        return replace(task, model=model, provider=providers[provider])
    return replace(task, model=model)


def _judges_placed(task: Task, providers: Mapping[str, Provider]) -> tuple[Expectation, ...]:
    """Each judge's model, on its provider when it names one (as a task's model is)."""
    placed = []
    for expectation in task.expectations:
        judge = expectation.judge
        if judge is not None and judge.model:
            model, name = _provider_of(judge.model, judge.model_provider, providers)
            provider = providers.get(name) if name is not None else None
            judge = replace(judge, model=model, provider=provider)
            expectation = replace(expectation, judge=judge)
        placed.append(expectation)
    return tuple(placed)


def _local_engine(options: Mapping[str, Any]) -> LocalEngine | None:
    if "engine" not in options:
        return None
    return LocalEngine(
        engine=str(options["engine"]),
        model=options.get("model"),
        language=options.get("language"),
        beam_size=int(options.get("beam_size", 5)),
        compute_type=str(options.get("compute_type", "int8")),
        vad_filter=bool(options.get("vad_filter", False)),
        base_url=str(options["base_url"]).rstrip("/") if options.get("base_url") else None,
        api_key_env=options.get("api_key_env"),
    )


def _prices(data: Any, problems: list[tuple[KeyPath, str]]) -> PriceTable:
    """The recipe's price table; a price the schema lets through but no price is
    (``.inf``, ``.nan``) is a located problem, and the recipe then has no table."""
    try:
        return price_table(data)
    except PriceTableError as exc:
        problems.append((("prices",), str(exc)))
        return PriceTable()


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
    doc: Document,
    path: Path,
    name: str,
    spec: Mapping[str, Any],
    defaults: Mapping[str, Any],
    located: Mapping[str, KeyPath] | None = None,
) -> Task:
    """The task ``spec`` describes. ``located``: where keys that come from elsewhere
    are written (a fallback's own), for templates located at their own lines."""
    here: KeyPath = ("tasks", name)

    def at(key: str) -> KeyPath:
        return (located or {}).get(key, (*here, key))

    source = next(s for s in PromptSource if s.value in spec)
    if source is PromptSource.EXPORT:
        return _export_task(doc, name, spec)
    api = TaskApi(spec.get("api", TaskApi.GATEWAY.value))
    prompt_file = None
    messages: list[Message] = []
    # LeMUR has no system message; a recipe-wide default applies to Gateway tasks only.
    system = spec.get("system", defaults.get("system") if api is TaskApi.GATEWAY else None)
    if system is not None and source is not PromptSource.MESSAGES:
        system_path = at("system") if "system" in spec else ("defaults", "system")
        messages.append(Message("system", _inline(doc, system_path, system, f"{name}.system")))
    if source is PromptSource.PROMPT:
        messages.append(Message("user", _inline(doc, at("prompt"), spec["prompt"], name)))
    elif source is PromptSource.PROMPT_FILE:
        prompt_file = _resolve_prompt_file(path, at("prompt_file"), spec["prompt_file"])
        messages.append(Message("user", _file_template(doc, prompt_file, at("prompt_file"))))
    elif source is PromptSource.MESSAGES:
        for i, message in enumerate(spec["messages"]):
            content_path = (*at("messages"), i, "content")
            label = f"{name}.messages[{i}]"
            messages.append(
                Message(message["role"], _inline(doc, content_path, message["content"], label))
            )
    json_schema = spec.get("json_schema")
    post_process = tuple(_post_step(step) for step in spec.get("post_process", []))
    structured = structured_reply(json_schema, post_process, source is PromptSource.QUOTES)
    output = spec.get("output") or f"{name}.{'json' if structured else 'md'}"
    model, model_provider = _model(spec.get("model", defaults.get("model", DEFAULT_MODEL)))
    task = Task(
        name=name,
        api=api,
        source=source,
        messages=tuple(messages),
        prompt_file=prompt_file,
        model=model,
        model_provider=model_provider,
        max_tokens=spec.get("max_tokens", defaults.get("max_tokens")),
        temperature=spec.get("temperature", defaults.get("temperature")),
        needs=tuple(spec.get("needs", [])),
        json_schema=freeze(json_schema) if json_schema is not None else None,
        post_process=post_process,
        gateway_post_processing=tuple(spec.get("gateway_post_processing", [])),
        fallbacks=(),
        fallback_config=_fallback_config(
            spec.get("fallback_config", defaults.get("fallback_config"))
        ),
        tools=tuple(freeze(t) for t in spec.get("tools", [])),
        tool_choice=freeze(spec.get("tool_choice")),
        stream=bool(spec.get("stream", defaults.get("stream", False))),
        inject_transcript=bool(spec.get("inject_transcript", False)),
        output=str(output),
        lemur=_lemur(doc, name, spec) if api is TaskApi.LEMUR else None,
        quotes=_quotes(doc, name, spec) if source is PromptSource.QUOTES else None,
        **_described(doc, here, spec, defaults),
        strict=bool(spec.get("strict", False)),
        send_as_prompt=spec.get("send_as") == "prompt",
        context_window=spec.get("context_window", defaults.get("context_window")),
        long=spec.get("long"),
        reduce=_reduce(doc, here, spec),
        over=_over(spec.get("over")),
    )
    if located is not None:  # a fallback's own task: its fallbacks are its task's
        return task
    fallback_path: KeyPath = (
        (*here, "fallbacks") if "fallbacks" in spec else ("defaults", "fallbacks")
    )
    given = spec.get("fallbacks", defaults.get("fallbacks", []))
    fallbacks = tuple(
        _fallback(doc, path, task, (fallback_path, i), spec, f, defaults)
        for i, f in enumerate(given)
    )
    return replace(task, fallbacks=fallbacks)


def _reduce(doc: Document, here: KeyPath, spec: Mapping[str, Any]) -> Template | None:
    """The reduce prompt of a ``long: map-reduce`` task: its own, else the built-in one
    (located at ``long:``, where the user asked for it)."""
    if "reduce" in spec:
        return _inline(doc, (*here, "reduce"), spec["reduce"], f"{here[-1]}.reduce")
    if spec.get("long") != MAP_REDUCE:
        return None
    mark = doc.mark((*here, "long"), key=True)
    origin = TemplateOrigin(doc.file, (*here, "long"), mark.line, mark.column, in_recipe=True)
    return Template(DEFAULT_REDUCE_PROMPT, origin, f"{here[-1]}.reduce")


def _over(value: Any) -> Over | None:
    """``over: all`` or ``over: {group_by: FIELD}``."""
    if value is None:
        return None
    return Over(group_by=str(value["group_by"])) if isinstance(value, Mapping) else Over()


# A fallback that gives any of these replaces the task's prompt with its own.
_PROMPT_KEYS = ("prompt", "prompt_file", "messages", "quotes")


def _fallback(
    doc: Document,
    path: Path,
    task: Task,
    where: tuple[KeyPath, int],
    task_spec: Mapping[str, Any],
    spec: Mapping[str, Any],
    defaults: Mapping[str, Any],
) -> Fallback:
    """A fallback, and the task as it asks it: the task's fields, with every field the
    fallback gives instead (its own prompt replaces the task's; its own messages, the
    task's system message too). It writes the task's output, whatever it is asked."""
    here: KeyPath = (*where[0], where[1])
    inherited = {k: v for k, v in task_spec.items() if k not in ("fallbacks", "fallback_config")}
    if any(key in spec for key in _PROMPT_KEYS):
        inherited = {k: v for k, v in inherited.items() if k not in _PROMPT_KEYS}
    if "messages" in spec:
        inherited.pop("system", None)
    merged = {**inherited, **spec, "output": task.output}
    if task.inject_transcript and "inject_transcript" not in spec and "prompt_file" not in merged:
        # Worded otherwise, a fallback injects the transcript where its words ask for it
        # (the Gateway ignores a transcript_id without the tag).
        words = json.dumps([merged.get(key) for key in ("prompt", "messages", "system")])
        merged["inject_transcript"] = "gateway_transcript" in words
    located = {key: (*here, key) for key in spec}
    own = _task(doc, path, task.name, merged, defaults, located)
    model, model_provider = _model(spec["model"])
    return Fallback(
        model=model,
        model_provider=model_provider,
        overrides=tuple(key for key in spec if key != "model"),
        # Its fallbacks are its task's: a default `fallback_config` is not its own.
        task=replace(
            own, explicit_output=task.explicit_output, line=task.line, fallback_config=None
        ),
    )


def _export_task(doc: Document, name: str, spec: Mapping[str, Any]) -> Task:
    """A task that writes the transcript in a format: no prompt, no model."""
    here: KeyPath = ("tasks", name)
    given = spec["export"]
    options = given if isinstance(given, Mapping) else {"format": given}
    export = ExportOptions(
        format=str(options["format"]),
        chars_per_caption=options.get("chars_per_caption"),
        chars_per_line=options.get("chars_per_line"),
        lines_per_caption=options.get("lines_per_caption"),
        min_seconds=options.get("min_seconds"),
        max_seconds=options.get("max_seconds"),
        speakers=bool(options.get("speakers", True)),
        paragraphs=bool(options.get("paragraphs", True)),
        timestamps=bool(options.get("timestamps", True)),
    )
    extension = EXPORT_EXTENSIONS.get(export.format, "txt")
    return Task(
        name=name,
        api=TaskApi.EXPORT,
        source=PromptSource.EXPORT,
        messages=(),
        prompt_file=None,
        model="",
        max_tokens=None,
        temperature=None,
        needs=tuple(spec.get("needs", [])),
        json_schema=None,
        post_process=(),
        gateway_post_processing=(),
        fallbacks=(),
        fallback_config=None,
        tools=(),
        tool_choice=None,
        stream=False,
        inject_transcript=False,
        output=str(spec.get("output") or f"{name}.{extension}"),
        lemur=None,
        quotes=None,
        **_described(doc, here, spec, {}),
        export=export,
    )


def _described(
    doc: Document, here: KeyPath, spec: Mapping[str, Any], defaults: Mapping[str, Any]
) -> dict[str, Any]:
    """What every kind of task has: its description, line, output's origin and checks."""
    return {
        "description": str(spec.get("description", "")),
        "line": doc.mark(here).line,
        "explicit_output": "output" in spec,
        "expectations": tuple(
            _expectation(doc, (*here, "expect", i), entry, defaults)
            for i, entry in enumerate(spec.get("expect", []))
        ),
        "pass_rate": spec.get("pass_rate"),
    }


def _expectation(
    doc: Document, path: KeyPath, entry: Mapping[str, Any], defaults: Mapping[str, Any]
) -> Expectation:
    kind = next(k for k in KINDS if k in entry)
    value = entry[kind]
    here: KeyPath = (*path, kind)
    graded: dict[str, Any] = {}
    if kind == "judge":
        model, model_provider = _model(entry.get("model", defaults.get("judge_model", "")))
        graded["text"] = _inline(doc, here, str(value), format_path(here))
        graded["judge"] = Judge(
            model=model,
            model_provider=model_provider,
            min_score=entry.get("min_score"),
            repeat=int(entry.get("repeat", 1)),
            min_pass=int(entry.get("min_pass", entry.get("repeat", 1))),
        )
    elif kind == "similar_to":
        from_file = isinstance(value, Mapping)
        text_path: KeyPath = (*here, "file") if from_file else here
        text = value["file"] if from_file else value
        graded["text"] = _inline(doc, text_path, str(text), format_path(text_path))
        graded["from_file"] = from_file
        graded["min_similarity"] = float(entry.get("min", DEFAULT_MIN_SIMILARITY))
    elif kind == "grounded":
        options = value if isinstance(value, Mapping) else {}
        graded["max_unsupported"] = int(options.get("max_unsupported", 0))
        graded["what"] = str(options.get("what", "quotes"))
    return Expectation(
        kind=kind,
        value=freeze(value),
        ignore_case=bool(entry.get("ignore_case", False)),
        line=doc.mark(here).line,
        severity=str(entry.get("severity", "error")),
        **graded,
    )


def _post_step(step: str | Mapping[str, str]) -> PostStep:
    if isinstance(step, str):
        return PostStep(step)
    return PostStep("extract", str(step["extract"]))


def _fallback_config(spec: Mapping[str, Any] | None) -> FallbackConfig | None:
    if spec is None:
        return None
    return FallbackConfig(depth=spec.get("depth"), retry=spec.get("retry"))


def _lemur(doc: Document, name: str, spec: Mapping[str, Any]) -> LemurOptions:
    input_text = spec.get("input_text")
    return LemurOptions(
        final_model=str(spec.get("final_model", DEFAULT_LEMUR_MODEL)),
        context=freeze(spec.get("context")),
        max_output_size=spec.get("max_output_size"),
        input_text=_inline(doc, ("tasks", name, "input_text"), input_text, f"{name}.input_text")
        if input_text is not None
        else None,
    )


def _quotes(doc: Document, name: str, spec: Mapping[str, Any]) -> QuotesOptions:
    quotes = spec["quotes"]
    question = quotes.get("question")
    return QuotesOptions(
        count=int(quotes.get("count", 3)),
        window=int(quotes.get("window", 5)),
        overlap=int(quotes.get("overlap", 2)),
        allow_paraphrases=bool(quotes.get("allow_paraphrases", False)),
        match=str(quotes.get("match", "words")),
        model=quotes.get("model"),
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


def _per_minute(value: Any) -> Mapping[str | None, int]:
    """`llm_per_minute`: one number for every model (the key None), or one per model."""
    if value is None:
        return MappingProxyType({})
    if isinstance(value, int):
        return MappingProxyType({None: value})
    return MappingProxyType({str(model): int(n) for model, n in value.items()})
