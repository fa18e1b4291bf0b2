"""The README.md model card of every kind of folder bort writes: its front matter, its facts (architecture,
parameters, metrics as the stage's own files have them) and load snippets that match the folder's files; the
snippets that can run here are run. A user's folder keeps its own README.md."""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import SEQ_LEN
from glue_files import _cfg, write_rte
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from test_objectives import MODULES, POOLING
from transformers import AutoModel, AutoModelForMaskedLM, AutoModelForSequenceClassification, AutoTokenizer

from bort.agora.recipe import AgoraConfig, agora
from bort.arch import Arch
from bort.cli import main
from bort.errors import BortError
from bort.export.onnx import ExportConfig, export_onnx
from bort.finetune.recipe import finetune
from bort.models.card import CARD, hub_name
from bort.models.loading import model_dir, resolve_model_path
from bort.training.hparams import Theta

USERS_CARD = "# my teacher\n\nwritten by hand\n"


def _card(folder: Path) -> tuple[dict, str]:
    """The card's front matter and body (of the model in a run folder, ``model/``)."""
    text = (model_dir(folder) / CARD).read_text(encoding="utf-8")  # a run folder's card is its model's
    match = re.match(r"---\n(.*?)\n---\n(.*)", text, re.DOTALL)
    assert match, "no YAML front matter"
    return yaml.safe_load(match.group(1)), match.group(2)


def _snippets(body: str) -> dict[str, str]:
    """Each ```python block, by the library its "With …:" line names."""
    return {m.group(1): m.group(2) for m in re.finditer(r"^With ([\w-]+).*?:\n\n```python\n(.*?)```", body, re.DOTALL | re.MULTILINE)}


def _run(code: str) -> str:
    """Run a snippet; what it printed."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "<card>", "exec"), {})  # noqa: S102 - the card's own snippet, the point of the test
    return out.getvalue()


def _row(body: str, name: str) -> str:
    match = re.search(rf"^\| {re.escape(name)} \| (.*) \|$", body, re.MULTILINE)
    assert match, f"no row '{name}'"
    return match.group(1)


def _own_copy(src: Path, dst: Path) -> Path:
    """A copy of a fixture folder with a README.md of the user's own."""
    shutil.copytree(src, dst)
    (model_dir(dst) / CARD).write_text(USERS_CARD)
    return dst


@pytest.fixture(scope="module")
def teacher(tmp_path_factory, bert_teacher) -> Path:
    return _own_copy(bert_teacher, tmp_path_factory.mktemp("users") / "teacher")


@pytest.fixture(scope="module")
def rte(tmp_path_factory) -> Path:
    return write_rte(tmp_path_factory.mktemp("RTE"), n_train=64, n_dev=24)


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory, teacher, rte) -> Path:
    out = tmp_path_factory.mktemp("ft") / "rte-model"
    finetune(_cfg(teacher, "glue/rte", rte, out, epochs=2))
    return out


def test_pretrained_student(tmp_path, teacher, corpus_file):
    out = tmp_path / "student"
    assert main(["pretrain", "--teacher", str(teacher), "--out", str(out), "--corpus", str(corpus_file), "--arch", "1,2,32,64",
                 "--seq-len", str(SEQ_LEN), "--steps", "2", "--batch-size", "4", "--eval-sequences", "8", "--bf16", "off",
                 "--device", "cpu", "--no-progress"]) == 0
    meta, body = _card(out)
    assert meta == {"library_name": "transformers", "tags": ["bort", "distillation"], "pipeline_tag": "fill-mask"}  # a local teacher: no base_model
    assert "distilled from" in body and f"`{teacher}`" in body
    assert _row(body, "architecture ⟨D,A,H,I⟩").startswith("⟨1,2,32,64⟩")
    assert _row(body, "parameters") == f"{AutoModelForMaskedLM.from_pretrained(model_dir(out)).num_parameters():,}"
    report = json.loads((out / "pretrain.json").read_text())
    assert _row(body, "kd_ce") == f"{report['kd_ce']:.4g}" and _row(body, "mlm_accuracy") == f"{report['mlm_accuracy']:.4g}"
    assert _row(body, "steps") == "2" and _row(body, "optim.lr") == "0.0005"
    snippets = _snippets(body)
    assert set(snippets) == {"transformers"}  # no ONNX graph, no modules.json
    assert "'score'" in _run(snippets["transformers"])  # the fill-mask pipeline's answers
    assert (teacher / CARD).read_text() == USERS_CARD


