"""An xdist worker ends without freeing its heap, once its results are sent and its
exit functions have run.

When the last test has run, the controlling process asks each worker to stop and
waits for it (``NodeManager.teardown_nodes``), and pytest's clock runs meanwhile. A
worker's interpreter then frees every object of every module it imported (the
runner, aiohttp, Hypothesis, every test module and what the tests kept): about a
second of that wait, with the three workers freeing theirs at once on two cores.

So a worker's last exit function, after the interpreter has joined its threads and
run every exit function registered after this one (the tests' and the libraries'),
flushes what logging and the standard streams hold and ends the process with
``os._exit``, as ``multiprocessing``'s forked children and the warm server's commands
(tests/warmstart.py) end theirs. Its results reached the controller before: a worker
sends them as each test ends, and says it has finished in ``pytest_sessionfinish``.
Only a worker: the controlling process ends as any pytest does, with its exit code.
Exit functions registered before this plugin's are skipped, but for logging's (run
here); so under coverage.py, whose start-up hook registers its save first, a worker
ends as usual. ``pytest -p no:worker_exit`` turns this off.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import sys

import pytest


def pytest_configure(config: pytest.Config) -> None:
    """Registered as the worker starts: exit functions run last-registered first, so
    this one runs after everything the tests and the libraries register later."""
    measured = "coverage" in sys.modules or "COVERAGE_PROCESS_START" in os.environ
    if hasattr(config, "workerinput") and not measured:
        atexit.register(_exit_without_teardown)


def _exit_without_teardown() -> None:
    logging.shutdown()  # registered before this one, at logging's import: run it here
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            stream.flush()
    os._exit(0)
