"""Shared fixtures: run the command line in-process and capture what it prints; serve the
fake API (tests/fakeapi.py) and point the runner's HTTP client at it."""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from apiclient import KEY, config_for
from cores import usable_cores
from hermetic import GUARD, follow_temp_folder
from shares import slow_first_in_every_share

from runner.api.http import HttpClient
from runner.api.pacing import TEST_MODE_ENV, set_testing
from runner.cli import main

if TYPE_CHECKING:
    from fakeapi import FakeAssemblyAI

# The fake's fixtures: fake, base_url (served on the test's loop), thread_url; one Whisper
# decode per audio and options for the whole suite (tests/shared_decodes.py), one embedding
# per list of texts (tests/shared_embeddings.py); `warm`, the `transcript-runner` that bash
# lines of the workflow and the action run (tests/warmstart.py); the runner's and the
# tests' bytecode, written once before the workers start (tests/precompile.py: `pytest
# -p no:precompile` turns it off); a worker's end without freeing its heap
# (tests/worker_exit.py).
pytest_plugins = (
    "precompile",
    "worker_exit",
    "fakeapi",
    "shared_decodes",
    "shared_embeddings",
    "warmstart",
)

# Checks shared by the docs tests fail with pytest's explanations, as asserts in tests do.
pytest.register_assert_rewrite("docblocks")


@pytest.hookimpl(optionalhook=True)  # no error where xdist is not loaded (-p no:xdist)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """``-n auto``: one worker more than the cores this process may use (its affinity,
    within its cgroup's CPU quota: tests/cores.py). Many tests wait on a socket, a
    subprocess or a server's Retry-After for part of their time; a third worker on two
    cores runs while another waits (measured on 2 cores: 2 workers 55 s, 3 workers
    49 s, 4 workers 55 s; again with the temporary folders in memory, alternating: 2
    workers 49 and 52 s, 3 workers 47 and 50.5 s, though 8 s more CPU).
    ``PYTEST_XDIST_AUTO_NUM_WORKERS`` still decides when set (None hands the choice
    back to xdist)."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None
    return usable_cores() + 1


MEMORY_FOLDER = Path("/dev/shm")
MEMORY_NEEDED = 2 * 1024**3  # bytes free: a few hundred MB in use at once, with room


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Temporary folders in memory (``/dev/shm``) when ``TMPDIR`` is unset and it has
    room (and lets programs run from it): every run test makes a state store, whose
    commits sync to disk, and dozens of files, and on a disk the kernel's side of that
    cost 5 to 8 s of the suite's 90 s of CPU (tmp_path, tempfile and every subprocess
    follow; xdist's workers inherit it). ``TMPDIR=/tmp pytest`` keeps them out of it."""
    if "TMPDIR" in os.environ or not _has_room(MEMORY_FOLDER):
        return
    os.environ["TMPDIR"] = str(MEMORY_FOLDER)
    tempfile.tempdir = None  # gettempdir() looks again
    follow_temp_folder()  # the guard was imported before this ran (-n 0 tests here)


def _has_room(folder: Path) -> bool:
    try:
        stats = os.statvfs(folder)
    except OSError:  # no such folder: macOS, Windows
        return False
    # Tests run scripts they write there (the warm commands): Docker mounts it noexec.
    runnable = not stats.f_flag & getattr(os, "ST_NOEXEC", 0)
    roomy = stats.f_bavail * stats.f_frsize >= MEMORY_NEEDED
    return runnable and roomy and os.access(folder, os.W_OK)


