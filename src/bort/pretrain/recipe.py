"""The pretraining recipe behind ``bort pretrain``, readable top to bottom (algorithms.md §4):

processes → settings → teacher → corpus → student → optimiser (or checkpoint) → train, with
evaluation, checkpoints and progress in one ``on_step`` → the Hugging Face folder and pretrain.json.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm
from transformers import AutoModel, PreTrainedModel

from bort.arch import Arch
from bort.atomic import atomic_write_text
from bort.data.corpus import CORPUS, SEQ_LEN, load_corpus
from bort.data.masking import MaskedBatch, fixed_masked_batches, masked_batch_stream
from bort.data.sentences import SentenceStream, heldout_batches, load_sentences
from bort.errors import BortError
from bort.models.card import Card
from bort.models.families import config_arch
from bort.models.folder import save_model_folder
from bort.models.loading import TEACHER, from_folder, read_config
from bort.models.sentence import read_pooling, sentence_files
from bort.models.slices import INITS, SAMPLE_BATCHES, ffn_importance, init_from_teacher, uses_teacher
from bort.models.student import build_student, mlm_head, student_config
from bort.models.teacher import Teacher, load_teacher
from bort.options import nested, opt
from bort.pretrain.distributed import Dist, setup, teardown
from bort.records import Record
from bort.shared import BF16, DEVICE, LOGGING_EVERY, LOGGING_STEPS, NO_TRACKER, PROGRESS, REPORT_TO, SEED
from bort.teacher.prepare import TEACHER_MLM_DIR, HeadConfig, ensure_mlm_head
from bort.training.loop import OptimConfig, TrainState, autocast_dtype, build_optimizer, train
from bort.training.losses import LogitLoss, check_some_weight
from bort.training.mlm_eval import evaluate_mlm, teacher_logprobs
from bort.training.objectives import Distiller, RepresentationLoss, block_inputs, heldout_terms, short_views
from bort.training.run import Clock, RunFolder, fingerprint
from bort.training.tracking import check_tracking

METRICS, REPORT = "metrics.jsonl", "pretrain.json"


INPUTS = ("blocks", "sentences", "pairs")


@dataclass(frozen=True)
class PretrainConfig:
    """Everything ``bort pretrain`` takes. ``batch_size`` is the global batch of one micro-step."""

    out: Path = field(metadata=opt("output folder (a Hugging Face model folder); re-running resumes it", aliases=("--output_dir",)))
    teacher: str = field(default="minilm-l6", metadata=TEACHER)
    corpus: str = field(default="builtin", metadata=CORPUS)
    student: str | None = field(default=None, metadata=opt("a folder with the student's config.json, e.g. RUN/best from bort extract",
                                                           group="student"))
    arch: Arch | None = field(default=None, metadata=opt("the student's shape D,A,H,I, e.g. 4,8,768,1024", parse=Arch.parse, group="student"))
    init: str = field(default="random", metadata=opt("random init, slices of the teacher (its leading units), or importance: slices that "
                                                     "keep each layer's most important FFN units, scored on the corpus", choices=INITS))
    loss: LogitLoss = field(default_factory=LogitLoss)
    representation: RepresentationLoss = field(default_factory=RepresentationLoss)
    steps: int = field(default=1000, metadata=opt("optimiser steps"))
    batch_size: int = field(default=32, metadata=opt("global batch size of one micro-step"))
    accumulate: int = field(default=1, metadata=opt("micro-steps per optimiser step (gradient accumulation)",
                                                    aliases=("--gradient_accumulation_steps",)))
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=5e-4, warmup=0.05))
    seq_len: int = field(default=128, metadata=SEQ_LEN)
    inputs: str = field(default="blocks", metadata=opt("training inputs: packed blocks of --seq-len tokens, the corpus's sentences, one per "
                                                       "row, or sentence pairs (a and the next sentence, or one from elsewhere), at most "
                                                       "--seq-len tokens (sentences and pairs: representation terms alone; BENCHMARKS §7)",
                                                       choices=INPUTS))
    min_view_len: int | None = field(default=None, metadata=opt("representation terms alone: cut each training block to a random length "
                                                                "between N and --seq-len tokens (log-uniform), as sentence embeddings "
                                                                "are used on short texts (BENCHMARKS §7)", metavar="N"))
    group_by_length: bool = field(default=False, metadata=opt("--inputs sentences or pairs: batches of rows of similar lengths (Trainer's "
                                                              "group_by_length; less padding)", aliases=("--group_by_length",)))
    save_every: int = field(default=200, metadata=opt("checkpoint every K steps"))
    eval_every: int = field(default=200, metadata=opt("evaluate on the held-out slice every K steps"))
    eval_sequences: int = field(default=64, metadata=opt("held-out sequences of the evaluation"))
    seed: int = field(default=0, metadata=SEED)
    bf16: str = field(default="auto", metadata=BF16)
    device: str = field(default="auto", metadata=DEVICE)
    head: HeadConfig = field(default_factory=HeadConfig, metadata=nested(prefix="head-", only=("steps",), inherit={"seed": "seed"}))
    progress: bool = field(default=True, metadata=PROGRESS)
    report_to: tuple[str, ...] = field(default=NO_TRACKER, metadata=REPORT_TO)
    logging_steps: int = field(default=LOGGING_EVERY, metadata=LOGGING_STEPS)

    def __post_init__(self) -> None:
        check_tracking(self)
        if (self.student is None) == (self.arch is None):
            raise BortError("give the student as exactly one of --student FOLDER (e.g. RUN/best) or --arch D,A,H,I")
        if self.init not in INITS:
            raise BortError(f"--init must be one of {', '.join(INITS)}, got '{self.init}'")
        if self.bf16 not in ("auto", "on", "off"):
            raise BortError(f"--bf16 must be auto, on or off, got '{self.bf16}'")
        if min(self.steps, self.batch_size, self.accumulate, self.save_every, self.eval_every, self.eval_sequences) < 1:
            raise BortError("--steps, --batch-size, --accumulate, --save-every, --eval-every and --eval-sequences must be at least 1")
        check_some_weight(self.loss.weights | self.representation.weights)
        if self.min_view_len is not None and (self.loss.active or not 2 <= self.min_view_len <= self.seq_len):
            raise BortError(f"--min-view-len must be between 2 and --seq-len {self.seq_len}, with representation terms alone "
                            f"(--alpha-mlm 0 --alpha-kd 0), got {self.min_view_len}")
        if self.inputs not in INPUTS:
            raise BortError(f"--inputs must be one of {', '.join(INPUTS)}, got '{self.inputs}'")
        if self.inputs != "blocks" and self.loss.active:
            raise BortError(f"--inputs {self.inputs} serves the representation terms alone: add --alpha-mlm 0 --alpha-kd 0, or use --inputs blocks")
        if self.inputs == "blocks" and self.group_by_length:
            raise BortError("--group-by-length batches rows of similar lengths; --inputs blocks are all --seq-len tokens: use it with "
                            "--inputs sentences or pairs (bort compress: --pretrain-inputs), or drop it")
        if self.inputs != "blocks" and self.min_view_len is not None:
            raise BortError("--min-view-len cuts packed blocks: use it with --inputs blocks (bort compress: --pretrain-inputs blocks), or drop it")


@dataclass(frozen=True)
class PretrainResult(Record):
    """``pretrain.json``: the schedule, the wall time, the student and its losses, and the held-out value of every active term."""

    steps: int
    tokens_seen: int
    wall_s: float
    world_size: int
    bf16: bool
    arch: dict[str, int]
    init: str
    loss: dict[str, float]
    mlm_accuracy: float | None
    kd_ce: float | None
    representation: dict = field(default_factory=dict)
    heldout: dict[str, float] = field(default_factory=dict)  # every active term: mlm_accuracy, kd_ce, hidden_mse, attn_kl, embed_distance
    output: str = "masked-lm"  # "masked-lm", or "encoder" (no logit term: a bare encoder, sentence-transformers files carried over)
    min_view_len: int | None = None  # the training blocks cut to random lengths from this many tokens (--min-view-len)
    inputs: str = "blocks"  # "blocks" (packed), "sentences" or "pairs" (one per row, padded)


def _student_config(cfg: PretrainConfig, teacher_config):
    if cfg.arch is not None:
        return student_config(teacher_config, cfg.arch)
    config = read_config(Path(cfg.student))
    if config.model_type != teacher_config.model_type or config.vocab_size != teacher_config.vocab_size:
        raise BortError(f"student '{cfg.student}' ({config.model_type}, vocabulary {config.vocab_size}) does not match the teacher's family and vocabulary")
    return student_config(teacher_config, config_arch(config))


def _sample(cfg: PretrainConfig, corpus, pad_id: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The first few training batches, as ``(input_ids, attention_mask)``: what ``--init importance`` scores the units on."""
    if cfg.inputs != "blocks":
        stream = SentenceStream(corpus.train, cfg.batch_size, cfg.seed, pad_id).batches(start=0)
        return [(ids, mask) for (ids, mask, *_), _ in zip(stream, range(SAMPLE_BATCHES))]
    blocks = corpus.train[: SAMPLE_BATCHES * cfg.batch_size]
    return [(b, torch.ones_like(b)) for b in blocks.split(cfg.batch_size)]


