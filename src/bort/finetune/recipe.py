"""The fine-tuning recipe behind ``bort finetune``, readable top to bottom (algorithms.md §5, §4d):

the training split and the selection data (a held-out slice of it, or with ``--select-on dev`` the dev
split: :mod:`bort.finetune.selection`) → tokenizer and features → model with a fresh head → optimiser (or
checkpoint) → the shared training loop, with the selection evaluation, the best model, the log and checkpoints
in one ``on_step`` → the dev split, read now, scored once by the best model as saved, with the task's trivial
baseline beside it → ``eval.json``.

``OUT`` is the Hugging Face folder of the best model so far, beside ``log.jsonl`` (one line per
evaluation), ``finetune_settings.json`` and ``checkpoint/`` (removed when the run finishes); with
``--task-teacher`` (:mod:`bort.finetune.task_distill`) also the teacher's outputs and any new inputs (:mod:`bort.finetune.augment`).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from tqdm.auto import tqdm

from bort.atomic import atomic_write_text
from bort.errors import BortError
from bort.evaluate.submission import write_submission as write_predictions
from bort.finetune import teacher_views as stored_views
from bort.finetune.augment import Augment, augment, augmented_features, scored_inputs
from bort.finetune.selection import SELECT_ON, hold_out
from bort.finetune.task_distill import Objective, TaskDistill, TaskTeacher
from bort.finetune.transforms import check_transform
from bort.models.card import Card
from bort.models.families import NAMES as FAMILY_NAMES
from bort.models.folder import save_model_folder
from bort.models.loading import load_tokenizer, position_limit, read_config, resolve_model_path
from bort.options import opt
from bort.records import Record
from bort.shared import BF16, DEVICE, LOGGING_EVERY, LOGGING_STEPS, NO_TRACKER, PROGRESS, REPORT_TO, SEED, resolve_device
from bort.tasks import heads
from bort.tasks.features import Feature, encode, steps_per_epoch, task_batch_stream
from bort.tasks.heads import TASK_HEADS
from bort.tasks.kept import baseline
from bort.tasks.registry import Example, TaskSpec
from bort.tasks.scoring import outputs, predictions, score
from bort.tasks.source import OwnData, TaskData, open_task
from bort.training.loop import OptimConfig, TrainState, autocast_dtype, build_optimizer, train
from bort.training.run import Clock, RunFolder, fingerprint
from bort.training.tracking import check_tracking

LOG, EVAL, REPORT = "log.jsonl", "eval.json", "finetune.json"


@dataclass(frozen=True)
class FinetuneConfig:
    """Everything ``bort finetune`` takes. ``steps`` (when given) overrides ``epochs``."""

    model: str = field(metadata=opt(f"Hugging Face folder of the {FAMILY_NAMES} families (the teacher, a `bort pretrain` output), Hub "
                                    "name or 'minilm-l6'", aliases=("--model_name_or_path",)))
    out: Path = field(metadata=opt("run folder: the best model in OUT/model (a Hugging Face folder), eval.json, log.jsonl beside it",
                                   aliases=("--output_dir",)))
    task: str | None = field(default=None, metadata=opt("e.g. glue/rte, superglue/cb, race/middle (or your own files: --train-file …)"))
    data: Path | None = field(default=None, metadata=opt("the task's own folder of the official download, e.g. glue_data/RTE, SuperGLUE/CB, "
                                                         "RACE (default: load the task from the Hugging Face Hub)"))
    own: OwnData = field(default_factory=OwnData)
    epochs: float = field(default=3.0, metadata=opt("passes over the training set", group="length", aliases=("--num_train_epochs",)))
    steps: int | None = field(default=None, metadata=opt("optimiser steps, instead of --epochs", group="length"))
    batch_size: int = field(default=32, metadata=opt("training batch size (one process: Trainer's per-device size)",
                                                     aliases=("--per_device_train_batch_size",)))
    group_by_length: bool = field(default=False, metadata=opt("train on batches of inputs of similar lengths (Trainer's group_by_length): "
                                                              "less padding, so fewer tokens a step (GLUE: 1.5-3x fewer)",
                                                              aliases=("--group_by_length",)))
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=5e-5, weight_decay=0.01, warmup=0.1))
    head: str = field(default="linear", metadata=opt("linear: first token → dropout → linear; dense: an extra dense + tanh layer first "
                                                     "(the CoLA option)", choices=TASK_HEADS))
    max_seq_len: int = field(default=128, metadata=opt("tokens per input, pairs truncated longest first", aliases=("--max_seq_length",)))
    eval_every: int | None = field(default=None, metadata=opt("steps between selection evaluations and checkpoints (default: one epoch)"))
    patience: int = field(default=3, metadata=opt("stop after this many evaluations without a better selection metric (0: never)"))
    select_on: str = field(default="train", metadata=opt("what chooses the best evaluation and stops early: train, a seeded "
                                                         "--select-fraction of the training set held out (the dev split is then "
                                                         "scored once, at the end); dev, the dev split itself (an optimistic score; "
                                                         "with your own labelled --test-file, the test file is scored)",
                                                         choices=SELECT_ON))
    select_fraction: float = field(default=0.1, metadata=opt("the share of the training set --select-on train holds out (at least "
                                                             "300 examples, or a fifth of a smaller set)"))
    train_examples: int | None = field(default=None, metadata=opt("train on a seeded random subset of this many examples"))
    # Hugging Face's TrainingArguments.data_seed: seeds then vary the run, not the examples it learns from.
    data_seed: int | None = field(default=None, metadata=opt("seed of --train-examples' subset (default: --seed), so that runs with "
                                                             "other --seed values train on the same examples"))
    distill: TaskDistill = field(default_factory=TaskDistill)
    augment: Augment = field(default_factory=Augment)
    eval_batch_size: int = field(default=64, metadata=opt(cli=False))
    seed: int = field(default=0, metadata=SEED)
    bf16: str = field(default="auto", metadata=BF16)
    device: str = field(default="auto", metadata=DEVICE)
    teacher_cache_gb: float = field(default=8.0, metadata=opt("disk (GiB) the task teacher's views of the training inputs may take while "
                                                             "the run lasts, so that --alpha-hidden and --alpha-attn run the teacher once, "
                                                             "not on every step (0: on every step); it changes no result"))
    progress: bool = field(default=True, metadata=PROGRESS)
    report_to: tuple[str, ...] = field(default=NO_TRACKER, metadata=REPORT_TO)
    logging_steps: int = field(default=LOGGING_EVERY, metadata=LOGGING_STEPS)

    def __post_init__(self) -> None:
        check_tracking(self)
        if self.select_on not in SELECT_ON:
            raise BortError(f"--select-on must be one of {', '.join(SELECT_ON)}, got '{self.select_on}'")
        if not 0 < self.select_fraction < 1:
            raise BortError(f"--select-fraction is a share of the training set in (0, 1), e.g. 0.1, got {self.select_fraction}")
        if self.head not in TASK_HEADS:
            raise BortError(f"--head must be one of {', '.join(TASK_HEADS)}, got '{self.head}'")
        if not self.epochs > 0 or (self.steps is not None and self.steps < 1):
            raise BortError("--epochs must be positive and --steps at least 1")
        optional = [v for v in (self.eval_every, self.train_examples) if v is not None]  # None: unset; 0 is refused
        if min(self.batch_size, self.eval_batch_size, *optional) < 1 or self.max_seq_len < 2 or self.patience < 0:
            raise BortError("--batch-size, --eval-every and --train-examples must be at least 1, --max-seq-len at least 2 (as predict "
                            "and evaluate need), --patience at least 0")
        if not self.teacher_cache_gb >= 0:
            raise BortError(f"--teacher-cache-gb must be at least 0 (0: the teacher runs on every step), got {self.teacher_cache_gb}")
        if self.distill.representation.active and not self.distill.teacher:  # checked here: a TaskDistill without teacher is a template (compress)
            raise BortError("--alpha-hidden and --alpha-attn need --task-teacher: they compare the student with the fine-tuned teacher")
        if self.augment.active and not self.distill.teacher:
            raise BortError("--augment and --augment-inputs need --task-teacher: the teacher labels the new inputs")

    @property
    def subset_seed(self) -> int:
        """The seed of ``--train-examples``' subset: ``--data-seed``, else ``--seed``."""
        return self.seed if self.data_seed is None else self.data_seed


