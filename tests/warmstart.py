"""`transcript-runner` as a real process, without a new interpreter's start-up each time.

The workflow's and the action's tests play their `run:` lines with bash, as GitHub
does: each `transcript-runner ...` line is a process with its own arguments, folder,
environment, standard streams and exit code. Most of such a process's time is Python
starting and importing the runner (about half a second of CPU), dozens of times a test.

So a server started once per worker imports the runner and waits; the
`transcript-runner` on the tests' PATH is a small script that hands the server its
arguments, folder, environment and its own standard streams (the file descriptors
themselves, over a Unix socket). The server forks; the child takes on all of that and
calls the entry point that ``[project.scripts]`` names, as the installed script does,
then exits as any interpreter does (threads joined, atexit, flushed streams) but
without tearing down the heap it shares with the server (:func:`end`); the script exits
with the child's code, or dies of the child's signal. bash, the line's words, the pipes and the
codes are the workflow's own; only the import happened earlier, in the parent.

``python -m runner.MODULE`` lines (action.yml's) go the same way (``runpy``). A Whisper
model loaded there answers from the suite's shared decodes (tests/shared_decodes.py):
the workflow runs the shipped first-run.yaml, whose recording the local engine's tests
decode already; the packaged embedding model from the shared embeddings
(tests/shared_embeddings.py): graded-summary.yaml's grounded checks embed the same
passages in each of the workflow's three runs. tests/test_warmstart.py holds all this
to a cold start of the installed script.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import marshal
import os
import pkgutil
import runpy
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any, NoReturn

import pytest
from shared_decodes import decodes_folder, shared_loader
from shared_embeddings import embeddings_folder, shared_embedding_loader

from runner.transcript import embedding, local_engine

ROOT = Path(__file__).resolve().parent.parent
# The installed `transcript-runner` calls what pyproject.toml names; so does the server.
ENTRY = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"][
    "transcript-runner"
]

# The client: started with -IS (no site, no environment) and built on what loads with
# the interpreter or in C (_socket, array, marshal), so it costs about 15 ms of CPU where
# socket.py and json took 30 (enum, re: a workflow's test starts it 30 times). It sends
# its streams as socket.send_fds does, then {how, argv, cwd, env}; it reads the code.
CLIENT = """\
import _signal, _socket, array, marshal, os, sys
how = {how!r}
for fd in (0, 1, 2):  # a closed stream is /dev/null, as it would be to a child
    try:
        os.fstat(fd)
    except OSError:
        os.open(os.devnull, os.O_RDWR)
server = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
server.connect({path!r})
streams = array.array("i", [0, 1, 2])
server.sendmsg([b"!"], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, streams)])
request = {{"how": how, "argv": sys.argv, "cwd": os.getcwd(), "env": dict(os.environ)}}
server.sendall(marshal.dumps(request))
server.shutdown(_socket.SHUT_WR)
answer = b"".join(iter(lambda: server.recv(64), b""))
server.close()
code = int(answer or b"1")
if code < 0:  # killed by a signal: die of it too, as the shell expects, by the signal's
    try:  # default action (not Python's KeyboardInterrupt: a second traceback)
        _signal.signal(-code, _signal.SIG_DFL)
    except (OSError, ValueError):  # SIGKILL's cannot be changed
        pass
    os.kill(os.getpid(), -code)