def _student(cfg: PretrainConfig, teacher: Teacher, logits: bool, corpus) -> PreTrainedModel:
    """A masked-LM student (a logit term needs its head) or a bare encoder, random (seeded) or from the teacher's slices (those
    of the most important FFN units on the first training batches with ``--init importance``)."""
    config = _student_config(cfg, teacher.config)
    if logits:
        student, source = build_student(teacher.config, config_arch(config), seed=cfg.seed), teacher.model
    else:  # no head to train or save: the encoder, with its pooler as the teacher's own folder has it
        torch.manual_seed(cfg.seed)
        student = AutoModel.from_config(config)
        student.config.architectures = [type(student).__name__]
        # The teacher's encoder as its folder holds it: with its pooler (a fresh one where the checkpoint has none).
        source = from_folder(AutoModel, teacher.path, new_head=True) if uses_teacher(cfg.init) else None
    if uses_teacher(cfg.init):
        units = ffn_importance(source, _sample(cfg, corpus, teacher.tokenizer.pad_token_id)) if cfg.init == "importance" else None
        init_from_teacher(student, source, units)
    if getattr(student, "pooler", None) is not None:
        student.pooler.requires_grad_(False)  # kept for the folder's loaders; no objective trains it
    return student


@torch.inference_mode()
def _evaluate(distiller: Distiller, teacher: Teacher, batches: list, teacher_lp, cfg: PretrainConfig) -> dict[str, float]:
    """The held-out value of every active term: masked-LM accuracy and H(p_T, p_S) (masked blocks), and the representation
    terms (on the training inputs' kind: blocks, masked where a logit term reads them, or sentences); ``heldout_loss``:
    the training objective, their weighted sum."""
    out = evaluate_mlm(distiller.student, batches, teacher_lp, cfg.loss) if cfg.loss.active else {}
    terms = {}
    if cfg.representation.active:
        inputs = batches if cfg.inputs != "blocks" else [block_inputs(b, cfg.loss.active) for b in batches]
        terms = heldout_terms(distiller, teacher.model.base_model, inputs)
    return {**out, **terms, "heldout_loss": out.pop("logit_loss", 0.0) + (distiller.weighted(terms) if terms else 0.0)}


