"""The scoreboard (issue 35): the share of the teacher's skill above chance that each student keeps, on its int8 export,
per task and seed, every model chosen on data it is not scored on (algorithms.md §4d).

    python benchmarks/scoreboard.py --students fast=2,12,384,768 d3=3,12,384,1536 [--tasks cola,sst2,mrpc,stsb,rte,qnli,pros_cons] [--seeds 0,1,2]
    python benchmarks/scoreboard.py --students "attn2=FOLDER --task-attn-layers 2" --lr-from fast ...   (a lever, issue 38)

A student given as a shape D,A,H,I is first pretrained as `bort compress` pretrains (teacher slices, the hidden-state and
sentence-embedding terms, the corpus's sentences, its learning rate), for ``--pretrain-steps`` on ``--corpus``, into
students/<name> beside ``--runs`` (resumable; a finished one is read back); ``pick:X`` is `bort compress`'s own student at
X× (its extraction's pick, pretrained by it; its sentence embeddings and speed-ups are written to
results/agnostic/<name>.json, or agnostic-<board>/ for another teacher's board); a folder is taken as it is. Flags of
`bort compress` after the shape or folder change that student's recipe as they change compress's (e.g. ``--pretrain-inputs
pairs``, ``--init importance``, ``--transform pair-mix``, ``--augment-min-inputs 20000``, ``--task-attn-layers 2``); its results record them.

Per (task, seed):
- **teacher** (all-MiniLM-L6-v2 with a fresh `linear` head): one `bort finetune` per learning rate of ``--lrs``, up to
  ``--teacher-epochs`` epochs with early stopping (``--patience``), every run choosing its epoch on a seeded held-out slice of
  the training set (``--select-on train``); the learning rate of the best selection score wins; its dev split, read once,
  is T. The trivial baseline B (the training set's majority class; 0 for correlations and MCC) and the paired bootstrap
  interval of T − B are recorded with it.
- **each student**: `bort compress`'s task distillation from that teacher (its α, τ, representation terms, 4 new inputs per
  example by its ``--transform``: word dropout until session 12, ``auto`` since, which re-pairs pairs; batches of similar
  lengths since session 13, random before; up to its 5 student epochs), over the same learning rates, chosen the same
  way; the winner is exported to int8 ONNX, and the int8 export (S), its fp32 folder and the teacher are scored on dev
  beside B, with
  ``kept_over_baseline`` = (S − B)/(T − B) and ``kept`` = S/T and their 1,000-draw paired bootstrap intervals.
Seeds outside ``--grid-seeds`` skip the grid: they reuse the learning rate the grid seed chose (recorded as such); with
``--lr-from NAME`` the other students skip it on the grid seeds too, taking NAME's choice (a lever measured at the rate of
the recipe it changes, for a third of the CPU).
The training sets are capped at ``--max-train`` examples (a seeded subset, the seed's own); teacher and students of a
seed share the subset and the selection slice.

``--speed`` then times each seed-0 student's int8 export beside the teacher's (both on ONNX Runtime int8, one thread, in
interleaved rounds): at a fixed 128 tokens and on the task's own dev texts as they come, at batch 1 and 32
(benchmarks/results/speed/<task>-<model>.json); run it on a quiet machine.

Every finished fine-tuning of a grid writes benchmarks/results/trials/<task>/<model>-seed<k>-lr<lr>.json (a later session,
perhaps on another machine, reads it back instead of training again, and re-trains only the chosen one), and every
finished (task, seed, model) writes benchmarks/results/scoreboard/<task>/<model>-seed<k>.json (metrics, baselines,
settings, every trial, commit, CPU model and flags, times): commit them as they land. The runs themselves live under
benchmarks/out/scoreboard/ (resumable: a killed run picks up where it stopped). `benchmarks/render.py` turns the results
into docs/BENCHMARKS.md's tables.
"""

from __future__ import annotations