def test_sentence_transformers_student(tmp_path, bert_teacher_nohead, corpus_file):
    teacher = tmp_path / "st"
    shutil.copytree(bert_teacher_nohead, teacher)
    (teacher / "modules.json").write_text(json.dumps(MODULES))
    (teacher / "1_Pooling").mkdir()
    (teacher / "1_Pooling" / "config.json").write_text(json.dumps(POOLING))
    out = tmp_path / "student"
    assert main(["pretrain", "--teacher", str(teacher), "--out", str(out), "--corpus", str(corpus_file), "--arch", "1,4,64,128",
                 "--init", "teacher", "--alpha-mlm", "0", "--alpha-kd", "0", "--alpha-embed", "1", "--seq-len", str(SEQ_LEN), "--steps", "2",
                 "--batch-size", "4", "--eval-sequences", "8", "--bf16", "off", "--device", "cpu", "--no-progress"]) == 0
    meta, body = _card(out)
    assert meta["tags"] == ["bort", "distillation", "sentence-transformers"] and meta["pipeline_tag"] == "sentence-similarity"
    assert meta["library_name"] == "sentence-transformers"  # SentenceTransformer(OUT) is how it is used
    assert _row(body, "head") == "encoder" and _row(body, "parameters") == f"{AutoModel.from_pretrained(model_dir(out)).num_parameters():,}"
    snippets = _snippets(body)
    assert set(snippets) == {"transformers", "sentence-transformers"}
    tokens = len(AutoTokenizer.from_pretrained(model_dir(out))("A sentence to encode.")["input_ids"])
    assert _run(snippets["transformers"]).strip() == str(tokens)  # the feature-extraction pipeline: one vector per token
    pytest.importorskip("sentence_transformers")
    assert _run(snippets["sentence-transformers"]).strip() == "(1, 64)"


def test_finetuned_model(finetuned, teacher):
    meta, body = _card(finetuned)
    scored = json.loads((finetuned / "eval.json").read_text())
    # a local teacher without front matter: no base_model, license; the task's dataset and its dev metrics in the model-index
    assert meta == {"library_name": "transformers", "tags": ["bort", "distillation"], "datasets": ["nyu-mll/glue"],
                    "pipeline_tag": "text-classification",
                    "model-index": [{"name": "rte-model", "results": [{
                        "task": {"type": "text-classification"},
                        "dataset": {"name": "glue/rte", "type": "nyu-mll/glue", "config": "rte", "split": "validation"},
                        "metrics": [{"type": "accuracy", "value": scored["metrics"]["accuracy"], "name": "accuracy"}]}]}]}
    assert _row(body, "accuracy") == f"{scored['metrics']['accuracy']:.4g}"  # the dev metrics of eval.json, written after the model
    assert _row(body, "accuracy of the trivial baseline") == f"{scored['baseline']['accuracy']:.4g}"
    assert "## Dev metrics (scored once, by the model chosen on a held-out" in body
    assert _row(body, "task") == "glue/rte" and _row(body, "labels") == "entailment, not_entailment"
    assert _row(body, "architecture ⟨D,A,H,I⟩").startswith("⟨2,4,64,128⟩")
    assert _row(body, "parameters") == f"{AutoModelForSequenceClassification.from_pretrained(model_dir(finetuned)).num_parameters():,}"
    snippets = _snippets(body)
    assert set(snippets) == {"transformers"}
    printed = _run(snippets["transformers"])
    assert printed.count("'label'") == 2 and set(re.findall(r"'label': '(\w+)'", printed)) <= {"entailment", "not_entailment"}
    assert (teacher / CARD).read_text() == USERS_CARD


def test_onnx_export(tmp_path, finetuned):
    source = _own_copy(finetuned, tmp_path / "mine")
    out = tmp_path / "onnx"
    info = export_onnx(ExportConfig(model=str(source), out=out, progress=False))
    meta, body = _card(out)
    # no PyTorch weights: the ONNX graph is the model; a source folder with a card of the user's own names no base model
    assert meta == {"library_name": "onnx", "tags": ["bort", "distillation", "onnx"], "pipeline_tag": "text-classification"}
    assert _row(body, "max_relative_error") == f"{info.check['max_relative_error']:.4g}"
    assert _row(body, "parameters") == f"{AutoModelForSequenceClassification.from_pretrained(model_dir(source)).num_parameters():,}"
    assert _row(body, "quantize") == "none"
    snippets = _snippets(body)
    assert set(snippets) == {"ONNX", "Optimum"}  # no PyTorch weights, no modules.json
    assert "ORTModelForSequenceClassification.from_pretrained(MODEL)" in snippets["Optimum"]
    assert _run(snippets["ONNX"]).strip() == "(1, 2)"  # [batch, labels] logits
    assert (model_dir(source) / CARD).read_text() == USERS_CARD


def test_prepared_teacher(tmp_path, bert_teacher_nohead, corpus_file):
    out = tmp_path / "mlm"
    assert main(["teacher", "prepare", "--teacher", str(bert_teacher_nohead), "--out", str(out), "--corpus", str(corpus_file),
                 "--seq-len", str(SEQ_LEN), "--steps", "3", "--no-progress"]) == 0
    meta, body = _card(out)
    assert meta["pipeline_tag"] == "fill-mask" and "masked-language-model head" in body
    report = json.loads((out / "bort_teacher.json").read_text())
    assert _row(body, "before") == f"{report['mlm_accuracy_before']:.4g}" and _row(body, "after") == f"{report['mlm_accuracy']:.4g}"
    assert "'score'" in _run(_snippets(body)["transformers"])


