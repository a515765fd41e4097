"""``transcript-runner merge``: one manifest, and one report, for the shards of a run;
and one results table per recipe whose shards wrote one (``output.table``)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import click

from runner.errors import EXIT_FAILED, EXIT_OK, UsageError
from runner.folders import DEFAULT_MANIFEST
from runner.results.ci import publish
from runner.results.manifest import load_manifest, merged_totals, missing_shards, run_failed
from runner.results.manifest import merge as merge_manifests
from runner.results.outputs import write_json
from runner.results.paths import check_paths, read_problem
from runner.results.progress import summary_text
from runner.results.table import TableMerge, table_merges, write_merged


@dataclass(frozen=True)
class MergeRequest:
    manifests: Sequence[Path]  # the run.json of each shard
    manifest: Path = DEFAULT_MANIFEST  # where the merged manifest goes (--manifest)
    junit: Path | None = None  # also a JUnit XML report of the merged run


def merge(request: MergeRequest) -> int:
    """Merge shard manifests into ``manifest``; 1 when the merged run failed, as ``run`` would."""
    paths = [str(path) for path in request.manifests]
    target, report, out = request.manifest, request.junit, str(request.manifest)
    _refuse_overwriting_inputs(paths, [target, *([report] if report else [])])
    check_paths(files={"--manifest": target, "--junit": report})
    try:
        manifests = [load_manifest(Path(path)) for path in paths]
        merged = merge_manifests(manifests, names=list(paths))
        tables = table_merges(manifests, request.manifests, target)
    except (OSError, ValueError) as exc:
        raise UsageError(_reason(exc)) from None
    # The tables first: a shard's table that is not one stops the merge before a merged
    # manifest exists that would name a table that is not there.
    written, warnings = _merge_tables(tables)
    write_json(target, merged)
    problems = publish(merged, junit=report, environ=os.environ, annotate=False)
    summary = merged["summary"]
    click.echo(f"Merged {len(paths)} manifests ({merged['shards']} shards) into {out}.")
    missing = missing_shards(manifests, paths)
    if missing:
        click.echo(
            f"Incomplete: no manifest of shard {', '.join(missing)} was given, so its items "
            "are missing from the merged run."
        )
    click.echo(
        summary_text(
            merged_totals(merged),
            outcome=summary["outcome"],
            wall=summary["wall_seconds"],
            manifest=out,
            left=0,
            tables=[str(path) for path in written],
        )
    )
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    for problem in problems:
        click.echo(f"error: {problem}", err=True)
    return EXIT_FAILED if problems or run_failed(merged) else EXIT_OK


def _merge_tables(tables: Sequence[TableMerge]) -> tuple[list[Path], list[str]]:
    """Write each merged table; the paths written, and what each lacks (a warning a
    line). A shard's table that cannot be read is a usage error naming it."""
    written: list[Path] = []
    warnings: list[str] = []
    for table in tables:
        try:
            wrote, lacking = write_merged(table)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        warnings += lacking
        if wrote:
            written.append(table.path)
    return written, warnings


def _refuse_overwriting_inputs(paths: Sequence[str], outputs: Sequence[Path]) -> None:
    inputs = {Path(p).resolve(): p for p in paths}
    for output in outputs:
        if output.resolve() in inputs:
            raise UsageError(
                f"{output} is one of the manifests to merge; write the merged one elsewhere "
                "with --manifest FILE (or --junit FILE)"
            )


def _reason(exc: OSError | ValueError) -> str:
    return read_problem(exc, "manifest") if isinstance(exc, OSError) else str(exc)
