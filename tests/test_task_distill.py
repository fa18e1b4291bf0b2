"""Task distillation (``bort finetune --teacher``, ``--augment``) on tiny models and small synthetic tasks.

The teacher is the tiny BERT fine-tuned on an RTE-like task; the student starts from the tiny BERT.
"""

from __future__ import annotations

import itertools
import json
import re
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from glue_files import WORDS, _cfg, write_copa, write_rte, write_stsb
from safetensors.torch import load_file

import bort.finetune.augment as augment_mod
import bort.training.run as run_mod
from bort.agora.recipe import AgoraConfig, agora
from bort.errors import BortError
from bort.finetune.augment import Augment
from bort.finetune.recipe import FinetuneResult, finetune
from bort.finetune.selection import hold_out, select_size
from bort.finetune.task_distill import Objective, TaskDistill, TaskTeacher
from bort.models.loading import load_tokenizer
from bort.tasks import heads
from bort.tasks.features import collate, encode, task_batch_stream
from bort.tasks.registry import Example, get_task, read_split
from bort.training.hparams import Theta
from bort.training.objectives import RepresentationLoss

N_TRAIN = 48
TRAINED = N_TRAIN - select_size(N_TRAIN, 0.1)  # less the 9 that --select-on train holds out to choose on


@pytest.fixture(scope="module")
def rte(tmp_path_factory) -> Path:
    return write_rte(tmp_path_factory.mktemp("RTE"), n_train=N_TRAIN, n_dev=24)


@pytest.fixture(scope="module")
def teacher(tmp_path_factory, bert_teacher, rte) -> Path:
    """The tiny BERT fine-tuned on the RTE-like task."""
    out = tmp_path_factory.mktemp("teacher") / "T"
    finetune(_cfg(bert_teacher, "glue/rte", rte, out, epochs=4))
    return out


def _save(model, tokenizer_from: Path, folder: Path) -> Path:
    heads.stock_copy(model).save_pretrained(folder)
    load_tokenizer(tokenizer_from).save_pretrained(folder)
    return folder


def _start(model: Path, task: str, folder: Path, seed: int = 0) -> Path:
    """A folder holding the student's start: ``model`` with the fresh head fine-tuning gives it for ``seed``."""
    return _save(heads.build(model, get_task(task), "linear", 64, seed), model, folder)


def _kd(teacher: Path, **kw) -> dict:
    return {"distill": TaskDistill(teacher=str(teacher), **kw)}


def _weights(folder: Path) -> dict:
    return load_file(folder / "model" / "model.safetensors")  # a run's model


def _same_weights(a: Path, b: Path) -> bool:
    x, y = _weights(a), _weights(b)
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


@pytest.fixture
def teacher_rows(monkeypatch) -> list[int]:
    """The rows of every forward of a task teacher's encoder (the teachers of all runs in the test)."""
    rows, real = [], TaskTeacher.__init__

    def init(self, *args, **kwargs):
        real(self, *args, **kwargs)
        self.model.base_model.register_forward_pre_hook(lambda _m, a, kw: rows.append(len(a[0] if a else kw["input_ids"])), with_kwargs=True)

    monkeypatch.setattr(TaskTeacher, "__init__", init)
    return rows


# ------------------------------------------------------------------ the loss


def test_alpha_zero_gives_plain_finetunings_weights(tmp_path, bert_teacher, rte, teacher):
    plain = finetune(_cfg(bert_teacher, "glue/rte", rte, tmp_path / "plain", epochs=2))
    kd = finetune(_cfg(bert_teacher, "glue/rte", rte, tmp_path / "kd", epochs=2, **_kd(teacher, alpha_kd=0.0, alpha_gold=1.0)))
    assert _same_weights(tmp_path / "plain", tmp_path / "kd") and kd.dev == plain.dev
    assert (tmp_path / "kd" / "teacher_outputs.safetensors").is_file() and kd.teacher == str(teacher) and plain.teacher is None
    some = finetune(_cfg(bert_teacher, "glue/rte", rte, tmp_path / "kd5", epochs=2, **_kd(teacher, alpha_kd=0.5, alpha_gold=0.5)))
    assert not _same_weights(tmp_path / "plain", tmp_path / "kd5") and (some.alpha_kd, some.alpha_gold, some.temperature) == (0.5, 0.5, 1.0)


