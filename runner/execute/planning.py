"""What a run would do, without doing it: ``transcript-runner plan`` and the budget guards.

The plan uses the same request building and cache keys as ``run``, so "cached"
here means the run will not send that request. A request that depends on a
transcript or a reply not yet known is counted as "to send"; its tokens are then
unknown. Prices come only from a table the user passes (``--prices``): prices
change, and a built-in list would be presented as truth when it is not.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from runner.errors import ItemError, PostProcessFailed, StoreError, TemplateProblem
from runner.execute.ask import completion_from_json, reply_text
from runner.execute.finish import process_reply, result_view
from runner.execute.forecast import UNKNOWN_AUDIO, Demand, Forecast, duration_text
from runner.execute.segments import kept_view
from runner.items import Item, Shard, expand
from runner.prompt.payloads import build_payload, task_context
from runner.prompt.templating import TemplateEngine
from runner.prompt.views import TaskResultView, TranscriptView
from runner.recipe.model import InputKind, Recipe, Task, TaskApi
from runner.recipe.prices import PriceTable, format_usd
from runner.store import Store, audio_identity, request_key, transcription_key
from runner.transcript.model import Transcript, load_saved
from runner.transcript.text import estimate_tokens

T = TypeVar("T")


@dataclass
class ItemPlan:
    recipe: str
    item: str
    transcription: str  # "local", "reuse", "submit", "fetch"
    audio_seconds: float | None
    calls: int = 0
    cached: int = 0
    input_tokens: int = 0
    unknown_tokens: int = 0  # calls whose prompt is not known before the run
    models: dict[str, int] = field(default_factory=dict)
    input_tokens_by_model: dict[str, int] = field(default_factory=dict)  # known prompts
    speech_model: str | None = None  # the first speech model a submission asks for
    transcript_known: bool = False  # the transcript is known without transcribing
    # Each task's reply-cache key, as the run will send it; None when it depends on a
    # transcript or reply not known yet (exports have none).
    request_keys: dict[str, str | None] = field(default_factory=dict)
    # Requests to send, by where they go: a Gateway model's name, or "lemur MODEL" and
    # "server NAME MODEL" (no published rate); cached replies are not counted.
    to_send: dict[str, int] = field(default_factory=dict)


@dataclass
class Plan:
    items: list[ItemPlan]

    @property
    def submissions(self) -> int:
        return sum(1 for i in self.items if i.transcription == "submit")

    @property
    def reused(self) -> int:
        return sum(1 for i in self.items if i.transcription == "reuse")

    @property
    def calls(self) -> int:
        return sum(i.calls for i in self.items)

    @property
    def cached(self) -> int:
        return sum(i.cached for i in self.items)

    @property
    def audio_hours(self) -> float:
        return sum(i.audio_seconds or 0 for i in self.items) / 3600

    @property
    def unknown_audio(self) -> int:
        return sum(1 for i in self.items if i.audio_seconds is None)

    @property
    def unknown_submissions(self) -> int:
        return sum(1 for i in self.items if i.transcription == "submit" and i.audio_seconds is None)

    def demand(self) -> Demand:
        """What the run will send, for its forecast."""
        gateway: dict[str, int] = {}
        other: dict[str, int] = {}
        for item in self.items:
            for where, n in item.to_send.items():
                target = other if " " in where else gateway
                target[where] = target.get(where, 0) + n
        submitted = [i.audio_seconds for i in self.items if i.transcription == "submit"]
        lengths = [UNKNOWN_AUDIO if s is None else s for s in submitted]
        return Demand(gateway, other, len(submitted), sum(lengths), max(lengths, default=0.0))

    @property
    def submitted_audio_hours(self) -> float:
        return sum(i.audio_seconds or 0 for i in self.items if i.transcription == "submit") / 3600


def make_plan(
    recipes: Sequence[Recipe],
    store: Store | None,
    shard: Shard | None,
    *,
    use_cache: bool = True,
    only_items: Mapping[str, frozenset[str]] | None = None,
) -> Plan:
    """What a run would do; ``use_cache=False`` counts cached replies as calls to send;
    ``only_items``: only these items of each recipe named (by recipe name)."""
    items: list[ItemPlan] = []
    for recipe in recipes:
        engine = TemplateEngine(recipe.base_dir)
        expanded = expand(recipe, engine)
        selected = shard.select(recipe, expanded) if shard is not None else expanded
        only = (only_items or {}).get(recipe.name)
        if only is not None:
            selected = [item for item in selected if item.name in only]
        for item in selected:
            try:
                items.append(_plan_item(recipe, engine, item, store, use_cache))
            except (ItemError, StoreError) as exc:  # an unreadable file, a damaged entry
                raise ItemError(f"{recipe.display}: item {item.name!r}: {exc.message}") from None
    return Plan(items)


def _plan_item(
    recipe: Recipe, engine: TemplateEngine, item: Item, store: Store | None, use_cache: bool
) -> ItemPlan:
    transcript, how = _known_transcript(recipe, item, store)
    seconds = float(transcript.audio_duration) if transcript and transcript.audio_duration else None
    plan = ItemPlan(recipe.name, item.name, how, seconds, transcript_known=transcript is not None)
    plan.speech_model = next(iter(recipe.transcription_request().get("speech_models", [])), None)
    if seconds is None and item.kind is InputKind.FILE:
        seconds = audio_seconds(Path(item.source))
        plan.audio_seconds = seconds
    view = kept_view(store, transcript) if transcript is not None else None
    results: dict[str, TaskResultView | None] = {}
    graph = recipe.graph
    for name in graph.order():
        task = recipe.tasks[name]
        if not task.asks_model:  # an export: no call, no tokens, written every run
            results[task.name] = None
            continue
        model = task.requested_model
        plan.models[model] = plan.models.get(model, 0) + 1
        plan.request_keys[name] = None
        where = _destination(task)
        if view is None or transcript is None or graph.failed_needs(name, results):
            plan.to_send[where] = plan.to_send.get(where, 0) + 1
            plan.calls += 1
            plan.unknown_tokens += 1
            results[task.name] = None
            continue
        context = task_context(
            recipe,
            item.view(recipe),
            task,
            view,
            {n: r for n in task.needs if (r := results[n]) is not None},
        )
        try:
            payload = build_payload(
                engine, task, context, transcript_id=transcript.id, transcript_text=transcript.text
            )
        except TemplateProblem:
            plan.to_send[where] = plan.to_send.get(where, 0) + 1
            plan.calls += 1
            plan.unknown_tokens += 1
            results[task.name] = None
            continue
        key = request_key(task, payload)
        plan.request_keys[name] = key
        cached = store.reply_get(key) if store is not None and use_cache else None
        if cached is not None:
            plan.cached += 1
            results[task.name] = _cached_result(
                task, reply_text(completion_from_json(cached.reply)), view
            )
        else:
            plan.to_send[where] = plan.to_send.get(where, 0) + 1
            plan.calls += 1
            tokens = sum(estimate_tokens(str(m.get("content", ""))) for m in payload.messages)
            plan.input_tokens += tokens
            by_model = plan.input_tokens_by_model
            by_model[model] = by_model.get(model, 0) + tokens
            results[task.name] = None
    return plan


def _destination(task: Task) -> str:
    """Where a task's request goes: a Gateway model's name (paced by its limit), else
    "lemur MODEL" or "server NAME MODEL"."""
    if task.provider is not None:
        return f"server {task.provider.name} {task.requested_model}"
    if task.api is TaskApi.LEMUR:
        return f"lemur {task.requested_model}"
    return task.requested_model


def _cached_result(task: Task, reply: str, view: TranscriptView) -> TaskResultView | None:
    """A cached reply as the tasks that need it will see it: processed as the run will."""
    try:
        return result_view(task, process_reply(task, reply, view))
    except PostProcessFailed:
        return None


def audio_seconds(path: Path) -> float | None:
    """The length of a local WAV file from its header; None for other formats."""
    import wave

    try:
        with wave.open(str(path), "rb") as audio:
            return audio.getnframes() / float(audio.getframerate())
    except (wave.Error, OSError, EOFError, ZeroDivisionError):
        return None


def _known_transcript(
    recipe: Recipe, item: Item, store: Store | None
) -> tuple[Transcript | None, str]:
    """The item's transcript if it is known before the run, and how the run gets it."""
    if item.kind is InputKind.TRANSCRIPT_FILE:
        return load_saved(Path(item.source)), "local"
    if item.kind is InputKind.TRANSCRIPT_ID:
        data = store.transcript_get(item.source, "transcript") if store else None
        return (_stored(_checked_transcript, data, item.source) if data else None), "fetch"
    entry = store.ledger_get(transcription_key(recipe, audio_identity(item))) if store else None
    if entry is None:
        # Transcribed on this machine (or a speech server of its own): not AssemblyAI's.
        return None, "transcribe here" if recipe.local_engine is not None else "submit"
    data = store.transcript_get(entry.transcript_id, "transcript") if store else None
    transcript = _stored(_checked_transcript, data, entry.transcript_id) if data else None
    return transcript, "reuse"


