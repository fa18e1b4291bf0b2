"""Agora (algorithms.md §6), readable top to bottom. Each round:

1. fine-tune one model per θ ∈ Θ on the current training set (the ordinary `bort finetune` recipe,
   each run its own resumable folder ``OUT/rounds/<r>/<θ>``);
2. take the round's best model and the selection examples it gets wrong;
3. transform each mistaken example into new inputs, dropping duplicates and anything equal to an
   existing training or selection input;
4. label them with the labeller (a given model, or the first round's best; with ``--task-teacher``, the
   teacher's soft labels) and add them to the training set, never to dev;
5. keep the better half of Θ (after ``replay`` extra rounds with the same Θ).

The selection examples are the paper's dev set; under ``--select-on train`` (the default) they are a
seeded slice of the training set, held out once for every round (algorithms.md §4d), so that the dev
split is never trained on, never chooses, and is scored once, by the best model.
``OUT/agora.json`` gets one record per finished round and ``OUT/agora_points.jsonl`` the added
points, so a killed run resumes at the next round. The best model over all rounds ends in ``OUT``.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from tqdm.auto import tqdm

from bort.agora.thetas import prune
from bort.atomic import atomic_write_text
from bort.errors import BortError
from bort.finetune import FinetuneConfig, FinetuneResult, finetune, subset, write_eval
from bort.finetune.augment import soft_field
from bort.finetune.recipe import baselines
from bort.finetune.selection import hold_out
from bort.finetune.task_distill import TaskTeacher, from_soft
from bort.finetune.transforms import check_transform, fresh_inputs, make_transform
from bort.models.card import Card
from bort.models.folder import copy_model_files
from bort.models.loading import load_tokenizer, model_dir, resolve_model_path
from bort.options import opt
from bort.records import Record
from bort.shared import resolve_device
from bort.tasks import heads
from bort.tasks.features import encode
from bort.tasks.registry import Example, TaskSpec
from bort.tasks.scoring import outputs, predictions
from bort.tasks.source import TaskData, open_task
from bort.training.hparams import Theta
from bort.training.run import RunFolder, fingerprint

RECORDS, POINTS, TABLE = "agora.json", "agora_points.jsonl", "agora.md"


@dataclass(frozen=True)
class AgoraMode:
    """``bort finetune --agora``: whether to fine-tune with Agora instead of one run, and its Θ."""

    agora: bool = field(default=False, metadata=opt("fine-tune with Agora instead of one run (classification tasks)"))
    agora_space: str = field(default="default", metadata=opt("YAML file of value lists lr, weight_decay, warmup, batch_size, seed; or a "
                                                             "preset: 'default' (4 sets, for one machine) or 'bort-paper' (the authors' 480)"))


@dataclass(frozen=True)
class AgoraConfig:
    """``base`` sets the task, data, model, output, schedule, teacher and transformation of every fine-tuning; θ sets the rest."""

    base: FinetuneConfig
    thetas: tuple[Theta, ...]
    labeller: str | None = field(default=None, metadata=opt("model folder that labels new points (e.g. the fine-tuned teacher); "
                                                            "default: --task-teacher, else the first round's best"))
    variants: int = field(default=4, metadata=opt("new inputs made from each mistaken selection example"))
    replay: int = field(default=0, metadata=opt("run each Θ K more times before pruning it", metavar="K"))
    max_rounds: int | None = field(default=None, metadata=opt("stop after R rounds (default: until Θ is empty)"))

    def __post_init__(self) -> None:
        if not self.thetas:
            raise BortError("the Agora space Θ is empty: give at least one hyperparameter set")
        if self.variants < 1 or self.replay < 0 or (self.max_rounds is not None and self.max_rounds < 1):
            raise BortError("--variants and --max-rounds must be at least 1, --replay at least 0")
        if self.labeller and self.base.distill.teacher and self.labeller != self.base.distill.teacher:
            raise BortError("--labeller and --task-teacher differ: with --task-teacher, the teacher labels Agora's new points (give one of them)")


@dataclass(frozen=True)
class AgoraRound(Record):
    """One finished round, as ``agora.json`` records it; θ are named by :attr:`Theta.slug`."""

    round: int
    theta_run: int
    theta_keys: list[str]
    theta_left: int
    theta_left_keys: list[str]
    train_size: int
    mistakes: int
    new_points: int
    best_metric: float
    metric: str
    best_theta: str
    best_folder: str
    labeller: str
    labeller_accuracy: float  # on the selection examples
    scores: dict[str, float]  # each θ's selection metric


@dataclass(frozen=True)
class AgoraResult(Record):
    """The task (its name: a registered task, or one's own files'), every round, the best one by the selection metric
    (whose model ends in the output folder), and that model's dev metrics."""

    task: str
    rounds: list[AgoraRound]
    best: AgoraRound
    dev: dict[str, float] = field(default_factory=dict)


