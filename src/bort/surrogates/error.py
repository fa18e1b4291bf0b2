"""ê(ξ): the error surrogate, from n steps of distillation against the teacher (algorithms.md §2).

Every candidate starts from the same seed, sees the same training batches with the same masks,
and is scored on the same fixed held-out masked batches, so ê depends on ξ and θ alone: a
resumed search reproduces it exactly. ê is the mean cross-entropy H(p_T, p_S) over the held-out
masked positions; with several hyperparameter sets Θ it is the minimum over θ.
"""

from __future__ import annotations

import copy
import itertools
import math
from dataclasses import asdict, dataclass, field

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from bort.arch import Arch
from bort.data.corpus import PackedCorpus
from bort.data.masking import MaskedBatch, fixed_masked_batches, masked_batch_stream
from bort.errors import BortError, TrainingDiverged
from bort.models.student import build_student, masked_logits
from bort.models.teacher import Teacher
from bort.training.evaluate import evaluate_mlm, teacher_logprobs
from bort.training.hparams import Theta
from bort.training.loop import train
from bort.training.losses import DistillLoss

# The hyperparameters a candidate training's θ may set (``--theta``); the seed is the run's.
THETA_FIELDS = ("lr", "batch_size", "warmup")


@dataclass(frozen=True)
class ErrorSettings:
    """n (``steps``), the seed, Θ, the loss and the size of the held-out set."""

    steps: int = 50
    seed: int = 0
    thetas: tuple[Theta, ...] = (Theta(),)
    loss: DistillLoss = field(default_factory=DistillLoss)
    eval_sequences: int = 32
    eval_batch_size: int = 16
    teacher_cache_gb: float = 4.0

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise BortError(f"--steps must be at least 1, got {self.steps}")
        if not self.loss.active:
            raise BortError("ê needs a logit term: --alpha-mlm and --alpha-kd must not both be 0 (e.g. --alpha-mlm 0.1 --alpha-kd 0.5)")
        if not self.thetas:
            raise BortError("the hyperparameter set Θ is empty: give at least one θ")
        if self.eval_sequences < 1:
            raise BortError("the held-out set needs at least one sequence")

    def fingerprint(self) -> dict:
        """What fixes every ê of a run (stored, and checked when a run resumes)."""
        return {"steps": self.steps, "seed": self.seed, "loss": asdict(self.loss), "eval_sequences": self.eval_sequences}