@pytest.mark.parametrize(("family", "task", "write"), [("bert", "glue/rte", write_rte), ("bert", "glue/stsb", write_stsb),
                                                        ("roberta", "superglue/copa", write_copa)])
def test_distillation_terms_vanish_when_the_teacher_is_the_students_start(tmp_path, request, family, task, write):
    """KD (KL over labels or choices, MSE for regression), hidden-state MSE and attention relations are all 0."""
    model = request.getfixturevalue(f"{family}_teacher")
    spec, data = get_task(task), write(tmp_path / "data")
    start = _start(model, task, tmp_path / "T")
    student = heads.build(model, spec, "linear", 64, 0).eval()
    cfg = TaskDistill(teacher=str(start), alpha_kd=1.0, temperature=2.0, representation=RepresentationLoss(alpha_hidden=1.0, alpha_attn=1.0))
    teacher = TaskTeacher(str(start), spec, model, device=torch.device("cpu"), max_len=64, batch_size=16)
    examples = read_split(spec, data, "train")[:16]
    features = teacher.stored_targets(tmp_path, encode(spec, examples, teacher.tokenizer, 64))
    objective = Objective(student, spec, cfg, teacher, torch.device("cpu"))
    with torch.no_grad():
        assert abs(objective(collate(features, teacher.tokenizer.pad_token_id)).item()) < 1e-6  # α = 1: no gold term
    sure = [replace(f, teacher=(5.0,) if spec.kind == "regression" else tuple(torch.tensor([4.0, 0.0]).log_softmax(-1).tolist()))
            for f in features]  # a teacher sure of the first label (choice), or of the score 5
    with torch.no_grad():
        assert objective(collate(sure, teacher.tokenizer.pad_token_id)).item() > 1e-2


def test_representation_terms_run_the_teacher_once_or_on_every_step(tmp_path, bert_teacher, rte, teacher, teacher_rows):
    """Its views of the training inputs are stored for the run (one pass, after a one-row probe) and removed when it ends;
    with --teacher-cache-gb 0 the teacher runs on each step's batch, and the model is the same."""
    kd = _kd(teacher, representation=RepresentationLoss(alpha_hidden=0.5, alpha_attn=0.5))
    report = finetune(_cfg(bert_teacher, "glue/rte", rte, tmp_path / "F", epochs=2, bf16="off", **kd))
    assert report.steps == 6 and sum(teacher_rows) == TRAINED + 1 + TRAINED  # the targets, the probe, the views: once each
    assert not (tmp_path / "F" / "teacher_views").exists()
    teacher_rows.clear()
    live = finetune(_cfg(bert_teacher, "glue/rte", rte, tmp_path / "G", epochs=2, bf16="off", teacher_cache_gb=0.0, **kd))
    assert sum(teacher_rows) == TRAINED + 2 * TRAINED  # stored outputs once, then each step's batch
    x, y = _weights(tmp_path / "F"), _weights(tmp_path / "G")
    assert live.dev == report.dev and all(torch.allclose(x[k], y[k], atol=1e-6) for k in x)


def _other_teacher(model: Path, task: str, folder: Path) -> Path:
    """A teacher of ``task`` whose encoder differs from ``model``'s (its weights moved by seeded noise)."""
    torch.manual_seed(3)
    moved = heads.build(model, get_task(task), "linear", 64, 1)
    with torch.no_grad():
        for w in moved.base_model.parameters():
            w.add_(0.05 * torch.randn_like(w))
    return _save(moved, model, folder)


