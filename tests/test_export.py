"""bort export / predict / bench: ONNX parity with PyTorch (fp32 and int8), dynamic axes, refusals, outputs.

Models are the conftest's tiny ⟨2,4,64,128⟩ encoders; one is fine-tuned here, a few hundred plain
torch steps on a synthetic task, to check that int8 keeps the task metric.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch
from conftest import bert_config
from transformers import AutoModelForSequenceClassification, AutoTokenizer, BertForMultipleChoice, BertForSequenceClassification

from bort.cli import main
from bort.errors import BortError
from bort.export import onnx as onnx_export
from bort.export.onnx import ExportConfig, export_onnx
from bort.models.loading import load_model
from bort.models.runtime import OnnxPredictor, load_predictor, sample_inputs

LABELS = {0: "negative", 1: "positive"}
_POS, _NEG = ["good", "great", "love", "happy"], ["bad", "awful", "hate", "sad"]
_FILL = ["the", "a", "day", "film", "was", "it", "very", "of", "and", "to", "we", "this"]


def _sentences(n: int, seed: int) -> tuple[list[str], list[int]]:
    """Synthetic sentiment: filler words and one cue word that decides the label."""
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for _ in range(n):
        label = int(rng.integers(2))
        words = list(rng.choice(_FILL, size=int(rng.integers(3, 9))))
        words.insert(int(rng.integers(len(words) + 1)), str(rng.choice(_POS if label else _NEG)))
        texts.append(" ".join(words))
        labels.append(label)
    return texts, labels


@pytest.fixture(scope="module")
def classifier(tmp_path_factory, bert_tokenizer):
    """A tiny BERT fine-tuned on the synthetic task, saved the way bort saves a "linear" head.

    It trains with the pooler as the identity (first token → linear), then stores the pooler as
    1e-4·I (tanh stays linear there) and the classifier as W/1e-4, as bort.finetune does.
    """
    config = bert_config(len(bert_tokenizer))
    config.num_labels, config.id2label, config.label2id = 2, LABELS, {v: k for k, v in LABELS.items()}
    config.bort_task = "glue/sst2"
    torch.manual_seed(0)
    model = BertForSequenceClassification(config)
    pooler = model.bert.pooler
    pooler.dense.weight.data, pooler.dense.bias.data = torch.eye(64), torch.zeros(64)
    pooler.dense.requires_grad_(False)
    pooler.activation = torch.nn.Identity()
    texts, labels = _sentences(1200, seed=0)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-3)
    model.train()
    for step in range(150):
        i = slice((step * 16) % 1200, (step * 16) % 1200 + 16)
        batch = bert_tokenizer(texts[i], padding=True, return_tensors="pt")
        loss = model(**batch, labels=torch.tensor(labels[i])).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    pooler.dense.weight.data *= 1e-4
    pooler.activation = torch.nn.Tanh()
    model.classifier.weight.data /= 1e-4
    folder = tmp_path_factory.mktemp("classifier")
    model.eval().save_pretrained(folder)
    bert_tokenizer.save_pretrained(folder)
    return folder


def _predict(folder, texts) -> np.ndarray:
    predictor = load_predictor(folder)
    enc = predictor.tokenizer(texts, padding=True, return_tensors="np", return_token_type_ids=True)
    return predictor.run({k: enc[k].astype(np.int64) for k in ("input_ids", "attention_mask", "token_type_ids")}).argmax(-1)


def test_fp32_export_matches_pytorch_on_other_shapes(classifier, tmp_path):
    out = tmp_path / "onnx"
    info = export_onnx(ExportConfig(model=str(classifier), out=out))
    assert info.check["max_relative_error"] < 1e-4
    # Layer 1 of 2 fuses into Attention; the last runs for the first token only (unfused). No SkipLayerNormalization (slower).
    assert info.first_token_last_layer and info.fused_operators.get("Attention") == 1
    assert "SkipLayerNormalization" not in info.fused_operators and info.fused_operators["LayerNormalization"] == 4
    assert {p.name for p in out.iterdir()} >= {"model.onnx", "config.json", "export.json", "tokenizer.json"}
    config = json.loads((out / "config.json").read_text())
    assert config["id2label"] == {"0": "negative", "1": "positive"} and config["bort_task"] == "glue/sst2"
    AutoTokenizer.from_pretrained(out)  # self-contained
    onnx_model = load_predictor(out)
    model, head, _ = load_model(classifier)
    for batch, seq in ((1, 5), (5, 41), (7, 64)):  # none of them the traced 2×16
        inputs = sample_inputs(model.config, head, batch, seq, padded=True, seed=batch)
        want = model(**{k: torch.from_numpy(v) for k, v in inputs.items()}).logits.detach().numpy()
        np.testing.assert_allclose(onnx_model.run(inputs), want, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("family", ["bert", "roberta"])
def test_first_token_last_layer_gives_the_models_logits(family, classifier, roberta_teacher, tmp_path):
    """The last layer computed for the first token only equals the whole layer where the head reads (padded batches)."""
    folder = classifier if family == "bert" else _roberta_classifier(roberta_teacher, tmp_path / "cls")
    model, head, _ = load_model(folder, eager_attention=True)
    feed = {k: torch.from_numpy(v) for k, v in sample_inputs(model.config, head, 4, 19, padded=True, seed=3).items()}
    assert feed["attention_mask"].min() == 0  # padding present
    want = model(**feed).logits
    with onnx_export._first_token_last_layer(model, head):
        assert isinstance(model.base_model.encoder.layer[-1], onnx_export.FirstTokenLayer)
        out = model(**feed, output_hidden_states=True)
    assert out.hidden_states[-1].shape[1] == 1  # one position left after the last layer
    torch.testing.assert_close(out.logits, want, atol=1e-5, rtol=1e-5)
    assert not isinstance(model.base_model.encoder.layer[-1], onnx_export.FirstTokenLayer)  # restored

def test_int8_keeps_the_dev_accuracy(classifier, tmp_path):
    """Issue 6's parity rule on a fine-tuned model: int8 within 1 point of fp32 on held-out data."""
    export_onnx(ExportConfig(model=str(classifier), out=tmp_path / "fp32"))
    info = export_onnx(ExportConfig(model=str(classifier), out=tmp_path / "int8", quantize="int8"))
    # The logits' error is recorded; its size moves with the fixture's training, which CPU kernels round with the memory layout
    # earlier tests leave (0.138 in one full run): the parity rule is the accuracy's, below.
    assert info.quantize == "int8" and info.check["metric"] == "rms_relative_error" and 0 < info.check["error"] < 0.25
    texts, labels = _sentences(400, seed=1)
    torch_pred, fp32, int8 = (_predict(f, texts) for f in (classifier, tmp_path / "fp32", tmp_path / "int8"))
    accuracy = {name: float((p == np.array(labels)).mean()) for name, p in (("torch", torch_pred), ("fp32", fp32), ("int8", int8))}
    assert accuracy["torch"] > 0.9, "the fixture's model did not learn the task"
    assert (fp32 == torch_pred).all()
    assert abs(accuracy["int8"] - accuracy["fp32"]) <= 0.01 and (int8 == fp32).mean() >= 0.99
    assert isinstance(load_predictor(tmp_path / "int8"), OnnxPredictor)
    nodes = onnx.load(str(tmp_path / "int8" / "model.onnx")).graph.node
    head = {n.op_type for n in nodes if "pooler" in n.name or "classifier" in n.name}
    assert "MatMul" in head and not head & {"MatMulInteger", "DynamicQuantizeMatMul"}  # the head stays fp32
    assert any(n.op_type == "MatMulInteger" for n in nodes)


