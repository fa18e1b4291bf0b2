"""The fine-tuning recipe behind ``bort finetune``, readable top to bottom (algorithms.md §5):

task splits → tokenizer and features → model with a fresh head → optimiser (or checkpoint) → the
shared training loop, with dev evaluation, the best model, the log and checkpoints in one ``on_step``
→ the best model re-scored as saved → ``eval.json``.

``OUT`` is the Hugging Face folder of the best model so far, beside ``log.jsonl`` (one line per
evaluation), ``finetune_settings.json`` and ``checkpoint/`` (removed when the run finishes).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from bort.errors import BortError, TrainingDiverged
from bort.finetune import heads
from bort.finetune.features import Feature, batch_stream, encode, steps_per_epoch
from bort.finetune.predict import outputs, predictions, score
from bort.finetune.tasks import Example, TaskSpec, get_task, read_split
from bort.models.folder import save_model_folder
from bort.models.teacher import load_tokenizer, position_limit, read_config, resolve_model_path
from bort.training.checkpoint import load_checkpoint, save_checkpoint
from bort.training.loop import OptimConfig, TrainState, autocast_dtype, build_optimizer, train
from bort.utils import atomic_write_text, guard_settings, trim_jsonl

CHECKPOINT, LOG, SETTINGS, EVAL, REPORT = "checkpoint", "log.jsonl", "finetune_settings.json", "eval.json", "finetune.json"


@dataclass(frozen=True)
class FinetuneConfig:
    """Everything ``bort finetune`` takes. ``steps`` (when given) overrides ``epochs``."""

    model: str
    task: str
    data: Path
    out: Path
    epochs: float = 3.0
    steps: int | None = None
    batch_size: int = 32
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=5e-5, weight_decay=0.01, warmup=0.1))
    head: str = "linear"
    max_seq_len: int = 128
    eval_every: int | None = None  # steps between dev evaluations; None: once per epoch
    patience: int = 3  # evaluations without a better dev metric before stopping early; 0: never
    train_examples: int | None = None  # a seeded random subset of the training set (scarce-data studies)
    eval_batch_size: int = 64
    seed: int = 0
    bf16: str = "auto"
    device: str = "auto"
    progress: bool = True

    def __post_init__(self) -> None:
        if self.head not in heads.HEADS:
            raise BortError(f"--head must be one of {', '.join(heads.HEADS)}, got '{self.head}'")
        if not self.epochs > 0 or (self.steps is not None and self.steps < 1):
            raise BortError("--epochs must be positive and --steps at least 1")
        if min(self.batch_size, self.max_seq_len, self.eval_batch_size, self.eval_every or 1, self.train_examples or 1) < 1 or self.patience < 0:
            raise BortError("--batch-size, --max-seq-len, --eval-every and --train-examples must be at least 1, --patience at least 0")

    def fingerprint(self) -> dict:
        """The settings a resumed run must share with the original (all but progress bars)."""
        d = asdict(self)
        d.pop("progress")
        return json.loads(json.dumps(d, default=str))


def resolve_device(name: str) -> torch.device:
    """``auto``: CUDA when present, else the CPU; any other name as it is."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else torch.device(name)


def subset(examples: list[Example], n: int | None, seed: int) -> list[Example]:
    """A seeded random ``n`` of the examples, in their original order (all of them when ``n`` is None)."""
    if n is None or n >= len(examples):
        return examples
    keep = sorted(torch.randperm(len(examples), generator=torch.Generator().manual_seed(seed)).tolist()[:n])
    return [examples[i] for i in keep]


def _digest(examples: Sequence[Example]) -> str:
    return hashlib.sha256(json.dumps([asdict(e) for e in examples], sort_keys=True).encode()).hexdigest()[:16]


def dev_metrics(task: TaskSpec, model, dev: dict[str, tuple[list[Example], list[Feature]]], *, pad_id: int, batch_size: int,
                autocast: torch.dtype | None = None) -> dict[str, float]:
    """The official metrics on every dev split (``split → (examples, their features)``): the first split's
    under their own names, others suffixed (MNLI: ``accuracy`` on matched, ``accuracy_mismatched``)."""
    out: dict[str, float] = {}
    for i, (split, (examples, features)) in enumerate(dev.items()):
        logits = outputs(model, features, batch_size=batch_size, pad_id=pad_id, autocast=autocast)
        suffix = "" if i == 0 else "_" + split.removeprefix("dev_")
        out.update({f"{k}{suffix}": v for k, v in score(task, examples, predictions(task, examples, logits)).items()})
    return out