def _labels(task: TaskSpec, folder: Path, examples: list[Example], base: FinetuneConfig) -> list[str]:
    """``folder``'s predicted label names for ``examples``."""
    folder = model_dir(folder)  # a round's run folder, or a labeller's model folder
    model, tok = heads.load(folder, task), load_tokenizer(folder)
    logits = outputs(model, encode(task, examples, tok, base.max_seq_len), batch_size=base.eval_batch_size, pad_id=tok.pad_token_id)
    return [task.labels[p] for p in predictions(task, examples, logits)]


def _point(line: dict) -> Example:
    """The training example of a line of ``agora_points.jsonl``."""
    return Example(idx=line["idx"], texts=tuple(line["texts"]), label=line["label"])


def _new_points(cfg: AgoraConfig, task: TaskSpec, mistakes: list[Example], seen: set[tuple[str, ...]], labeller: Path | TaskTeacher,
                round_: int, transform) -> list[dict]:
    """Steps 3–4: transformed, de-duplicated, labelled new training points, as lines of ``agora_points.jsonl``: the
    labeller's label, or a teacher's soft label with its argmax as the label."""
    fresh = fresh_inputs(transform, [ex.texts for ex in mistakes], cfg.variants, seen, lambda v: cfg.base.seed * 100_003 + round_ * 101 + v)
    points = [Example(idx=f"agora-{round_}-{i}", texts=texts, label=None) for i, (_, texts) in enumerate(fresh)]
    if not points:
        return []
    if isinstance(labeller, TaskTeacher):
        soft = labeller.soft_labels(points)
        return [{"round": round_, "idx": p.idx, "texts": p.texts, "label": from_soft(task, s)[0], soft_field(task): s} for p, s in zip(points, soft)]
    return [{"round": round_, "idx": p.idx, "texts": p.texts, "label": name} for p, name in zip(points, _labels(task, labeller, points, cfg.base))]


def _theta_config(base: FinetuneConfig, theta: Theta, out: Path) -> FinetuneConfig:
    return replace(base, out=out, optim=theta.optim(base.optim.grad_clip), batch_size=theta.batch_size, seed=theta.seed, train_examples=None)


def agora(cfg: AgoraConfig) -> AgoraResult:
    """Run Agora; returns every round's record and the best one, and writes the best model to ``cfg.base.out``."""
    base = cfg.base
    data = open_task(base.task, base.data, base.own)
    task = data.spec
    if task.kind != "classification":
        raise BortError(f"Agora applies to classification tasks; {task.name} is {task.kind.replace('_', ' ')}: fine-tune it with plain `bort finetune`")
    if not task.dev_splits:
        raise BortError(f"{task.name} has no training data (a diagnostic set); Agora needs train and dev splits")
    device = resolve_device(base.device)
    with RunFolder(base.out, "agora", log=POINTS, report_to=base.report_to, inputs=(base.model, base.data, base.own.train_file, base.own.validation_file,
                                                                             base.own.test_file, base.distill.teacher, cfg.labeller)) as run:
        return _agora(cfg, data, device, run)


