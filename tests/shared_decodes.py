"""One Whisper decode per audio and options for the whole suite, shared by its workers.

Several tests transcribe the same recording with the same options: the local engine's
own tests (which judge the words) and the runs of ``first-run.yaml`` (the README's,
the first run's), which test what the runner does with the words. Decoding is the
costliest thing the suite does (seconds of CPU a time, many more when the machine is
busy), and its result depends only on the model, the audio and the options.

So the suite wraps the loaded model: the first ``transcribe`` of an audio file with
given options decodes it for real, and keeps the segments and the audio's information
in a folder all the workers share (``pytest-N/``, beside each worker's own); any later
one, in any worker, gets them back. Everything after ``WhisperModel.transcribe`` (the
words, times, confidence, ids, the store, the run) is the runner's code, run every
time. The runner loads and calls the model as it always does; only what the model
answers is remembered.

The bundled tiny.en (the ``local`` extra's) is read from disk only when a decode is not
kept yet: importing faster-whisper and loading the model cost about a second of CPU in
each process, and most of the suite's processes (the warm server's children above all)
find their decodes kept. Any other model is loaded at once, as the runner does, so a
model a test gives fails where the runner's would.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import os
import pickle
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from runner.transcript import local_engine


class SharedDecodes:
    """A ``WhisperModel`` (loaded by ``load`` when first needed) whose answers are kept
    in ``folder`` by audio and options."""

    def __init__(self, load: Callable[[], Any], label: str, folder: Path) -> None:
        self._load = load
        self._label = label
        self._folder = folder
        self._model: Any = None
        self._loading = threading.Lock()  # files are decoded in worker threads

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real(), name)

    def _real(self) -> Any:
        with self._loading:
            if self._model is None:
                self._model = self._load()
            return self._model

    def transcribe(self, audio: str, **options: Any) -> tuple[Iterator[Any], Any]:
        try:
            content = hashlib.sha256(Path(audio).read_bytes()).hexdigest()
        except OSError:  # the model's own error is what the runner must see
            return self._real().transcribe(audio, **options)  # type: ignore[no-any-return]
        key = hashlib.sha256(f"{self._label}\n{content}\n{sorted(options.items())}".encode())
        kept = self._folder / f"{key.hexdigest()}.pickle"
        with (self._folder / f"{kept.name}.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one worker decodes; the others wait for it
            if kept.exists():
                segments, info = pickle.loads(kept.read_bytes())
            else:
                found, info = self._real().transcribe(audio, **options)
                segments = list(found)  # decoding happens here, segment by segment
                partial = kept.with_suffix(".partial")
                partial.write_bytes(pickle.dumps((segments, info)))
                os.replace(partial, kept)
        return iter(segments), info


def shared_folder(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """A folder of this run's, shared by its workers (and their subprocesses)."""
    base = tmp_path_factory.getbasetemp()
    # Under xdist each worker's basetemp is pytest-N/popen-gwK: pytest-N is the run's.
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    folder = shared / name
    folder.mkdir(exist_ok=True)
    return folder


def decodes_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder of this run's decodes, shared by its workers (and their subprocesses)."""
    return shared_folder(tmp_path_factory, "whisper-decodes")


def _bundled(name_or_path: str) -> bool:
    """Whether this is the bundled tiny.en, with faster-whisper there to load it: a
    model whose loading can wait until a decode is missing."""
    try:
        bundled = local_engine.default_model()
    except local_engine.LocalEngineUnavailable:
        return False
    return name_or_path == bundled and importlib.util.find_spec("faster_whisper") is not None


def shared_loader(folder: Path) -> Callable[[str, str, int], Any]:
    """``local_engine._load``, whose models answer from the decodes kept in ``folder``."""
    load = local_engine._load

    def load_shared(name_or_path: str, compute_type: str, threads: int) -> Any:
        label = f"{name_or_path}\n{compute_type}"

        def load_model() -> Any:
            # One thread: each xdist worker already has a core. Two OpenMP threads per
            # worker on two busy cores wait at every barrier for a thread the scheduler
            # parked (a 3-second decode took 50 s in the suite); the words are the same.
            return load(name_or_path, compute_type, 1)

        if not _bundled(name_or_path):
            model = load_model()  # its error, if any, where the runner raises it
            return SharedDecodes(lambda: model, label, folder)
        return SharedDecodes(load_model, label, folder)

    return load_shared


@pytest.fixture(autouse=True, scope="session")
def shared_decodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Every Whisper model the runner loads in this session answers from the shared
    decodes (the warm `transcript-runner` of tests/warmstart.py too)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(local_engine, "_load", shared_loader(decodes_folder(tmp_path_factory)))
        yield