import argparse
import json
import shlex
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from common import GLUE, OUT, PRETRAIN_STEPS, RESULTS, SHARED, provenance, write_result

from bort.arch import Arch
from bort.bench.recipe import BenchConfig, bench
from bort.compress import CompressConfig, compress
from bort.compress.recipe import pretrain_config, stage_common
from bort.compress.score import metric_name, score_task, scoring_files
from bort.evaluate.recipe import EvaluateConfig, split_predictions
from bort.export.onnx import ExportConfig, export_onnx
from bort.finetune.augment import Augment
from bort.finetune.recipe import FinetuneConfig, finetune, subset
from bort.finetune.task_distill import TaskDistill
from bort.models.families import config_arch
from bort.models.loading import read_config, resolve_model_path
from bort.options import add_options, build, parse_args
from bort.pretrain.recipe import pretrain
from bort.shared import resolve_device
from bort.tasks.kept import baseline, baseline_predictions, kept, task_score
from bort.tasks.source import OwnData, open_task
from bort.training.loop import OptimConfig

RUNS = OUT / "scoreboard" / "runs"
RETRAINED = "retrained.json"  # in a run folder trained again at its recorded rate: its selection and dev scores against the first run's
BOARD = RESULTS / "scoreboard"


@dataclass(frozen=True)
class Job:
    """One task of the scoreboard and where its data lies."""

    name: str
    task: str | None
    data: Path | None = None
    own: OwnData = OwnData()


JOBS = {j.name: j for j in (
    *(Job(k, f"glue/{k}", GLUE / f) for k, f in {"cola": "CoLA", "sst2": "SST-2", "mrpc": "MRPC", "stsb": "STS-B", "rte": "RTE"}.items()),
    Job("qnli", "glue/qnli", SHARED / "qnli-from-dev"),  # QNLI re-split from its dev set (SOURCES.md)
    Job("pros_cons", None, own=OwnData(SHARED / "pros_cons" / "train.csv", SHARED / "pros_cons" / "dev.csv")),
)}


def beside(args, kind: str) -> Path:
    """Where the board's other results go: results/<kind> beside results/scoreboard (MiniLM's), results/<kind>-<board> beside
    another teacher's board (results/scoreboard-mpnet: results/trials-scoreboard-mpnet, …), so that boards never read each
    other's trials."""
    board = args.results.name
    return args.results.parent / (kind if board == "scoreboard" else f"{kind}-{board}")


def _config(source: str, job: Job, out: Path, args, *, lr: float, seed: int, epochs: float, distill: TaskDistill | None = None,
            augment: Augment | None = None, group_by_length: bool = False) -> FinetuneConfig:
    return FinetuneConfig(model=source, out=out, task=job.task, data=job.data, own=job.own, epochs=epochs, train_examples=args.max_train,
                          batch_size=args.batch_size, group_by_length=group_by_length, optim=OptimConfig(lr=lr, weight_decay=0.01, warmup=0.1),
                          patience=args.patience, select_on="train", seed=seed, progress=False, distill=distill or TaskDistill(),
                          augment=augment or Augment())


def _run(args, job: Job, seed: int, name: str, lr: float) -> Path:
    """The folder of one fine-tuning of a grid."""
    return args.runs / f"seed{seed}" / job.name / name / f"lr{lr:g}"


def _retrained(folder: Path) -> dict | None:
    """How a model trained again here (a new machine) compares with its first run's record; None where it is the first run."""
    path = folder / RETRAINED
    return json.loads(path.read_text()) if path.is_file() else None


def _teacher_ready(job: Job, seed: int, args) -> bool:
    """Whether the teacher of (task, seed) is scored and its chosen model is here to distil from."""
    path = args.results / job.name / f"teacher-seed{seed}.json"
    return path.is_file() and (_run(args, job, seed, "teacher", json.loads(path.read_text())["lr"]) / "eval.json").is_file()


