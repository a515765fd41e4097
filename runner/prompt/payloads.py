"""What a task sends: its rendered messages and the request body for each API.

``render`` prints these bodies and ``run`` sends them, so a preview is exactly
what would be paid for. No network here and no aiohttp import.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from runner.diagnostics import Diagnostic
from runner.errors import TemplateProblem
from runner.prompt.templating import TemplateEngine
from runner.prompt.views import (
    GATEWAY_TRANSCRIPT_TAG,
    GroupView,
    ItemEntry,
    ItemView,
    RecipeView,
    TaskResultView,
    TranscriptView,
    group_context,
    item_variables,
    prompt_context,
)
from runner.recipe.model import Provider, Recipe, Task, TaskApi, thaw

CHAT_COMPLETIONS_PATH = "/chat/completions"
LEMUR_TASK_PATH = "/lemur/v3/generate/task"

# A transcript (or any other data) that happens to contain the Gateway's literal
# tag must not be where the Gateway inserts the transcript: only the first tag is
# replaced. Such data tags get a zero-width space after the braces.
_DEFANGED_TAG = "{\u200b{ transcript }\u200b}"

QUOTES_PROMPT = """Based on the following transcript, please answer this question:
Question: {question}
Context: Please provide exactly {count} quotes, copied word for word from the transcript. \
Write each on its own line in double quotes, with nothing else: no introduction, numbering \
or commentary.
Transcript: {text}"""


@dataclass(frozen=True, slots=True)
class Payload:
    """One HTTP request body for one task of one item."""

    api: TaskApi
    path: str  # relative to the Gateway (chat) or REST base URL (LeMUR); a provider's URL
    body: Mapping[str, Any]
    provider: Provider | None = None  # an OpenAI-compatible server, not AssemblyAI

    @property
    def messages(self) -> list[Mapping[str, Any]]:
        found: list[Mapping[str, Any]] = self.body.get("messages", [])
        return found


def render_messages(
    engine: TemplateEngine, task: Task, context: Mapping[str, Any]
) -> list[dict[str, str]]:
    """The task's messages, rendered for one item.

    With ``inject_transcript``, ``{{ gateway_transcript }}`` becomes the Gateway's
    literal ``{{ transcript }}`` tag, and any copy of that tag inside the data is
    defanged first, so the Gateway inserts the transcript exactly where the
    template said.
    """
    if not task.inject_transcript:
        return [
            {"role": m.role, "content": engine.render(m.content, context)} for m in task.messages
        ]
    nonce = f"gateway-transcript-{secrets.token_hex(8)}"
    local = {**context, "gateway_transcript": nonce}
    texts = [engine.render(m.content, local) for m in task.messages]
    if sum(t.count(nonce) for t in texts) != 1:
        origin = task.messages[0].content.origin
        raise TemplateProblem(
            [
                Diagnostic(
                    origin.file,
                    origin.first_line,
                    origin.column,
                    origin.describe(),
                    "write {{ gateway_transcript }} exactly once and unchanged (no filters), "
                    "where the LLM Gateway should insert the transcript",
                )
            ]
        )
    return [
        {
            "role": m.role,
            "content": t.replace(GATEWAY_TRANSCRIPT_TAG, _DEFANGED_TAG).replace(
                nonce, GATEWAY_TRANSCRIPT_TAG
            ),
        }
        for m, t in zip(task.messages, texts, strict=True)
    ]


def gateway_payload(
    task: Task,
    messages: list[dict[str, str]],
    transcript_id: str | None = None,
    fallbacks: list[dict[str, Any]] | None = None,
) -> Payload:
    """The POST {gateway}/chat/completions body (seeds/004, notes section 8).

    With ``send_as_prompt`` a task's one user message goes as the Gateway's ``prompt``
    string. ``fallbacks`` are the rendered fallback entries (see :func:`fallback_entries`).
    """
    body: dict[str, Any] = {"model": task.model}
    if task.send_as_prompt and len(messages) == 1 and messages[0]["role"] == "user":
        body["prompt"] = messages[0]["content"]
    else:
        body["messages"] = messages
    if task.max_tokens is not None:
        body["max_tokens"] = task.max_tokens
    if task.temperature is not None:
        body["temperature"] = task.temperature
    if task.json_schema is not None:
        schema: dict[str, Any] = {"name": task.name, "schema": thaw(task.json_schema)}
        if task.strict:
            schema["strict"] = True
        body["response_format"] = {"type": "json_schema", "json_schema": schema}
    if task.tools:
        body["tools"] = [thaw(t) for t in task.tools]
    if task.tool_choice is not None:
        body["tool_choice"] = thaw(task.tool_choice)
    if fallbacks:
        body["fallbacks"] = fallbacks
    if task.fallback_config is not None:
        config = task.fallback_config
        body["fallback_config"] = {
            k: v for k, v in (("depth", config.depth), ("retry", config.retry)) if v is not None
        }
    if task.gateway_post_processing:
        body["post_processing_steps"] = [{"type": s} for s in task.gateway_post_processing]
    if task.stream:
        body["stream"] = True
    if task.inject_transcript and transcript_id:
        body["transcript_id"] = transcript_id
    return Payload(TaskApi.GATEWAY, CHAT_COMPLETIONS_PATH, body)


# The request fields a recipe key of a fallback becomes (seeds/004: a fallback "can
# optionally override any field from the original request"), and the value a field
# takes when the fallback's own request leaves it out (`tools: []`: no tools).
_REQUEST_FIELDS: Mapping[str, tuple[str, ...]] = {
    "max_tokens": ("max_tokens",),
    "temperature": ("temperature",),
    "system": ("messages", "prompt"),
    "prompt": ("messages", "prompt"),
    "prompt_file": ("messages", "prompt"),
    "messages": ("messages", "prompt"),
    "send_as": ("messages", "prompt"),
    "json_schema": ("response_format",),
    "strict": ("response_format",),
    "tools": ("tools", "tool_choice"),
    "tool_choice": ("tool_choice",),
    "stream": ("stream",),
    "gateway_post_processing": ("post_processing_steps",),
    "inject_transcript": ("transcript_id",),
}
_LEFT_OUT: Mapping[str, Any] = {"tools": [], "stream": False, "post_processing_steps": []}


def fallback_entries(
    engine: TemplateEngine,
    task: Task,
    context: Mapping[str, Any],
    *,
    transcript_id: str | None,
    transcript_text: str,
) -> list[dict[str, Any]]:
    """The task's fallbacks as the Gateway takes them: ``model`` and every request field
    a fallback overrides, as its own request would send it (its prompt, system message
    or messages as ``messages``; its ``json_schema`` as ``response_format``...)."""
    entries = []
    for fallback in task.fallbacks:
        if fallback.provider or fallback.task is None:  # asked on our side, if at all
            continue
        own = build_payload(
            engine,
            fallback.task,
            context,
            transcript_id=transcript_id,
            transcript_text=transcript_text,
        ).body
        entry: dict[str, Any] = {"model": fallback.model}
        for key in fallback.overrides:
            for name in _REQUEST_FIELDS.get(key, ()):
                if name in own:
                    entry[name] = own[name]
                elif name in _LEFT_OUT:
                    entry[name] = _LEFT_OUT[name]
        entries.append(entry)
    return entries


# The most transcripts one LeMUR request takes (seeds/000: "up to a maximum of 100
# files or 100 hours"); a group of more is asked in several requests.
LEMUR_MAX_TRANSCRIPTS = 100


def lemur_payload(
    task: Task, prompt: str, transcript_ids: Sequence[str], input_text: str | None = None
) -> Payload:
    """The POST /lemur/v3/generate/task body (seeds/000): the transcripts by their ids
    (one item's, or a group's), or the task's ``input_text`` instead."""
    assert task.lemur is not None
    body: dict[str, Any] = {"final_model": task.lemur.final_model, "prompt": prompt}
    if input_text is not None:
        body["input_text"] = input_text
    else:
        body["transcript_ids"] = [i for i in transcript_ids if i]
    if task.lemur.context is not None:
        body["context"] = thaw(task.lemur.context)
    if task.lemur.max_output_size is not None:
        body["max_output_size"] = task.lemur.max_output_size
    if task.temperature is not None:
        body["temperature"] = task.temperature
    return Payload(TaskApi.LEMUR, LEMUR_TASK_PATH, body)


