"""Check recipes without touching the network: syntax, schema, references, templates.

"Collect, then report": every problem in a file is found in one pass and reported
sorted by line, so a person fixes them all at once. Stages that need a sound
recipe (templates need tasks to exist) run only when the earlier stages passed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, ValidationError

from runner.diagnostics import Diagnostic, Severity, display_path, suggest
from runner.errors import DiagnosticError, InputsInvalid, RecipeInvalid, TemplateProblem, UsageError
from runner.items import Item, expand, list_columns
from runner.prompt.payloads import render_messages
from runner.prompt.templating import TemplateEngine
from runner.prompt.views import (
    ItemView,
    RecipeView,
    TaskResultView,
    folder_context,
    item_variables,
    prompt_context,
    sample_json,
    sample_transcript_view,
)
from runner.recipe import schema as recipe_schema
from runner.recipe.build import build
from runner.recipe.document import Document, KeyPath, format_path, load_file
from runner.recipe.model import (
    InputKind,
    PromptSource,
    Recipe,
    Task,
    TaskApi,
    Template,
    output_name_problem,
)
from runner.results.outputs import item_dir

RECIPE_SUFFIXES = (".yaml", ".yml")
DEFAULT_RECIPE_DIR = "recipes"

# Gateway features LeMUR does not have, and LeMUR fields the Gateway does not have.
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
)
_LEMUR_ONLY = ("context", "final_model", "max_output_size")
_NOT_WITH_QUOTES = ("json_schema", "post_process", "gateway_post_processing", "tools")


@dataclass
class Validation:
    """The outcome for one file: its diagnostics and, when valid, the recipe."""

    file: str
    diagnostics: list[Diagnostic] = field(default_factory=list)
    recipe: Recipe | None = None

    @property
    def ok(self) -> bool:
        return not any(d.is_error for d in self.diagnostics)


def discover(paths: Sequence[str]) -> list[Path]:
    """Recipe files named on the command line; folders are searched for *.yaml/*.yml."""
    targets = list(paths) or [DEFAULT_RECIPE_DIR]
    found: list[Path] = []
    for target in targets:
        path = Path(target)
        if path.is_dir():
            found.extend(_recipes_below(path))
        elif path.is_file():
            found.append(path)
        elif not paths:
            raise UsageError(
                f"no recipes given and no {DEFAULT_RECIPE_DIR}/ folder here; "
                "name recipe files or folders: transcript-runner validate path/to/recipe.yaml"
            )
        else:
            raise UsageError(f"{target}: no such file or folder")
    return found


def _recipes_below(folder: Path) -> list[Path]:
    found: list[Path] = []
    for root, dirs, files in os.walk(folder):
        # Skip hidden folders and outputs the runner wrote beside the recipes.
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "out")
        found.extend(Path(root) / f for f in sorted(files) if f.endswith(RECIPE_SUFFIXES))
    return found


def load_recipes(paths: Sequence[str]) -> list[Recipe]:
    """Every recipe named (files or folders), validated; :class:`RecipeInvalid` lists
    every error of every file, so one bad recipe never hides another's problems."""
    recipes: list[Recipe] = []
    problems: list[Diagnostic] = []
    for path in discover(paths):
        result = validate_file(path)
        problems.extend(d for d in result.diagnostics if d.is_error)
        if result.recipe is not None:
            recipes.append(result.recipe)
    if problems:
        raise RecipeInvalid(sorted(problems))
    return recipes


def validate_file(path: Path) -> Validation:
    """Every problem in one recipe file."""
    shown = display_path(path)
    result = Validation(shown)
    try:
        doc = load_file(path, shown)
    except DiagnosticError as error:
        result.diagnostics.append(error.diagnostic)
        return result
    result.diagnostics.extend(recipe_schema.check(doc))
    if not result.ok:
        return result
    recipe, file_problems = build(doc, path.resolve())
    result.diagnostics.extend(doc.diagnostic(p, m, key=False) for p, m in file_problems)
    result.diagnostics.extend(_check_recipe(doc, recipe))
    if result.ok:
        result.recipe = recipe
    return result


def load_recipe(path: Path) -> Recipe:
    """A valid recipe, or :class:`RecipeInvalid` with every problem in it."""
    result = validate_file(path)
    if result.recipe is None:
        raise RecipeInvalid([d for d in result.diagnostics if d.is_error])
    return result.recipe


def _check_recipe(doc: Document, recipe: Recipe) -> list[Diagnostic]:
    found: list[Diagnostic] = []
    found += _check_needs(doc, recipe)
    found += _check_api_fields(doc)
    found += _check_json_schemas(doc)
    found += _check_outputs(doc, recipe)
    found += _check_task_options(doc, recipe)
    engine = TemplateEngine(recipe.base_dir)
    found += _check_inputs(doc, recipe, engine)
    if not any(d.is_error for d in found):
        found += _check_templates(doc, recipe, engine)
    return found


# --- task graph -------------------------------------------------------------------


def _check_needs(doc: Document, recipe: Recipe) -> list[Diagnostic]:
    found: list[Diagnostic] = []
    for task in recipe.tasks.values():
        for index, need in enumerate(task.needs):
            if need not in recipe.tasks:
                found.append(
                    doc.diagnostic(
                        ("tasks", task.name, "needs", index),
                        f"needs an unknown task {need!r}"
                        + (suggest(need, recipe.tasks) or f"; tasks: {', '.join(recipe.tasks)}"),
                        key=False,
                    )
                )
    for cycle in _cycles({t.name: t.needs for t in recipe.tasks.values()}):
        first = cycle[0]
        if len(cycle) == 1:
            # A task cannot wait for its own reply; say so plainly, at the entry.
            index = recipe.tasks[first].needs.index(first)
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


def _cycles(graph: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """Each cycle once, starting at its first task in recipe order."""
    order = {name: i for i, name in enumerate(graph)}
    cycles: list[list[str]] = []
    seen: set[frozenset[str]] = set()
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in graph.get(node, ()):
            if nxt not in graph:
                continue
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt) :]
                key = frozenset(cycle)
                if key not in seen:
                    seen.add(key)
                    start = min(range(len(cycle)), key=lambda i: order[cycle[i]])
                    cycles.append(cycle[start:] + cycle[:start])
            elif state.get(nxt) is None:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for name in graph:
        if name not in state:
            visit(name, [])
    return cycles


# --- options that depend on each other ----------------------------------------------


def _check_api_fields(doc: Document) -> list[Diagnostic]:
    found: list[Diagnostic] = []
    for name, spec in doc.data["tasks"].items():
        here: KeyPath = ("tasks", name)
        if spec.get("api") == TaskApi.LEMUR.value:
            for key in _GATEWAY_ONLY:
                if key in spec:
                    found.append(
                        doc.diagnostic(
                            (*here, key),
                            f"{key!r} is an LLM Gateway option; LeMUR tasks (api: lemur) "
                            "do not support it",
                        )
                    )
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
            found.append(_lemur_warning(doc, name, spec))
        else:
            if "quotes" in spec:
                for key in _NOT_WITH_QUOTES:
                    if key in spec:
                        found.append(
                            doc.diagnostic(
                                (*here, key),
                                f"{key!r} does not apply to a quotes task: its reply is matched "
                                "to the transcript's sentences and written as JSON",
                            )
                        )
            for key in _LEMUR_ONLY:
                if key in spec:
                    found.append(
                        doc.diagnostic(
                            (*here, key),
                            f"{key!r} only applies to LeMUR tasks; add `api: lemur` or remove it",
                        )
                    )
    return found


def _lemur_warning(doc: Document, name: str, spec: Mapping[str, Any]) -> Diagnostic:
    where = doc.mark(("tasks", name, "api"))
    return Diagnostic(
        doc.file,
        where.line,
        where.column,
        format_path(("tasks", name, "api")),
        "AssemblyAI deprecated LeMUR (March 31st, 2026). The same task on the LLM Gateway: "
        "remove `api: lemur`, `final_model` and `context`, set `model: claude-sonnet-4-6`, "
        "and end the prompt with the transcript: `Transcript: {{ transcript.text }}`",
        Severity.WARNING,
    )


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
        if task.quotes is not None and task.quotes.overlap >= task.quotes.window:
            found.append(
                doc.diagnostic(
                    (*here, "quotes", "overlap"),
                    f"overlap ({task.quotes.overlap}) must be smaller than window "
                    f"({task.quotes.window})",
                    key=False,
                )
            )
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
        for item_vars in _sample_item_vars(recipe):
            try:
                render_messages(engine, task, _sample_context(recipe, task, item_vars))
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


# --- inputs -----------------------------------------------------------------------


def _check_inputs(doc: Document, recipe: Recipe, engine: TemplateEngine) -> list[Diagnostic]:
    try:
        items = expand(recipe, engine)
        return _check_item_folders(doc, recipe, engine, items)
    except InputsInvalid as invalid:
        found: list[Diagnostic] = []
        for problem in invalid.problems:
            if problem.file is not None:
                found.append(
                    Diagnostic(
                        problem.file,
                        problem.line,
                        0,
                        "",
                        problem.message + f" (listed by {doc.file})",
                    )
                )
            else:
                found.append(doc.diagnostic(problem.key_path, problem.message, key=False))
        return found
    except TemplateProblem as problem:
        return list(problem.problems)


def _check_item_folders(
    doc: Document, recipe: Recipe, engine: TemplateEngine, items: Sequence[Item]
) -> list[Diagnostic]:
    """Two items writing into one folder would overwrite each other's outputs."""
    if len(items) < 2:
        return []
    folders: dict[str, str] = {}
    for item in items:
        try:
            folder = str(item_dir(recipe, item, engine, None)).lower()
        except TemplateProblem:
            return []  # reported by the template checks
        if folder in folders:
            return [
                doc.diagnostic(
                    ("output", "dir"),
                    f"items {folders[folder]!r} and {item.name!r} would write into the same "
                    "folder; put {{ item.name }} in output.dir",
                    key=False,
                )
            ]
        folders[folder] = item.name
    return []


# --- templates ----------------------------------------------------------------------


def _check_templates(doc: Document, recipe: Recipe, engine: TemplateEngine) -> list[Diagnostic]:
    found: dict[tuple[str, int, str], Diagnostic] = {}

    def add(diagnostics: Iterable[Diagnostic]) -> None:
        for d in diagnostics:
            found.setdefault((d.file, d.line, d.message), d)

    add(_render_problems(engine, recipe.output_dir, _output_dir_context(recipe)))
    for item_vars in _sample_item_vars(recipe):
        for task in recipe.tasks.values():
            context = _sample_context(recipe, task, item_vars)
            for template in task.templates:
                add(_render_problems(engine, template, context))
    return list(found.values())


def _render_problems(
    engine: TemplateEngine, template: Template, context: Mapping[str, Any]
) -> list[Diagnostic]:
    try:
        engine.render(template, context)
    except TemplateProblem as problem:
        return list(problem.problems)
    return []


def _output_dir_context(recipe: Recipe) -> dict[str, Any]:
    return folder_context(recipe, ItemView.sample())


def _sample_item_vars(recipe: Recipe) -> list[dict[str, Any]]:
    """One variable set per input entry: entry vars, plus list columns as sample text."""
    seen: list[dict[str, Any]] = []
    for spec in recipe.inputs:
        values: dict[str, Any] = dict(spec.vars)
        if spec.kind is InputKind.LIST:
            for column in list_columns(recipe, spec):
                values.setdefault(column, "sample")
        if values not in seen:
            seen.append(values)
    return seen or [{}]


def _sample_context(recipe: Recipe, task: Task, item_vars: Mapping[str, Any]) -> dict[str, Any]:
    tasks = {need: _sample_result(recipe.tasks.get(need), need) for need in task.needs}
    return prompt_context(
        transcript=sample_transcript_view(),
        item=(item := ItemView.sample(item_vars)),
        variables=item_variables(recipe, item),
        tasks=tasks,
        recipe=RecipeView.of(recipe),
        inject_transcript=task.inject_transcript,
    )


def _sample_result(task: Task | None, name: str) -> TaskResultView:
    if task is None:
        return TaskResultView.build(name, "sample reply")
    schema = task.json_schema if task.quotes is None else None
    return TaskResultView.build(
        name, "sample reply", sample_json(schema), structured=task.structured
    )
