"""The AB^nC check (issue 16): does a short training rank shapes the way a longer one does?

    nice -n 10 python benchmarks/abnc_bench.py [--part errors|downstream|all|summary] [--steps 30] [--seq-len 64] [--batch-size 8] [--pretrain-steps 40] \
        [--pretrain-batch 16] [--pretrain-lr 1e-4] [--pretrain-inputs blocks] [--pretrain-embed 0] [--tasks sst2,mrpc,rte,stsb] [--max-train 500] \
        [--epochs 2] [--finetune-lr 1e-4] [--out benchmarks/out/abnc]

For each shape of SHAPES (spread over the MiniLM `auto` space in depth, width and speed; the teacher
itself excluded) it measures:

1. ê after n steps in every variant — kl, ce (against the teacher with its trained MLM head) and
   representation (hidden-state MSE of the bare encoder), each with random and teacher init — with
   the very callable `bort extract` scores a candidate with (:class:`bort.surrogates.error.ErrorSurrogate`,
   through :func:`bort.extract.trial.run_trial`), with benchmarks/extract_fptas.py's n, batch and sequence length;
2. the downstream score after the same `bort pretrain` for every shape (teacher init, hidden-state
   objective, §7's best, or `bort compress`'s with --pretrain-embed 1 --pretrain-inputs sentences; equal steps)
   and plain `bort finetune` (benchmarks/finetune_bench.py's protocol, reduced: a seeded subset of --max-train examples
   per task, --epochs epochs): the GLUE dev average
   over --tasks, and the STS-B dev Spearman of the pretrained encoder's embeddings without fine-tuning.

Then Spearman's ρ(−ê, score) per variant. Every result is one JSON file, OUT/errors/<shape>-<variant>.json
or OUT/downstream/<shape>/<stage>.json, written when it finishes; a re-run skips what is there, so the
benchmark resumes after a kill. Several processes may share OUT (say one `--part errors`, two
`--part downstream`): each shape's pretraining, then (once every shape is pretrained or taken) its fine-tunings,
are claimed by a lock file while a live process holds them.
Everything runs on one thread. Writes OUT/summary.json and OUT/summary.md from whatever is finished.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch
from common import GLUE, GLUE_FOLDERS, OUT, ROOT, glue_score

from bort.arch import Arch
from bort.atomic import atomic_write_text
from bort.data.corpus import load_corpus
from bort.evaluate.recipe import EvaluateConfig, evaluate
from bort.extract.recipe import ExtractConfig
from bort.extract.trial import run_trial
from bort.finetune.recipe import FinetuneConfig, finetune
from bort.models.loading import read_config, resolve_model_path
from bort.models.teacher import load_teacher
from bort.pretrain.recipe import PretrainConfig, pretrain
from bort.surrogates.error import ErrorSurrogate
from bort.surrogates.params import count_params
from bort.tasks.metrics import spearman
from bort.teacher.prepare import ensure_mlm_head
from bort.training.hparams import Theta
from bort.training.loop import OptimConfig
from bort.training.losses import LogitLoss
from bort.training.objectives import RepresentationLoss

CORPUS = ROOT.parent / "shared" / "data" / "corpus" / "wikitext-103"
# In the order the downstream work runs, so that any finished prefix spreads over the space:
# depth 1–5, width 96–384, 1.2× to 114× fewer FLOPs than the teacher ⟨6,12,384,1536⟩.
SHAPES = ["3,12,384,1536", "2,3,384,384", "1,3,96,192", "5,12,384,1536", "2,6,192,768",
          "4,6,288,768", "3,3,96,384", "6,6,192,384", "1,12,384,1536", "4,12,384,192"]
HIDDEN = RepresentationLoss(alpha_hidden=1.0)
NO_LOGITS = LogitLoss(alpha_mlm=0.0, alpha_kd=0.0)
VARIANTS = [f"{kind}-{init}" for kind in ("kl", "ce", "representation") for init in ("random", "teacher")]
# ce trains exactly as kl does and scores the same student: ce = kl + H(p_T), the teacher's mean entropy on the
# same held-out positions, a constant. So ce is measured on CHECK_SHAPE (which confirms the identity) and derived
# for the others, unless --measure-ce: its ranking, and so its ρ, equals kl's by construction.
CHECK_SHAPE = "1,3,96,192"


def write_json(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(record, indent=2) + "\n")


def read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def extract_config(variant: str, args: argparse.Namespace) -> ExtractConfig:
    """`bort extract`'s settings for one ê variant: its defaults except the kind, the init, n, the batch size and the sequence length."""
    kind, init = variant.split("-")
    common = {"out": args.out, "steps": args.steps, "init": init, "seq_len": args.seq_len, "thetas": (Theta(batch_size=args.batch_size),)}
    if kind == "representation":
        return ExtractConfig(**common, loss=NO_LOGITS, representation=HIDDEN)
    return ExtractConfig(**common, error=kind)


