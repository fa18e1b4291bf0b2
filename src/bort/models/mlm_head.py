"""Give a teacher without a masked-LM head one (algorithms.md §4; ``bort teacher prepare``).

The head is the family's own (dense → activation → LayerNorm → decoder tied to the word
embeddings, plus a bias). It is trained on the corpus with the whole encoder frozen, so the tied
decoder weight (the word embeddings) stays frozen too: only the transform and the bias learn.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from bort.data.corpus import PackedCorpus
from bort.data.masking import batch_stream, fixed_masked_batches
from bort.errors import BortError
from bort.models.student import mlm_head
from bort.models.teacher import Teacher, load_teacher
from bort.training.evaluate import evaluate_mlm
from bort.training.loop import OptimConfig, train
from bort.utils import atomic_dir, atomic_write_text

REPORT = "bort_teacher.json"
TEACHER_MLM_DIR = "teacher_mlm"  # where a run folder caches its prepared teacher


@dataclass(frozen=True)
class HeadConfig:
    """How the head is trained."""

    steps: int = 200
    batch_size: int = 16
    lr: float = 1e-3
    seed: int = 0
    eval_sequences: int = 64

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.eval_sequences < 1:
            raise BortError("head training needs steps, batch size and eval sequences of at least 1")


def prepare_teacher(teacher: Teacher, corpus: PackedCorpus, out: str | Path, cfg: HeadConfig = HeadConfig()) -> dict:
    """Train the MLM head of ``teacher`` on ``corpus`` and save a complete MLM teacher to ``out``.

    Returns (and writes to ``out/bort_teacher.json``) the held-out MLM accuracy before and after.
    """
    out = Path(out)
    model, tok = teacher.model, teacher.tokenizer
    model.requires_grad_(False)
    head = mlm_head(model)
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

    torch.manual_seed(cfg.seed)
    model.base_model.eval()  # frozen encoder: no dropout
    losses = train(head, loss_fn, batch_stream(corpus.train, tok, cfg.batch_size, cfg.seed), steps=cfg.steps, optim=OptimConfig(lr=cfg.lr, weight_decay=0.0))
    model.eval().requires_grad_(False)
    after = evaluate_mlm(model, eval_batches)["mlm_accuracy"]
    report = {
        "teacher": str(teacher.path),
        "corpus": corpus.source,
        "config": asdict(cfg),
        "mlm_accuracy_before": before,
        "mlm_accuracy": after,
        "final_loss": losses[-1],
        "heldout_sequences": min(cfg.eval_sequences, len(corpus.heldout)),
    }
    with atomic_dir(out) as tmp:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        atomic_write_text(tmp / REPORT, json.dumps(report, indent=2))
    teacher.has_mlm_head = True
    return report


def load_report(folder: Path) -> dict | None:
    """The head-training report of a prepared teacher folder, if it has one."""
    path = Path(folder) / REPORT
    return json.loads(path.read_text()) if path.is_file() else None


def ensure_mlm_head(teacher: Teacher, corpus: PackedCorpus, cache: Path, cfg: HeadConfig, *, device: str = "cpu") -> Teacher:
    """The teacher with a masked-LM head: as it is, or with a head trained once and cached in ``cache``.

    A cached head is reused only if it was trained for this teacher with the same settings.
    """
    if teacher.has_mlm_head:
        return teacher
    report = load_report(cache)
    if report is not None and report["teacher"] == str(teacher.path) and report["config"] == asdict(cfg):
        return load_teacher(cache, device=device)
    report = prepare_teacher(teacher, corpus, cache, cfg)
    tqdm.write(f"trained the teacher's MLM head: held-out MLM accuracy {report['mlm_accuracy']:.3f} (saved in {cache})", file=sys.stderr)
    return teacher
