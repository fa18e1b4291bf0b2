"""Scoreboard models on the dev examples whose texts the training split holds, and on the others.

    python benchmarks/overlap.py --task qnli --seed 0 --models grouped prg xfer

qnli-from-dev is one split (GLUE's QNLI dev) cut in two, so its train and dev parts share questions (423 of dev's 968) and
sentences; MRPC's parts share few texts. A lever that re-pairs training texts (`--transform pair-retrieve`) shows the
student dev questions with other sentences, labelled by the teacher. This says where a lever's gain lies: each model's
score on the dev examples whose first text (the question) is a training first text, on those whose is not, and on those
of which neither text is in the training split; the teacher's beside them, and the share kept above chance on each (B:
the training set's majority class, as the scoreboard's). The students are scored on their int8 exports, as the
scoreboard scores them (`runs/seedN/TASK/MODEL/export`); a dev example whose input is among any listed student's new
inputs is left out for every model, as the scoreboard leaves it out of that student's scores. Writes benchmarks/results/overlap/TASK-seedN.json, rendered in
docs/BENCHMARKS.md (the ``overlap`` block).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from common import OUT, RESULTS, provenance, write_result
from scoreboard import JOBS

from bort.compress.score import learnt_inputs
from bort.evaluate.recipe import EvaluateConfig, split_predictions
from bort.finetune.recipe import subset
from bort.tasks.kept import baseline, task_score
from bort.tasks.scoring import score
from bort.tasks.source import open_task

RUNS = OUT / "scoreboard" / "runs"
SUBSETS = {"first text in train": lambda ex, first, second: ex.texts[0] in first,
           "first text not in train": lambda ex, first, second: ex.texts[0] not in first,
           "neither text in train": lambda ex, first, second: ex.texts[0] not in first and ex.texts[1] not in second}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="qnli", choices=[n for n, j in JOBS.items() if n != "cola"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--models", nargs="+", required=True, help="scoreboard students of that task and seed")
    ap.add_argument("--max-train", type=int, default=8000)
    args = ap.parse_args()
    job = JOBS[args.task]
    data = open_task(job.task, job.data, job.own)
    spec = data.spec
    train = subset(data.split("train"), args.max_train, args.seed)
    first, second = {ex.texts[0] for ex in train}, {ex.texts[1] for ex in train}
    runs = RUNS / f"seed{args.seed}" / args.task
    teacher = json.loads((RESULTS / "scoreboard" / args.task / f"teacher-seed{args.seed}.json").read_text())
    models = {"teacher": Path(teacher["trials"][f"{teacher['lr']:g}"]["folder"]), **{m: runs / m / "export" for m in args.models}}
    learnt = set()
    for m in args.models:
        doc = json.loads((RESULTS / "scoreboard" / args.task / f"{m}-seed{args.seed}.json").read_text())
        learnt |= learnt_inputs(Path(doc["trials"][f"{doc['lr']:g}"]["folder"]))
    scores: dict[str, dict[str, float]] = {}
    for name, folder in models.items():
        _, splits = split_predictions(EvaluateConfig(model=str(folder), task=job.task, data=job.data, own=job.own, progress=False))
        examples, preds = splits[spec.dev_splits[0]]
        for subset_name, keep in SUBSETS.items():
            idx = [i for i, ex in enumerate(examples) if keep(ex, first, second) and ex.texts not in learnt]
            scores.setdefault(subset_name, {"examples": len(idx)})[name] = task_score(score(spec, [examples[i] for i in idx], [preds[i] for i in idx]),
                                                                                       spec.metrics)
            if name == "teacher":
                scores[subset_name]["baseline"] = task_score(baseline(spec, train, [examples[i] for i in idx]), spec.metrics)
    left_out = sum(ex.texts in learnt for ex in examples)
    doc = {"benchmark": "overlap", "job": args.task, "task": spec.name, "seed": args.seed, "models": list(models), "subsets": scores,
           "left_out_learnt": left_out, "max_train": args.max_train, **provenance()}
    path = write_result(RESULTS / "overlap" / f"{args.task}-seed{args.seed}.json", doc)
    print(path)
    for subset_name, row in scores.items():
        print(subset_name, {k: round(v, 4) for k, v in row.items()})


if __name__ == "__main__":
    main()
