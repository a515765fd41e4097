"""Reports of a finished run for CI, read from its manifest (``run.json``).

CI systems do not read ``run.json``; they read JUnit XML (GitHub, GitLab and Jenkins
test reporters), a Markdown job summary (``$GITHUB_STEP_SUMMARY``) and workflow
commands (``::error file=…,line=…::``, which annotate the recipe line of a pull
request). Each report here is a pure function of the manifest as it was written to
disk, never of the executor's live objects, so a finished run, an interrupted one
and a ``merge`` of sharded runs are reported in exactly the same way, and a report
can be rebuilt later from any ``run.json``.

:func:`merge` combines the manifests of shards (``--shard K/N`` in a CI matrix)
into one, and :func:`publish` writes the reports a run or a merge was asked for.
"""

# No `from __future__ import annotations`: it binds the name `annotations`, which the
# report function of that name below would shadow (mypy rejects the redefinition).

import dataclasses
import json
import re
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner import __version__
from runner.diagnostics import escape_data, escape_property
from runner.errors import OutputError, OverlappingShards
from runner.results.manifest import ExpectationRecord, ItemRecord, TaskRecord, Totals
from runner.results.outputs import write_atomic

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

Manifest = Mapping[str, Any]

MAX_FAILURES_LISTED = 50  # bullets in the step summary before "…and N more"
MAX_ANNOTATIONS = 50  # workflow commands printed, the final notice included
NAMES_SHOWN = 3  # item names quoted in an annotation shared by many items
TEXT_LIMIT = 500  # characters of an error quoted in the step summary
ITEM_CASE = "transcript"  # the test case of an item that failed before its tasks


# --- reading a manifest --------------------------------------------------------------


def check_manifest(data: Any) -> Manifest:
    """``data`` if it is a finished run manifest; a ValueError saying what is missing.

    A ``.partial`` manifest (a crashed run) has no summary: reporting it as a run
    would hide that the run never ended, so it is refused with that reason.
    """
    if not isinstance(data, Mapping):
        raise ValueError("not a transcript-runner manifest (expected a JSON object)")
    if not isinstance(data.get("items"), list):
        raise ValueError("not a transcript-runner manifest (no 'items' list)")
    if not isinstance(data.get("summary"), Mapping):
        raise ValueError(
            "not a finished transcript-runner manifest (no 'summary'; "
            "a run that crashed leaves run.json.partial without one)"
        )
    return data


