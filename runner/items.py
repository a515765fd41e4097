"""Expand a recipe's ``inputs:`` entries into items, one transcript each.

Globs and list files are resolved relative to the recipe (list rows relative to
the list file). Item names become folder names, so they are made safe for paths
and unique within the recipe. Every problem names its place: the recipe key, or
``calls.csv:4`` for a bad row.
"""

from __future__ import annotations

import csv
import glob
import hashlib
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path, PurePath
from typing import Any
from urllib.parse import urlparse

from runner.diagnostics import display_path
from runner.digests import DigestSet
from runner.errors import InputProblem, InputsInvalid, TemplateProblem, UsageError
from runner.jsonl import read_objects
from runner.prompt.templating import TemplateEngine
from runner.prompt.views import ItemView, Namespace, RecipeView
from runner.recipe.document import KeyPath
from runner.recipe.model import JSON, InputKind, InputSpec, Recipe, freeze

SOURCE_COLUMNS = ("url", "file", "transcript_id", "transcript_file")
# A cell may hold a whole document (notes, a prior summary): far above csv's 128 KiB.
MAX_CELL = 16 * 2**20
csv.field_size_limit(MAX_CELL)
_TRANSCRIPT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
MAX_NAME = 100
MAX_COMPONENT = 255  # bytes in one file or folder name: what file systems accept


@dataclass(frozen=True, slots=True)
class Item:
    """One recording or transcript to process."""

    name: str
    kind: InputKind  # never LIST: rows resolve to their own kind
    source: str  # a URL, an absolute file path, or a transcript id
    vars: Mapping[str, JSON]
    entry: int  # index in inputs:
    origin: str  # where it was declared, for messages: "recipes/x.yaml:12" or "calls.csv:4"

    def relative_source(self, recipe: Recipe) -> str:
        """The source as people and templates see it: files relative to the recipe's
        folder (the same in every checkout), URLs and ids as they are."""
        path = Path(self.source)
        if path.is_absolute() and path.is_relative_to(recipe.base_dir):
            return str(path.relative_to(recipe.base_dir))
        return self.source

    def view(self, recipe: Recipe) -> ItemView:
        """``{{ item }}`` in every template: prompts, ``output.dir`` and previews alike."""
        return ItemView(self.name, self.relative_source(recipe), Namespace("item.vars", self.vars))