@dataclass(frozen=True)
class FinetuneResult(Record):
    """``finetune.json``: the run's schedule, its best step, its timings, the best model's dev metrics (read once, after
    training, under ``--select-on train``) with the task's trivial ``baseline`` on the same split, what chose the model
    (``select_on``, its ``select_examples`` and the chosen model's ``selection`` metrics), ``scored`` (the split whose
    metrics are the honest figure: dev, or one's own labelled test file under ``--select-on dev``), and the task
    distillation's teacher, α, τ and new inputs (``augmented``; ``augmented_scored`` of them are inputs of the scored split, which
    makes its score optimistic)."""

    task: str
    model: str
    head: str
    train_examples: int
    steps: int
    steps_run: int
    best_step: int
    stopped_early: bool
    train_s: float
    dev_evals_s: float
    final_eval_s: float
    dev: dict[str, float]
    teacher: str | None = None
    alpha_kd: float | None = None
    alpha_gold: float | None = None
    temperature: float | None = None
    augmented: int = 0
    augmented_scored: int = 0  # new inputs equal to an input of the scored split (known only once it is read, after training)
    labels: list[str] | None = None  # classification: the label names, in the order of their ids
    baseline: dict[str, float] = field(default_factory=dict)
    select_on: str = "dev"  # records written before selection on the training set chose on dev
    select_examples: int = 0
    selection: dict[str, float] = field(default_factory=dict)
    scored: str = "dev"
    test: dict[str, float] | None = None  # one's own labelled --test-file: the best model's metrics on it

    @property
    def scored_metrics(self) -> dict[str, float]:
        """The metrics of the ``scored`` split."""
        return self.test if self.scored == "test" and self.test is not None else self.dev


