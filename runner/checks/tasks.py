"""The rules between a recipe's tasks and their options, which a JSON Schema cannot say:
needs that form a graph, options of one API used with another, outputs that collide,
schemas that are not schemas."""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlparse

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, ValidationError

from runner.checks.dry_run import sample_context, sample_item_vars
from runner.diagnostics import Diagnostic, Severity, suggest
from runner.errors import TemplateProblem
from runner.prompt.payloads import render_messages
from runner.prompt.templating import TemplateEngine
from runner.recipe import schema as recipe_schema
from runner.recipe.document import Document, KeyPath, format_path
from runner.recipe.fallbacks import asked_here
from runner.recipe.migration import CURRENT_EQUIVALENT, LEMUR_DEFAULT_MODEL, TRANSCRIPT_LINE
from runner.recipe.model import (
    GATEWAY_PROVIDER,
    InputKind,
    PromptSource,
    Recipe,
    Task,
    TaskApi,
    output_name_problem,
)
from runner.recipe.schema import transcription_options_schema
from runner.results.table import ITEM_COLUMNS

_GATEWAY_ONLY = (
    "model",
    "messages",
    "system",
    "json_schema",
    "tools",
    "tool_choice",
    "fallbacks",
    "fallback_config",
    "stream",
    "inject_transcript",
    "gateway_post_processing",
    "quotes",
    "strict",
    "send_as",
)
_LEMUR_ONLY = ("context", "final_model", "max_output_size", "input_text")
_NOT_WITH_QUOTES = ("json_schema", "post_process", "gateway_post_processing", "tools")
# An export asks no model: only these keys mean something beside `export`.
_EXPORT_KEYS = ("export", "description", "output", "expect")


def check_tasks(doc: Document, recipe: Recipe) -> list[Diagnostic]:
    """Every task-level problem of ``recipe``, located in ``doc``."""
    found: list[Diagnostic] = []
    found += _check_needs(doc, recipe)
    found += _check_api_fields(doc)
    found += _check_json_schemas(doc)
    found += _check_outputs(doc, recipe)
    found += _check_table_columns(doc, recipe)
    found += _check_task_options(doc, recipe)
    found += check_transcription(doc)
    found += _check_local_engine(doc, recipe)
    found += _check_providers(doc, recipe)
    found += _check_key_variables(doc)
    return found


# What only AssemblyAI's LLM Gateway does, and why another server cannot.
_GATEWAY_FEATURES = {
    "inject_transcript": "the Gateway inserts an AssemblyAI transcript by its id",
    "gateway_post_processing": "the Gateway repairs JSON on its side; use post_process",
    "fallback_config": "the Gateway tries other models on its side",
    "send_as": "the `prompt` string is the Gateway's; OpenAI's API takes messages",
}


_CLIENT_FALLBACK_KEYS = ("system", "prompt", "tools", "tool_choice")
# Variables a recipe may not send to a server it names: AssemblyAI's key, and the
# secrets CI systems hand a job (a pull request can edit a recipe).
_PROTECTED_VARIABLES = ("ASSEMBLYAI_API_KEY", "GITHUB_TOKEN", "GH_TOKEN", "CI_JOB_TOKEN")
_PROTECTED_PREFIXES = ("ACTIONS_", "RUNNER_", "GITHUB_")


def _check_key_variables(doc: Document) -> list[Diagnostic]:
    """``api_key_env`` never names a variable that holds someone else's secret."""
    places: list[KeyPath] = [
        ("providers", name, "api_key_env") for name in (doc.data.get("providers") or {})
    ]
    places.append(("transcription", "api_key_env"))
    found = []
    for path in places:
        value = _at(doc.data, path)
        if isinstance(value, str) and (
            value in _PROTECTED_VARIABLES or value.startswith(_PROTECTED_PREFIXES)
        ):
            found.append(
                doc.diagnostic(
                    path,
                    f"api_key_env {value!r} would send that secret to the server this "
                    "recipe names; give the server's own key in a variable of its own",
                    key=False,
                )
            )
    return found


