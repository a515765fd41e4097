"""The providers a recipe names (OpenAI-compatible servers): which exist, what a task on
one cannot use (what only AssemblyAI's Gateway does), which fallbacks it takes, and
which variables may hold their keys."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import Any

from runner.api.secrets import key_variable_problem
from runner.diagnostics import Diagnostic, suggest
from runner.recipe.document import Document, KeyPath
from runner.recipe.model import GATEWAY_PROVIDER, Recipe
from runner.recipe.transcriptions import blocks

# What only AssemblyAI's LLM Gateway does, and why another server cannot.
_GATEWAY_FEATURES = {
    "inject_transcript": "the Gateway inserts an AssemblyAI transcript by its id",
    "gateway_post_processing": "the Gateway repairs JSON on its side; use post_process",
    "fallback_config": "the Gateway tries other models on its side",
    "send_as": "the `prompt` string is the Gateway's; OpenAI's API takes messages",
}


def check_key_variables(
    doc: Document, environ: Mapping[str, str] | None = None
) -> list[Diagnostic]:
    """``api_key_env`` names only a variable meant for it (the rule and its reasons:
    :mod:`runner.api.secrets`): a pull request can edit a recipe, and CI runs it beside
    the repository's secrets."""
    env = os.environ if environ is None else environ
    places: list[KeyPath] = [
        ("providers", name, "api_key_env") for name in (doc.data.get("providers") or {})
    ]
    places += [(*path, "api_key_env") for path, _ in blocks(doc.data)]
    found = []
    for path in places:
        value = _at(doc.data, path)
        problem = key_variable_problem(value, env) if isinstance(value, str) else None
        if problem is not None:
            found.append(doc.diagnostic(path, problem, key=False))
    return found


def _at(data: Any, path: KeyPath) -> Any:
    for part in path:
        if not isinstance(data, Mapping) or part not in data:
            return None
        data = data[part]
    return data


def _unknown_providers(doc: Document, recipe: Recipe) -> Iterator[Diagnostic]:
    """``model: {provider: NAME, ...}`` names a provider the recipe has (or the
    Gateway's own name)."""
    known = [*recipe.providers, GATEWAY_PROVIDER]
    for task in recipe.tasks.values():
        spec = doc.data["tasks"][task.name]
        here: KeyPath = ("tasks", task.name) if "model" in spec else ("defaults",)
        named = [((*here, "model", "provider"), task.model_provider)]
        where: KeyPath = (
            ("tasks", task.name, "fallbacks") if "fallbacks" in spec else ("defaults", "fallbacks")
        )
        named += [
            ((*where, index, "model", "provider"), fallback.model_provider)
            for index, fallback in enumerate(task.fallbacks)
        ]
        for path, name in named:
            if name is not None and name not in known:
                yield doc.diagnostic(
                    path,
                    f"unknown provider {name!r}{suggest(name, known)} (the providers here "
                    f"are {', '.join(map(repr, known))}; add one under `providers:`)",
                    key=False,
                )


def check_providers(doc: Document, recipe: Recipe) -> list[Diagnostic]:
    """A task on another provider cannot use what only AssemblyAI's Gateway does, nor a
    fallback asked on one (any other field a fallback may override, on any server)."""
    found: list[Diagnostic] = list(_unknown_providers(doc, recipe))
    for task in recipe.tasks.values():
        spec_fallbacks = doc.data["tasks"][task.name].get("fallbacks")
        where: KeyPath = (
            ("tasks", task.name, "fallbacks")
            if spec_fallbacks is not None
            else ("defaults", "fallbacks")
        )
        for index, fallback in enumerate(task.fallbacks):
            asked = fallback.task
            if fallback.provider is None or asked is None:
                continue
            used = asked.gateway_only
            if used:
                found.append(
                    doc.diagnostic(
                        (*where, index),
                        f"this fallback runs on provider {fallback.provider!r}, and asks with "
                        f"{', '.join(map(repr, used))}, which only AssemblyAI's LLM Gateway "
                        "does; give the fallback a plain prompt, or a Gateway model",
                    )
                )
        if task.provider is None:
            continue
        spec = doc.data["tasks"][task.name]
        defaults = doc.data.get("defaults") or {}
        for key, why in _GATEWAY_FEATURES.items():
            here: KeyPath | None = (
                ("tasks", task.name, key)
                if key in spec
                else (("defaults", key) if key in defaults and key.startswith("fallback") else None)
            )
            if here is not None:
                found.append(
                    doc.diagnostic(
                        here,
                        f"{key!r} only works on AssemblyAI's LLM Gateway ({why}), and task "
                        f"{task.name!r} runs on provider {task.provider.name!r}; remove it "
                        "there",
                    )
                )
    return found
