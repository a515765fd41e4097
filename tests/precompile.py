"""Write the suite's bytecode once, before the xdist workers start.

Every xdist worker imports every test module, and every worker, warm server
(tests/warmstart.py) and ``python -m runner`` subprocess imports the runner. Without
bytecode on disk each of them compiles the runner's modules from source, and each
worker rewrites the asserts of every test module again (pytest's assertion rewriting,
most of a worker's collection time). That is the case on a fresh clone's first run,
and on every run where ``PYTHONDONTWRITEBYTECODE`` is set (many containers and CI
images set it), since then no process writes what it compiled.

So the controlling process, before any worker starts:

1. compiles ``runner/`` and the helper modules of ``tests/`` into their usual
   ``__pycache__`` folders with :mod:`compileall` (an up-to-date module is skipped, so
   a second run costs a few milliseconds);
2. writes pytest's own cache of the rewritten test modules (conftest, ``test_*.py`` and
   the modules registered for rewriting, ``__pycache__/NAME.cpython-311-pytest-X.Y.Z.pyc``),
   which every worker reads even when it may not write bytecode itself.

In every process, it also leaves the packages that are not the project's unrewritten
(:func:`leave_installed_packages_unrewritten`).

It writes them even when ``PYTHONDONTWRITEBYTECODE`` is set. pip compiles an installed
package's modules whatever that variable says; an editable checkout has no one to do
it, and the checkout's ``__pycache__`` folders are ignored by git. ``pytest -p
no:precompile`` turns this off. Step 2 uses pytest's private functions
(``_pytest.assertion.rewrite``): if a pytest release changes them, the step is
skipped and the suite only runs slower. Only files inside the checkout are read or
written (where ``PYTHONPYCACHEPREFIX`` is set, the bytecode goes under that folder, as
Python's own does).
"""

from __future__ import annotations

import compileall
import importlib.util
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

import pytest
from cores import usable_cores

T = TypeVar("T")
TESTS = Path(__file__).resolve().parent
CHECKOUT = TESTS.parent
# What the workers, the warm servers and the subprocesses import from the checkout.
PACKAGES = (CHECKOUT / "runner",)
# compileall leaves these to pytest, which rewrites their asserts (below).
TEST_MODULE = re.compile(r"[/\\](test_[^/\\]*|conftest)\.py$")
# What this plugin cost and how many test modules it rewrote, for ``pytest -v``.
SPENT = pytest.StashKey[tuple[float, int]]()


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """In every process, installed packages are left unrewritten; the rest in the
    controlling process only: xdist starts the workers later, in
    ``pytest_sessionstart``; a worker has ``workerinput``."""
    leave_installed_packages_unrewritten(config)
    if hasattr(config, "workerinput"):
        return
    started = time.perf_counter()
    compile_modules()
    rewritten = write_rewritten(config, sorted(TESTS.glob("*.py")))
    config.stash[SPENT] = (time.perf_counter() - started, rewritten)


def pytest_report_header(config: pytest.Config) -> str | None:
    """``pytest -v`` says what it cost (the controller prints the header)."""
    spent = config.stash.get(SPENT, None)
    if spent is None or config.option.verbose < 1:
        return None
    seconds, rewritten = spent
    return f"precompile: {seconds:.2f} s, {rewritten} test modules rewritten (-p no:precompile)"


def leave_installed_packages_unrewritten(config: pytest.Config) -> list[str]:
    """Import installed packages with their own bytecode, not rewritten by pytest; the
    names it unmarked (those of neither ``tests/`` nor the runner's packages).

    pytest rewrites the asserts of every package whose distribution registers a plugin
    (``pytest11``): all of Hypothesis (73 modules), not only its plugin. Where no
    bytecode is written, each process does it again as the tests import Hypothesis:
    0.9 s of CPU in each worker, and once more in the controlling process, whose
    summary imports Hypothesis after the last test, while the clock runs. Those asserts
    are the packages' own checks; a rewritten message would help nobody here. Our own
    modules (the tests, the helpers registered in conftest.py) stay marked. Plugins
    pytest imported before this hook (xdist's, pytest-asyncio's) are rewritten already."""
    try:
        from _pytest.assertion import rewrite

        hook = next(h for h in sys.meta_path if isinstance(h, rewrite.AssertionRewritingHook))
        marked: set[str] = hook._must_rewrite
        installed = sorted(name for name in marked if not _ours(name))
        marked.difference_update(installed)
        hook._marked_for_rewrite_cache.clear()
        return installed
    except (ImportError, AttributeError, TypeError, StopIteration):
        return []  # not rewriting (--assert=plain), or a pytest whose private parts differ