def _checked_transcript(data: Mapping[str, Any]) -> Transcript:
    """A stored transcript with its words parsed now, so damage is found here."""
    transcript = Transcript.from_api(data)
    transcript.parse_segments()
    return transcript


def _stored(
    parser: Callable[[Mapping[str, Any]], T], data: Mapping[str, Any], tid: str | None
) -> T:
    """Stored API data through ``parser``; damaged data is the store's error, named."""
    try:
        return parser(data)
    except ValueError as exc:
        raise StoreError(
            f"the stored transcript {tid} is damaged ({exc}); remove it with "
            "`transcript-runner cache clear` or use another --state-dir"
        ) from None


def forecast_text(forecast: Forecast) -> list[str]:
    """The forecast in a few lines: how long, what binds, whether it fits."""
    if forecast.bottleneck is None:
        return ["Forecast: nothing to send."]
    lines = [
        f"Forecast: about {duration_text(forecast.seconds)}, bound by {forecast.bottleneck} "
        "(an estimate; see docs/cli.md#plan)."
    ]
    for stage in forecast.stages:
        rate = (
            f"at {stage.per_minute:g}/min ({stage.source})"
            if stage.per_minute is not None
            else f"({stage.source})"
        )
        time = duration_text(stage.seconds) if stage.seconds is not None else "not forecast"
        lines.append(f"  {stage.name}: {stage.requests} request(s) {rate}: {time}")
    if forecast.deadline is not None:
        verdict = "fits" if forecast.fits else "does NOT fit"
        lines.append(f"Deadline {duration_text(forecast.deadline)}: the run {verdict}.")
        lines += [f"  - {advice}" for advice in forecast.advice]
    return lines