def errors(args: argparse.Namespace, shapes: list[str]) -> None:
    """ê of every (shape, variant) not yet on disk; one surrogate per variant, as one `bort extract` run would hold."""
    teacher = load_teacher("minilm-l6")
    corpus = load_corpus(str(CORPUS), teacher.tokenizer, seq_len=args.seq_len)
    for variant in VARIANTS:
        todo = [s for s in shapes if not (args.out / "errors" / f"{s}-{variant}.json").is_file()]
        if not todo:
            continue
        cfg = extract_config(variant, args)
        # As `bort extract` does: the logit kinds need the teacher's MLM head, trained once (cached under OUT).
        who = ensure_mlm_head(teacher, corpus, args.out / "teacher_mlm", cfg.head) if cfg.loss.active else teacher
        surrogate = ErrorSurrogate(who, corpus, cfg.error_settings())
        for shape in sorted(todo, key=lambda s: s != CHECK_SHAPE):
            file = args.out / "errors" / f"{shape}-{variant}.json"
            kl = read_json(args.out / "errors" / f"{shape}-{variant.replace('ce-', 'kl-')}.json")
            if variant.startswith("ce-") and shape != CHECK_SHAPE and kl and not args.measure_ce:
                write_json(file, {"shape": shape, "variant": variant, "error": kl["error"] + surrogate.entropy(), "derived": "kl + H(p_T)"})
                continue
            trial = run_trial(surrogate, Arch.parse(shape), cfg.thetas[0])
            write_json(file, {"shape": shape, "variant": variant, "error": trial.error, "seconds": trial.seconds, "cpu_seconds": trial.cpu_seconds,
                              "steps": args.steps, "seq_len": args.seq_len, "theta": vars(cfg.thetas[0]),
                              "kl_plus_entropy": kl["error"] + surrogate.entropy() if kl and variant.startswith("ce-") else None})
            print(f"ê {variant:24s} ⟨{shape}⟩ {trial.error:.4f} ({trial.seconds:.0f} s)", flush=True)


def claim(folder: Path, phase: str) -> bool:
    """Take a shape's phase of the downstream work unless another live process holds it."""
    lock = folder / f"claim-{phase}.pid"
    folder.mkdir(parents=True, exist_ok=True)
    if lock.is_file():
        pid = int(lock.read_text())
        if pid != os.getpid() and Path(f"/proc/{pid}").exists():
            return False
    lock.write_text(str(os.getpid()))
    return True