def write_eval(out: Path, result: FinetuneResult) -> None:
    """``eval.json``: a fine-tuned folder's scored split, its metrics and the task's trivial baseline on it, and what
    chose the model (``select_on``: the held-out slice of the training set, or the dev split itself)."""
    doc = {"split": result.scored, "metrics": result.scored_metrics, "baseline": result.baseline, "select_on": result.select_on,
           "select_examples": result.select_examples}
    atomic_write_text(Path(out) / EVAL, json.dumps(doc, indent=2) + "\n")


def subset(examples: list[Example], n: int | None, seed: int) -> list[Example]:
    """A seeded random ``n`` of the examples, in their original order (all of them when ``n`` is None)."""
    if n is None or n >= len(examples):
        return examples
    keep = sorted(torch.randperm(len(examples), generator=torch.Generator().manual_seed(seed)).tolist()[:n])
    return [examples[i] for i in keep]


def _digest(examples: Sequence[Example]) -> str:
    return hashlib.sha256(json.dumps([asdict(e) for e in examples], sort_keys=True).encode()).hexdigest()[:16]


def _warn_single_label(task: TaskSpec, examples: Sequence[Example]) -> None:
    """Say on stderr when a classification task's training examples all hold one label: training goes on, but learns only it."""
    labels = {ex.label for ex in examples}
    if task.kind == "classification" and len(labels) == 1:
        tqdm.write(f"warning: all {len(examples)} training examples of {task.name} have the label '{labels.pop()}'; "
                   "the model will learn to predict only it (give it examples of the other labels)", file=sys.stderr)


def _suffix(i: int, split: str) -> str:
    """The suffix of a dev split's metric names: none for the first, ``_mismatched`` for MNLI's ``dev_mismatched``."""
    return "" if i == 0 else "_" + split.removeprefix("dev_")


def dev_metrics(task: TaskSpec, model, dev: dict[str, tuple[list[Example], list[Feature]]], *, pad_id: int, batch_size: int,
                autocast: torch.dtype | None = None, loss: bool = False) -> dict[str, float]:
    """The official metrics on every dev split (``split → (examples, their features)``): the first split's
    under their own names, others suffixed (MNLI: ``accuracy`` on matched, ``accuracy_mismatched``); with ``loss``,
    the model's own loss to the gold labels too (``loss``, ``loss_mismatched``: what Trainer logs as eval_loss)."""
    out: dict[str, float] = {}
    for i, (split, (examples, features)) in enumerate(dev.items()):
        logits = outputs(model, features, batch_size=batch_size, pad_id=pad_id, autocast=autocast)
        out.update({f"{k}{_suffix(i, split)}": v for k, v in score(task, examples, predictions(task, examples, logits)).items()})
        if loss:
            out[f"loss{_suffix(i, split)}"] = gold_loss(task, logits, features)
    return out


