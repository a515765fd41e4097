"""The rules of a task's checks that a JSON Schema cannot say: a judge's model, the
options that belong to one kind of check, the texts rendered for every item (a
reference file that some item would not find), and the embedding runtime that
`similar_to` and `grounded` run on. Said before anything is paid."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from runner.checks.dry_run import sample_item_vars
from runner.diagnostics import Diagnostic, Severity
from runner.errors import InputProblem, TemplateProblem
from runner.items import stream
from runner.prompt.templating import TemplateEngine
from runner.prompt.views import ItemView, folder_context
from runner.recipe.document import Document, KeyPath
from runner.recipe.model import GATEWAY_PROVIDER, Expectation, Recipe, Task
from runner.recipe.references import reference_file
from runner.transcript.embedding import installed as embedding_runtime_installed

# Which kind of check each option belongs to.
_OPTION_OF = {
    "model": "judge",
    "min_score": "judge",
    "repeat": "judge",
    "min_pass": "judge",
    "min": "similar_to",
}


def check_graded(doc: Document, recipe: Recipe) -> list[Diagnostic]:
    """Every problem of the recipe's checks' options and models (their texts and files:
    :func:`check_texts`)."""
    found: list[Diagnostic] = []
    for task in recipe.tasks.values():
        entries = doc.data["tasks"][task.name].get("expect") or []
        here: KeyPath = ("tasks", task.name)
        if task.pass_rate is not None and not task.expectations:
            found.append(
                doc.diagnostic(
                    (*here, "pass_rate"),
                    "pass_rate counts the items that pass this task's checks, and it has "
                    "none; add `expect:` checks, or remove pass_rate",
                    severity=Severity.WARNING,
                )
            )
        for index, (expectation, entry) in enumerate(zip(task.expectations, entries, strict=True)):
            where: KeyPath = (*here, "expect", index)
            found += _options(doc, recipe, where, expectation, entry)
    return found


def _options(
    doc: Document,
    recipe: Recipe,
    where: KeyPath,
    expectation: Expectation,
    entry: Mapping[str, Any],
) -> list[Diagnostic]:
    found = [
        doc.diagnostic(
            (*where, option),
            f"{option!r} applies to a {kind} check, and this is a {expectation.kind} check; "
            "remove it",
        )
        for option, kind in _OPTION_OF.items()
        if option in entry and expectation.kind != kind
    ]
    judge = expectation.judge
    if judge is not None:
        if not judge.model:
            found.append(
                doc.diagnostic(
                    (*where, "judge"),
                    "a judge needs a model: add `model:` to this check, or "
                    "`judge_model:` to `defaults`",
                )
            )
        named = judge.model_provider
        if named not in (None, GATEWAY_PROVIDER) and named not in recipe.providers:
            known = ", ".join(sorted(recipe.providers)) or "none are set up"
            found.append(
                doc.diagnostic(
                    (*where, "model"),
                    f"the judge's provider {named!r} is not in `providers:` ({known})",
                    key=False,
                )
            )
        if judge.min_pass > judge.repeat:
            found.append(
                doc.diagnostic(
                    (*where, "min_pass"),
                    f"min_pass ({judge.min_pass}) cannot be more than repeat ({judge.repeat})",
                    key=False,
                )
            )
    if expectation.kind in ("similar_to", "grounded") and not embedding_runtime_installed():
        needs = (
            "compares embeddings"
            if expectation.kind == "similar_to"
            else "finds paraphrases by embeddings"
        )
        found.append(
            doc.diagnostic(
                (*where, expectation.kind),
                f"{expectation.kind} {needs} on the semantic extra (ONNX Runtime), which is "
                "not installed here: pip install 'transcript-runner[semantic]' where this "
                "recipe runs",
                severity=Severity.ERROR if expectation.kind == "similar_to" else Severity.WARNING,
            )
        )
    return found


def check_texts(doc: Document, recipe: Recipe, engine: TemplateEngine) -> list[Diagnostic]:
    """Each check's text renders for a sample item; a reference file exists for every
    item (the items are expanded as a run expands them, a row at a time). With the
    templates, once the inputs are known to expand."""
    checks = list(_texted(recipe))
    found: list[Diagnostic] = []
    if not checks:
        return found
    for item_vars in sample_item_vars(recipe):
        context = folder_context(recipe, ItemView.sample(item_vars))
        for _, _, expectation in checks:
            assert expectation.text is not None
            try:
                engine.render(expectation.text, context)
            except TemplateProblem as problem:
                found += problem.problems
    files = [(t, i, e) for t, i, e in checks if e.from_file]
    if found or not files:
        return found
    problems: list[InputProblem] = []
    try:
        for item in stream(recipe, engine, problems):
            context = folder_context(recipe, item.view(recipe))
            for task, index, expectation in files:
                assert expectation.text is not None
                name = engine.render(expectation.text, context)
                missing = reference_file(recipe.base_dir, name)
                if isinstance(missing, str):
                    return [
                        doc.diagnostic(
                            ("tasks", task.name, "expect", index, "similar_to", "file"),
                            f"item {item.name!r}: {missing}",
                            key=False,
                        )
                    ]
    except TemplateProblem as problem:
        return list(problem.problems)
    return []  # an input that does not expand is the inputs' check to report


def _texted(recipe: Recipe) -> Iterator[tuple[Task, int, Expectation]]:
    for task in recipe.tasks.values():
        for index, expectation in enumerate(task.expectations):
            if expectation.text is not None:
                yield task, index, expectation