@pytest.mark.parametrize(("family", "task", "write"), [("bert", "glue/rte", write_rte), ("bert", "glue/stsb", write_stsb),
                                                        ("roberta", "superglue/copa", write_copa), ("mpnet", "glue/rte", write_rte)])
def test_stored_teacher_views_give_the_live_teachers_loss(tmp_path, request, family, task, write, teacher_rows):
    """Classification, regression, multiple choice (a row per choice) and a family without token types; the relations of both
    layers; a killed run's views read back; over the limit, none stored."""
    model = request.getfixturevalue(f"{family}_teacher")
    spec, data = get_task(task), write(tmp_path / "data")
    start = _other_teacher(model, task, tmp_path / "T")
    cfg = TaskDistill(teacher=str(start), representation=RepresentationLoss(alpha_hidden=1.0, alpha_attn=1.0, attn_layers=2))
    teacher = TaskTeacher(str(start), spec, model, device=torch.device("cpu"), max_len=64, batch_size=5)
    features = teacher.stored_targets(tmp_path, encode(spec, read_split(spec, data, "train")[:16], teacher.tokenizer, 64))
    objective = Objective(heads.build(model, spec, "linear", 64, 0).eval(), spec, cfg, teacher, torch.device("cpu"))
    batches = list(itertools.islice(task_batch_stream(features, 6, teacher.tokenizer.pad_token_id, seed=0), 4))
    with torch.no_grad():
        live = [objective(dict(b)).item() for b in batches]
        assert objective.use_stored_views(tmp_path, features, limit_gb=1.0, autocast=None)
        teacher_rows.clear()
        stored = [objective(dict(b)).item() for b in batches]
    assert not teacher_rows and min(live) > 1e-3 and stored == pytest.approx(live, rel=1e-5)
    index = json.loads((tmp_path / "teacher_views" / "index.json").read_text())
    assert index["offsets"][-1] == sum(len(r) for f in features for r in f.rows) and index["hidden"] == 1 and len(index["slots"]) == 1 + 2 * 3
    again = Objective(heads.build(model, spec, "linear", 64, 0).eval(), spec, cfg, teacher, torch.device("cpu"))
    assert again.use_stored_views(tmp_path, features, limit_gb=1.0, autocast=None) and not teacher_rows  # read back, not computed
    assert not again.use_stored_views(tmp_path / "small", features, limit_gb=1e-9, autocast=None) and not (tmp_path / "small" / "teacher_views").exists()


# ------------------------------------------------------------------ stored teacher outputs, augmentation, resume


def _augmented_cfg(model, data, out, teacher, **kw):
    return _cfg(model, "glue/rte", data, out, epochs=2, augment=Augment(per_example=2, transform="dropout"), **_kd(teacher), **kw)


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(augment_mod, "CHUNK", 16)  # 3 chunks of the 48 training examples


def test_augmentation_is_seeded_new_and_labelled_by_the_teacher(tmp_path, bert_teacher, rte, teacher, teacher_rows, small_chunks):
    report = finetune(_augmented_cfg(bert_teacher, rte, tmp_path / "A", teacher))
    lines = [json.loads(line) for line in (tmp_path / "A" / "augmented.jsonl").read_text().splitlines()]
    assert report.augmented == len(lines) > TRAINED and report.train_examples == TRAINED
    assert sum(teacher_rows) == TRAINED + len(lines)  # every input once: not once per epoch
    texts = [tuple(line["texts"]) for line in lines]
    task = get_task("glue/rte")
    old = {ex.texts for split in ("train", "dev") for ex in read_split(task, rte, split)}
    assert len(set(texts)) == len(texts) and not set(texts) & old  # new: no duplicates, nothing equal to train or dev
    assert all(abs(sum(line["soft_label"]) - 1) < 1e-6 for line in lines)
    expected = TaskTeacher(str(teacher), task, bert_teacher, device=torch.device("cpu"), max_len=64, batch_size=64).soft_labels(
        [Example(idx="x", texts=t, label=None) for t in texts])
    assert torch.allclose(torch.tensor([line["soft_label"] for line in lines]), torch.tensor(expected), atol=1e-6)
    finetune(_augmented_cfg(bert_teacher, rte, tmp_path / "B", teacher))
    assert (tmp_path / "B" / "augmented.jsonl").read_bytes() == (tmp_path / "A" / "augmented.jsonl").read_bytes()  # same seed
    finetune(_augmented_cfg(bert_teacher, rte, tmp_path / "C", teacher, seed=1))
    assert (tmp_path / "C" / "augmented.jsonl").read_bytes() != (tmp_path / "A" / "augmented.jsonl").read_bytes()


