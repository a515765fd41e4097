"""Reports of a finished run for CI, read from its manifest (``run.json``).

CI systems do not read ``run.json``; they read JUnit XML (GitHub, GitLab and Jenkins
test reporters), a Markdown job summary (``$GITHUB_STEP_SUMMARY``) and workflow
commands (``::error file=…,line=…::``, which annotate the recipe line of a pull
request). Each report here is a pure function of the manifest as it was written to
disk, never of the executor's live objects, so a finished run, an interrupted one
and a ``merge`` of sharded runs are reported in exactly the same way, and a report
can be rebuilt later from any ``run.json``.

One module a report: :mod:`.junit`, :mod:`.summary` and :mod:`.annotations`;
:func:`publish` writes the ones a run or a ``merge`` was asked for.
"""

import sys
from collections.abc import Mapping
from pathlib import Path

from runner.errors import OutputError
from runner.results.ci.annotations import annotations
from runner.results.ci.junit import junit_xml
from runner.results.ci.summary import step_summary
from runner.results.manifest import Manifest
from runner.results.outputs import write_atomic

__all__ = ["annotations", "junit_xml", "publish", "step_summary", "wanted"]


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
