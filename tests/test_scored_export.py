"""The model that ships is the model scored: `bort evaluate` on ONNX exports (fp32 and int8), and `bort bench --texts`, the
speed on real inputs as they come (algorithms.md §4d)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_export import _predict, _sentences, classifier  # noqa: F401 - the fixture, shared

from bort.cli import main
from bort.evaluate.recipe import EvaluateConfig, evaluate
from bort.export.onnx import ExportConfig, export_onnx
from bort.models.loading import load_tokenizer
from bort.tasks.registry import read_split


@pytest.fixture(scope="module")
def exports(classifier, tmp_path_factory):  # noqa: F811
    folder = tmp_path_factory.mktemp("exports")
    for quantize in ("none", "int8"):
        export_onnx(ExportConfig(model=str(classifier), out=folder / quantize, quantize=quantize, progress=False))
    return folder


@pytest.fixture(scope="module")
def sst2(tmp_path_factory):
    """The classifier's synthetic task as an SST-2 folder (``sentence``, ``label`` 0/1)."""
    folder = tmp_path_factory.mktemp("SST-2")
    for split, seed in (("train", 2), ("dev", 3)):
        texts, labels = _sentences(120, seed=seed)
        (folder / f"{split}.tsv").write_text("sentence\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in zip(texts, labels)), encoding="utf-8")
    return folder


def test_evaluate_scores_onnx_exports_as_their_runtime_predicts(classifier, exports, sst2):  # noqa: F811
    scored = {name: evaluate(EvaluateConfig(model=str(m), task="glue/sst2", data=sst2)).metrics["accuracy"]
              for name, m in (("torch", classifier), ("fp32", exports / "none"), ("int8", exports / "int8"))}
    dev = read_split("glue/sst2", sst2, "dev")
    gold = np.array([int(ex.label == "positive") for ex in dev])
    for name in ("fp32", "int8"):  # the same accuracy as the runtime's own predictions, computed here
        folder = exports / ("none" if name == "fp32" else name)
        assert scored[name] == pytest.approx(float((_predict(folder, [ex.texts[0] for ex in dev]) == gold).mean()))
    assert scored["torch"] > 0.9 and scored["fp32"] == scored["torch"] and abs(scored["int8"] - scored["fp32"]) <= 0.02
    assert main(["evaluate", "--model", str(exports / "int8"), "--data", str(sst2)]) == 0  # the export's own task, from its config


def test_bench_times_real_texts_as_they_come(classifier, exports, tmp_path, capsys):  # noqa: F811
    texts, _ = _sentences(40, seed=5)
    texts[3] = " ".join(["good"] * 40)  # one long text among short ones: batches pad to their own longest, never to --seq
    (tmp_path / "texts.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    out = tmp_path / "bench"
    assert main(["bench", "--models", str(classifier), str(exports / "int8"), "--batch", "1", "--seq", "32", "--runtimes", "onnx-int8",
                 "--texts", str(tmp_path / "texts.txt"), "--text-batch", "1,8", "--max-texts", "30", "--warmup", "0", "--rounds", "2",
                 "--runs", "1", "--out", str(out)]) == 0
    assert "ms/seq" in capsys.readouterr().out
    doc = json.loads((out / "bench.json").read_text())
    assert doc["texts"] == {"file": str(tmp_path / "texts.txt"), "count": 30, "pairs": False}
    assert {(r["model"], r["batch"]) for r in doc["real"]} == {(m, b) for m in (str(classifier), str(exports / "int8")) for b in (1, 8)}
    tokenizer = load_tokenizer(classifier)
    lengths = [min(len(tokenizer(t)["input_ids"]), 32) for t in texts[:30]]
    for r in doc["real"]:
        assert r["texts"] == 30 and r["samples"] == 2 and r["ms_per_sequence"] == pytest.approx(r["median_pass_ms"] / 30)
        assert r["throughput_seq_s"] == pytest.approx(30_000 / r["median_pass_ms"])
        if r["batch"] == 1:  # unpadded: each text at its own length
            assert r["mean_tokens"] == pytest.approx(np.mean(lengths))
        assert (r["speedup_vs_first"] == 1.0) == (r["model"] == str(classifier))
    assert "## Real inputs" in (out / "bench.md").read_text()
    assert doc["machine"]["cpu"] and isinstance(doc["machine"]["flags"], list)


def test_bench_times_random_shapes_on_real_texts_through_the_teachers_tokenizer(classifier, tmp_path):  # noqa: F811
    texts, _ = _sentences(12, seed=6)
    (tmp_path / "texts.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    common = ["--arch", "1,2,32,64", "--batch", "1", "--seq", "32", "--runtimes", "onnx-int8", "--texts", str(tmp_path / "texts.txt"),
              "--text-batch", "1", "--warmup", "0", "--rounds", "1", "--runs", "1"]
    assert main(["bench", "--teacher", str(classifier), "--out", str(tmp_path / "with"), *common]) == 0
    doc = json.loads((tmp_path / "with" / "bench.json").read_text())
    tokenizer = load_tokenizer(classifier)
    (row,) = doc["real"]  # timed on the texts as the teacher's tokenizer gives them: the random shape has the teacher's vocabulary
    assert row["model"] == "random ⟨1,2,32,64⟩" and row["texts"] == 12
    assert row["mean_tokens"] == pytest.approx(np.mean([min(len(tokenizer(t)["input_ids"]), 32) for t in texts]))
    assert main(["bench", "--out", str(tmp_path / "without"), *common]) == 0  # no --teacher: BERT's family, no tokenizer
    doc = json.loads((tmp_path / "without" / "bench.json").read_text())
    assert doc["real"] == [] and doc["skipped"] == ["random ⟨1,2,32,64⟩ on --texts: a random-weight model has no tokenizer without --teacher"]
