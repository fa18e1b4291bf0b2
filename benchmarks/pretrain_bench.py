"""Benchmarks of `bort pretrain` (issue 3): throughput against a Hugging Face Trainer distillation
loop, KD against self-supervised MLM, and the cost per million tokens with random or teacher init.

    python benchmarks/pretrain_bench.py [--student benchmarks/out/extract/eps8/best] [--steps 300]

The teacher is minilm-l6 with the MLM head trained by benchmarks/extract_fptas.py (or trained here
if absent); the corpus is the shared WikiText text. Everything runs in one process, the compared
runs interleaved, so the ratios see the same machine load. Writes OUT/summary.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from bort.pretrain import PretrainResult

ROOT = Path(__file__).resolve().parents[1]
WIKITEXT = ROOT.parent / "shared" / "data" / "corpus" / "wikitext-103"


def hf_trainer_tokens_per_s(teacher_dir: Path, student_cfg, corpus, steps: int, batch: int, bf16: bool, seed: int) -> float:
    """The plain way: a transformers.Trainer whose compute_loss runs both models on every position."""
    from transformers import AutoModelForMaskedLM, DataCollatorForLanguageModeling, Trainer, TrainingArguments

    teacher = AutoModelForMaskedLM.from_pretrained(teacher_dir).eval().requires_grad_(False)
    tok = __import__("transformers").AutoTokenizer.from_pretrained(teacher_dir)
    torch.manual_seed(seed)
    student = AutoModelForMaskedLM.from_config(student_cfg)

    class DistillTrainer(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            labels = inputs.pop("labels")
            logits = model(**inputs).logits
            with torch.no_grad():
                t_logits = teacher(**inputs).logits
            m = labels != -100
            s, t = logits[m].float(), t_logits[m].float()
            kl = F.kl_div(F.log_softmax(s / 2, -1), F.log_softmax(t / 2, -1), log_target=True, reduction="batchmean")
            return 0.1 * F.cross_entropy(s, labels[m]) + 0.5 * 4 * kl

    data = [{"input_ids": row} for row in corpus.train.tolist()]
    args = TrainingArguments(output_dir=str(ROOT / "benchmarks" / "out" / "hf_tmp"), per_device_train_batch_size=batch, max_steps=steps,
                             learning_rate=5e-4, warmup_steps=max(1, steps // 20), weight_decay=0.01, max_grad_norm=1.0, logging_steps=10**6,
                             save_strategy="no", report_to=[], use_cpu=True, bf16=bf16, seed=seed, dataloader_num_workers=0,
                             disable_tqdm=True)
    trainer = DistillTrainer(model=student, args=args, train_dataset=data,
                             data_collator=DataCollatorForLanguageModeling(tok, mlm_probability=0.15))
    start = time.time()
    trainer.train()
    return steps * batch * corpus.seq_len / (time.time() - start)


def bort_run(out: Path, *, teacher: str, student: str, steps: int, batch: int, loss: str = "kd", init: str = "random",
             bf16: str = "auto", eval_every: int | None = None, seed: int = 0) -> tuple[PretrainResult, float]:
    """One `bort pretrain` through the library entry; returns its report and the training wall time."""
    import shutil

    from bort.pretrain import PretrainConfig, pretrain
    from bort.training.losses import LogitLoss

    shutil.rmtree(out, ignore_errors=True)
    cfg = PretrainConfig(out=out, teacher=teacher, corpus=str(WIKITEXT), student=student, steps=steps, batch_size=batch,
                         loss=LogitLoss(1.0, 0.0) if loss == "mlm" else LogitLoss(), init=init, bf16=bf16,
                         eval_every=eval_every or steps, save_every=steps, eval_sequences=128, seed=seed, device="cpu", progress=False)
    start = time.time()
    report = pretrain(cfg)
    return report, time.time() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "pretrain")
    ap.add_argument("--teacher", type=Path, default=ROOT / "benchmarks" / "out" / "extract" / "minilm-mlm")
    ap.add_argument("--student", type=Path, default=ROOT / "benchmarks" / "out" / "extract" / "eps8" / "best")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--throughput-steps", type=int, default=20)
    args = ap.parse_args()
    if not WIKITEXT.is_dir():
        sys.exit(f"skipped: {WIKITEXT} is absent (the shared data folder is needed)")
    if not (args.teacher / "bort_teacher.json").is_file() or not (args.student / "config.json").is_file():
        sys.exit("run benchmarks/extract_fptas.py first: it prepares the MiniLM MLM teacher and extracts the student")
    args.out.mkdir(parents=True, exist_ok=True)
    from bort.data.corpus import load_corpus
    from bort.models.loading import read_config
    from bort.models.teacher import load_teacher

    teacher = load_teacher(args.teacher)
    corpus = load_corpus(str(WIKITEXT), teacher.tokenizer, seq_len=128)
    student_cfg = read_config(args.student)
    tokens = args.throughput_steps * args.batch * 128

    # 1. Throughput, interleaved twice: bort (its defaults: bf16 where supported) against the Trainer loop in fp32 and bf16.
    tput: dict[str, list[float]] = {"bort": [], "bort_fp32": [], "hf_trainer_fp32": [], "hf_trainer_bf16": []}
    for rep in range(2):
        for name in tput:
            if name.startswith("bort"):
                _, wall = bort_run(args.out / "tput", teacher=str(args.teacher), student=str(args.student), steps=args.throughput_steps,
                                   batch=args.batch, bf16="off" if name == "bort_fp32" else "auto")
                tput[name].append(tokens / wall)
            else:
                tput[name].append(hf_trainer_tokens_per_s(args.teacher, student_cfg, corpus, args.throughput_steps, args.batch, name.endswith("bf16"), rep))
    med = {k: statistics.median(v) for k, v in tput.items()}
    throughput = {"tokens_per_s": med, "ratio_bort_vs_hf_fp32": med["bort"] / med["hf_trainer_fp32"],
                  "ratio_bort_vs_hf_bf16": med["bort"] / med["hf_trainer_bf16"], "ratio_bort_fp32_vs_hf_fp32": med["bort_fp32"] / med["hf_trainer_fp32"],
                  "note": "bort's wall time includes its setup (teacher load, tokenising the corpus) and one final evaluation and checkpoint"}

    # 2. KD against MLM at equal steps, then MLM at KD's wall time; 3. cost with random and teacher init.
    runs = {}
    for name, kw in (("kd_random", {}), ("mlm_random", {"loss": "mlm"}), ("kd_teacher_init", {"init": "teacher"})):
        report, wall = bort_run(args.out / name, teacher=str(args.teacher), student=str(args.student), steps=args.steps, batch=args.batch,
                                eval_every=max(1, args.steps // 5), **kw)
        runs[name] = {"steps": args.steps, "wall_s": wall, "mlm_accuracy": report.mlm_accuracy, "kd_ce": report.kd_ce,
                      "s_per_million_tokens": wall / (report.tokens_seen / 1e6)}
    equal_wall_steps = int(args.steps * runs["kd_random"]["wall_s"] / runs["mlm_random"]["wall_s"])
    report, wall = bort_run(args.out / "mlm_equal_wall", teacher=str(args.teacher), student=str(args.student), steps=equal_wall_steps,
                            batch=args.batch, loss="mlm", eval_every=max(1, equal_wall_steps // 5))
    runs["mlm_equal_wall"] = {"steps": equal_wall_steps, "wall_s": wall, "mlm_accuracy": report.mlm_accuracy, "kd_ce": report.kd_ce,
                              "s_per_million_tokens": wall / (report.tokens_seen / 1e6)}

    summary = {"date": str(date.today()), "machine": f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores, torch threads {torch.get_num_threads()}",
               "student": str(args.student), "student_arch": [student_cfg.num_hidden_layers, student_cfg.num_attention_heads, student_cfg.hidden_size,
                                                              student_cfg.intermediate_size],
               "batch": args.batch, "seq_len": 128, "throughput": throughput, "runs": runs}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
