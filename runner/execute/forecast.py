"""How long a run will take, and what binds it: ``plan``'s forecast.

A large run is bound by the provider's limits, not by our code: AssemblyAI's LLM
Gateway allows each model a number of requests a minute (30 on paid accounts,
documented; notes §8), so 10,000 recordings × 3 tasks on one model take about 17 hours.
The forecast counts the requests each stage will send and divides by the rate that
applies to it:

* each Gateway model: its requests to send (cached replies are not sent) at the
  recipe's ``limits: {llm_per_minute: ...}``, else what the last run in this state
  folder learned from the headers, else the documented 30 a minute;
* transcription: the jobs to submit, 200 at once (a paid account's concurrency; the
  rest queue), each taking ``TURNAROUND`` of its audio (at least ``MIN_TURNAROUND``);
* LeMUR and OpenAI-compatible servers have no published rate: their requests are
  counted, but they are not forecast (``seconds`` None) and never named as binding.

The stages overlap (a transcript's tasks run as soon as it is there), so the run takes
about as long as its slowest stage, plus the first transcript before any task, plus
``START_SECONDS`` to start and finish (the interpreter and its imports, the recipes
and items read, the first answer waited for; the report written). The
forecast is an estimate, and says so; ``benchmarks/bench_limits.py`` measures it
against a run.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from runner.recipe.model import Recipe, TaskApi

DOCUMENTED_PER_MINUTE: Final = 30  # LLM Gateway, paid accounts, per model (notes §8)
JOBS_AT_ONCE: Final = 200  # a paid account's transcription concurrency (notes §6)
TURNAROUND: Final = 0.3  # a job's time as a share of its audio: an estimate
MIN_TURNAROUND: Final = 30.0  # seconds a job takes however short its audio
UNKNOWN_AUDIO: Final = 1800.0  # seconds assumed for audio of unknown length
# Starting and finishing a run: about a second of imports on a quiet machine, the
# items read, one answer alone before the others go, the report written.
START_SECONDS: Final = 3.0
PACED: Final = 0.985  # the share of a rate the run paces at (runner.api.buckets.HEADROOM)


@dataclass(frozen=True)
class Stage:
    """One kind of request of the run: how many, at what rate, for how long."""

    name: str  # "llm claude-sonnet-4-6", "transcription", "lemur …", "server …"
    requests: int
    per_minute: float | None  # None: no known rate
    source: str  # where the rate comes from, in words
    seconds: float | None  # None: not forecast

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "requests": self.requests,
            "per_minute": None if self.per_minute is None else round(self.per_minute, 3),
            "limit_source": self.source,
            "seconds": None if self.seconds is None else round(self.seconds, 1),
        }


@dataclass(frozen=True)
class Forecast:
    seconds: float
    bottleneck: str | None  # the stage that binds; None when nothing is to be sent
    stages: tuple[Stage, ...]
    deadline: float | None  # seconds the run may take (--deadline, timeouts.run)
    advice: tuple[str, ...]  # what to do when it does not fit

    @property
    def fits(self) -> bool | None:
        return None if self.deadline is None else self.seconds <= self.deadline

    def as_json(self) -> dict[str, Any]:
        return {
            "seconds": round(self.seconds, 1),
            "bottleneck": self.bottleneck,
            "deadline_seconds": self.deadline,
            "fits": self.fits,
            "stages": [stage.as_json() for stage in self.stages],
            "advice": list(self.advice),
        }


@dataclass(frozen=True)
class Demand:
    """What a plan will send: requests per (service, model) and the jobs to submit."""

    gateway: Mapping[str, int]  # model → requests to send
    other: Mapping[str, int]  # "lemur MODEL" / "server NAME MODEL" → requests
    submissions: int
    submitted_audio_seconds: float  # known lengths, UNKNOWN_AUDIO for the others
    longest_audio_seconds: float


def forecast(
    demand: Demand,
    *,
    recipe_rates: Mapping[str | None, int],
    learned: Mapping[str, tuple[int, float]],
    deadline: float | None = None,
) -> Forecast:
    """The run's forecast: each stage's time at its rate; the slowest binds."""
    stages = [
        _gateway_stage(model, n, recipe_rates, learned)
        for model, n in sorted(demand.gateway.items())
    ]
    stages += [Stage(name, n, None, "no published limit", None) for name, n in demand.other.items()]
    first_transcript = 0.0
    if demand.submissions:
        waves = math.ceil(demand.submissions / JOBS_AT_ONCE)
        per_job = max(MIN_TURNAROUND, TURNAROUND * demand.longest_audio_seconds)
        first_transcript = max(MIN_TURNAROUND, TURNAROUND * min(demand.longest_audio_seconds, 60))
        stages.insert(
            0,
            Stage(
                "transcription",
                demand.submissions,
                None,
                f"{JOBS_AT_ONCE} jobs at once, each about {TURNAROUND:.0%} of its audio",
                waves * per_job,
            ),
        )
    timed = [stage for stage in stages if stage.seconds is not None]
    slowest = max(timed, key=lambda stage: stage.seconds or 0.0, default=None)
    seconds = 0.0
    if slowest is not None and slowest.seconds is not None:
        after = 0.0 if slowest.name == "transcription" else first_transcript
        seconds = START_SECONDS + slowest.seconds + after
    fits = deadline is None or seconds <= deadline
    advice = () if fits or slowest is None else _advice(slowest, demand, deadline or 0.0)
    return Forecast(seconds, slowest.name if slowest else None, tuple(stages), deadline, advice)


def rate_for(
    model: str, recipe_rates: Mapping[str | None, int], learned: Mapping[str, tuple[int, float]]
) -> tuple[float, str]:
    """A Gateway model's requests a minute, and where that comes from, in words."""
    given = [n for n in (recipe_rates.get(model), recipe_rates.get(None)) if n is not None]
    own = min(given) if given else None  # the model's own and every model's: the slower
    seen = learned.get(f"llm:{model}")
    if seen is not None and (own is None or own > seen[0] * 60.0 / seen[1]):
        return seen[0] * 60.0 / seen[1], (
            f"the last run's x-ratelimit headers ({seen[0]} per {seen[1]:g} s)"
        )
    if own is not None:
        return float(own), "the recipe's limits.llm_per_minute"
    return float(DOCUMENTED_PER_MINUTE), "AssemblyAI's documented default"