def load_manifest(path: Path) -> Manifest:
    """Read and check ``run.json``; a ValueError names the file and the problem."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not JSON ({exc})") from None
    try:
        return check_manifest(data)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def item_records(manifest: Manifest) -> list[ItemRecord]:
    """The manifest's items as the runner's own records, so totals are counted by
    :class:`~runner.results.manifest.Totals`, the code that wrote the summary, not a copy."""
    return [_item(entry, index) for index, entry in enumerate(manifest["items"], 1)]


def _item(data: Any, index: int) -> ItemRecord:
    fields = _known_fields(ItemRecord, data, f"item {index}")
    fields["tasks"] = [_task(task, f"item {index}") for task in fields.get("tasks") or ()]
    return ItemRecord(**fields)


def _task(data: Any, where: str) -> TaskRecord:
    fields = _known_fields(TaskRecord, data, f"a task of {where}")
    fields["expectations"] = [
        ExpectationRecord(**_known_fields(ExpectationRecord, e, f"an expectation of {where}"))
        for e in fields.get("expectations") or ()
    ]
    return TaskRecord(**fields)


def _known_fields(kind: "type[DataclassInstance]", data: Any, what: str) -> dict[str, Any]:
    """The fields ``kind`` knows, from a JSON object. Unknown keys are dropped, so a
    manifest written by a newer runner (with more fields) still reports."""
    if not isinstance(data, Mapping):
        raise ValueError(f"{what} is not a JSON object")
    names = dataclasses.fields(kind)
    required = [
        f.name
        for f in names
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    missing = [name for name in required if name not in data]
    if missing:
        raise ValueError(f"{what} lacks {', '.join(repr(m) for m in missing)}")
    return {f.name: data[f.name] for f in names if f.name in data}


# --- what failed ---------------------------------------------------------------------


def failed_expectations(task: TaskRecord) -> list[ExpectationRecord]:
    return [e for e in task.expectations if not e.passed]


def run_failed(manifest: Manifest) -> bool:
    """The exit-code rule of ``run``: anything short of complete success is a failure,
    including skipped tasks (their output is missing) and failed expectations."""
    summary = manifest["summary"]
    if summary.get("outcome") != "completed":
        return True
    for record in item_records(manifest):
        if record.status != "ok":
            return True
        for task in record.tasks:
            if task.status != "ok" or failed_expectations(task):
                return True
    return False


def _ordered(
    manifest: Manifest, records: Iterable[ItemRecord]
) -> list[tuple[str, list[ItemRecord]]]:
    """Items grouped by recipe, in the manifest's recipe order, each group by item name.

    The manifest lists items in the order they finished, which changes from run to
    run; sorting makes two reports of the same work identical, so they diff cleanly.
    """
    groups: dict[str, list[ItemRecord]] = {}
    for recipe in manifest.get("recipes") or ():
        if isinstance(recipe, Mapping) and "name" in recipe:
            groups.setdefault(str(recipe["name"]), [])
    for record in records:
        groups.setdefault(record.recipe, []).append(record)
    return [(name, sorted(items, key=lambda r: r.item)) for name, items in groups.items()]


# --- JUnit XML -----------------------------------------------------------------------


@dataclass
class _Counts:
    tests: int = 0
    failures: int = 0
    errors: int = 0
    skipped: int = 0
    time: float = 0.0

    def add(self, other: "_Counts") -> None:
        self.tests += other.tests
        self.failures += other.failures
        self.errors += other.errors
        self.skipped += other.skipped
        self.time += other.time

    def attributes(self) -> dict[str, str]:
        return {
            "tests": str(self.tests),
            "failures": str(self.failures),
            "errors": str(self.errors),
            "skipped": str(self.skipped),
            "time": f"{self.time:.3f}",
        }


def junit_xml(manifest: Manifest) -> str:
    """The run as JUnit XML: a test suite per recipe, a test case per item and task.

    A failed task is a ``<failure type="task">`` with its error; failed expectations a
    ``<failure type="expectation">`` listing every one; a skipped task ``<skipped>``.
    An item that failed before its tasks (its transcript) or was interrupted adds a
    test case with an ``<error>``. Tokens, models, cache use, retries and the
    transcript id are ``<property>`` elements of each test case.
    """
    root = ET.Element("testsuites", name="transcript-runner")
    total = _Counts()
    for recipe, items in _ordered(manifest, item_records(manifest)):
        suite = ET.SubElement(root, "testsuite", name=_xml(recipe))
        counts = _Counts()
        for record in items:
            for case in _cases(record):
                counts.add(_append(suite, case))
        _set_counts(suite, counts)
        total.add(counts)
    wall = manifest["summary"].get("wall_seconds")
    if isinstance(wall, int | float):
        total.time = float(wall)
    _set_counts(root, total)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, "unicode") + "\n"


@dataclass
class _Case:
    record: ItemRecord
    name: str
    seconds: float | None
    line: int
    properties: dict[str, Any]
    outcome: str  # "", failure, error, skipped
    kind: str = ""  # the failure's or error's type
    message: str = ""
    text: str = ""


def _cases(record: ItemRecord) -> Iterator[_Case]:
    for task in record.tasks:
        yield _task_case(record, task)
    if record.error:
        name = ITEM_CASE if not record.tasks else "item"
        yield _Case(
            record,
            name,
            record.transcript_seconds,
            0,
            _item_properties(record),
            "error",
            kind="interrupted" if record.status == "interrupted" else "transcript",
            message=record.error,
            text=record.error,
        )


def _task_case(record: ItemRecord, task: TaskRecord) -> _Case:
    case = _Case(
        record, task.task, task.latency_seconds, task.line, _task_properties(record, task), ""
    )
    failed = failed_expectations(task)
    if failed:
        # The task's own error only sums these up ("expectation failed: … (and 1 more)").
        lines = [f"{e.expect} (recipe line {e.line}): {e.message}" for e in failed]
        case.outcome, case.kind = "failure", "expectation"
        case.message = "; ".join(e.message or f"{e.expect} failed" for e in failed)
        case.text = "\n".join(lines)
    elif task.status == "failed":
        case.outcome, case.kind = "failure", "task"
        case.message = case.text = task.error or "failed"
    elif task.status == "skipped":
        case.outcome, case.message = "skipped", task.error or "skipped"
    return case


def _task_properties(record: ItemRecord, task: TaskRecord) -> dict[str, Any]:
    return {
        "transcript_id": record.transcript_id,
        "model_requested": task.model_requested,
        "model_used": task.model_used,
        "fallback_used": task.fallback_used or None,
        "input_tokens": task.input_tokens,
        "output_tokens": task.output_tokens,
        "cached": task.cached,
        "retries": task.retries,
        "request_id": task.request_id,
        "output": task.output,
    }


def _item_properties(record: ItemRecord) -> dict[str, Any]:
    return {
        "transcript_id": record.transcript_id,
        "source": record.source,
        "audio_duration": record.audio_duration,
        "polls": record.polls,
        "submitted": record.submitted,
        "reused": record.reused,
    }


def _append(suite: ET.Element, case: _Case) -> _Counts:
    record = case.record
    seconds = case.seconds or 0.0
    element = ET.SubElement(
        suite,
        "testcase",
        classname=_xml(f"{record.recipe}.{record.item}"),
        name=_xml(case.name),
        time=f"{seconds:.3f}",
    )
    if record.recipe_file:
        element.set("file", _xml(record.recipe_file))
    if case.line > 0:
        element.set("line", str(case.line))
    properties = {k: v for k, v in case.properties.items() if v is not None}
    if properties:
        holder = ET.SubElement(element, "properties")
        for key, value in properties.items():
            ET.SubElement(holder, "property", name=key, value=_xml(_property(value)))
    counts = _Counts(tests=1, time=seconds)
    if case.outcome == "skipped":
        ET.SubElement(element, "skipped", message=_xml(case.message))
        counts.skipped = 1
    elif case.outcome:
        detail = ET.SubElement(element, case.outcome, message=_xml(case.message), type=case.kind)
        detail.text = _xml(case.text)
        counts.failures = int(case.outcome == "failure")
        counts.errors = int(case.outcome == "error")
    return counts


def _set_counts(element: ET.Element, counts: _Counts) -> None:
    for key, value in counts.attributes().items():
        element.set(key, value)


def _property(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# Characters XML 1.0 cannot hold at all (escaping does not help): most C0 controls.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml(text: str) -> str:
    """Text safe in an XML document: an API error quoting a control character must
    not make the whole report unreadable to the CI's parser."""
    return _NOT_XML.sub("\ufffd", text)