@dataclass(frozen=True, slots=True)
class Shard:
    """``--shard K/N``: this job runs the items whose stable hash falls in bucket K."""

    index: int  # 1-based
    count: int

    @classmethod
    def parse(cls, text: str, environ: Mapping[str, str] | None = None) -> Shard:
        """``K/N``; or ``auto`` (``auto/N``): this job's place in a Kubernetes Indexed
        Job or a Slurm array, read from the variables they set (:meth:`from_environment`)."""
        k, _, n = text.strip().partition("/")
        if k == "auto":
            if n and not (n.isdigit() and int(n) >= 1):
                raise UsageError(f"--shard {text}: give the count as a whole number, e.g. auto/4")
            return cls.from_environment(os.environ if environ is None else environ, n or None)
        if not (k.isdigit() and n.isdigit()) or not 1 <= int(k) <= int(n):
            raise UsageError(
                f"--shard {text}: give K/N with 1 <= K <= N, e.g. 2/4, or auto in a "
                "Kubernetes Indexed Job or a Slurm array"
            )
        return cls(int(k), int(n))

    @classmethod
    def from_environment(cls, env: Mapping[str, str], count: str | None = None) -> Shard:
        """This job's shard from its scheduler. A Slurm array says its task and how many
        (``SLURM_ARRAY_TASK_ID``, ``_MIN``, ``_STEP``, ``_COUNT``); a Kubernetes
        Indexed Job says only the index (``JOB_COMPLETION_INDEX``, from 0), so the
        count comes from ``--shard auto/N`` or ``TRANSCRIPT_RUNNER_SHARD_COUNT``, set
        to the Job's ``completions``."""
        given = count or env.get(SHARD_COUNT_ENV)
        if "SLURM_ARRAY_TASK_ID" in env:
            first = _whole(env, "SLURM_ARRAY_TASK_MIN", "0")
            step = _whole(env, "SLURM_ARRAY_TASK_STEP", "1") or 1
            index = (_whole(env, "SLURM_ARRAY_TASK_ID") - first) // step
            total = given or env.get("SLURM_ARRAY_TASK_COUNT")
            where = "the Slurm array (SLURM_ARRAY_TASK_ID)"
        elif "JOB_COMPLETION_INDEX" in env:
            index, total = _whole(env, "JOB_COMPLETION_INDEX"), given
            where = "the Kubernetes Indexed Job (JOB_COMPLETION_INDEX)"
        else:
            raise UsageError(
                "--shard auto: no JOB_COMPLETION_INDEX (a Kubernetes Indexed Job) or "
                "SLURM_ARRAY_TASK_ID (a Slurm array) is set; give the shard as K/N"
            )
        if total is None or not total.strip().isdigit() or int(total) < 1:
            raise UsageError(
                f"--shard auto: {where} does not say how many shards there are; give "
                f"--shard auto/N or set {SHARD_COUNT_ENV}=N (the Job's completions)"
            )
        if not 0 <= index < int(total):
            raise UsageError(f"--shard auto: index {index} from {where} is not below {total}")
        return cls(index + 1, int(total))

    def takes(self, recipe: str, source: str) -> bool:
        # A hash of what the item is (its source), not of its position or display name
        # (which gains a -2 suffix when a namesake is added): adding an input moves no
        # other item to another shard, so each shard's state and outputs stay valid.
        digest = hashlib.sha256(f"{recipe}\0{source}".encode()).digest()
        return int.from_bytes(digest[:8], "big") % self.count == self.index - 1

    def select(self, recipe: Recipe, items: Sequence[Item]) -> list[Item]:
        """This shard's items; repeats of one source are told apart by their order.

        Local files count by their path relative to the recipe, so every CI job, each
        in its own checkout folder, splits the items the same way.
        """
        seen: dict[str, int] = {}
        chosen = []
        for item in items:
            source = item.relative_source(recipe)
            repeat = seen.get(source, 0)
            seen[source] = repeat + 1
            if self.takes(recipe.name, f"{source}\0{repeat}" if repeat else source):
                chosen.append(item)
        return chosen


SHARD_COUNT_ENV = "TRANSCRIPT_RUNNER_SHARD_COUNT"


def _whole(env: Mapping[str, str], name: str, default: str | None = None) -> int:
    """A whole number the scheduler set; a usage error naming it otherwise."""
    text = env.get(name, default)
    if text is None or not text.strip().lstrip("-").isdigit():
        raise UsageError(f"--shard auto: {name}={text!r} is not a whole number")
    return int(text)


def expand(recipe: Recipe, engine: TemplateEngine) -> list[Item]:
    """Every item of every input entry, named uniquely; raises :class:`InputsInvalid`."""
    problems: list[InputProblem] = []
    items = list(stream(recipe, engine, problems))
    if problems:
        raise InputsInvalid(problems)
    return _unique_names(items)


def stream(recipe: Recipe, engine: TemplateEngine, problems: list[InputProblem]) -> Iterator[Item]:
    """Every item as its input entry or list row is read, named as the row says (not yet
    unique: :class:`NameBook`); what cannot expand is added to ``problems``, as
    :func:`expand` would raise it. A list file is read a row at a time, never whole."""
    for spec in recipe.inputs:
        try:
            if spec.kind is InputKind.LIST:
                yield from _expand_list(recipe, spec, engine, problems)
            else:
                yield from _expand_entry(recipe, spec, engine)
        except InputsInvalid as invalid:
            problems.extend(invalid.problems)


def list_columns(recipe: Recipe, spec: InputSpec) -> tuple[str, ...]:
    """The columns of a list file (header of a CSV, keys of any JSONL row)."""
    path = _resolve(recipe, spec.value)
    columns: dict[str, None] = {}
    try:
        if path.suffix.lower() != ".jsonl":  # a CSV's header names them: no need to read on
            with path.open(encoding="utf-8-sig", newline="") as handle:
                return tuple(next(csv.reader(handle), ()))
        for _, row in _read_rows(path):
            columns.update(dict.fromkeys(row))
    except (OSError, ValueError, csv.Error):
        return ()
    return tuple(columns)