def _trial(name: str, source: str, job: Job, seed: int, args, lr: float, epochs: float, *, train: bool = False, **form) -> dict:
    """One fine-tuning of a grid. Its record is committed as it lands (benchmarks/results/trials/), so that a later session,
    perhaps on another machine, reads it back instead of training again; ``train`` re-trains one whose model is not here
    (the chosen one: the seeded run again, which CPU rounding may move a little; retrained.json records by how much)."""
    path = beside(args, "trials") / job.name / f"{name}-seed{seed}-lr{lr:g}.json"
    out = _run(args, job, seed, name, lr)
    if path.is_file() and not train and not (out / "eval.json").is_file():
        return {**json.loads(path.read_text()), "folder": str(out)}  # trained in an earlier session; its model is not here
    started = time.time()
    report = finetune(_config(source, job, out, args, lr=lr, seed=seed, epochs=epochs, **form))
    record = {"lr": lr, "selection": report.selection, "selection_score": task_score(report.selection), "select_examples": report.select_examples,
              "dev": report.dev, "best_step": report.best_step, "steps_run": report.steps_run, "steps": report.steps,
              "stopped_early": report.stopped_early, "train_examples": report.train_examples, "augmented": report.augmented,
              "augmented_scored": report.augmented_scored, "train_s": report.train_s, "wall_s": time.time() - started, "folder": str(out)}
    if path.is_file():  # re-trained here: the seeded run again, near the first (CPU kernels round with the memory layout)
        earlier = json.loads(path.read_text())
        record["retrained"] = {"selection_score_before": earlier["selection_score"], "dev_before": earlier["dev"],
                               "selection_score": record["selection_score"], "dev": record["dev"]}
        (out / RETRAINED).write_text(json.dumps(record["retrained"]))  # beside the model, for the students another process distils
    else:
        write_result(path, {"benchmark": "scoreboard-trial", "model": name, "job": job.name, "seed": seed, **record, **provenance()})
    print(f"  {job.name} seed {seed} {name} lr {lr:g}: selection {record['selection_score']:.4f}, dev {report.dev} "
          f"({report.steps_run}/{report.steps} steps, {report.train_s:.0f} s)", flush=True)
    return record


def _grid(name: str, source: str, job: Job, seed: int, args, lrs: list[float], epochs: float, **form) -> tuple[str, dict]:
    """One fine-tuning per learning rate; the key of the best selection score (the first of equals) and every trial, the chosen
    one's model here."""
    trials = {f"{lr:g}": _trial(name, source, job, seed, args, lr, epochs, **form) for lr in lrs}
    best = max(trials, key=lambda k: trials[k]["selection_score"])
    if not (Path(trials[best]["folder"]) / "eval.json").is_file():
        trials[best] = _trial(name, source, job, seed, args, trials[best]["lr"], epochs, train=True, **form)
    return best, trials


def _lrs(kind: str, job: Job, seed: int, args) -> tuple[list[float], str]:
    """The learning rates to try: the grid on a grid seed, else the one the grid seed chose (and where it was chosen); a student
    other than ``--lr-from``'s takes that one's choice on the grid seeds."""
    borrow = args.lr_from and kind not in ("teacher", args.lr_from)
    if seed in args.grid_seeds and not borrow:
        return args.lrs, f"the best selection score of the grid, seed {seed}"
    grid_seed = seed if seed in args.grid_seeds else args.grid_seeds[0]
    path = args.results / job.name / f"{args.lr_from if borrow else kind}-seed{grid_seed}.json"
    if not path.is_file():
        raise SystemExit(f"{path} is missing: run seed {grid_seed} (a grid seed) of {job.name} first")
    return [json.loads(path.read_text())["lr"]], f"seed {grid_seed}'s grid ({path.name})"


def _settings(args, job: Job, epochs: float) -> dict:
    return {"task": job.task or f"own:{job.name}", "max_train": args.max_train, "batch_size": args.batch_size, "lrs": args.lrs,
            "max_epochs": epochs, "patience": args.patience, "select_on": "train", "select_fraction": FinetuneConfig.select_fraction,
            "grid_seeds": args.grid_seeds, "threads": args.threads}