# --- GitHub step summary -------------------------------------------------------------

_COLUMNS = (
    "recipe",
    "items ok / failed",
    "tasks ok / failed / skipped",
    "tokens in / out",
    "transcriptions submitted / reused",
    "LLM calls / cached",
)


def step_summary(manifest: Manifest) -> str:
    """GitHub-flavoured Markdown for ``$GITHUB_STEP_SUMMARY``: the outcome, a table row
    per recipe, and the failures (at most 50), so a reviewer sees what broke without
    opening the job log."""
    records = item_records(manifest)
    groups = _ordered(manifest, records)
    lines = [_heading(manifest), "", _overview(manifest, records, len(groups)), ""]
    lines += _table(groups)
    failures = list(_failure_lines(groups))
    if failures:
        lines += ["", "#### Failures", ""]
        lines += [f"- {text}" for text in failures[:MAX_FAILURES_LISTED]]
        if len(failures) > MAX_FAILURES_LISTED:
            lines.append(f"- …and {len(failures) - MAX_FAILURES_LISTED} more (see run.json)")
    return "\n".join(lines) + "\n"


def _heading(manifest: Manifest) -> str:
    outcome = str(manifest["summary"].get("outcome", "unknown"))
    if run_failed(manifest):
        state = "completed with failures" if outcome == "completed" else outcome
        return f"### ❌ transcript-runner: run {_inline(state)}"
    return "### ✅ transcript-runner: run completed"


