"""The fallback rules: which of a task's fallbacks the Gateway tries on its side, and
which we ask ourselves, as tasks of their own, when the task's model fails."""

from __future__ import annotations

from dataclasses import replace

from runner.recipe.model import Recipe, Task


def client_fallbacks(task: Task, recipe: Recipe) -> list[Task]:
    """The task as each of its fallbacks asked on our side: those on a provider (the
    Gateway cannot reach them), and all of a provider's task (the server has no
    fallbacks of its own). A Gateway task's Gateway fallbacks stay the Gateway's. Each
    is the fallback's own task: every field it overrides (prompt, schema, tools,
    post-processing...), the task's for the rest."""
    found = []
    for fallback in task.fallbacks:
        provider = recipe.providers.get(fallback.provider) if fallback.provider else None
        if provider is None and task.provider is None:
            continue  # the Gateway falls back on its side
        asked = fallback.task if fallback.task is not None else task
        found.append(
            replace(
                asked,
                model=fallback.model,
                provider=provider,
                fallbacks=(),
                fallback_config=None,
            )
        )
    return found


def answering_task(task: Task, model: str | None) -> Task:
    """The task whose settings finish a reply: the Gateway's fallback that answered it
    (its own schema, post-processing and quotes), or the task itself. The Gateway names
    the model that answered; a fallback is found by that name."""
    if model is None or model == task.model or task.provider is not None:
        return task
    for fallback in task.fallbacks:
        if fallback.provider is None and fallback.task is not None and fallback.model == model:
            return fallback.task
    return task