def teacher(job: Job, seed: int, args) -> dict:
    """The tuned teacher of (task, seed): its result file's record (made now, or read back)."""
    path = args.results / job.name / f"teacher-seed{seed}.json"
    if path.is_file():
        doc = json.loads(path.read_text())
        if not (_run(args, job, seed, "teacher", doc["lr"]) / "eval.json").is_file():
            # scored in an earlier session (perhaps on another machine): its model is trained again here, the seeded run
            # at the chosen rate, for the students to distil; the result file keeps the first run's figures
            retrained = _trial("teacher", args.teacher, job, seed, args, doc["lr"], args.teacher_epochs, train=True)
            doc["trials"][f"{doc['lr']:g}"] = retrained
        return doc
    lrs, chosen_on = _lrs("teacher", job, seed, args)
    started = time.time()
    best, trials = _grid("teacher", args.teacher, job, seed, args, lrs, args.teacher_epochs)
    folder = trials[best]["folder"]
    data = open_task(job.task, job.data, job.own)
    spec = data.spec
    _, splits = split_predictions(EvaluateConfig(model=folder, task=job.task, data=job.data, own=scoring_files(job.own),
                                                 progress=False))
    examples, preds = next(iter(splits.values()))
    train = subset(data.split("train"), args.max_train, seed)
    b = baseline(spec, train, examples)
    k = kept(spec, examples, preds, preds, baseline_predictions(spec, train, examples), seed=seed, baseline_score=task_score(b, spec.metrics))
    doc = {"benchmark": "scoreboard", "model": "teacher", "source": args.teacher, "arch": config_arch(read_config(resolve_model_path(folder))).key,
           "task": spec.name, "job": job.name, "seed": seed, "lr": trials[best]["lr"], "lr_chosen_on": chosen_on, "metric": metric_name(spec.metrics),
           "dev": trials[best]["dev"], "score": k["teacher_score"], "baseline": b, "baseline_score": k["baseline_score"],
           "teacher_minus_baseline_interval": k["teacher_minus_baseline_interval"], "teacher_beats_baseline": k["teacher_beats_baseline"],
           "dev_examples": len(examples), "trials": trials, "settings": _settings(args, job, args.teacher_epochs),
           "wall_s": time.time() - started, **provenance()}
    write_result(path, doc)
    return doc


