"""The rules between a recipe's tasks and their options, which a JSON Schema cannot say.

:func:`check_tasks` runs them all: the task graph (:mod:`.graph`), options of one API
used with another (:mod:`.apis`), schemas that are not schemas (:mod:`.schemas`),
outputs that collide (:mod:`.outputs`), the transcription options (:mod:`.transcription`),
the providers (:mod:`.providers`), long transcripts and groups of items
(:mod:`.groups`), the checks' options and texts (:mod:`.graded`), and here, a task's
options that depend on each other."""

from __future__ import annotations

import re

from runner.checks.apis import check_api_fields
from runner.checks.dry_run import sample_context, sample_item_vars
from runner.checks.graded import check_graded
from runner.checks.graph import check_needs
from runner.checks.groups import check_items, check_long_and_groups
from runner.checks.outputs import check_outputs, check_table_columns
from runner.checks.providers import check_key_variables, check_providers
from runner.checks.schemas import check_json_schemas
from runner.checks.transcription import check_local_engine, check_transcription
from runner.diagnostics import Diagnostic, Severity
from runner.errors import TemplateProblem
from runner.prompt.payloads import render_messages
from runner.prompt.templating import TemplateEngine
from runner.recipe.document import Document, KeyPath, format_path
from runner.recipe.model import InputKind, PromptSource, Recipe, Task
from runner.transcript.embedding import installed as embedding_runtime_installed


def check_tasks(doc: Document, recipe: Recipe) -> list[Diagnostic]:
    """Every task-level problem of ``recipe``, located in ``doc``."""
    found: list[Diagnostic] = []
    found += check_needs(doc, recipe)
    found += check_api_fields(doc)
    found += check_json_schemas(doc)
    found += check_outputs(doc, recipe)
    found += check_table_columns(doc, recipe)
    found += _check_task_options(doc, recipe)
    found += check_transcription(doc)
    found += check_local_engine(doc, recipe)
    found += check_providers(doc, recipe)
    found += check_key_variables(doc)
    found += check_long_and_groups(doc, recipe)
    found += check_items(doc, recipe)
    found += check_graded(doc, recipe)
    return found


# --- options that depend on each other ----------------------------------------------


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
        found.extend(_check_fallback_prompts(doc, task))
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


def _check_fallback_prompts(doc: Document, task: Task) -> list[Diagnostic]:
    """A fallback's own prompt is one of `prompt`, `prompt_file` and `messages`, as a
    task's is; and `system` does not combine with `messages` there either."""
    spec = doc.data["tasks"][task.name]
    where: KeyPath = (
        ("tasks", task.name, "fallbacks") if "fallbacks" in spec else ("defaults", "fallbacks")
    )
    given = spec.get("fallbacks", (doc.data.get("defaults") or {}).get("fallbacks")) or ()
    found = []
    for index, fallback in enumerate(given):
        prompts = [key for key in ("prompt", "prompt_file", "messages") if key in fallback]
        if len(prompts) > 1:
            found.append(
                doc.diagnostic(
                    (*where, index, prompts[1]),
                    f"a fallback's own prompt is one of prompt, prompt_file and messages; "
                    f"this one gives {' and '.join(prompts)}: keep one",
                )
            )
        if "messages" in fallback and "system" in fallback:
            found.append(
                doc.diagnostic(
                    (*where, index, "system"),
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
    if not embedding_runtime_installed():
        return [
            doc.diagnostic(
                (*here, "match"),
                "`match: semantic` needs the semantic extra (ONNX Runtime), which is not installed "
                "here: "
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
