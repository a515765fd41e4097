"""Where results go: one folder per item, written atomically.

An item's folder comes from ``output.dir`` in the recipe (relative to the folder
the runner is started in, so CI finds results in ``./out``) or from ``--out DIR``
on the command line (``DIR/<recipe>/<item>``). Item names
are already safe single path segments (:func:`runner.items.safe_name`), and task
output names are checked by ``validate``, so nothing is written outside the folder.
"""

from __future__ import annotations

import errno
import functools
import itertools
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from runner.diagnostics import display_path
from runner.errors import DiskFull, OutputError
from runner.items import Item, long_name_problem
from runner.prompt.templating import TemplateEngine
from runner.prompt.views import folder_context
from runner.recipe.model import Recipe
from runner.transcript.model import Transcript


def item_dir(
    recipe: Recipe,
    item: Item,
    engine: TemplateEngine,
    out: Path | None,
    resolver: FolderResolver | None = None,
) -> Path:
    """The folder holding one item's outputs.

    ``output.dir`` may take values from list files and vars; whatever they hold, the
    folder stays inside the part of the template written before the first variable
    (``out/`` in ``out/{{ vars.customer }}``), so a value of ``../..`` cannot escape it.
    """
    if out is not None:
        folder, root = out / recipe.name / item.name, out
        why = "a folder on the way is a symbolic link leading out; remove the link"
    else:
        context = folder_context(recipe, item.view(recipe))
        folder = Path(engine.render(recipe.output_dir, context).strip())
        root = _static_root(recipe.output_dir.source)
        why = (
            "a value in its vars or list row holds '..' or an absolute path, or a folder "
            "on the way is a symbolic link leading out; outputs stay inside the folder "
            "output.dir starts with"
        )
    if too_long := long_name_problem(str(folder)):
        raise OutputError(folder, too_long)
    # Resolved, a symbolic link on the way counts where it leads: an item folder (or
    # the recipe's) linked elsewhere must not receive this run's outputs.
    resolve = resolver.resolve if resolver is not None else Path.resolve
    if not resolve(folder).is_relative_to(resolve(root)):
        what = "the item's folder leads" if out is not None else "output.dir renders to a folder"
        raise OutputError(folder, f"{what} outside {display_path(root) or '.'}/ ({why})")
    return folder


GROUPS_FOLDER = "groups"  # beside the items' folders: one folder per group (`over:`)


def group_dir(recipe: Recipe, name: str, out: Path | None) -> Path:
    """The folder of one group's outputs (``over:``): ``groups/NAME`` in the recipe's
    folder of ``--out``, else under the folder ``output.dir`` starts with
    (``out/<recipe>/groups/all`` by default). ``name`` is path-safe already
    (:func:`runner.items.group_name`); the folder is checked to stay inside all the same."""
    root = out if out is not None else _static_root(recipe.output_dir.source)
    folder = root / recipe.name / GROUPS_FOLDER / name
    if not folder.resolve().is_relative_to(root.resolve()):
        raise OutputError(folder, f"the group's folder leads outside {display_path(root) or '.'}/")
    return folder


class FolderResolver:
    """``Path.resolve`` for many folders side by side (``validate`` on a million list
    rows): each parent folder is resolved once, and a folder's own name is looked at
    with one ``lstat``, where ``resolve`` looks at every folder on the way each time.
    For one command's checks only: a link made later is not seen."""

    _KEPT = 4096  # parents remembered; forgotten all at once past that

    def __init__(self) -> None:
        self._parents: dict[Path, Path] = {}

    def resolve(self, path: Path) -> Path:
        parent, name = path.parent, path.name
        if name in ("", ".", "..") or parent == path:
            return path.resolve()
        base = self._parents.get(parent)
        if base is None:
            if len(self._parents) >= self._KEPT:
                self._parents.clear()
            base = self._parents[parent] = parent.resolve()
        candidate = base / name
        return candidate.resolve() if candidate.is_symlink() else candidate


def _static_root(template: str) -> Path:
    """The folder a template names before its first variable or tag: ``out`` for
    ``out/{{ recipe.name }}``, the working folder when it starts with a variable."""
    literal = template.split("{", 1)[0]
    head = literal.rsplit("/", 1)[0] if "/" in literal else ""
    if literal.startswith("/") and not head:
        head = "/"
    return Path(head or ".")


