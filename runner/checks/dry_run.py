"""A dry run of the pipeline on stand-in data: the inputs expand into items and every
template renders against a sample transcript, so a misspelled variable or a filter on
the wrong kind of value is found before anything is spent."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from runner.diagnostics import Diagnostic, Severity
from runner.digests import DigestSet
from runner.errors import InputProblem, OutputError, TemplateProblem
from runner.items import Item, NameBook, list_columns, stream
from runner.prompt.parts import PartView
from runner.prompt.shapes import branch_problems
from runner.prompt.templating import TemplateEngine
from runner.prompt.views import (
    NO_SPEAKERS,
    GroupView,
    ItemEntry,
    ItemView,
    Namespace,
    RecipeView,
    TaskResultView,
    folder_context,
    group_context,
    item_variables,
    prompt_context,
    sample_transcript_view,
)
from runner.recipe.document import Document
from runner.recipe.model import (
    InputKind,
    Recipe,
    Task,
    Template,
)
from runner.results.outputs import FolderResolver, item_dir

# --- inputs -----------------------------------------------------------------------


def check_inputs(doc: Document, recipe: Recipe, engine: TemplateEngine) -> list[Diagnostic]:
    """Every input expands, and every item's folder is its own and stays inside
    output.dir's. List rows stream by: what is kept is a digest of each name and folder
    (a million rows in tens of megabytes) and the items whose names repeat."""
    problems: list[InputProblem] = []
    book = NameBook(compact=True)
    folders = _Folders(recipe, engine)
    repeats: dict[int, Item] = {}
    try:
        for position, item in enumerate(stream(recipe, engine, problems)):
            if not book.first(item.name):
                repeats[position] = item  # its name needs every name: renamed below
            elif not problems:
                folders.check(item)
        if problems:
            return [_input_diagnostic(doc, problem) for problem in problems]
        renamed = {p: replace(item, name=book.renamed(item.name)) for p, item in repeats.items()}
        for item in renamed.values():
            folders.check(item)
        if not folders.troubled:
            return []
        # Found in a different order: go through the items again, as a run names them,
        # to report the first problem just as a run meets it.
        items = stream(recipe, engine, [])
        named = (renamed.get(position, item) for position, item in enumerate(items))
        return _check_item_folders(doc, recipe, engine, named)
    except TemplateProblem as problem:
        return list(problem.problems)


def _input_diagnostic(doc: Document, problem: InputProblem) -> Diagnostic:
    if problem.file is None:
        return doc.diagnostic(problem.key_path, problem.message, key=False)
    return Diagnostic(
        problem.file, problem.line, 0, "", problem.message + f" (listed by {doc.file})"
    )


class _Folders:
    """Items' folders, checked as they come: ``troubled`` once one escapes, cannot be
    rendered or repeats another's (then :func:`_check_item_folders` says which)."""

    def __init__(self, recipe: Recipe, engine: TemplateEngine) -> None:
        self._recipe = recipe
        self._engine = engine
        self._seen = DigestSet()
        self._resolver = FolderResolver()
        self.troubled = False

    def check(self, item: Item) -> None:
        if self.troubled:
            return
        try:
            folder = item_dir(self._recipe, item, self._engine, None, self._resolver)
            key = str(folder).lower()
        except (TemplateProblem, OutputError):
            self.troubled = True
            return
        self.troubled = not self._seen.add(key)


def _check_item_folders(
    doc: Document, recipe: Recipe, engine: TemplateEngine, items: Iterable[Item]
) -> list[Diagnostic]:
    """Each item's folder stays inside output.dir's own, and no two items share one
    (they would overwrite each other's outputs)."""
    folders: dict[str, str] = {}
    for item in items:
        try:
            folder = str(item_dir(recipe, item, engine, None)).lower()
        except TemplateProblem:
            return []  # reported by the template checks
        except OutputError as escape:
            where, what = item.origin.rsplit(":", 1)
            return [
                Diagnostic(where, int(what), 0, "", f"item {item.name!r}: {escape.reason}")
                if what.isdigit()
                else doc.diagnostic(("output", "dir"), escape.reason, key=False)
            ]
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