def pretrain(cfg: PretrainConfig) -> PretrainResult:
    """Distil the teacher into the student; resumes from ``OUT/checkpoint`` when there is one."""
    d = setup(cfg.device)
    try:
        with RunFolder(cfg.out, "pretrain", log=METRICS, main=d.main, report_to=cfg.report_to, logging_steps=cfg.logging_steps,
                       inputs=(cfg.teacher, cfg.corpus, cfg.student)) as run:
            return _pretrain(cfg, d, run)
    finally:
        teardown(d)


def _pretrain(cfg: PretrainConfig, d: Dist, run: RunFolder) -> PretrainResult:
    out = run.out
    if (out / REPORT).is_file():  # finished earlier (pretrain.json is written last): nothing to redo
        run.guard(fingerprint(cfg), resuming=True)
        if d.main:
            shutil.rmtree(run.checkpoint, ignore_errors=True)  # a run killed while removing it
        return PretrainResult.read(out / REPORT)
    run.guard(fingerprint(cfg))
    if cfg.batch_size % d.world:
        raise BortError(f"--batch-size {cfg.batch_size} must be divisible by the {d.world} processes")
    logits, rep = cfg.loss.active, cfg.representation

    # Teacher and corpus. A head-less teacher gets its MLM head (once, on rank 0, cached in OUT) only if a logit term needs it.
    teacher = load_teacher(cfg.teacher, device=d.device)
    source = teacher.path  # its sentence-transformers files, if any, are here (not in the MLM-head cache)
    teacher.check_seq_len(cfg.seq_len, "--seq-len")
    tok = teacher.tokenizer
    sentences = cfg.inputs != "blocks"  # sentences or sentence pairs, one per row
    corpus = load_sentences(cfg.corpus, tok, max_len=cfg.seq_len, pairs=cfg.inputs == "pairs") if sentences else \
        load_corpus(cfg.corpus, tok, seq_len=cfg.seq_len)
    if logits:
        if d.main:
            teacher = ensure_mlm_head(teacher, corpus, out / TEACHER_MLM_DIR, cfg.head, device=str(d.device))
        d.barrier()
        teacher = ensure_mlm_head(teacher, corpus, out / TEACHER_MLM_DIR, cfg.head, device=str(d.device))
    pooling = read_pooling(source)
    if rep.alpha_embed and d.main:
        tqdm.write(f"pretrain: sentence embeddings pooled by {pooling.mode}{', normalised' if pooling.normalize else ''} ({pooling.source})",
                   file=sys.stderr)

    # Student (with the projections of the representation terms), optimiser, or the checkpoint of a killed run.
    student = _student(cfg, teacher, logits, corpus).to(d.device)
    distiller = Distiller(student, teacher.config, rep, pooling).to(d.device)
    optimizer, scheduler = build_optimizer(distiller, cfg.optim, cfg.steps)
    state, _ = run.resume(distiller, optimizer, scheduler, seed=cfg.seed + 1 + d.rank, total=cfg.steps)
    # Relations alone read the last layer's Q/K/V, not the rest of that layer: DDP must expect unused parameters then.
    unused = not (logits or rep.alpha_hidden or rep.alpha_embed)
    model = torch.nn.parallel.DistributedDataParallel(distiller, find_unused_parameters=unused) if d.world > 1 else distiller

    if sentences:
        stream = SentenceStream(corpus.train, cfg.batch_size, cfg.seed, tok.pad_token_id, group_by_length=cfg.group_by_length)
        eval_batches = heldout_batches(corpus.heldout, tok.pad_token_id, batch_size=16, max_sequences=cfg.eval_sequences)
        batches = stream.batches(start=state.step * cfg.accumulate)
    else:
        eval_batches = fixed_masked_batches(corpus.heldout, tok, batch_size=16, max_sequences=cfg.eval_sequences, seed=cfg.seed)
        batches = masked_batch_stream(corpus.train, tok, cfg.batch_size, cfg.seed, start=state.step * cfg.accumulate)
    eval_lp = teacher_logprobs(teacher.model, eval_batches) if d.main and logits else None
    autocast = autocast_dtype(cfg.bf16, d.device)
    per_rank = cfg.batch_size // d.world
    seen = [0]  # tokens of this session, for the progress bar's rate

    def loss_fn(batch: MaskedBatch | tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """This rank's shard of the global batch; the logit terms normalised by the global masked count."""
        rows = slice(d.rank * per_rank, (d.rank + 1) * per_rank)
        seen[0] += int(batch[1].sum()) if sentences else cfg.batch_size * cfg.seq_len  # the global batch, counted on the host
        extra = {}
        if sentences:  # padded sentences (or pairs, with their token types where the tokenizer has them), representation terms alone
            shard, count = None, 0.0
            ids, mask, *types = (t[rows].to(d.device) for t in batch)
            extra = {"token_type_ids": types[0]} if types else {}
        else:
            shard = MaskedBatch(batch.input_ids[rows], batch.labels[rows])
            count = d.sum(float(shard.positions.sum())) / d.world
            shard = shard.to(d.device)
            ids, mask = block_inputs(shard, logits)
        if cfg.min_view_len:
            ids, mask = short_views(ids, cfg.min_view_len, sep_id=tok.sep_token_id, pad_id=tok.pad_token_id, seed=cfg.seed)
        views = model(ids, mask, shard.positions if logits else None, **extra)
        with torch.inference_mode():
            t_views = distiller.teacher_views(teacher.model.base_model, ids, mask, **extra) if rep.active else None
            t_logits = None
            if cfg.loss.needs_teacher:
                last = t_views.last if t_views is not None else teacher.model.base_model(input_ids=ids).last_hidden_state
                t_logits = mlm_head(teacher.model)(last[shard.positions])
        loss = cfg.loss(views.logits, shard.targets, None if t_logits is None else t_logits.clone(), count=count) if logits else 0.0
        if rep.active:
            t_views = t_views.detached()
            loss = loss + distiller.weighted(distiller.terms(views, t_views, mask))
        return loss

    clock = Clock(state.elapsed)

    def tokens(step: int) -> int:
        """The tokens of the first ``step`` optimiser steps (a sentence batch's real tokens; a block's whole length)."""
        return stream.tokens(step * cfg.accumulate) if sentences else step * cfg.batch_size * cfg.accumulate * cfg.seq_len

    bar = tqdm(total=cfg.steps, initial=state.step, desc="pretrain", unit="step", disable=not (cfg.progress and d.main))
    last: dict = {}

    def on_step(st: TrainState, loss: float) -> None:
        st.elapsed = clock()
        run.trained(st, loss)
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4f}", tok_s=f"{seen[0] / max(1e-9, clock.session()):,.0f}")
        if d.main and (st.step % cfg.eval_every == 0 or st.step == cfg.steps):
            heldout = _evaluate(distiller, teacher, eval_batches, eval_lp, cfg)
            last.update(step=st.step, loss=loss, tokens=tokens(st.step), **heldout)
            run.log(last)
            run.track({("loss" if k == "heldout_loss" else k): v for k, v in heldout.items()}, st.step, prefix="eval/")
        if st.step % cfg.save_every == 0 or st.step == cfg.steps:
            run.save(distiller, optimizer, scheduler, st)
            d.barrier()

    with run.diverged():  # names checkpoint/good, saved before the loss began to rise
        try:
            train(model, loss_fn, batches, steps=cfg.steps, optim=cfg.optim, accumulate=cfg.accumulate, autocast=autocast,
                  state=state, optimizer=optimizer, scheduler=scheduler, on_step=on_step)
        finally:
            bar.close()

    if d.main and not last:  # resumed a finished run: nothing trained, evaluate what is there
        last.update(_evaluate(distiller, teacher, eval_batches, eval_lp, cfg))
    heldout = {k: last[k] for k in ("mlm_accuracy", "kd_ce", "hidden_mse", "attn_kl", "embed_distance") if k in last}
    result = PretrainResult(steps=cfg.steps, tokens_seen=tokens(cfg.steps), wall_s=state.elapsed, world_size=d.world,
                            bf16=autocast is not None, arch=config_arch(student.config).asdict(), init=cfg.init, loss=asdict(cfg.loss),
                            mlm_accuracy=last.get("mlm_accuracy"), kd_ce=last.get("kd_ce"), representation=asdict(rep), heldout=heldout,
                            output="masked-lm" if logits else "encoder", min_view_len=cfg.min_view_len, inputs=cfg.inputs)
    if d.main:
        run.model.mkdir(exist_ok=True)
        if not logits:  # an encoder, loaded by SentenceTransformer(OUT/model) as the teacher was (first, so that its card says so)
            for name, text in sentence_files(source).items():
                atomic_write_text(run.model / name, text)
        save_model_folder(run.model, student, tok, card=Card("bort pretrain", str(cfg.teacher), settings=fingerprint(cfg), metrics=heldout,
                                                       evaluation="Held-out metrics"))
        # The report last: it marks the run finished. The checkpoint then goes (optimiser state, twice the model's size): the
        # folder keeps the model and the run's small records, and a finished run is not resumed but returned.
        result.write(out / REPORT)
        shutil.rmtree(run.checkpoint, ignore_errors=True)
    d.barrier()
    return result


__all__ = ["PretrainConfig", "PretrainResult", "pretrain"]