def _at(data: Any, path: KeyPath) -> Any:
    for part in path:
        if not isinstance(data, Mapping) or part not in data:
            return None
        data = data[part]
    return data


def _unknown_providers(doc: Document, recipe: Recipe) -> Iterator[Diagnostic]:
    """``model: {provider: NAME, ...}`` names a provider the recipe has (or the
    Gateway's own name)."""
    known = [*recipe.providers, GATEWAY_PROVIDER]
    for task in recipe.tasks.values():
        spec = doc.data["tasks"][task.name]
        here: KeyPath = ("tasks", task.name) if "model" in spec else ("defaults",)
        named = [((*here, "model", "provider"), task.model_provider)]
        where: KeyPath = (
            ("tasks", task.name, "fallbacks") if "fallbacks" in spec else ("defaults", "fallbacks")
        )
        named += [
            ((*where, index, "model", "provider"), fallback.model_provider)
            for index, fallback in enumerate(task.fallbacks)
        ]
        for path, name in named:
            if name is not None and name not in known:
                yield doc.diagnostic(
                    path,
                    f"unknown provider {name!r}{suggest(name, known)} (the providers here "
                    f"are {', '.join(map(repr, known))}; add one under `providers:`)",
                    key=False,
                )


def _check_providers(doc: Document, recipe: Recipe) -> list[Diagnostic]:
    """A task on another provider cannot use what only AssemblyAI's Gateway does, and a
    fallback we ask on our side takes a model, max_tokens and temperature only."""
    found: list[Diagnostic] = list(_unknown_providers(doc, recipe))
    for task in recipe.tasks.values():
        spec_fallbacks = doc.data["tasks"][task.name].get("fallbacks")
        where: KeyPath = (
            ("tasks", task.name, "fallbacks")
            if spec_fallbacks is not None
            else ("defaults", "fallbacks")
        )
        for index, fallback in enumerate(task.fallbacks):
            if not asked_here(task, fallback):
                continue
            given = [key for key in _CLIENT_FALLBACK_KEYS if getattr(fallback, key) is not None]
            if given:
                found.append(
                    doc.diagnostic(
                        (*where, index, given[0]),
                        f"{given[0]!r}: this fallback is asked on our side (a provider is "
                        "involved), which takes model, max_tokens and temperature only; "
                        "remove it",
                    )
                )
        if task.provider is None:
            continue
        spec = doc.data["tasks"][task.name]
        defaults = doc.data.get("defaults") or {}
        for key, why in _GATEWAY_FEATURES.items():
            here: KeyPath | None = (
                ("tasks", task.name, key)
                if key in spec
                else (("defaults", key) if key in defaults and key.startswith("fallback") else None)
            )
            if here is not None:
                found.append(
                    doc.diagnostic(
                        here,
                        f"{key!r} only works on AssemblyAI's LLM Gateway ({why}), and task "
                        f"{task.name!r} runs on provider {task.provider.name!r}; remove it "
                        "there",
                    )
                )
    return found


_ENGINE_KEYS = {
    "faster-whisper": ("beam_size", "compute_type", "vad_filter"),
    "openai-compatible": ("base_url", "api_key_env"),
}


def _engine_keys(doc: Document, engine: str) -> list[Diagnostic]:
    """Each engine's own keys, and `base_url` that a server engine needs."""
    options = doc.data["transcription"]
    found = [
        doc.diagnostic(
            ("transcription", key),
            f"{key!r} applies to engine {other} only, not {engine}; remove it",
        )
        for other, keys in _ENGINE_KEYS.items()
        if other != engine
        for key in keys
        if key in options
    ]
    if engine == "openai-compatible" and "base_url" not in options:
        found.append(
            doc.diagnostic(
                ("transcription", "engine"),
                "engine openai-compatible needs `base_url`: the speech server's URL, up to "
                "and including /v1",
                key=False,
            )
        )
    return found