def plan_text(
    plan: Plan,
    prices: Mapping[str, PriceTable] | None,
    forecast: Forecast | None = None,
    *,
    per_item: bool = False,
) -> str:
    """The summary first (and the forecast); a line per item only when asked for."""
    lines = forecast_text(forecast) if forecast is not None else []
    lines.append(f"{len(plan.items)} item(s)" + (":" if per_item else "."))
    for item in plan.items if per_item else ():
        audio = f"{item.audio_seconds / 60:.1f} min" if item.audio_seconds else "length unknown"
        lines.append(
            f"  {item.recipe}/{item.item}: transcript {item.transcription} ({audio}); "
            f"{item.calls} LLM call(s) to send, {item.cached} cached"
        )
    unknown = f" (+{plan.unknown_audio} item(s) of unknown length)" if plan.unknown_audio else ""
    lines += [
        f"Transcriptions: {plan.submissions} to submit, {plan.reused} already in the ledger.",
        f"Audio: {plan.audio_hours:.2f} h known{unknown}.",
        f"LLM calls: {plan.calls} to send, {plan.cached} cached; about "
        f"{sum(i.input_tokens for i in plan.items)} input tokens for the calls whose prompt "
        f"is known ({sum(i.unknown_tokens for i in plan.items)} depend on a transcript or "
        "reply not known yet).",
    ]
    if prices is None:
        lines.append(
            "Costs: add `prices:` to the recipe or pass --prices FILE (see "
            "docs/prices.example.yaml) to estimate them."
        )
    else:
        lines.append(_costs_text(plan_costs(plan, prices)))
    return "\n".join(lines)