def check_templates(doc: Document, recipe: Recipe, engine: TemplateEngine) -> list[Diagnostic]:
    found: dict[tuple[str, int, str], Diagnostic] = {}

    def add(diagnostics: Iterable[Diagnostic]) -> None:
        for d in diagnostics:
            found.setdefault((d.file, d.line, d.message), d)

    # Every branch first (no render takes them all), then one render each: a problem
    # both find is told once, at the column the branch check gives it.
    add(branch_problems(engine, recipe.output_dir, _output_dir_context(recipe)))
    every_var = {
        name: value for item_vars in sample_item_vars(recipe) for name, value in item_vars.items()
    }
    for task in recipe.tasks.values():
        for template in task.templates:
            add(branch_problems(engine, template, sample_context(recipe, task, every_var)))
    add(_render_problems(engine, recipe.output_dir, _output_dir_context(recipe)))
    for item_vars in sample_item_vars(recipe):
        for task in recipe.tasks.values():
            context = sample_context(recipe, task, item_vars)
            for template in task.templates:
                add(_render_problems(engine, template, context))
    add(_speakers_without_labels(doc, recipe, engine))
    return list(found.values())


_TRANSCRIBED = (InputKind.URL, InputKind.FILE, InputKind.LIST)
_SPEAKER_OPTIONS = ("speaker_labels", "multichannel")


def _no_speakers_message(recipe: Recipe) -> str:
    if recipe.local_engine is not None:
        return (
            "this prompt reads transcript.utterances, but engine "
            f"{recipe.local_engine.engine} gives no speakers (Whisper does not tell voices "
            "apart); use transcript.text, or fall back with {% if transcript.utterances %}"
        )
    return (
        "this prompt reads transcript.utterances, but `transcription:` has no "
        "`speaker_labels: true`, so the audio this recipe transcribes will have none; add "
        "it, or fall back with {% if transcript.utterances %}"
    )


def _speakers_without_labels(
    doc: Document, recipe: Recipe, engine: TemplateEngine
) -> list[Diagnostic]:
    """A prompt that uses utterances unguarded, while the audio this recipe transcribes
    gets none: AssemblyAI makes utterances only with speaker labels (or multichannel).
    Each prompt is rendered once more with no utterances; a guarded one passes."""
    transcribes = any(spec.kind in _TRANSCRIBED for spec in recipe.inputs)
    labelled = any(recipe.transcription.get(option) for option in _SPEAKER_OPTIONS)
    if not transcribes or labelled:
        return []
    found = []
    for task in recipe.tasks.values():
        if task.over is not None:  # (its items' transcripts: not checked here)
            continue
        context = sample_context(recipe, task, sample_item_vars(recipe)[0])
        context["transcript"] = context["transcript"].without_utterances()
        for template in task.templates:
            for problem in _render_problems(engine, template, context):
                if NO_SPEAKERS in problem.message:
                    found.append(
                        replace(
                            problem,
                            message=_no_speakers_message(recipe),
                            severity=Severity.WARNING,
                        )
                    )
    return found


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


def sample_item_vars(recipe: Recipe) -> list[dict[str, Any]]:
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


def sample_context(recipe: Recipe, task: Task, item_vars: Mapping[str, Any]) -> dict[str, Any]:
    tasks = {need: _sample_result(recipe.tasks.get(need), need) for need in task.needs}
    item = ItemView.sample(item_vars)
    if task.over is not None:  # a group task sees `items`, not one item
        entry = ItemEntry(item, sample_transcript_view(), Namespace("tasks", tasks))
        context = group_context(
            entries=[entry, entry],
            group=GroupView("sample", task.over.group_by, "sample" if task.over.group_by else None),
            variables=dict(recipe.vars),
            recipe=RecipeView.of(recipe),
        )
    else:
        context = prompt_context(
            transcript=sample_transcript_view(),
            item=item,
            variables=item_variables(recipe, item),
            tasks=tasks,
            recipe=RecipeView.of(recipe),
            inject_transcript=task.inject_transcript,
        )
    if task.reduce is not None:  # what its reduce prompt sees besides
        context["parts"] = [
            PartView(1, "sample reply", 0, 60_000),
            PartView(2, "sample reply", 60_000, 95_000),
        ]
        context["request"] = "the task's prompt"
    return context


def _sample_result(task: Task | None, name: str) -> TaskResultView:
    if task is None:  # a need that names no task: validate reports it elsewhere
        return TaskResultView.build(name, "sample reply")
    return TaskResultView.sample(task, "sample reply")
