"""The suite's shared embeddings (tests/shared_embeddings.py) answer what the model would.

A model that counts what it is asked stands in for the packaged one: each text is
embedded once for all the processes that share the folder, a process whose texts are
all kept never loads the model, and answers come in the order asked. The recorded
answers a run starts from stand for the packaged model only while they are its
answers, and a run takes nothing else from them.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import shared_embeddings
from shared_embeddings import (
    SharedEmbeddings,
    model_digest,
    recorded_digest,
    seed,
    shared_embedding_loader,
)

from runner.transcript import embedding
from runner.transcript.embedding import PACKAGED


class CountingModel:
    """A vector per text from its characters; every text it is asked, in ``asked``."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def embed(self, texts: Sequence[str]) -> Any:
        import numpy  # here, not at collection: every worker imports every test module

        self.asked += texts
        rows = [[len(text), sum(map(ord, text)) % 97, 1.0] for text in texts]
        return numpy.array(rows, dtype=numpy.float32).reshape(len(texts), 3)


def shared(folder: Path, model: CountingModel, loads: list[str]) -> SharedEmbeddings:
    def load() -> CountingModel:
        loads.append(PACKAGED)
        return model

    return SharedEmbeddings(load, PACKAGED, folder)


def test_each_text_is_embedded_once_for_every_process_that_shares_the_folder(
    tmp_path: Path,
) -> None:
    import numpy

    first, second = CountingModel(), CountingModel()
    loads: list[str] = []
    texts = ["the fire crossed the ridge", "crews held the line", "the fire crossed the ridge"]
    answered = shared(tmp_path, first, loads).embed(texts)
    assert first.asked == ["the fire crossed the ridge", "crews held the line"]
    assert numpy.array_equal(answered, CountingModel().embed(texts))  # in the order asked
    assert answered.dtype == numpy.float32

    again = shared(tmp_path, second, loads)  # another process: its own model, same folder
    assert numpy.array_equal(again.embed(texts[1:]), answered[1:])
    assert second.asked == []
    assert loads == [PACKAGED]  # all kept: the second model was never loaded

    asked = ["crews held the line", "evacuations were ordered"]
    mixed = again.embed(asked)
    assert second.asked == ["evacuations were ordered"]  # only what is new
    assert numpy.array_equal(mixed, CountingModel().embed(asked))


def test_only_the_packaged_model_is_shared(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    given: list[str] = []

    def runners_load(name: str) -> CountingModel:
        given.append(name)
        return CountingModel()

    monkeypatch.setattr(embedding, "_load", runners_load)
    load = shared_embedding_loader(tmp_path)
    own = load(str(tmp_path / "my-model"))
    assert isinstance(own, CountingModel)  # the runner's own, unwrapped, loaded at once
    assert given == [str(tmp_path / "my-model")]
    packaged = load(PACKAGED)
    assert isinstance(packaged, SharedEmbeddings)
    assert given == [str(tmp_path / "my-model")]  # loaded when a text is new, not before
    packaged.embed(["a text"])
    assert given[-1] == PACKAGED


def test_the_recording_came_from_the_packaged_models_files() -> None:
    """A changed model (or tokenizer) fails here at once, slow tests or not: record again
    with ``pytest --record-embeddings`` (tests/test_embedding.py compares the vectors)."""
    assert recorded_digest() == model_digest(), "record again: pytest --record-embeddings"


def _recording(folder: Path, digest: str) -> Path:
    good = "a" * 64 + ".npy"
    archive = folder / "recorded.zip"
    with zipfile.ZipFile(archive, "w") as made:
        for name in (good, "../" + "b" * 64 + ".npy", "notes.txt", "c" * 63 + ".npy"):
            made.writestr(name, b"vector")
    archive.with_suffix(".json").write_text(json.dumps({"model_files_sha256": digest}))
    return archive


@pytest.mark.parametrize("same_model", [True, False])
def test_a_run_takes_only_vector_files_and_only_from_the_same_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, same_model: bool
) -> None:
    archive = _recording(tmp_path, model_digest() if same_model else "0" * 64)
    monkeypatch.setattr(shared_embeddings, "RECORDED", archive)
    monkeypatch.setattr(shared_embeddings, "RECORDED_FROM", archive.with_suffix(".json"))
    folder = tmp_path / "run"
    folder.mkdir()
    assert seed(folder) == (1 if same_model else 0)
    kept = sorted(p.name for p in folder.iterdir() if p.suffix == ".npy")
    assert kept == (["a" * 64 + ".npy"] if same_model else [])
    assert not (tmp_path / ("b" * 64 + ".npy")).exists()  # nothing outside the folder
    assert seed(folder) == 0  # once a run: the next worker finds it started