def contained(folder: Path, relative: str) -> Path:
    """``folder/relative`` (resolved), refusing any path that would land outside
    ``folder``. The folder is resolved once per item folder and the rest is checked
    by its names: task output names are fixed in the recipe and checked by
    ``validate`` (no ``..``, not absolute), and resolving every output again cost a
    10,000-item run seconds of CPU."""
    base = _resolved(str(folder), os.getcwd())
    target = Path(os.path.normpath(base / relative))
    if target.parent != base:
        # An output in a subfolder: a symlink on the way could lead elsewhere.
        target = target.parent.resolve() / target.name
    if not target.is_relative_to(base):
        raise OutputError(relative, f"it would be written outside {folder}")
    return target


@functools.lru_cache(maxsize=256)
def _resolved(folder: str, cwd: str) -> Path:
    """``folder`` resolved from ``cwd``: the few items at work share a few folders."""
    return (Path(cwd) / folder).resolve()


_temporary_names = itertools.count()
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write via a temporary file in the same folder and a rename.

    A crash or Ctrl-C leaves either the old file or the new one, never half of
    one, so an output that exists is always complete. There is no fsync per file:
    the rename is atomic against the process dying, and syncing hundreds of files
    would stall a run for a guarantee (surviving power loss) no rerun needs. The
    file gets the mode any new file of this process gets (the umask applies), so a
    team's group-readable umask holds.
    """
    payload = data.encode("utf-8") if isinstance(data, str) else data
    try:
        handle, temporary = _create_temporary(path)
    except OSError as exc:
        raise _write_error(path, exc) from exc
    try:
        try:
            view = memoryview(payload)
            while view:
                view = view[os.write(handle, view) :]
        finally:
            os.close(handle)
        os.replace(temporary, path)
    except BaseException as exc:
        temporary.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise _write_error(path, exc) from exc
        raise


@contextmanager
def atomic_stream(path: Path) -> Iterator[IO[str]]:
    """A text file too big to hold in memory (a merged table), streamed to a temporary
    file beside ``path`` and renamed when the block ends, as :func:`write_atomic`
    writes: whole or absent. Lines are written as given (no newline translation).

    An ``OSError`` raised in the block is taken for this file's write error
    (:class:`OutputError`, or :class:`DiskFull`), so what the block reads must report
    its own trouble as something else.
    """
    try:
        handle, temporary = _create_temporary(path)
    except OSError as exc:
        raise _write_error(path, exc) from exc
    try:
        with open(handle, "w", encoding="utf-8", newline="") as stream:
            yield stream
        os.replace(temporary, path)
    except BaseException as exc:
        temporary.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise _write_error(path, exc) from exc
        raise


def _create_temporary(path: Path) -> tuple[int, Path]:
    """A new, exclusive temporary file beside ``path`` (its folder made if missing).

    Named by process and a counter, not at random: unique within the run, and a name
    left by a crashed run (the same pid, years apart) is skipped, never overwritten.
    """
    made_folder = False
    while True:
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{next(_temporary_names)}.tmp")
        try:
            return os.open(temporary, _CREATE_FLAGS, 0o666), temporary
        except FileExistsError:
            continue
        except FileNotFoundError:
            if made_folder:
                raise
            path.parent.mkdir(parents=True, exist_ok=True)
            made_folder = True


# The disk itself refuses: every later write would fail too.
_DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})


def _write_error(path: Path, exc: OSError) -> OutputError | DiskFull:
    """One file's trouble (a folder in the way, a permission) is that task's; a full or
    read-only disk stops the run."""
    reason = exc.strerror or str(exc)
    return DiskFull(path, reason) if exc.errno in _DISK_ERRNOS else OutputError(path, reason)


def write_json(path: Path, value: Any, *, compact: bool = False) -> None:
    """``value`` as JSON: indented for people, or ``compact`` for machine-sized data (a
    transcript's thousands of words, written per item: indenting cost a quarter of a
    run's CPU)."""
    text = (
        json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        if compact
        else json.dumps(value, indent=2, ensure_ascii=False)
    )
    write_atomic(path, text + "\n")


def write_transcript(path: Path, transcript: Transcript) -> None:
    """``transcript.json``: the bytes AssemblyAI sent (compact JSON, already redacted),
    or the decoded object written compact when there are no bytes to keep."""
    if transcript.body is not None:
        body = transcript.body
        write_atomic(path, body if body.endswith(b"\n") else body + b"\n")
    else:
        write_json(path, dict(transcript.raw), compact=True)
