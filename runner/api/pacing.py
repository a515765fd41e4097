"""The test mode that takes the waiting out of polling and retry backoff.

A real run waits one second before its first poll and backs off for seconds between
retries; a test suite that runs hundreds of jobs against a loopback stand-in would
spend most of its time asleep. Like ``stamina.set_testing``, test mode keeps every
decision (what is retried, how often, in which order) and drops only the sleeps
that the runner chooses itself. Waits a server asks for (``Retry-After``, rate-limit
resets) and deadlines are kept, so tests of those still mean something.

Turn it on with :func:`set_testing` in-process, or by setting
``TRANSCRIPT_RUNNER_TEST_MODE=1`` for a ``transcript-runner`` subprocess. It is meant
for test suites only: against the real API it would poll as fast as requests return.
"""

from __future__ import annotations

import os
from typing import Final

TEST_MODE_ENV: Final = "TRANSCRIPT_RUNNER_TEST_MODE"

_forced: bool | None = None


def set_testing(enabled: bool | None) -> None:
    """Force test mode on or off in this process; ``None`` defers to the environment."""
    global _forced
    _forced = enabled


def testing() -> bool:
    """True when the runner's own poll and backoff waits should be skipped."""
    if _forced is not None:
        return _forced
    return os.environ.get(TEST_MODE_ENV, "") == "1"


def paced(seconds: float) -> float:
    """``seconds``, or no wait at all in test mode."""
    return 0.0 if testing() else seconds