sys.exit(code)
"""


# Where a job asks its handler to write its command's pid (WarmProcess): the client is
# what the caller started, the command is a process forked beside it.
PID_FILE_ENV = "WARMSTART_PID_FILE"


@dataclass(frozen=True)
class Job:
    how: str  # "entry": the console script; "module": python -m ARGV[1]
    argv: list[str]
    cwd: str
    env: dict[str, str]


# What the runner imports inside the functions that need it (the HTML report, quotes'
# alignment, the repair of near-JSON, audio durations, embeddings' arrays): a command's
# imports are its own, so each command that needs one paid for it again. Not ONNX
# Runtime, which starts a thread as it is imported (a forked child would inherit its
# state without the thread), nor faster-whisper, which one command of a test needs at
# most: each server would pay what that one command pays. NumPy's OpenBLAS starts a
# thread too, but stops its threads before each fork (pthread_atfork) and starts them
# again in the child that computes.
LAZY_IMPORTS = ("markdown_it", "rapidfuzz.fuzz", "json_repair", "wave", "numpy")


def preload() -> None:
    """Import every module of the runner, as the commands would on their way, and what
    its commands import later (:data:`LAZY_IMPORTS`)."""
    import runner

    import_module(ENTRY.partition(":")[0])
    for module in pkgutil.walk_packages(runner.__path__, "runner."):
        if not module.name.endswith("__main__"):
            import_module(module.name)
    for name in LAZY_IMPORTS:
        with contextlib.suppress(ImportError):  # an extra that is not installed
            import_module(name)


def serve(path: str) -> Job:
    """Accept requests for ever; returns only in a forked child, with its job."""
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(f"{path}.new")
    listener.listen(64)
    os.rename(f"{path}.new", path)  # there once it listens
    signal.signal(signal.SIGTERM, _stop)
    sys.stdout.flush()
    sys.stderr.flush()
    while True:
        conn, _ = listener.accept()
        if os.fork() == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            listener.close()
            return _handle(conn)
        conn.close()
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass


def _stop(signum: int, frame: object) -> None:
    """Stopped: reap every handler first, so that their CPU time (and their commands')
    counts in the suite's, as a cold start's would."""
    with contextlib.suppress(ChildProcessError):
        while True:
            os.waitpid(-1, 0)
    os._exit(0)


def _handle(conn: socket.socket) -> Job:
    """In the handler: read the job, fork the command's process, wait, send its code."""
    _, fds, _, _ = socket.recv_fds(conn, 1, 3)
    body = b"".join(iter(lambda: conn.recv(1 << 16), b""))
    request = marshal.loads(body)
    job = Job(request["how"], request["argv"], request["cwd"], request["env"])
    pid_file = job.env.pop(PID_FILE_ENV, None)  # the command's environment is the caller's
    pid = os.fork()
    if pid == 0:
        conn.close()
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        return job
    for fd in fds:
        os.close(fd)
    if pid_file:
        with open(f"{pid_file}.new", "w", encoding="utf-8") as written:
            written.write(str(pid))
        os.rename(f"{pid_file}.new", pid_file)  # there whole, or not yet
    # Ended, but not reaped until its client has its code and has hung up: the pid stays
    # the command's (a zombie) while the caller may still signal it (WarmProcess).
    ended = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
    assert ended is not None
    code = ended.si_status if ended.si_code == os.CLD_EXITED else -ended.si_status
    conn.sendall(str(code).encode())
    with contextlib.suppress(OSError):
        conn.shutdown(socket.SHUT_WR)
        while conn.recv(64):  # until the client closes its end
            pass
    conn.close()
    os.waitpid(pid, 0)
    os._exit(0)


def become(job: Job) -> None:
    """In the command's process: its folder, environment and arguments, then the
    program; returns nothing, raises ``SystemExit`` as the program ends."""
    os.chdir(job.cwd)
    os.environ.clear()
    os.environ.update(job.env)
    time.tzset()
    if job.how == "module":  # python -m MODULE ARGS...
        option, module, *rest = job.argv[1:]
        assert option == "-m", f"the warm python runs modules only: {job.argv}"
        sys.argv = [module, *rest]  # run_module puts the module's file first, as -m does
        runpy.run_module(module, run_name="__main__", alter_sys=True)
        raise SystemExit(0)
    sys.argv = [job.argv[0], *job.argv[1:]]
    module_name, _, function = ENTRY.partition(":")
    raise SystemExit(getattr(import_module(module_name), function)())


def end(job: Job) -> NoReturn:
    """Run the job's command, then end its process as the interpreter ends one, without
    the teardown that frees every object: non-daemon threads joined and atexit
    functions run (``threading._shutdown`` and ``atexit._run_exitfuncs``, what
    ``Py_FinalizeEx`` calls), the standard streams flushed, then ``os._exit``, as
    multiprocessing's fork children end. Freeing the objects the child inherited writes
    to the pages it shares with the server, and copying them cost each command about a
    tenth of a second of CPU (30 commands in the workflow's test). Nor is the cyclic
    garbage collected, as the interpreter's teardown would (37 ms a command, a second
    of the workflow's test): the runner closes what it writes, and a file it left to
    the collector would come out short here, which is stricter than a real process,
    never looser. What the shell sees is the same: a code that is not a number, an
    exception, or a stream that cannot be flushed takes the interpreter's own way out,
    which says so as it always does."""
    status = 0
    try:
        become(job)
    except SystemExit as exited:
        if exited.code is not None and not isinstance(exited.code, int):
            raise
        status = exited.code or 0
    threading._shutdown()  # type: ignore[attr-defined]
    atexit._run_exitfuncs()
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
    except (OSError, ValueError):
        raise SystemExit(status) from None  # Python flushes again and reports it
    os._exit(status)


@dataclass(frozen=True)
class Warm:
    """Where the warm `transcript-runner` is (``bin``, to put first on PATH), and the
    Python that runs ``-m runner.MODULE`` warm (``python``)."""

    bin: Path
    python: Path


def _client(folder: Path, name: str, how: str, path: str) -> Path:
    script = folder / name
    script.write_text(
        f"#!{sys.executable} -IS\n" + CLIENT.format(how=how, path=path), encoding="utf-8"
    )
    script.chmod(0o755)
    return script


@contextlib.contextmanager
def warm_server(decodes: Path, embeddings: Path) -> Iterator[Warm]:
    # A Unix socket's path has room for about 100 bytes: a short folder of its own.
    folder = Path(tempfile.mkdtemp(prefix="warm-"))
    path = str(folder / "socket")
    log = (folder / "server.log").open("w")
    server = subprocess.Popen(
        [sys.executable, __file__, path, str(decodes), str(embeddings)],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    try:
        while not os.path.exists(path):  # the runner's imports, once
            if server.poll() is not None:
                pytest.fail("the warm server did not start: " + (folder / "server.log").read_text())
            time.sleep(0.01)
        (folder / "bin").mkdir()
        _client(folder / "bin", "transcript-runner", "entry", path)
        python = _client(folder, "python", "module", path)
        yield Warm(folder / "bin", python)
    finally:
        _kill_commands_left()
        server.terminate()
        server.wait(timeout=10)
        log.close()
        shutil.rmtree(folder, ignore_errors=True)


class WarmProcess(subprocess.Popen[str]):
    """``python -m MODULE ARGS`` as a process of its own, forked from the warm server:
    what ``subprocess.Popen([sys.executable, "-m", ...], text=True)`` gives, less the
    interpreter's start and the runner's imports (0.4 to 0.6 s of CPU each, six such
    processes in the signal tests). The interpreter's own ``PYTHON*`` variables in
    ``env`` are the server's, set when it started.

    The process started is the warm client, which ends as the command ends: with its
    code, or killed by the same signal. Its standard streams are the command's. What
    is sent to it goes to the command itself, whose pid the handler writes down:
    ``send_signal`` (and so ``terminate`` and ``kill``) signals the command, as the
    tests signal a run; ``command_pid`` is that pid. (A signal sent to the client's
    own pid, ``os.kill(process.pid, ...)``, does not reach the command.) A command
    still running when the suite ends, a failed test's, is killed then."""

    def __init__(self, warm: Warm, args: list[str], *, env: dict[str, str], **options: Any) -> None:
        # In the server's own folder, removed with it.
        self._pid_file = warm.bin.parent / f"pid-{uuid.uuid4().hex}"
        super().__init__(
            [str(warm.python), *args],
            env={**env, PID_FILE_ENV: str(self._pid_file)},
            text=True,
            **options,
        )
        _STARTED.append(self)

    @property
    def command_pid(self) -> int | None:
        """The command's pid, once its handler has forked it; None if the client ended
        without one (it could not reach the server, or the handler failed)."""
        deadline = time.monotonic() + 60  # a guard against a wedged server, not a wait
        while not self._pid_file.exists():
            if self.poll() is not None and not self._pid_file.exists():
                return None
            if time.monotonic() > deadline:
                raise TimeoutError(f"the warm server forked no command for {self.args}")
            time.sleep(0.005)  # the handler forks as soon as the client has connected
        return int(self._pid_file.read_text(encoding="utf-8"))

    def send_signal(self, sig: int) -> None:
        pid = self.command_pid
        if pid is not None and self.poll() is None:
            # The handler reaps the command only after the client has its code, so
            # the pid is still the command's (perhaps ended), as with Popen's child.
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)


_STARTED: list[WarmProcess] = []


def _kill_commands_left() -> None:
    """Commands a failed test left running: the server waits for its handlers."""
    for process in _STARTED:
        if process.poll() is None:
            process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(10)
    _STARTED.clear()


@pytest.fixture(scope="session")
def warm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Warm]:
    """A warm `transcript-runner` for the tests that play bash lines (one per worker)."""
    with warm_server(
        decodes_folder(tmp_path_factory), embeddings_folder(tmp_path_factory)
    ) as found:
        yield found


def main(argv: list[str]) -> Any:
    preload()
    local_engine._load = shared_loader(Path(argv[2]))  # the suite's Whisper decodes
    embedding._load = shared_embedding_loader(Path(argv[3]))  # and its embeddings
    gc.freeze()  # what the imports made stays shared with the children, untouched
    job = serve(argv[1])  # returns in the command's process only
    end(job)


if __name__ == "__main__":
    main(sys.argv)