@pytest.hookimpl(trylast=True)  # after -m and -k have deselected theirs
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The ``slow`` tests first, so that seconds-long tests tend not to run alone at the
    end while a core waits; under xdist's worksteal (the suite's ``--dist``), at the
    front of each worker's share, a module at a time (tests/shares.py). Every worker
    collects, and orders, the same list. (Only the order changes; every test runs.)"""
    worksteal = config.getoption("dist", None) == "worksteal"
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1) if worksteal else 1
    modules: dict[str, list[pytest.Item]] = {}  # a module's slow tests, in its order
    for item in items:
        if item.get_closest_marker("slow"):
            modules.setdefault(item.nodeid.partition("::")[0], []).append(item)
    quick = [item for item in items if not item.get_closest_marker("slow")]
    items[:] = slow_first_in_every_share(list(modules.values()), quick, workers)


@pytest.fixture(autouse=True, scope="session")
def no_user_caches(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Hugging Face's and XDG's caches in a temporary folder: a model a test finds is one
    the test put there, never one a developer happens to have."""
    caches = tmp_path_factory.mktemp("caches")
    names = ("HF_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "XDG_CACHE_HOME")
    saved = {name: os.environ.get(name) for name in names}
    os.environ.update({"HF_HOME": str(caches / "huggingface"), "XDG_CACHE_HOME": str(caches)})
    os.environ.pop("HF_HUB_CACHE", None)
    os.environ.pop("HUGGINGFACE_HUB_CACHE", None)
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(autouse=True)
def hermetic() -> Iterator[None]:
    """Fail the test that reads a file outside the checkout (tests/hermetic.py)."""
    GUARD.take()
    GUARD.watching = True
    yield
    GUARD.watching = False
    outside = GUARD.take()
    if outside:
        pytest.fail(
            "this test read outside the checkout, which a fresh clone does not have: "
            + ", ".join(sorted(set(outside))[:5])
            + " (copy what it needs into tests/fixtures/ and say where it came from)"
        )


@pytest.fixture(autouse=True)
def fast_pacing(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Iterator[None]:
    """Test mode (runner.api.pacing): no poll or backoff sleeps, here and in subprocesses.

    A test of the production schedule itself opts out with ``@pytest.mark.real_pacing``.
    """
    enabled = request.node.get_closest_marker("real_pacing") is None
    # Which variables a recipe may send is the operator's, set where the tests run:
    # no test depends on it unless it sets it.
    monkeypatch.delenv("TRANSCRIPT_RUNNER_ALLOWED_KEYS", raising=False)
    set_testing(enabled)
    if enabled:
        monkeypatch.setenv(TEST_MODE_ENV, "1")
    else:
        monkeypatch.delenv(TEST_MODE_ENV, raising=False)
    yield
    set_testing(None)


@dataclass(frozen=True)
class CliResult:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def __iter__(self) -> Iterator[Any]:
        """``code, out, err = run_cli(...)`` reads as the three things a shell shows."""
        return iter((self.exit_code, self.stdout, self.stderr))


RunCli = Callable[..., CliResult]


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> RunCli:
    """``run_cli("validate", "recipe.yaml")`` runs ``transcript-runner`` as a user would.

    ``GITHUB_ACTIONS`` is cleared so the report format does not depend on where the
    tests run; a test that wants it sets it again with ``monkeypatch.setenv``.
    """
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)

    def run(*args: str) -> CliResult:
        capsys.readouterr()  # drop anything printed before this call
        with pytest.raises(SystemExit) as exited:
            main(list(args))
        out, err = capsys.readouterr()
        code = exited.value.code
        return CliResult(code if isinstance(code, int) else 1, out, err)

    return run


@pytest.fixture
def served(
    fake: FakeAssemblyAI, api_key: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Path]:
    """``fake`` served from a thread, the environment pointing the runner at it with
    ``api_key``, and the working folder a fresh ``tmp_path`` (returned)."""
    from fakeapi import serve_in_thread  # a plugin: imported once pytest can rewrite it

    with serve_in_thread(fake) as url:
        monkeypatch.setenv("ASSEMBLYAI_API_KEY", api_key)
        monkeypatch.setenv("ASSEMBLYAI_BASE_URL", url)
        monkeypatch.setenv("ASSEMBLYAI_LLM_GATEWAY_URL", f"{url}/v1")
        monkeypatch.chdir(tmp_path)
        yield tmp_path


@pytest.fixture
def api_key() -> str:
    """The key ``fake`` accepts and ``http`` sends; a module may override this fixture."""
    return KEY


@pytest.fixture
async def http(base_url: str, api_key: str) -> AsyncIterator[HttpClient]:
    """The runner's HTTP client on the served fake, at test speed (tests/apiclient.py)."""
    async with HttpClient(config_for(base_url, key=api_key)) as client:
        yield client
