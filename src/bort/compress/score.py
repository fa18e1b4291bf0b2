"""``bort compress``'s scoring stage: the model that ships is the model scored (algorithms.md §4d).

Per task, on the split the fine-tuning stages did not choose on (dev; one's own labelled test file under
``--select-on dev``): the fine-tuned teacher (PyTorch fp32, as users run it), the student's int8 ONNX export
(``student_metric``) and its fp32 PyTorch folder (``student_metric_fp32``), and the trivial baseline learnt
from the training set; then ``kept`` and ``kept_over_baseline`` with their paired bootstrap intervals. The
scores are each task's one number (:func:`bort.tasks.kept.task_score`: the mean of its official metrics).
Without a task, the same for the sentence embeddings (``--embedding-task``), whose baseline is 0.
The scored split's texts are kept for the benchmark at real lengths (:func:`write_texts`).

A scored example whose input the student learnt the teacher's label of (one of its new inputs: a user's
``--augment-inputs`` file, or a transformation that re-pairs training texts, can hold one) is left out of every score,
the teacher's and the baseline's too, and counted (``left_out_learnt``): under ``--select-on train`` the scored split is
read only after training, so such inputs can only be found now (algorithms.md §4d; docs/design.md).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from bort.atomic import atomic_write_text
from bort.evaluate.recipe import EvaluateConfig, pair_cosines, split_predictions
from bort.finetune.augment import FILE as AUGMENTED
from bort.finetune.recipe import subset
from bort.models.card import Card, Scored, count_params
from bort.models.loading import model_dir, resolve_model_path
from bort.tasks.kept import baseline, baseline_predictions, kept, task_score
from bort.tasks.scoring import score
from bort.tasks.source import OwnData, open_task
from bort.tasks.spec import Example

TEXTS = "texts.jsonl"  # the scored split's inputs, for `bort bench --texts`
SCORE = "score.json"  # the stage's entry


def metric_name(metrics: tuple[str, ...]) -> str:
    """How a task's one number is named: its metric, or the mean of its metrics."""
    return metrics[0] if len(metrics) == 1 else f"mean of {', '.join(metrics)}"


def write_texts(examples: list[Example], path: Path) -> str | None:
    """The examples' inputs as JSON lines ``{"text", "text_pair"}`` (``bort bench --texts`` and ``bort predict`` read them);
    None for multiple choice, whose inputs are not single texts or pairs."""
    if any(ex.choices for ex in examples):
        return None
    rows = [{"text": ex.texts[0], **({"text_pair": ex.texts[1]} if len(ex.texts) > 1 else {})} for ex in examples]
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return str(path)


def scoring_files(own: OwnData) -> OwnData:
    """One's own task is scored on its validation (or test) file, read with the columns the model recorded unless given."""
    return OwnData(None, own.validation_file, own.test_file, own.text_columns, own.label_column, own.regression) if own.given else own


def score_task(*, task: str | None, data: Path | None, own: OwnData, train_examples: int | None, seed: int, scored: str, teacher: str,
               student: Path, export: Path, device: str, out: Path) -> dict:
    """Teacher, int8 student and fp32 student on the ``scored`` split ("dev" or "test"), the baseline, and the shares kept.

    ``train_examples`` and ``seed`` give the training subset the models learnt from, whose majority the baseline predicts.
    Writes the scored split's inputs to ``out/texts.jsonl`` and the honest figures into the int8 export's model card.
    """
    data_all = open_task(task, data, own)
    spec = data_all.spec
    split = spec.dev_splits[0] if scored == "dev" else "test"
    files = scoring_files(own)

    def predictions_of(model: str) -> tuple[list[Example], list]:
        _, splits = split_predictions(EvaluateConfig(model=model, task=task, data=data, own=files, split=split, device=device,
                                                          progress=False))
        return splits[split]

    examples, t_preds = predictions_of(teacher)
    _, s_preds = predictions_of(str(export))
    _, f_preds = predictions_of(str(student))
    learnt = learnt_inputs(student)
    clean = [i for i, ex in enumerate(examples) if ex.texts not in learnt]
    left_out = len(examples) - len(clean)
    if left_out:
        examples, t_preds, s_preds, f_preds = ([seq[i] for i in clean] for seq in (examples, t_preds, s_preds, f_preds))
    train = subset(data_all.split("train"), train_examples, seed)
    b_metrics = baseline(spec, train, examples)
    b_preds = baseline_predictions(spec, train, examples)
    result = kept(spec, examples, t_preds, s_preds, b_preds, seed=seed, baseline_score=task_score(b_metrics, spec.metrics))
    dev = {name: score(spec, examples, p) for name, p in (("teacher", t_preds), ("student", s_preds), ("student_fp32", f_preds))}
    entry = {"metric": metric_name(spec.metrics), "scored_split": split, "examples": len(examples), "left_out_learnt": left_out,
             "teacher_metric": result["teacher_score"],
             "student_metric": result["student_score"], "student_metric_fp32": task_score(dev["student_fp32"], spec.metrics),
             "baseline_metric": result["baseline_score"], **{k: v for k, v in result.items() if not k.endswith("_score")},
             "teacher_dev": dev["teacher"], "student_dev": dev["student"], "student_dev_fp32": dev["student_fp32"], "baseline_dev": b_metrics,
             "texts": write_texts(examples, out / TEXTS)}
    entry["model_index"] = asdict(data_all.scored(split, {entry["metric"]: entry["student_metric"]}))  # the int8 score, for its card
    write_card(entry, spec.name, student, export)
    return _kept(entry, out)


