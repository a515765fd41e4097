"""The exception tree: every error a user can cause carries its exit code.

The command line catches :class:`RunnerError` and prints its message, never a
traceback. Anything else escaping is a bug in transcript-runner itself.

Exit codes are part of the contract (README, ``docs/cli.md``):

====  ==========================================================
0     everything succeeded
1     some item, task or expectation failed (:class:`RunFailed`)
2     usage error: bad options, missing paths (:class:`UsageError`)
3     invalid recipe (:class:`RecipeInvalid`)
130   interrupted (Ctrl-C)
====  ==========================================================
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from runner.diagnostics import Diagnostic

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INVALID_RECIPE = 3
EXIT_INTERRUPTED = 130


class RunnerError(Exception):
    """Base of every error transcript-runner reports to a user."""

    exit_code: ClassVar[int] = EXIT_FAILED

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UsageError(RunnerError):
    """The command line was wrong: an unknown option value, a path that does not exist."""

    exit_code = EXIT_USAGE


class RecipeInvalid(RunnerError):
    """One or more recipes failed validation; ``diagnostics`` holds every problem found."""

    exit_code = EXIT_INVALID_RECIPE

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        self.diagnostics = tuple(diagnostics)
        super().__init__("\n".join(d.format() for d in self.diagnostics))


class ConfigurationError(RunnerError):
    """The environment is missing something the run needs (an API key, a writable directory)."""

    exit_code = EXIT_USAGE


class RunFailed(RunnerError):
    """The run finished but some item, task or expectation failed."""

    exit_code = EXIT_FAILED