def _check_local_engine(doc: Document, recipe: Recipe) -> list[Diagnostic]:
    """What a transcript made on this machine cannot do: AssemblyAI never saw it, so
    it has no URL or transcript id to transcribe or fetch, and no id to inject or to
    give LeMUR."""
    engine = recipe.local_engine
    if engine is None:
        return []
    found = _engine_keys(doc, engine.engine)
    found += [
        doc.diagnostic(
            ("inputs", spec.index),
            f"engine {engine.engine} transcribes local audio files; a {spec.kind.value} input "
            "needs AssemblyAI: give the audio as a `file` input, or remove `engine`",
        )
        for spec in recipe.inputs
        if spec.kind in (InputKind.URL, InputKind.TRANSCRIPT_ID)
    ]
    for task in recipe.tasks.values():
        lemur = task.api is TaskApi.LEMUR and (task.lemur is None or task.lemur.input_text is None)
        if lemur or task.inject_transcript:
            key = "api" if lemur else "inject_transcript"
            found.append(
                doc.diagnostic(
                    ("tasks", task.name, key),
                    f"`{key}: {'lemur' if lemur else 'true'}` sends AssemblyAI the transcript's "
                    f"id, and a transcript made by engine {engine.engine} has none; put the "
                    "text in the prompt ({{ transcript.text }}) instead",
                )
            )
    return found


# --- task graph -------------------------------------------------------------------


def _check_needs(doc: Document, recipe: Recipe) -> list[Diagnostic]:
    found: list[Diagnostic] = []
    graph = recipe.graph
    for name, index, need in graph.unknown_needs():
        # A task left out of the recipe for a problem of its own (a missing
        # prompt_file) is reported there, not again as unknown here.
        if need not in doc.data["tasks"]:
            found.append(
                doc.diagnostic(
                    ("tasks", name, "needs", index),
                    f"needs an unknown task {need!r}"
                    + (suggest(need, recipe.tasks) or f"; tasks: {', '.join(recipe.tasks)}"),
                    key=False,
                )
            )
    for cycle in graph.cycles():
        first = cycle[0]
        if len(cycle) == 1:
            # A task cannot wait for its own reply; say so plainly, at the entry.
            index = list(graph.needs(first)).index(first)
            found.append(
                doc.diagnostic(
                    ("tasks", first, "needs", index),
                    f"task {first!r} needs itself; remove {first!r} from its needs",
                    key=False,
                )
            )
            continue
        found.append(
            doc.diagnostic(
                ("tasks", first, "needs"),
                f"tasks wait for each other in a cycle: {' -> '.join([*cycle, first])}; "
                "remove one of these needs",
            )
        )
    return found


# --- options that depend on each other ----------------------------------------------


def _check_api_fields(doc: Document) -> list[Diagnostic]:
    found: list[Diagnostic] = []
    for name, spec in doc.data["tasks"].items():
        if "export" in spec:
            found += _check_export_task(doc, name, spec)
        elif spec.get("api") == TaskApi.LEMUR.value:
            found += _check_lemur_task(doc, name, spec)
        else:
            found += _check_gateway_task(doc, name, spec)
    return found


def _check_export_task(doc: Document, name: str, spec: Mapping[str, Any]) -> list[Diagnostic]:
    """An export writes the transcript as it is: prompt and model keys would do nothing,
    and a caption length means nothing outside subtitles."""
    here: KeyPath = ("tasks", name)
    found = [
        doc.diagnostic(
            (*here, key),
            f"{key!r} does not apply to an export task: it writes the transcript itself, "
            "with no prompt or model; remove it, or make a separate task for the prompt",
        )
        for key in spec
        if key not in _EXPORT_KEYS and key not in _ONE_OF_SOURCES
    ]
    given = spec.get("export")
    if isinstance(given, Mapping):
        fmt = given.get("format")
        for option, formats in _EXPORT_OPTION_FORMATS.items():
            if option in given and fmt not in formats:
                found.append(
                    doc.diagnostic(
                        (*here, "export", option),
                        f"{option} applies to format {' or '.join(formats)} only, "
                        f"not {fmt}; remove it",
                    )
                )
    return found