def _gateway_stage(
    model: str,
    requests: int,
    recipe_rates: Mapping[str | None, int],
    learned: Mapping[str, tuple[int, float]],
) -> Stage:
    per_minute, source = rate_for(model, recipe_rates, learned)
    # Paced a little under the rate (runner.api.buckets.HEADROOM), the first one at once.
    seconds = max(0, requests - 1) * 60.0 / (per_minute * PACED)
    return Stage(f"llm {model}", requests, per_minute, source, seconds)


def seconds_per_item(
    recipes: Sequence[Recipe], learned: Mapping[str, tuple[int, float]]
) -> float | None:
    """What one item adds to a run bound by the Gateway's rates (the slowest model's
    share of an item's tasks and judges; cached replies counted as sent): the run's
    progress says the time left with it. None when nothing asks the Gateway."""
    per_model: dict[str, float] = {}
    for recipe in recipes:
        for task in recipe.tasks.values():
            if task.asks_model and task.provider is None and task.api is TaskApi.GATEWAY:
                model = task.requested_model
                per_model[model] = per_model.get(model, 0.0) + 1.0 / len(recipes)
            for check in task.expectations:  # a judge's calls go to its model's window
                judge = check.judge
                if judge is not None and judge.provider is None and judge.model:
                    share = judge.repeat / len(recipes)
                    per_model[judge.model] = per_model.get(judge.model, 0.0) + share
    rates = merged_rates(recipes)
    return max(
        (n * 60.0 / (rate_for(m, rates, learned)[0] * PACED) for m, n in per_model.items()),
        default=None,
    )


def _advice(slowest: Stage, demand: Demand, deadline: float) -> tuple[str, ...]:
    over = f"{duration_text(slowest.seconds or 0.0)} > {duration_text(deadline)}"
    if slowest.name == "transcription":
        return (
            f"transcription binds ({over}): AssemblyAI runs a paid account's jobs 200 at "
            "once; run with --timeout and resume on the next run (finished work is kept)",
        )
    models = len(demand.gateway)
    return (
        f"{slowest.name} binds ({over}): split the tasks across models (each model has "
        f"its own limit; this run uses {models})",
        "run with --timeout (or timeouts.run) and resume on the next run: finished work "
        "is kept, and the next run sends only the rest",
        "ask AssemblyAI for a higher limit, then set limits: {llm_per_minute: N}; shards "
        "do not help, since the limits are per account",
    )


_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)d)?(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?"
                       r"(?:(\d+(?:\.\d+)?)s?)?")  # fmt: skip


def parse_duration(text: str) -> float | None:
    """``6h``, ``90m``, ``1h30m``, ``3600`` or ``3600s`` in seconds; None if unreadable."""
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None or not any(match.groups()):
        return None
    days, hours, minutes, secs = (float(group or 0) for group in match.groups())
    seconds = days * 86400 + hours * 3600 + minutes * 60 + secs
    return seconds if seconds > 0 else None


def duration_text(seconds: float) -> str:
    """``17 h 22 min``, ``4 min 10 s``, ``12 s``."""
    if seconds >= 3600:
        hours, rest = divmod(round(seconds / 60), 60)
        return f"{hours} h {rest} min" if rest else f"{hours} h"
    if seconds >= 60:
        minutes, rest = divmod(round(seconds), 60)
        return f"{minutes} min {rest} s" if rest else f"{minutes} min"
    return f"{seconds:.0f} s"


def merged_rates(recipes: Sequence[Recipe]) -> dict[str | None, int]:
    """The slowest rate any recipe sets for each model (None: every model)."""
    chosen: dict[str | None, int] = {}
    for recipe in recipes:
        for model, per_minute in recipe.llm_per_minute.items():
            chosen[model] = min(per_minute, chosen.get(model, per_minute))
    return chosen


def run_timeout(recipes: Sequence[Recipe]) -> float | None:
    """The recipes' `timeouts.run` (the strictest): how long a run may take, which `plan`
    checks its forecast against and `run` stops at (as with --timeout)."""
    values = [float(r.timeouts["run"]) for r in recipes if "run" in r.timeouts]
    return min(values) if values else None
