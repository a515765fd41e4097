"""What a task needs on this machine after its request has been paid for: the embedding
model of ``match: semantic``. A reply the run cannot finish is money spent for nothing,
so ``validate`` finds each such model (without loading it), and ``run`` loads them all
before its first request (loaded once per process: the run's tasks reuse them).

The other resources a reply needs are checked earlier already: JSON Schemas and prompt
files when the recipe is built (:mod:`runner.recipe.build`, :mod:`.schemas`), and the
local engine's model before any item is transcribed (so before any task is asked).
"""

from __future__ import annotations

from runner.diagnostics import Diagnostic
from runner.recipe.document import Document, KeyPath
from runner.recipe.model import Recipe, Task
from runner.transcript.embedding import EmbeddingUnavailable, embedder, where
from runner.transcript.semantic import DEFAULT_EMBEDDING_MODEL


def check_resources(doc: Document, recipe: Recipe, *, load: bool = False) -> list[Diagnostic]:
    """Each embedding model the recipe's tasks need that cannot be had: found on disk
    (``load=False``, for ``validate``) or loaded (``load=True``, for ``run``)."""
    found: list[Diagnostic] = []
    for task in recipe.tasks.values():
        model = _embedding_model(task)
        if model is None:
            continue
        try:
            embedder(model) if load else where(model)
        except EmbeddingUnavailable as problem:
            found.append(doc.diagnostic(_model_key(task), _said(problem, load), key=False))
    return found


def _embedding_model(task: Task) -> str | None:
    if task.quotes is None or task.quotes.match != "semantic":
        return None
    return task.quotes.model or DEFAULT_EMBEDDING_MODEL


def _model_key(task: Task) -> KeyPath:
    """Where to point: the task's `model:`, or its `match:` when the default is used."""
    assert task.quotes is not None
    return ("tasks", task.name, "quotes", "model" if task.quotes.model else "match")


def _said(problem: EmbeddingUnavailable, load: bool) -> str:
    """The reason, and for ``run`` that nothing was paid for a reply it could not finish."""
    return f"{problem} (the run stopped before sending anything)" if load else str(problem)
