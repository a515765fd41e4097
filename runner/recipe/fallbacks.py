"""The fallback rules: which of a task's fallbacks the Gateway tries on its side, and
which we ask ourselves, as tasks of their own, when the task's model fails."""

from __future__ import annotations

from dataclasses import replace

from runner.recipe.model import Fallback, Recipe, Task


def asked_here(task: Task, fallback: Fallback) -> bool:
    """Whether ``fallback`` is asked on our side: a provider is involved (the task's or
    the fallback's), which the Gateway cannot reach."""
    return task.provider is not None or fallback.provider is not None


def client_fallbacks(task: Task, recipe: Recipe) -> list[Task]:
    """The task as each of its fallbacks asked on our side: those on a provider (the
    Gateway cannot reach them), and all of a provider's task (the server has no
    fallbacks of its own). A Gateway task's Gateway fallbacks stay the Gateway's."""
    found = []
    for fallback in task.fallbacks:
        provider = recipe.providers.get(fallback.provider) if fallback.provider else None
        if provider is None and task.provider is None:
            continue  # the Gateway falls back on its side
        found.append(
            replace(
                task,
                model=fallback.model,
                provider=provider,
                fallbacks=(),
                fallback_config=None,
                max_tokens=fallback.max_tokens or task.max_tokens,
                temperature=(
                    task.temperature if fallback.temperature is None else fallback.temperature
                ),
            )
        )
    return found