def student(name: str, source: str, job: Job, seed: int, args, teacher_doc: dict) -> dict:
    """A student of (task, seed), distilled as `bort compress` distils (with its flags), tuned and chosen as the teacher was,
    scored on int8."""
    path = args.results / job.name / f"{name}-seed{seed}.json"
    if path.is_file():
        return json.loads(path.read_text())
    if not teacher_doc["teacher_beats_baseline"]:  # no share of a skill the teacher lacks can be read: the task is left out
        doc = {"benchmark": "scoreboard", "model": name, "source": source, "arch": config_arch(read_config(resolve_model_path(source))).key,
               "task": teacher_doc["task"], "job": job.name, "seed": seed, "skipped": "not trained: the teacher does not beat its baseline",
               "teacher_beats_baseline": False, "teacher_metric": teacher_doc["score"], "baseline_metric": teacher_doc["baseline_score"],
               **dict.fromkeys(("lr", "student_metric", "student_metric_fp32", "kept", "kept_over_baseline", "kept_interval",
                                "kept_over_baseline_interval")), **provenance()}
        write_result(path, doc)
        return doc
    recipe = args.recipes[name]  # bort compress's own task distillation, new inputs and student epochs (or the student's flags')
    lrs, chosen_on = _lrs(name, job, seed, args)
    started = time.time()
    teacher_folder = teacher_doc["trials"][f"{teacher_doc['lr']:g}"]["folder"]
    best, trials = _grid(name, source, job, seed, args, lrs, recipe.student_epochs,
                         distill=replace(recipe.task_distill, teacher=teacher_folder), augment=recipe.augment,
                         group_by_length=recipe.student_grouped)
    folder = Path(trials[best]["folder"])
    export = folder.parent / "export"
    export_onnx(ExportConfig(model=str(folder), out=export, quantize="int8", progress=False))
    entry = score_task(task=job.task, data=job.data, own=job.own, train_examples=args.max_train, seed=seed, scored="dev", teacher=teacher_folder,
                       student=folder, export=export, device="cpu", out=folder.parent / "score")
    spec = open_task(job.task, job.data, job.own).spec
    doc = {"benchmark": "scoreboard", "model": name, "source": source, "arch": config_arch(read_config(resolve_model_path(folder))).key, "task": spec.name,
           "job": job.name, "seed": seed, "lr": trials[best]["lr"], "lr_chosen_on": chosen_on,
           "recipe": {"task_distill": _plain(recipe.task_distill), "augment": _plain(recipe.augment), "max_epochs": recipe.student_epochs,
                      "group_by_length": recipe.student_grouped, "flags": args.flags[name]},
           "pretrain": _pretrain_record(Path(source)),
           **{k: v for k, v in entry.items() if k != "texts"},
           "teacher_lr": teacher_doc["lr"], "teacher_retrained": _retrained(Path(teacher_folder)),
           "trials": trials, "settings": _settings(args, job, recipe.student_epochs),
           "wall_s": time.time() - started, **provenance()}
    write_result(path, doc)
    return doc


def speed(job: Job, name: str, args) -> dict | None:
    """Seed 0's teacher and student ``name`` on int8 ONNX, side by side: fixed length and the task's dev texts, batch 1 and 32."""
    t_path, s_path = args.results / job.name / "teacher-seed0.json", args.results / job.name / f"{name}-seed0.json"
    if not (t_path.is_file() and s_path.is_file()):
        return None
    t, s = json.loads(t_path.read_text()), json.loads(s_path.read_text())
    teacher_folder = Path(t["trials"][f"{t['lr']:g}"]["folder"])
    student_folder = Path(s["trials"][f"{s['lr']:g}"]["folder"])
    teacher_int8 = teacher_folder.parent / "export-int8"
    if not (teacher_int8 / "export.json").is_file():
        export_onnx(ExportConfig(model=str(teacher_folder), out=teacher_int8, quantize="int8", progress=False))
    batches = (1, 32)
    result = bench(BenchConfig(out=student_folder.parent / "speed", models=(str(teacher_int8), str(student_folder.parent / "export")),
                               runtimes=("onnx-int8",), batches=batches, seq=128, threads=args.threads, rounds=5, runs=3,
                               texts=student_folder.parent / "score" / "texts.jsonl", text_batches=batches, max_texts=256, progress=False))
    fixed = {(r["model"], r["batch"]): r["median_ms"] / r["batch"] for r in result.results}
    real = {(r["model"], r["batch"]): r for r in result.real}
    te, st = str(teacher_int8), str(student_folder.parent / "export")
    doc = {"benchmark": "speed", "job": job.name, "model": name, "arch": s["arch"], "texts": result.texts["count"], "threads": args.threads,
           "by_batch": {str(b): {"mean_tokens": real[st, b]["mean_tokens"], "teacher_ms_per_seq": real[te, b]["ms_per_sequence"],
                                 "student_ms_per_seq": real[st, b]["ms_per_sequence"],
                                 "speedup_real": real[te, b]["ms_per_sequence"] / real[st, b]["ms_per_sequence"],
                                 "speedup_fixed": fixed[te, b] / fixed[st, b]} for b in batches},
           "bench": result.to_dict(), **provenance()}
    write_result(beside(args, "speed") / f"{job.name}-{name}.json", doc)
    return doc


