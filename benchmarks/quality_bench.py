"""Issue 15's headline: the share of the teacher's GLUE dev score a student keeps, fine-tuned three ways.

    python benchmarks/quality_bench.py --student d3=FOLDER [--student fast=FOLDER] [--tasks cola,sst2,mrpc,stsb,rte]

For each task: the teacher is fine-tuned on it (OUT/teacher/<task>); then every student is fine-tuned on the
same examples and epochs in three forms: ``plain`` (gold labels only), ``kd`` (+ task distillation from the
fine-tuned teacher, ``--alpha-kd``) and ``kd+aug`` (+ ``--augment K`` new inputs per example, labelled by the
teacher). Every run is a resumable ``bort finetune`` under OUT/<model>/<form>/<task>, so a killed benchmark
picks up where it stopped. Latency: each model fine-tuned on the last task, exported to int8 ONNX (its fastest
path here) and timed with ``bort bench`` beside HF eager fp32, all in one interleaved run.
Writes OUT/summary.json and OUT/summary.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
from dataclasses import replace
from datetime import date
from pathlib import Path

import torch
from common import GLUE, GLUE_FOLDERS, OUT, glue_score

from bort.bench.recipe import BenchConfig, bench
from bort.finetune.augment import Augment
from bort.finetune.recipe import FinetuneConfig, finetune
from bort.finetune.task_distill import TaskDistill
from bort.training.loop import OptimConfig
from bort.training.objectives import RepresentationLoss

FORMS = ("plain", "kd", "kd+aug")


def config(source: str, task: str, out: Path, args, *, lr: float, form: str = "plain") -> FinetuneConfig:
    """One ``bort finetune`` of the protocol; ``form`` adds the fine-tuned teacher's predictions and new inputs."""
    cfg = FinetuneConfig(model=source, task=f"glue/{task}", data=GLUE / GLUE_FOLDERS[task], out=out, epochs=args.epochs,
                         train_examples=None if task in args.full_tasks.split(",") else args.max_train, batch_size=args.batch_size,
                         optim=OptimConfig(lr=lr, weight_decay=0.01, warmup=0.1), progress=False, seed=args.seed,
                         # another --seed trains on seed 0's subsets, the teachers' (None is seed 0's: older folders resume)
                         data_seed=0 if args.seed else None)
    if form == "plain":
        return cfg
    representation = RepresentationLoss(alpha_hidden=args.alpha_hidden, alpha_attn=args.alpha_attn)
    distill = TaskDistill(teacher=str(teacher_folder(args, task)), alpha_kd=args.alpha_kd, temperature=args.temperature,
                          alpha_gold=1 - args.alpha_kd if args.alpha_gold is None else args.alpha_gold,
                          representation=representation)
    augment = Augment(per_example=args.augment, transform=args.transform, infill_model=args.infill_model) if form == "kd+aug" else Augment()
    return replace(cfg, distill=distill, augment=augment)