def quotes_messages(
    engine: TemplateEngine, task: Task, context: Mapping[str, Any], transcript_text: str
) -> list[dict[str, str]]:
    """The question of a best-quotes task (seeds/003), transcript inlined as data."""
    assert task.quotes is not None
    count = task.quotes.count
    question = (
        engine.render(task.quotes.question, context)
        if task.quotes.question is not None
        else f"What are the {count} best quotes from this recording?"
    )
    prompt = (
        QUOTES_PROMPT.replace("{question}", question.strip())
        .replace("{count}", str(count))
        .replace("{text}", transcript_text)
    )
    system = [m for m in task.messages if m.role == "system"]
    rendered = [{"role": "system", "content": engine.render(m.content, context)} for m in system]
    return [*rendered, {"role": "user", "content": prompt}]


def build_payload(
    engine: TemplateEngine,
    task: Task,
    context: Mapping[str, Any],
    *,
    transcript_id: str | None,
    transcript_text: str,
    transcript_ids: Sequence[str] | None = None,
) -> Payload:
    """The request ``task`` sends for the item whose context is given (or the group's:
    a LeMUR task sends ``transcript_ids``, every item's)."""
    if task.api is TaskApi.LEMUR:
        assert task.lemur is not None
        prompt = "\n\n".join(m["content"] for m in render_messages(engine, task, context))
        given = task.lemur.input_text
        input_text = engine.render(given, context) if given is not None else None
        ids = transcript_ids if transcript_ids is not None else [transcript_id or ""]
        return lemur_payload(task, prompt, ids, input_text)
    if task.quotes is not None:
        messages = quotes_messages(engine, task, context, transcript_text)
    else:
        messages = render_messages(engine, task, context)
    if task.provider is not None:
        return provider_payload(task, task.provider, messages)
    fallbacks = fallback_entries(
        engine, task, context, transcript_id=transcript_id, transcript_text=transcript_text
    )
    return gateway_payload(task, messages, transcript_id, fallbacks)