class ErrorSurrogate:
    """Callable ``(ξ, θ) → ê``; holds the teacher's held-out distribution, computed once.

    It pickles (for worker processes and Ray tasks) once :meth:`prepare` has run: the copy carries
    the n training batches, the held-out batches and the teacher's logits, not the corpus, and
    the teacher model only where its logits do not fit the cache.
    """

    def __init__(self, teacher: Teacher, corpus: PackedCorpus, settings: ErrorSettings, *, device: str = "cpu"):
        if len(corpus.heldout) < 1:
            raise BortError("the corpus has no held-out blocks; give more text")
        self.config, self.settings = teacher.config, settings
        self.teacher_model: PreTrainedModel | None = teacher.model
        self._tokenizer: PreTrainedTokenizerBase | None = teacher.tokenizer
        self._train_blocks: torch.Tensor | None = corpus.train
        self.device = torch.device(device)
        self.eval_batches: list[MaskedBatch] = fixed_masked_batches(
            corpus.heldout, teacher.tokenizer, batch_size=settings.eval_batch_size, max_sequences=settings.eval_sequences, seed=settings.seed
        )
        self.teacher_lp = teacher_logprobs(teacher.model, self.eval_batches)
        self._batches: dict[int, list[MaskedBatch]] = {}
        self._logit_cache: dict[int, list[torch.Tensor]] = {}

    def _training_batches(self, batch_size: int) -> list[MaskedBatch]:
        """The n training batches of this batch size: the seeded stream's first n, the same for every candidate."""
        if batch_size not in self._batches:
            stream = masked_batch_stream(self._train_blocks, self._tokenizer, batch_size, self.settings.seed)
            self._batches[batch_size] = list(itertools.islice(stream, self.settings.steps))
        return self._batches[batch_size]

    def _teacher_logits(self, step: int, batch: MaskedBatch, batch_size: int) -> torch.Tensor:
        """The teacher's logits at the masked positions of training batch ``step``, as float16.

        Every candidate trained with the same batch size sees the same n batches, so the teacher's
        logits are computed once per batch and kept in memory (n batches, not the corpus) while
        they fit in ``teacher_cache_gb``; this removes the teacher forward, the largest cost of a
        candidate training. They are always rounded to float16, cached or not, so ê does not depend
        on whether the cache was used.
        """
        cache = self._logit_cache.setdefault(batch_size, [])
        if step < len(cache):
            return cache[step].to(self.device)
        with torch.inference_mode():
            logits = masked_logits(self.teacher_model, batch.input_ids, batch.positions).to(torch.float16)
        budget = self.settings.teacher_cache_gb * 2**30
        if step == len(cache) and logits.numel() * 2 * self.settings.steps <= budget:
            cache.append(logits.cpu())
        return logits.clone()  # leave inference mode, so autograd may use it

    def _needs_teacher_model(self) -> bool:
        """Whether a training still runs the teacher: its loss needs logits that are not all cached."""
        cached = all(len(self._logit_cache.get(t.batch_size, ())) == self.settings.steps for t in self.settings.thetas)
        return self.settings.loss.needs_teacher and not cached

    def prepare(self) -> ErrorSurrogate:
        """Compute ahead, for every θ's batch size, the n training batches and (within the cache budget) the teacher's logits.

        Workers then share the driver's teacher forwards instead of each repeating them.
        """
        for batch_size in sorted({theta.batch_size for theta in self.settings.thetas}):
            batches = self._training_batches(batch_size)
            for step, batch in enumerate(batches if self.settings.loss.needs_teacher else ()):
                self._teacher_logits(step, batch.to(self.device), batch_size)
                if not self._logit_cache[batch_size]:
                    break  # over the budget: each training computes its own logits
        return self

    def to(self, device: str) -> ErrorSurrogate:
        """Train on ``device`` from now on (a worker's own GPU, say)."""
        self.device = torch.device(device)
        if self.teacher_model is not None:
            self.teacher_model.to(self.device)
        return self

    def __getstate__(self) -> dict:
        if not all(theta.batch_size in self._batches for theta in self.settings.thetas):
            raise RuntimeError("call ErrorSurrogate.prepare() before shipping it to a worker")
        state = {**self.__dict__, "_tokenizer": None, "_train_blocks": None}
        if not self._needs_teacher_model():
            state["teacher_model"] = None
        elif self.teacher_model.device.type != "cpu":
            state["teacher_model"] = copy.deepcopy(self.teacher_model).cpu()  # the worker moves it to its own device
        return state

    def floor(self) -> float:
        """H(p_T, p_T): the teacher's own entropy, the lowest ê any student can reach."""
        total = sum(float(-(lp.exp() * lp).sum()) for lp in self.teacher_lp)
        return total / sum(len(lp) for lp in self.teacher_lp)

    def __call__(self, arch: Arch, theta: Theta) -> float:
        """Train a fresh student of shape ``arch`` with ``theta`` for n steps and return ê.

        A training that diverges scores ``inf`` (it can never be chosen), so one bad θ does not
        stop the search.
        """
        s = self.settings
        student = build_student(self.config, arch, seed=s.seed).to(self.device)
        batches = iter(self._training_batches(theta.batch_size))
        loss = s.loss

        step = 0

        def loss_fn(batch: MaskedBatch) -> torch.Tensor:
            nonlocal step
            batch = batch.to(self.device)
            teacher_logits = self._teacher_logits(step, batch, theta.batch_size) if loss.needs_teacher else None
            step += 1
            return loss(masked_logits(student, batch.input_ids, batch.positions), batch.targets, teacher_logits)

        torch.manual_seed(s.seed)  # dropout masks
        try:
            train(student, loss_fn, batches, steps=s.steps, optim=theta.optim())
        except TrainingDiverged:
            return math.inf
        return evaluate_mlm(student, self.eval_batches, self.teacher_lp)["kd_ce"]