def recipe(flags: list[str]) -> CompressConfig:
    """`bort compress`'s config with ``flags`` (its own spelling) applied: a student's recipe."""
    parser = argparse.ArgumentParser(prog="a student's flags")
    add_options(parser, CompressConfig)
    return build(CompressConfig, parse_args(parser, ["--out", str(OUT / "unused"), *flags]))


def pretrained(name: str, spec: str, args) -> str:
    """The student's folder: ``spec`` itself; for a shape D,A,H,I that shape pretrained as `bort compress` pretrains (with
    the student's flags); for ``pick:X``, `bort compress`'s own student at X× (:func:`compress_pick`). Students live beside
    ``--runs`` (``students/``), so that each teacher's scoreboard has its own."""
    if spec.startswith("pick:"):
        return compress_pick(name, float(spec.removeprefix("pick:")), args)
    if "," not in spec:
        return spec
    c = replace(args.recipes[name], corpus=args.corpus, pretrain_steps=args.pretrain_steps, progress=False)
    cfg = pretrain_config(c, args.runs.parent / "students" / name, args.teacher, Arch.parse(spec), str(resolve_device(c.device)),
                          stage_common(c))
    report = pretrain(cfg)
    print(f"student {name} ⟨{spec}⟩: pretrained {report.steps} steps, held-out {report.heldout}", flush=True)
    return str(cfg.out)


def compress_pick(name: str, speedup: float, args) -> str:
    """`bort compress` without a task at ``--min-speedup`` ``speedup`` (and the student's flags): its extraction's pick,
    pretrained for ``--pretrain-steps`` on ``--corpus``, its int8 sentence embeddings scored on STS-B dev beside the teacher's
    and its speed-ups measured (:func:`beside` ``agnostic``/<name>.json: issue 39's task-agnostic row); the pretrained folder
    is the student the tasks distil."""
    cfg = replace(args.recipes[name], out=args.runs.parent / "students" / name, teacher=args.teacher, corpus=args.corpus, min_speedup=speedup,
                  pretrain_steps=args.pretrain_steps, embedding_task="glue/stsb", embedding_data=GLUE / "STS-B", progress=False)
    result = compress(cfg)
    path = beside(args, "agnostic") / f"{name}.json"
    if not path.is_file():
        doc = json.loads((cfg.out / "compress.json").read_text())
        chosen = next(s for s in doc["stages"] if s["name"] == "extract")["result"]
        write_result(path, {"benchmark": "agnostic", "model": name, "teacher": args.teacher, "min_speedup": speedup, "arch": result.arch,
                            "params": chosen["params"], "teacher_params": chosen["teacher_params"], "pretrain_steps": args.pretrain_steps,
                            "corpus": args.corpus, "flags": args.flags[name], "bench_seq": cfg.bench.seq,
                            "student": {k: v for k, v in result.student.items() if k not in ("texts", "by_batch")},
                            "stages": {s["name"]: s["wall_s"] for s in doc["stages"]}, **provenance()})
    print(f"student {name}: bort compress's pick at {speedup:g}× is ⟨{result.arch}⟩", flush=True)
    return str(cfg.out / "pretrain")


def _pretrain_record(folder: Path) -> dict | None:
    """How a student was pretrained: its pretrain.json's steps, objectives, inputs and held-out losses, and its settings."""
    if not (folder / "pretrain.json").is_file():
        return None
    report = json.loads((folder / "pretrain.json").read_text())
    settings = json.loads((folder / "pretrain_settings.json").read_text()) if (folder / "pretrain_settings.json").is_file() else {}
    return {**{k: report.get(k) for k in ("steps", "arch", "init", "representation", "inputs", "heldout", "wall_s")},
            **{k: settings.get(k) for k in ("corpus", "optim", "batch_size", "seq_len", "seed")}}


