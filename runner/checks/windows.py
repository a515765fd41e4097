"""``validate --online``: prompts that would not fit their model's context window, for
the transcripts a recipe has on disk (``transcript_file`` inputs).

Each task that reads one item's transcript and needs no other task's reply is built as
``run`` builds it (the same template, the same view of the transcript) and measured by
:mod:`runner.prompt.window` against the windows the Gateway's model list gives (then
the documented table). Transcripts that are not on disk are measured by ``plan`` and
``run``, before anything is sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from runner.diagnostics import Diagnostic
from runner.errors import ItemError
from runner.items import expand
from runner.prompt.payloads import build_payload, task_context
from runner.prompt.templating import TemplateEngine
from runner.prompt.views import TranscriptView
from runner.prompt.window import overflow
from runner.recipe.document import Document
from runner.recipe.model import InputKind, Recipe, Task
from runner.transcript.model import (
    Transcript,
    load_saved,
    paragraphs_from_sentences,
    sentences_from_words,
)

# Saved transcripts measured per recipe: enough to find a long one in a folder of
# meetings, few enough that validate stays quick on a list of thousands.
MEASURED = 200


def check_windows(
    doc: Document, recipe: Recipe, windows: Mapping[str, int] | None
) -> list[Diagnostic]:
    """One error per task whose prompt would not fit for a saved transcript (the
    first such item named), unless the task reads it in parts (``long:``)."""
    tasks = [t for t in recipe.ordered_tasks() if _measured(t)]
    if not tasks or not any(s.kind is InputKind.TRANSCRIPT_FILE for s in recipe.inputs):
        return []
    engine = TemplateEngine(recipe.base_dir)
    try:
        items = [i for i in expand(recipe, engine) if i.kind is InputKind.TRANSCRIPT_FILE]
    except ItemError:
        return []  # (the inputs' own problems are reported where inputs are checked)
    found: dict[str, Diagnostic] = {}
    for item in items[:MEASURED]:
        try:
            transcript = load_saved(Path(item.source))
            view = _view(transcript)
        except (ItemError, ValueError):
            continue  # (reported where inputs are checked)
        for task in tasks:
            if task.name in found:
                continue
            context = task_context(recipe, item.view(recipe), task, view, {})
            try:
                payload = build_payload(
                    engine, task, context, transcript_id=view.id, transcript_text=view.text
                )
            except ItemError:
                continue  # (template problems are reported by the template checks)
            problem = overflow(task, payload, inserted_text=view.text, catalog=windows)
            if problem is not None:
                found[task.name] = doc.diagnostic(
                    ("tasks", task.name),
                    f"for item {item.name!r} ({item.relative_source(recipe)}), {problem.message()}",
                )
    return list(found.values())


def _measured(task: Task) -> bool:
    """A task whose prompt is known from the transcript alone and is refused when too
    long: no needs (their replies are not known), one item, no `long:`."""
    return task.asks_model and not task.needs and task.over is None and task.long is None


def _view(transcript: Transcript) -> TranscriptView:
    """The view ``run`` builds for a saved transcript (split from its words)."""
    sentences = sentences_from_words(transcript.words)
    return TranscriptView.build(transcript, sentences, paragraphs_from_sentences(sentences))