def _overview(manifest: Manifest, records: Sequence[ItemRecord], recipes: int) -> str:
    summary = manifest["summary"]
    parts = [
        f"{_count(len(records), 'item')} in {_count(recipes, 'recipe')}",
        f"{float(summary.get('wall_seconds') or 0):.1f} s",
        f"{float(summary.get('audio_hours') or 0):.2f} h of audio",
    ]
    shards = manifest.get("shards")
    if isinstance(shards, int) and shards > 1:
        parts.append(f"{shards} shards")
    return " · ".join(parts)


def _table(groups: Sequence[tuple[str, list[ItemRecord]]]) -> list[str]:
    lines = ["| " + " | ".join(_COLUMNS) + " |", "|" + "---|" * len(_COLUMNS)]
    everything = Totals()
    for recipe, records in groups:
        totals = _totals(records)
        lines.append(_row(recipe, totals))
        for record in records:
            everything.add(record)
    if len(groups) > 1:
        lines.append(_row("**total**", everything, escape=False))
    return lines


def _row(recipe: str, totals: Totals, *, escape: bool = True) -> str:
    items, tasks = totals.items, totals.tasks
    not_ok = items["failed"] + items["interrupted"]
    cells = [
        _cell(recipe) if escape else recipe,
        f"{items['ok']:,} / {not_ok:,}",
        f"{tasks['ok']:,} / {tasks['failed']:,} / {tasks['skipped']:,}",
        f"{totals.input_tokens:,} / {totals.output_tokens:,}",
        f"{totals.submitted:,} / {totals.reused:,}",
        f"{totals.asked:,} / {totals.cached:,}",
    ]
    return "| " + " | ".join(cells) + " |"


def _totals(records: Iterable[ItemRecord]) -> Totals:
    totals = Totals()
    for record in records:
        totals.add(record)
    return totals


def _failure_lines(groups: Sequence[tuple[str, list[ItemRecord]]]) -> Iterator[str]:
    for recipe, records in groups:
        for record in records:
            where = f"**{_inline(recipe)}** · {_inline(record.item)}"
            if record.error:
                yield f"{where}: {record.status}: {_inline(record.error)}"
            for task in record.tasks:
                yield from _task_failure_lines(record, task, f"{where} · {_inline(task.task)}")


def _task_failure_lines(record: ItemRecord, task: TaskRecord, where: str) -> Iterator[str]:
    failed = failed_expectations(task)
    if task.status == "failed" and task.error and not failed:
        yield f"{where}: {_inline(task.error)}"
    for expectation in failed:
        place = f" ({_inline(record.recipe_file)}:{expectation.line})" if expectation.line else ""
        reason = expectation.message or "failed"
        yield f"{where}: expectation `{_code(expectation.expect)}` failed: {_inline(reason)}{place}"


def _inline(text: str) -> str:
    """Text that stays on its Markdown line: line breaks folded, HTML not interpreted,
    long API errors shortened."""
    flat = " ".join(text.split())
    if len(flat) > TEXT_LIMIT:
        flat = flat[: TEXT_LIMIT - 1] + "…"
    return flat.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cell(text: str) -> str:
    """Text inside a table cell: a ``|`` would start a new cell."""
    return _inline(text).replace("|", "\\|")


def _code(text: str) -> str:
    return " ".join(text.split()).replace("`", "'")


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}" if number == 1 else f"{number:,} {noun}s"


# --- GitHub annotations --------------------------------------------------------------


@dataclass(frozen=True)
class _Problem:
    """One annotation's content, minus the item: equal problems of many items merge."""

    file: str
    line: int
    title: str
    task: str  # "" for an item-level failure
    message: str


def annotations(manifest: Manifest) -> list[str]:
    """``::error`` workflow commands pointing at the recipe line of each failure.

    The same failure on many items (a bad prompt fails every item at the same task
    line) becomes one annotation naming how many items and the first few, and the
    list stops at 50 with a notice: GitHub shows only a few annotations per step
    anyway, and a 10,000-item run must not print 10,000 lines.
    """
    grouped: dict[_Problem, list[str]] = {}
    for _, records in _ordered(manifest, item_records(manifest)):
        for record in records:
            for problem in _problems(record):
                grouped.setdefault(problem, []).append(record.item)
    lines = [_annotation(problem, items) for problem, items in grouped.items()]
    if len(lines) <= MAX_ANNOTATIONS:
        return lines
    shown = lines[: MAX_ANNOTATIONS - 1]
    hidden = len(lines) - len(shown)
    notice = f"{hidden} more failures are not annotated; the run manifest lists every one"
    return [*shown, f"::notice title=transcript-runner::{escape_data(notice)}"]


