"""The suite is hermetic: no test reads a file outside the checkout.

A fresh clone has nothing beside it, so a test that reads a folder beside the checkout
(or any other folder a developer happens to have) passes on one machine and fails on
the next. An audit hook (PEP 578) sees every ``open`` and directory listing in the test process;
:func:`check` fails the test that made one outside the checkout and outside the places
any Python process reads (the interpreter, its packages, the system's own files, and
the temporary folder where ``tmp_path`` lives).

Subprocesses are not watched: the command lines they run are given their paths by the
test, which this hook has already seen.
"""

from __future__ import annotations

import functools
import os
import site
import sys
import sysconfig
import tempfile
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parent.parent
# What Python itself opens or lists. Native libraries (ONNX Runtime, CTranslate2) read
# files without an audit event: their paths come from the tests, which are seen here.
_EVENTS = frozenset({"open", "os.listdir", "os.scandir", "glob.glob", "sqlite3.connect"})
# Read by the interpreter, its libraries and the system (certificates, time zones,
# MIME types, shared libraries, Chromium and espeak-ng), never by a test on purpose.
_SYSTEM = ("/dev", "/proc", "/sys", "/etc", "/usr", "/lib", "/lib64", "/var/lib", "/run")
# pdb reads ~/.pdbrc when a doctest runs. Caches are not allowed: conftest points
# Hugging Face's and XDG's at a temporary folder, so a model found there is a test's.
_HOME = (".pdbrc",)


def _folders(places: set[str]) -> tuple[str, ...]:
    resolved = {os.path.realpath(place) for place in places if place}
    return tuple(sorted(place.rstrip(os.sep) + os.sep for place in resolved))


# Where the interpreter and its packages live (a virtual environment may sit beside
# the checkout), and the user's and system's own files.
_PYTHON = _folders(
    {
        sys.prefix,
        sys.base_prefix,
        sys.exec_prefix,
        sys.base_exec_prefix,
        *site.getsitepackages(),
        *sysconfig.get_paths().values(),
        *_SYSTEM,
        *(os.path.join(os.path.expanduser("~"), name) for name in _HOME),
    }
)
_INSIDE = _folders({str(CHECKOUT)})
_TEMP = _folders({tempfile.gettempdir()})
_BESIDE = _folders({str(CHECKOUT.parent)}) if CHECKOUT.parent != CHECKOUT.parent.parent else ()


def follow_temp_folder() -> None:
    """The temporary folder looked up again, once conftest has moved it (``TMPDIR``)."""
    global _TEMP
    _TEMP = _folders({tempfile.gettempdir()})


@functools.lru_cache(maxsize=4096)
def _real_folder(folder: str) -> str:
    return os.path.realpath(folder)


def _realpath(path: str) -> str:
    """``os.path.realpath``, with each folder resolved once per test: realpath reads a
    link of every part in Python (130 us a path in a test's folder, thousands of opens a
    test file). Exact but for a folder swapped for a link within one test (the cache is
    emptied by :meth:`Guard.take`). A path with ``..`` is resolved whole (a link before
    it decides where it leads), and a file that is itself a link is followed."""
    absolute = os.path.join(os.getcwd(), path) if not os.path.isabs(path) else path
    if ".." in absolute.split(os.sep):
        return os.path.realpath(path)
    folder, name = os.path.split(os.path.normpath(absolute))
    real = os.path.join(_real_folder(folder), name)
    return os.path.realpath(real) if os.path.islink(real) else real


def outside_the_checkout(path: str) -> bool:
    """Whether a test may not read ``path``: beside the checkout (a clone has nothing
    there, even when the checkout itself lies in the temporary folder), or anywhere
    but the checkout, the interpreter's places and the temporary folder."""
    full = _realpath(path) + os.sep
    if full.startswith(_INSIDE + _PYTHON):
        return False
    if full.startswith(_BESIDE):
        # pytest's tmp_path and tempfile's folders, when the checkout is in /tmp too
        first = full[len(_BESIDE[0]) :].split(os.sep, 1)[0]
        return not (full.startswith(_TEMP) and first.startswith(("pytest-of-", "tmp")))
    return not full.startswith(_TEMP)


class Guard:
    """Paths opened outside the checkout since the last :meth:`take`."""

    def __init__(self) -> None:
        self.outside: list[str] = []
        self.watching = False

    def hook(self, event: str, args: tuple[object, ...], _events: frozenset[str] = _EVENTS) -> None:
        # Called for every audited event (thousands a test): the cheapest test first.
        if event not in _events or not self.watching or not args:
            return
        path = args[0]
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        if not isinstance(path, str) or not path or path == ":memory:":
            return  # a file descriptor, the current folder, or no file at all
        if outside_the_checkout(path):  # (realpath raises no audit event of its own)
            self.outside.append(path)

    def take(self) -> list[str]:
        found, self.outside = self.outside, []
        _real_folder.cache_clear()  # each test's folders resolved afresh
        return found


GUARD = Guard()
sys.addaudithook(GUARD.hook)
