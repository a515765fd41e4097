"""What a run would do, without doing it: ``transcript-runner plan`` and the budget guards.

The plan uses the same request building and cache keys as ``run``, so "cached"
here means the run will not send that request. A request that depends on a
transcript or a reply not yet known is counted as "to send"; its tokens are then
unknown. Prices come only from a table the user passes (``--prices``): prices
change, and a built-in list would be presented as truth when it is not.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from runner.errors import ItemError, PostProcessFailed, StoreError, TemplateProblem
from runner.execute.ask import completion_from_json, reply_text
from runner.execute.finish import process_reply, result_view
from runner.execute.forecast import UNKNOWN_AUDIO, Demand
from runner.execute.plan_parts import Known, count_groups, count_item_task, destination
from runner.execute.segments import kept_view
from runner.items import Item, Shard, expand
from runner.prompt.judging import judge_messages, judge_payload
from runner.prompt.payloads import build_payload, task_context
from runner.prompt.templating import TemplateEngine
from runner.prompt.views import TaskResultView, TranscriptView, folder_context
from runner.recipe.fallbacks import answering_task
from runner.recipe.model import InputKind, Recipe, Task, Transcription
from runner.store import Store, audio_identity, judge_key, request_key, transcription_key
from runner.transcript.model import Transcript, load_saved
from runner.transcript.text import estimate_tokens

T = TypeVar("T")

GROUP = "group"  # an ItemPlan of a group's tasks (`over:`), not of one item


@dataclass
class ComparedPlan:
    """A compared block of ``transcription:`` for one item: how the run gets its
    transcript ("reuse", "submit", "transcribe here")."""

    engine: str
    transcription: str
    speech_model: str | None = None


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
    # Known prompts to a provider's server (providers:, --llm-url), by (provider, model):
    # priced as the table prices that provider, never as Gateway models.
    input_tokens_by_server: dict[tuple[str, str], int] = field(default_factory=dict)
    speech_model: str | None = None  # the first speech model a submission asks for
    transcript_known: bool = False  # the transcript is known without transcribing
    # Each task's reply-cache key, as the run will send it; None when it depends on a
    # transcript or reply not known yet (exports have none).
    request_keys: dict[str, str | None] = field(default_factory=dict)
    # Prompts over their model's context window without `long: map-reduce`: what the
    # run would refuse before sending (each a message with the size and the window).
    too_long: list[str] = field(default_factory=list)
    compared: list[ComparedPlan] = field(default_factory=list)  # engines compared

    def transcriptions(self) -> list[str]:
        """How the run gets each of its transcripts: the primary's, then the compared."""
        return [self.transcription, *(c.transcription for c in self.compared)]

    # Requests to send, by where they go: a Gateway model's name, or "lemur MODEL" and
    # "server NAME MODEL" (no published rate); cached replies are not counted.
    to_send: dict[str, int] = field(default_factory=dict)


@dataclass
class Plan:
    items: list[ItemPlan]

    @property
    def too_long(self) -> list[str]:
        """Every prompt the run would refuse for its size, with its item."""
        return [f"{i.recipe}/{i.item}: {problem}" for i in self.items for problem in i.too_long]

    @property
    def submissions(self) -> int:
        return sum(i.transcriptions().count("submit") for i in self.items)

    @property
    def reused(self) -> int:
        return sum(i.transcriptions().count("reuse") for i in self.items)

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
        unknown = (i for i in self.items if i.audio_seconds is None)
        return sum(i.transcriptions().count("submit") for i in unknown)

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
        seconds = sum(
            (i.audio_seconds or 0) * i.transcriptions().count("submit") for i in self.items
        )
        return seconds / 3600


