"""A transcript longer than a model's window, read in parts (``long: map-reduce``).

The transcript is split at paragraph boundaries into parts that fit; each part is a
transcript view of its own (its text, words, sentences, paragraphs and utterances,
with their times in the whole recording, so a quote keeps its time). The task's prompt
runs once per part (the map); the ``reduce`` prompt sees ``parts``, each part's reply
with the times it covers, and combines them.

A group task (``over:``) that does not fit is split the same way, at item boundaries:
its prompt runs once per slice of ``items`` that fits.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from runner.prompt.payloads import Payload
from runner.prompt.views import ItemEntry, TranscriptView
from runner.prompt.window import Overflow, overflow, prompt_tokens, reply_room, task_window
from runner.recipe.model import Task
from runner.transcript.model import Paragraph, Transcript
from runner.transcript.text import estimate_tokens

# Each try that still overflows (a template that repeats the transcript, say) halves
# the parts' size; after this many, the task is refused with the size found.
SPLIT_TRIES = 4

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class PartView:
    """``{{ parts }}`` in a reduce prompt: one part's reply and the time it covers."""

    index: int  # 1-based
    text: str  # the reply for this part
    start: int | None  # milliseconds into the recording; None for a slice of items
    end: int | None
    items: tuple[str, ...] = ()  # a group task's slice: the items' names

    def __str__(self) -> str:
        return self.text


def part_view(view: TranscriptView, paragraphs: Sequence[Paragraph]) -> TranscriptView:
    """The part of ``view`` that ``paragraphs`` (consecutive) cover, with the times of
    the whole recording."""
    start, end = paragraphs[0].start, paragraphs[-1].end
    source = view._source
    words = tuple(w for p in paragraphs for w in p.words) or tuple(
        w for w in view.words if start <= w.start <= end
    )
    utterances = tuple(u for u in source.utterances if start <= u.start <= end)
    part = Transcript.of_segments(
        words,
        utterances,
        id=view.id,
        status="completed",
        text=" ".join(p.text for p in paragraphs),
        audio_duration=view.audio_duration,
        language_code=view.language_code,
        confidence=view.confidence,
        speech_model_used=view.speech_model,
    )
    sentences = tuple(s for s in view.sentences if start <= s.start <= end)
    return TranscriptView.build(part, sentences, tuple(paragraphs))


def empty_view(view: TranscriptView) -> TranscriptView:
    """``view`` with no text, no words and no segments: what a reduce prompt's
    ``request`` renders the task's prompt with, so it says what was asked without
    any part's text."""
    blank = Transcript.of_segments(
        (),
        (),
        id=view.id,
        status="completed",
        text="",
        audio_duration=view.audio_duration,
        language_code=view.language_code,
        speech_model_used=view.speech_model,
    )
    return TranscriptView.build(blank)


def slices(entries: Sequence[T], budget: int, size: Callable[[T], int]) -> list[list[T]]:
    """``entries`` in order, cut into consecutive runs whose sizes add up to at most
    ``budget`` (an entry larger than the budget alone)."""
    found: list[list[T]] = []
    current: list[T] = []
    used = 0
    for entry in entries:
        cost = size(entry)
        if current and used + cost > budget:
            found.append(current)
            current, used = [], 0
        current.append(entry)
        used += cost
    if current:
        found.append(current)
    return found


@dataclass(frozen=True, slots=True)
class MapPart:
    """One request of the map: the part's payload and what it covers."""

    payload: Payload
    start: int | None = None  # milliseconds, for a part of a transcript
    end: int | None = None
    items: tuple[str, ...] = ()  # the items' names, for a slice of a group

    def view(self, index: int, reply: str) -> PartView:
        return PartView(index, reply, self.start, self.end, self.items)


def transcript_parts(
    task: Task,
    view: TranscriptView,
    payload_of: Callable[[TranscriptView], Payload],
    whole: Payload,
    catalog: Mapping[str, int] | None = None,
) -> list[MapPart] | Overflow:
    """The map of ``task`` over ``view``: one request per part, each within the window;
    or the overflow of the smallest part that still does not fit (a paragraph alone)."""

    def payload_of_paragraphs(paragraphs: Sequence[Paragraph]) -> Payload:
        return payload_of(part_view(view, paragraphs))

    found = fitting(
        task,
        list(view.paragraphs),
        lambda p: estimate_tokens(p.text) + 1,
        payload_of_paragraphs,
        whole,
        estimate_tokens(view.text),
        catalog,
    )
    if isinstance(found, Overflow):
        return found
    return [MapPart(payload, run[0].start, run[-1].end) for run, payload in found]


def fitting(
    task: Task,
    units: Sequence[T],
    size: Callable[[T], int],
    payload_of: Callable[[Sequence[T]], Payload],
    whole: Payload,
    whole_size: int,
    catalog: Mapping[str, int] | None = None,
) -> list[tuple[list[T], Payload]] | Overflow:
    """``units`` cut into consecutive runs whose payloads fit ``task``'s window. The first
    cut is sized by what the prompt adds around the units (``whole``'s tokens less
    ``whole_size``); each try that overflows halves it."""
    window = task_window(task, catalog)
    first = overflow(task, whole, catalog=catalog)
    if window is None or first is None:
        return [(list(units), whole)]
    if not units:
        return first  # nothing to cut at (a transcript without paragraphs)
    overhead = max(0, prompt_tokens(whole) - whole_size)
    budget = max(1, window - reply_room(task) - overhead)
    worst: Overflow = first
    for _ in range(SPLIT_TRIES):
        runs = slices(units, budget, size)
        found: list[tuple[list[T], Payload]] = []
        for run in runs:
            payload = payload_of(run)
            problem = overflow(task, payload, catalog=catalog)
            if problem is not None:
                worst = problem
                if len(run) == 1:
                    return problem  # one paragraph (or item) alone does not fit
                break
            found.append((run, payload))
        else:
            return found
        budget = max(1, budget // 2)
    return worst


def entry_size(entry: ItemEntry) -> int:
    """An item's share of a group prompt, as estimated: its transcript and the
    results of the tasks it carries (the unit a group is cut at)."""
    return estimate_tokens(entry.transcript.text) + sum(
        estimate_tokens(r.text) for r in entry.tasks.values()
    )
