"""Sentence-transformers models through ``bort export`` and ``bort predict --embed``.

The source is the conftest's tiny bare BERT encoder made a sentence-transformers folder (modules.json,
1_Pooling/config.json, sentence_bert_config.json). The references are computed another way:
``SentenceTransformer`` on the source folder, or the graph's own token states pooled here in numpy.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import numpy as np
import onnxruntime as ort
import pytest

from bort.cli import main
from bort.export.onnx import ExportConfig, export_onnx
from bort.models.card import ONNX_STACK

TEXTS = ["a small model learns", "the teacher and the student read the same long text about the quick brown fox", "hello",
         "words around them decide what a word means"]
MODULES = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
           {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
           {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]
ST_FILES = ("modules.json", "1_Pooling/config.json", "sentence_bert_config.json")


def _sentence_folder(src, folder, mode: str = "mean", normalize: bool = True):
    """``src`` (a bare encoder) as a sentence-transformers folder pooling by ``mode``, normalised or not."""
    shutil.copytree(src, folder)
    modules = MODULES if normalize else MODULES[:2]
    (folder / "modules.json").write_text(json.dumps(modules, indent=2))
    (folder / "1_Pooling").mkdir()
    flags = {"cls": "pooling_mode_cls_token", "mean": "pooling_mode_mean_tokens", "max": "pooling_mode_max_tokens"}
    pooling = {"word_embedding_dimension": 64, **{flag: m == mode for m, flag in flags.items()}, "pooling_mode_mean_sqrt_len_tokens": False}
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(pooling, indent=2))
    (folder / "sentence_bert_config.json").write_text('{"max_seq_length": 12, "do_lower_case": false}')
    return folder


@pytest.fixture(scope="module")
def st_model(tmp_path_factory, bert_teacher_nohead):
    """The tiny encoder as a sentence-transformers model: mean pooling, normalised, inputs cut at 12 tokens."""
    return _sentence_folder(bert_teacher_nohead, tmp_path_factory.mktemp("st") / "model")


@pytest.fixture(scope="module")
def st_export(tmp_path_factory, st_model):
    out = tmp_path_factory.mktemp("st_export") / "onnx"
    export_onnx(ExportConfig(model=str(st_model), out=out, progress=False))
    return out


def _reference(folder, texts=TEXTS) -> np.ndarray:
    st = pytest.importorskip("sentence_transformers", reason="sentence-transformers is not installed (pip install 'bort[sentence]')")
    return st.SentenceTransformer(str(folder), device="cpu").encode(texts)


def _graph(folder, texts, max_len: int = 12) -> dict[str, np.ndarray]:
    """The export's outputs on ``texts``, fed the way any ONNX Runtime user would."""
    from transformers import AutoTokenizer

    enc = AutoTokenizer.from_pretrained(folder)(texts, padding=True, truncation=True, max_length=max_len, return_tensors="np")
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    feed = {i.name: enc[i.name].astype(np.int64) for i in session.get_inputs()}
    return {"attention_mask": feed["attention_mask"], **dict(zip(names, session.run(names, feed)))}