def _roberta_classifier(roberta_teacher, folder):
    torch.manual_seed(0)
    AutoModelForSequenceClassification.from_pretrained(roberta_teacher, num_labels=3).save_pretrained(folder)
    AutoTokenizer.from_pretrained(roberta_teacher).save_pretrained(folder)
    return folder


def test_other_heads_and_roberta(roberta_teacher, bert_teacher_nohead, bert_tokenizer, tmp_path):
    torch.manual_seed(0)
    mc = tmp_path / "mc"
    BertForMultipleChoice(bert_config(len(bert_tokenizer))).save_pretrained(mc)
    bert_tokenizer.save_pretrained(mc)
    sources = {"roberta-mlm": roberta_teacher, "encoder": bert_teacher_nohead, "mc": mc,
               "roberta-cls": _roberta_classifier(roberta_teacher, tmp_path / "roberta-src")}
    for name, src in sources.items():
        info = export_onnx(ExportConfig(model=str(src), out=tmp_path / f"{name}-onnx", quantize="int8" if name == "mc" else "none"))
        assert info.check["error"] < info.check["tolerance"], name
        assert info.first_token_last_layer == (name in ("mc", "roberta-cls")), name
    assert json.loads((tmp_path / "encoder-onnx" / "export.json").read_text())["output"] == "last_hidden_state"
    predictor = load_predictor(tmp_path / "mc-onnx")
    assert predictor.run(sample_inputs(predictor.config, predictor.head, 3, 10, padded=True)).shape == (3, 2)