def _expand_entry(recipe: Recipe, spec: InputSpec, engine: TemplateEngine) -> Iterator[Item]:
    here: KeyPath = ("inputs", spec.index, spec.kind.value)
    origin = f"{recipe.display}:{spec.line}"
    if spec.kind in (InputKind.FILE, InputKind.TRANSCRIPT_FILE, InputKind.LIST) and any(
        not char.isprintable() for char in spec.value
    ):
        raise InputsInvalid(
            [InputProblem(here, f"{spec.value!r} holds an invisible character; retype the path")]
        )
    if spec.kind in (InputKind.FILE, InputKind.TRANSCRIPT_FILE, InputKind.LIST) and (
        problem := long_name_problem(spec.value)
    ):
        raise InputsInvalid([InputProblem(here, problem)])
    if spec.kind is InputKind.LIST:
        return
    if spec.kind in (InputKind.FILE, InputKind.TRANSCRIPT_FILE):
        matches = _glob(recipe, spec.value)
        if not matches:
            raise InputsInvalid(
                [
                    InputProblem(
                        here,
                        f"no files match {spec.value!r} (looked in "
                        f"{display_path(recipe.base_dir)}/); paths are relative to the recipe file",
                    )
                ]
            )
        for number, path in enumerate(matches, 1):
            yield _item(recipe, spec, engine, spec.kind, str(path), path.stem, number, {}, origin)
    else:
        problem = _source_problem(spec.kind, spec.value)
        if problem is not None:
            raise InputsInvalid([InputProblem(here, problem)])
        stem = _url_stem(spec.value) if spec.kind is InputKind.URL else spec.value
        yield _item(recipe, spec, engine, spec.kind, spec.value, stem, 1, {}, origin)


def _expand_list(
    recipe: Recipe, spec: InputSpec, engine: TemplateEngine, problems: list[InputProblem]
) -> Iterator[Item]:
    """The rows' items as they are read; bad rows go to ``problems`` once the file is read
    to its end (a file that cannot be read is that one problem, as its rows are unsure)."""
    yield from _expand_entry(recipe, spec, engine)  # the checks of the path itself
    here: KeyPath = ("inputs", spec.index, "list")
    path = _resolve(recipe, spec.value)
    if not _is_file(path):
        raise InputsInvalid(
            [
                InputProblem(
                    here,
                    f"list file {spec.value!r} not found (looked for {display_path(path)}); "
                    "paths are relative to the recipe file",
                )
            ]
        )
    found: list[InputProblem] = []
    shown = display_path(path)
    made = rows = 0
    try:
        for line, row in _read_rows(path):
            rows += 1
            try:
                item = _row_item(recipe, spec, engine, path, shown, line, row, made + 1)
            except InputsInvalid as invalid:
                found.extend(invalid.problems)
                continue
            made += 1
            yield item
    except (OSError, ValueError) as exc:
        message = f"cannot read list file {display_path(path)}: {exc}"
        raise InputsInvalid([InputProblem(here, message)]) from None
    if not rows:
        raise InputsInvalid([InputProblem(here, f"list file {display_path(path)} has no rows")])
    problems.extend(found)


def _row_item(
    recipe: Recipe,
    spec: InputSpec,
    engine: TemplateEngine,
    path: Path,
    shown: str,
    line: int,
    row: dict[str, Any],
    number: int,
) -> Item:
    """One list row's item, or :class:`InputsInvalid` located at its line."""
    here: KeyPath = ("inputs", spec.index, "list")

    def invalid(message: str) -> InputsInvalid:
        return InputsInvalid([InputProblem(here, message, file=shown, line=line)])

    sources = [c for c in SOURCE_COLUMNS if str(row.get(c) or "").strip()]
    if len(sources) != 1:
        raise invalid(_row_source_problem(sources))
    kind = InputKind(sources[0])
    value = str(row[kind.value]).strip()
    extra = {k: v for k, v in row.items() if k not in SOURCE_COLUMNS and k != "name"}
    if kind in (InputKind.FILE, InputKind.TRANSCRIPT_FILE):
        if too_long := long_name_problem(value):
            raise invalid(too_long)
        file = (path.parent / value).resolve()
        if not _is_file(file):
            raise invalid(f"{kind.value} {value!r} not found (relative to the list file)")
        value, stem = str(file), file.stem
    else:
        problem = _source_problem(kind, value)
        if problem is not None:
            raise invalid(problem)
        stem = _url_stem(value) if kind is InputKind.URL else value
    if row.get("name"):
        stem = str(row["name"])
    return _item(recipe, spec, engine, kind, value, stem, number, extra, f"{shown}:{line}", row)


