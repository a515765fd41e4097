"""Whether a prompt fits its model's context window, before anything is sent.

A model reads the prompt and writes the reply in one window of tokens. The window of
a task's model is, in order: the task's ``context_window:`` (or the one in
``defaults``), the LLM Gateway's model list (``context_length``, when ``validate
--online`` kept one), else :data:`KNOWN_WINDOWS` (the providers' published figures).
A model none of them knows is not checked.

The prompt's size is :func:`~runner.transcript.text.estimate_tokens` over each message
(and over the transcript when the Gateway inserts it): about 4 characters, or 3/4 of a
word, per token, whichever is more; it errs on the large side. The reply's room is the
task's ``max_tokens``, else the Gateway's default of 1000. A prompt fits when both
together are within the window.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from runner.prompt.payloads import Payload
from runner.recipe.model import MAP_REDUCE, Task, TaskApi
from runner.transcript.text import estimate_tokens

DEFAULT_REPLY_TOKENS = 1000  # the Gateway's max_tokens when a request gives none

# Published context windows, by model name prefix (longest prefix wins): what the
# runner assumes when neither the recipe nor the Gateway's model list says.
KNOWN_WINDOWS: Mapping[str, int] = {
    "claude-": 200_000,
    "gpt-5": 400_000,
    "gpt-4.1": 1_047_576,
    "gpt-oss-": 131_072,
    "gemini-": 1_048_576,
}


def known_window(model: str, catalog: Mapping[str, int] | None = None) -> int | None:
    """The window of ``model``: the Gateway's list first, then :data:`KNOWN_WINDOWS`."""
    if catalog is not None and model in catalog:
        return catalog[model]
    prefixes = [p for p in KNOWN_WINDOWS if model.startswith(p)]
    return KNOWN_WINDOWS[max(prefixes, key=len)] if prefixes else None


def task_window(task: Task, catalog: Mapping[str, int] | None = None) -> int | None:
    """The window ``task``'s prompt must fit: None when nothing says (not checked).
    LeMUR reads transcripts by id and shortens them itself: never checked here."""
    if task.api is TaskApi.LEMUR:
        return None
    if task.context_window is not None:
        return task.context_window
    return known_window(task.model, catalog)


def reply_room(task: Task) -> int:
    """The tokens kept for the reply: ``max_tokens``, else the Gateway's default."""
    return task.max_tokens or DEFAULT_REPLY_TOKENS


def prompt_tokens(payload: Payload, inserted_text: str = "") -> int:
    """The estimated tokens of what ``payload`` sends (``inserted_text``: the transcript
    the Gateway puts in place of its tag)."""
    body = payload.body
    texts = [str(m.get("content", "")) for m in payload.messages]
    if isinstance(body.get("prompt"), str):
        texts.append(body["prompt"])
    return sum(estimate_tokens(t) for t in texts) + estimate_tokens(inserted_text)


def _most_tokens(payload: Payload, inserted_text: str) -> int:
    """An upper bound of :func:`prompt_tokens` from the lengths alone: the estimate
    of a text is never more than twice its characters, plus one."""
    texts = [str(m.get("content", "")) for m in payload.messages]
    prompt = payload.body.get("prompt")
    if isinstance(prompt, str):
        texts.append(prompt)
    texts.append(inserted_text)
    return sum(2 * len(text) + 1 for text in texts)


@dataclass(frozen=True)
class Overflow:
    """A prompt that would not fit: its estimated size and the window."""

    task: str
    model: str
    prompt: int  # estimated tokens
    reply: int  # tokens kept for the reply
    window: int

    def message(self) -> str:
        return (
            f"the prompt of task {self.task!r} is about {self.prompt:,} tokens (estimated) "
            f"and its reply may take {self.reply:,}, more than the {self.window:,}-token "
            f"context window of {self.model}; add `long: {MAP_REDUCE}` to the task to read "
            "the transcript in parts, choose a model with a larger window, or set "
            "`context_window:` if the model's window is larger"
        )


def overflow(
    task: Task,
    payload: Payload,
    *,
    inserted_text: str = "",
    catalog: Mapping[str, int] | None = None,
) -> Overflow | None:
    """Why ``payload`` would not fit ``task``'s window, or None when it fits (or no
    window is known)."""
    window = task_window(task, catalog)
    if window is None:
        return None
    inserted = inserted_text if task.inject_transcript else ""
    room = reply_room(task)
    if _most_tokens(payload, inserted) + room <= window:
        return None  # (most prompts: far from the window, not worth estimating)
    tokens = prompt_tokens(payload, inserted)
    if tokens + room <= window:
        return None
    return Overflow(task.name, task.model, tokens, room, window)