def _fresh_hf_vs_onnx(auto_class, src, out, feed: dict[str, np.ndarray], output: str) -> None:
    """The exported ``out/model.onnx`` under a plain ONNX Runtime session against ``auto_class.from_pretrained(src)``, the
    way any user loads the source folder, on the same inputs: the exporter's own check is not the reference here."""
    import onnxruntime as ort

    model = auto_class.from_pretrained(src).eval()
    with torch.inference_mode():
        want = getattr(model(**{k: torch.from_numpy(v) for k, v in feed.items()}), output).numpy()
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    assert set(names) <= set(feed), names
    got = session.run(None, {n: feed[n] for n in names})[0]
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)


def _text_batch(tokenizer, texts, pairs=None) -> dict[str, np.ndarray]:
    """A padded batch of real text as int64 arrays, with token type ids (zeros where the tokenizer has none)."""
    enc = tokenizer(texts, pairs, padding=True, return_tensors="np")
    feed = {k: enc[k].astype(np.int64) for k in ("input_ids", "attention_mask")}
    feed["token_type_ids"] = enc["token_type_ids"].astype(np.int64) if "token_type_ids" in enc else np.zeros_like(feed["input_ids"])
    assert feed["attention_mask"].min() == 0  # padding present
    return feed


_TEXTS = ["a small model learns", "the teacher and the student read the same long text about the quick brown fox", "hello",
          "words around them decide", "what a great film it was, we loved every minute of it"]


def test_roberta_and_multiple_choice_exports_match_fresh_hf_models(roberta_teacher, bert_tokenizer, tmp_path):
    from transformers import AutoModelForMaskedLM, AutoModelForMultipleChoice

    roberta_cls = _roberta_classifier(roberta_teacher, tmp_path / "roberta-src")
    roberta_tok = AutoTokenizer.from_pretrained(roberta_teacher)
    for name, src, auto_class, output in (("roberta-cls", roberta_cls, AutoModelForSequenceClassification, "logits"),
                                          ("roberta-mlm", roberta_teacher, AutoModelForMaskedLM, "logits")):
        export_onnx(ExportConfig(model=str(src), out=tmp_path / name))
        for texts, pairs in ((_TEXTS, None), (_TEXTS[:3], _TEXTS[2:])):
            _fresh_hf_vs_onnx(auto_class, src, tmp_path / name, _text_batch(roberta_tok, texts, pairs), output)

    torch.manual_seed(0)
    mc = tmp_path / "mc"
    model = BertForMultipleChoice(bert_config(len(bert_tokenizer)))
    torch.nn.init.normal_(model.classifier.weight, std=1.0)  # a head that tells the choices apart
    model.save_pretrained(mc)
    bert_tokenizer.save_pretrained(mc)
    export_onnx(ExportConfig(model=str(mc), out=tmp_path / "mc-onnx"))
    contexts, endings = ["the fox", "a dog sat on the mat by the red house"], ["jumps", "sleeps all day", "runs"]
    flat = _text_batch(bert_tokenizer, [c for c in contexts for _ in endings], [e for _ in contexts for e in endings])
    feed = {k: v.reshape(len(contexts), len(endings), -1) for k, v in flat.items()}  # 3 choices where the trace had 2
    assert feed["token_type_ids"].max() == 1
    _fresh_hf_vs_onnx(AutoModelForMultipleChoice, mc, tmp_path / "mc-onnx", feed, "logits")