def _problems(record: ItemRecord) -> Iterator[_Problem]:
    file = record.recipe_file
    if record.error:
        yield _Problem(file, 0, f"item {record.status}", "", record.error)
    for task in record.tasks:
        failed = failed_expectations(task)
        for expectation in failed:
            line = expectation.line if expectation.line > 0 else task.line
            message = expectation.message or f"expectation {expectation.expect} failed"
            yield _Problem(file, line, f"expectation failed in {task.task}", task.task, message)
        if task.status == "failed" and not failed:
            yield _Problem(
                file, task.line, f"task {task.task} failed", task.task, task.error or "failed"
            )


def _annotation(problem: _Problem, items: Sequence[str]) -> str:
    properties = []
    if problem.file:
        properties.append(f"file={escape_property(problem.file)}")
        if problem.line > 0:
            properties.append(f"line={problem.line}")
    properties.append(f"title={escape_property(problem.title)}")
    who = _who(items)
    where = f"{who} · {problem.task}" if problem.task else who
    return f"::error {','.join(properties)}::{escape_data(f'{where}: {problem.message}')}"


def _who(items: Sequence[str]) -> str:
    if len(items) == 1:
        return items[0]
    names = ", ".join(items[:NAMES_SHOWN])
    more = f" and {len(items) - NAMES_SHOWN} more" if len(items) > NAMES_SHOWN else ""
    return f"{len(items):,} items ({names}{more})"


# --- merging shards ------------------------------------------------------------------


def merge(manifests: Sequence[Manifest], names: Sequence[str] | None = None) -> dict[str, Any]:
    """One manifest for the runs of all shards: recipes once each, items in the order of
    the inputs, the summary recounted from the items, ``shards`` the number of runs.

    ``names`` label the inputs in error messages (file names); by default "input 1"….
    The outcome is ``completed`` only if every shard completed; otherwise the first
    other outcome (``interrupted``, ``timed out``), or ``incomplete`` when inputs are
    shards of one ``--shard K/N`` split and some of its shards are not among them.
    """
    if not manifests:
        raise ValueError("nothing to merge: give at least one manifest")
    labels = list(names or (f"input {n}" for n in range(1, len(manifests) + 1)))
    records: list[list[ItemRecord]] = []
    for label, manifest in zip(labels, manifests, strict=True):
        try:
            records.append(item_records(check_manifest(manifest)))
        except ValueError as exc:
            raise ValueError(f"{label}: {exc}") from None
    _check_disjoint(records, labels)
    missing = missing_shards(manifests, labels)
    merged: dict[str, Any] = {
        "tool": "transcript-runner",
        "version": __version__,
        "started": min((str(m.get("started", "")) for m in manifests), default=""),
        "recipes": _recipes(manifests),
        "shard": None,  # the merged run is no single shard; `shards` counts them
        "shards": sum(_shards(m) for m in manifests),
        "items": [dict(item) for m in manifests for item in m["items"]],
    }
    everything = [record for shard in records for record in shard]
    summaries = [m["summary"] for m in manifests]
    merged["summary"] = _summary(_totals(everything), summaries, incomplete=bool(missing))
    return merged


def missing_shards(manifests: Sequence[Manifest], labels: Sequence[str] = ()) -> list[str]:
    """The shards of a ``--shard K/N`` split that none of ``manifests`` is, when each is
    one shard of the same split. A matrix job that crashed before writing its manifest
    must not make the merged run look complete. Shards of different splits (``1/3``
    and ``1/4``) hold unrelated shares of the items: a ValueError."""
    declared = [_shard_of(m) for m in manifests]
    splits: dict[int, list[str]] = {}
    for position, shard in enumerate(declared):
        if shard is not None:
            label = labels[position] if position < len(labels) else f"input {position + 1}"
            splits.setdefault(shard[1], []).append(f"{label} ({shard[0]}/{shard[1]})")
    if len(splits) > 1:
        shown = "; ".join(", ".join(names) for names in splits.values())
        raise ValueError(f"the manifests come from different --shard splits: {shown}")
    if not splits or any(shard is None for shard in declared):
        return []
    (count,) = splits
    present = {shard[0] for shard in declared if shard is not None}
    return [f"{k}/{count}" for k in range(1, count + 1) if k not in present]