def gold_loss(task: TaskSpec, logits: torch.Tensor, features: Sequence[Feature]) -> float:
    """The mean loss of ``logits`` to the features' gold targets, as the stock heads compute it in training: squared
    error for regression, cross-entropy otherwise (over the labels, or over the choices)."""
    if task.kind == "regression":
        return float(torch.nn.functional.mse_loss(logits.view(-1), torch.tensor([float(f.target) for f in features])))
    return float(torch.nn.functional.cross_entropy(logits, torch.tensor([int(f.target) for f in features])))


def baselines(task: TaskSpec, train: Sequence[Example], splits: dict[str, list[Example]]) -> dict[str, float]:
    """The task's trivial baseline (:func:`bort.tasks.kept.baseline`, learnt from ``train``) on every split, named as
    :func:`dev_metrics` names the metrics."""
    return {f"{k}{_suffix(i, split)}": v for i, (split, examples) in enumerate(splits.items()) for k, v in baseline(task, train, examples).items()}


def finetune(cfg: FinetuneConfig, train_set: list[Example] | None = None, select_set: list[Example] | None = None) -> FinetuneResult:
    """Fine-tune ``cfg.model`` on ``cfg.task`` and write the best model to ``cfg.out``; returns its report.

    ``train_set`` replaces the task's training split (Agora trains on grown sets this way), and ``select_set`` the slice
    that ``--select-on train`` holds out of it (Agora holds its slice out once, for every round). Running again resumes
    from the last evaluation; a finished run returns its report without training.
    """
    data = open_task(cfg.task, cfg.data, cfg.own)
    task = data.spec
    if not task.dev_splits:
        raise BortError(f"{task.name} has no training data (a diagnostic set): predict it with `bort evaluate` and the model "
                        f"fine-tuned on {'glue/mnli' if task.name == 'glue/ax' else 'superglue/rte'}")
    if select_set is not None and cfg.select_on != "train":
        raise ValueError("a select_set is the held-out slice of --select-on train")
    device = resolve_device(cfg.device)
    inputs = (cfg.model, cfg.data, cfg.own.train_file, cfg.own.validation_file, cfg.own.test_file, cfg.distill.teacher, cfg.augment.infill_model,
              cfg.augment.inputs_file)
    with RunFolder(cfg.out, "finetune", log=LOG, report_to=cfg.report_to, logging_steps=cfg.logging_steps, inputs=inputs) as run:
        return _finetune(cfg, train_set, select_set, data, device, run)


