"""The rules of ``long:``, ``reduce:``, ``context_window:`` and ``over:`` that a schema
cannot say, and the transcript ids a LeMUR task sends."""

from __future__ import annotations

from pathlib import Path

from runner.diagnostics import Diagnostic, Severity
from runner.errors import InputsInvalid, ItemError
from runner.items import Item, expand
from runner.prompt.templating import TemplateEngine
from runner.recipe.document import Document, KeyPath
from runner.recipe.model import MAP_REDUCE, InputKind, Recipe, Task, TaskApi
from runner.transcript.model import load_saved


def check_long_and_groups(doc: Document, recipe: Recipe) -> list[Diagnostic]:
    """Each task's ``long``/``reduce``/``over`` that cannot work as written."""
    found: list[Diagnostic] = []
    spec_of = doc.data.get("tasks") or {}
    for task in recipe.tasks.values():
        here: KeyPath = ("tasks", task.name)
        spec = spec_of.get(task.name) or {}
        if task.export is not None:
            found += [
                doc.diagnostic((*here, key), f"{key!r} does not apply to an export task")
                for key in ("long", "reduce", "context_window", "over")
                if key in spec
            ]
            continue
        if "reduce" in spec and task.long != MAP_REDUCE:
            found.append(
                doc.diagnostic(
                    (*here, "reduce"),
                    f"'reduce' combines the parts of a `long: {MAP_REDUCE}` task; add "
                    f"`long: {MAP_REDUCE}` or remove it",
                )
            )
        if task.long is not None:
            found += _long_problems(doc, task, here)
        if task.over is not None:
            found += [
                doc.diagnostic(
                    (*here, key),
                    f"{key!r} reads one item's transcript; a task with "
                    "`over:` reads a group of items, so it cannot use it",
                )
                for key in ("quotes", "inject_transcript")
                if key in spec
            ]
            found += _graded_on_a_group(doc, task, here)
        found += _needs_across_groups(doc, recipe, task, here)
    return found


def _graded_on_a_group(doc: Document, task: Task, here: KeyPath) -> list[Diagnostic]:
    """Graded checks (judge, similar_to, grounded) are run on one item's result with its
    transcript and vars; a group task's result has neither, so they are refused rather
    than skipped (a check that never runs must not pass)."""
    return [
        doc.diagnostic(
            (*here, "expect", index, expectation.kind),
            f"`{expectation.kind}` grades one item's result against its transcript or "
            "vars; a task with `over:` writes one result for a group of items, so it "
            "cannot use it (keep contains, regex, equals, lengths, json_path and "
            "json_schema here, or grade the per-item tasks the group needs)",
            key=True,
        )
        for index, expectation in enumerate(task.expectations)
        if expectation.graded
    ]


def _long_problems(doc: Document, task: Task, here: KeyPath) -> list[Diagnostic]:
    if task.api is TaskApi.LEMUR:
        return [
            doc.diagnostic(
                (*here, "long"),
                "LeMUR reads transcripts by id and shortens them itself; remove 'long'",
            )
        ]
    if task.inject_transcript:
        return [
            doc.diagnostic(
                (*here, "long"),
                "with inject_transcript the LLM Gateway inserts the whole transcript, so it "
                "cannot be read in parts; put {{ transcript.text }} in the prompt instead",
            )
        ]
    return []


def _needs_across_groups(
    doc: Document, recipe: Recipe, task: Task, here: KeyPath
) -> list[Diagnostic]:
    """A group task may need per-item tasks (their results are in ``items``); a
    per-item task cannot need a group task, nor a group task another."""
    found = []
    for index, need in enumerate(task.needs):
        other = recipe.tasks.get(need)
        if other is None or other.over is None:
            continue
        why = (
            "a group task runs after its items' tasks, so it cannot need another group task"
            if task.over is not None
            else "it runs once per group, after the items' tasks"
        )
        found.append(
            doc.diagnostic(
                (*here, "needs", index),
                f"task {task.name!r} cannot need {need!r} ({need} has `over:`: {why})",
                key=False,
            )
        )
    return found


def check_items(doc: Document, recipe: Recipe) -> list[Diagnostic]:
    """The rules that read the recipe's items (``group_by`` fields, LeMUR's transcript
    ids), the items expanded once for both, and only when a rule applies."""
    grouped = [t for t in recipe.tasks.values() if t.over is not None and t.over.group_by]
    by_id = [
        t
        for t in recipe.tasks.values()
        if t.api is TaskApi.LEMUR and (t.lemur is None or t.lemur.input_text is None)
    ]
    saved = (InputKind.TRANSCRIPT_FILE, InputKind.LIST)  # a list's rows may name them
    by_id = by_id if any(s.kind in saved for s in recipe.inputs) else []
    if not grouped and not by_id:
        return []
    try:
        items = expand(recipe, TemplateEngine(recipe.base_dir))
    except (ItemError, InputsInvalid):
        return []  # (the inputs' own problems are reported by check_inputs)
    return _group_fields(doc, grouped, items) + _lemur_ids(doc, recipe, by_id, items)


def _group_fields(doc: Document, grouped: list[Task], items: list[Item]) -> list[Diagnostic]:
    """A ``group_by`` field that no item has: the task would form no group and never
    run, silently (a typo in the field's name, most often). A warning, at the field."""
    fields = {name for item in items for name in item.vars}
    return [
        doc.diagnostic(
            ("tasks", task.name, "over", "group_by"),
            f"no item has the field {task.over.group_by!r} (items have: "
            f"{', '.join(sorted(fields)) or 'no fields'}), so task {task.name!r} forms no "
            "group and never runs; name a column of the list or a key of the inputs' vars",
            key=False,
            severity=Severity.WARNING,
        )
        for task in grouped
        if task.over is not None and task.over.group_by not in fields and items
    ]


def _lemur_ids(
    doc: Document, recipe: Recipe, by_id: list[Task], items: list[Item]
) -> list[Diagnostic]:
    """A LeMUR task sends the transcripts' ids: a saved transcript without an ``id``
    would be sent as no transcript at all (AssemblyAI answers 400), so it is an error
    at its input, naming the file."""
    if not by_id:
        return []
    found: list[Diagnostic] = []
    reported: set[int] = set()
    for item in items:
        if item.kind is not InputKind.TRANSCRIPT_FILE or item.entry in reported:
            continue
        try:
            transcript = load_saved(Path(item.source))
        except ItemError:
            continue  # (an unreadable file is reported where inputs are checked)
        if transcript.id:
            continue
        reported.add(item.entry)
        shown = item.relative_source(recipe)
        listed = recipe.inputs[item.entry].kind is InputKind.LIST
        if listed:  # the row of the list file that names it ("calls.csv:4")
            shown = f"{shown} ({item.origin})"
        found.append(
            doc.diagnostic(
                ("inputs", item.entry, "list" if listed else "transcript_file"),
                f"the saved transcript {shown} has no 'id', but task {by_id[0].name!r} "
                "(api: lemur) sends AssemblyAI the transcripts' ids; save the transcript "
                "as GET /v2/transcript/{id} returns it (with its id), or give the task "
                "`input_text: '{{ transcript.text }}'`",
                key=False,
            )
        )
    return found