_EXPORT_OPTION_FORMATS = {
    "chars_per_caption": ("srt", "vtt"),
    "speakers": ("txt", "markdown"),
    "paragraphs": ("txt", "markdown"),
    "timestamps": ("txt", "markdown"),
}
# The keys of which a task gives exactly one: the schema reports two given together.
_ONE_OF_SOURCES = ("prompt", "prompt_file", "messages", "quotes")


def _check_lemur_task(doc: Document, name: str, spec: Mapping[str, Any]) -> list[Diagnostic]:
    here: KeyPath = ("tasks", name)
    found = [
        doc.diagnostic(
            (*here, key),
            f"{key!r} is an LLM Gateway option; LeMUR tasks (api: lemur) do not support it",
        )
        for key in _GATEWAY_ONLY
        if key in spec
    ]
    if "max_tokens" in spec:
        found.append(
            doc.diagnostic(
                (*here, "max_tokens"),
                "LeMUR tasks set the reply length with 'max_output_size' (at most 4000), "
                "not 'max_tokens'",
            )
        )
    if "prompt" not in spec and "prompt_file" not in spec:
        found.append(doc.diagnostic(here, "a LeMUR task needs a prompt or prompt_file"))
    temperature = spec.get("temperature")
    if isinstance(temperature, int | float) and temperature > 1:
        found.append(
            doc.diagnostic(
                (*here, "temperature"),
                f"LeMUR takes a temperature from 0 to 1, not {temperature}",
                key=False,
            )
        )
    found.append(_lemur_warning(doc, name, spec))
    return found


def _check_gateway_task(doc: Document, name: str, spec: Mapping[str, Any]) -> list[Diagnostic]:
    here: KeyPath = ("tasks", name)
    not_with_quotes = _NOT_WITH_QUOTES if "quotes" in spec else ()
    found = [
        doc.diagnostic(
            (*here, key),
            f"{key!r} does not apply to a quotes task: its reply is matched "
            "to the transcript's sentences and written as JSON",
        )
        for key in not_with_quotes
        if key in spec
    ]
    found += [
        doc.diagnostic(
            (*here, key),
            f"{key!r} only applies to LeMUR tasks; add `api: lemur` or remove it"
            + (
                "; on the Gateway the reply's length is `max_tokens`"
                if key == "max_output_size"
                else ""
            ),
        )
        for key in _LEMUR_ONLY
        if key in spec
    ]
    return found


def _lemur_warning(doc: Document, name: str, spec: Mapping[str, Any]) -> Diagnostic:
    where = doc.mark(("tasks", name, "api"))
    return Diagnostic(
        doc.file,
        where.line,
        where.column,
        format_path(("tasks", name, "api")),
        "AssemblyAI deprecated LeMUR (March 31st, 2026). `transcript-runner migrate "
        f"{doc.file}` moves it to the LLM Gateway; by hand: " + gateway_steps(spec),
        Severity.WARNING,
    )


def gateway_steps(spec: Mapping[str, Any]) -> str:
    """What turns this LeMUR task into the same task on the Gateway, key by key, so
    that following the advice literally gives a task that validates."""
    removed = ["`api: lemur`"] + (["`final_model`"] if "final_model" in spec else [])
    steps = [f"remove {' and '.join(removed)}"]
    if "context" in spec:
        steps.append('turn `context: ...` into `system: "Context: ..."`')
    if "max_output_size" in spec:
        steps.append(f"write `max_output_size` as `max_tokens: {spec['max_output_size']}`")
    given = str(spec.get("final_model", LEMUR_DEFAULT_MODEL))
    steps.append(f"set `model: {CURRENT_EQUIVALENT.get(given, CURRENT_EQUIVALENT['default'])}`")
    if "input_text" in spec:
        steps.append("end the prompt with the `input_text` template, and remove `input_text`")
    else:
        steps.append(f"end the prompt with the transcript: `{TRANSCRIPT_LINE}`")
    return ", ".join(steps[:-1]) + ", and " + steps[-1]


