"""tests/precompile.py writes the bytecode that pytest and Python then read: the
rewritten test modules where pytest's import hook finds them, the runner's modules where
the import system does; a pytest whose private functions differ only costs time."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from types import CodeType
from typing import Any, ClassVar

import pytest
from _pytest.assertion import rewrite
from cores import usable_cores
from precompile import (
    CHECKOUT,
    TEST_MODULE,
    TESTS,
    _ours,
    compile_modules,
    on_every_core,
    write_rewritten,
)

SAMPLE = "def test_sum():\n    total = 1 + 1\n    assert total == 3\n"


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    """A test module pytest would rewrite."""
    module = tmp_path / "test_precompiled_sample.py"
    module.write_text(SAMPLE, encoding="utf-8")
    return module


def test_the_rewritten_module_written_is_the_one_pytest_imports(
    sample: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    hooks = [hook for hook in sys.meta_path if isinstance(hook, rewrite.AssertionRewritingHook)]
    if not hooks:
        pytest.skip("pytest runs without assertion rewriting (--assert=plain)")
    assert write_rewritten(request.config, [sample]) == 1
    assert write_rewritten(request.config, [sample]) == 0  # up to date: not again

    def no_rewriting(fn: Path, config: pytest.Config) -> object:
        raise AssertionError(f"pytest rewrote {fn} again instead of reading the cache")

    # pytest's hook, as a worker's collection meets it, may only read what was written.
    monkeypatch.setattr(rewrite, "_rewrite_test", no_rewriting)
    spec = hooks[0].find_spec(sample.stem, [str(sample.parent)])
    assert spec is not None
    assert spec.loader is hooks[0]
    module = importlib.util.module_from_spec(spec)
    hooks[0].exec_module(module)
    with pytest.raises(AssertionError) as failed:
        module.test_sum()
    assert "assert 2 == 3" in str(failed.value)  # a rewritten assert explains itself


@pytest.mark.parametrize(
    ("name", "changed"),
    [
        ("_rewrite_test", lambda fn: None),  # another signature
        ("_read_pyc", None),  # gone
        ("PYC_TAIL", 311),  # another type
    ],
)
def test_a_pytest_whose_private_functions_differ_only_costs_time(
    sample: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    changed: Callable[..., object] | int | None,
) -> None:
    if changed is None:
        monkeypatch.delattr(rewrite, name)
    else:
        monkeypatch.setattr(rewrite, name, changed)
    assert write_rewritten(request.config, [sample]) == 0
    assert not list(sample.parent.glob("__pycache__/*"))


class SourceCompilations(importlib.machinery.SourceFileLoader):
    """Python's loader of a module's code, noting when it compiles the source because
    no bytecode on disk is valid for it."""

    compiled: ClassVar[list[str]] = []

    def source_to_code(self, data: Any, path: Any, *, _optimize: int = -1) -> CodeType:  # type: ignore[override]
        self.compiled.append(str(path))
        return super().source_to_code(data, path, _optimize=_optimize)


def test_the_runner_and_the_helpers_are_compiled_where_python_looks() -> None:
    compile_modules()
    helpers = [path for path in TESTS.glob("*.py") if not TEST_MODULE.search(str(path))]
    modules = [*(CHECKOUT / "runner").rglob("*.py"), *helpers]
    assert len(modules) > 100
    for module in modules:
        SourceCompilations(module.stem, str(module)).get_code(module.stem)
    assert SourceCompilations.compiled == []


def test_every_share_of_the_work_is_done_before_it_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The controller has one thread; an xdist worker, where this runs, has more.
    monkeypatch.setattr(threading, "active_count", lambda: 1)
    names = [f"module{number}" for number in range(5)]

    def touch(share: list[str]) -> None:
        for name in share:
            (tmp_path / name).write_text(str(os.getpid()), encoding="utf-8")

    with warnings.catch_warnings():
        # Python 3.12+ warns of fork in a threaded process; this child only writes files.
        warnings.simplefilter("ignore", DeprecationWarning)
        on_every_core(touch, names)
    assert sorted(path.name for path in tmp_path.iterdir()) == names
    workers = {path.read_text(encoding="utf-8") for path in tmp_path.iterdir()}
    cores = usable_cores()
    assert len(workers) == min(cores, len(names))  # one process per core


def test_installed_packages_are_imported_unrewritten_and_ours_rewritten(
    request: pytest.FixtureRequest,
) -> None:
    """Hypothesis (a package with a pytest plugin, installed wherever the virtual
    environment is: the README's is inside the checkout) is imported as Python would;
    the suite's own helpers still have pytest's asserts."""
    if request.config.getoption("assertmode") != "rewrite":
        pytest.skip("pytest does not rewrite asserts here (--assert=plain)")
    if not request.config.pluginmanager.has_plugin("precompile"):
        pytest.skip("precompile is turned off (-p no:precompile)")
    import fakeapi
    import hypothesis

    assert not isinstance(hypothesis.__loader__, rewrite.AssertionRewritingHook)
    assert isinstance(fakeapi.__loader__, rewrite.AssertionRewritingHook)


def test_only_the_tests_and_the_runner_are_ours() -> None:
    assert _ours("runner")
    assert _ours("fakeapi")  # tests/fakeapi.py, a plugin of conftest's
    assert not _ours("hypothesis")
    assert not _ours("xdist")
    assert _ours("no_module_of_this_name_q9")  # not found: a name still to come is kept