def test_pair_retrieve_pairs_training_texts_anew_across_chunks(tmp_path, bert_teacher, rte, teacher, small_chunks):
    """--transform pair-retrieve in a fine-tuning: each new input is a training input's first text with the second text of
    another training input (of any chunk: the pool is the whole training set, less the selection slice), never its own."""
    cfg = _cfg(bert_teacher, "glue/rte", rte, tmp_path / "R", epochs=1, augment=Augment(per_example=2, transform="pair-retrieve"), **_kd(teacher))
    report = finetune(cfg)
    lines = [json.loads(line) for line in (tmp_path / "R" / "augmented.jsonl").read_text().splitlines()]
    train = {ex.texts for ex in hold_out(read_split(get_task("glue/rte"), rte, "train"), cfg.select_fraction, cfg.subset_seed)[0]}
    own = {}
    for a, b in train:
        own.setdefault(a, set()).add(b)
    assert report.augmented == len(lines) > TRAINED
    for line in lines:
        a, b = line["texts"]
        assert a in own and b in {t for _, t in train} and b not in own[a]
    by_source = {line["source"] for line in lines}
    assert len(by_source) > 16  # inputs of every chunk, not of the first alone


def test_augment_min_inputs_raises_k_for_a_small_set(tmp_path, bert_teacher, rte, teacher, small_chunks):
    """--augment-min-inputs N: K grows until the training set and its new inputs hold N, at most 20 per example; the new
    inputs are those --augment K makes (the same seeds), and a file made before the option stays valid."""
    rule = Augment(per_example=4, min_inputs=40_000)
    assert [rule.per_example_for(n) for n in (3_300, 8_000, 100, 67_000)] == [12, 4, 20, 4]
    assert Augment(per_example=2).made_of() == {"per_example": 2, "transform": "mlm-infill", "infill_model": None}
    with pytest.raises(BortError, match="--augment-min-inputs must be at least 1"):
        Augment(min_inputs=0)
    auto = _cfg(bert_teacher, "glue/rte", rte, tmp_path / "auto", epochs=1, augment=Augment(transform="dropout", min_inputs=4 * TRAINED),
                **_kd(teacher))
    fixed = _cfg(bert_teacher, "glue/rte", rte, tmp_path / "fixed", epochs=1, augment=Augment(per_example=3, transform="dropout"), **_kd(teacher))
    assert finetune(auto).augmented == finetune(fixed).augmented > 2 * TRAINED
    assert (tmp_path / "auto" / "augmented.jsonl").read_bytes() == (tmp_path / "fixed" / "augmented.jsonl").read_bytes()