def test_extracted_architecture(tmp_path, bert_teacher, extract_args):
    out = tmp_path / "run"
    assert main(extract_args(bert_teacher, out, "--epsilon", "4")) == 0
    best = json.loads((out / "result.json").read_text())["best"]
    meta, body = _card(out / "best")
    assert meta["pipeline_tag"] == "fill-mask" and "random weights" in body
    assert _row(body, "architecture ⟨D,A,H,I⟩").startswith(f"⟨{Arch(best['D'], best['A'], best['H'], best['I']).key}⟩")
    assert _row(body, "W") == f"{best['w']:.4g}" and _row(body, "ê (kl)") == f"{best['error']:.4g}"
    assert re.search(rf"^\| PyTorch eager float32, batch 1 × {SEQ_LEN} tokens, .* \| {best['latency_ms']:.4g} \|$", body, re.MULTILINE)
    assert f'MODEL = "{out / "best"}"' in _snippets(body)["transformers"]  # the final folder, not the temporary it was written in


def test_agora_folder_and_its_rounds(tmp_path, teacher, rte):
    out = tmp_path / "agora"
    theta = Theta(lr=1e-3, weight_decay=0.01, warmup=0.1, batch_size=16, seed=0)
    result = agora(AgoraConfig(base=_cfg(teacher, "glue/rte", rte, out, epochs=1, report_to="tensorboard"), thetas=(theta,), max_rounds=1))
    meta, body = _card(out)
    assert meta["pipeline_tag"] == "text-classification" and "Agora" in body
    assert _row(body, "accuracy") == f"{result.dev['accuracy']:.4g}" and _row(body, "best_theta") == theta.slug
    round_folder = out / "rounds" / "0" / theta.slug
    assert "`bort finetune`" in _card(round_folder)[1]
    # The round's numbers in Agora's own event file; the round's fine-tuning in its own.
    acc = EventAccumulator(str(out / "runs"))
    acc.Reload()
    assert [(e.step, e.value) for e in acc.Scalars("round/best_metric")] == [(0, pytest.approx(result.rounds[0].best_metric))]
    assert list((round_folder / "runs").glob("events.out.tfevents.*"))


def test_the_teachers_hub_name_and_license_reach_every_hop(tmp_path, bert_teacher, rte):
    """A Hub teacher (a download in the Hub cache, its card naming its license) → fine-tuned → int8 export: each card names
    the teacher as base_model, with the relation of the whole chain, the teacher's license and the datasets trained on."""
    hub_teacher = tmp_path / "hub" / "models--org--tiny-bert" / "snapshots" / "abc123"
    shutil.copytree(bert_teacher, hub_teacher)
    (hub_teacher / CARD).write_text("---\nlicense: mit\ndatasets:\n- teachers-own-corpus\n---\n# tiny\n")
    tuned = tmp_path / "tuned"
    finetune(_cfg(hub_teacher, "glue/rte", rte, tuned, epochs=1))
    meta, _ = _card(tuned)
    assert (meta["base_model"], meta["base_model_relation"], meta["license"]) == ("org/tiny-bert", "finetune", "mit")
    assert meta["datasets"] == ["nyu-mll/glue"]  # what this model trained on, not the teacher's corpus
    export_onnx(ExportConfig(model=str(tuned), out=tmp_path / "int8", quantize="int8", progress=False))
    meta, _ = _card(tmp_path / "int8")
    assert (meta["base_model"], meta["base_model_relation"], meta["license"]) == ("org/tiny-bert", "finetune", "mit")
    assert meta["datasets"] == ["nyu-mll/glue"] and meta["library_name"] == "onnx"
    export_onnx(ExportConfig(model=str(hub_teacher), out=tmp_path / "teacher-int8", quantize="int8", progress=False))
    meta, _ = _card(tmp_path / "teacher-int8")
    assert (meta["base_model"], meta["base_model_relation"], meta["license"]) == ("org/tiny-bert", "quantized", "mit")
    assert "datasets" not in meta


def test_hub_names(tmp_path):
    assert hub_name("minilm-l6") == "sentence-transformers/all-MiniLM-L6-v2"
    assert hub_name("google-bert/bert-base-uncased") == "google-bert/bert-base-uncased"  # no such folder: bort fetched it from the Hub
    snapshot = tmp_path / "hub" / "models--google--bert_uncased_L-2_H-128_A-2" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    assert hub_name(str(snapshot)) == "google/bert_uncased_L-2_H-128_A-2"
    assert hub_name(str(tmp_path)) is None  # a folder of one's own
    try:
        installed = resolve_model_path("minilm-l6")
    except BortError:  # the alias's package is not installed
        return
    assert hub_name(str(installed)) == "sentence-transformers/all-MiniLM-L6-v2"  # the alias's installed folder
