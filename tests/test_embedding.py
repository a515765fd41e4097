"""The semantic extra's embeddings (ONNX Runtime, no PyTorch) are the guide's method:
cosine similarities within 0.001 of sentence-transformers' own (the bar is 0.01).

``tests/fixtures/embeddings/all-MiniLM-L6-v2.json`` holds vectors recorded once with
sentence-transformers (PyTorch, float32) for the shipped wildfires transcript's sentence
windows and for quotes, verbatim, reworded and invented: the texts ``match: semantic``
compares.
"""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from runner.transcript.embedding import (
    PACKAGED,
    PACKAGED_FILES,
    EmbeddingUnavailable,
    OnnxEmbedder,
    embedder,
)

if TYPE_CHECKING:
    import numpy

# A real embedding model, asked itself: not the suite's shared embeddings
# (tests/shared_embeddings.py), which rest on what these tests hold it to.
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("real_embeddings")]

RECORDED = json.loads(
    (Path(__file__).parent / "fixtures" / "embeddings" / "all-MiniLM-L6-v2.json").read_text(
        encoding="utf-8"
    )
)
TEXTS: list[str] = RECORDED["texts"]


def _link_model(target: Path) -> None:
    """The packaged model.onnx (45 MB) linked into a test's folder, not copied: the copies
    wrote 220 MB a run. The Hugging Face cache links its snapshots to its blobs the same
    way. ``target`` may be a folder. Never write to the link: that writes the package's
    model."""
    if target.is_dir():
        target = target / "model.onnx"
    target.symlink_to(PACKAGED_FILES / "model.onnx")


@functools.cache
def expected() -> numpy.ndarray:
    """sentence-transformers' recorded vectors. NumPy is imported when a test runs, not
    when the module is collected (a sixth of a second in every worker)."""
    import numpy

    return numpy.array(RECORDED["vectors"], dtype=numpy.float32)


@pytest.fixture(scope="module")
def vectors() -> numpy.ndarray:
    """The shipped model's vectors for the recorded texts, computed once for the module
    (about a second of CPU each time): the tests below ask different things of them."""
    import numpy

    return numpy.asarray(embedder(PACKAGED).embed(TEXTS))


def test_cosine_similarities_are_within_0_01_of_sentence_transformers(
    vectors: numpy.ndarray,
) -> None:
    import numpy

    recorded = expected()
    assert vectors.shape == recorded.shape == (len(TEXTS), 384)
    ours, theirs = vectors @ vectors.T, recorded @ recorded.T
    assert float(numpy.abs(ours - theirs).max()) < 0.001  # the bar is 0.01


def test_each_quote_is_nearest_the_same_window_as_with_sentence_transformers(
    vectors: numpy.ndarray,
) -> None:
    windows = len(TEXTS) - 6  # the fixture's last six texts are quotes
    ours = (vectors[windows:] @ vectors[:windows].T).argmax(axis=1)
    recorded = expected()
    theirs = (recorded[windows:] @ recorded[:windows].T).argmax(axis=1)
    assert ours.tolist() == theirs.tolist()


