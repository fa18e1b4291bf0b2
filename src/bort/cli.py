"""The ``bort`` command line: a thin skin over the library API, one verb per pipeline stage.

Every user error surfaces as one line ``bort: error: …`` and exit status 2, with no traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from bort import __version__
from bort.errors import BortError


def _add_corpus(p: argparse.ArgumentParser) -> None:
    p.add_argument("--corpus", default="builtin", help="text file, folder of text files, Hub dataset name[:config], or 'builtin' (default: the Python reference manual's topics, no download)")
    p.add_argument("--seq-len", type=int, default=128, help="tokens per packed sequence (default 128)")


def _add_teacher(p: argparse.ArgumentParser) -> None:
    p.add_argument("--teacher", default="minilm-l6", help="Hugging Face BERT/RoBERTa folder, Hub name, or the alias 'minilm-l6' (default)")


def cmd_extract(args: argparse.Namespace) -> int:
    from bort.models.mlm_head import HeadConfig
    from bort.search.backends import BackendConfig
    from bort.search.recipe import ExtractConfig, extract
    from bort.surrogates.error import Theta, load_thetas
    from bort.surrogates.latency import LatencySettings
    from bort.training.losses import DistillLoss

    thetas = load_thetas(Path(args.theta)) if args.theta else (Theta(lr=args.lr, batch_size=args.batch_size, warmup=args.warmup),)
    cfg = ExtractConfig(
        out=Path(args.out), teacher=args.teacher, corpus=args.corpus, space=args.space, steps=args.steps, epsilon=args.epsilon,
        refine=args.refine, seed=args.seed, seq_len=args.seq_len, thetas=thetas,
        loss=DistillLoss(alpha_mlm=args.alpha_mlm, alpha_kd=args.alpha_kd, temperature=args.temperature),
        eval_sequences=args.eval_sequences,
        latency=LatencySettings(mode=args.latency, batch=args.latency_batch, seq=args.latency_seq, threads=args.threads,
                                dtype=args.latency_dtype, device=args.latency_device, runs=args.latency_runs),
        max_params=args.max_params, max_latency_ms=args.max_latency_ms, head=HeadConfig(steps=args.head_steps, seed=args.seed),
        device=args.device, progress=not args.no_progress,
        backend=BackendConfig(kind=args.backend, workers=args.workers, address=args.address, gpus_per_trial=args.gpus_per_trial,
                              retries=args.retries, threads=args.worker_threads),
    )
    result = extract(cfg)
    b, t = result["best"], result["teacher"]
    print(
        f"best ⟨{b['D']},{b['A']},{b['H']},{b['I']}⟩: W={b['w']:.4g}, {b['params']:,} params ({100 * b['params'] / t['params']:.1f}% of T), "
        f"ê={b['error']:.4f}; trained {result['evaluated']} of {result['space_size']} candidates; wrote {args.out}/result.json and {args.out}/best"
    )
    return 0


def cmd_teacher_prepare(args: argparse.Namespace) -> int:
    from bort.data.corpus import load_corpus
    from bort.models.mlm_head import HeadConfig, prepare_teacher
    from bort.models.teacher import load_teacher

    teacher = load_teacher(args.teacher, device=args.device)
    teacher.check_seq_len(args.seq_len, "--seq-len")
    corpus = load_corpus(args.corpus, teacher.tokenizer, seq_len=args.seq_len)
    if teacher.has_mlm_head and not args.force:
        raise BortError(f"teacher '{args.teacher}' already has an MLM head; add --force to retrain it")
    report = prepare_teacher(teacher, corpus, args.out, HeadConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed))
    print(json.dumps({k: report[k] for k in ("mlm_accuracy_before", "mlm_accuracy", "heldout_sequences")}))
    return 0


def cmd_pretrain(args: argparse.Namespace) -> int:
    from bort.arch import Arch
    from bort.distill.recipe import PretrainConfig, pretrain
    from bort.models.mlm_head import HeadConfig
    from bort.training.loop import OptimConfig
    from bort.training.losses import DistillLoss

    loss = DistillLoss(alpha_mlm=1.0, alpha_kd=0.0) if args.loss == "mlm" else DistillLoss(args.alpha_mlm, args.alpha_kd, args.temperature)
    cfg = PretrainConfig(
        out=Path(args.out), teacher=args.teacher, corpus=args.corpus, student=args.student,
        arch=Arch.parse(args.arch) if args.arch else None, init=args.init, loss=loss, steps=args.steps,
        batch_size=args.batch_size, accumulate=args.accumulate,
        optim=OptimConfig(lr=args.lr, weight_decay=args.weight_decay, warmup=args.warmup, grad_clip=args.grad_clip),
        seq_len=args.seq_len, save_every=args.save_every, eval_every=args.eval_every, eval_sequences=args.eval_sequences,
        seed=args.seed, bf16=args.bf16, device=args.device, head=HeadConfig(steps=args.head_steps, seed=args.seed),
        progress=not args.no_progress,
    )
    report = pretrain(cfg)
    if os.environ.get("RANK", "0") == "0":
        print(json.dumps({k: report[k] for k in ("steps", "tokens_seen", "mlm_accuracy", "kd_ce")}))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bort", description="Extract, pretrain and ship small BERT/RoBERTa models (the Bort method).")
    parser.add_argument("--version", action="version", version=f"bort {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    ex = sub.add_parser("extract", help="find the optimal sub-architecture ⟨D,A,H,I⟩ of a teacher (the FPTAS)",
                        description="Find the optimal sub-architecture of a teacher for size, latency and error (algorithms.md §1-3).")
    _add_teacher(ex)
    _add_corpus(ex)
    ex.add_argument("--out", default="runs/extract", help="run folder; re-running the same command resumes it (default runs/extract)")
    ex.add_argument("--space", default="auto", help="'auto' (from the teacher), 'bort-paper', or a YAML file of value lists D/A/H/I")
    ex.add_argument("--steps", type=int, default=50, help="n: training steps per candidate for ê (default 50)")
    ex.add_argument("--epsilon", type=int, default=8, help="ε: interval size; 1 is exhaustive search (default 8)")
    ex.add_argument("--refine", type=int, default=0, metavar="K", help="also train every member of the K best intervals (default 0)")
    ex.add_argument("--seed", type=int, default=0)
    ex.add_argument("--theta", help="YAML file of training hyperparameter sets Θ (ê is the minimum over them)")
    ex.add_argument("--lr", type=float, default=1e-3, help="learning rate of the single θ when no --theta file (default 1e-3)")
    ex.add_argument("--batch-size", type=int, default=16, help="training batch size of the single θ (default 16)")
    ex.add_argument("--warmup", type=float, default=0.1, help="warm-up fraction of the single θ (default 0.1)")
    ex.add_argument("--alpha-mlm", type=float, default=0.1)
    ex.add_argument("--alpha-kd", type=float, default=0.5)
    ex.add_argument("--temperature", type=float, default=2.0)
    ex.add_argument("--eval-sequences", type=int, default=32, help="held-out sequences that score ê (default 32)")
    ex.add_argument("--latency", choices=("measured", "flops"), default="measured", help="î: wall-clock here (default) or analytic FLOPs")
    ex.add_argument("--latency-batch", type=int, default=1, help="batch size of the latency measurement (not training; default 1)")
    ex.add_argument("--latency-seq", type=int, default=128, help="sequence length of the latency measurement (default 128)")
    ex.add_argument("--threads", type=int, default=1, help="CPU threads of the latency measurement (default 1)")
    ex.add_argument("--latency-dtype", choices=("float32", "bfloat16", "float16"), default="float32")
    ex.add_argument("--latency-device", default="cpu", help="device to measure latency on, e.g. cpu or cuda:0")
    ex.add_argument("--latency-runs", type=int, default=15, help="timed runs per measurement; the median is kept (default 15)")
    ex.add_argument("--max-params", type=int, help="keep only ξ with at most this many parameters")
    ex.add_argument("--max-latency-ms", type=float, help="keep only ξ at most this slow")
    ex.add_argument("--head-steps", type=int, default=200, help="steps to train an MLM head for a teacher without one (default 200)")
    ex.add_argument("--device", default="cpu", help="training device, e.g. cpu or cuda")
    ex.add_argument("--backend", choices=("local", "ray"), default="local",
                    help="where candidates train: local worker processes (default) or a Ray cluster (pip install 'ray>=2.9')")
    ex.add_argument("--workers", type=int, help="local: worker processes (default 1, in-process; with --device cuda one per GPU); "
                    "ray: most trainings in flight (default: as the cluster's resources allow)")
    ex.add_argument("--address", help="ray: the cluster to join, e.g. auto or HEAD_IP:6379 (default: start a local one)")
    ex.add_argument("--gpus-per-trial", type=float, default=0.0, help="ray: GPUs per candidate training, may be fractional (default 0: CPU)")
    ex.add_argument("--worker-threads", type=int, default=1, help="torch threads (and Ray CPUs) per candidate training (default 1)")
    ex.add_argument("--retries", type=int, default=2, help="retries of a training whose worker died (default 2)")
    ex.add_argument("--no-progress", action="store_true", help="no progress bars")
    ex.set_defaults(func=cmd_extract)

    pt = sub.add_parser("pretrain", help="pretrain an extracted architecture by distillation from the teacher",
                        description="Pretrain a student by knowledge distillation from the teacher (algorithms.md §4). "
                        "Run it under `torchrun` or `accelerate launch -m bort pretrain` for data parallelism.")
    _add_teacher(pt)
    _add_corpus(pt)
    pt.add_argument("--out", required=True, help="output folder (a Hugging Face model folder); re-running resumes it")
    who = pt.add_mutually_exclusive_group(required=True)
    who.add_argument("--student", help="a folder with the student's config.json, e.g. RUN/best from bort extract")
    who.add_argument("--arch", help="the student's shape D,A,H,I, e.g. 4,8,768,1024")
    pt.add_argument("--init", choices=("random", "teacher"), default="random", help="random init, or slices of the teacher")
    pt.add_argument("--loss", choices=("kd", "mlm"), default="kd", help="kd: distillation (default); mlm: self-supervised")
    pt.add_argument("--alpha-mlm", type=float, default=0.1)
    pt.add_argument("--alpha-kd", type=float, default=0.5)
    pt.add_argument("--temperature", type=float, default=2.0)
    pt.add_argument("--steps", type=int, default=1000)
    pt.add_argument("--batch-size", type=int, default=32, help="global batch size of one micro-step (default 32)")
    pt.add_argument("--accumulate", type=int, default=1, help="micro-steps per optimiser step (gradient accumulation)")
    pt.add_argument("--lr", type=float, default=5e-4)
    pt.add_argument("--weight-decay", type=float, default=0.01)
    pt.add_argument("--warmup", type=float, default=0.05, help="warm-up fraction of the steps")
    pt.add_argument("--grad-clip", type=float, default=1.0)
    pt.add_argument("--save-every", type=int, default=200, help="checkpoint every K steps")
    pt.add_argument("--eval-every", type=int, default=200, help="evaluate on the held-out slice every K steps")
    pt.add_argument("--eval-sequences", type=int, default=64)
    pt.add_argument("--seed", type=int, default=0)
    pt.add_argument("--bf16", choices=("auto", "on", "off"), default="auto", help="bfloat16 autocast where the hardware has it")
    pt.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    pt.add_argument("--head-steps", type=int, default=200, help="steps to train an MLM head for a teacher without one")
    pt.add_argument("--no-progress", action="store_true")
    pt.set_defaults(func=cmd_pretrain)

    teacher = sub.add_parser("teacher", help="teacher utilities").add_subparsers(dest="teacher_command", required=True, metavar="ACTION")
    tp = teacher.add_parser("prepare", help="train a masked-LM head for a teacher without one (frozen encoder)",
                            description="Train a masked-LM head for a teacher without one, with the encoder frozen (algorithms.md §4).")
    _add_teacher(tp)
    _add_corpus(tp)
    tp.add_argument("--out", required=True, help="folder for the complete MLM teacher")
    tp.add_argument("--steps", type=int, default=200)
    tp.add_argument("--batch-size", type=int, default=16)
    tp.add_argument("--lr", type=float, default=1e-3)
    tp.add_argument("--seed", type=int, default=0)
    tp.add_argument("--device", default="cpu")
    tp.add_argument("--force", action="store_true", help="retrain the head even if the teacher has one")
    tp.set_defaults(func=cmd_teacher_prepare)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``bort`` command."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except BortError as exc:
        print(f"bort: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # permissions, full disk, …: not a bug of ours, so no traceback
        print(f"bort: error: {exc.strerror or exc} ({exc.filename or ''}); check the path and its permissions", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bort: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
