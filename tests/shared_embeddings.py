"""One embedding per text for the whole suite, shared by its workers.

The ``grounded`` checks and ``match: semantic`` embed a transcript's passages (or its
sentence windows) with the packaged all-MiniLM-L6-v2 (runner/transcript/embedding.py):
the shipped wildfires transcript's take a second or two of CPU, and loading ONNX
Runtime and the model half a second more, in every process. The runner keeps both for
the life of a process only, and the suite asks for the same texts in many: each xdist
worker, each test that matches other quotes against the same windows, and each
`transcript-runner` line of the workflow's test (graded-summary.yaml is run, run again
and replayed, each time a process forked from the warm server of tests/warmstart.py).

So the suite wraps the packaged model, as it wraps Whisper (tests/shared_decodes.py):
an ``embed`` call runs the model for real on the texts no process has embedded yet, and
keeps each text's vector in a folder all the workers share (``pytest-N/``, beside each
worker's own); every other text gets its vector back from there. A text's vector does
not depend on the texts embedded with it (the runner batches texts as it likes, padding
masked out: tests/test_embedding.py holds the model to it, and those tests ask the
model itself, through the ``real_embeddings`` fixture). The model is loaded only when a
text is new. Everything after ``embed`` (similarities, verdicts, times) is the runner's
code, run every time; the runner finds and asks its model as it always does; only what
the model answers is remembered.

Only the packaged model is shared: its files are the repository's, so its name says
what it answers. A model a test gives (a folder, a name in the cache) is loaded at once
and used as it is, so that its answers and its errors are the runner's own.

**Recorded answers.** Even once per run, the model's answers cost about ten seconds of
CPU (ONNX Runtime on the wildfires transcript's passages and windows, and loading the
model in each process that asks first), a fifth of the suite's time on two cores. So
the vectors of every text the suite embeds are kept in the repository
(``tests/fixtures/embeddings/recorded.zip``: one ``.npy`` per text, named as in the
shared folder) with the digest of the model files they came from (``recorded.json``).
Each run starts its shared folder from them when that digest is the packaged model's
(a changed model answers for itself again); a text they lack (a test or a passage
added since) is embedded for real, as before. ``pytest --record-embeddings`` records
them again: nothing is taken from the recording, every text is embedded by the model,
and the recording is rewritten with exactly the texts the run asked for. The model
itself is still judged every run: tests/test_embedding.py asks it directly
(``real_embeddings``) and holds it to sentence-transformers' vectors.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import threading
import zipfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from shared_decodes import folder_locked, refuse_a_partial_recording, shared_folder

from runner.transcript import embedding
from runner.transcript.embedding import PACKAGED_FILES, PACKAGED_NAMES, Embedder


class SharedEmbeddings:
    """The packaged model, whose answers are kept in ``folder``, one vector per text."""

    def __init__(self, load: Callable[[], Embedder], label: str, folder: Path) -> None:
        self._load = load
        self._label = label
        self._folder = folder
        self._model: Embedder | None = None
        self._loading = threading.Lock()  # quotes are matched in worker threads

    def embed(self, texts: Sequence[str]) -> Any:
        import numpy

        if not texts:  # the model's own answer to nothing, whatever its shape
            return self._real().embed(texts)
        files = {text: self._file(text) for text in texts}
        vectors = {text: numpy.load(file) for text, file in files.items() if file.exists()}
        if len(vectors) < len(files):
            with folder_locked(self._folder):  # one process embeds; the others wait for it
                vectors.update(self._embedded([t for t in files if t not in vectors], files))
        return numpy.stack([vectors[text] for text in texts])

    def _embedded(self, texts: list[str], files: dict[str, Path]) -> dict[str, Any]:
        """The texts' vectors: kept by another process meanwhile, else embedded now."""
        import numpy

        found = {text: numpy.load(files[text]) for text in texts if files[text].exists()}
        new = [text for text in texts if text not in found]
        if new:
            for text, vector in zip(new, self._real().embed(new), strict=True):
                partial = files[text].with_suffix(".partial")
                with partial.open("wb") as file:
                    numpy.save(file, vector, allow_pickle=False)
                os.replace(partial, files[text])
                found[text] = vector
        return found

    def _file(self, text: str) -> Path:
        asked = f"{self._label}\n{text}".encode()
        return self._folder / f"{hashlib.sha256(asked).hexdigest()}.npy"

    def _real(self) -> Embedder:
        with self._loading:
            if self._model is None:
                self._model = self._load()
            return self._model


# The recorded answers (see the module's docstring) and the digest of the model files
# they came from.
RECORDED = Path(__file__).resolve().parent / "fixtures" / "embeddings" / "recorded.zip"
RECORDED_FROM = RECORDED.with_suffix(".json")
_VECTOR_FILE = re.compile(r"[0-9a-f]{64}\.npy")  # a text's vector, as _file names it
_SEEDED = "seeded"  # in the shared folder, once this run's folder has been started


