"""How a plan is written out: the forecast's lines, ``plan``'s text (a summary, a
line per item when asked), its costs by a price table, and its JSON."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from runner.execute.forecast import Forecast, duration_text
from runner.execute.planning import GROUP, Plan
from runner.recipe.prices import PriceTable, format_usd


def forecast_text(forecast: Forecast) -> list[str]:
    """The forecast in a few lines: how long, what binds, whether it fits."""
    if forecast.bottleneck is None and not forecast.stages:
        return ["Forecast: nothing to send."]
    if forecast.bottleneck is None:  # requests, but none to a service with a known rate
        lines = ["Forecast: no time forecast (no published rate for where these go)."]
    else:
        lines = [
            f"Forecast: about {duration_text(forecast.seconds)}, bound by "
            f"{forecast.bottleneck} (an estimate; see docs/cli.md#plan)."
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
        if item.transcription == GROUP:  # a group task's requests (`over:`)
            lines.append(
                f"  {item.recipe}/{item.item}: a group of items; {item.calls} LLM call(s) to "
                f"send, {item.cached} cached"
            )
            continue
        audio = f"{item.audio_seconds / 60:.1f} min" if item.audio_seconds else "length unknown"
        compared = "".join(f"; {c.engine}: {c.transcription}" for c in item.compared)
        lines.append(
            f"  {item.recipe}/{item.item}: transcript {item.transcription} ({audio}){compared}; "
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
    submissions = [
        (item, model)
        for item in plan.items
        for how, model in [
            (item.transcription, item.speech_model),
            *((c.transcription, c.speech_model) for c in item.compared),
        ]
        if how == "submit" and item.audio_seconds is not None
    ]
    for item, model in submissions:
        cost = tables.get(item.recipe, PriceTable()).transcription(model, item.audio_seconds)
        if cost is None:
            unpriced.add(model or "the speech model")
        else:
            speech += cost
    llm = 0.0
    for item in plan.items:
        table = tables.get(item.recipe, PriceTable())
        calls: list[tuple[str | None, str, int]] = [
            (None, m, n) for m, n in item.input_tokens_by_model.items()
        ]
        calls += [(p, m, n) for (p, m), n in item.input_tokens_by_server.items()]
        for provider, model, tokens in calls:
            cost = table.call(model, provider, tokens, 0)
            if cost is None:
                unpriced.add(model if provider is None else f"{provider}/{model}")
            else:
                llm += cost
    speech_models = {model or "the speech model" for _, model in submissions}
    speech_models |= {i.speech_model or "the speech model" for i in plan.items}
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
                "compared": [
                    {"engine": c.engine, "transcription": c.transcription} for c in i.compared
                ],
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
