"""Model names against the LLM Gateway's catalog (``GET {gateway}/models``), and what a
region offers.

Models come and go within minutes, so the runner never ships a list: ``validate
--online`` reads the Gateway's public catalog (no key needed), keeps it in the state
store for a day, and says, at the recipe line, which model it does not list (with
"did you mean") and which is not offered in the region. ``plan`` uses a kept catalog
without fetching. Without a catalog, ``--region eu`` still warns about what AssemblyAI
documents: no LeMUR in the EU, and OpenAI models in the US only.

The catalog is read with the standard library: validate never loads the HTTP stack
the runs use.
"""

from __future__ import annotations

import json
import math
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.api.hosts import REGIONS
from runner.diagnostics import Diagnostic, Severity, suggest
from runner.errors import UsageError
from runner.recipe.document import Document, KeyPath
from runner.recipe.model import DEFAULT_MODEL, GATEWAY_PROVIDER, Recipe, Task, TaskApi
from runner.recipe.prices import LlmPrice, PriceTable
from runner.store import Store

CATALOG_MAX_AGE = 24 * 3600  # seconds a kept catalog is trusted
FETCH_TIMEOUT = 15.0


@dataclass(frozen=True)
class Catalog:
    """The Gateway's models, each with the regions that offer it (empty: not said),
    and the prices of those whose entry gives them."""

    url: str
    regions: Mapping[str, tuple[str, ...]]
    fetched: float
    # Each model's context window (`context_length`), where the list says it.
    windows: Mapping[str, int] = field(default_factory=dict)
    prices: Mapping[str, LlmPrice] = field(default_factory=dict)

    @classmethod
    def parse(cls, url: str, body: str, fetched: float) -> Catalog:
        data = json.loads(body)
        entries = data.get("data") if isinstance(data, Mapping) else None
        if not isinstance(entries, list):
            raise ValueError("the model catalog has no 'data' list")
        listed = [e for e in entries if isinstance(e, Mapping) and isinstance(e.get("id"), str)]
        regions = {
            str(entry["id"]): tuple(str(r) for r in entry.get("available_regions") or ())
            for entry in listed
        }
        windows = {
            str(entry["id"]): entry["context_length"]
            for entry in entries
            if isinstance(entry, Mapping)
            and isinstance(entry.get("id"), str)
            and isinstance(entry.get("context_length"), int)
            and not isinstance(entry.get("context_length"), bool)
            and entry["context_length"] > 0
        }
        prices = {
            str(entry["id"]): price
            for entry in listed
            if (price := listed_price(entry.get("pricing"))) is not None
        }
        return cls(url, regions, fetched, windows, prices)

    def price_table(self) -> PriceTable:
        """The prices the list gives, as a price table (LLM models only)."""
        return PriceTable(llm_per_million_tokens=dict(self.prices))


def listed_price(pricing: Any) -> LlmPrice | None:
    """A model entry's ``pricing`` as dollars per million tokens, when it gives one:
    the catalog's fields are those of OpenRouter's list (``prompt`` and ``completion``,
    dollars per token, as numbers or strings). Anything else is no price: the runner
    never guesses one."""
    if not isinstance(pricing, Mapping):
        return None
    try:
        prompt, completion = float(pricing["prompt"]), float(pricing["completion"])
    except (KeyError, TypeError, ValueError):
        return None
    if not all(math.isfinite(v) and v >= 0 for v in (prompt, completion)):
        return None
    return LlmPrice(round(prompt * 1_000_000, 6), round(completion * 1_000_000, 6))


def gateway_url(region: str | None, environ: Mapping[str, str]) -> str:
    """The Gateway the runs would use: ASSEMBLYAI_LLM_GATEWAY_URL, else the region's."""
    given = (environ.get("ASSEMBLYAI_LLM_GATEWAY_URL") or "").strip().rstrip("/")
    return given or REGIONS[region or "us"][1]


