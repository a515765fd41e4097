"""Located problems in recipe files, and the three ways ``validate`` prints them.

A :class:`Diagnostic` always says where (file, line, column, key path), what is
wrong, and what to do, e.g.::

    recipes/x.yaml:12:5: $.tasks.summary.modle: unknown key 'modle'; did you mean 'model'?
"""

from __future__ import annotations

import difflib
import functools
import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True, order=True)
class Diagnostic:
    """One problem at one place. Ordered by file, line, column so reports read top-down."""

    file: str
    line: int  # 1-based; 0 when the problem concerns the whole file
    column: int  # 1-based; 0 when unknown
    path: str  # JSON-path style key path, "$.tasks.summary.model"; "" when not about a key
    message: str
    severity: Severity = Severity.ERROR

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def location(self) -> str:
        if self.line <= 0:
            return self.file
        if self.column <= 0:
            return f"{self.file}:{self.line}"
        return f"{self.file}:{self.line}:{self.column}"

    def format(self) -> str:
        prefix = "warning: " if self.severity is Severity.WARNING else ""
        where = f"{self.path}: " if self.path else ""
        return f"{self.location()}: {prefix}{where}{self.message}"

    def to_github(self) -> str:
        """A GitHub Actions workflow command that annotates the line in the pull request."""
        kind = "error" if self.is_error else "warning"
        where = f"{self.path}: " if self.path else ""
        return workflow_command(
            kind,
            where + self.message,
            title=f"transcript-runner {kind}",
            file=self.file,
            line=self.line,
            column=self.column,
        )

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["severity"] = self.severity.value
        return data


def workflow_command(
    kind: str,
    message: str,
    *,
    title: str,
    file: str | None = None,
    line: int = 0,
    column: int = 0,
) -> str:
    """The one writer of GitHub workflow commands (``::error file=…,line=…::message``):
    ``validate``'s diagnostics and a run's failures are annotated alike."""
    props = []
    if file:
        props.append(f"file={escape_property(file)}")
        if line > 0:
            props.append(f"line={line}")
            if column > 0:
                props.append(f"col={column}")
    props.append(f"title={escape_property(title)}")
    return f"::{kind} {','.join(props)}::{escape_data(message)}"


_LINE_BREAKS = re.compile("\r\n|[\r\n\x0b\x0c\x85\u2028\u2029]")


def unreadable(path: Path | str, exc: OSError, what: str) -> str:
    """A file the user named that cannot be read, said the same way by every command:
    ``run.json: no such manifest``, ``a/run.json: Not a directory``."""
    if isinstance(exc, FileNotFoundError):
        return f"{path}: no such {what}"
    return f"{path}: {exc.strerror or exc}"


def one_line(text: str) -> str:
    """Text from data (a server's error, a list cell) made safe to print as part of a
    log line: its line breaks become `` ⏎ `` and a `::` cannot start a workflow command
    (``::stop-commands::`` in a reply would silence every later annotation)."""
    return _LINE_BREAKS.sub(" ⏎ ", text).replace("::", ":\u200b:")


def escape_data(value: str) -> str:
    """A workflow command's message, escaped as GitHub reads it (``%`` first, then line
    breaks), so a multi-line error stays one annotation instead of ending the command."""
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(value: str) -> str:
    """A workflow command's property (``file=``, ``title=``): ``:`` and ``,`` separate
    properties there, so they are escaped too."""
    return escape_data(value).replace(":", "%3A").replace(",", "%2C")


def closest(word: str, choices: Iterable[str]) -> str | None:
    """The choice most like ``word``, if any is close enough to be a typo of it."""
    matches = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return matches[0] if matches else None


def display_path(path: Path | str) -> str:
    """A path as a person would type it: relative to the working folder when inside."""
    return display_resolved(Path(path).resolve())


def display_resolved(path: Path) -> str:
    """:func:`display_path` of a path already resolved (no symlink left to follow):
    outputs are shown per task, and resolving each again cost a run real time."""
    try:
        return str(path.relative_to(_working_folder(os.getcwd())))
    except ValueError:
        return str(path)


@functools.lru_cache(maxsize=8)
def _working_folder(cwd: str) -> Path:
    """The working folder, resolved; cached per folder (tests change it)."""
    return Path(cwd).resolve()


def suggest(word: str, choices: Iterable[str], prefix: str = "") -> str:
    """``"; did you mean 'model'?"`` when a close match exists, else ``""``."""
    match = closest(word, choices)
    return f"; did you mean {prefix + match!r}?" if match else ""


def format_report(diagnostics: Sequence[Diagnostic], files_checked: int, fmt: str) -> str:
    """Render a whole ``validate`` report in ``text``, ``json`` or ``github`` form."""
    ordered = sorted(diagnostics)
    errors = sum(1 for d in ordered if d.is_error)
    warnings = len(ordered) - errors
    if fmt == "json":
        return json.dumps(
            {
                "files_checked": files_checked,
                "errors": errors,
                "warnings": warnings,
                "valid": errors == 0,
                "diagnostics": [d.to_json() for d in ordered],
            },
            indent=2,
        )
    lines = [d.to_github() if fmt == "github" else d.format() for d in ordered]
    lines.append(_summary_line(files_checked, errors, warnings))
    return "\n".join(lines)


def _summary_line(files: int, errors: int, warnings: int) -> str:
    noun = "recipe" if files == 1 else "recipes"
    if errors == 0:
        tail = f" ({_plural(warnings, 'warning')})" if warnings else ""
        return f"{files} {noun} valid{tail}"
    return f"{_plural(errors, 'error')}, {_plural(warnings, 'warning')} in {files} {noun}"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"