def finetune(cfg: FinetuneConfig, train_set: list[Example] | None = None) -> dict:
    """Fine-tune ``cfg.model`` on ``cfg.task`` and write the best model to ``cfg.out``; returns its report.

    ``train_set`` replaces the task's training split (Agora trains on grown sets this way). Running
    again resumes from the last evaluation; a finished run returns its report without training.
    """
    task = get_task(cfg.task)
    if not task.dev_splits:
        raise BortError(f"{task.name} has no training data (a diagnostic set): predict it with `bort evaluate` and the model "
                        f"fine-tuned on {'glue/mnli' if task.name == 'glue/ax' else 'superglue/rte'}")
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise BortError(f"--out '{out}' is a file: give a folder")
    out.mkdir(parents=True, exist_ok=True)
    settings = {**cfg.fingerprint(), "train_set": None if train_set is None else _digest(train_set)}
    if (out / EVAL).is_file() and (out / REPORT).is_file():  # finished earlier: nothing to redo
        guard_settings(out / SETTINGS, settings, resuming=True)
        return json.loads((out / REPORT).read_text(encoding="utf-8"))
    guard_settings(out / SETTINGS, settings, resuming=(out / CHECKPOINT).is_dir())

    # Data: the training split (or the given set), every dev split, tokenised once.
    train_examples = subset(train_set if train_set is not None else read_split(task, cfg.data, "train"), cfg.train_examples, cfg.seed)
    dev_examples = {split: read_split(task, cfg.data, split) for split in task.dev_splits}
    path = resolve_model_path(cfg.model)
    limit = position_limit(read_config(path))
    if cfg.max_seq_len > limit:
        raise BortError(f"--max-seq-len {cfg.max_seq_len} is longer than the model's {limit} positions; use at most {limit}")
    tokenizer = load_tokenizer(path)
    features = encode(task, train_examples, tokenizer, cfg.max_seq_len)
    dev = {split: (examples, encode(task, examples, tokenizer, cfg.max_seq_len)) for split, examples in dev_examples.items()}

    # Schedule: epochs or steps; a dev evaluation (and checkpoint) every epoch unless told otherwise.
    per_epoch = steps_per_epoch(len(features), cfg.batch_size)
    steps = cfg.steps or max(1, round(cfg.epochs * per_epoch))
    eval_every = min(cfg.eval_every or per_epoch, steps)

    # Model and optimiser, or the checkpoint of a killed run.
    device = resolve_device(cfg.device)
    model = heads.build(path, task, cfg.head, cfg.max_seq_len, cfg.seed).to(device)
    optimizer, scheduler = build_optimizer(model, cfg.optim, steps)
    state, best = TrainState(), {"metric": None, "step": 0, "bad": 0, "stopped": False, "eval_s": 0.0}
    if (out / CHECKPOINT).is_dir():
        state, best = load_checkpoint(out / CHECKPOINT, model, optimizer, scheduler)
        trim_jsonl(out / LOG, state.step)
        tqdm.write(f"resuming {task.name} from step {state.step} of {steps}", file=sys.stderr)
    else:
        (out / LOG).unlink(missing_ok=True)
        torch.manual_seed(cfg.seed + 1)  # dropout RNG
    autocast = autocast_dtype(cfg.bf16, device)
    main_metric = task.metrics[0]

    def loss_fn(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return model(**{k: v.to(device) for k, v in batch.items()}).loss

    started, prior, window = time.time(), state.elapsed, []
    bar = tqdm(total=steps, initial=state.step, desc=f"finetune {task.name}", unit="step", disable=not cfg.progress)

    def on_step(st: TrainState, loss: float) -> bool:
        """Every step: progress. Every evaluation: dev metrics, the log, the best model, a checkpoint."""
        st.elapsed = prior + time.time() - started
        window.append(loss)
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4f}", **({main_metric: f"{best['metric']:.4f}"} if best["metric"] is not None else {}))
        if st.step % eval_every and st.step != steps:
            return False
        t0 = time.time()
        scores = dev_metrics(task, model, dev, pad_id=tokenizer.pad_token_id, batch_size=cfg.eval_batch_size, autocast=autocast)
        best["eval_s"] += time.time() - t0
        line = {"step": st.step, "epoch": round(st.step / per_epoch, 3), "train_loss": sum(window) / len(window), **scores,
                "train_s": st.elapsed - best["eval_s"]}
        window.clear()
        with open(out / LOG, "a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")
        if best["metric"] is None or scores[main_metric] > best["metric"]:
            best.update(metric=scores[main_metric], step=st.step, bad=0)
            save_model_folder(out, heads.stock_copy(model), tokenizer)
        else:
            best["bad"] += 1
        best["stopped"] = bool(cfg.patience) and best["bad"] >= cfg.patience
        save_checkpoint(out / CHECKPOINT, model, optimizer, scheduler, st, extra=best)
        return best["stopped"]

    try:
        if not best["stopped"]:
            train(model, loss_fn, batch_stream(features, cfg.batch_size, tokenizer.pad_token_id, cfg.seed, start=state.step),
                  steps=steps, optim=cfg.optim, autocast=autocast, state=state, optimizer=optimizer, scheduler=scheduler, on_step=on_step)
    except TrainingDiverged as exc:
        kept = f"the best model so far (step {best['step']}) is in {out}" if best["metric"] is not None else "nothing was saved"
        raise TrainingDiverged(f"{exc}; {kept}") from None
    finally:
        bar.close()

    # The best model, re-loaded as saved (the stock layout any user loads), scores eval.json.
    t0 = time.time()
    metrics = dev_metrics(task, heads.load(out, task).to(device), dev, pad_id=tokenizer.pad_token_id, batch_size=cfg.eval_batch_size)
    report = {"task": task.name, "model": str(cfg.model), "head": cfg.head, "train_examples": len(train_examples), "steps": steps,
              "steps_run": state.step, "best_step": best["step"], "stopped_early": best["stopped"],
              "train_s": state.elapsed - best["eval_s"], "dev_evals_s": best["eval_s"], "final_eval_s": time.time() - t0, "dev": metrics}
    atomic_write_text(out / REPORT, json.dumps(report, indent=2) + "\n")
    atomic_write_text(out / EVAL, json.dumps(metrics, indent=2) + "\n")
    shutil.rmtree(out / CHECKPOINT, ignore_errors=True)
    return report


__all__ = ["FinetuneConfig", "dev_metrics", "finetune"]