def fetch_catalog(url: str, store: Store | None, *, max_age: float = CATALOG_MAX_AGE) -> Catalog:
    """The catalog of the Gateway at ``url``: kept in ``store`` when fresh, else fetched
    (and kept). A Gateway that cannot be reached is a usage error, saying so."""
    models_url = f"{url}/models"
    kept = store.catalog_get(models_url) if store is not None else None
    if kept is not None and time.time() - kept[1] < max_age:
        return Catalog.parse(models_url, kept[0], kept[1])
    try:
        with urllib.request.urlopen(models_url, timeout=FETCH_TIMEOUT) as response:
            body = response.read().decode("utf-8")
        catalog = Catalog.parse(models_url, body, time.time())
    except (urllib.error.URLError, OSError, ValueError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise UsageError(
            f"--online: cannot read the LLM Gateway's model list at {models_url} ({reason}); "
            "check the network, or leave out --online"
        ) from None
    if store is not None:
        store.catalog_put(models_url, body)
    return catalog


def kept_catalog(url: str, store: Store | None) -> Catalog | None:
    """A catalog kept by an earlier ``validate --online``, however old; never fetched."""
    kept = store.catalog_get(f"{url}/models") if store is not None else None
    if kept is None:
        return None
    try:
        return Catalog.parse(f"{url}/models", kept[0], kept[1])
    except ValueError:
        return None


def kept_windows(region: str | None, state_dir: Path) -> Mapping[str, int]:
    """The context windows of the Gateway's models from a catalog ``validate --online``
    kept in ``state_dir`` (none kept: empty); ``run`` and ``plan`` measure prompts
    with them, before the documented table."""
    store = Store.existing(state_dir)
    try:
        catalog = kept_catalog(gateway_url(region, os.environ), store)
    finally:
        if store is not None:
            store.close()
    return catalog.windows if catalog is not None else {}


def check_models(
    doc: Document, recipe: Recipe, catalog: Catalog | None, region: str | None
) -> list[Diagnostic]:
    """Each model a Gateway task asks for (its own, or a fallback's) that the catalog
    does not list or the region does not offer; LeMUR tasks in the EU."""
    found = check_region(doc, recipe, region)
    for task in recipe.tasks.values():
        models = list(_judges_of(doc, task))
        if task.api is TaskApi.GATEWAY and task.asks_model and task.provider is None:
            models = [*_models_of(doc, task), *models]
        for path, model in models:
            problem = _model_problem(model, catalog, region)
            if problem is not None:
                found.append(
                    doc.diagnostic(path, problem, key=False, severity=problem_severity(catalog))
                )
    return found


def check_region(
    doc: Document, recipe: Recipe, region: str | None, because: str = ""
) -> list[Diagnostic]:
    """What ``region`` does not offer at all, as errors: LeMUR tasks in the EU. ``validate
    --region`` and ``run`` (before anything is sent) both ask this; ``because`` says what
    chose the region when the command line did not (an environment variable)."""
    if region != "eu":
        return []
    why = f" ({because})" if because else ""
    return [
        doc.diagnostic(
            ("tasks", task.name, "api"),
            f"LeMUR is not offered in AssemblyAI's EU region{why}; move the task to the "
            "LLM Gateway (`transcript-runner migrate`) or run in the US region",
            severity=Severity.ERROR,
        )
        for task in recipe.tasks.values()
        if task.api is TaskApi.LEMUR
    ]


def problem_severity(catalog: Catalog | None) -> Severity:
    """Errors against the catalog; warnings from what the docs say, without one."""
    return Severity.ERROR if catalog is not None else Severity.WARNING


def _models_of(doc: Document, task: Task) -> Iterator[tuple[KeyPath, str]]:
    """Each model of ``task`` with where it is written (the task, defaults, or the task
    itself when the default model is used)."""
    spec: Mapping[str, Any] = doc.data["tasks"][task.name]
    defaults: Mapping[str, Any] = doc.data.get("defaults") or {}
    here: KeyPath = ("tasks", task.name)
    if "model" in spec:
        yield (*here, "model"), task.model
    elif "model" in defaults:
        yield ("defaults", "model"), task.model
    else:
        yield here, task.model or DEFAULT_MODEL
    where: KeyPath = (*here, "fallbacks") if "fallbacks" in spec else ("defaults", "fallbacks")
    for index, fallback in enumerate(task.fallbacks):
        if fallback.provider is None:  # (one on a provider is not the Gateway's to list)
            yield (*where, index, "model"), fallback.model


def _judges_of(doc: Document, task: Task) -> Iterator[tuple[KeyPath, str]]:
    """Each Gateway model a judge of ``task`` asks, where it is written."""
    entries = doc.data["tasks"][task.name].get("expect") or []
    for index, expectation in enumerate(task.expectations):
        judge = expectation.judge
        if judge is None or not judge.model or judge.provider is not None:
            continue
        if judge.model_provider not in (None, GATEWAY_PROVIDER):
            continue  # a provider that does not exist: the judges' check says so
        own = "model" in entries[index]
        yield (
            (
                ("tasks", task.name, "expect", index, "model")
                if own
                else ("defaults", "judge_model")
            ),
            judge.model,
        )


def _model_problem(model: str, catalog: Catalog | None, region: str | None) -> str | None:
    if catalog is None:
        if region == "eu" and model.startswith("gpt-"):
            return (
                f"model {model!r} is an OpenAI model, which AssemblyAI offers in the US "
                "region only; choose a Claude or Gemini model for the EU"
            )
        return None
    if model not in catalog.regions:
        hint = suggest(model, list(catalog.regions)) or (
            f"; it lists {len(catalog.regions)} models"
        )
        return f"model {model!r} is not in the LLM Gateway's model list{hint}"
    offered = catalog.regions[model]
    if region and offered and region not in offered:
        return (
            f"model {model!r} is offered in {', '.join(offered)} only, not {region}; choose "
            f"a model offered in {region}"
        )
    return None