def learnt_inputs(student: Path) -> set[tuple[str, ...]]:
    """The inputs whose teacher labels the student learnt beside its training set: its fine-tuning's new inputs (those of the
    fine-tuning folder ``student``)."""
    path = Path(student) / AUGMENTED
    if not path.is_file():
        return set()
    return {tuple(json.loads(line)["texts"]) for line in path.read_text(encoding="utf-8").splitlines()}


def score_embedding(*, task: str, data: Path | None, seed: int, teacher: str, student: Path, export: Path, device: str, out: Path) -> dict:
    """The sentence embeddings' Spearman correlation with the gold scores (no fine-tuning) of the teacher, the student's int8
    export and its fp32 folder, on ``task``'s dev split; the baseline is 0, so ``kept_over_baseline`` is ``kept``."""
    data_all = open_task(task, data, OwnData())
    spec = data_all.spec
    examples = data_all.split(spec.dev_splits[0])
    cfg = EvaluateConfig(model="", task=task, data=data, device=device, embedding=True, progress=False)  # compress shows its stages
    cos = {name: pair_cosines(cfg, resolve_model_path(model), examples) for name, model in
           (("teacher", teacher), ("student", str(export)), ("student_fp32", str(student)))}
    result = kept(spec, examples, cos["teacher"], cos["student"], None, seed=seed, baseline_score=0.0, names=("spearman",))
    dev = {name: score(spec, examples, c) for name, c in cos.items()}
    entry = {"task": task, "metric": "spearman", "scored_split": spec.dev_splits[0], "examples": len(examples),
             "teacher_metric": result["teacher_score"],
             "student_metric": result["student_score"], "student_metric_fp32": dev["student_fp32"]["spearman"], "baseline_metric": 0.0,
             **{k: v for k, v in result.items() if not k.endswith("_score")},
             "teacher_dev": dev["teacher"], "student_dev": dev["student"], "student_dev_fp32": dev["student_fp32"],
             "texts": write_texts([Example(idx=ex.idx, texts=(t,), label=None) for ex in examples for t in ex.texts], out / TEXTS)}
    write_card(entry, f"{task} (sentence embeddings, no fine-tuning)", student, export)
    return _kept(entry, out)


def _kept(entry: dict, out: Path) -> dict:
    """The entry, also written to ``out/score.json``: the stage's output, so a rerun sees it is there (a multiple-choice task
    has no texts.jsonl)."""
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / SCORE, json.dumps(entry, indent=2) + "\n")
    return entry


def write_card(entry: dict, task: str, student: Path, export: Path, speed: dict | None = None) -> None:
    """The int8 export's model card, re-written with the figures of the model that ships (its model-index: the int8 score on
    the scored split) and ``speed`` (what → text), once the benchmark has measured it."""
    ci = entry["kept_over_baseline_interval"]
    metrics = {f"{entry['metric']} (int8, this model)": entry["student_metric"], f"{entry['metric']} (fp32 PyTorch)": entry["student_metric_fp32"],
               f"{entry['metric']} (teacher)": entry["teacher_metric"], f"{entry['metric']} (trivial baseline)": entry["baseline_metric"],
               "kept over the baseline, (S − B)/(T − B)": (f"{percent(entry['kept_over_baseline'])} (95% interval "
                                                          f"{percent(ci[0]) if ci else '–'} to {percent(ci[1]) if ci else '–'})"),
               "kept, S/T": percent(entry["kept"]), "teacher beats the baseline": entry["teacher_beats_baseline"]}
    scored = Scored(**entry["model_index"]) if "model_index" in entry else None  # (the embedding scores are no task's)
    Card("bort export", str(student), task, settings={"quantize": "int8"}, params=count_params(model_dir(student)), metrics=metrics, quantized=True,
         evaluation=f"Quality on the {entry['scored_split']} split (scored once; chosen on data not scored)", scored=scored,
         speed=speed or {}).write(export)


def percent(v: float | None) -> str:
    """A share as a percentage with one decimal, or a dash where it is undefined."""
    return "–" if v is None else f"{100 * v:.1f}%"


__all__ = ["SCORE", "TEXTS", "metric_name", "percent", "score_embedding", "score_task", "scoring_files", "write_card", "write_texts"]
