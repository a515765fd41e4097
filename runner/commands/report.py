"""``transcript-runner report``: report.html from manifests, shards merged."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import click

from runner.diagnostics import display_resolved
from runner.errors import EXIT_OK, UsageError
from runner.results.html_report import REPORT_FILE, write_report
from runner.results.manifest import load_manifest
from runner.results.manifest import merge as merge_manifests
from runner.results.paths import check_paths, read_problem


@dataclass(frozen=True)
class ReportRequest:
    manifests: Sequence[Path]  # run.json files; several are merged (the shards of a run)
    html: Path | None = None  # --html; default: report.html beside the (first) manifest


def report(request: ReportRequest) -> int:
    """Write the report of one run, or of several shards merged; where it went."""
    check_paths(files={"--html": request.html})
    try:
        loaded = [load_manifest(path) for path in request.manifests]
        manifest = (
            loaded[0]
            if len(loaded) == 1
            else merge_manifests(loaded, names=[str(path) for path in request.manifests])
        )
    except OSError as exc:
        raise UsageError(read_problem(exc, "manifest")) from None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    first = request.manifests[0]
    out = request.html or first.with_name(REPORT_FILE)
    if any(out.resolve() == path.resolve() for path in request.manifests):
        raise UsageError(f"--html {out} is one of the manifests; name another file")
    try:
        write_report(manifest, first, out)
    except OSError as exc:
        raise UsageError(f"cannot write the report {exc}") from None  # "PATH: why"
    except RecursionError:
        raise UsageError(f"{first}: the run's files nest too deep to report") from None
    click.echo(f"report: {display_resolved(out)}")
    return EXIT_OK