def teacher_folder(args, task: str) -> Path:
    """The fine-tuned teacher of ``task``: given (``--teachers DIR/<task>``) or fine-tuned here."""
    return (args.teachers or args.out / "teacher") / task


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--teacher", default="minilm-l6")
    ap.add_argument("--student", action="append", required=True, help="NAME=FOLDER (repeat)")
    ap.add_argument("--tasks", default="cola,sst2,mrpc,stsb,rte")
    ap.add_argument("--full-tasks", default="mrpc,stsb,rte", help="tasks trained on their whole training set ('' for none)")
    ap.add_argument("--teachers", type=Path, default=None, help="DIR/<task>: teachers already fine-tuned with this protocol")
    ap.add_argument("--forms", default=",".join(FORMS))
    ap.add_argument("--epochs", type=float, default=3.0)
    ap.add_argument("--max-train", type=int, default=8000, help="seeded subset size of the tasks besides MRPC, STS-B and RTE")
    ap.add_argument("--lr", type=float, default=1e-4, help="the teacher's learning rate")
    ap.add_argument("--student-lr", type=float, default=None, help="the students' learning rate (default: --lr)")
    ap.add_argument("--alpha-kd", type=float, default=0.5)
    ap.add_argument("--alpha-gold", type=float, default=None, help="the gold labels' weight (default 1 − α_kd: the mix BENCHMARKS §9 measured)")
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--alpha-hidden", type=float, default=0.0, help="the task distillation's hidden-state term")
    ap.add_argument("--alpha-attn", type=float, default=0.0, help="the task distillation's attention-relation term")
    ap.add_argument("--augment", type=int, default=4)
    ap.add_argument("--transform", default="mlm-infill")
    ap.add_argument("--infill-model", default=None, help="masked-LM for mlm-infill (MiniLM has none: a `bort teacher prepare` output)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0, help="every run's seed (initialisation, batches, dropout, new inputs); "
                    "the subsets of --max-train stay seed 0's")
    ap.add_argument("--out", type=Path, default=OUT / "quality")
    ap.add_argument("--no-latency", action="store_true", help="skip the closing latency run (its milliseconds mean little "
                    "beside other jobs; the dev scores do not depend on the load)")
    args = ap.parse_args()
    if not GLUE.is_dir():
        raise SystemExit(f"the shared GLUE data is not at {GLUE}; nothing to benchmark")
    torch.set_num_threads(args.threads)
    students = dict(s.split("=", 1) for s in args.student)
    tasks, forms = args.tasks.split(","), args.forms.split(",")
    student_lr = args.student_lr or args.lr
    dev: dict = {}
    for task in tasks:
        teacher = teacher_folder(args, task)
        if args.teachers is None:
            finetune(config(args.teacher, task, teacher, args, lr=args.lr))
        dev[task] = {"teacher": json.loads((teacher / "eval.json").read_text())["metrics"]}
        for name, source in students.items():
            for form in forms:
                key = f"{name} {form}"
                report = finetune(config(source, task, args.out / name / form / task, args, lr=student_lr, form=form))
                dev[task][key] = report.dev | {"augmented": report.augmented}
                print(f"{task:5s} {key:16s} {report.dev} ({report.augmented} new inputs, {report.train_s:.0f} s)", flush=True)
    results = {"date": str(date.today()), "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch threads {args.threads}",
               "settings": {k: str(v) for k, v in vars(args).items()}, "dev": dev,
               "latency": None if args.no_latency else latency(args, students, tasks[-1], forms[-1])}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "summary.md").write_text(markdown(results, tasks))
    print((args.out / "summary.md").read_text())


def latency(args, students: dict[str, str], task: str, form: str) -> dict:
    """Batch-1 latency (128 tokens) of each model fine-tuned on ``task``: HF eager fp32 and int8 ONNX (exported on
    the fly by ``bort bench``), one interleaved run."""
    folders = {"teacher": teacher_folder(args, task)} | {n: args.out / n / form / task for n in students}
    result = bench(BenchConfig(out=args.out / "bench", models=tuple(str(f) for f in folders.values()), batches=(1,),
                               threads=args.threads, runtimes=("torch-fp32", "onnx-int8"), rounds=5, runs=5))
    return {"models": {str(f): n for n, f in folders.items()}, "rows": result.results}


def markdown(r: dict, tasks: list[str]) -> str:
    """One row per task, one column per model and form: the dev score (×100) and the share of the teacher's kept."""
    names = list(r["dev"][tasks[0]])
    rows = ["| task | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    avg = {n: statistics.mean(glue_score({k: v for k, v in r["dev"][t][n].items() if k != "augmented"}) for t in tasks) for n in names}
    for t in tasks:
        cells = []
        for n in names:
            score = glue_score({k: v for k, v in r["dev"][t][n].items() if k != "augmented"})
            teacher = glue_score(r["dev"][t]["teacher"])
            cells.append(f"{score:.1f} ({100 * score / teacher:.0f}%)" if teacher > 0 else f"{score:.1f}")
        rows.append(f"| {t} | " + " | ".join(cells) + " |")
    rows.append("| **average** | " + " | ".join(f"**{avg[n]:.1f}** ({100 * avg[n] / avg['teacher']:.1f}%)" for n in names) + " |")
    return "\n".join(rows) + "\n" + ("\n" + latency_table(r["latency"]) if r["latency"] else "")


def latency_table(lat: dict) -> str:
    """Batch-1 latency per model and runtime, with the speed-ups against the teacher on the same runtime and on HF eager fp32."""
    ms = {(lat["models"][row["model"]], row["runtime"]): row["median_ms"] for row in lat["rows"]}
    eager = ms[("teacher", "torch-fp32")]
    rows = ["| model | runtime | ms | × teacher, same runtime | × teacher on HF eager fp32 |", "|---|---|---:|---:|---:|"]
    for (name, runtime), value in ms.items():
        rows.append(f"| {name} | {runtime} | {value:.2f} | {ms[('teacher', runtime)] / value:.2f} | {eager / value:.2f} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    main()