def check_transcription(doc: Document) -> list[Diagnostic]:
    """What AssemblyAI's spec refuses that the generated schema lets through: options
    removed from the API, ``speech_model`` without ``speech_models`` (the list is
    required now), a webhook that is no web URL."""
    options = doc.data.get("transcription")
    if not isinstance(options, Mapping) or "engine" in options:
        return []
    found = [
        doc.diagnostic(
            ("transcription", key),
            f"{key!r} was removed from AssemblyAI's API, which refuses it now; "
            f"{_removed_hint(key)}",
        )
        for key in options
        if _removed_option(key)
    ]
    if "speech_model" in options and "speech_models" not in options:
        found.append(
            doc.diagnostic(
                ("transcription", "speech_model"),
                "AssemblyAI requires `speech_models` (a list in priority order) now; replace "
                "`speech_model` with e.g. `speech_models: [universal-3-5-pro, universal-2]`",
            )
        )
    webhook = options.get("webhook_url")
    if isinstance(webhook, str) and urlparse(webhook).scheme not in ("http", "https"):
        found.append(
            doc.diagnostic(
                ("transcription", "webhook_url"),
                f"webhook_url {webhook!r} is not an http(s) URL AssemblyAI can call",
                key=False,
            )
        )
    return found


def _removed_option(key: str) -> bool:
    prop = transcription_options_schema().get("properties", {}).get(key, {})
    return bool(prop.get("x-removed"))


def _removed_hint(key: str) -> str:
    prop = transcription_options_schema().get("properties", {}).get(key, {})
    return str(prop.get("x-replacement") or "remove it")


def _check_task_options(doc: Document, recipe: Recipe) -> list[Diagnostic]:
    found: list[Diagnostic] = []
    for task in recipe.tasks.values():
        here: KeyPath = ("tasks", task.name)
        if any(s.name == "json-schema" for s in task.post_process) and task.json_schema is None:
            found.append(
                doc.diagnostic(
                    (*here, "post_process"),
                    "the 'json-schema' step checks the reply against the task's json_schema, "
                    "but this task has none; add json_schema or remove the step",
                )
            )
        if task.quotes is not None:
            found.extend(_check_quotes_match(doc, task))
        if (
            task.quotes is not None
            and task.quotes.match == "semantic"
            and task.quotes.overlap >= task.quotes.window
        ):
            found.append(
                doc.diagnostic(
                    (*here, "quotes", "overlap"),
                    f"overlap ({task.quotes.overlap}) must be smaller than window "
                    f"({task.quotes.window})",
                    key=False,
                )
            )
        found.extend(_check_request_form(doc, task))
        if task.tool_choice is not None and not task.tools and task.tool_choice != "none":
            found.append(
                doc.diagnostic((*here, "tool_choice"), "tool_choice needs tools on the same task")
            )
        if task.inject_transcript:
            found.extend(_check_injection(doc, recipe, task))
        found.extend(_check_expectations(doc, task))
        if task.source is PromptSource.MESSAGES and "system" in doc.data["tasks"][task.name]:
            found.append(
                doc.diagnostic(
                    (*here, "system"),
                    "'system' does not combine with 'messages'; put a "
                    "{role: system, content: ...} message first in the list instead",
                )
            )
    return found


