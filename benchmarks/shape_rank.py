"""Does ê rank shapes as the scoreboard does? Spearman's ρ between each ê variant (and p̂ alone) and the skill each shape's
student keeps above chance (issue 38: "an ê for extraction that can tell shapes apart"; algorithms.md §3's AB^nC check).

    python benchmarks/shape_rank.py --models fast deep4 deep3 pick4 … [--variants teacher:20 importance:20 teacher:100]

Downstream: each model's scoreboard results (benchmarks/results/scoreboard/<task>/<model>-seed<k>.json), the mean over seeds of
``kept_over_baseline`` per task, and their mean over the tasks every model has (the pooled figure). Each model is one shape
(its ``arch``), trained by one recipe: compare models that differ in shape alone. ê: for each variant ``INIT:N``, the error
surrogate of `bort compress`'s extraction (its objectives, corpus sentences, seed and held-out set) from start INIT after N
steps, computed here for each shape (a few minutes on one core each; kept in the result file, so a re-run computes only what
is new). Writes benchmarks/results/shapes/rank.json, rendered in docs/BENCHMARKS.md (the ``shape_rank`` block). ρ needs at
least 3 shapes to mean anything and 8 to mean much.
"""

from __future__ import annotations

import argparse
import json
import statistics
from dataclasses import replace
from pathlib import Path

import torch
from common import OUT, RESULTS, SHARED, provenance, write_result

from bort.arch import Arch
from bort.compress import CompressConfig
from bort.compress.recipe import extract_config
from bort.data.corpus import load_corpus
from bort.models.loading import read_config, resolve_model_path
from bort.models.sentence import read_pooling
from bort.models.teacher import load_teacher
from bort.surrogates.error import ErrorSurrogate
from bort.surrogates.params import count_params
from bort.tasks.metrics import spearman

PATH = RESULTS / "shapes" / "rank.json"


def downstream(board: Path, model: str) -> tuple[str, dict[str, float]]:
    """A model's shape and, per task, the mean over its seeds of the share kept above chance (tasks where the teacher beats its
    baseline)."""
    runs = [json.loads(p.read_text()) for p in sorted(board.glob(f"*/{model}-seed*.json"))]
    runs = [r for r in runs if r.get("kept_over_baseline") is not None]
    if not runs:
        raise SystemExit(f"no scoreboard result of '{model}' under {board}")
    archs = {r["arch"] for r in runs}
    if len(archs) != 1:
        raise SystemExit(f"'{model}' has several shapes in its results ({', '.join(sorted(archs))}): one model, one shape")
    tasks = sorted({r["job"] for r in runs})
    return archs.pop(), {t: statistics.mean(r["kept_over_baseline"] for r in runs if r["job"] == t) for t in tasks}


def errors(archs: list[str], variant: str, args, known: dict) -> dict[str, float]:
    """ê of each shape under ``variant`` (INIT:N), compress's extraction surrogate; those in ``known`` are read back."""
    todo = [a for a in archs if a not in known]
    if not todo:
        return known
    init, steps = variant.split(":")
    cfg = replace(CompressConfig(out=OUT / "unused"), teacher=args.teacher, corpus=args.corpus, extract_steps=int(steps), init=init,
                  seq_len=args.seq_len)
    ecfg = extract_config(cfg, OUT / "shape_rank", str(resolve_model_path(args.teacher)), "cpu", {})
    teacher = load_teacher(args.teacher)
    corpus = load_corpus(ecfg.corpus, teacher.tokenizer, seq_len=ecfg.seq_len)
    surrogate = ErrorSurrogate(teacher, corpus, ecfg.error_settings(init), pooling=read_pooling(teacher.path)).prepare()
    out = dict(known)
    for a in todo:
        out[a] = min(surrogate(Arch.parse(a), theta) for theta in ecfg.thetas)
        print(f"ê {variant} ⟨{a}⟩: {out[a]:.4f}", flush=True)
    return out


def rho(xs: list[float], ys: list[float]) -> float | None:
    """Spearman's ρ, or None below 3 points."""
    return spearman(xs, ys) if len(xs) >= 3 else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", required=True, help="scoreboard students that differ in shape alone")
    ap.add_argument("--variants", nargs="+", default=["teacher:20", "importance:20"], help="ê variants INIT:N (compress: teacher:20)")
    ap.add_argument("--teacher", default="minilm-l6")
    ap.add_argument("--corpus", default=str(SHARED / "corpus" / "wikitext-103"))
    ap.add_argument("--seq-len", type=int, default=CompressConfig.seq_len)
    ap.add_argument("--board", type=Path, default=RESULTS / "scoreboard")
    args = ap.parse_args()
    torch.set_num_threads(1)
    old = json.loads(PATH.read_text()) if PATH.is_file() else {}
    known = old.get("errors", {}) if old.get("corpus") == args.corpus and old.get("teacher") == args.teacher else {}
    shapes = {m: downstream(args.board, m) for m in args.models}
    archs = sorted({a for a, _ in shapes.values()})
    config = read_config(resolve_model_path(args.teacher))
    es = {v: errors(archs, v, args, known.get(v, {})) for v in args.variants}
    tasks = sorted(set.intersection(*(set(k) for _, k in shapes.values())))
    pooled = {m: statistics.mean(k[t] for t in tasks) if tasks else None for m, (_, k) in shapes.items()}
    models = [{"model": m, "arch": a, "params": count_params(config, Arch.parse(a)).total, "kept_over_baseline": k, "pooled": pooled[m],
               "errors": {v: es[v][a] for v in args.variants}} for m, (a, k) in shapes.items()]
    # ρ of each ranking against the share kept: −ê (a lower ê should keep more) and p̂ (a larger student should).
    rankings = {**{f"ê {v}": [-r["errors"][v] for r in models] for v in args.variants}, "p̂ alone": [r["params"] for r in models]}
    rhos = {name: {**{t: rho(score, [r["kept_over_baseline"][t] for r in models]) for t in tasks},
                   "pooled": rho(score, [r["pooled"] for r in models]) if tasks else None} for name, score in rankings.items()}
    write_result(PATH, {"benchmark": "shape-rank", "teacher": args.teacher, "corpus": args.corpus, "tasks": tasks, "models": models,
                        "rho": rhos, "errors": es, **provenance()})
    for name, r in rhos.items():
        print(f"{name}: ρ {r}")


if __name__ == "__main__":
    main()