def pretrain_shape(args: argparse.Namespace, shape: str, folder: Path) -> None:
    """`bort pretrain` (teacher init, hidden states and --pretrain-embed), then the encoder's embeddings scored on STS-B dev."""
    model = folder / "pretrained"
    if not (folder / "pretrain.json").is_file():
        t0 = time.time()
        objective = RepresentationLoss(alpha_hidden=1.0, alpha_embed=args.pretrain_embed)
        report = pretrain(PretrainConfig(out=model, teacher="minilm-l6", corpus=str(CORPUS), arch=Arch.parse(shape), init="teacher",
                                         loss=NO_LOGITS, representation=objective, inputs=args.pretrain_inputs, steps=args.pretrain_steps,
                                         batch_size=args.pretrain_batch, optim=OptimConfig(lr=args.pretrain_lr, warmup=0.05), eval_every=args.pretrain_steps,
                                         save_every=args.pretrain_steps, bf16="off", device="cpu", progress=False))
        write_json(folder / "pretrain.json", {"steps": report.steps, "wall_s": time.time() - t0, "heldout": report.heldout})
        print(f"pretrain ⟨{shape}⟩ {report.heldout} ({time.time() - t0:.0f} s)", flush=True)
    if not (folder / "stsb-embedding.json").is_file():
        res = evaluate(EvaluateConfig(model=str(model), task="glue/stsb", data=GLUE / "STS-B", embedding=True))
        write_json(folder / "stsb-embedding.json", {"dev": res.metrics})
        print(f"embedding ⟨{shape}⟩ STS-B {res.metrics}", flush=True)


def finetune_shape(args: argparse.Namespace, shape: str, folder: Path) -> None:
    """Plain `bort finetune` of the pretrained student on each task, finetune_bench.py's protocol with --max-train and --epochs."""
    for task in args.tasks:
        if (folder / f"{task}.json").is_file():
            continue
        report = finetune(FinetuneConfig(model=str(folder / "pretrained"), task=f"glue/{task}", data=GLUE / GLUE_FOLDERS[task],
                                         out=folder / "finetune" / task, epochs=args.epochs, train_examples=args.max_train, batch_size=32,
                                         optim=OptimConfig(lr=args.finetune_lr, weight_decay=0.01, warmup=0.1), device="cpu", progress=False))
        write_json(folder / f"{task}.json", {"dev": report.dev, "glue": glue_score(report.dev), "train_s": report.train_s,
                                             "steps": report.steps})
        print(f"finetune ⟨{shape}⟩ {task} {report.dev} ({report.train_s:.0f} s)", flush=True)


def downstream(args: argparse.Namespace, shapes: list[str]) -> None:
    """Every shape's pretraining and embedding score first (the cheaper score, so more shapes have one), then the fine-tunings."""
    phases = {"pretrain": (pretrain_shape, ["pretrain", "stsb-embedding"]), "finetune": (finetune_shape, args.tasks)}
    for phase, (work, stages) in phases.items():
        for shape in shapes:
            folder = args.out / "downstream" / shape
            ready = phase == "pretrain" or (folder / "pretrain.json").is_file()  # a shape another process still pretrains waits
            if ready and not all((folder / f"{stage}.json").is_file() for stage in stages) and claim(folder, phase):
                work(args, shape, folder)