def provider_payload(task: Task, provider: Provider, messages: list[dict[str, str]]) -> Payload:
    """The body an OpenAI-compatible server takes: no Gateway-only fields (validate
    refuses tasks that need them), the schema in the form the server honours, the
    provider's extra fields, and the model by the name the server knows it by."""
    body: dict[str, Any] = {"model": provider.model_for(task.model), "messages": messages}
    if task.max_tokens is not None:
        body["max_tokens"] = task.max_tokens
    if task.temperature is not None:
        body["temperature"] = task.temperature
    if task.json_schema is not None and provider.structured_output != "none":
        schema = thaw(task.json_schema)
        if provider.structured_output == "json_object":
            body["response_format"] = {"type": "json_object", "schema": schema}
        else:
            form: dict[str, Any] = {"name": task.name, "schema": schema}
            if task.strict:
                form["strict"] = True
            body["response_format"] = {"type": "json_schema", "json_schema": form}
    if task.tools and provider.tools:
        body["tools"] = [thaw(t) for t in task.tools]
        if task.tool_choice is not None:
            body["tool_choice"] = thaw(task.tool_choice)
    if task.stream:
        body["stream"] = True
        if provider.stream_usage:
            body["stream_options"] = {"include_usage": True}
    body.update(thaw(provider.extra_body))
    return Payload(TaskApi.GATEWAY, f"{provider.base_url}/chat/completions", body, provider)


def task_context(
    recipe: Recipe,
    item: ItemView,
    task: Task,
    transcript: TranscriptView,
    results: Mapping[str, TaskResultView],
) -> dict[str, Any]:
    """The template context of ``task`` for ``item``: only the tasks it needs are visible."""
    return prompt_context(
        transcript=transcript,
        item=item,
        variables=item_variables(recipe, item),
        tasks={name: results[name] for name in task.needs if name in results},
        recipe=RecipeView.of(recipe),
        inject_transcript=task.inject_transcript,
    )


def reduce_payload(
    engine: TemplateEngine,
    task: Task,
    context: Mapping[str, Any],
    parts: Sequence[Any],
    request: str,
) -> Payload:
    """The request combining the parts' replies of a ``long: map-reduce`` task: its
    system message, then its ``reduce`` prompt, which sees ``parts`` and ``request``
    (the task's prompt with the part's text left out). Sent with the task's model,
    schema and settings; the Gateway's fallbacks keep their model and settings but not
    a prompt of their own (that one is written for the whole transcript)."""
    assert task.reduce is not None
    local = {**context, "parts": list(parts), "request": request}
    system = [
        {"role": "system", "content": engine.render(m.content, local)}
        for m in task.messages
        if m.role == "system"
    ]
    messages = [*system, {"role": "user", "content": engine.render(task.reduce, local)}]
    if task.provider is not None:
        return provider_payload(task, task.provider, messages)
    fallbacks = [
        {k: v for k, v in entry.items() if k not in ("messages", "prompt")}
        for entry in fallback_entries(engine, task, local, transcript_id=None, transcript_text="")
    ]
    plain = replace(task, inject_transcript=False, send_as_prompt=False)
    return gateway_payload(plain, messages, None, fallbacks)


def request_text(engine: TemplateEngine, task: Task, context: Mapping[str, Any]) -> str:
    """What a task asks, for its reduce prompt: its user messages rendered with
    ``context`` (where the transcript, or the items, stand empty)."""
    if task.quotes is not None:
        count = task.quotes.count
        question = (
            engine.render(task.quotes.question, context)
            if task.quotes.question is not None
            else f"What are the {count} best quotes from this recording?"
        )
        return (
            f"{question.strip()}\nPlease provide exactly {count} quotes, copied word for word "
            "from the transcript, each on its own line in double quotes."
        )
    rendered = render_messages(engine, replace(task, inject_transcript=False), context)
    return "\n\n".join(m["content"] for m in rendered if m["role"] != "system")


def group_task_context(
    recipe: Recipe, group: GroupView, entries: Sequence[ItemEntry]
) -> dict[str, Any]:
    """The template context of a group task (``over:``) for ``entries`` of ``group``."""
    return group_context(
        entries=entries, group=group, variables=dict(recipe.vars), recipe=RecipeView.of(recipe)
    )


def group_payload(
    engine: TemplateEngine,
    task: Task,
    recipe: Recipe,
    group: GroupView,
    entries: Sequence[ItemEntry],
) -> Payload:
    """The request a group task sends for ``entries`` (a LeMUR task: their ids)."""
    return build_payload(
        engine,
        task,
        group_task_context(recipe, group, entries),
        transcript_id=None,
        transcript_text="",
        transcript_ids=[e.transcript.id or "" for e in entries],
    )