def make_plan(
    recipes: Sequence[Recipe],
    store: Store | None,
    shard: Shard | None,
    *,
    use_cache: bool = True,
    only_items: Mapping[str, frozenset[str]] | None = None,
    windows: Mapping[str, int] | None = None,
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
        kept: dict[str, Known] | None = (
            {} if any(t.over is not None for t in recipe.tasks.values()) else None
        )
        for item in selected:
            try:
                items.append(_plan_item(recipe, engine, item, store, use_cache, kept, windows))
            except (ItemError, StoreError) as exc:  # an unreadable file, a damaged entry
                raise ItemError(f"{recipe.display}: item {item.name!r}: {exc.message}") from None
        if kept is not None:
            items += _plan_groups(recipe, engine, selected, kept, store, use_cache, windows)
    return Plan(items)


def _plan_groups(
    recipe: Recipe,
    engine: TemplateEngine,
    items: Sequence[Item],
    known: Mapping[str, Known],
    store: Store | None,
    use_cache: bool,
    windows: Mapping[str, int] | None,
) -> list[ItemPlan]:
    """One line per group of the group tasks (``over:``): see plan_parts."""
    plans = []
    for name, counted in count_groups(recipe, engine, items, known, store, use_cache, windows):
        # (no transcription of its own, and no audio: 0 s, so none counts as unknown)
        plan = ItemPlan(recipe.name, f"groups/{name}", GROUP, 0.0, transcript_known=True)
        plan.calls, plan.cached = counted.calls, counted.cached
        plan.input_tokens, plan.unknown_tokens = counted.input_tokens, counted.unknown
        plan.models, plan.request_keys, plan.too_long = (
            counted.models,
            counted.keys,
            counted.too_long,
        )
        plan.to_send = counted.to_send
        plans.append(plan)
    return plans


def _plan_item(
    recipe: Recipe,
    engine: TemplateEngine,
    item: Item,
    store: Store | None,
    use_cache: bool,
    kept: dict[str, Known] | None = None,
    windows: Mapping[str, int] | None = None,
) -> ItemPlan:
    transcript, how = _known_transcript(recipe, item, store)
    seconds = float(transcript.audio_duration) if transcript and transcript.audio_duration else None
    plan = ItemPlan(recipe.name, item.name, how, seconds, transcript_known=transcript is not None)
    plan.speech_model = next(iter(recipe.transcription_request().get("speech_models", [])), None)
    if seconds is None and item.kind is InputKind.FILE:
        seconds = audio_seconds(Path(item.source))
        plan.audio_seconds = seconds
    if item.kind in (InputKind.FILE, InputKind.URL):  # as the run: recordings only
        plan.compared = [_compared(recipe, block, item, store) for block in recipe.compared]
    view = kept_view(store, transcript) if transcript is not None else None
    results: dict[str, TaskResultView | None] = {}
    graph = recipe.graph
    for name in graph.order():
        task = recipe.tasks[name]
        if task.over is not None:  # once per group: see plan_groups
            continue
        if not task.asks_model:  # an export: no call, no tokens, written every run
            results[task.name] = None
            continue
        model = task.requested_model
        plan.models[model] = plan.models.get(model, 0) + 1
        plan.request_keys[name] = None
        where = destination(task)
        if view is None or transcript is None or graph.failed_needs(name, results):
            plan.to_send[where] = plan.to_send.get(where, 0) + 1
            plan.calls += 1
            plan.unknown_tokens += 1
            results[task.name] = None
            _plan_judges(recipe, engine, item, task, None, None, plan, store, use_cache)
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
            _plan_judges(recipe, engine, item, task, None, None, plan, store, use_cache)
            continue
        key = request_key(task, payload)
        plan.request_keys[name] = key
        cached = store.reply_get(key) if store is not None and use_cache else None
        if cached is not None:
            plan.cached += 1
            completion = completion_from_json(cached.reply)
            # Processed by the settings of the model that gave it, as the run does.
            answered = answering_task(task, completion.model)
            results[task.name] = _cached_result(answered, reply_text(completion), view)
        else:
            counted = count_item_task(
                task,
                engine,
                payload,
                view,
                functools.partial(_context, recipe, item, task, results),
                store,
                use_cache,
                windows,
            )
            plan.calls += counted.calls
            plan.to_send[where] = plan.to_send.get(where, 0) + counted.calls
            plan.cached += counted.cached
            plan.unknown_tokens += counted.unknown
            plan.too_long += counted.too_long
            if counted.answer is not None:  # read in parts, every part and the reduce kept
                answered = answering_task(task, counted.answer.model)
                results[task.name] = _cached_result(answered, reply_text(counted.answer), view)
            tokens = counted.input_tokens
            plan.input_tokens += tokens
            if task.provider is not None:
                server = (task.provider.name, model)
                by_server = plan.input_tokens_by_server
                by_server[server] = by_server.get(server, 0) + tokens
            else:
                by_model = plan.input_tokens_by_model
                by_model[model] = by_model.get(model, 0) + tokens
            if counted.answer is None:
                results[task.name] = None
        _plan_judges(recipe, engine, item, task, results[task.name], view, plan, store, use_cache)
    if kept is not None:
        kept[item.name] = Known(view, results)
    return plan


def _context(
    recipe: Recipe,
    item: Item,
    task: Task,
    results: Mapping[str, TaskResultView | None],
    view: TranscriptView,
) -> dict[str, Any]:
    """``task``'s context for ``item`` with ``view`` (the whole transcript, or a part)."""
    needed = {n: r for n in task.needs if (r := results[n]) is not None}
    return task_context(recipe, item.view(recipe), task, view, needed)


def _plan_judges(
    recipe: Recipe,
    engine: TemplateEngine,
    item: Item,
    task: Task,
    result: TaskResultView | None,
    view: TranscriptView | None,
    plan: ItemPlan,
    store: Store | None,
    use_cache: bool,
) -> None:
    """The calls of the task's judges: keyed as the run will send them when the result
    is known (its reply is cached), else each one a call to send, its prompt unknown."""
    context = folder_context(recipe, item.view(recipe))
    for expectation in task.expectations:
        judge = expectation.judge
        if judge is None or expectation.text is None:
            continue
        try:
            rubric: str | None = engine.render(expectation.text, context)
        except TemplateProblem:
            rubric = None
        sent_to = f"server {judge.provider.name} {judge.model}" if judge.provider else judge.model
        for n in range(1, judge.repeat + 1):
            plan.models[judge.model] = plan.models.get(judge.model, 0) + 1
            if result is None or view is None or rubric is None:
                plan.to_send[sent_to] = plan.to_send.get(sent_to, 0) + 1
                plan.calls += 1
                plan.unknown_tokens += 1
                continue
            messages = judge_messages(rubric, result.text, view.text, n=n, of=judge.repeat)
            payload = judge_payload(judge, messages)
            if store is not None and use_cache and store.reply_get(judge_key(payload)):
                plan.cached += 1
                continue
            plan.to_send[sent_to] = plan.to_send.get(sent_to, 0) + 1
            plan.calls += 1
            tokens = sum(estimate_tokens(m["content"]) for m in messages)
            plan.input_tokens += tokens
            by_model = plan.input_tokens_by_model
            by_model[judge.model] = by_model.get(judge.model, 0) + tokens


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


def _compared(
    recipe: Recipe, block: Transcription, item: Item, store: Store | None
) -> ComparedPlan:
    by_block = recipe.transcribed_by(block)
    _, how = _known_transcript(by_block, item, store)
    model = next(iter(by_block.transcription_request().get("speech_models", [])), None)
    return ComparedPlan(block.label, how, None if block.local_engine else model)


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
