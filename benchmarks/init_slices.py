"""Teacher slices against importance slices (`--init teacher` against `--init importance`): the held-out distillation loss of
a student as `bort compress` pretrains it, at its start and along pretraining.

    python benchmarks/init_slices.py [--shapes 2,12,384,768 4,6,288,192] [--steps 400] [--eval-every 100]

For each shape and start, `bort pretrain` with compress's recipe (the hidden-state and sentence-embedding terms on the
corpus's sentences, its learning rate and batch) for ``--steps`` steps on ``--corpus``, evaluated on the held-out
sentences every ``--eval-every`` steps; the start itself is a one-step run at a learning rate of 1e-30 (the step changes
nothing a float32 holds). Runs go to benchmarks/out/init_slices/ (resumable); each finished one is added to
benchmarks/results/training/init-slices.json, rendered in docs/BENCHMARKS.md (the ``init_slices`` block). A lower loss
here is a proxy: the scoreboard (issue 38) says whether the lever keeps more of the teacher's skill.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace

import torch
from common import OUT, RESULTS, SHARED, provenance, write_result

from bort.arch import Arch
from bort.compress import CompressConfig
from bort.compress.recipe import pretrain_config, stage_common
from bort.pretrain.recipe import pretrain

PATH = RESULTS / "training" / "init-slices.json"
TERMS = ("heldout_loss", "hidden_mse", "embed_distance")


def run(shape: str, init: str, steps: int, eval_every: int, args, *, start: bool = False) -> list[dict]:
    """One pretraining of ``shape`` from ``init``; its held-out terms at each evaluation (``start``: the step-0 student)."""
    c = replace(CompressConfig(out=OUT / "unused"), corpus=args.corpus, init=init, pretrain_steps=steps, progress=False)
    cfg = pretrain_config(c, OUT / "init_slices" / f"{shape}-{init}-{steps}steps{'-start' if start else ''}", args.teacher, Arch.parse(shape),
                          "cpu", stage_common(c))
    cfg = replace(cfg, eval_every=eval_every, save_every=eval_every, optim=replace(cfg.optim, lr=1e-30) if start else cfg.optim)
    report = pretrain(cfg)
    points = [json.loads(line) for line in (cfg.out / "metrics.jsonl").read_text().splitlines()]
    points = [{"step": 0 if start else p["step"], **{k: p[k] for k in TERMS if k in p}} for p in points if "heldout_loss" in p]
    print(f"⟨{shape}⟩ {init}{' start' if start else ''}: {points[-1]} ({report.wall_s:.0f} s)", flush=True)
    return points


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", nargs="+", default=["2,12,384,768", "4,6,288,192"])
    ap.add_argument("--inits", default="teacher,importance")
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--teacher", default="minilm-l6")
    ap.add_argument("--corpus", default=str(SHARED / "corpus" / "wikitext-103"))
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    doc = json.loads(PATH.read_text()) if PATH.is_file() else {"benchmark": "init-slices", "runs": []}
    done = {(r["shape"], r["init"]) for r in doc["runs"] if r["steps"] == args.steps}
    for shape in args.shapes:
        for init in args.inits.split(","):
            if (shape, init) in done:
                continue
            points = run(shape, init, 1, 1, args, start=True) + run(shape, init, args.steps, args.eval_every, args)
            doc["runs"] = [r for r in doc["runs"] if (r["shape"], r["init"]) != (shape, init)] + [
                {"shape": shape, "init": init, "steps": args.steps, "points": points}]
            doc.update(teacher=args.teacher, corpus=args.corpus, recipe="bort compress's pretraining (hidden-state and sentence-embedding "
                       "terms, sentences, lr 3e-4, batch 32)", threads=args.threads, **provenance())
            write_result(PATH, doc)


if __name__ == "__main__":
    main()
