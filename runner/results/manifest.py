"""The run manifest, ``run.json``: its one owner, which writes, reads, checks and merges it.

One record per item and task, streamed to disk:

A run over 10,000 items must not hold every result in memory, so each item's
record is appended to ``run.json.partial`` the moment the item finishes; the
closing summary is written and the file renamed to ``run.json`` when the run
ends, including on Ctrl-C or ``--timeout``. A crash leaves the ``.partial`` file,
whose records up to the crash are intact.

Secrets never reach it: records are built from results, never from requests.

The records themselves, and the totals counted from them, are
:mod:`runner.results.records`. Reading gives the runner's own records back
(:func:`item_records`), so the reports and a ``merge`` of shards count exactly as the
run did; :func:`merge` combines the manifests of ``--shard K/N`` jobs into one.
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import json
import logging
import os
import re
import shutil
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import is_dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from runner import __version__
from runner.errors import DiskFull, OverlappingShards, RunnerError, UsageError
from runner.recipe.prices import PriceTable
from runner.results.records import (
    ExpectationRecord,
    ItemRecord,
    TaskRecord,
    Totals,
    TranscriptionRecord,
    totals_of,
)

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

Manifest = Mapping[str, Any]
log = logging.getLogger(__name__)


ITEMS_OPENING = '  "items": [\n'  # how ManifestWriter opens the items: one per line


def _open_exclusively(partial: Path) -> IO[str]:
    """The ``.partial`` file, empty and locked for this run; another live run writing the
    same manifest is a usage error before anything is sent (a crashed run's lock is gone
    with its process, so its leftover is simply overwritten)."""
    try:
        stream = partial.open("a", encoding="utf-8")
    except OSError as exc:
        raise _disk_error(partial, exc) from exc
    try:
        fcntl.flock(stream.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        stream.close()
        raise UsageError(
            f"another run is writing {partial.with_suffix('')} right now; give this run its "
            "own --out DIR or --manifest PATH"
        ) from None
    stream.truncate(0)
    return stream


def _disk_error(path: Path, exc: OSError) -> RunnerError:
    """The manifest cannot be written: a full disk stops the run, as any output would."""
    reason = exc.strerror or str(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
        return DiskFull(path, reason)
    return RunnerError(f"cannot write the run manifest {path}: {reason}")


class ManifestWriter:
    """Appends item records as items finish; :meth:`close` writes the summary."""

    def __init__(
        self,
        path: Path,
        header: dict[str, Any],
        prices: Mapping[str, PriceTable] | None = None,
    ) -> None:
        self.path = path
        self.prices = prices  # by recipe: costs each record as it is added, when given
        self.partial = path.with_name(path.name + ".partial")
        self.totals = Totals()
        self._count = 0
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _disk_error(path, exc) from exc
        self._stream: IO[str] = _open_exclusively(self.partial)
        # An earlier run's manifest must not pass for this one's if this one crashes:
        # until it closes, only its `.partial` exists.
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            self._stream.close()
            raise _disk_error(path, exc) from exc
        started = datetime.now(UTC).isoformat(timespec="seconds")
        self._history_name = _history_name(started, header)
        self.header = header
        self.summary: dict[str, Any] = {}  # set by close
        head = {"tool": "transcript-runner", "version": __version__, "started": started, **header}
        body = json.dumps(head, indent=2, ensure_ascii=False)
        # Open the object, leave it unterminated, and start the items array.
        try:
            self._stream.write(body[:-1].rstrip() + ",\n" + ITEMS_OPENING)
            self._stream.flush()
        except OSError as exc:
            raise _disk_error(self.partial, exc) from exc

    def add(self, record: ItemRecord) -> None:
        table = self.prices.get(record.recipe) if self.prices is not None else None
        if table is not None:
            price(record, table)
        else:
            price_own_servers(record)
        self.totals.add(record)
        prefix = ",\n" if self._count else ""
        try:
            line = json.dumps(record, ensure_ascii=False, default=_record_fields)
            self._stream.write(prefix + _indent(line))
            self._stream.flush()
        except OSError as exc:
            raise _disk_error(self.partial, exc) from exc
        self._count += 1

    def close(self, outcome: str, wall_seconds: float, *, loop_lag: float | None = None) -> Path:
        """Finish the manifest; ``loop_lag`` is the largest event-loop lag, seconds."""
        totals = self.totals
        summary = {
            "outcome": outcome,
            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
            "wall_seconds": round(wall_seconds, 3),
            **totals.counts(),
        }
        if loop_lag is not None:
            summary["loop_lag_max_ms"] = round(loop_lag * 1000)
        self.summary = summary
        try:
            self._stream.write(
                '\n  ],\n  "summary": ' + _indent(json.dumps(summary), first=False) + "\n}\n"
            )
            self._stream.flush()
            os.fsync(self._stream.fileno())
            # Renamed while still locked: no other run can take the file in between.
            os.replace(self.partial, self.path)
        except OSError as exc:
            raise _disk_error(self.partial, exc) from exc
        finally:
            self._stream.close()
        self._keep_in_history()
        return self.path

    @property
    def kept_path(self) -> Path:
        """Where this run's manifest is kept beside the others: ``runs/<started>-<recipes>.json``
        (the run's report goes beside it, as ``.html``)."""
        return self.path.parent / "runs" / self._history_name

    def _keep_in_history(self) -> None:
        """Also keep this manifest as ``runs/<started>-<recipes>.json`` beside it (a
        hard link: no copy), so the next run's ``run.json`` does not lose this one. A
        history that cannot be kept costs the run nothing."""
        kept = self.kept_path
        try:
            if kept.parent.is_symlink():
                # Followed, it would put a link to this manifest wherever it leads.
                log.warning("%s is a symbolic link; this run is not kept in it", kept.parent)
                return
            kept.parent.mkdir(exist_ok=True)
            kept.unlink(missing_ok=True)
            try:
                os.link(self.path, kept)
            except OSError:  # a file system without hard links
                shutil.copyfile(self.path, kept)
        except OSError:
            return


def _history_name(started: str, header: Mapping[str, Any]) -> str:
    """``2026-12-01T20-33-10-summaries+meeting-notes.json``: when, and of which recipes."""
    names = "+".join(
        str(r.get("name")) for r in header.get("recipes") or () if isinstance(r, Mapping)
    )
    safe = re.sub(r"[^A-Za-z0-9._+-]+", "-", names)[:80].strip("-") or "run"
    stamp = re.sub(r"[^0-9T]+", "-", started.split("+")[0]).strip("-")
    shard = header.get("shard")
    suffix = f"-shard-{str(shard).replace('/', '-of-')}" if shard else ""
    return f"{stamp}-{safe}{suffix}.json"


def price(record: ItemRecord, prices: PriceTable) -> None:
    """Fill ``record``'s costs from what this run paid for: the transcription it
    submitted (by the speech model that ran it) and each LLM call it sent (by the model
    that answered). What it did not pay for costs 0: a reused transcript, a cached
    reply, an export, and a request that got no result (a job that failed, a call that
    got no reply), which AssemblyAI does not bill."""
    transcribed = record.submitted and record.audio_duration is not None
    record.transcription_cost_usd = (
        prices.transcription(record.speech_model, record.audio_duration) if transcribed else 0.0
    )
    for task in record.tasks:
        model = task.model_used or task.model_requested
        answered = task.asked and task.model_used is not None
        task.cost_usd = (
            prices.call(model, task.provider, task.input_tokens, task.output_tokens)
            if answered
            else 0.0
        )
        for check in task.expectations:
            if check.asked or check.cached:  # a judge: its calls sent this run are paid
                check.cost_usd = (
                    prices.call(
                        check.model_used, check.provider, check.input_tokens, check.output_tokens
                    )
                    if check.asked and check.model_used is not None
                    else 0.0
                )
    for index, made in enumerate(record.transcriptions):
        if index == 0:
            made.cost_usd = record.transcription_cost_usd
        elif made.submitted and made.audio_duration is not None:
            made.cost_usd = prices.transcription(made.speech_model, made.audio_duration)
        else:
            made.cost_usd = 0.0


def price_own_servers(record: ItemRecord) -> None:
    """Without a price table, a call to a provider's server (a local one, --llm-url)
    still costs what :meth:`PriceTable.call` says of it, nothing: it is never an
    unknown Gateway cost."""
    for task in record.tasks:
        if task.provider is not None and task.asked:
            task.cost_usd = PriceTable().call(
                task.model_used or task.model_requested,
                task.provider,
                task.input_tokens,
                task.output_tokens,
            )
        for check in task.expectations:  # a judge asked on a provider's server
            if check.provider is not None and check.asked:
                check.cost_usd = PriceTable().call(
                    check.model_used, check.provider, check.input_tokens, check.output_tokens
                )


def _record_fields(value: object) -> Any:
    """A record's fields for ``json.dumps``, read in place (``asdict`` would copy each
    item's records deeply first, a cost paid 10,000 times in a large run)."""
    if is_dataclass(value) and not isinstance(value, type):
        return vars(value)
    raise TypeError(f"{type(value).__name__} is not a manifest record")


def _indent(text: str, *, first: bool = True) -> str:
    return ("    " if first else "") + text


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


def stream_item_records(path: Path) -> Iterator[ItemRecord]:
    """The items of a ``run.json`` that :class:`ManifestWriter` wrote, one at a time:
    a 10,000-item manifest read whole is a hundred MB of dicts at the end of a run
    whose memory was flat until then. The writer puts each item on a line of its own
    (``json.dumps`` escapes every line break inside it), so a line is an item."""
    with path.open(encoding="utf-8", newline="\n") as stream:
        for line in stream:
            if line == ITEMS_OPENING:
                break
        else:
            raise ValueError(f"{path}: no items (not a manifest this runner wrote)")
        for index, line in enumerate(stream, 1):
            if not line.startswith("    {"):
                return  # the items' closing bracket
            yield item_record(json.loads(line.rstrip().removesuffix(",")), index)


def item_records(manifest: Manifest) -> list[ItemRecord]:
    """The manifest's items as the runner's own records, so totals are counted by
    :class:`~runner.results.records.Totals`, the code that wrote the summary, not a copy."""
    return [item_record(entry, index) for index, entry in enumerate(manifest["items"], 1)]


def item_record(data: Any, index: int) -> ItemRecord:
    """One item of a manifest (the ``index``-th, for messages) as the runner's record."""
    fields = _known_fields(ItemRecord, data, f"item {index}")
    fields["tasks"] = [_task(task, f"item {index}") for task in fields.get("tasks") or ()]
    fields["transcriptions"] = [
        _transcription(made, f"item {index}") for made in fields.get("transcriptions") or ()
    ]
    return ItemRecord(**fields)


def _transcription(data: Any, where: str) -> TranscriptionRecord:
    fields = _known_fields(TranscriptionRecord, data, f"a transcription of {where}")
    fields["expectations"] = _expectations(fields, where)
    return TranscriptionRecord(**fields)


def _expectations(fields: Mapping[str, Any], where: str) -> list[ExpectationRecord]:
    return [
        ExpectationRecord(**_known_fields(ExpectationRecord, e, f"an expectation of {where}"))
        for e in fields.get("expectations") or ()
    ]


def _task(data: Any, where: str) -> TaskRecord:
    fields = _known_fields(TaskRecord, data, f"a task of {where}")
    fields["expectations"] = _expectations(fields, where)
    return TaskRecord(**fields)


def _known_fields(kind: type[DataclassInstance], data: Any, what: str) -> dict[str, Any]:
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
    """The checks that failed and count (a `severity: warn` check's failure does not)."""
    return [e for e in task.expectations if e.failing]


def warned_expectations(task: TaskRecord) -> list[ExpectationRecord]:
    """`severity: warn` checks that failed: shown, never failing anything."""
    return [e for e in task.expectations if not e.passed and not e.failing]


def run_failed(manifest: Manifest) -> bool:
    """The exit-code rule of ``run``: anything short of complete success is a failure,
    including skipped tasks (their output is missing) and failed expectations (those of
    a task with a ``pass_rate`` only when too few items pass them)."""
    summary = manifest["summary"]
    if summary.get("outcome") != "completed":
        return True
    records = item_records(manifest)
    for record in records:
        if record.status != "ok":
            return True
        for task in record.tasks:
            if task.status in ("failed", "skipped"):
                return True
            if task.pass_rate is None and failed_expectations(task):
                return True
    return bool(totals_of(records).rates.below())


def ordered_by_recipe(
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
    merged["summary"] = _summary(totals_of(everything), summaries, incomplete=bool(missing))
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
    """Each recipe once, as the first manifest that lists it has it, with any field
    only a later one has (its ``table``) added."""
    recipes: dict[str, dict[str, Any]] = {}
    for manifest in manifests:
        for recipe in manifest.get("recipes") or ():
            if isinstance(recipe, Mapping):
                merged = recipes.setdefault(str(recipe.get("name")), dict(recipe))
                for key, value in recipe.items():
                    if merged.get(key) is None:
                        merged[key] = value
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
    return totals_of(item_records(manifest))
