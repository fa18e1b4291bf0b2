"""Task distillation (TinyBERT's second stage, ``bort finetune --task-teacher``): the student learns a fine-tuned teacher's predictions.

L = α_gold·CE(gold) + α_kd·τ²·KL(p_T^τ ‖ p_S^τ) for classification and multiple choice (the KL over the
choices), α_gold·MSE(gold) + α_kd·MSE(teacher's score) for regression, plus the representation terms
of :mod:`bort.training.objectives` (``--alpha-hidden``, ``--alpha-attn``) against the fine-tuned teacher.

- The teacher's outputs on the training inputs are computed once and kept in ``OUT/teacher_outputs.safetensors``,
  keyed by the teacher and the inputs, so every epoch and a resumed run read them instead of running it.
  They are stored as log-probabilities: log_softmax(log p/τ) = log_softmax(z/τ), so nothing is lost.
- The representation terms need the teacher's hidden states or Q/K/V on every batch: they are computed once too and
  kept in ``OUT/teacher_views/`` while the run lasts (:mod:`bort.finetune.teacher_views`), or, where they would pass
  ``--teacher-cache-gb``, the teacher runs once per training step (its encoder only); the student's views come from the
  same forward that gives its logits (hooks and ``output_hidden_states``).
- An input without a gold label (a new one of ``--augment``) takes the teacher's prediction as its gold
  label: its argmax, or its score (regression). Not in TinyBERT, which trains on the KD term alone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file

from bort.atomic import atomic_file
from bort.errors import BortError
from bort.finetune.teacher_views import CachedViews, teacher_views
from bort.models.families import family
from bort.models.loading import head_of, load_tokenizer, model_files, position_limit, read_config, resolve_model_path
from bort.options import nested, opt
from bort.tasks import heads
from bort.tasks.features import Feature, encode
from bort.tasks.registry import Example, TaskSpec
from bort.tasks.scoring import outputs
from bort.training.losses import ALPHA_KD, TEMPERATURE, LogitLoss, check_some_weight
from bort.training.objectives import Distiller, RepresentationLoss

STORE = "teacher_outputs.safetensors"
_PROBE = "Bort's Teacher, checked: 42 Tokens!"  # cased, with punctuation and digits: tells tokenizers apart beyond their vocabularies
_TINY = torch.finfo(torch.float64).tiny  # a soft label that underflowed to 0 reads back as this probability


@dataclass(frozen=True)
class TaskDistill:
    """``--task-teacher`` and the weights of the task-distillation loss, in pretraining's convention (docs/design.md): each
    term has its own weight, ``--alpha-kd`` that of the teacher's predictions (α_kd·τ²·KL at temperature τ; the squared
    error to its score for regression) and ``--alpha-gold`` that of the gold labels. α_kd 1 and no gold term (the teacher's
    predictions alone, as in TinyBERT's second stage) by measurement: docs/BENCHMARKS.md §9; τ = 1 is not measured yet."""

    teacher: str | None = field(default=None, metadata=opt("fine-tuned model of the same task (e.g. a `bort finetune` output): "
                                                           "the student also learns its predictions", flag="--task-teacher",
                                                           old_flag="--teacher"))
    alpha_kd: float = field(default=1.0, metadata=opt(f"{ALPHA_KD} (BENCHMARKS §9)"))
    alpha_gold: float = field(default=0.0, metadata=opt("weight of the loss to the gold labels beside the teacher's term (cross-entropy; "
                                                        "squared error for regression)"))
    temperature: float = field(default=1.0, metadata=opt(TEMPERATURE))
    representation: RepresentationLoss = field(default_factory=RepresentationLoss,
                                               metadata=nested(only=("alpha_hidden", "alpha_attn", "layer_map", "attn_layers")))

    def __post_init__(self) -> None:
        if not (self.alpha_kd >= 0 and self.alpha_gold >= 0 and self.temperature > 0):
            raise BortError(f"--alpha-kd and --alpha-gold must be 0 or more and --temperature positive, got {self.alpha_kd}, "
                            f"{self.alpha_gold} and {self.temperature}")
        if self.teacher:
            rep = self.representation
            check_some_weight({"--alpha-kd": self.alpha_kd, "--alpha-gold": self.alpha_gold, "--alpha-hidden": rep.alpha_hidden,
                               "--alpha-attn": rep.alpha_attn})

    def former_mix_note(self, prefix: str = "--") -> str | None:
        """The one-line notice for an α_kd below 1 without a gold term: before issue 37, --alpha-kd α also weighed the gold
        labels by 1 − α; now each term has its own weight. ``prefix``: how the verb spells the flags (compress: ``--task-``)."""
        if 0 < self.alpha_kd < 1 and not self.alpha_gold:
            return (f"{prefix}alpha-kd {self.alpha_kd:g} weighs the teacher's term alone; for the former mix with the gold labels add "
                    f"{prefix}alpha-gold {1 - self.alpha_kd:g}")
        return None


def _kind(task: TaskSpec) -> str:
    return {"classification": "a classification", "regression": "a regression", "multiple_choice": "a multiple-choice"}[task.kind]


class TaskTeacher:
    """A fine-tuned teacher of ``task``, checked against the student (``student``: its folder): the model in
    inference mode on ``device``, and what it predicts."""

    def __init__(self, name: str, task: TaskSpec, student: Path, *, device: torch.device, max_len: int, batch_size: int) -> None:
        self.path, self.task, self.max_len, self.batch_size = resolve_model_path(name), task, max_len, batch_size
        config = read_config(self.path)
        where = f"--task-teacher '{name}'"
        head = head_of(config).kind
        regression = head == "classification" and (config.problem_type == "regression" or config.num_labels == 1)
        if head not in ("classification", "multiple_choice"):
            raise BortError(f"{where} has no task head (a {head.replace('_', '-')} model): give a model fine-tuned on {task.name}")
        if (head == "multiple_choice") != (task.kind == "multiple_choice"):
            has = "a multiple-choice head" if head == "multiple_choice" else "a sequence-classification head"
            raise BortError(f"{where} has {has} but {task.name} is {_kind(task)} task: give a teacher fine-tuned on {task.name}")
        if regression != (task.kind == "regression"):
            raise BortError(f"{where} is {'a regression' if regression else 'a classification'} model but {task.name} is "
                            f"{_kind(task)} task: give a teacher fine-tuned on {task.name}")
        if task.kind == "classification":
            names = tuple(config.id2label[i] for i in range(config.num_labels))
            if names != task.labels:
                raise BortError(f"{where} predicts the labels ({', '.join(names)}) but {task.name} has ({', '.join(task.labels)}): "
                                f"give a teacher fine-tuned on {task.name}")
        self.tokenizer, mine = load_tokenizer(self.path), load_tokenizer(student)
        if self.tokenizer.get_vocab() != mine.get_vocab() or self.tokenizer(_PROBE)["input_ids"] != mine(_PROBE)["input_ids"]:
            raise BortError(f"{where} has another tokenizer than --model '{student}': task distillation needs the same tokens "
                            "(give a teacher of the student's family, e.g. the one it was distilled from)")
        if max_len > position_limit(config):
            raise BortError(f"--max-seq-len {max_len} is longer than the teacher's {position_limit(config)} positions")
        self.model = heads.load(self.path, task).to(device).requires_grad_(False)

    @property
    def identity(self) -> str:
        """The teacher's folder and the size and time of its files: what keys its stored outputs."""
        files = [(f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in model_files(self.path)]
        return f"{self.path.resolve()} {files}"

    def targets(self, features: Sequence[Feature]) -> torch.Tensor:
        """What the student learns from the teacher on ``features``: ``[n, labels or choices]`` log-probabilities, or ``[n, 1]`` scores."""
        logits = outputs(self.model, features, batch_size=self.batch_size, pad_id=self.tokenizer.pad_token_id)
        return logits.unsqueeze(-1) if self.task.kind == "regression" else F.log_softmax(logits, dim=-1)

    def soft_labels(self, examples: Sequence[Example]) -> list:
        """The teacher's soft labels: probabilities per label (as float64, so that they read back as the same
        log-probabilities), or the score (regression)."""
        out = self.targets(encode(self.task, examples, self.tokenizer, self.max_len))
        return out.squeeze(-1).tolist() if self.task.kind == "regression" else out.double().exp().tolist()

    def key(self, features: Sequence[Feature], *extra) -> str:
        """A digest of the teacher, the inputs ``features`` and ``extra``: what keys what is stored of its outputs on them."""
        digest = hashlib.sha256(self.identity.encode())
        for f in features:
            digest.update(repr((f.input_ids, f.token_type_ids)).encode())
        for e in extra:
            digest.update(repr(e).encode())
        return digest.hexdigest()

    def stored_targets(self, folder: Path, features: Sequence[Feature]) -> list[Feature]:
        """``features`` with the teacher's targets, computed once and kept in ``folder/teacher_outputs.safetensors``."""
        key, path = self.key(features), Path(folder) / STORE
        targets = None
        if path.is_file():
            with safe_open(str(path), framework="pt") as stored:
                targets = stored.get_tensor("targets") if (stored.metadata() or {}).get("key") == key else None
        if targets is None:
            targets = self.targets(features)
            with atomic_file(path) as tmp:
                save_file({"targets": targets.contiguous()}, str(tmp), metadata={"key": key})
        return [replace(f, teacher=tuple(row)) for f, row in zip(features, targets.tolist())]


def from_soft(task: TaskSpec, soft) -> tuple[str | float, tuple[float, ...]]:
    """A soft label (of :meth:`TaskTeacher.soft_labels`) → the gold label it stands for (the argmax's name, or
    the score) and the teacher target it gives (log-probabilities, or the score)."""
    if task.kind == "regression":
        return float(soft), (float(soft),)
    p = torch.tensor(soft, dtype=torch.float64)
    return task.labels[int(p.argmax())], tuple(p.clamp_min(_TINY).log().float().tolist())


class Objective:
    """The loss of one fine-tuning run, and ``module``: what trains and is checkpointed (the task model, or a
    :class:`~bort.training.objectives.Distiller` holding it and the projections of its representation terms)."""

    def __init__(self, model: torch.nn.Module, task: TaskSpec, cfg: TaskDistill, teacher: TaskTeacher | None, device: torch.device) -> None:
        self.model, self.task, self.cfg, self.teacher, self.device = model, task, cfg, teacher, device
        self.kd = LogitLoss(alpha_mlm=0.0, alpha_kd=cfg.alpha_kd, temperature=cfg.temperature) if teacher and cfg.alpha_kd else None
        rep = cfg.representation
        self.distiller = Distiller(model, teacher.model.config, rep, None).to(device) if teacher and rep.active else None
        self.module = self.distiller or model
        self.views: CachedViews | None = None  # the teacher's views of the training inputs, where stored (use_stored_views)

    def use_stored_views(self, folder: Path, features: Sequence[Feature], *, limit_gb: float, autocast: torch.dtype | None) -> bool:
        """Read the teacher's views of ``features`` (the training stream's, by position) from ``folder`` (computed there now
        or by the killed run) instead of running the teacher on each step; False where they would pass ``limit_gb``."""
        if self.distiller is None or limit_gb <= 0:
            return False
        fam = family(self.model.config)
        key = self.teacher.key(features, self.distiller.pairs, self.distiller.qkv_pairs, autocast, self.device.type)
        self.views = teacher_views(folder, key, self.distiller, self.teacher.model.base_model, features, limit_gb=limit_gb,
                                   batch_size=self.teacher.batch_size, pad_id=self.teacher.tokenizer.pad_token_id,
                                   token_types=fam.token_types, autocast=autocast, device=self.device)
        return self.views is not None

    def __call__(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The batch's loss: the model's own (gold labels) alone without a teacher, else the task-distillation loss."""
        index = batch.get("index")  # the features' positions in the training stream (stored teacher views)
        batch = {k: v.to(self.device) for k, v in family(self.model.config).inputs(batch).items() if k != "index"}  # (one family)
        target = batch.pop("teacher", None)
        if self.teacher is None:
            return self.model(**batch).loss
        alpha = self.cfg.alpha_kd
        out, terms = (self.model(**batch), 0.0) if self.distiller is None else self._with_representations(batch, index)
        logits = out.logits.float()
        if not alpha:
            kd = 0.0
        elif self.task.kind == "regression":
            kd = alpha * F.mse_loss(logits.view(-1), target.view(-1))
        else:
            kd = self.kd(logits, batch["labels"], target)  # α_kd·τ²·KL, averaged over the examples
        return self.cfg.alpha_gold * out.loss + kd + terms

    def _with_representations(self, batch: dict[str, torch.Tensor], index: torch.Tensor | None) -> tuple[object, torch.Tensor]:
        """The student's output and the weighted representation terms, from one student forward and the teacher's views (stored,
        or one teacher forward)."""
        types = {k: v for k, v in batch.items() if k == "token_type_ids"}  # none for a family without token types
        views = self.distiller(batch["input_ids"], batch["attention_mask"], **types, labels=batch["labels"])
        rows = {k: v.view(-1, v.shape[-1]) for k, v in batch.items() if k != "labels"}  # multiple choice: one row per choice
        if self.views is not None and index is not None:
            theirs = self.views.batch(index, rows["input_ids"].shape[1], self.device)
        else:
            with torch.inference_mode():
                theirs = self.distiller.teacher_views(self.teacher.model.base_model, rows["input_ids"], rows["attention_mask"],
                                                      **{k: rows[k] for k in types}).detached()
        terms = self.distiller.terms(views, theirs, rows["attention_mask"])
        return views.output, self.distiller.weighted(terms)