def _agora(cfg: AgoraConfig, data: TaskData, device: torch.device, run: RunFolder) -> AgoraResult:
    base, out, task = cfg.base, run.out, data.spec
    run.guard(fingerprint({**asdict(cfg), "base": fingerprint(base)}), resuming=(out / RECORDS).is_file())
    records = [AgoraRound.from_dict(r) for r in json.loads((out / RECORDS).read_text())["rounds"]] if (out / RECORDS).is_file() else []

    # Data: the (optionally subsampled) training split less the selection slice (or with --select-on dev, the dev split chooses),
    # plus the points of finished rounds.
    original = train_set = subset(data.split("train"), base.train_examples, base.subset_seed)
    if base.select_on == "train":
        train_set, select = hold_out(train_set, base.select_fraction, base.subset_seed)
    else:
        select = data.split(task.dev_splits[0])
    pool = [ex.texts for ex in train_set]  # the training inputs pair-retrieve draws partners from
    check_transform(base.augment.transform, base.augment.infill_model or base.model, len(pool[0]) if pool else 2)  # used after round 0
    done = len(records)
    run.trim_log(done - 1, key="round")  # points of a round killed before its record are made again
    if (out / POINTS).is_file():
        train_set += [_point(json.loads(line)) for line in (out / POINTS).read_text(encoding="utf-8").splitlines()]
    seen = {ex.texts for ex in train_set + select}
    by_slug = {t.slug: t for t in cfg.thetas}
    thetas = [by_slug[k] for k in records[-1].theta_left_keys] if records else list(cfg.thetas)
    teacher = TaskTeacher(base.distill.teacher, task, resolve_model_path(base.model), device=device, max_len=base.max_seq_len,
                          batch_size=base.eval_batch_size) if base.distill.teacher else None  # a labeller with soft labels
    given = teacher.path if teacher else cfg.labeller
    labeller = Path(given) if given else (Path(records[0].best_folder) if records else None)
    labeller_accuracy = records[0].labeller_accuracy if records else None
    transform = None
    main = task.metrics[0]

    while thetas and (cfg.max_rounds is None or len(records) < cfg.max_rounds):
        r = len(records)
        scores = {}
        for theta in thetas:  # step 1
            report = finetune(_theta_config(base, theta, out / "rounds" / str(r) / theta.slug), train_set=train_set,
                              select_set=select if base.select_on == "train" else None)
            # --select-on dev ranks on the dev metrics as saved and re-scored, as before; train on the held-out slice's.
            scores[theta.slug] = (report.selection if base.select_on == "train" else report.dev)[main]
        best_key = max(thetas, key=lambda t: scores[t.slug]).slug  # the first of equals, in Θ's order
        best_folder = out / "rounds" / str(r) / best_key
        labeller = labeller or best_folder
        best_names = _labels(task, best_folder, select, base)
        wrong = [ex for ex, name in zip(select, best_names) if name != ex.label]  # step 2
        # algorithms.md §6 asks for an "ok-ish" labeller: accuracy above 2/3, on the selection examples (the dev split is not read
        # before the end). A given labeller trained on the whole training split, slice included, reads high there: the check can
        # only catch a bad one.
        if labeller_accuracy is None:
            names = best_names if labeller == best_folder else _labels(task, labeller, select, base)
            labeller_accuracy = sum(n == ex.label for n, ex in zip(names, select)) / len(select)
            if labeller_accuracy <= 2 / 3:
                tqdm.write(f"agora: warning: the labeller's accuracy on the selection examples is {labeller_accuracy:.3f}, not above 2/3; "
                           "its labels for new points may hurt (give a better --labeller)", file=sys.stderr)
        if wrong and transform is None:
            transform = make_transform(base.augment.transform, base.augment.infill_model or base.model, device=str(device),
                                       pool=pool)
        points = _new_points(cfg, task, wrong, seen, teacher or labeller, r, transform) if wrong else []  # steps 3-4
        run.log(*points)
        size = len(train_set)
        train_set = train_set + [_point(p) for p in points]
        keys = [t.slug for t in thetas]
        runs = 1 + next((i for i, rec in enumerate(reversed(records)) if rec.theta_keys != keys), len(records))
        left = thetas if runs <= cfg.replay else prune(thetas, scores)  # step 6, replay: this Θ again; else step 5
        records.append(AgoraRound(round=r, theta_run=len(thetas), theta_keys=keys, theta_left=len(left), theta_left_keys=[t.slug for t in left],
                                  train_size=size, mistakes=len(wrong), new_points=len(points), best_metric=scores[best_key], metric=main,
                                  best_theta=best_key, best_folder=str(best_folder), labeller=str(labeller),
                                  labeller_accuracy=labeller_accuracy, scores=scores))
        atomic_write_text(out / RECORDS, json.dumps({"task": task.name, "rounds": [rec.to_dict() for rec in records]}, indent=2) + "\n")
        run.track(records[-1].to_dict(), r, prefix="round/")  # the round's numbers (each θ's fine-tuning reports its own, in its folder)
        tqdm.write(f"agora round {r}: best {main} {scores[best_key]:.4f} ({best_key}); {len(wrong)} mistakes, {len(points)} new points; "
                   f"Θ {len(thetas)} → {len(left)}", file=sys.stderr)
        thetas = left

    best = max(records, key=lambda rec: rec.best_metric)  # the earliest of equals, by the selection metric
    report = FinetuneResult.read(Path(best.best_folder) / "finetune.json")  # its dev split, scored once when it was trained
    # The baseline is learnt from the training split, not from the set the rounds grew with the labeller's points.
    scored = {s: data.split(s) for s in task.dev_splits} if report.scored == "dev" else {"test": data.split("test")}
    report = replace(report, baseline=baselines(task, original, scored))
    copy_model_files(model_dir(best.best_folder), run.model)  # the best round's model, as Agora's
    write_eval(out, report)
    atomic_write_text(out / TABLE, table(task.name, records))
    Card("bort finetune --agora", str(base.model), task.name, metrics={**report.scored_metrics, **{f"{k} of the trivial baseline": v
                                                                                                   for k, v in report.baseline.items()}},
         evaluation=f"{report.scored.capitalize()} metrics (scored once; the rounds chose on the selection examples)",
         scored=data.scored(task.dev_splits[0] if report.scored == "dev" else "test", report.scored_metrics),
         settings={"rounds": len(records), "best_round": best.round, "best_theta": best.best_theta, **run.settings}).write(run.model)
    return AgoraResult(task=task.name, rounds=records, best=best, dev=report.dev)


def table(task: str, records: list[AgoraRound]) -> str:
    """``agora.md``: one row per round."""
    metric = records[0].metric if records else "metric"
    rows = [f"# Agora on {task}\n", f"| round | Θ run | Θ left | training set | mistakes | new points | best {metric} (selection) | best θ |",
            "|---:|---:|---:|---:|---:|---:|---:|---|"]
    rows += [f"| {r.round} | {r.theta_run} | {r.theta_left} | {r.train_size} | {r.mistakes} | {r.new_points} | "
             f"{r.best_metric:.4f} | {r.best_theta} |" for r in records]
    return "\n".join(rows) + "\n"


__all__ = ["AgoraConfig", "AgoraResult", "AgoraRound", "agora", "table"]
