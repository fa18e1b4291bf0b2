"""ê(ξ): the error surrogate, from n steps of distillation against the teacher (algorithms.md §2).

Every candidate starts from the same seed, sees the same training batches with the same masks,
and is scored on the same fixed held-out masked batches, so ê depends on ξ and θ alone: a
resumed search reproduces it exactly. ê is, over the held-out masked positions, the mean
KL(p_T ‖ p_S) (``kind="kl"``, the default: the excess over the teacher's entropy, 0 for a student
equal to the teacher) or the mean cross-entropy H(p_T, p_S) (``kind="ce"``, the paper's literal
form); with several hyperparameter sets Θ it is the minimum over θ. A candidate starts from
seeded random weights, or (``init="teacher"``) from slices of the teacher, as pretraining may (``"importance"``: the slices
of the teacher's most important FFN units, scored on the first training batches).

With both logit weights 0 and representation terms on (:mod:`bort.training.objectives`), a bare
encoder trains on those terms alone and ê is their weighted held-out value (``error_kind``
``"representation"``): a teacher without an MLM head needs none trained.
"""

from __future__ import annotations

import copy
import itertools
import math
from dataclasses import asdict, dataclass, field

import torch
from transformers import AutoModel, PreTrainedModel, PreTrainedTokenizerBase

from bort.arch import Arch
from bort.data.corpus import PackedCorpus
from bort.data.masking import MaskedBatch, fixed_masked_batches, masked_batch_stream
from bort.errors import BortError, TrainingDiverged
from bort.models.families import family
from bort.models.sentence import Pooling
from bort.models.slices import INITS, SAMPLE_BATCHES, ffn_importance, init_from_teacher, uses_teacher
from bort.models.student import build_student, masked_logits, student_config
from bort.models.teacher import Teacher
from bort.training.hparams import Theta
from bort.training.loop import train
from bort.training.losses import LogitLoss, check_some_weight
from bort.training.mlm_eval import evaluate_mlm, teacher_logprobs
from bort.training.objectives import Distiller, RepresentationLoss, Views, block_inputs, heldout_terms

# The hyperparameters a candidate training's θ may set (``--theta``); the seed is the run's.
THETA_FIELDS = ("lr", "batch_size", "warmup")

# What ê measures against the teacher, and the metric of evaluate_mlm that gives it.
ERROR_KINDS = {"kl": "kd_kl", "ce": "kd_ce"}


@dataclass(frozen=True)
class ErrorSettings:
    """n (``steps``), the seed, Θ, the loss, the size of the held-out set, what ê measures (``kind``) and the candidates' ``init``."""

    steps: int = 50
    seed: int = 0
    thetas: tuple[Theta, ...] = (Theta(),)
    loss: LogitLoss = field(default_factory=LogitLoss)
    eval_sequences: int = 32
    eval_batch_size: int = 16
    teacher_cache_gb: float = 4.0
    kind: str = "kl"
    init: str = "random"
    representation: RepresentationLoss = field(default_factory=RepresentationLoss)

    def __post_init__(self) -> None:
        if self.init not in INITS:
            raise BortError(f"--init must be one of {', '.join(INITS)}, got '{self.init}'")
        if self.kind not in ERROR_KINDS:
            raise BortError(f"--error must be one of {', '.join(ERROR_KINDS)}, got '{self.kind}'")
        if self.steps < 1:
            raise BortError(f"--steps must be at least 1, got {self.steps}")
        check_some_weight(self.loss.weights | self.representation.weights)
        if self.loss.active and self.representation.active:
            raise BortError("ê needs either a logit term (--alpha-mlm, --alpha-kd; e.g. --alpha-mlm 0.1 --alpha-kd 0.5) or, with both of "
                            "those 0, representation terms (--alpha-hidden, --alpha-attn, --alpha-embed), not both kinds")
        if not self.thetas:
            raise BortError("the hyperparameter set Θ is empty: give at least one θ")
        if self.eval_sequences < 1:
            raise BortError("the held-out set needs at least one sequence")

    def fingerprint(self) -> dict:
        """What fixes every ê of a run (stored, and checked when a run resumes)."""
        return {"steps": self.steps, "seed": self.seed, "loss": asdict(self.loss), "eval_sequences": self.eval_sequences,
                "error_kind": self.error_kind, "init": self.init, "representation": asdict(self.representation)}

    @property
    def error_kind(self) -> str:
        """What ê measures: ``kind`` (kl or ce) with a logit term, else ``"representation"``."""
        return self.kind if self.loss.active else "representation"