def _plain(cfg) -> dict:
    from dataclasses import asdict

    return json.loads(json.dumps(asdict(cfg), default=str))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--teacher", default="minilm-l6")
    ap.add_argument("--students", nargs="*", default=[], help="NAME=D,A,H,I (pretrained here), NAME=pick:X (bort compress's pick at X×, "
                    "pretrained by it) or NAME=FOLDER, each optionally followed by flags of bort compress in the same word (none: the "
                    "teachers only)")
    ap.add_argument("--lr-from", default=None, help="a student whose learning rate the others take on the grid seeds too")
    ap.add_argument("--corpus", default=str(SHARED / "corpus" / "wikitext-103"), help="the students' pretraining corpus")
    ap.add_argument("--pretrain-steps", type=int, default=PRETRAIN_STEPS)
    ap.add_argument("--tasks", default=",".join(JOBS))
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--grid-seeds", default="0", help="seeds that search the learning-rate grid; the others reuse its choice")
    ap.add_argument("--lrs", default="3e-5,1e-4,3e-4", help="the learning-rate grid, teacher and students alike")
    ap.add_argument("--teacher-epochs", type=float, default=10.0, help="the teacher's most epochs (early stopping on the selection slice)")
    ap.add_argument("--patience", type=int, default=2)
    ap.add_argument("--max-train", type=int, default=8000, help="seeded subset of a larger training set")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--speed", action="store_true", help="only time seed 0's finished students beside their teacher (a quiet machine)")
    ap.add_argument("--follow", action="store_true", help="train only the students, each (task, seed) once another process has "
                    "scored its teacher and its model is here (trained again where an earlier session scored it); wait for the others")
    ap.add_argument("--results", type=Path, default=BOARD, help="where the result files go (commit them)")
    ap.add_argument("--runs", type=Path, default=RUNS, help="where the fine-tuned models go")
    args = ap.parse_args()
    args.lrs = [float(x) for x in args.lrs.split(",")]
    args.grid_seeds = [int(x) for x in args.grid_seeds.split(",")]
    if not SHARED.is_dir():
        raise SystemExit(f"the shared data is not at {SHARED}; nothing to benchmark")
    torch.set_num_threads(args.threads)
    given = {name: shlex.split(rest) for name, rest in (s.split("=", 1) for s in args.students)}
    args.flags = {name: words[1:] for name, words in given.items()}
    args.recipes = {name: recipe(flags) for name, flags in args.flags.items()}
    students = {name: pretrained(name, words[0], args) for name, words in given.items()}
    if args.speed:
        for name in args.tasks.split(","):
            for sname in students:
                doc = speed(JOBS[name], sname, args)
                print(f"{name} {sname}: " + ("not finished" if doc is None else
                      ", ".join(f"batch {b}: {r['speedup_real']:.2f}× real, {r['speedup_fixed']:.2f}× fixed" for b, r in doc["by_batch"].items())))
        return
    todo = [(seed, JOBS[name]) for seed in (int(x) for x in args.seeds.split(",")) for name in args.tasks.split(",")]
    while todo:
        waiting = []
        for seed, job in todo:
            if args.follow and not _teacher_ready(job, seed, args):
                waiting.append((seed, job))  # another process tunes this teacher
                continue
            t = teacher(job, seed, args)
            print(f"{job.name} seed {seed} teacher: {t['score']:.4f} (B {t['baseline_score']:.4f}, lr {t['lr']:g})", flush=True)
            for sname, source in students.items():
                s = student(sname, source, job, seed, args, t)
                if s.get("skipped"):
                    print(f"{job.name} seed {seed} {sname}: {s['skipped']}", flush=True)
                    continue
                kob = "–" if s["kept_over_baseline"] is None else f"{100 * s['kept_over_baseline']:.1f}%"
                print(f"{job.name} seed {seed} {sname}: int8 {s['student_metric']:.4f}, kept above chance {kob}, raw {100 * s['kept']:.1f}%",
                      flush=True)
        if waiting:
            time.sleep(300)
        todo = waiting


if __name__ == "__main__":
    main()
