"""The references of a recipe's transcription checks (``wer``), checked for every item
before anything is paid: a reference file that exists, or a column the item has, and
a path template that renders. Each check says its first item without one, and how
many more lack it, at the check's ``reference`` key."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from runner.diagnostics import Diagnostic
from runner.errors import InputProblem, TemplateProblem
from runner.items import Item, stream
from runner.prompt.templating import TemplateEngine
from runner.prompt.views import folder_context
from runner.recipe.document import Document
from runner.recipe.model import Recipe, WerCheck


def check_references(doc: Document, recipe: Recipe, engine: TemplateEngine) -> list[Diagnostic]:
    """One message per check whose reference some item lacks."""
    checks = [check for block in recipe.transcriptions for check in block.checks]
    if not checks:
        return []
    lacking: dict[int, tuple[str, int]] = {}  # check → (the first item's problem, how many)
    problems: list[InputProblem] = []  # (reported by the inputs' own check)
    for item in stream(recipe, engine, problems):
        for index, check in enumerate(checks):
            try:
                problem = _problem(recipe, engine, item, check)
            except TemplateProblem as exc:
                return list(exc.problems)
            if problem is not None:
                first, count = lacking.get(index, (problem, 0))
                lacking[index] = (first, count + 1)
    return list(_diagnostics(doc, checks, lacking))


def _problem(recipe: Recipe, engine: TemplateEngine, item: Item, check: WerCheck) -> str | None:
    if check.reference_column is not None:
        value = item.vars.get(check.reference_column)
        if value is None or isinstance(value, Mapping | list | tuple) or not str(value).strip():
            return (
                f"item {item.name!r} has no text in column {check.reference_column!r} for "
                "its reference; fill it in, or give a file"
            )
        return None
    assert check.reference_file is not None  # a check names a file or a column
    context = folder_context(recipe, item.view(recipe))
    written = engine.render(check.reference_file, context).strip()
    if (recipe.base_dir / written).is_file():
        return None
    return (
        f"the reference file {written!r} of item {item.name!r} does not exist (paths are "
        "relative to the recipe's folder); write it, or fix the path"
    )


def _diagnostics(
    doc: Document, checks: list[WerCheck], lacking: Mapping[int, tuple[str, int]]
) -> Iterator[Diagnostic]:
    for index, (first, count) in sorted(lacking.items()):
        others = count - 1
        more = f" (and {others} more item{'s' if others > 1 else ''})" if others else ""
        yield doc.diagnostic((*checks[index].where, "reference"), first + more, key=False)