def _check_request_form(doc: Document, task: Task) -> list[Diagnostic]:
    """`strict` needs a schema; `send_as: prompt` needs one plain user prompt."""
    here: KeyPath = ("tasks", task.name)
    spec = doc.data["tasks"][task.name]
    found = []
    if spec.get("strict") and task.json_schema is None:
        found.append(
            doc.diagnostic(
                (*here, "strict"),
                "strict applies to a json_schema, and this task has none; add json_schema "
                "or remove strict",
            )
        )
    if task.send_as_prompt:
        plain = task.source in (PromptSource.PROMPT, PromptSource.PROMPT_FILE)
        has_system = any(m.role == "system" for m in task.messages)
        if not plain or has_system:
            why = (
                "a system message (its own `system`, or `defaults.system`)"
                if plain
                else f"`{task.source.value}`"
            )
            found.append(
                doc.diagnostic(
                    (*here, "send_as"),
                    "`send_as: prompt` sends one user prompt as the Gateway's `prompt` "
                    f"string, and this task has {why}; remove `send_as`, or the system message",
                )
            )
    return found


_SEMANTIC_ONLY = ("model", "window", "overlap")


def _check_quotes_match(doc: Document, task: Task) -> list[Diagnostic]:
    """Keys that only `match: semantic` reads, and the extra it needs."""
    here: KeyPath = ("tasks", task.name, "quotes")
    given = doc.data["tasks"][task.name]["quotes"]
    if given.get("match", "words") != "semantic":
        return [
            doc.diagnostic(
                (*here, key),
                f"{key!r} applies to `match: semantic` only: quotes are found in the "
                f"transcript's words; remove it, or add `match: semantic`",
                severity=Severity.WARNING,
            )
            for key in _SEMANTIC_ONLY
            if key in given
        ]
    if importlib.util.find_spec("sentence_transformers") is None:
        return [
            doc.diagnostic(
                (*here, "match"),
                "`match: semantic` needs the semantic extra, which is not installed here: "
                "pip install 'transcript-runner[semantic]' where this recipe runs",
                key=False,
                severity=Severity.WARNING,
            )
        ]
    return []


def _check_expectations(doc: Document, task: Task) -> list[Diagnostic]:
    found: list[Diagnostic] = []
    structured = task.structured
    for index, expectation in enumerate(task.expectations):
        where: KeyPath = ("tasks", task.name, "expect", index, expectation.kind)
        if expectation.kind in ("regex", "not_regex"):
            try:
                re.compile(str(expectation.value))
            except re.error as exc:
                found.append(
                    doc.diagnostic(where, f"not a valid regular expression: {exc}", key=False)
                )
        elif expectation.kind == "json_schema" and task.json_schema is None:
            found.append(
                doc.diagnostic(where, "this task has no json_schema to check its result against")
            )
        elif expectation.kind == "json" and not structured:
            found.append(
                doc.diagnostic(
                    where,
                    "this task replies with plain text; a json check needs a json_schema or "
                    "a json-repair step",
                )
            )
    return found


def _check_injection(doc: Document, recipe: Recipe, task: Task) -> list[Diagnostic]:
    here: KeyPath = ("tasks", task.name, "inject_transcript")
    uses = sum(m.content.source.count("gateway_transcript") for m in task.messages)
    found: list[Diagnostic] = []
    if uses != 1:
        found.append(
            doc.diagnostic(
                here,
                "with inject_transcript: true, write {{ gateway_transcript }} exactly once in "
                f"the prompt, where the transcript text goes (found {uses})",
            )
        )
    if uses == 1:
        engine = TemplateEngine(recipe.base_dir)
        for item_vars in sample_item_vars(recipe):
            try:
                render_messages(engine, task, sample_context(recipe, task, item_vars))
            except TemplateProblem as problem:
                found.extend(p for p in problem.problems)
                break
    local = [s for s in recipe.inputs if s.kind is InputKind.TRANSCRIPT_FILE]
    if local:
        found.append(
            Diagnostic(
                doc.file,
                doc.mark(here).line,
                doc.mark(here).column,
                format_path(here),
                "inject_transcript needs transcripts stored in AssemblyAI; items from "
                "transcript_file inputs are sent by their saved id, which must belong to "
                "the same account",
                Severity.WARNING,
            )
        )
    return found


