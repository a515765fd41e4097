"""Options of one API used with another: the keys an export, a LeMUR task and a
Gateway task each take, and the way from LeMUR to the Gateway."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from runner.diagnostics import Diagnostic, Severity
from runner.recipe.document import Document, KeyPath, format_path
from runner.recipe.migration import CURRENT_EQUIVALENT, LEMUR_DEFAULT_MODEL, TRANSCRIPT_LINE
from runner.recipe.model import TaskApi

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
_EXPORT_KEYS = ("export", "description", "output", "expect", "pass_rate")


def check_api_fields(doc: Document) -> list[Diagnostic]:
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
        shortest, longest = given.get("min_seconds"), given.get("max_seconds", 7.0)
        numbers = isinstance(shortest, int | float) and isinstance(longest, int | float)
        if numbers and shortest > longest:
            found.append(
                doc.diagnostic(
                    (*here, "export", "min_seconds"),
                    f"min_seconds {shortest} is more than max_seconds {longest}: a "
                    "caption cannot stay on screen longer than it may; lower it",
                    key=False,
                )
            )
    return found


_EXPORT_OPTION_FORMATS = {
    "chars_per_caption": ("srt", "vtt"),
    "chars_per_line": ("srt", "vtt"),
    "lines_per_caption": ("srt", "vtt"),
    "min_seconds": ("srt", "vtt"),
    "max_seconds": ("srt", "vtt"),
    "speakers": ("srt", "vtt", "txt", "markdown"),
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
