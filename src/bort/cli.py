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


def _add_optim(p: argparse.ArgumentParser, lr: float, warmup: float) -> None:
    p.add_argument("--lr", type=float, default=lr, help=f"peak learning rate (default {lr:g})")
    p.add_argument("--weight-decay", type=float, default=0.01, help="AdamW weight decay, not on biases and LayerNorm (default 0.01)")
    p.add_argument("--warmup", type=float, default=warmup, help=f"warm-up fraction of the steps (default {warmup:g})")
    p.add_argument("--grad-clip", type=float, default=1.0, help="gradient norm clipping; 0 turns it off (default 1.0)")


def _add_run(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bf16", choices=("auto", "on", "off"), default="auto", help="bfloat16 autocast where the hardware has it")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


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


def cmd_finetune(args: argparse.Namespace) -> int:
    from bort.finetune.recipe import FinetuneConfig, finetune
    from bort.training.loop import OptimConfig

    cfg = FinetuneConfig(
        model=args.model, task=args.task, data=Path(args.data), out=Path(args.out), epochs=args.epochs or 3.0, steps=args.steps,
        batch_size=args.batch_size, optim=OptimConfig(lr=args.lr, weight_decay=args.weight_decay, warmup=args.warmup, grad_clip=args.grad_clip),
        head=args.head, max_seq_len=args.max_seq_len, eval_every=args.eval_every, patience=args.patience, train_examples=args.train_examples,
        seed=args.seed, bf16=args.bf16, device=args.device, progress=not args.no_progress,
    )
    if not args.agora:
        report = finetune(cfg)
        print(json.dumps({"task": report["task"], "dev": report["dev"], "best_step": report["best_step"], "out": str(args.out)}))
        return 0
    from bort.agora.recipe import AgoraConfig, agora
    from bort.agora.space import load_space

    result = agora(AgoraConfig(base=cfg, thetas=tuple(load_space(args.agora_space)), labeller=args.labeller, transform=args.transform,
                               infill_model=args.infill_model, variants=args.variants, replay=args.replay, max_rounds=args.max_rounds))
    print(json.dumps({"task": cfg.task, "dev": result["dev"], "rounds": len(result["rounds"]), "best_round": result["best"]["round"],
                      "best_theta": result["best"]["best_theta"], "out": str(args.out)}))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from bort.finetune.evaluate import EvaluateConfig, evaluate

    result = evaluate(EvaluateConfig(model=args.model, task=args.task, data=Path(args.data), split=args.split,
                                     predictions=Path(args.predictions) if args.predictions else None,
                                     batch_size=args.batch_size, max_seq_len=args.max_seq_len, device=args.device))
    print(json.dumps(result["metrics"]))
    for f in result["files"]:
        print(f"wrote {f}", file=sys.stderr)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from bort.export.onnx import ExportConfig, export_onnx

    info = export_onnx(ExportConfig(model=args.model, out=Path(args.out), quantize=args.quantize, opset=args.opset))
    check = info["check"]
    print(f"wrote {args.out} ({info['head']}, {args.quantize}); checked against PyTorch: {check['metric']} {check['error']:.2g} "
          f"(tolerance {check['tolerance']:g}); fused: {', '.join(f'{k} {v}' for k, v in info['fused_operators'].items()) or 'none'}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    import torch

    from bort.export.predict import PredictConfig, format_rows, predict
    from bort.export.runtime import load_predictor

    cfg = PredictConfig(input=args.input, task=args.task, split=args.split, format=args.format, batch_size=args.batch_size, max_seq_len=args.max_seq_len)
    torch.set_num_threads(args.threads)
    rows, metrics = predict(load_predictor(args.model, threads=args.threads), cfg)
    sys.stdout.write(format_rows(rows, args.output_format))
    if metrics is not None:
        print(json.dumps({"metrics": metrics}), file=sys.stderr)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from bort.arch import Arch
    from bort.export.bench import BenchConfig, bench

    cfg = BenchConfig(out=Path(args.out), models=tuple(args.models or ()), archs=tuple(Arch.parse(a) for a in args.arch or ()), teacher=args.teacher,
                      batches=_int_list(args.batch, "--batch"), seq=args.seq, threads=args.threads, runtimes=tuple(args.runtimes.split(",")),
                      warmup=args.warmup, rounds=args.rounds, runs=args.runs)
    doc = bench(cfg)
    first = doc["models"][0]["name"]
    print(f"median latency, and speed-up over {first} on the same runtime:")
    for r in doc["results"]:
        ratio = f"{r['speedup_vs_first']:.2f}×" if r["speedup_vs_first"] else "–"
        print(f"  batch {r['batch']:>3}  {r['runtime']:<10}  {r['model']:<40.40}  {r['median_ms']:9.2f} ms  {ratio}")
    print(f"wrote {args.out}/bench.json, bench.md, bench.png")
    return 0


def _int_list(text: str, option: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(","))
    except ValueError:
        raise BortError(f"{option} '{text}' is not a comma-separated list of integers, e.g. 1,8") from None


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
    _add_optim(pt, lr=5e-4, warmup=0.05)
    pt.add_argument("--save-every", type=int, default=200, help="checkpoint every K steps")
    pt.add_argument("--eval-every", type=int, default=200, help="evaluate on the held-out slice every K steps")
    pt.add_argument("--eval-sequences", type=int, default=64)
    pt.add_argument("--head-steps", type=int, default=200, help="steps to train an MLM head for a teacher without one")
    _add_run(pt)
    pt.set_defaults(func=cmd_pretrain)

    ft = sub.add_parser("finetune", help="fine-tune a model on a GLUE, SuperGLUE or RACE task",
                        description="Fine-tune a BERT/RoBERTa folder on one task with a fresh head (algorithms.md §5); "
                        "keeps the best model on the dev metric. Re-running the same command resumes it.")
    ft.add_argument("--model", required=True, help="Hugging Face BERT/RoBERTa folder (the teacher, a `bort pretrain` output), Hub name or 'minilm-l6'")
    ft.add_argument("--task", required=True, help="e.g. glue/rte, superglue/cb, race/middle")
    ft.add_argument("--data", required=True, help="the task's own folder of the official download, e.g. glue_data/RTE, SuperGLUE/CB, RACE")
    ft.add_argument("--out", required=True, help="output folder: the best model (a Hugging Face folder), eval.json, log.jsonl")
    length = ft.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=float, help="passes over the training set (default 3)")
    length.add_argument("--steps", type=int, help="optimiser steps, instead of --epochs")
    ft.add_argument("--batch-size", type=int, default=32)
    _add_optim(ft, lr=5e-5, warmup=0.1)
    ft.add_argument("--head", choices=("linear", "dense"), default="linear",
                    help="linear: first token → dropout → linear (default); dense: an extra dense + tanh layer first (the CoLA option)")
    ft.add_argument("--max-seq-len", type=int, default=128, help="tokens per input, pairs truncated longest first (default 128)")
    ft.add_argument("--eval-every", type=int, help="steps between dev evaluations and checkpoints (default: one epoch)")
    ft.add_argument("--patience", type=int, default=3, help="stop after this many evaluations without a better dev metric (0: never; default 3)")
    ft.add_argument("--train-examples", type=int, help="train on a seeded random subset of this many examples")
    _add_run(ft)
    ag = ft.add_argument_group("Agora (algorithms.md §6): rounds of hyperparameter search, pruning and new training points")
    ag.add_argument("--agora", action="store_true", help="fine-tune with Agora instead of one run (classification tasks)")
    ag.add_argument("--agora-space", help="YAML file of value lists lr, weight_decay, warmup, batch_size, seed; or a preset: "
                    "'default' (4 sets, for one machine) or 'bort-paper' (the authors' 480)")
    ag.add_argument("--labeller", help="model folder that labels new points (e.g. the fine-tuned teacher); default: the first round's best")
    ag.add_argument("--transform", choices=("mlm-infill", "dropout", "swap"), default="mlm-infill", help="how new inputs are made (default mlm-infill)")
    ag.add_argument("--infill-model", help="masked-LM for mlm-infill (e.g. a prepared teacher); default: --model, if it has an MLM head")
    ag.add_argument("--variants", type=int, default=4, help="new inputs made from each mistaken dev example (default 4)")
    ag.add_argument("--replay", type=int, default=0, metavar="K", help="run each Θ K more times before pruning it (default 0)")
    ag.add_argument("--max-rounds", type=int, help="stop after R rounds (default: until Θ is empty)")
    ft.set_defaults(func=cmd_finetune)

    ev = sub.add_parser("evaluate", help="score a fine-tuned model, or write a leaderboard submission",
                        description="Print a fine-tuned model's official metrics on a split as JSON, and write leaderboard files "
                        "(GLUE <Task>.tsv, SuperGLUE <Task>.jsonl, RACE JSON answers).")
    ev.add_argument("--model", required=True, help="a `bort finetune` output folder")
    ev.add_argument("--task", required=True, help="e.g. glue/rte; glue/ax takes the glue/mnli model, superglue/axb and axg the superglue/rte one")
    ev.add_argument("--data", required=True, help="the task's own folder of the official download")
    ev.add_argument("--split", default="dev", help="dev (default), test, or a task's own split name such as dev_mismatched")
    ev.add_argument("--predictions", help="folder (or file) for the submission; test predictions go to MODEL/predictions/ by default")
    ev.add_argument("--batch-size", type=int, default=64)
    ev.add_argument("--max-seq-len", type=int, help="default: the length the model was fine-tuned with")
    ev.add_argument("--device", default="cpu")
    ev.set_defaults(func=cmd_evaluate)

    xp = sub.add_parser("export", help="export a model to ONNX (fp32 or int8) for fast CPU inference",
                        description="Export a BERT/RoBERTa folder (bare encoder, masked-LM, classification or multiple-choice) to an optimised "
                        "ONNX graph with dynamic batch and sequence axes, checked against PyTorch; the folder also gets the config and tokenizer.")
    xp.add_argument("--model", required=True, help="Hugging Face BERT/RoBERTa folder (e.g. a `bort finetune` output), Hub name or 'minilm-l6'")
    xp.add_argument("--out", required=True, help="output folder: model.onnx, config.json, the tokenizer, export.json")
    xp.add_argument("--quantize", choices=("none", "int8"), default="none", help="int8: dynamic int8 quantisation of the matrix products")
    xp.add_argument("--opset", type=int, default=17, help="ONNX opset, 14..20 (default 17)")
    xp.set_defaults(func=cmd_export)

    pr = sub.add_parser("predict", help="predict labels with an ONNX export or a PyTorch folder",
                        description="Batched predictions with label names, as JSON lines or TSV on standard output.")
    pr.add_argument("--model", required=True, help="a `bort export` folder (ONNX Runtime) or a fine-tuned Hugging Face folder (PyTorch)")
    pr.add_argument("--input", required=True, help="text file (one example per line, a tab between a pair's segments), .tsv with a header, "
                    ".jsonl, '-' for standard input, or with --task the task's data folder")
    pr.add_argument("--task", help="e.g. glue/rte: its label names (default: the model's bort_task), and how to read a task data folder")
    pr.add_argument("--split", default="dev", help="split to read from a task data folder (default dev)")
    pr.add_argument("--format", choices=("auto", "text", "tsv", "jsonl"), default="auto", help="input format (default: by file extension; text otherwise)")
    pr.add_argument("--output-format", choices=("jsonl", "tsv"), default="jsonl")
    pr.add_argument("--batch-size", type=int, default=32)
    pr.add_argument("--max-seq-len", type=int, help="default: the length the model was fine-tuned with, else its position limit (at most 512)")
    pr.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    pr.set_defaults(func=cmd_predict)

    bn = sub.add_parser("bench", help="CPU latency and throughput on PyTorch and ONNX Runtime, fp32/bf16/int8",
                        description="Benchmark models on every runtime that applies (PyTorch fp32 and bf16 autocast, ONNX Runtime fp32 and int8), "
                        "all in one interleaved run; writes OUT/bench.json, bench.md and bench.png.")
    bn.add_argument("--models", nargs="+", metavar="MODEL", help="PyTorch folders (exported on the fly into OUT/onnx/) or `bort export` folders")
    bn.add_argument("--arch", action="append", metavar="D,A,H,I", help="also a random-weight encoder of this shape (repeatable)")
    bn.add_argument("--teacher", help="family of the --arch models: a model folder or 'minilm-l6' (default: BERT, vocabulary 30,522)")
    bn.add_argument("--batch", default="1,8", help="batch sizes, comma-separated (default 1,8)")
    bn.add_argument("--seq", type=int, default=128, help="sequence length (default 128)")
    bn.add_argument("--threads", type=int, default=1, help="CPU threads of every runtime (default 1)")
    bn.add_argument("--runtimes", default="torch-fp32,torch-bf16,onnx-fp32,onnx-int8", help="comma-separated subset (default: all)")
    bn.add_argument("--warmup", type=int, default=2, help="untimed calls per model and runtime (default 2)")
    bn.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    bn.add_argument("--runs", type=int, default=3, help="timed calls per model and runtime in each round (default 3)")
    bn.add_argument("--out", default="runs/bench", help="output folder (default runs/bench)")
    bn.set_defaults(func=cmd_bench)

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