def test_refuses_to_write_on_a_mismatch(classifier, tmp_path, monkeypatch, capsys):
    real_run = OnnxPredictor.run
    monkeypatch.setattr(OnnxPredictor, "run", lambda self, inputs: real_run(self, inputs) * 1.01)
    out = tmp_path / "bad"
    assert main(["export", "--model", str(classifier), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "misses PyTorch's outputs by 0.01" in err and "nothing written" in err
    assert not out.exists() and not list(tmp_path.glob(".bad*"))


@pytest.mark.parametrize("scale, ok", [(1.3, True), (1.6, False)])
def test_int8_logits_are_gated_looser_than_hidden_states(classifier, bert_teacher_nohead, tmp_path, monkeypatch, scale, ok):
    """A task head's few logits may err by 0.3 relative in int8 (gate 0.5: a broken graph misses by 1 or more); the hidden
    states of an encoder may not (gate 0.2)."""
    real_run = OnnxPredictor.run
    monkeypatch.setattr(OnnxPredictor, "run", lambda self, inputs: real_run(self, inputs) * scale)
    models = {"logits": classifier, "hidden states": bert_teacher_nohead}
    for name, model in models.items():
        cfg = ExportConfig(model=str(model), out=tmp_path / name, quantize="int8")
        if name == "logits" and ok:
            check = export_onnx(cfg).check
            assert check["tolerance"] == 0.5 and 0.2 < check["error"] < 0.5
        else:
            with pytest.raises(BortError, match=r"tolerance 0\.5\)" if name == "logits" else r"tolerance 0\.2\)"):
                export_onnx(cfg)


def test_predict_text_tsv_jsonl_and_task_folder(classifier, tmp_path, capsys):
    export = tmp_path / "int8"
    assert main(["export", "--model", str(classifier), "--out", str(export), "--quantize", "int8"]) == 0
    capsys.readouterr()
    text = tmp_path / "in.txt"
    text.write_text("what a great film\nthis was awful\n\nwe love it\n")
    assert main(["predict", "--model", str(export), "--input", str(text), "--batch-size", "2"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["label"] for r in rows] == ["positive", "negative", "positive"] and [r["idx"] for r in rows] == ["0", "1", "2"]
    assert all(0.5 <= r["score"] <= 1 for r in rows)
    tsv = tmp_path / "in.tsv"
    tsv.write_text("id\tsentence\na7\tsad day\nb9\thappy day\n")
    assert main(["predict", "--model", str(classifier), "--input", str(tsv), "--output-format", "tsv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "idx\tlabel\tscore" and [line.split("\t")[:2] for line in lines[1:]] == [["a7", "negative"], ["b9", "positive"]]
    jsonl = tmp_path / "in.jsonl"
    jsonl.write_text('{"id": 3, "text": "i hate this"}\n')
    assert main(["predict", "--model", str(export), "--input", str(jsonl)]) == 0
    assert json.loads(capsys.readouterr().out)["label"] == "negative"
    glue = tmp_path / "SST-2"
    glue.mkdir()
    texts, labels = _sentences(60, seed=2)
    glue.joinpath("dev.tsv").write_text("sentence\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in zip(texts, labels)))
    assert main(["predict", "--model", str(export), "--input", str(glue), "--task", "glue/sst2", "--batch-size", "16"]) == 0
    out = capsys.readouterr()
    assert len(out.out.splitlines()) == 60 and json.loads(out.err.splitlines()[-1])["metrics"]["accuracy"] > 0.9
    assert "predict:" in out.err and "0/4 [" in out.err  # the progress bar over the 4 batches, on stderr beside the metrics
    assert main(["predict", "--model", str(export), "--input", str(glue), "--task", "glue/sst2", "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().err)["metrics"]["accuracy"] > 0.9  # without a bar: the metrics line alone


def test_bench_writes_its_three_files(classifier, tmp_path, capsys):
    out = tmp_path / "bench"
    argv = ["bench", "--models", str(classifier), "--arch", "1,2,32,64", "--batch", "1,2", "--seq", "16", "--out", str(out),
            "--warmup", "0", "--rounds", "2", "--runs", "1"]
    assert main(argv) == 0
    assert "speed-up over" in capsys.readouterr().out
    assert {p.name for p in out.iterdir()} >= {"bench.json", "bench.md", "bench.png"}
    doc = json.loads((out / "bench.json").read_text())
    assert set(doc) == {"settings", "machine", "models", "results", "skipped", "real", "texts"} and doc["real"] == []
    assert [m["name"] for m in doc["models"]] == [str(classifier), "random ⟨1,2,32,64⟩"]
    runtimes = {r["runtime"] for r in doc["results"]}
    assert {"torch-fp32", "onnx-fp32", "onnx-int8"} <= runtimes
    for r in doc["results"]:
        assert r["samples"] == 2 and 0 < r["median_ms"] <= r["p90_ms"] and r["throughput_seq_s"] > 0
        assert r["speedup_vs_torch_fp32"] > 0 and (r["speedup_vs_first"] == 1.0) == (r["model"] == str(classifier))
    assert "| model | runtime | median ms |" in (out / "bench.md").read_text()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["export", "--model", "/nonexistent/model", "--out", "x"], "does not exist"),
        (["export", "--model", "{empty}", "--out", "x"], "has no config.json"),
        (["export", "--model", "{model}", "--out", "x", "--opset", "9"], "--opset 9"),
        (["bench", "--arch", "3,5,64,128"], "not divisible"),
        (["bench", "--arch", "1,2,32,64", "--batch", "1,x"], "--batch '1,x'"),
        (["bench", "--models", "{model}", "--seq", "100"], "longer than"),
        (["bench", "--models", "{model}", "--texts", "/nonexistent.txt"], "input '/nonexistent.txt' does not exist"),
        (["predict", "--model", "{model}", "--input", "/nonexistent.txt"], "does not exist"),
        (["predict", "--model", "{empty}", "--input", "-"], "has no config.json"),
    ],
)
def test_bad_input_is_a_one_line_error(argv, message, classifier, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    argv = [a.format(model=classifier, empty=tmp_path / "empty") for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("bort: error:") and len(err.splitlines()) == 1 and message in err, err


def test_export_config_checks_quantize():
    with pytest.raises(BortError, match="--quantize"):
        ExportConfig(model="m", out="x", quantize="int4")


def test_large_graphs_skip_shape_inference(classifier, tmp_path, monkeypatch):
    """Above the size limit (BERT-large) attention stays unfused, and the export is still exact."""
    monkeypatch.setattr(onnx_export, "_SHAPE_INFERENCE_MAX_BYTES", 0)
    info = export_onnx(ExportConfig(model=str(classifier), out=tmp_path / "big"))
    assert "Attention" not in info.fused_operators and info.fused_operators["LayerNormalization"] == 5  # the embeddings' too
    assert info.check["max_relative_error"] < 1e-4


def test_predict_regression_and_multiple_choice(bert_tokenizer, tmp_path, capsys):
    torch.manual_seed(0)
    config = bert_config(len(bert_tokenizer))
    config.num_labels, config.problem_type = 1, "regression"
    reg, mc = tmp_path / "reg", tmp_path / "mc"
    for folder, model in ((reg, BertForSequenceClassification(config)), (mc, BertForMultipleChoice(bert_config(len(bert_tokenizer))))):
        model.save_pretrained(folder)
        bert_tokenizer.save_pretrained(folder)
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("a man plays\ta man is playing\nthe sky\tthe dog\n")
    assert main(["predict", "--model", str(reg), "--input", str(pairs)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [set(r) for r in rows] == [{"idx", "score"}] * 2
    export = tmp_path / "mc-onnx"
    assert main(["export", "--model", str(mc), "--out", str(export), "--quantize", "int8"]) == 0
    capsys.readouterr()
    choices = tmp_path / "choices.jsonl"
    choices.write_text('{"text": "the fox", "choices": ["jumps", "sleeps", "runs"]}\n{"text": "a dog", "choices": ["barks", "flies", "sings"]}\n')
    for model in (mc, export):
        assert main(["predict", "--model", str(model), "--input", str(choices)]) == 0
        rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert [r["idx"] for r in rows] == ["0", "1"] and all(r["choice"] in (0, 1, 2) and 1 / 3 <= r["score"] <= 1 for r in rows)
    pairs.write_text("only one text\n")
    assert main(["predict", "--model", str(mc), "--input", str(pairs)]) == 2
    assert "needs the same number of choices" in capsys.readouterr().err


@pytest.mark.parametrize("quantize", ["none", "int8"])
def test_the_progress_bar_ends_at_its_total(classifier, tmp_path, monkeypatch, quantize):
    """Every stage counts once, and the total is the number of stages (it overshot with 5 stages of 4, issue 40)."""
    bars = []

    class Bar:
        def __init__(self, *, total, **_):
            self.total, self.n = total, 0
            bars.append(self)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def set_postfix_str(self, _):
            pass

        def update(self, k: int = 1):
            self.n += k

    monkeypatch.setattr(onnx_export, "tqdm", Bar)
    export_onnx(ExportConfig(model=str(classifier), out=tmp_path / "o", quantize=quantize))
    assert len(bars) == 1 and bars[0].n == bars[0].total == (6 if quantize == "int8" else 5)
