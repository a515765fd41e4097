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

**Recorded decodes of the shipped recordings.** The bundled tiny.en's decodes of the
recordings the repository ships (``recipes/audio/``: the first run's meeting, three
seconds of CPU) are kept in ``tests/fixtures/decodes/recorded.json`` with the digest of
the model files they came from; a run starts from them while that digest is the bundled
model's. Other audio (the tests' own fox and the dialogue espeak-ng speaks) is decoded
for real in every run, which is what the local engine's tests judge.
``pytest --record-decodes`` decodes everything anew and writes the recording again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import functools
import hashlib
import importlib.util
import json
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
                shipped = self._shipped_key(content, options)
                recorded = self._recorded(shipped)
                if recorded is not None:
                    segments, info = recorded
                else:
                    found, info = self._real().transcribe(audio, **options)
                    segments = list(found)  # decoding happens here, segment by segment
                    if shipped is not None:  # for --record-decodes
                        _write(self._folder / f"{shipped}.decode.json", _dumped(segments, info))
                partial = kept.with_suffix(".partial")
                partial.write_bytes(pickle.dumps((segments, info)))
                os.replace(partial, kept)
        return iter(segments), info

    def _shipped_key(self, content: str, options: dict[str, Any]) -> str | None:
        """The recording's key of a decode of a shipped recording by the bundled model."""
        name, _, compute_type = self._label.partition("\n")
        if content not in shipped_recordings() or not _bundled(name):
            return None
        asked = f"{compute_type}\n{content}\n{sorted(options.items())}"
        return hashlib.sha256(asked.encode()).hexdigest()

    def _recorded(self, key: str | None) -> tuple[list[Any], Any] | None:
        if key is None or (self._folder / RECORDING).exists():
            return None
        found = recorded_decodes().get(key)
        try:
            return _loaded(found) if found is not None else None
        except (TypeError, KeyError, ImportError):  # faster-whisper's classes changed
            return None


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


ROOT = Path(__file__).resolve().parent.parent
RECORDED = ROOT / "tests" / "fixtures" / "decodes" / "recorded.json"
RECORDING = "recording"  # in the shared folder while --record-decodes records


@functools.cache
def shipped_recordings() -> frozenset[str]:
    """The SHA-256 of each recording the repository ships (``recipes/audio/``)."""
    return frozenset(
        hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted((ROOT / "recipes" / "audio").glob("*.wav"))
    )


@functools.cache
def bundled_digest() -> str:
    """SHA-256 over the bundled tiny.en's files and the versions of faster-whisper and
    CTranslate2 (the search that decodes with it): what decides its answers. Another
    version decodes for real, and records nothing unless asked."""
    import ctranslate2
    import faster_whisper

    digest = hashlib.sha256(f"{faster_whisper.__version__} {ctranslate2.__version__}".encode())
    folder = Path(local_engine.default_model())
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(file.relative_to(folder).as_posix().encode() + b"\0" + file.read_bytes())
    return digest.hexdigest()


@functools.cache
def recorded_decodes() -> dict[str, Any]:
    """The recorded decodes, by key, when they came from the bundled model's files."""
    try:
        recorded: dict[str, Any] = json.loads(RECORDED.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if recorded.get("model_files_sha256") != bundled_digest():
        return {}
    decodes: dict[str, Any] = recorded.get("decodes") or {}
    return decodes


def _dumped(segments: list[Any], info: Any) -> dict[str, Any]:
    return {"segments": [dataclasses.asdict(s) for s in segments], "info": dataclasses.asdict(info)}


def _loaded(found: dict[str, Any]) -> tuple[list[Any], Any]:
    """The decode as faster-whisper returns it: its own dataclasses."""
    from faster_whisper.transcribe import Segment, TranscriptionInfo, TranscriptionOptions, Word
    from faster_whisper.vad import VadOptions

    segments = [
        Segment(**{**s, "words": [Word(**w) for w in s["words"] or ()]}) for s in found["segments"]
    ]
    info = dict(found["info"])
    info["transcription_options"] = TranscriptionOptions(**info["transcription_options"])
    info["vad_options"] = VadOptions(**info["vad_options"]) if info["vad_options"] else None
    return segments, TranscriptionInfo(**info)


def _write(path: Path, data: Any) -> None:
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    os.replace(partial, path)


def record(folder: Path) -> None:
    """Write the recording anew from this run's decodes of the shipped recordings (each
    worker as it ends, under the folder's lock: the last has every decode)."""
    with folder_locked(folder):
        decodes = {
            path.name.partition(".")[0]: json.loads(path.read_text(encoding="utf-8"))
            for path in sorted(folder.glob("*.decode.json"))
        }
        RECORDED.parent.mkdir(parents=True, exist_ok=True)
        about = {
            "model_files_sha256": bundled_digest(),
            "how": "pytest --record-decodes (tests/shared_decodes.py)",
            "decodes": decodes,
        }
        _write(RECORDED, about)


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


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--record-decodes",
        action="store_true",
        help="decode the shipped recordings with the bundled Whisper (nothing from the "
        "recording) and write tests/fixtures/decodes/recorded.json anew",
    )


def pytest_configure(config: pytest.Config) -> None:
    refuse_a_partial_recording(config, "--record-decodes", "decodes")


def refuse_a_partial_recording(config: pytest.Config, option: str, what: str) -> None:
    """A recording is rewritten with exactly what the run asked for: a run of some of
    the tests would leave out the others' answers, and they would be computed again,
    slowly, in every run after it."""
    if not config.getoption(option.lstrip("-").replace("-", "_"), False):
        return
    chosen = config.option
    narrowed = chosen.keyword or chosen.markexpr or getattr(chosen, "lf", False)
    if narrowed or config.args_source is pytest.Config.ArgsSource.ARGS:
        raise pytest.UsageError(
            f"{option} records what the whole suite {what}: run it without "
            "test paths, -k, -m or --lf"
        )


@contextlib.contextmanager
def folder_locked(folder: Path) -> Iterator[None]:
    """A shared folder, for this process alone (one process computes, seeds or records)."""
    with (folder / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@pytest.fixture(autouse=True, scope="session")
def shared_decodes(
    tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> Iterator[None]:
    """Every Whisper model the runner loads in this session answers from the shared
    decodes (the warm `transcript-runner` of tests/warmstart.py too), the shipped
    recordings' from the recording unless it is being recorded."""
    folder = decodes_folder(tmp_path_factory)
    recording = bool(pytestconfig.getoption("record_decodes"))
    if recording:
        (folder / RECORDING).touch()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(local_engine, "_load", shared_loader(folder))
        yield
    if recording:
        record(folder)