def _shard_of(manifest: Manifest) -> tuple[int, int] | None:
    match = re.fullmatch(r"(\d+)/(\d+)", str(manifest.get("shard") or ""))
    return (int(match[1]), int(match[2])) if match else None


def _check_disjoint(records: Sequence[Sequence[ItemRecord]], labels: Sequence[str]) -> None:
    seen: dict[tuple[str, str], str] = {}
    overlaps: list[tuple[str, str, str]] = []
    for label, shard in zip(labels, records, strict=True):
        for record in shard:
            key = (record.recipe, record.item)
            if key in seen:
                overlaps.append((f"{record.recipe}/{record.item}", seen[key], label))
            else:
                seen[key] = label
    if overlaps:
        raise OverlappingShards(overlaps)


def _recipes(manifests: Sequence[Manifest]) -> list[dict[str, Any]]:
    recipes: dict[str, dict[str, Any]] = {}
    for manifest in manifests:
        for recipe in manifest.get("recipes") or ():
            if isinstance(recipe, Mapping):
                recipes.setdefault(str(recipe.get("name")), dict(recipe))
    return list(recipes.values())


def _shards(manifest: Manifest) -> int:
    """A merged manifest counts the shards it already holds, so merges can be nested."""
    shards = manifest.get("shards")
    return shards if isinstance(shards, int) and shards > 0 else 1


def _summary(
    totals: Totals, summaries: Sequence[Mapping[str, Any]], *, incomplete: bool
) -> dict[str, Any]:
    """The fields of :meth:`runner.results.manifest.ManifestWriter.close`, for the merged items.

    Shards run side by side, so the wall time is the longest shard's.
    """
    outcomes = [str(s.get("outcome")) for s in summaries]
    outcome = next((o for o in outcomes if o != "completed"), "completed")
    if incomplete and outcome == "completed":
        outcome = "incomplete"
    walls = [float(s.get("wall_seconds") or 0) for s in summaries]
    return {
        "outcome": outcome,
        "finished": max((str(s.get("finished", "")) for s in summaries), default=""),
        "wall_seconds": round(max(walls, default=0.0), 3),
        **totals.counts(),
    }


def merged_totals(manifest: Manifest) -> Totals:
    """The manifest's totals, e.g. for the end-of-run summary text of a merge."""
    return _totals(item_records(manifest))


# --- writing the reports -------------------------------------------------------------


def publish(
    manifest: Manifest,
    *,
    junit: Path | None,
    environ: Mapping[str, str],
    annotate: bool = True,
) -> list[str]:
    """Write the reports asked for: the JUnit file (atomically, so CI never reads half
    of one), the step summary (appended: other steps write there too) when
    ``GITHUB_STEP_SUMMARY`` is set, the annotations when ``GITHUB_ACTIONS=true``.

    Returns what could not be written, for the caller to print: a missing report
    must fail the job rather than pass unnoticed.
    """
    problems: list[str] = []
    if junit is not None:
        try:
            write_atomic(junit, junit_xml(manifest))
        except OutputError as exc:
            problems.append(f"cannot write the JUnit report {junit}: {exc.reason}")
    summary_file = environ.get("GITHUB_STEP_SUMMARY")
    if summary_file:
        try:
            with open(summary_file, "a", encoding="utf-8") as stream:
                # A blank line first, so an earlier step's table or list ends there.
                stream.write(("\n" if stream.tell() else "") + step_summary(manifest))
        except OSError as exc:
            problems.append(
                f"cannot append to GITHUB_STEP_SUMMARY ({summary_file}): {exc.strerror or exc}"
            )
    if annotate and environ.get("GITHUB_ACTIONS") == "true":
        for line in annotations(manifest):
            print(line, file=sys.stdout)
    return problems


def wanted(junit: Path | None, environ: Mapping[str, str]) -> bool:
    """Whether any report is asked for, so a plain run does not read run.json back."""
    return (
        junit is not None
        or bool(environ.get("GITHUB_STEP_SUMMARY"))
        or environ.get("GITHUB_ACTIONS") == "true"
    )