class ErrorSurrogate:
    """Callable ``(ξ, θ) → ê``; holds the teacher's held-out distribution, computed once.

    It pickles (for worker processes and Ray tasks) once :meth:`prepare` has run: the copy carries
    the n training batches, the held-out batches and the teacher's logits, not the corpus, and
    the teacher model only where its logits do not fit the cache, the student starts from its
    slices, or ê comes from representations.
    """

    def __init__(self, teacher: Teacher, corpus: PackedCorpus, settings: ErrorSettings, *, device: str = "cpu", pooling: Pooling | None = None):
        if len(corpus.heldout) < 1:
            raise BortError("the corpus has no held-out blocks; give more text")
        self.config, self.settings, self.pooling = teacher.config, settings, pooling
        self.teacher_model: PreTrainedModel | None = teacher.model
        self._tokenizer: PreTrainedTokenizerBase | None = teacher.tokenizer
        self._train_blocks: torch.Tensor | None = corpus.train
        self.device = torch.device(device)
        self.eval_batches: list[MaskedBatch] = fixed_masked_batches(
            corpus.heldout, teacher.tokenizer, batch_size=settings.eval_batch_size, max_sequences=settings.eval_sequences, seed=settings.seed
        )
        self.teacher_lp = teacher_logprobs(teacher.model, self.eval_batches) if settings.loss.active else []
        self._batches: dict[int, list[MaskedBatch]] = {}
        self._logit_cache: dict[int, list[torch.Tensor]] = {}
        self._views_cache: dict[tuple, list[Views]] = {}
        self._cached_bytes = 0  # of the teacher's views (ê from representations), within teacher_cache_gb
        self._unit_scores: list[torch.Tensor] | None = None  # --init importance: the teacher's FFN unit scores (:meth:`_units`)

    def _training_batches(self, batch_size: int) -> list[MaskedBatch]:
        """The n training batches of this batch size: the seeded stream's first n, the same for every candidate."""
        if batch_size not in self._batches:
            stream = masked_batch_stream(self._train_blocks, self._tokenizer, batch_size, self.settings.seed)
            self._batches[batch_size] = list(itertools.islice(stream, self.settings.steps))
        return self._batches[batch_size]

    def _units(self) -> list[torch.Tensor] | None:
        """With ``init="importance"``, the teacher's FFN unit scores on the first training batches (of the first θ's batch
        size), computed once; else None (leading slices)."""
        if self.settings.init != "importance":
            return None
        if self._unit_scores is None:
            batches = self._training_batches(self.settings.thetas[0].batch_size)[:SAMPLE_BATCHES]
            self._unit_scores = ffn_importance(self.teacher_model, [block_inputs(b.to(self.device), masked=False) for b in batches])
        return self._unit_scores

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

    def _teacher_views(self, distiller: Distiller, step: int, batch_size: int, ids: torch.Tensor, mask: torch.Tensor) -> Views:
        """The teacher's views (hidden states, Q/K/V, embedding) of training batch ``step``, for ê from representations.

        Like the logits (:meth:`_teacher_logits`), they are computed once per batch and kept in memory
        while they fit in ``teacher_cache_gb``: every candidate of the same batch size, and of the same
        teacher layers (with ``--layer-map uniform`` they depend on the candidate's depth), reads them
        instead of running the teacher, the slowest part of a small candidate's step. Kept in float32,
        so ê is the same whether they were cached or not. Filled as the search goes, per process.
        """
        key = (batch_size, tuple(t for _, t in distiller.pairs), tuple(t for _, t in distiller.qkv_pairs), distiller.loss.alpha_embed > 0)
        cache = self._views_cache.get(key)
        if cache is not None and step < len(cache):
            return cache[step].map(lambda t: t.to(self.device))
        with torch.inference_mode():
            full = distiller.teacher_views(self.teacher_model.base_model, ids, mask)
        views = Views(full.hidden, full.qkv, full.embedding, None).detached()  # leave inference mode, so autograd may use them
        if step == 0 and cache is None:
            size = sum(t.numel() * t.element_size() for t in views.tensors()) * self.settings.steps
            if self._cached_bytes + size <= self.settings.teacher_cache_gb * 2**30:
                cache = self._views_cache[key] = []
                self._cached_bytes += size
        if cache is not None and step == len(cache):
            cache.append(views.map(torch.Tensor.cpu))
        return views

    def _needs_teacher_model(self) -> bool:
        """Whether a training still needs the teacher: it starts from its slices, or its loss needs logits that are not all cached."""
        cached = all(len(self._logit_cache.get(t.batch_size, ())) == self.settings.steps for t in self.settings.thetas)
        return uses_teacher(self.settings.init) or self.settings.representation.active or (self.settings.loss.needs_teacher and not cached)

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
        self._units()
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

    def entropy(self) -> float | None:
        """H(p_T, p_T): the teacher's own mean entropy over the held-out masked positions (None for ê from representations)."""
        if not self.teacher_lp:
            return None
        total = sum(float(-(lp.exp() * lp).sum()) for lp in self.teacher_lp)
        return total / sum(len(lp) for lp in self.teacher_lp)

    def floor(self) -> float:
        """The lowest ê any student can reach: the teacher's entropy for CE (Gibbs), else 0."""
        return self.entropy() if self.settings.error_kind == "ce" else 0.0

    def score(self, model: PreTrainedModel | Distiller) -> float:
        """ê on the fixed held-out batches: of a masked-LM ``model`` (kl, ce), or of a :class:`Distiller` (representation)."""
        if self.settings.error_kind != "representation":
            return evaluate_mlm(model, self.eval_batches, self.teacher_lp)[ERROR_KINDS[self.settings.kind]]
        return float(model.weighted(heldout_terms(model, self.teacher_model.base_model, [block_inputs(b, masked=False) for b in self.eval_batches])))

    def _representation_loss(self, distiller: Distiller, batch: MaskedBatch, step: int, batch_size: int) -> torch.Tensor:
        """The weighted representation terms on training batch ``step``'s original (unmasked) text."""
        ids, mask = block_inputs(batch.to(self.device), masked=False)
        teacher = self._teacher_views(distiller, step, batch_size, ids, mask)
        return distiller.weighted(distiller.terms(distiller(ids, mask), teacher, mask))

    def _distiller(self, arch: Arch) -> Distiller:
        """A bare encoder of shape ``arch`` (seeded, or the teacher's slices) with the projections of the representation terms."""
        s = self.settings
        torch.manual_seed(s.seed)
        encoder = AutoModel.from_config(student_config(self.config, arch), **family(self.config).bare_kwargs())
        if uses_teacher(s.init):
            init_from_teacher(encoder, self.teacher_model.base_model, self._units())
        return Distiller(encoder, self.config, s.representation, self.pooling).to(self.device)

    def __call__(self, arch: Arch, theta: Theta) -> float:
        """Train a fresh student of shape ``arch`` with ``theta`` for n steps and return ê.

        A training that diverges scores ``inf`` (it can never be chosen), so one bad θ does not
        stop the search.
        """
        s = self.settings
        batches = iter(self._training_batches(theta.batch_size))
        step = 0
        if s.error_kind == "representation":
            student = self._distiller(arch)

            def loss_fn(batch: MaskedBatch) -> torch.Tensor:
                nonlocal step
                step += 1
                return self._representation_loss(student, batch, step - 1, theta.batch_size)
        else:
            student = build_student(self.config, arch, seed=s.seed)
            if uses_teacher(s.init):
                init_from_teacher(student, self.teacher_model, self._units())
            student.to(self.device)

            def loss_fn(batch: MaskedBatch) -> torch.Tensor:
                nonlocal step
                batch = batch.to(self.device)
                teacher_logits = self._teacher_logits(step, batch, theta.batch_size) if s.loss.needs_teacher else None
                step += 1
                return s.loss(masked_logits(student, batch.input_ids, batch.positions), batch.targets, teacher_logits)

        torch.manual_seed(s.seed)  # dropout masks
        try:
            train(student, loss_fn, batches, steps=s.steps, optim=theta.optim())
        except TrainingDiverged:
            return math.inf
        return self.score(student)
