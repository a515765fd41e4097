"""Task outputs: names that cannot be files of the item folder, files two tasks
would both write, and task names the results table keeps for its own columns."""

from __future__ import annotations

from runner.diagnostics import Diagnostic
from runner.recipe.document import Document, KeyPath
from runner.recipe.model import Recipe, output_name_problem, template_syntax_problem
from runner.results.table import ITEM_COLUMNS


def check_table_columns(doc: Document, recipe: Recipe) -> list[Diagnostic]:
    """A task named like one of the table's own columns would share its cells; a table
    name with ``{{ }}`` would be used as written."""
    if recipe.table is None:
        return []
    if problem := template_syntax_problem("output.table", recipe.table):
        return [doc.diagnostic(("output", "table"), problem, key=False)]
    return [
        doc.diagnostic(
            ("tasks", name),
            f"task {name!r} has the name of a column output.table keeps for every item "
            f"({', '.join(ITEM_COLUMNS)}); rename the task",
        )
        for name in recipe.tasks
        if name in ITEM_COLUMNS
    ]


def check_outputs(doc: Document, recipe: Recipe) -> list[Diagnostic]:
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
