"""Moving LeMUR tasks to the LLM Gateway, in the recipe file itself.

AssemblyAI deprecated LeMUR on 2026-03-31. A LeMUR task becomes the same task on the
Gateway, key by key:

- ``api: lemur`` goes; ``final_model`` becomes ``model``, its current equivalent (see
  :data:`CURRENT_EQUIVALENT`);
- ``context`` becomes a system message, ``system: "Context: ..."`` (a mapping context
  as its JSON);
- ``max_output_size`` becomes ``max_tokens``;
- LeMUR sent the transcript beside the prompt; on the Gateway the prompt carries it:
  ``Transcript: {{ transcript.text }}`` is added at the end of ``prompt``, or the
  task's ``input_text`` when it had one.

The file is rewritten through ruamel.yaml's round trip, so comments, key order, quotes
and block scalars stay as they were. A task whose prompt is a ``prompt_file`` is not
rewritten (its file may serve other tasks): the migration says what to add to it.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# LeMUR's models (its LemurModel enum) and the Gateway model of the same family today.
CURRENT_EQUIVALENT = {
    "anthropic/claude-sonnet-4-20250514": "claude-sonnet-4-6",
    "anthropic/claude-opus-4-20250514": "claude-opus-4-6",
    "anthropic/claude-3-7-sonnet-20250219": "claude-sonnet-4-6",
    "anthropic/claude-3-5-sonnet": "claude-sonnet-4-6",
    "anthropic/claude-3-5-haiku-20241022": "claude-haiku-4-5-20251001",
    "anthropic/claude-3-opus": "claude-opus-4-6",
    "anthropic/claude-3-haiku": "claude-haiku-4-5-20251001",
    "default": "claude-sonnet-4-6",
}
LEMUR_DEFAULT_MODEL = "anthropic/claude-sonnet-4-20250514"
TRANSCRIPT_LINE = "Transcript: {{ transcript.text }}"
# A task over several items (`over:`) reads every item's transcript, as LeMUR did by
# their ids.
ITEMS_LINES = (
    "{% for entry in items %}\nTranscript of {{ entry.item.name }}: {{ entry.transcript.text }}\n"
    "{% endfor %}"
)
_LEMUR_KEYS = ("api", "final_model", "context", "max_output_size", "input_text")


@dataclass
class Migration:
    """What migrating one recipe did: its new text, and what it could not do."""

    text: str
    changed: list[str] = field(default_factory=list)  # task names rewritten
    left: list[str] = field(default_factory=list)  # why a task was left as it was

    @property
    def done(self) -> bool:
        return not self.left


def _yaml() -> Any:
    from ruamel.yaml import YAML

    yaml = YAML()  # round trip: comments, order and scalar styles are kept
    yaml.preserve_quotes = True
    yaml.width = 4096  # never fold a long line the user wrote on one
    yaml.indent(mapping=2, sequence=4, offset=2)
    return yaml


def migrate_text(text: str) -> Migration:
    """``text``, a recipe, with its LeMUR tasks rewritten as Gateway tasks."""
    yaml = _yaml()
    document = yaml.load(text)
    tasks = document.get("tasks") if isinstance(document, Mapping) else None
    result = Migration(text)
    if not isinstance(tasks, Mapping):
        return result
    for name, task in tasks.items():
        if isinstance(task, Mapping) and task.get("api") == "lemur":
            problem = _migrate_task(task)
            if problem is None:
                result.changed.append(str(name))
            else:
                result.left.append(f"task {name!r}: {problem}")
    if result.changed:
        out = io.StringIO()
        yaml.dump(document, out)
        result.text = out.getvalue()
    return result


def _migrate_task(task: Any) -> str | None:
    """Rewrite one LeMUR task in place; why not, when it cannot be done here."""
    from ruamel.yaml.scalarstring import LiteralScalarString

    if "prompt" not in task:
        return (
            "its prompt is in a prompt_file, which other tasks may share; remove "
            "`api: lemur` and the LeMUR keys yourself, and end that file with "
            f"`{TRANSCRIPT_LINE}`"
        )
    given_model = str(task.get("final_model", LEMUR_DEFAULT_MODEL))
    model = CURRENT_EQUIVALENT.get(given_model, "claude-sonnet-4-6")
    context = task.get("context")
    max_output = task.get("max_output_size")
    input_text = task.get("input_text")
    position = list(task).index("api")
    for key in _LEMUR_KEYS:
        if key in task:
            del task[key]
    task.insert(position, "model", model)
    if max_output is not None:
        task.insert(position + 1, "max_tokens", max_output)
    if context is not None:
        text = context if isinstance(context, str) else json.dumps(_plain(context))
        prompt_at = list(task).index("prompt")
        task.insert(prompt_at, "system", f"Context: {text}")
    read_all = ITEMS_LINES if "over" in task else TRANSCRIPT_LINE
    transcript = str(input_text) if input_text is not None else read_all
    prompt = str(task["prompt"]).rstrip("\n")
    task["prompt"] = LiteralScalarString(f"{prompt}\n\n{transcript}\n")
    return None


def _plain(value: Any) -> Any:
    """ruamel's round-trip containers as plain JSON values."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