def summarise(args: argparse.Namespace, shapes: list[str]) -> dict:
    """Gather what is finished: per shape its ê and scores; per variant ρ(−ê, score) over the shapes that have both."""
    config = read_config(resolve_model_path("minilm-l6"))
    rows = []
    for shape in shapes:
        folder = args.out / "downstream" / shape
        glue = [read_json(folder / f"{t}.json") for t in args.tasks]
        emb = read_json(folder / "stsb-embedding.json")
        rows.append({"shape": shape, "params": count_params(config, Arch.parse(shape)).total,
                     "error": {v: r["error"] for v in VARIANTS if (r := read_json(args.out / "errors" / f"{shape}-{v}.json"))},
                     "glue": {t: g["glue"] for t, g in zip(args.tasks, glue) if g},
                     "glue_avg": statistics.mean(g["glue"] for g in glue) if all(glue) else None,
                     "stsb_embedding": emb["dev"]["spearman"] if emb else None})
    rho = {}
    for score in ("glue_avg", "stsb_embedding"):
        for v in VARIANTS:
            pairs = [(-r["error"][v], r[score]) for r in rows if v in r["error"] and r[score] is not None]
            rho[f"{v}/{score}"] = {"rho": spearman(*zip(*pairs)) if len(pairs) >= 3 else None, "shapes": len(pairs)}
        # The baseline any ê must beat: ranking the shapes by their size alone.
        pairs = [(r["params"], r[score]) for r in rows if r[score] is not None]
        rho[f"params/{score}"] = {"rho": spearman(*zip(*pairs)) if len(pairs) >= 3 else None, "shapes": len(pairs)}
    summary = {"date": datetime.now(timezone.utc).isoformat(timespec="minutes"), "machine": f"{platform.machine()}, {os.cpu_count()} cores, 1 thread",
               "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}, "rows": rows, "rho": rho}
    write_json(args.out / "summary.json", summary)
    atomic_write_text(args.out / "summary.md", markdown(summary, args.tasks))
    return summary


def markdown(s: dict, tasks: list[str]) -> str:
    head = "| shape | p̂ (M) | " + " | ".join(f"ê {v}" for v in VARIANTS) + " | " + " | ".join(tasks) + " | GLUE avg | STS-B emb. ρ |"
    lines = [head, "|---|" + "---:|" * (len(VARIANTS) + len(tasks) + 3)]
    for r in s["rows"]:
        cells = [f"{r['error'][v]:.4g}" if v in r["error"] else "" for v in VARIANTS] + [f"{r['glue'][t]:.1f}" if t in r["glue"] else "" for t in tasks]
        cells += [f"{r['glue_avg']:.1f}" if r["glue_avg"] is not None else "", f"{r['stsb_embedding']:.4f}" if r["stsb_embedding"] is not None else ""]
        lines.append(f"| ⟨{r['shape']}⟩ | {r['params'] / 1e6:.1f} | " + " | ".join(cells) + " |")
    lines += ["", "| ê variant (params: ρ(p̂, score), the size-only baseline) | ρ(−ê, GLUE avg) | ρ(−ê, STS-B embedding) |", "|---|---:|---:|"]
    for v in [*VARIANTS, "params"]:
        cell = [s["rho"][f"{v}/{sc}"] for sc in ("glue_avg", "stsb_embedding")]
        lines.append(f"| {v} | " + " | ".join("" if c["rho"] is None else f"{c['rho']:.3f} (n={c['shapes']})" for c in cell) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=("errors", "downstream", "all", "summary"), default="all")
    ap.add_argument("--shapes", default=";".join(SHAPES), help="';'-separated D,A,H,I shapes")
    # ê's defaults are benchmarks/extract_fptas.py's (§1), the pretraining's and fine-tuning's what a shared 2-core machine allows.
    ap.add_argument("--steps", type=int, default=30, help="n: steps of each ê training")
    ap.add_argument("--seq-len", type=int, default=64, help="sequence length of the ê trainings")
    ap.add_argument("--batch-size", type=int, default=8, help="batch size of the ê trainings (θ; lr and warm-up are bort extract's)")
    ap.add_argument("--measure-ce", action="store_true", help="train every ce variant too, not only on CHECK_SHAPE")
    ap.add_argument("--pretrain-steps", type=int, default=40)
    ap.add_argument("--pretrain-batch", type=int, default=16)
    ap.add_argument("--pretrain-lr", type=float, default=1e-4)
    ap.add_argument("--pretrain-inputs", choices=("blocks", "sentences"), default="blocks")
    ap.add_argument("--pretrain-embed", type=float, default=0.0, help="weight of the sentence-embedding term beside the hidden states")
    ap.add_argument("--finetune-lr", type=float, default=1e-4)
    ap.add_argument("--tasks", default="sst2,mrpc,rte,stsb")
    ap.add_argument("--max-train", type=int, default=500)
    ap.add_argument("--epochs", type=float, default=2.0)
    ap.add_argument("--out", type=Path, default=OUT / "abnc")
    args = ap.parse_args()
    args.tasks = args.tasks.split(",")
    if not CORPUS.is_dir() or not GLUE.is_dir():
        raise SystemExit(f"the shared data is not at {CORPUS} / {GLUE}; nothing to benchmark")
    torch.set_num_threads(1)
    shapes = args.shapes.split(";")
    if args.part in ("errors", "all"):
        errors(args, shapes)
    if args.part in ("downstream", "all"):
        downstream(args, shapes)
    print(markdown(summarise(args, shapes), args.tasks))


if __name__ == "__main__":
    main()