def model_digest() -> str:
    """SHA-256 over the packaged model's files (the graph, the tokenizer, the pooling):
    what decides its answers."""
    digest = hashlib.sha256()
    for file in [*sorted(PACKAGED_FILES.glob("*.json")), PACKAGED_FILES / "model.onnx"]:
        digest.update(file.name.encode() + b"\0" + file.read_bytes())
    return digest.hexdigest()


def recorded_digest() -> str | None:
    try:
        recorded: dict[str, Any] = json.loads(RECORDED_FROM.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return str(recorded.get("model_files_sha256"))


def seed(folder: Path) -> int:
    """Start this run's shared folder from the recorded answers (once per run, whichever
    worker comes first), when they came from the packaged model's files as they are
    now; the number of vectors taken."""
    with folder_locked(folder):
        if (folder / _SEEDED).exists():
            return 0
        taken = 0
        if RECORDED.is_file() and recorded_digest() == model_digest():
            with zipfile.ZipFile(RECORDED) as archive:
                for name in archive.namelist():
                    target = folder / name
                    if not _VECTOR_FILE.fullmatch(name) or target.exists():
                        continue
                    partial = target.with_suffix(".partial")  # others read without the lock
                    partial.write_bytes(archive.read(name))
                    os.replace(partial, target)
                    taken += 1
        (folder / _SEEDED).touch()
        return taken


def record(folder: Path) -> None:
    """Write the recording anew from this run's shared folder. Every worker does it as
    it ends, under the folder's lock; the last to end has every text of the run."""
    import onnxruntime
    import tokenizers

    with folder_locked(folder):
        vectors = sorted(p for p in folder.iterdir() if _VECTOR_FILE.fullmatch(p.name))
        RECORDED.parent.mkdir(parents=True, exist_ok=True)
        partial = RECORDED.with_suffix(".partial")
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
            for vector in vectors:
                # A fixed date: the same answers make the same file.
                info = zipfile.ZipInfo(vector.name, date_time=(2026, 1, 1, 0, 0, 0))
                archive.writestr(info, vector.read_bytes(), zipfile.ZIP_DEFLATED)
        os.replace(partial, RECORDED)
        about = {
            "model_files_sha256": model_digest(),
            "texts": len(vectors),
            "recorded_with": {
                "onnxruntime": onnxruntime.__version__,
                "tokenizers": tokenizers.__version__,
            },
            "how": "pytest --record-embeddings (tests/shared_embeddings.py)",
        }
        RECORDED_FROM.write_text(json.dumps(about, indent=2) + "\n", encoding="utf-8")


# The runner's own loader, as this plugin is imported (before the session wraps it).
RUNNERS_LOAD = embedding._load


def _runtime_installed() -> bool:
    """What loading the packaged model needs, found without loading it: where it is
    missing, the model is loaded at once, so that the runner's own error is raised."""
    runtime = all(importlib.util.find_spec(name) for name in ("onnxruntime", "tokenizers"))
    return runtime and (PACKAGED_FILES / "model.onnx").is_file()


def shared_embedding_loader(folder: Path) -> Callable[[str], Embedder]:
    """``embedding._load``, whose packaged model answers from the vectors kept in ``folder``."""
    load = embedding._load

    def load_shared(name_or_path: str) -> Embedder:
        if name_or_path not in PACKAGED_NAMES or not _runtime_installed():
            return load(name_or_path)
        return SharedEmbeddings(lambda: load(name_or_path), name_or_path, folder)

    return load_shared


def embeddings_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder of this run's embeddings, shared by its workers (and their subprocesses)."""
    return shared_folder(tmp_path_factory, "embeddings")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--record-embeddings",
        action="store_true",
        help="embed every text with the packaged model (nothing from the recording) and "
        "write tests/fixtures/embeddings/recorded.zip anew with the texts this run asked for",
    )


def pytest_configure(config: pytest.Config) -> None:
    refuse_a_partial_recording(config, "--record-embeddings", "embeds")


@pytest.fixture(autouse=True, scope="session")
def shared_embeddings(
    tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> Iterator[None]:
    """The packaged embedding model answers from the shared embeddings in this session
    (the warm `transcript-runner` of tests/warmstart.py too), started from the recorded
    answers unless they are being recorded."""
    folder = embeddings_folder(tmp_path_factory)
    recording = bool(pytestconfig.getoption("record_embeddings"))
    if not recording:
        seed(folder)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(embedding, "_load", shared_embedding_loader(folder))
        patch.setattr(embedding, "_loaded", {})  # anything loaded before, loaded again
        yield
    if recording:
        record(folder)


@pytest.fixture(scope="module")
def real_embeddings(shared_embeddings: None) -> Iterator[None]:
    """For a module of tests that judge the model itself (its vectors, its batches): the
    runner's own loader, its models loaded afresh once for the module, nothing kept."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(embedding, "_load", RUNNERS_LOAD)
        patch.setattr(embedding, "_loaded", {})
        yield
