"""A bug in transcript-runner, said as one: one line on stderr, the details in a log.

An exception that is not a :class:`~runner.errors.RunnerError` (nor click's, nor
Ctrl-C) is nothing the user did, so it gets neither a user error's exit code nor a
bare traceback: the user sees which exception it was and where its log is, and the
log holds what a bug report needs (the traceback, the version, Python, the platform
and the command line). Secrets are taken out of both: the value of every environment
variable whose name says it holds one (a name with KEY, TOKEN, SECRET, PASS, CREDENTIAL,
AUTH or BEARER in it: ``ASSEMBLYAI_API_KEY``, ``*_TOKEN``, a provider's ``api_key_env``
when its name says so), wherever and in whatever form it appears (escaped,
percent-encoded, base64: :class:`~runner.api.secrets.Secrets`, which redacts what
servers say too), and the user and password of any URL on the command line.

The log goes to the state folder when there is one (``--state-dir``, or
``.transcript-runner`` in the working folder: where the user looks, and what CI
keeps), else to the system's temporary folder.

For tests: with test mode on (:mod:`runner.api.pacing`), ``TRANSCRIPT_RUNNER_TEST_CRASH``
makes the command line raise a ``RuntimeError`` with that text, to crash on purpose.
"""

from __future__ import annotations

import os
import platform
import re
import shlex
import sys
import traceback
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from runner import __version__
from runner.api.pacing import testing
from runner.api.secrets import Secrets

TEST_CRASH_ENV = "TRANSCRIPT_RUNNER_TEST_CRASH"
ISSUES_URL = "https://github.com/transcript-runner/transcript-runner/issues"

# Variables whose values are secrets, by name: the runner's own key variables, and the
# names people give keys (a provider's `api_key_env: OPENAI_API_KEY`, a `*_TOKEN`).
_SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASS|CREDENTIAL|AUTH|BEARER", re.IGNORECASE)
# user:password@ in a URL given on the command line (--llm-url https://u:p@host/v1).
_URL_CREDENTIALS = re.compile(r"(?<=://)[^/@\s:]*:[^/@\s]*@")
_SHORTEST_SECRET = 6  # shorter values ("1", "yes") are settings, and redacting them garbles
_MESSAGE_LIMIT = 300


def crash_if_asked(environ: Mapping[str, str] = os.environ) -> None:
    """Raise the crash a test asked for; nothing outside test mode."""
    text = environ.get(TEST_CRASH_ENV)
    if text and testing():
        raise RuntimeError(text)


def report_crash(exc: BaseException, argv: Sequence[str], environ: Mapping[str, str]) -> str:
    """Write ``exc``'s crash log; the one line to print (the log's path, or why none)."""
    secrets = _secrets(environ)
    said = secrets.redact(" ".join(f"{type(exc).__name__}: {exc}".split()))
    if len(said) > _MESSAGE_LIMIT:
        said = said[: _MESSAGE_LIMIT - 1] + "…"
    details = _URL_CREDENTIALS.sub("[REDACTED]@", secrets.redact(_details(exc, argv)))
    log, problem = _write_log(details, _folders(argv))
    where = (
        f"its details are in {log}; please report it at {ISSUES_URL} with that file"
        if log is not None
        else f"its details could not be written ({problem}); please report it at {ISSUES_URL}"
    )
    return f"error: a bug in transcript-runner {__version__}: {said}; {where}"


def _secrets(environ: Mapping[str, str]) -> Secrets:
    """The values to take out: those of the variables named for a secret."""
    return Secrets(
        value.strip()
        for name, value in environ.items()
        if _SECRET_NAME.search(name) and len(value.strip()) >= _SHORTEST_SECRET
    )


def _details(exc: BaseException, argv: Sequence[str]) -> str:
    return "\n".join(
        [
            "transcript-runner crash log",
            f"time: {datetime.now(UTC).isoformat(timespec='seconds')}",
            f"version: {__version__}",
            f"python: {platform.python_implementation()} {sys.version.split()[0]}",
            f"platform: {platform.platform()}",
            f"command: {shlex.join(['transcript-runner', *argv])}",
            "",
            "".join(traceback.format_exception(exc)).rstrip(),
            "",
        ]
    )


def _folders(argv: Sequence[str]) -> list[Path]:
    """Where the log may go, best first: the state folder given or in use, then the
    temporary folder. Only a state folder that exists: a crash creates no folders."""
    # Imported here, at a crash: they pull in SQLite, shutil and compression, and the
    # command line starts faster without them.
    import tempfile

    from runner.store import DEFAULT_STATE_DIR

    given = _option_value(argv, "--state-dir")
    state = Path(given) if given else DEFAULT_STATE_DIR
    try:
        candidates = [state] if state.is_dir() else []
    except OSError:  # a folder we may not even look into
        candidates = []
    return [*candidates, Path(tempfile.gettempdir())]


def _option_value(argv: Sequence[str], option: str) -> str | None:
    """The value of ``option`` on the command line (``--opt V`` or ``--opt=V``), if any:
    read by hand, since a crash may come before (or from) click's parsing."""
    for index, arg in enumerate(argv):
        if arg == option and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith(option + "="):
            return arg.split("=", 1)[1]
    return None


def _write_log(details: str, folders: Sequence[Path]) -> tuple[Path | None, str]:
    """The log, written to the first folder that takes it; or None and why not."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    name = f"transcript-runner-crash-{stamp}-{os.getpid()}.log"
    problem = "no folder to write it to"
    for folder in folders:
        path = folder / name
        try:
            with path.open("x", encoding="utf-8") as log:
                log.write(details)
        except OSError as exc:
            problem = f"{path}: {exc.strerror or exc}"
            continue
        return path, ""
    return None, problem