def test_augment_inputs_are_labelled_by_the_teacher_after_the_made_ones(tmp_path, capsys, bert_teacher, rte, teacher, teacher_rows,
                                                                        small_chunks):
    """--augment-inputs FILE: the file's inputs, less those seen (a training input, a repeat), are labelled by the teacher and
    follow the made inputs, which stay as without the file; a scored input among them is counted and said, once the scored
    split is read; a changed file is not resumed; bad columns are refused in one line."""
    task = get_task("glue/rte")
    train, dev = read_split(task, rte, "train"), read_split(task, rte, "dev")
    fresh = [(f"the {WORDS[i % 16]} saw number {i}", f"it was {WORDS[i * 7 % 16]}") for i in range(20)]
    pairs = fresh[:10] + [train[0].texts, fresh[3]] + fresh[10:] + [dev[5].texts]  # a training input and a repeat, dropped
    given = tmp_path / "pool.jsonl"
    given.write_text("".join(json.dumps({"text_a": a, "text_b": b}) + "\n" for a, b in pairs))

    def run(name: str, **kw) -> FinetuneResult:
        return finetune(_cfg(bert_teacher, "glue/rte", rte, tmp_path / name, epochs=1, augment=Augment(transform="dropout", **kw), **_kd(teacher)))

    made = run("made", per_example=1)
    teacher_rows.clear()
    both = run("both", per_example=1, inputs_file=given)
    lines = [json.loads(line) for line in (tmp_path / "both" / "augmented.jsonl").read_text().splitlines()]
    assert both.augmented == len(lines) == made.augmented + len(fresh) + 1 and sum(teacher_rows) == TRAINED + len(lines)
    head = (tmp_path / "made" / "augmented.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in head] == lines[: made.augmented]  # the made inputs as without the file
    tail = lines[made.augmented :]
    assert [tuple(line["texts"]) for line in tail] == fresh + [dev[5].texts]
    assert [line["source"] for line in tail] == [f"inputs-{i}" for i in (*range(1, 11), *range(13, 24))]  # the file's lines
    assert (made.augmented_scored, both.augmented_scored) == (0, 1) and "1 of the 60 new inputs are inputs of the scored split" in capsys.readouterr().err
    expected = TaskTeacher(str(teacher), task, bert_teacher, device=torch.device("cpu"), max_len=64, batch_size=64).soft_labels(
        [Example(idx="x", texts=tuple(line["texts"]), label=None) for line in tail])
    assert torch.allclose(torch.tensor([line["soft_label"] for line in tail]), torch.tensor(expected), atol=1e-6)
    alone = run("alone", inputs_file=given)
    alone_lines = [json.loads(line) for line in (tmp_path / "alone" / "augmented.jsonl").read_text().splitlines()]
    assert alone.augmented == len(fresh) + 1 and [line["texts"] for line in alone_lines] == [line["texts"] for line in tail]

    given.write_text(given.read_text().replace(fresh[0][0], "another text"))
    with pytest.raises(BortError, match="pool.jsonl' changed since this run started"):
        run("both", per_example=1, inputs_file=given)
    with pytest.raises(BortError, match="the task's inputs have 2 text.*text; name 2 with --augment-columns"):
        run("one", inputs_file=given, inputs_columns=("text",))
    with pytest.raises(BortError, match="pool.jsonl:1: no column 'premise'"):
        run("named", inputs_file=given, inputs_columns=("premise", "text_b"))
    with pytest.raises(BortError, match="--augment-columns takes one column, or two"):
        Augment(inputs_file=given, inputs_columns=("a", "b", "c"))
    assert Augment(per_example=2, inputs_file=given).made_of()["inputs_file"] == str(given)


def test_killed_in_augmentation_and_after_a_checkpoint_resumes_exactly(tmp_path, monkeypatch, bert_teacher, rte, teacher, teacher_rows,
                                                                        small_chunks):
    whole = tmp_path / "whole"
    finetune(_augmented_cfg(bert_teacher, rte, whole, teacher))
    teacher_rows.clear()
    out = tmp_path / "F"

    real_write, writes = augment_mod.atomic_write_text, []

    def write_or_die(path, text):
        writes.append(path)
        if len(writes) == 2:  # chunk 1's lines are in the file, its record is not
            raise KeyboardInterrupt
        real_write(path, text)

    monkeypatch.setattr(augment_mod, "atomic_write_text", write_or_die)
    with pytest.raises(KeyboardInterrupt):
        finetune(_augmented_cfg(bert_teacher, rte, out, teacher))
    monkeypatch.setattr(augment_mod, "atomic_write_text", real_write)
    kept = len((whole / "augmented.jsonl").read_bytes()[: json.loads((out / "augmented_state.json").read_text())["bytes"]].splitlines())
    assert sum(teacher_rows) == TRAINED + len((out / "augmented.jsonl").read_text().splitlines())  # chunks 0 and 1 labelled

    real_save, saves = run_mod.save_checkpoint, []

    def save_then_die(*args, **kwargs):
        real_save(*args, **kwargs)
        saves.append(1)
        raise KeyboardInterrupt  # killed right after the first checkpoint

    teacher_rows.clear()
    monkeypatch.setattr(run_mod, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        finetune(_augmented_cfg(bert_teacher, rte, out, teacher))
    monkeypatch.setattr(run_mod, "save_checkpoint", real_save)
    total = len((whole / "augmented.jsonl").read_text().splitlines())
    assert (out / "checkpoint").is_dir() and sum(teacher_rows) == total - kept  # the stored outputs are not computed again
    assert (out / "augmented.jsonl").read_bytes() == (whole / "augmented.jsonl").read_bytes()  # continued without duplicates

    teacher_rows.clear()
    resumed = finetune(_augmented_cfg(bert_teacher, rte, out, teacher))
    assert teacher_rows == []  # the resumed training pays nothing for the teacher
    assert _same_weights(out, whole) and resumed.dev == FinetuneResult.read(whole / "finetune.json").dev
    assert resumed.augmented == total


# ------------------------------------------------------------------ Agora


def test_agora_with_a_teacher_gives_soft_labels(tmp_path, bert_teacher, rte, teacher):
    base = _cfg(bert_teacher, "glue/rte", rte, tmp_path / "F", epochs=1, augment=Augment(transform="swap"), **_kd(teacher))
    thetas = (Theta(lr=1e-3, weight_decay=0.01, warmup=0.1, batch_size=16, seed=0),)
    result = agora(AgoraConfig(base=base, thetas=thetas, variants=2, max_rounds=1))
    points = [json.loads(line) for line in (tmp_path / "F" / "agora_points.jsonl").read_text().splitlines()]
    task = get_task("glue/rte")
    assert result.rounds[0].labeller == str(teacher / "model") and result.rounds[0].new_points == len(points) > 0
    assert all(p["label"] == task.labels[max(range(2), key=lambda i: p["soft_label"][i])] for p in points)
    trained = FinetuneResult.read(tmp_path / "F" / "rounds" / "0" / thetas[0].slug / "finetune.json")
    assert trained.teacher == str(teacher)  # the round's trainings distil the teacher too
    with pytest.raises(BortError, match="--labeller and --task-teacher differ"):
        AgoraConfig(base=base, thetas=thetas, labeller=str(bert_teacher))


# ------------------------------------------------------------------ refusals


def test_a_teacher_of_another_task_family_or_tokenizer_is_refused(tmp_path, bert_teacher, roberta_teacher, rte, teacher):
    cases = {
        "predicts the labels (unacceptable, acceptable) but glue/rte has (entailment, not_entailment)": _start(bert_teacher, "glue/cola", tmp_path / "cola"),
        "is a regression model but glue/rte is a classification task": _start(bert_teacher, "glue/stsb", tmp_path / "stsb"),
        "has a multiple-choice head but glue/rte is a classification task": _start(bert_teacher, "superglue/copa", tmp_path / "copa"),
        "has no task head (a masked-lm model)": bert_teacher,
        "has another tokenizer than --model": _start(roberta_teacher, "glue/rte", tmp_path / "roberta"),
    }
    for message, folder in cases.items():
        with pytest.raises(BortError, match="^" + re.escape(f"--task-teacher '{folder}' {message}")):
            finetune(_cfg(bert_teacher, "glue/rte", rte, tmp_path / "F", **_kd(folder)))
    stsb = write_stsb(tmp_path / "STS-B")
    with pytest.raises(BortError, match="is a classification model but glue/stsb is a regression task"):
        finetune(_cfg(bert_teacher, "glue/stsb", stsb, tmp_path / "G", **_kd(teacher)))


def test_augment_needs_a_teacher_and_a_text_task(tmp_path, bort_cmd, bert_teacher, roberta_teacher, rte):
    with pytest.raises(BortError, match="--augment and --augment-inputs need --task-teacher"):
        _cfg(bert_teacher, "glue/rte", rte, tmp_path / "F", augment=Augment(per_example=2))
    copa = write_copa(tmp_path / "COPA")
    start = _start(roberta_teacher, "superglue/copa", tmp_path / "T")
    with pytest.raises(BortError, match="--augment and --augment-inputs apply to classification and regression tasks; superglue/copa is multiple choice"):
        finetune(_cfg(roberta_teacher, "superglue/copa", copa, tmp_path / "G", augment=Augment(per_example=2, transform="swap"), **_kd(start)))
    run = subprocess.run([*bort_cmd, "finetune", "--model", str(bert_teacher), "--task", "glue/rte", "--data", str(rte), "--out",
                          str(tmp_path / "H"), "--augment", "2"], capture_output=True, text=True)
    said = "bort: error: --augment and --augment-inputs need --task-teacher: the teacher labels the new inputs"
    assert run.returncode == 2 and run.stderr.strip().splitlines()[-1] == said


def test_cli_distils_and_augments(tmp_path, bort_cmd, bert_teacher, rte, teacher):
    run = subprocess.run([*bort_cmd, "finetune", "--model", str(bert_teacher), "--task", "glue/rte", "--data", str(rte), "--out", str(tmp_path / "F"),
                          "--max-seq-len", "64", "--steps", "4", "--no-progress", "--bf16", "off", "--teacher", str(teacher), "--alpha-kd", "0.8",
                          "--temperature", "2", "--augment", "1", "--transform", "swap"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    report = FinetuneResult.read(tmp_path / "F" / "finetune.json")
    lines = (tmp_path / "F" / "augmented.jsonl").read_text().splitlines()
    assert (report.teacher, report.alpha_kd, report.temperature, report.augmented) == (str(teacher), 0.8, 2.0, len(lines)) and lines
    # the former spelling --teacher is taken, with one line that names the new one (issue 37)
    assert "bort: note: --teacher is now --task-teacher (the old spelling goes in the next release)" in run.stderr.splitlines()


def test_a_killed_run_reads_its_stored_teacher_views_back(tmp_path, monkeypatch, bert_teacher, rte, teacher, teacher_rows):
    kd = _kd(teacher, representation=RepresentationLoss(alpha_hidden=0.5, alpha_attn=0.5))
    whole = finetune(_cfg(bert_teacher, "glue/rte", rte, tmp_path / "whole", epochs=2, **kd))
    real_save = run_mod.save_checkpoint

    def save_then_die(*args, **kwargs):
        real_save(*args, **kwargs)
        raise KeyboardInterrupt  # killed right after the first checkpoint

    monkeypatch.setattr(run_mod, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        finetune(_cfg(bert_teacher, "glue/rte", rte, tmp_path / "F", epochs=2, **kd))
    monkeypatch.setattr(run_mod, "save_checkpoint", real_save)
    assert (tmp_path / "F" / "teacher_views" / "index.json").is_file()
    teacher_rows.clear()
    resumed = finetune(_cfg(bert_teacher, "glue/rte", rte, tmp_path / "F", epochs=2, **kd))
    assert teacher_rows == [] and not (tmp_path / "F" / "teacher_views").exists()  # read back, then removed with the run's end
    assert _same_weights(tmp_path / "F", tmp_path / "whole") and resumed.dev == whole.dev
