"""The semantic extra's embeddings (ONNX Runtime, no PyTorch) are the guide's method:
cosine similarities within 0.01 of sentence-transformers' own.

``tests/fixtures/embeddings/all-MiniLM-L6-v2.json`` holds vectors recorded once with
sentence-transformers (PyTorch, float32) for the shipped wildfires transcript's sentence
windows and for quotes, verbatim, reworded and invented: the texts ``match: semantic``
compares.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy
import pytest

from runner.transcript.embedding import (
    PACKAGED,
    PACKAGED_FILES,
    EmbeddingUnavailable,
    OnnxEmbedder,
    embedder,
)

pytestmark = pytest.mark.slow  # a real embedding model

RECORDED = json.loads(
    (Path(__file__).parent / "fixtures" / "embeddings" / "all-MiniLM-L6-v2.json").read_text(
        encoding="utf-8"
    )
)
TEXTS: list[str] = RECORDED["texts"]
EXPECTED = numpy.array(RECORDED["vectors"], dtype=numpy.float32)


def test_cosine_similarities_are_within_0_01_of_sentence_transformers() -> None:
    vectors = embedder(PACKAGED).embed(TEXTS)
    assert vectors.shape == EXPECTED.shape == (len(TEXTS), 384)
    ours, theirs = vectors @ vectors.T, EXPECTED @ EXPECTED.T
    assert float(numpy.abs(ours - theirs).max()) < 0.001  # the bar is 0.01


def test_each_quote_is_nearest_the_same_window_as_with_sentence_transformers() -> None:
    vectors = embedder(PACKAGED).embed(TEXTS)
    windows = len(TEXTS) - 6  # the fixture's last six texts are quotes
    ours = (vectors[windows:] @ vectors[:windows].T).argmax(axis=1)
    theirs = (EXPECTED[windows:] @ EXPECTED[:windows].T).argmax(axis=1)
    assert ours.tolist() == theirs.tolist()


def test_vectors_are_unit_length_and_batches_do_not_change_them() -> None:
    model = embedder(PACKAGED)
    together = model.embed(TEXTS)
    alone = numpy.concatenate([model.embed([text]) for text in TEXTS[:3]])
    assert numpy.allclose(numpy.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    assert numpy.allclose(together[:3], alone, atol=1e-4)  # padding is masked out


def test_a_folder_with_an_onnx_export_and_its_tokenizer_is_a_model(tmp_path: Path) -> None:
    folder = tmp_path / "my-model"
    (folder / "onnx").mkdir(parents=True)
    shutil.copy(PACKAGED_FILES / "model.onnx", folder / "onnx" / "model.onnx")
    shutil.copy(PACKAGED_FILES / "tokenizer.json", folder / "tokenizer.json")
    shutil.copy(PACKAGED_FILES / "sentence_bert_config.json", folder)
    (folder / "1_Pooling").mkdir()
    shutil.copy(PACKAGED_FILES / "pooling.json", folder / "1_Pooling" / "config.json")
    model = embedder(str(folder))
    assert isinstance(model, OnnxEmbedder)
    assert numpy.allclose(model.embed(TEXTS[:2]), embedder(PACKAGED).embed(TEXTS[:2]), atol=1e-5)


def test_an_export_without_its_tokenizer_says_what_is_missing(tmp_path: Path) -> None:
    shutil.copy(PACKAGED_FILES / "model.onnx", tmp_path / "model.onnx")
    with pytest.raises(EmbeddingUnavailable, match=r"no tokenizer\.json beside"):
        embedder(str(tmp_path))


def test_a_model_that_is_not_there_says_how_to_give_one(tmp_path: Path) -> None:
    with pytest.raises(EmbeddingUnavailable, match="nothing is downloaded during a run"):
        embedder(str(tmp_path / "no-such-model"))
