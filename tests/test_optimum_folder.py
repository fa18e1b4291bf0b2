"""``bort predict`` and ``bort bench`` on ONNX folders that bort did not write (Optimum's layout, no export.json).

Each folder is made here the way Optimum makes one: a graph traced with ``torch.onnx`` from a tiny
model, with Optimum's input and output names, beside ``config.json`` (naming the architecture) and
the tokenizer. The references are the PyTorch models the graphs were traced from.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from conftest import bert_config
from transformers import BertForSequenceClassification, BertModel

from bort.cli import main

LABELS = {0: "negative", 1: "neutral", 2: "positive"}
TEXTS = ["what a great film", "this was awful", "we love it", "the quick brown fox jumps over the lazy dog", "a day"]


def _optimum_folder(model, tokenizer, folder, graph: str, inputs: tuple[str, ...], output: str):
    """``model`` traced to ``folder/graph`` with these input names and one output, beside its config and tokenizer."""
    class Wrapper(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, *args):
            feed = dict(zip(inputs, args))
            # position_ids stay a graph input but do not reach the model: transformers ≥ 5 looks for packed
            # sequences in them with aten::diff, which torch.onnx cannot export at opset 17.
            positions = feed.pop("position_ids", None)
            out = getattr(self.model(**feed), output)
            return out if positions is None else out + 0 * positions[..., None].to(out.dtype)

    (folder / graph).parent.mkdir(parents=True, exist_ok=True)
    model.set_attn_implementation("eager")  # the SDPA mask code traces Python conditions on the sample's shape
    sample = {"input_ids": torch.randint(5, len(tokenizer), (2, 7)),  # the fallback text (no shared data) gives a vocabulary under 300
              "attention_mask": torch.tensor([[1] * 7, [1] * 4 + [0] * 3]),
              "token_type_ids": torch.zeros(2, 7, dtype=torch.long), "position_ids": torch.arange(7).expand(2, 7)}
    axes = {name: {0: "batch_size", 1: "sequence_length"} for name in (*inputs, output)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's and the exporter's advice
        torch.onnx.export(Wrapper().eval(), tuple(sample[n] for n in inputs), str(folder / graph), input_names=list(inputs), output_names=[output],
                          dynamic_axes=axes, opset_version=17, dynamo=False)
    model.config.architectures = [type(model).__name__]  # as save_pretrained records it, and Optimum copies it
    model.config.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def classifier(bert_tokenizer):
    config = bert_config(len(bert_tokenizer))
    config.num_labels, config.id2label, config.label2id = 3, LABELS, {v: k for k, v in LABELS.items()}
    torch.manual_seed(1)
    model = BertForSequenceClassification(config).eval()
    with torch.inference_mode():  # a head on the differences between the texts' pooled states (a random encoder's are alike): labels differ
        pooled = model.bert(**bert_tokenizer(TEXTS, padding=True, return_tensors="pt")).pooler_output
        deviation = pooled - pooled.mean(0)
        model.classifier.weight.copy_(torch.randn(3, 64) / deviation.std())
        model.classifier.bias.copy_(-pooled.mean(0) @ model.classifier.weight.T)
    return model


@pytest.fixture(scope="module")
def encoder(bert_tokenizer):
    torch.manual_seed(2)
    return BertModel(bert_config(len(bert_tokenizer)), add_pooling_layer=False).eval()


@pytest.fixture(scope="module")
def folders(tmp_path_factory, classifier, encoder, bert_tokenizer):
    """An Optimum text-classification export (model.onnx), a quantised one (model_quantized.onnx) and a
    feature-extraction export without token types (onnx/model.onnx)."""
    from onnxruntime.quantization import quantize_dynamic

    root = tmp_path_factory.mktemp("optimum")
    cls = _optimum_folder(classifier, bert_tokenizer, root / "cls", "model.onnx", ("input_ids", "attention_mask", "token_type_ids"), "logits")
    int8 = root / "cls-int8"
    int8.mkdir()
    quantize_dynamic(str(cls / "model.onnx"), str(int8 / "model_quantized.onnx"))
    classifier.config.save_pretrained(int8)
    bert_tokenizer.save_pretrained(int8)
    enc = _optimum_folder(encoder, bert_tokenizer, root / "enc", "onnx/model.onnx", ("input_ids", "attention_mask"), "last_hidden_state")
    for folder in (cls, int8, enc):
        assert not (folder / "export.json").exists()
    assert json.loads((enc / "config.json").read_text())["architectures"] == ["BertModel"]
    return {"cls": cls, "int8": int8, "enc": enc}


def _predict(argv, capsys) -> list[dict]:
    assert main(["predict", *argv]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_predict_reads_the_head_from_the_architecture(folders, classifier, bert_tokenizer, tmp_path, capsys):
    text = tmp_path / "in.txt"
    text.write_text("\n".join(TEXTS) + "\n")
    with torch.inference_mode():
        probs = classifier(**bert_tokenizer(TEXTS, padding=True, return_tensors="pt")).logits.softmax(-1).numpy()
    want = [LABELS[int(i)] for i in probs.argmax(-1)]
    assert len(set(want)) > 1, "the fixture's classifier gives every text one label"
    rows = _predict(["--model", str(folders["cls"]), "--input", str(text), "--batch-size", "2"], capsys)
    assert [r["label"] for r in rows] == want
    np.testing.assert_allclose([r["score"] for r in rows], probs.max(-1), atol=5e-4)  # other batches, other padding, ONNX kernels
    rows = _predict(["--model", str(folders["int8"]), "--input", str(text)], capsys)
    assert len(rows) == 5 and all(r["label"] in LABELS.values() and 1 / 3 <= r["score"] <= 1 for r in rows)  # int8 moves this head's close calls


def test_predict_embed_on_a_feature_extraction_graph(folders, encoder, bert_tokenizer, tmp_path, capsys):
    text = tmp_path / "in.txt"
    text.write_text("\n".join(TEXTS) + "\n")
    rows = _predict(["--embed", "--model", str(folders["enc"]), "--input", str(text)], capsys)
    enc = bert_tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.inference_mode():
        hidden = encoder(**enc).last_hidden_state
    mask = enc["attention_mask"][..., None].float()
    want = ((hidden * mask).sum(1) / mask.sum(1)).numpy()  # mean pooling: the folder has no sentence-transformers pipeline
    np.testing.assert_allclose(np.array([r["embedding"] for r in rows]), want, atol=1e-5)
    assert main(["predict", "--model", str(folders["enc"]), "--input", str(text)]) == 2
    assert "bare encoder model" in capsys.readouterr().err


def test_bench_runs_optimum_folders(folders, tmp_path, capsys):
    out = tmp_path / "bench"
    argv = ["bench", "--models", str(folders["cls"]), str(folders["int8"]), str(folders["enc"]), "--batch", "1,2", "--seq", "16",
            "--out", str(out), "--warmup", "0", "--rounds", "2", "--runs", "1"]
    assert main(argv) == 0
    doc = json.loads((out / "bench.json").read_text())
    exports = [m["export"] for m in doc["models"]]
    assert [(e["head"], e["quantize"], e["file"]) for e in exports] == [
        ("classification", "none", "model.onnx"), ("classification", "int8", "model_quantized.onnx"), ("encoder", "none", "onnx/model.onnx")]
    runtimes = {(r["model"], r["batch"]): r["runtime"] for r in doc["results"]}
    assert len(runtimes) == 6 and runtimes[(str(folders["int8"]), 2)] == "onnx-int8" and runtimes[(str(folders["enc"]), 1)] == "onnx-fp32"
    assert all(r["median_ms"] > 0 for r in doc["results"])


def test_a_graph_with_inputs_bort_does_not_feed_is_refused(encoder, bert_tokenizer, tmp_path, capsys):
    folder = _optimum_folder(encoder, bert_tokenizer, tmp_path / "pos", "model.onnx", ("input_ids", "position_ids"), "last_hidden_state")
    text = tmp_path / "in.txt"
    text.write_text("hello\n")
    assert main(["predict", "--embed", "--model", str(folder), "--input", str(text)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "position_ids" in err and "which bort does not feed" in err