def _check_json_schemas(doc: Document) -> list[Diagnostic]:
    found: list[Diagnostic] = []
    for name, spec in doc.data["tasks"].items():
        candidates: list[tuple[KeyPath, Any]] = []
        if "json_schema" in spec:
            candidates.append((("tasks", name, "json_schema"), spec["json_schema"]))
        for index, tool in enumerate(spec.get("tools", [])):
            parameters = tool.get("function", {}).get("parameters")
            if parameters is not None:
                candidates.append(
                    (("tasks", name, "tools", index, "function", "parameters"), parameters)
                )
        for key_path, value in candidates:
            try:
                Draft202012Validator.check_schema(value)
            except SchemaError as error:
                inner, message = _schema_problem(error)
                found.append(
                    doc.diagnostic(
                        (*key_path, *inner), f"not a valid JSON Schema: {message}", key=False
                    )
                )
    return found


def _schema_problem(error: SchemaError) -> tuple[KeyPath, str]:
    """Where inside a json_schema the problem is, and what to write instead.

    The metaschema's own wording ("'objekt' is not valid under any of the given
    schemas") hides the list of allowed values in its sub-errors; find it.
    """
    path: KeyPath = tuple(error.absolute_path)
    keyword = next((p for p in reversed(path) if isinstance(p, str)), "value")
    choice = _enum_error(error)
    if choice is not None:
        choices: Any = choice.validator_value
        allowed = [str(a) for a in choices]
        value = str(choice.instance)
        inner = (*path, *choice.relative_path)
        return inner, (
            f"{value!r} is not a valid {keyword!r}; use one of {', '.join(allowed)}"
            + suggest(value, allowed)
        )
    if error.validator == "type":
        expected: Any = error.validator_value
        wanted = recipe_schema.type_words(expected)
        return path, (f"{keyword!r} must be {wanted}, not {recipe_schema.describe(error.instance)}")
    return path, error.message


def _enum_error(error: SchemaError | ValidationError) -> SchemaError | ValidationError | None:
    """The innermost "one of these values" error below ``error``, for a text value."""
    if error.validator == "enum" and isinstance(error.instance, str):
        return error
    best: SchemaError | ValidationError | None = None
    for sub in error.context or []:
        found = _enum_error(sub)
        if found is not None and (best is None or len(found.path) > len(best.path)):
            best = found
    return best


def _check_table_columns(doc: Document, recipe: Recipe) -> list[Diagnostic]:
    """A task named like one of the table's own columns would share its cells."""
    if recipe.table is None:
        return []
    return [
        doc.diagnostic(
            ("tasks", name),
            f"task {name!r} has the name of a column output.table keeps for every item "
            f"({', '.join(ITEM_COLUMNS)}); rename the task",
        )
        for name in recipe.tasks
        if name in ITEM_COLUMNS
    ]


def _check_outputs(doc: Document, recipe: Recipe) -> list[Diagnostic]:
    found: list[Diagnostic] = []
    claimed: dict[str, str] = {}
    for task in recipe.tasks.values():
        key_path: KeyPath = (
            ("tasks", task.name, "output")
            if task.explicit_output
            else (
                "tasks",
                task.name,
            )
        )
        problem = output_name_problem(task.output)
        if problem:
            found.append(doc.diagnostic(key_path, problem, key=False))
            continue
        names = (task.output, task.raw_output) if task.keeps_raw_reply else (task.output,)
        for name in names:
            owner = claimed.get(name.lower())
            if owner is not None and owner != task.name:
                found.append(
                    doc.diagnostic(
                        key_path,
                        f"output {name!r} is also written by task {owner!r}; "
                        "give each task its own output file",
                        key=False,
                    )
                )
                break
            claimed[name.lower()] = task.name
    return found
