"""The paths a user names on the command line for the runner to write, checked before
anything runs.

A path the runner cannot use (a file where a folder must be, a folder where a file
must be, a path that goes through a file) would otherwise surface as an ``OSError``
mid-run, after transcriptions were paid for, or as a traceback. Here it is a usage
error naming the option, the path and what is in the way. Nothing is created: a
missing folder is fine, the run makes it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from runner.diagnostics import unreadable
from runner.errors import UsageError


def check_paths(
    *,
    folders: Mapping[str, Path | None] | None = None,
    files: Mapping[str, Path | None] | None = None,
    read_folders: Mapping[str, Path | None] | None = None,
) -> None:
    """Each given path (by its option: ``{"--out": path}``; None is "not given") can be
    or become a folder (``folders``) or a file (``files``); else a :class:`UsageError`.
    ``read_folders`` are only read (``plan --state-dir``, ``render --out``): missing
    is fine, but not a file, nor a path through one."""
    for option, path in (folders or {}).items():
        if path is not None:
            _check(option, path, folder=True)
    for option, path in (read_folders or {}).items():
        if path is not None:
            _check(option, path, folder=True, writing=False)
    for option, path in (files or {}).items():
        if path is not None:
            _check(option, path, folder=False)


def read_problem(exc: OSError, what: str) -> str:
    """An ``OSError`` on reading a file the user named, in a line: ``run.json: no such
    manifest``, ``a/run.json: Not a directory``."""
    return unreadable(exc.filename, exc, what)


def _check(option: str, path: Path, *, folder: bool, writing: bool = True) -> None:
    shown = f"{option} {path}"
    try:
        if path.is_dir() and not folder:
            raise UsageError(f"{shown}: it is a folder; name a file")
        if path.exists() and not path.is_dir() and folder:
            raise UsageError(f"{shown}: it is a file, not a folder; name a folder")
        # The nearest folder that exists (the path itself, for a folder): where the run
        # will make the rest, or write.
        candidates = [path, *path.parents] if folder else list(path.parents)
        existing = next(candidate for candidate in candidates if candidate.exists())
    except OSError as exc:  # a name too long, a path the system refuses to look at
        raise UsageError(f"{shown}: {exc.strerror or exc}") from None
    if not existing.is_dir():
        raise UsageError(
            f"{shown}: {existing} is a file, so nothing can be made inside it; "
            "name a path under a folder"
        )
    if writing and not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"{shown}: cannot write in {existing}/; name a folder you can write to")
