"""The command line's vars: ``--var NAME=VALUE`` and ``--vars FILE``, over a recipe's
``vars:`` block.

Per-environment values (staging and production, one audience or another) without
editing the recipe: files first, in the order given, then each ``--var``, the last
one winning. They replace the recipe's own ``vars:`` of the same name; an item's vars
(an input's ``vars:``, a list file's columns) still win over them, as over ``vars:``.
A ``--var`` value is text, as typed; a file's values keep their YAML types.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from runner.errors import UsageError

# The schema's rule for a name under `vars:` (schemas/recipe.schema.json).
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def parse_assignment(text: str) -> tuple[str, str]:
    """``NAME=VALUE`` as a pair; the value may hold ``=`` and may be empty."""
    name, equals, value = text.partition("=")
    if not equals:
        raise UsageError(f"--var {text!r}: write NAME=VALUE, e.g. --var audience=board")
    if not NAME.fullmatch(name):
        raise UsageError(
            f"--var {text!r}: {name!r} is not a variable name (letters, digits and _, "
            "not starting with a digit)"
        )
    return name, value


def read_vars_file(path: Path) -> dict[str, Any]:
    """A YAML (or JSON) file of ``name: value`` pairs."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"--vars {path}: cannot read it: {exc.strerror or exc}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise UsageError(f"--vars {path}: not YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise UsageError(
            f"--vars {path}: holds a {type(data).__name__}; write one `name: value` a line"
        )
    for name in data:
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise UsageError(
                f"--vars {path}: {name!r} is not a variable name (letters, digits and _, "
                "not starting with a digit)"
            )
    # YAML's dates and times become text: a var is JSON, as under `vars:`.
    return {str(name): _json(value) for name, value in data.items()}


def _json(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def command_line_vars(
    files: Sequence[Path] = (), assignments: Sequence[str] = ()
) -> dict[str, Any]:
    """Every file's vars, then every ``--var``: the last one given wins."""
    found: dict[str, Any] = {}
    for path in files:
        found.update(read_vars_file(path))
    for text in assignments:
        name, value = parse_assignment(text)
        found[name] = value
    return found