def _finetune(cfg: FinetuneConfig, train_set: list[Example] | None, select_set: list[Example] | None, data: TaskData, device: torch.device,
              run: RunFolder) -> FinetuneResult:
    out, task = run.out, data.spec
    # Without new inputs (--augment 0) the way they would be made changes nothing: the defaults stand in, so a changed
    # --transform alone is not a changed setting (Agora's rounds carry its transform here).
    made = cfg if cfg.augment.active else replace(cfg, augment=Augment())
    settings = {**fingerprint(made), "train_set": None if train_set is None else _digest(train_set),
                **({"select_set": _digest(select_set)} if select_set is not None else {})}
    if (out / EVAL).is_file() and (out / REPORT).is_file():  # finished earlier: nothing to redo
        run.guard(settings, resuming=True)
        shutil.rmtree(run.checkpoint, ignore_errors=True)  # a run killed while removing it
        return FinetuneResult.read(out / REPORT)
    run.guard(settings)

    # Data: the training split (or the given set) and what chooses the model: a held-out slice of it (--select-on train), or the
    # dev split (--select-on dev). Under --select-on train the dev split is read only after training (algorithms.md §4d).
    train_all = subset(train_set if train_set is not None else data.split("train"), cfg.train_examples, cfg.subset_seed)
    if cfg.select_on == "train":
        train_examples, held = (train_all, select_set) if select_set is not None else hold_out(train_all, cfg.select_fraction, cfg.subset_seed)
        selection = {"select": held}
    else:
        train_examples, selection = train_all, {split: data.split(split) for split in task.dev_splits}
    scored_later = [s for s in task.dev_splits if s not in selection] + (["test"] if data.own is not None and data.own.test_file else [])
    for split in scored_later:
        data.check(split)  # bad input is refused before any work; the examples are read after training
    _warn_single_label(task, train_examples)
    if train_examples and cfg.augment.per_example_for(len(train_examples)):
        check_transform(cfg.augment.transform, cfg.augment.infill_model or cfg.model, len(train_examples[0].texts))
    given = cfg.augment.read_inputs(len(train_examples[0].texts), data.own.text_columns if data.own else None) if train_examples else []
    path = resolve_model_path(cfg.model)
    limit = position_limit(read_config(path))
    if cfg.max_seq_len > limit:
        raise BortError(f"--max-seq-len {cfg.max_seq_len} is longer than the model's {limit} positions; use at most {limit}")
    tokenizer = load_tokenizer(path)
    tokenizer.model_max_length = cfg.max_seq_len  # saved: transformers.pipeline() then truncates as bort does
    features = encode(task, train_examples, tokenizer, cfg.max_seq_len)
    select = {split: (examples, encode(task, examples, tokenizer, cfg.max_seq_len)) for split, examples in selection.items()}

    # Task distillation: the teacher's outputs on the training inputs (computed once, kept in OUT), and new inputs it labels,
    # none equal to a training or selection input (nor, under --select-on train, read before training: a dev input; a
    # transform's output equal to one is rare, and its label would be the teacher's, not the dev label).
    teacher, augmented = None, []
    if cfg.distill.teacher:
        teacher = TaskTeacher(cfg.distill.teacher, task, path, device=device, max_len=cfg.max_seq_len, batch_size=cfg.eval_batch_size)
        features = teacher.stored_targets(out, features)
        if cfg.augment.active:
            seen = {ex.texts for ex in train_examples} | {ex.texts for examples in selection.values() for ex in examples}
            augmented = augment(cfg.augment, out, train_examples, seen, teacher, seed=cfg.seed, model=cfg.model, device=str(device),
                                given=given)
            features = features + augmented_features(task, augmented, tokenizer, cfg.max_seq_len)

    # Schedule: epochs or steps; a selection evaluation (and checkpoint) every epoch unless told otherwise.
    per_epoch = steps_per_epoch(len(features), cfg.batch_size)
    steps = cfg.steps or max(1, round(cfg.epochs * per_epoch))
    eval_every = min(cfg.eval_every or per_epoch, steps)

    # Model and optimiser, or the checkpoint of a killed run.
    model = heads.build(path, task, cfg.head, cfg.max_seq_len, cfg.seed).to(device)
    for key, value in data.config.items():  # one's own data: the columns, so that evaluate and predict read its files again
        setattr(model.config, key, value)
    objective = Objective(model, task, cfg.distill, teacher, device)  # the loss, and what trains: the model (and projections)
    optimizer, scheduler = build_optimizer(objective.module, cfg.optim, steps)
    state, best = run.resume(objective.module, optimizer, scheduler, seed=cfg.seed + 1, total=steps)
    best = best or {"metric": None, "scores": {}, "step": 0, "bad": 0, "stopped": False, "eval_s": 0.0}
    autocast = autocast_dtype(cfg.bf16, device)
    main_metric = task.metrics[0]
    chosen_on = f"a held-out {len(selection['select'])} of the training set's examples" if cfg.select_on == "train" else "the dev split"
    card = Card("bort finetune", str(cfg.model), task.name, settings=settings,  # README.md, with the saved model's metrics
                evaluation=f"Selection metrics (on {chosen_on}; the scored split's metrics replace them when training ends)")

    clock, window = Clock(state.elapsed), []
    bar = tqdm(total=steps, initial=state.step, desc=f"finetune {task.name}", unit="step", disable=not cfg.progress)

    def on_step(st: TrainState, loss: float) -> bool:
        """Every step: progress. Every evaluation: selection metrics, the log, the best model, a checkpoint."""
        st.elapsed = clock()
        window.append(loss)
        run.trained(st, loss, epoch=st.step / per_epoch)
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4f}", **({main_metric: f"{best['metric']:.4f}"} if best["metric"] is not None else {}))
        if st.step % eval_every and st.step != steps:
            return False
        t0 = time.time()
        scores = dev_metrics(task, model, select, pad_id=tokenizer.pad_token_id, batch_size=cfg.eval_batch_size, autocast=autocast, loss=True)
        losses = {k: scores.pop(k) for k in [k for k in scores if k.startswith("loss")]}  # tracked, not selection metrics
        best["eval_s"] += time.time() - t0
        st.elapsed = clock()  # the evaluation is in both elapsed and eval_s, so train_s = elapsed − eval_s never counts it
        run.log({"step": st.step, "epoch": round(st.step / per_epoch, 3), "train_loss": sum(window) / len(window),
                 **{f"select_{k}": v for k, v in scores.items()}, "train_s": st.elapsed - best["eval_s"]})
        run.track({**scores, **losses}, st.step, prefix="eval/")
        window.clear()
        if best["metric"] is None or scores[main_metric] > best["metric"]:
            best.update(metric=scores[main_metric], scores=scores, step=st.step, bad=0)
            save_model_folder(run.model, heads.stock_copy(model), tokenizer, card=replace(card, metrics=scores))
        else:
            best["bad"] += 1
        best["stopped"] = bool(cfg.patience) and best["bad"] >= cfg.patience
        run.save(objective.module, optimizer, scheduler, st, extra=best)
        return best["stopped"]

    def kept() -> str:
        return f"the best model so far (step {best['step']}) is in {run.model}" if best["metric"] is not None else "nothing was saved"

    with run.diverged(kept):
        try:
            if not best["stopped"]:
                objective.use_stored_views(out, features, limit_gb=cfg.teacher_cache_gb, autocast=autocast)  # counted in train_s
                train(objective.module, objective, task_batch_stream(features, cfg.batch_size, tokenizer.pad_token_id, cfg.seed, start=state.step,
                                                                     group_by_length=cfg.group_by_length),
                      steps=steps, optim=cfg.optim, autocast=autocast, state=state, optimizer=optimizer, scheduler=scheduler, on_step=on_step)
        finally:
            bar.close()

    # The dev split, read now (under --select-on train), scored once by the best model re-loaded as saved (the stock layout any
    # user loads), with the trivial baseline beside it; one's own --test-file predicted (and scored, where it has labels).
    t0 = time.time()
    best_model = heads.load(run.model, task).to(device)
    dev = select if cfg.select_on == "dev" else {split: (examples, encode(task, examples, tokenizer, cfg.max_seq_len))
                                                 for split, examples in ((s, data.split(s)) for s in task.dev_splits)}
    metrics = dev_metrics(task, best_model, dev, pad_id=tokenizer.pad_token_id, batch_size=cfg.eval_batch_size)
    leaked = scored_inputs(augmented, [ex for examples, _ in dev.values() for ex in examples])
    scored, base, test = "dev", baselines(task, train_all, {split: examples for split, (examples, _) in dev.items()}), None
    if data.own is not None and data.own.test_file is not None:
        test_examples = data.split("test")
        logits = outputs(best_model, encode(task, test_examples, tokenizer, cfg.max_seq_len), batch_size=cfg.eval_batch_size,
                         pad_id=tokenizer.pad_token_id)
        preds = predictions(task, test_examples, logits)
        write_predictions(task, test_examples, preds, out / "predictions" / task.submission)
        if all(ex.label is not None for ex in test_examples):
            test = score(task, test_examples, preds)
            if cfg.select_on == "dev":  # the model was chosen on the validation file: the test file is the honest score
                scored, base = "test", baseline(task, train_all, test_examples)
    result = FinetuneResult(task=task.name, model=str(cfg.model), head=cfg.head, train_examples=len(train_examples), steps=steps,
                            steps_run=state.step, best_step=best["step"], stopped_early=best["stopped"], train_s=state.elapsed - best["eval_s"],
                            dev_evals_s=best["eval_s"], final_eval_s=time.time() - t0, dev=metrics, labels=list(task.labels) or None,
                            baseline=base, select_on=cfg.select_on, select_examples=sum(map(len, selection.values())), selection=best["scores"],
                            scored=scored, test=test,
                            **({"teacher": str(cfg.distill.teacher), "alpha_kd": cfg.distill.alpha_kd, "alpha_gold": cfg.distill.alpha_gold,
                                "temperature": cfg.distill.temperature, "augmented": len(augmented), "augmented_scored": leaked} if teacher else {}))
    result.write(out / REPORT)
    write_eval(out, result)
    scored_on = data.scored(task.dev_splits[0] if scored == "dev" else "test", result.scored_metrics)  # the card's model-index
    replace(card, metrics={**result.scored_metrics, **{f"{k} of the trivial baseline": v for k, v in base.items()}}, scored=scored_on,
            evaluation=f"{scored.capitalize()} metrics (scored once, by the model chosen on {chosen_on}"
                       f"{': optimistic, as it was chosen on them' if cfg.select_on == 'dev' and scored == 'dev' else ''})").write(run.model)
    shutil.rmtree(run.checkpoint, ignore_errors=True)
    stored_views.remove(out)
    return result


__all__ = ["FinetuneConfig", "FinetuneResult", "baselines", "dev_metrics", "finetune", "subset", "write_eval"]