@dataclass(frozen=True)
class PlanCosts:
    """Estimated costs of the known parts of a plan: None where a price is missing."""

    transcription_usd: float | None  # submissions of known length
    llm_input_usd: float | None  # the input tokens of prompts known before the run
    unpriced_models: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "transcription_usd": _rounded(self.transcription_usd),
            "llm_input_usd": _rounded(self.llm_input_usd),
            "unpriced_models": list(self.unpriced_models),
        }


def plan_costs(plan: Plan, tables: Mapping[str, PriceTable]) -> PlanCosts:
    """Transcriptions to submit priced as their first speech model, and the known
    prompts' input tokens by their model. Replies, and prompts not known before the
    run, are not counted."""
    unpriced: set[str] = set()
    speech = 0.0
    for item in plan.items:
        if item.transcription != "submit" or item.audio_seconds is None:
            continue
        cost = tables.get(item.recipe, PriceTable()).transcription(
            item.speech_model, item.audio_seconds
        )
        if cost is None:
            unpriced.add(item.speech_model or "the speech model")
        else:
            speech += cost
    llm = 0.0
    for item in plan.items:
        for model, tokens in item.input_tokens_by_model.items():
            cost = tables.get(item.recipe, PriceTable()).llm(model, tokens, 0)
            if cost is None:
                unpriced.add(model)
            else:
                llm += cost
    speech_models = {i.speech_model or "the speech model" for i in plan.items}
    return PlanCosts(
        None if unpriced & speech_models else speech,
        None if unpriced - speech_models else llm,
        tuple(sorted(unpriced)),
    )


def _costs_text(costs: PlanCosts) -> str:
    def usd(amount: float | None) -> str:
        return "unknown" if amount is None else format_usd(amount)

    text = (
        f"Costs (from your price table, known parts only): transcription "
        f"{usd(costs.transcription_usd)}, LLM input {usd(costs.llm_input_usd)}; replies and "
        "prompts not known yet are not counted."
    )
    if costs.unpriced_models:
        text += f" No price for: {', '.join(costs.unpriced_models)}."
    return text


def _rounded(amount: float | None) -> float | None:
    return None if amount is None else round(amount, 6)


def plan_json(
    plan: Plan,
    prices: Mapping[str, PriceTable] | None = None,
    forecast: Forecast | None = None,
) -> dict[str, Any]:
    costs = plan_costs(plan, prices).as_json() if prices is not None else None
    return {
        "forecast": forecast.as_json() if forecast is not None else None,
        "items": [
            {
                "recipe": i.recipe,
                "item": i.item,
                "transcription": i.transcription,
                "audio_seconds": i.audio_seconds,
                "llm_calls": i.calls,
                "llm_cached": i.cached,
                "input_tokens": i.input_tokens,
                "calls_with_unknown_prompt": i.unknown_tokens,
            }
            for i in plan.items
        ],
        "transcriptions_to_submit": plan.submissions,
        "transcriptions_in_ledger": plan.reused,
        "llm_calls": plan.calls,
        "llm_cached": plan.cached,
        "audio_hours_known": round(plan.audio_hours, 4),
        "items_of_unknown_length": plan.unknown_audio,
        "costs": costs,
    }
