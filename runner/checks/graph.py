"""The task graph as ``validate`` reports it: needs that name no task, and cycles
(:class:`~runner.recipe.taskgraph.TaskGraph` finds them)."""

from __future__ import annotations

from runner.diagnostics import Diagnostic, suggest
from runner.recipe.document import Document
from runner.recipe.model import Recipe


def check_needs(doc: Document, recipe: Recipe) -> list[Diagnostic]:
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