def _ours(name: str) -> bool:
    """Whether the top-level module ``name`` is the project's: found in ``tests/`` or in
    the runner's packages (or not found at all: a name marked for a module still to
    come is left as it is). Not anywhere in the checkout: the README's virtual
    environment, ``.venv``, is inside it, and so are the packages installed there."""
    try:
        spec = importlib.util.find_spec(name.partition(".")[0])
    except (ImportError, ValueError):
        return True
    places = [spec.origin] if spec and spec.origin else []
    places += list(spec.submodule_search_locations or []) if spec else []
    homes = (TESTS, *PACKAGES)
    return not places or any(
        Path(place).resolve().is_relative_to(home) for place in places for home in homes
    )


def compile_modules() -> None:
    """The runner's and the tests' helper modules, as ``python -m compileall`` would (a
    module whose bytecode is up to date is skipped; all of them take 0.3 s of CPU, less
    than a process pool's start)."""
    for package in PACKAGES:
        compileall.compile_dir(package, quiet=2)
    # The tests' helpers only: fixtures are data, test modules are pytest's.
    compileall.compile_dir(TESTS, maxlevels=0, rx=TEST_MODULE, quiet=2)


def write_rewritten(config: pytest.Config, modules: Iterable[Path]) -> int:
    """pytest's cache of each module it will rewrite that has none up to date, written
    by pytest's own functions on every core; how many (0 if pytest changed them)."""
    try:
        from _pytest.assertion import rewrite

        hook = next(h for h in sys.meta_path if isinstance(h, rewrite.AssertionRewritingHook))
        state = config.stash[rewrite.assertstate_key]
        stale: list[tuple[Path, Path]] = []
        for module in modules:
            pyc = rewrite.get_cache_dir(module) / (module.name[:-3] + rewrite.PYC_TAIL)
            rewritten = hook._should_rewrite(module.stem, str(module), state)
            if rewritten and rewrite._read_pyc(module, pyc) is None:
                stale.append((module, pyc))
        stale.sort(key=lambda pair: pair[0].stat().st_size, reverse=True)  # even shares

        def write(share: list[tuple[Path, Path]]) -> None:
            for module, pyc in share:
                if not rewrite.try_makedirs(pyc.parent):
                    return  # a read-only checkout: the workers rewrite, as before
                try:
                    source_hash, code = rewrite._rewrite_test(module, config)
                except (OSError, SyntaxError, ValueError):
                    continue  # pytest reports it when it collects the module
                rewrite._write_pyc(state, code, source_hash, pyc)

        on_every_core(write, stale)
        return len(stale)
    except (ImportError, AttributeError, TypeError, KeyError, StopIteration):
        # Not rewriting (--assert=plain), or a pytest whose private functions differ:
        # each worker rewrites the modules itself, as it would without this plugin.
        return 0


def on_every_core(work: Callable[[list[T]], None], items: list[T]) -> None:
    """``work`` on a share of ``items`` per core, in forked children but the first share
    (pytest's config and code objects do not pickle to a process pool; a fork has them).
    One process where there is no fork, or where a thread runs (Python 3.12 warns)."""
    cores = usable_cores()
    if not hasattr(os, "fork") or threading.active_count() > 1:
        cores = 1
    shares = [items[core::cores] for core in range(cores)]
    children: list[int] = []
    try:
        for share in shares[1:]:
            if share:
                child = os.fork()
                if child == 0:
                    try:
                        work(share)
                    finally:
                        os._exit(0)  # no atexit, no flushing the parent's buffers twice
                children.append(child)
        work(shares[0])
    finally:
        for child in children:
            os.waitpid(child, 0)