def long_name_problem(path: str) -> str | None:
    """Why ``path`` cannot be a file's path, when one of its names is longer than file
    systems allow (which they refuse with an error, not a missing file)."""
    for name in PurePath(path).parts:
        size = len(name.encode("utf-8", "surrogateescape"))
        if size > MAX_COMPONENT:
            return (
                f"{name[:40]}…: this name in the path is {size} bytes long; file systems "
                f"allow at most {MAX_COMPONENT}; shorten it"
            )
    return None


def _is_file(path: Path) -> bool:
    """``path.is_file()``, False also when the system refuses to look (a path too long)."""
    try:
        return path.is_file()
    except OSError:
        return False


def _source_problem(kind: InputKind, value: str) -> str | None:
    """Why a transcript id or URL from a recipe or a list cannot be sent, if it cannot:
    an id becomes part of a request path, so ``..`` or ``/`` would reach other endpoints."""
    if kind is InputKind.TRANSCRIPT_ID and not _TRANSCRIPT_ID.fullmatch(value):
        return (
            f"transcript_id {value!r} is not a transcript id (letters, digits, '-' and '_', "
            "as AssemblyAI shows them, e.g. 6c1b8a4e-1f4e-4c2e-9d2a-3f6f0e8b1a77)"
        )
    if kind is InputKind.URL and urlparse(value).scheme not in ("http", "https"):
        return f"url {value!r} is not an http(s) URL; AssemblyAI fetches audio from the web"
    return None


def _row_source_problem(sources: list[str]) -> str:
    columns = ", ".join(SOURCE_COLUMNS[:-1]) + f" or {SOURCE_COLUMNS[-1]}"
    if not sources:
        return f"this row names no source; fill in one of the columns {columns}"
    return (
        f"this row fills in both {' and '.join(sources)}; "
        f"keep exactly one of the columns {columns} per row"
    )


def _item(
    recipe: Recipe,
    spec: InputSpec,
    engine: TemplateEngine,
    kind: InputKind,
    source: str,
    stem: str,
    number: int,
    row_vars: Mapping[str, Any],
    origin: str,
    row: Mapping[str, Any] | None = None,
) -> Item:
    variables = {**spec.vars, **row_vars}
    name = stem
    if spec.name is not None:
        context = {
            "row": Namespace("row", row or {}),
            "vars": Namespace("vars", {**recipe.vars, **variables}),
            "recipe": RecipeView.of(recipe),
            "source": source,
            "stem": stem,
            "index": number,
        }
        try:
            name = engine.render(spec.name, context).strip()
        except TemplateProblem as problem:
            raise InputsInvalid(
                [InputProblem(("inputs", spec.index, "name"), p.message) for p in problem.problems]
            ) from None
    return Item(
        name=safe_name(name, fallback=f"item-{number}"),
        kind=kind,
        source=source,
        vars=freeze(variables),
        entry=spec.index,
        origin=origin,
    )


def safe_name(name: str, fallback: str) -> str:
    """A name usable as one folder: no separators, no leading dots, at most 100 chars."""
    cleaned = _UNSAFE.sub("-", name).strip("-.")[:MAX_NAME].rstrip("-.")
    return cleaned or fallback


