"""One embedding per list of texts for the whole suite, shared by its workers.

The ``grounded`` checks and ``match: semantic`` embed a transcript's passages with the
packaged all-MiniLM-L6-v2 (runner/transcript/embedding.py): the shipped wildfires
transcript's take seconds of CPU, and loading ONNX Runtime and the model half a second
more, in every process. The runner keeps both for the life of a process only, and the
suite asks for the same passages in many: each xdist worker, and each `transcript-runner`
line of the workflow's test (graded-summary.yaml is run, run again and replayed, each
time a process forked from the warm server of tests/warmstart.py).

So the suite wraps the packaged model, as it wraps Whisper (tests/shared_decodes.py):
the first ``embed`` of a list of texts runs the model for real and keeps the vectors in
a folder all the workers share (``pytest-N/``, beside each worker's own); any later call
with the same texts, in any process, gets them back, bit for bit. The model is loaded
only when a call is not kept yet. Everything after ``embed`` (similarities, verdicts,
times) is the runner's code, run every time; the runner finds and asks its model as it
always does; only what the model answers is remembered.

Only the packaged model is shared: its files are the repository's, so its name says
what it answers. A model a test gives (a folder, a name in the cache) is loaded at once
and used as it is, so that its answers and its errors are the runner's own.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import json
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from shared_decodes import shared_folder

from runner.transcript import embedding
from runner.transcript.embedding import PACKAGED_FILES, PACKAGED_NAMES, Embedder


class SharedEmbeddings:
    """The packaged model, whose answers are kept in ``folder`` by the texts asked."""

    def __init__(self, load: Callable[[], Embedder], label: str, folder: Path) -> None:
        self._load = load
        self._label = label
        self._folder = folder
        self._model: Embedder | None = None
        self._loading = threading.Lock()  # quotes are matched in worker threads

    def embed(self, texts: Sequence[str]) -> Any:
        import numpy

        asked = json.dumps([self._label, list(texts)]).encode()
        kept = self._folder / f"{hashlib.sha256(asked).hexdigest()}.npy"
        with (self._folder / f"{kept.name}.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one process embeds; the others wait for it
            if kept.exists():
                return numpy.load(kept, allow_pickle=False)
            vectors = self._real().embed(texts)
            partial = kept.with_suffix(".partial")
            with partial.open("wb") as file:
                numpy.save(file, vectors, allow_pickle=False)
            os.replace(partial, kept)
        return vectors

    def _real(self) -> Embedder:
        with self._loading:
            if self._model is None:
                self._model = self._load()
            return self._model


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


@pytest.fixture(autouse=True, scope="session")
def shared_embeddings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The packaged embedding model answers from the shared embeddings in this session
    (the warm `transcript-runner` of tests/warmstart.py too)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            embedding, "_load", shared_embedding_loader(embeddings_folder(tmp_path_factory))
        )
        patch.setattr(embedding, "_loaded", {})  # anything loaded before, loaded again
        yield
