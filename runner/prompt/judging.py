"""The judge of a ``judge:`` check: its fixed prompt, its answer's schema, its request.

The prompt is fixed (docs/checks.md prints it) so that a verdict means the same in
every recipe: only the rubric is the recipe's. The result and the transcript are
data, put in as they are, never rendered as templates. The transcript is shown when
the rubric mentions it (the word "transcript"), since a rubric about the result
alone needs none of its tokens.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from runner.prompt.payloads import CHAT_COMPLETIONS_PATH, Payload
from runner.recipe.model import Judge, TaskApi, thaw

JUDGE_SYSTEM = (
    "You are a strict, fair grader. You grade one output of a prompt against a rubric. "
    "Judge only what the rubric asks. Answer with a JSON object: pass (true or false), "
    "score (a number from 0 to 1: how well the output meets the rubric) and reason (one "
    "or two sentences saying why)."
)
JUDGE_PROMPT = """Rubric:
{rubric}

Output to grade:
<output>
{output}
</output>
{transcript}{repeat}"""
JUDGE_TRANSCRIPT = """
The transcript the output was written from:
<transcript>
{text}
</transcript>
"""
JUDGE_REPEAT = "\n(Verdict {n} of {of}: grade independently.)\n"
JUDGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["pass", "score", "reason"],
    "properties": {
        "pass": {"type": "boolean"},
        "score": {"type": "number", "minimum": 0, "maximum": 1},
        "reason": {"type": "string"},
    },
}
JUDGE_MAX_TOKENS = 500
_MENTIONS_TRANSCRIPT = re.compile(r"\btranscripts?\b", re.IGNORECASE)
_FENCED = re.compile(r"^\s*```[\w-]*\s*\n?(.*?)\n?\s*```\s*$", re.DOTALL)


def shows_transcript(rubric: str) -> bool:
    """Whether the judge is shown the transcript: the rubric speaks of it."""
    return _MENTIONS_TRANSCRIPT.search(rubric) is not None


def judge_messages(
    rubric: str, output: str, transcript: str, *, n: int = 1, of: int = 1
) -> list[dict[str, str]]:
    """The judge's messages; the ``n``-th of ``of`` verdicts is its own request."""
    shown = JUDGE_TRANSCRIPT.replace("{text}", transcript) if shows_transcript(rubric) else ""
    repeat = JUDGE_REPEAT.format(n=n, of=of) if of > 1 else ""
    # Replaced in one pass, so a result holding "{transcript}" is never filled in.
    parts = {
        "{rubric}": rubric.strip(),
        "{output}": output,
        "{transcript}": shown,
        "{repeat}": repeat,
    }
    prompt = re.sub(
        r"\{(rubric|output|transcript|repeat)\}", lambda m: parts[m.group(0)], JUDGE_PROMPT
    )
    return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": prompt}]


def judge_payload(judge: Judge, messages: list[dict[str, str]]) -> Payload:
    """The judge's request: the Gateway's, or its provider's (in the form it honours)."""
    provider = judge.provider
    body: dict[str, Any] = {
        # A server's own name for the model, as a task's is sent (its `models:` map,
        # --llm-model).
        "model": provider.model_for(judge.model) if provider is not None else judge.model,
        "messages": messages,
        "max_tokens": JUDGE_MAX_TOKENS,
    }
    form = provider.structured_output if provider is not None else "json_schema"
    if form == "json_object":
        body["response_format"] = {"type": "json_object", "schema": JUDGE_SCHEMA}
    elif form != "none":
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "judge", "schema": JUDGE_SCHEMA},
        }
    if provider is None:
        return Payload(TaskApi.GATEWAY, CHAT_COMPLETIONS_PATH, body)
    body.update(thaw(provider.extra_body))
    return Payload(TaskApi.GATEWAY, f"{provider.base_url}/chat/completions", body, provider)


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the judge answered."""

    passed: bool
    score: float
    reason: str


def read_verdict(reply: str) -> Verdict | str:
    """The judge's verdict, or why its reply is not one."""
    fenced = _FENCED.match(reply)
    text = fenced.group(1) if fenced else reply
    try:
        data = json.loads(text)
    except ValueError:
        return f"the judge's reply is not JSON: {reply[:80]!r}"
    if not isinstance(data, dict):
        return "the judge's reply is not a JSON object"
    passed, score, reason = data.get("pass"), data.get("score"), data.get("reason")
    if not isinstance(passed, bool):
        return "the judge's reply has no pass (true or false)"
    if isinstance(score, bool) or not isinstance(score, int | float) or not 0 <= score <= 1:
        return f"the judge's score {score!r} is not a number from 0 to 1"
    return Verdict(passed, float(score), str(reason or ""))