class NameBook:
    """Names made unique, as items go by: the first item with a name keeps it; a repeat
    gets ``-2``, ``-3``... never a name any item has (later ones too), nor one given.

    Names are compared without case, since case-insensitive file systems would merge
    ``A`` and ``a`` into one folder. Call :meth:`first` for every item in order, then
    :meth:`renamed` for the repeats in order: a repeat's name depends on every name.
    ``compact`` keeps the names as digests (``validate`` on a million rows).
    """

    def __init__(self, *, compact: bool = False) -> None:
        self._taken: DigestSet | _Texts = DigestSet() if compact else _Texts()
        self._given: set[str] = set()  # names with a suffix: few
        self._next: dict[str, int] = {}  # the suffix to try next for a repeated name

    def first(self, name: str) -> bool:
        """Note ``name``; False when an earlier item had it (this one is a repeat)."""
        return self._taken.add(name.lower())

    def renamed(self, name: str) -> str:
        # Suffixes refused once stay refused (every name is known by now), so each
        # name's count goes on where it stopped: n repeats cost n tries, not n*n/2.
        number = self._next.get(name, 2)
        while (candidate := f"{name}-{number}".lower()) in self._taken or candidate in self._given:
            number += 1
        self._given.add(candidate)
        self._next[name] = number + 1
        return f"{name}-{number}"


class _Texts:
    """A set whose ``add`` says whether the text is new, like :class:`DigestSet`'s."""

    def __init__(self) -> None:
        self._texts: set[str] = set()

    def __contains__(self, text: object) -> bool:
        return text in self._texts

    def add(self, text: str) -> bool:
        if text in self._texts:
            return False
        self._texts.add(text)
        return True


def _unique_names(items: list[Item]) -> list[Item]:
    """Each item its own folder (:class:`NameBook`)."""
    book = NameBook()
    unique = list(items)
    repeats = [position for position, item in enumerate(items) if not book.first(item.name)]
    for position in repeats:
        item = unique[position]
        unique[position] = replace(item, name=book.renamed(item.name))
    return unique


def _glob(recipe: Recipe, pattern: str) -> list[Path]:
    full = str(recipe.base_dir / pattern)
    return sorted(Path(p) for p in glob.glob(full, recursive=True) if Path(p).is_file())


def _resolve(recipe: Recipe, relative: str) -> Path:
    return (recipe.base_dir / relative).resolve()


def _read_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, row) pairs from a CSV (header row) or JSONL file."""
    if path.suffix.lower() == ".jsonl":
        yield from read_objects(path)
        return
    with path.open(encoding="utf-8-sig", newline="") as handle:
        # strict: a quote left open is an error at its line, not the rest of the file
        # silently swallowed into one cell.
        reader = csv.DictReader(handle, strict=True)
        read_to = 1  # the header
        try:
            for row in reader:
                read_to = reader.line_num
                cells = [value for value in row.values() if isinstance(value, str)]
                if not any(value.strip() for value in cells):
                    continue
                yield reader.line_num, {str(k): v for k, v in row.items() if k is not None}
        except csv.Error as exc:
            raise ValueError(
                f"after line {read_to}: {exc} (is a quote left open, or a cell over "
                f"{MAX_CELL // 2**20} MiB?)"
            ) from None


def _url_stem(url: str) -> str:
    last = Path(urlparse(url).path).stem
    return last or urlparse(url).netloc


@dataclass(frozen=True, slots=True)
class Group:
    """Items a group task (``over:``) runs over once: every item, or those sharing a
    value of ``by``. ``name`` is path-safe: it names the group's folder."""

    name: str
    by: str | None
    value: JSON
    members: tuple[Item, ...]


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def group_name(by: str | None, value: JSON) -> str:
    """The folder name of a group: ``all``, or ``FIELD-VALUE`` with anything but
    letters, digits, ``.``, ``_`` and ``-`` made ``-`` (never ``.`` or ``..``)."""
    if by is None:
        return "all"
    safe = _UNSAFE.sub("-", f"{by}-{value}").strip("-.")[:MAX_NAME]
    return safe or "group"


def groups_of(by: str | None, items: Sequence[Item]) -> list[Group]:
    """The groups of ``items``: one of all, or one per value of the item variable
    ``by`` in the order first seen (items without it are in no group)."""
    if by is None:
        return [Group(group_name(None, None), None, None, tuple(items))]
    found: dict[str, list[Item]] = {}
    values: dict[str, JSON] = {}
    for item in items:
        if by not in item.vars:
            continue
        value = item.vars[by]
        name = group_name(by, value)
        found.setdefault(name, []).append(item)
        values.setdefault(name, value)
    return [Group(name, by, values[name], tuple(members)) for name, members in found.items()]