def test_vectors_are_unit_length_and_batches_do_not_change_them(vectors: numpy.ndarray) -> None:
    import numpy

    model = embedder(PACKAGED)
    assert isinstance(model, OnnxEmbedder)  # the model itself, not the suite's kept vectors
    together = vectors  # all the texts, in batches
    alone = numpy.concatenate([model.embed([text]) for text in TEXTS[:3]])
    assert numpy.allclose(numpy.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    assert numpy.allclose(together[:3], alone, atol=1e-4)  # padding is masked out


def test_the_suites_recorded_answers_are_the_packaged_models_own(vectors: numpy.ndarray) -> None:
    """The rest of the suite takes the packaged model's answers from a recording
    (tests/shared_embeddings.py). It was made from these model files, and what it holds
    for the texts here is what the model answers now. A changed model fails here: run
    ``pytest --record-embeddings`` (else the suite embeds everything again, slowly)."""
    import io
    import zipfile

    import numpy
    from shared_embeddings import RECORDED, model_digest, recorded_digest

    assert recorded_digest() == model_digest(), "record again: pytest --record-embeddings"
    with zipfile.ZipFile(RECORDED) as archive:
        kept = set(archive.namelist())
        compared = 0
        for text, vector in zip(TEXTS, vectors, strict=True):
            name = hashlib.sha256(f"{PACKAGED}\n{text}".encode()).hexdigest() + ".npy"
            if name in kept:
                recorded = numpy.load(io.BytesIO(archive.read(name)), allow_pickle=False)
                assert numpy.allclose(recorded, vector, atol=1e-5), text
                compared += 1
    assert compared >= len(TEXTS) // 2  # the windows that match: semantic compares


def test_a_folder_with_an_onnx_export_and_its_tokenizer_is_a_model(tmp_path: Path) -> None:
    import numpy

    folder = tmp_path / "my-model"
    (folder / "onnx").mkdir(parents=True)
    _link_model(folder / "onnx" / "model.onnx")
    shutil.copy(PACKAGED_FILES / "tokenizer.json", folder / "tokenizer.json")
    shutil.copy(PACKAGED_FILES / "sentence_bert_config.json", folder)
    (folder / "1_Pooling").mkdir()
    shutil.copy(PACKAGED_FILES / "pooling.json", folder / "1_Pooling" / "config.json")
    model = embedder(str(folder))
    assert isinstance(model, OnnxEmbedder)
    assert numpy.allclose(model.embed(TEXTS[:2]), embedder(PACKAGED).embed(TEXTS[:2]), atol=1e-5)


def test_an_export_without_its_tokenizer_says_what_is_missing(tmp_path: Path) -> None:
    _link_model(tmp_path / "model.onnx")
    with pytest.raises(EmbeddingUnavailable, match=r"no tokenizer\.json beside"):
        embedder(str(tmp_path))


def test_a_model_that_is_not_there_says_how_to_give_one(tmp_path: Path) -> None:
    with pytest.raises(EmbeddingUnavailable, match="nothing is downloaded during a run"):
        embedder(str(tmp_path / "no-such-model"))


def test_the_shipped_model_is_the_default_and_known_by_its_hub_name() -> None:
    from runner.transcript.semantic import DEFAULT_EMBEDDING_MODEL

    assert DEFAULT_EMBEDDING_MODEL == PACKAGED
    assert embedder("sentence-transformers/all-MiniLM-L6-v2") is embedder(PACKAGED)


def test_a_file_that_is_not_a_model_is_a_reason_not_a_crash(tmp_path: Path) -> None:
    (tmp_path / "model.onnx").write_bytes(b"not a model")
    shutil.copy(PACKAGED_FILES / "tokenizer.json", tmp_path / "tokenizer.json")
    with pytest.raises(EmbeddingUnavailable, match="cannot load the embedding model"):
        embedder(str(tmp_path))


def test_a_pooling_this_runner_does_not_do_is_refused(tmp_path: Path) -> None:
    _link_model(tmp_path / "model.onnx")
    shutil.copy(PACKAGED_FILES / "tokenizer.json", tmp_path / "tokenizer.json")
    (tmp_path / "pooling.json").write_text('{"pooling_mode_max_tokens": true}', encoding="utf-8")
    with pytest.raises(EmbeddingUnavailable, match="pooling_mode_max_tokens"):
        embedder(str(tmp_path))


def test_a_name_is_found_in_the_hugging_face_cache_at_its_main_snapshot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import numpy

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    repo = tmp_path / "models--sentence-transformers--my-minilm"
    for snapshot in ("aaa-partial", "zzz-main"):
        (repo / "snapshots" / snapshot / "onnx").mkdir(parents=True)
        _link_model(repo / "snapshots" / snapshot / "onnx")
    shutil.copy(PACKAGED_FILES / "tokenizer.json", repo / "snapshots" / "zzz-main")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("zzz-main\n", encoding="utf-8")
    model = embedder("my-minilm")  # the partial snapshot (no tokenizer) is passed over
    assert numpy.allclose(model.embed(TEXTS[:2]), embedder(PACKAGED).embed(TEXTS[:2]), atol=1e-5)
