"""The pretraining recipe behind ``bort pretrain``, readable top to bottom (algorithms.md §4):

processes → settings → teacher → corpus → student → optimiser (or checkpoint) → train, with
evaluation, checkpoints and progress in one ``on_step`` → the Hugging Face folder and pretrain.json.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel

from bort.arch import Arch
from bort.data.corpus import load_corpus
from bort.data.masking import MaskedBatch, batch_stream, fixed_masked_batches
from bort.distill.distributed import Dist, setup, teardown
from bort.distill.init import init_from_teacher
from bort.errors import BortError, TrainingDiverged
from bort.models.folder import save_model_folder
from bort.models.mlm_head import TEACHER_MLM_DIR, HeadConfig, ensure_mlm_head
from bort.models.student import build_student, masked_logits, student_config
from bort.models.teacher import load_teacher, read_config
from bort.training.checkpoint import load_checkpoint, save_checkpoint
from bort.training.evaluate import evaluate_mlm, teacher_logprobs
from bort.training.loop import OptimConfig, TrainState, autocast_dtype, build_optimizer, train
from bort.training.losses import DistillLoss
from bort.utils import guard_settings, trim_jsonl

CHECKPOINT, METRICS, SETTINGS, REPORT = "checkpoint", "metrics.jsonl", "pretrain_settings.json", "pretrain.json"


@dataclass(frozen=True)
class PretrainConfig:
    """Everything ``bort pretrain`` takes. ``batch_size`` is the global batch of one micro-step."""

    out: Path
    teacher: str = "minilm-l6"
    corpus: str = "builtin"
    student: str | None = None
    arch: Arch | None = None
    init: str = "random"
    loss: DistillLoss = field(default_factory=DistillLoss)
    steps: int = 1000
    batch_size: int = 32
    accumulate: int = 1
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=5e-4, warmup=0.05))
    seq_len: int = 128
    save_every: int = 200
    eval_every: int = 200
    eval_sequences: int = 64
    seed: int = 0
    bf16: str = "auto"
    device: str = "auto"
    head: HeadConfig = field(default_factory=HeadConfig)
    progress: bool = True

    def __post_init__(self) -> None:
        if (self.student is None) == (self.arch is None):
            raise BortError("give the student as exactly one of --student FOLDER (e.g. RUN/best) or --arch D,A,H,I")
        if self.init not in ("random", "teacher"):
            raise BortError(f"--init must be 'random' or 'teacher', got '{self.init}'")
        if self.bf16 not in ("auto", "on", "off"):
            raise BortError(f"--bf16 must be auto, on or off, got '{self.bf16}'")
        if min(self.steps, self.batch_size, self.accumulate, self.save_every, self.eval_every, self.eval_sequences) < 1:
            raise BortError("--steps, --batch-size, --accumulate, --save-every, --eval-every and --eval-sequences must be at least 1")

    def fingerprint(self) -> dict:
        """The settings a resumed run must share with the original (all but progress bars)."""
        d = asdict(self)
        d.pop("progress")
        return json.loads(json.dumps(d, default=str))


def _student_config(cfg: PretrainConfig, teacher_config):
    if cfg.arch is not None:
        return student_config(teacher_config, cfg.arch)
    config = read_config(Path(cfg.student))
    if config.model_type != teacher_config.model_type or config.vocab_size != teacher_config.vocab_size:
        raise BortError(f"student '{cfg.student}' ({config.model_type}, vocabulary {config.vocab_size}) does not match the teacher's family and vocabulary")
    return student_config(teacher_config, Arch.from_config(config))


class _MaskedLM(torch.nn.Module):
    """Masked-position logits as a module, so DistributedDataParallel sees the forward."""

    def __init__(self, model: PreTrainedModel):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        return masked_logits(self.model, input_ids, positions)


def pretrain(cfg: PretrainConfig) -> dict:
    """Distil the teacher into the student; resumes from ``OUT/checkpoint`` when there is one."""
    d = setup(cfg.device)
    try:
        return _pretrain(cfg, d)
    finally:
        teardown(d)


def _pretrain(cfg: PretrainConfig, d: Dist) -> dict:
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise BortError(f"--out '{out}' is a file: give a folder")
    out.mkdir(parents=True, exist_ok=True)
    if d.main:
        guard_settings(out / SETTINGS, cfg.fingerprint(), resuming=(out / CHECKPOINT).is_dir())
    if cfg.batch_size % d.world:
        raise BortError(f"--batch-size {cfg.batch_size} must be divisible by the {d.world} processes")

    # Teacher and corpus. A head-less teacher gets its MLM head once (rank 0), cached in OUT.
    teacher = load_teacher(cfg.teacher, device=d.device)
    teacher.check_seq_len(cfg.seq_len, "--seq-len")
    tok = teacher.tokenizer
    corpus = load_corpus(cfg.corpus, tok, seq_len=cfg.seq_len)
    if d.main:
        teacher = ensure_mlm_head(teacher, corpus, out / TEACHER_MLM_DIR, cfg.head, device=str(d.device))
    d.barrier()
    teacher = ensure_mlm_head(teacher, corpus, out / TEACHER_MLM_DIR, cfg.head, device=str(d.device))

    # Student: random (seeded) or slices of the teacher.
    student = build_student(teacher.config, Arch.from_config(_student_config(cfg, teacher.config)), seed=cfg.seed).to(d.device)
    if cfg.init == "teacher":
        init_from_teacher(student, teacher.model)
    optimizer, scheduler = build_optimizer(student, cfg.optim, cfg.steps)
    state = TrainState()
    if (out / CHECKPOINT).is_dir():
        state, _ = load_checkpoint(out / CHECKPOINT, student, optimizer, scheduler)
        if d.main:
            trim_jsonl(out / METRICS, state.step)
            tqdm.write(f"resuming from step {state.step} of {cfg.steps}", file=sys.stderr)
    else:
        torch.manual_seed(cfg.seed + 1 + d.rank)  # dropout RNG
    model = _MaskedLM(student)
    if d.world > 1:
        model = torch.nn.parallel.DistributedDataParallel(model)

    eval_batches = fixed_masked_batches(corpus.heldout, tok, batch_size=16, max_sequences=cfg.eval_sequences, seed=cfg.seed)
    eval_lp = teacher_logprobs(teacher.model, eval_batches) if d.main else None
    autocast = autocast_dtype(cfg.bf16, d.device)
    per_rank = cfg.batch_size // d.world
    batches = batch_stream(corpus.train, tok, cfg.batch_size, cfg.seed, start=state.step * cfg.accumulate)

    def loss_fn(batch: MaskedBatch) -> torch.Tensor:
        """This rank's shard of the global batch, normalised by the global masked count."""
        rows = slice(d.rank * per_rank, (d.rank + 1) * per_rank)
        shard = MaskedBatch(batch.input_ids[rows], batch.labels[rows])
        count = d.sum(float(shard.positions.sum())) / d.world
        shard = shard.to(d.device)
        teacher_logits = None
        if cfg.loss.needs_teacher:
            with torch.inference_mode():
                teacher_logits = masked_logits(teacher.model, shard.input_ids, shard.positions)
            teacher_logits = teacher_logits.clone()
        return cfg.loss(model(shard.input_ids, shard.positions), shard.targets, teacher_logits, count=count)

    started, first_step, prior = time.time(), state.step, state.elapsed
    tokens_per_step = cfg.batch_size * cfg.accumulate * cfg.seq_len
    bar = tqdm(total=cfg.steps, initial=state.step, desc="pretrain", unit="step", disable=not (cfg.progress and d.main))
    last: dict = {}
    saved = {"step": state.step if (out / CHECKPOINT).is_dir() else None}

    def on_step(st: TrainState, loss: float) -> None:
        st.elapsed = prior + time.time() - started
        rate = (st.step - first_step) * tokens_per_step / max(1e-9, time.time() - started)
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4f}", tok_s=f"{rate:,.0f}")
        if d.main and (st.step % cfg.eval_every == 0 or st.step == cfg.steps):
            last.update(step=st.step, loss=loss, tokens=st.step * tokens_per_step, **evaluate_mlm(student, eval_batches, eval_lp))
            student.train()
            with open(out / METRICS, "a", encoding="utf-8") as f:
                f.write(json.dumps(last) + "\n")
        if st.step % cfg.save_every == 0 or st.step == cfg.steps:
            if d.main:
                save_checkpoint(out / CHECKPOINT, student, optimizer, scheduler, st)
            saved["step"] = st.step
            d.barrier()

    try:
        train(model, loss_fn, batches, steps=cfg.steps, optim=cfg.optim, accumulate=cfg.accumulate, autocast=autocast,
              state=state, optimizer=optimizer, scheduler=scheduler, on_step=on_step)
    except TrainingDiverged as exc:
        kept = "no checkpoint was saved yet" if saved["step"] is None else f"the last good checkpoint (step {saved['step']}) is kept in {out / CHECKPOINT}"
        raise TrainingDiverged(f"{exc}; {kept}") from None
    finally:
        bar.close()

    if d.main and not last:  # resumed a finished run: nothing trained, evaluate what is there
        last.update(evaluate_mlm(student, eval_batches, eval_lp))
    report = {"steps": cfg.steps, "tokens_seen": cfg.steps * tokens_per_step, "wall_s": state.elapsed,
              "world_size": d.world, "bf16": autocast is not None, "arch": Arch.from_config(student.config).asdict(),
              "init": cfg.init, "loss": asdict(cfg.loss), "mlm_accuracy": last.get("mlm_accuracy"), "kd_ce": last.get("kd_ce")}
    if d.main:
        save_model_folder(out, student, tok, {REPORT: json.dumps(report, indent=2)})
    d.barrier()
    return report


__all__ = ["PretrainConfig", "pretrain"]
