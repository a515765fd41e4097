"""``--llm-url``'s server: a recipe's LLM Gateway tasks as they run on one
OpenAI-compatible server instead, their fallbacks asked there by the runner, and the
model names the server is sent (``--llm-model``). ``run`` runs recipes this way;
``validate --llm-url`` checks them this way, sending nothing."""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Sequence
from dataclasses import replace
from types import MappingProxyType

from runner.errors import UsageError
from runner.recipe.model import Expectation, Provider, Recipe, Task, TaskApi

LLM_KEY_ENV = "TRANSCRIPT_RUNNER_LLM_KEY"
LLM_URL_PROVIDER = "llm-url"  # the provider name of --llm-url's server, in run.json
LLM_STRUCTURED_ENV = "TRANSCRIPT_RUNNER_LLM_STRUCTURED_OUTPUT"


def llm_server(url: str, model_maps: Sequence[str] = ()) -> Provider:
    """The server ``--llm-url`` names, with the model names ``--llm-model`` gives it
    (``MODEL``: every model; ``FROM=TO``: one, repeatable), its key from
    TRANSCRIPT_RUNNER_LLM_KEY and its structured form from the environment."""
    structured = os.environ.get(LLM_STRUCTURED_ENV, "json_schema")
    if structured not in ("json_schema", "json_object", "none"):
        raise UsageError(
            f"{LLM_STRUCTURED_ENV}={structured!r}: use json_schema, json_object or none"
        )
    try:
        parts = urllib.parse.urlsplit(url.strip())
        _ = parts.port  # read to check it: a port that is not a number raises
        host = parts.hostname
    except ValueError:  # an unclosed [ of an IPv6 address, a port that is not a number
        host = None
    if host is None or parts.scheme not in ("http", "https"):
        raise UsageError(
            f"--llm-url {url!r}: give the server's address with http:// or https:// and "
            "its host, up to /v1 (e.g. http://127.0.0.1:11434/v1)"
        )
    default, models = parse_model_maps(model_maps)
    return Provider(
        LLM_URL_PROVIDER,
        url.rstrip("/"),
        LLM_KEY_ENV,
        structured_output=structured,
        models=MappingProxyType(models),
        default_model=default,
    )


def parse_model_maps(values: Sequence[str]) -> tuple[str | None, dict[str, str]]:
    """``--llm-model`` values: one ``MODEL`` for every model, ``FROM=TO`` for one."""
    default: str | None = None
    models: dict[str, str] = {}
    for value in values:
        given, equals, to = value.partition("=")
        if not equals:
            if default is not None and default != value:
                raise UsageError(
                    f"--llm-model {value}: --llm-model {default} already names the model for "
                    "every task; give one, and FROM=TO for the others"
                )
            if not value.strip():
                raise UsageError("--llm-model: give a model name, or FROM=TO")
            default = value
        elif not given.strip() or not to.strip():
            raise UsageError(f"--llm-model {value}: write FROM=TO, e.g. claude-sonnet-4-6=qwen2.5")
        else:
            models[given] = to
    return default, models


def on_server(recipe: Recipe, server: Provider) -> Recipe:
    """``recipe`` with every task it would send to AssemblyAI's LLM Gateway sent to the
    OpenAI-compatible ``server`` instead, its Gateway fallbacks asked there by the
    runner, in order (the server has none of its own), unchanged otherwise. A task that
    needs what only the Gateway does is a usage error, naming its line."""
    tasks = {}
    for name, task in recipe.tasks.items():
        if task.api is TaskApi.GATEWAY and task.asks_model and task.provider is None:
            if task.gateway_only:
                used = ", ".join(f"`{key}`" for key in task.gateway_only)
                raise UsageError(
                    f"{recipe.display}:{task.line}: task {name!r} uses {used}, which only "
                    "AssemblyAI's LLM Gateway has; it cannot run on --llm-url"
                )
            fallbacks = tuple(
                f if f.provider is not None else replace(f, provider=server.name)
                for f in task.fallbacks
            )
            task = replace(task, provider=server, fallbacks=fallbacks)
        tasks[name] = replace(task, expectations=_judged_on(task, server))
    providers = {**recipe.providers, server.name: server}
    return replace(recipe, tasks=MappingProxyType(tasks), providers=MappingProxyType(providers))


def _judged_on(task: Task, server: Provider) -> tuple[Expectation, ...]:
    """The task's checks, each judge that would ask the Gateway asking ``server``."""
    return tuple(
        replace(e, judge=replace(e.judge, provider=server))
        if e.judge is not None and e.judge.provider is None
        else e
        for e in task.expectations
    )


def unmapped_models(recipe: Recipe, server: Provider) -> list[tuple[Task, str]]:
    """Each task on ``server`` (``on_server``'s recipe) and model name, its own, a
    fallback's or a judge's, that would reach the server as the recipe writes it for
    the Gateway."""
    found: list[tuple[Task, str]] = []
    for task in recipe.tasks.values():
        if task.provider is not server:
            continue
        models = [
            task.model,
            *(f.model for f in task.fallbacks if f.provider == server.name),
            *(e.judge.model for e in task.expectations if e.judge and e.judge.provider is server),
        ]
        found.extend((task, model) for model in dict.fromkeys(models) if not server.maps(model))
    return found


def unmapped_model_warning(model: str) -> str:
    """What to do about a Gateway model name the server may not know."""
    return (
        f"model {model!r} is sent to --llm-url's server under its LLM Gateway name; a "
        "server that checks names (Ollama, vLLM) refuses it: map it with --llm-model "
        f"{model}=NAME, or send every task one model with --llm-model NAME"
    )


def unmapped_model_warnings(recipes: Sequence[Recipe], server: Provider) -> list[str]:
    """:func:`unmapped_models` of every recipe, each said once, with the task's line."""
    said: dict[str, str] = {}
    for recipe in recipes:
        for task, model in unmapped_models(recipe, server):
            said.setdefault(model, f"{recipe.display}:{task.line}: {unmapped_model_warning(model)}")
    return list(said.values())