def test_export_keeps_the_pipeline_files_and_adds_sentence_embedding(st_model, st_export):
    for name in ST_FILES:
        assert (st_export / name).read_text() == (st_model / name).read_text(), name
    info = json.loads((st_export / "export.json").read_text())
    assert info["sentence_embedding"] == {"mode": "mean", "normalize": True}
    assert info["check"]["sentence_embedding"]["max_relative_error"] < 1e-4
    out = _graph(st_export, TEXTS)
    assert list(out) == ["attention_mask", "last_hidden_state", "sentence_embedding"]
    assert out["attention_mask"].min() == 0  # padding present, and left out of the mean
    np.testing.assert_allclose(np.linalg.norm(out["sentence_embedding"], axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(out["sentence_embedding"], _reference(st_model), atol=1e-5)


def test_sentence_transformers_loads_the_export(st_model, st_export, tmp_path):
    want = _reference(st_model)
    np.testing.assert_allclose(_reference(st_export), want, atol=1e-5)  # the default backend: the PyTorch weights the folder holds
    # backend="onnx" runs model.onnx through Optimum's ORTModelForFeatureExtraction, which needs transformers < 4.58: not bort's
    # environment but the stack the card names (bort.models.card.ONNX_STACK), here where BORT_ST_ONNX_PYTHON is its Python.
    python = os.environ.get("BORT_ST_ONNX_PYTHON")
    if not python:
        pytest.skip("sentence-transformers' ONNX backend runs in Optimum's stack (transformers < 4.58), not bort's: set "
                    "BORT_ST_ONNX_PYTHON to the Python of one (benchmarks/st_onnx_stack.py builds it; its result is committed)")
    card = (st_export / "README.md").read_text()
    snippet = card[card.index("from sentence_transformers import"):].split("```")[0].replace("print(embeddings.shape)", "")
    (tmp_path / "texts.json").write_text(json.dumps(TEXTS))
    code = snippet + "\nimport json, sys\nprint(json.dumps(model.encode(json.load(open(sys.argv[1]))).tolist()))\n"
    done = subprocess.run([python, "-c", code, str(tmp_path / "texts.json")], capture_output=True, text=True, check=True)
    np.testing.assert_allclose(np.array(json.loads(done.stdout.strip().splitlines()[-1])), _graph(st_export, TEXTS)["sentence_embedding"],
                               atol=1e-5)  # the card's own snippet runs the exported graph


def test_the_export_card_says_which_file_runs(st_export):
    card = (st_export / "README.md").read_text()
    assert 'SentenceTransformer(MODEL, backend="onnx", model_kwargs={"file_name": "model.onnx"})' in card
    assert "`SentenceTransformer(MODEL)` without a backend runs the fp32 PyTorch weights the folder also holds" in card
    assert all(pin in card for pin in ONNX_STACK) and "library_name: sentence-transformers" in card


@pytest.mark.parametrize("mode", ["cls", "max"])
def test_sentence_embedding_pools_as_the_config_says(mode, bert_teacher_nohead, tmp_path):
    src = _sentence_folder(bert_teacher_nohead, tmp_path / "src", mode=mode, normalize=False)
    info = export_onnx(ExportConfig(model=str(src), out=tmp_path / "onnx", quantize="int8", progress=False))
    assert info.sentence_embedding == {"mode": mode, "normalize": False}
    out = _graph(tmp_path / "onnx", TEXTS)
    hidden, mask = out["last_hidden_state"], out["attention_mask"][..., None]
    want = hidden[:, 0] if mode == "cls" else np.where(mask == 1, hidden, -np.inf).max(1)  # the graph's own token states, pooled here
    np.testing.assert_allclose(out["sentence_embedding"], want, atol=1e-6)
    assert np.abs(np.linalg.norm(want, axis=1) - 1).max() > 0.1  # not normalised
    np.testing.assert_allclose(out["sentence_embedding"], _reference(src), atol=0.2 * np.abs(want).max())  # int8 against PyTorch


def test_plain_encoder_and_reexport(st_model, bert_teacher_nohead, tmp_path):
    export_onnx(ExportConfig(model=str(bert_teacher_nohead), out=tmp_path / "plain", progress=False))
    assert not (tmp_path / "plain" / "modules.json").exists() and not (tmp_path / "plain" / "model.safetensors").exists()
    assert list(_graph(tmp_path / "plain", TEXTS)) == ["attention_mask", "last_hidden_state"]
    out = tmp_path / "again"
    for quantize in ("none", "int8"):  # the second export replaces the first, 1_Pooling/ included
        assert main(["export", "--model", str(st_model), "--out", str(out), "--quantize", quantize, "--no-progress"]) == 0
    assert json.loads((out / "export.json").read_text())["quantize"] == "int8"
    assert (out / "1_Pooling" / "config.json").read_text() == (st_model / "1_Pooling" / "config.json").read_text()


def _embed(argv, capsys) -> list[dict]:
    assert main(["predict", "--embed", *argv]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_predict_embed(st_model, st_export, tmp_path, capsys):
    text = tmp_path / "in.txt"
    text.write_text("\n".join(TEXTS) + "\n")
    want = _reference(st_model)
    for folder in (st_export, st_model):  # the ONNX sentence_embedding output, and PyTorch pooled by bort.models.sentence
        rows = _embed(["--model", str(folder), "--input", str(text), "--batch-size", "3"], capsys)
        assert [r["idx"] for r in rows] == ["0", "1", "2", "3"]
        np.testing.assert_allclose(np.array([r["embedding"] for r in rows]), want, atol=1e-5)
    jsonl = tmp_path / "in.jsonl"
    jsonl.write_text('{"id": "q7", "text": "hello"}\n')
    assert main(["predict", "--embed", "--model", str(st_export), "--input", str(jsonl), "--output-format", "tsv"]) == 0
    header, row = capsys.readouterr().out.splitlines()
    idx, vector = row.split("\t")
    assert header == "idx\tembedding" and idx == "q7"
    np.testing.assert_allclose(json.loads(vector), want[2], atol=1e-5)


def test_predict_embed_refusals(st_export, tmp_path, capsys):
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("a cat\ta dog\n")
    assert main(["predict", "--embed", "--model", str(st_export), "--input", str(pairs)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--embed embeds single texts" in err
    text = tmp_path / "in.txt"
    text.write_text("hello\n")
    assert main(["predict", "--model", str(st_export), "--input", str(text)]) == 2
    assert "pass --embed" in capsys.readouterr().err
