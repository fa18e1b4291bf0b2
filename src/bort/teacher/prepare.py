"""Give a teacher without a masked-LM head one (algorithms.md §4; ``bort teacher prepare``).

The head is the family's own (dense → activation → LayerNorm → decoder tied to the word
embeddings, plus a bias). It is trained on the corpus with the whole encoder frozen, so the tied
decoder weight (the word embeddings) stays frozen too: only the transform and the bias learn.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from bort.data.corpus import CORPUS, SEQ_LEN, PackedCorpus, load_corpus
from bort.data.masking import fixed_masked_batches, masked_batch_stream
from bort.errors import BortError
from bort.models.card import Card
from bort.models.loading import TEACHER, strip_remote_code
from bort.models.student import mlm_head
from bort.models.teacher import Teacher, load_teacher
from bort.options import opt
from bort.records import Record
from bort.shared import DEVICE, PROGRESS, check_out, output_files, resolve_device
from bort.training.loop import OptimConfig, train
from bort.training.mlm_eval import evaluate_mlm

REPORT = "bort_teacher.json"
TEACHER_MLM_DIR = "teacher_mlm"  # where a run folder caches its prepared teacher


@dataclass(frozen=True)
class HeadConfig:
    """How the head is trained."""

    steps: int = field(default=200, metadata=opt("steps to train the masked-LM head"))
    batch_size: int = field(default=16, metadata=opt("batch size of the head training"))
    lr: float = field(default=1e-3, metadata=opt("learning rate of the head training"))
    seed: int = field(default=0, metadata=opt("seed of the head training and its held-out batches"))
    eval_sequences: int = field(default=64, metadata=opt("held-out sequences that score the head", cli=False))

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.eval_sequences < 1:
            raise BortError("head training needs steps, batch size and eval sequences of at least 1")


@dataclass(frozen=True)
class HeadReport(Record):
    """``bort_teacher.json``: what the head was trained for and on, and the held-out MLM accuracy before and after."""

    teacher: str
    corpus: str
    config: dict
    mlm_accuracy_before: float
    mlm_accuracy: float
    final_loss: float
    heldout_sequences: int


@torch.no_grad()
def _seeded_init(head: torch.nn.Module, model, seed: int) -> None:
    """Initialise a fresh head from ``seed``: ``from_pretrained`` drew it from the global RNG, which differs between
    processes, so two runs (or a run and its resume) would otherwise train different heads. The decoder weight is the
    word-embedding matrix (tied) and is left alone."""
    torch.manual_seed(seed)
    tied = model.get_output_embeddings().weight
    for module in head.modules():
        if isinstance(module, torch.nn.Linear) and module.weight is not tied:
            module.weight.normal_(std=model.config.initializer_range)
            if module.bias is not None:
                module.bias.zero_()
        elif isinstance(module, torch.nn.LayerNorm):
            module.weight.fill_(1.0)
            module.bias.zero_()
    for name, param in head.named_parameters():
        if name.split(".")[-1] == "bias" and param is not tied and param.ndim == 1 and param.numel() == tied.shape[0]:
            param.zero_()  # the decoder's output bias


def prepare_teacher(teacher: Teacher, corpus: PackedCorpus, out: str | Path, cfg: HeadConfig = HeadConfig(), *,
                    progress: bool = False) -> HeadReport:
    """Train the MLM head of ``teacher`` on ``corpus`` and save a complete MLM teacher to ``out``.

    Returns (and writes to ``out/bort_teacher.json``) the held-out MLM accuracy before and after.
    ``out`` must be new, empty or a prepared teacher's folder, and not the teacher's own
    (:func:`~bort.training.run.check_out`); it is checked before the head trains. ``progress``:
    a progress bar of the training steps on standard error.
    """
    out = check_out(out, kind="bort teacher prepare", marker=REPORT, inputs=(teacher.path,))
    model, tok = teacher.model, teacher.tokenizer
    model.requires_grad_(False)
    head = mlm_head(model)
    if not teacher.has_mlm_head:
        _seeded_init(head, model, cfg.seed)
    head.requires_grad_(True)
    model.get_output_embeddings().weight.requires_grad_(False)  # tied to the frozen word embeddings
    eval_batches = fixed_masked_batches(corpus.heldout, tok, batch_size=cfg.batch_size, max_sequences=cfg.eval_sequences, seed=cfg.seed)
    before = evaluate_mlm(model, eval_batches)["mlm_accuracy"]
    device = next(model.parameters()).device

    def loss_fn(batch):
        batch = batch.to(device)
        with torch.no_grad():
            hidden = model.base_model(input_ids=batch.input_ids).last_hidden_state[batch.positions]
        return F.cross_entropy(head(hidden), batch.targets)

    def on_step(state, loss: float) -> None:  # returns None: a true value would stop the training
        bar.update()
        bar.set_postfix(loss=f"{loss:.3f}", refresh=False)

    torch.manual_seed(cfg.seed)
    model.base_model.eval()  # frozen encoder: no dropout
    # disable=None: no bar where standard error is not a terminal (a log, a pipe), as well as with --no-progress
    with tqdm(total=cfg.steps, desc="teacher prepare", unit="step", disable=None if progress else True) as bar:
        losses = train(head, loss_fn, masked_batch_stream(corpus.train, tok, cfg.batch_size, cfg.seed), steps=cfg.steps,
                       optim=OptimConfig(lr=cfg.lr, weight_decay=0.0), on_step=on_step)
    model.eval().requires_grad_(False)
    after = evaluate_mlm(model, eval_batches)["mlm_accuracy"]
    report = HeadReport(teacher=str(teacher.path), corpus=corpus.source, config=asdict(cfg), mlm_accuracy_before=before, mlm_accuracy=after,
                        final_loss=losses[-1], heldout_sequences=min(cfg.eval_sequences, len(corpus.heldout)))
    with output_files(out, kind="bort teacher prepare", marker=REPORT, inputs=(teacher.path,)) as tmp:
        strip_remote_code(model.config)  # no remote-code field of the teacher's reaches the prepared folder
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        report.write(tmp / REPORT)
        Card("bort teacher prepare", str(teacher.path), settings={"corpus": corpus.source, **asdict(cfg)}, evaluation="Held-out masked-LM accuracy",
             metrics={"before": before, "after": after}).write(tmp, name=out)
    teacher.has_mlm_head = True
    return report


def load_report(folder: Path) -> HeadReport | None:
    """The head-training report of a prepared teacher folder, if it has one."""
    path = Path(folder) / REPORT
    return HeadReport.read(path) if path.is_file() else None


def ensure_mlm_head(teacher: Teacher, corpus: PackedCorpus, cache: Path, cfg: HeadConfig, *, device: str = "cpu") -> Teacher:
    """The teacher with a masked-LM head: as it is, or with a head trained once and cached in ``cache``.

    A cached head is reused only if it was trained for this teacher with the same settings.
    """
    if teacher.has_mlm_head:
        return teacher
    report = load_report(cache)
    if report is not None and report.teacher == str(teacher.path) and report.config == asdict(cfg):
        return load_teacher(cache, device=device)
    report = prepare_teacher(teacher, corpus, cache, cfg)
    tqdm.write(f"trained the teacher's MLM head: held-out MLM accuracy {report.mlm_accuracy:.3f} (saved in {cache})", file=sys.stderr)
    return teacher


@dataclass(frozen=True)
class PrepareConfig:
    """Everything ``bort teacher prepare`` takes."""

    out: Path = field(metadata=opt("folder for the complete MLM teacher"))
    teacher: str = field(default="minilm-l6", metadata=TEACHER)
    corpus: str = field(default="builtin", metadata=CORPUS)
    seq_len: int = field(default=128, metadata=SEQ_LEN)
    head: HeadConfig = field(default_factory=HeadConfig)
    device: str = field(default="cpu", metadata=DEVICE)
    force: bool = field(default=False, metadata=opt("retrain the head even if the teacher has one"))
    progress: bool = field(default=True, metadata=PROGRESS)


def prepare(cfg: PrepareConfig) -> HeadReport:
    """``bort teacher prepare``: load the teacher and the corpus, and train the teacher's masked-LM head into ``cfg.out``."""
    teacher = load_teacher(cfg.teacher, device=resolve_device(cfg.device))
    teacher.check_seq_len(cfg.seq_len, "--seq-len")
    corpus = load_corpus(cfg.corpus, teacher.tokenizer, seq_len=cfg.seq_len)
    if teacher.has_mlm_head and not cfg.force:
        raise BortError(f"teacher '{cfg.teacher}' already has an MLM head; add --force to retrain it")
    return prepare_teacher(teacher, corpus, cfg.out, cfg.head, progress=cfg.progress)
