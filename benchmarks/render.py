"""Render docs/BENCHMARKS.md's tables and README.md's figures from the committed results in benchmarks/results/ (issue 35).

    python benchmarks/render.py           # rewrite every generated block of docs/BENCHMARKS.md and README.md
    python benchmarks/render.py --check   # exit 1 (and say which block) where a file differs from what the results give

A generated block sits between ``<!-- render:NAME -->`` and ``<!-- /render:NAME -->``; everything outside the blocks is
prose and is left alone. Blocks: ``scoreboard`` (benchmarks/scoreboard.py's results: the share of the teacher's skill above
chance each student keeps on its int8 export, mean ± sd over seeds, pooled over the tasks whose teacher beats its baseline,
then every run with its intervals), ``speed`` (benchmarks/scoreboard.py's speed results: speed-ups on real inputs),
``shapes`` (benchmarks/shape_speed.py's candidate shapes, timed before any is trained) and ``main_job``
(benchmarks/main_job.py's result: README's main job, ``make compress``); and a few one-paragraph figures.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
from collections import defaultdict
from pathlib import Path

from common import PRETRAIN_STEPS
from render_blocks import (
    TASK_ORDER,
    ci,
    commit,
    commits,
    load,
    mean_sd,
    one,
    order,
    pct,
    rank,
    render_grouped_teacher,
    render_init_slices,
    render_int8_float,
    render_overlap,
    render_padding,
    render_shape_rank,
    render_shapes,
    render_st_onnx,
    render_train_step,
)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DOCS = (ROOT / "docs" / "BENCHMARKS.md", ROOT / "README.md")
BLOCK = re.compile(r"(<!-- render:(?P<name>[a-z0-9_]+) -->\n)(?P<body>.*?)(<!-- /render:(?P=name) -->)", re.S)


def pooled_by_seed(runs: list[dict]) -> dict[tuple[str, int], dict]:
    """Per (student, seed): the mean of ``kept_over_baseline`` over its tasks whose teacher beats the baseline (algorithms.md §4d),
    the raw ``kept`` over the same tasks, and how many tasks that is and how many were left out."""
    groups: dict[tuple[str, int], list[dict]] = defaultdict(list)
    for r in runs:
        groups[r["model"], r["seed"]].append(r)
    out = {}
    for key, rs in groups.items():
        inside = [r for r in rs if r["teacher_beats_baseline"] and r["kept_over_baseline"] is not None]
        out[key] = {"kept_over_baseline": statistics.mean(r["kept_over_baseline"] for r in inside) if inside else None,
                    "kept": statistics.mean(r["kept"] for r in inside) if inside else None,
                    "tasks": sorted(r["job"] for r in inside), "left_out": sorted(r["job"] for r in rs if r not in inside)}
    return out


def render_scoreboard(results: Path, board: str = "scoreboard") -> str:
    """The scoreboard's tables: kept above chance per task and student (mean ± sd over seeds), pooled, then every run; ``board``:
    the folder of results/ (one per teacher)."""
    runs = load(results / board)
    teachers = [r for r in runs if r["model"] == "teacher"]
    students = [r for r in runs if r["model"] != "teacher"]
    if not runs:
        return "No scoreboard result is committed yet.\n"
    names = sorted({r["model"] for r in students})
    jobs = order(r["job"] for r in runs)
    lines = ["Kept above chance, (S − B)/(T − B) ×100, S the student's int8 export: mean ± sd over seeds (how many); a task whose "
             "teacher does not beat its baseline in a seed is left out of that seed's figure. B and T are the dev scores ×100 (the "
             "mean of a task's metrics where it has two).", "",
             "| task | B | T |" + "".join(f" {n}: kept above chance | {n}: raw S/T |" for n in names),
             "|---|---:|---:|" + "---:|---:|" * len(names)]
    for job in jobs:
        ts = [t for t in teachers if t["job"] == job]
        cells = []
        for n in names:
            ss = [s for s in students if s["job"] == job and s["model"] == n]
            cells += [mean_sd([s["kept_over_baseline"] for s in ss if s["teacher_beats_baseline"] and s["kept_over_baseline"] is not None]),
                      mean_sd([s["kept"] for s in ss if s["kept"] is not None])]
        lines.append(f"| {job} | {mean_sd([t['baseline_score'] for t in ts])} | {mean_sd([t['score'] for t in ts])} |" + "".join(f" {c} |" for c in cells))
    pools = pooled_by_seed(students)
    lines += ["", "Pooled: per seed, the mean over tasks of kept above chance (the raw S/T over the same tasks beside it); then over the "
              "seeds that have every task the student has anywhere (a seed still running is marked partial and left out).", "",
              "| student | seed | tasks pooled | left out (teacher not above B) | kept above chance | raw S/T |", "|---|---:|---|---|---:|---:|"]
    for n in names:
        tasks = {r["job"] for r in students if r["model"] == n}
        complete = {seed: set(p["tasks"] + p["left_out"]) == tasks for (m, seed), p in pools.items() if m == n}
        for seed in sorted(complete):
            p = pools[n, seed]
            lines.append(f"| {n} | {seed}{'' if complete[seed] else ' (partial)'} | {', '.join(p['tasks']) or '–'} | "
                         f"{', '.join(p['left_out']) or '–'} | {pct(p['kept_over_baseline'])} | {pct(p['kept'])} |")
        whole = [pools[n, seed] for seed, ok in sorted(complete.items()) if ok and pools[n, seed]["kept_over_baseline"] is not None]
        lines.append(f"| **{n}** | {len(whole)} complete | | | **{mean_sd([p['kept_over_baseline'] for p in whole])}** | "
                     f"{mean_sd([p['kept'] for p in whole])} |")
    lines += ["", "Every run (dev scores ×100; 95% paired bootstrap intervals, 1,000 draws; lr: the learning rate chosen on the selection slice; "
              "N left out: dev examples whose inputs were among the student's new inputs, left out of T, B and S alike):", "",
              "| task | model | seed | lr | B | T | S int8 | S fp32 | kept above chance | raw S/T | teacher above B |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for job in jobs:
        for t in sorted((t for t in teachers if t["job"] == job), key=lambda r: r["seed"]):
            lines.append(f"| {job} | teacher ⟨{t['arch']}⟩ | {t['seed']} | {t['lr']:g} | {pct(t['baseline_score'])} | {pct(t['score'])} | | | | | "
                         f"{'yes' if t['teacher_beats_baseline'] else 'no'} {ci(t['teacher_minus_baseline_interval'])} |")
        for s in sorted((s for s in students if s["job"] == job), key=lambda r: (r["model"], r["seed"])):
            if s.get("skipped"):  # the teacher does not beat its baseline: the student is not trained
                lines.append(f"| {job} | {s['model']} ⟨{s['arch']}⟩ | {s['seed']} | | {pct(s['baseline_metric'])} | {pct(s['teacher_metric'])} | "
                             f"| | {s['skipped']} | | no |")
                continue
            lines.append(f"| {job} | {s['model']} ⟨{s['arch']}⟩ | {s['seed']} | {s['lr']:g} | {pct(s['baseline_metric'])} | {pct(s['teacher_metric'])} | "
                         f"{pct(s['student_metric'])} | {pct(s['student_metric_fp32'])} | {pct(s['kept_over_baseline'])} "
                         f"{ci(s['kept_over_baseline_interval'])} | {pct(s['kept'])} {ci(s['kept_interval'])} | "
                         f"{'yes' if s['teacher_beats_baseline'] else 'no'}"
                         f"{f'; {n} left out' if (n := s.get('left_out_learnt')) else ''} |")
    lines += render_levers(students)
    cpus = sorted({f"{r['machine']['cpu']} ({', '.join(r['machine']['flags'])})" for r in runs})
    lines += ["", f"From {len(runs)} result files in `benchmarks/results/{board}/`; commits {commits(runs)} (+: with uncommitted "
              f"changes); CPU {'; '.join(cpus)}."]
    return "\n".join(lines) + "\n"


def _flags(r: dict) -> list[str]:
    """A student's `bort compress` flags, a path under benchmarks/out/ as the repository's (the runs give it absolute or
    relative to the checkout they ran in), and ``--pretrain-steps N`` where it was pretrained other than the board's
    :data:`PRETRAIN_STEPS` (the scoreboard's own option, compress's flag of the same name)."""
    flags = [re.sub(r"^/.*/(benchmarks/out/)", r"\1", word) for word in (r.get("recipe") or {}).get("flags") or []]
    steps = (r.get("pretrain") or {}).get("steps")
    return flags + (["--pretrain-steps", str(steps)] if steps not in (None, PRETRAIN_STEPS) else [])


def _options(r: dict) -> frozenset[tuple[str, ...]]:
    """A student's flags as a set of options, each ``--name`` with the words that follow it."""
    groups: list[list[str]] = []
    for word in _flags(r):
        if word.startswith("--") or not groups:
            groups.append([word])
        else:
            groups[-1].append(word)
    return frozenset(tuple(g) for g in groups)


def render_levers(students: list[dict]) -> list[str]:
    """Issue 38's levers: each student run with `bort compress` flags beside every run of the same shape whose flags are a
    proper subset of its own (its bases: the flagless student, and e.g. ``grouped`` for ``--group-by-length --init
    importance``, so a lever added on top of another is read on its own), paired by (task, seed): the difference in kept
    above chance and in the int8 score, mean ± sd over the pairs."""
    scored = [r for r in students if r.get("kept_over_baseline") is not None]
    pairs: dict[tuple[str, str, str], list[tuple[dict, dict]]] = defaultdict(list)
    for r in scored:
        for b in scored:
            if (b["arch"], b["job"], b["seed"]) == (r["arch"], r["job"], r["seed"]) and _options(b) < _options(r):
                pairs[r["model"], b["model"], r["job"]].append((r, b))
    if not pairs:
        return []
    lines = ["", "Levers (issue 38): a student trained with `bort compress` flags against each student of the same shape whose "
             "flags are a proper subset of its own (none: the flagless one), paired by task and seed (differences ×100, mean ± sd "
             "over the pairs (how many)).", "",
             "| lever | flags | base | task | Δ kept above chance | Δ S int8 |", "|---|---|---|---|---:|---:|"]
    for (lever, b, job), ps in sorted(pairs.items(), key=lambda kv: (kv[0][0], rank(kv[0][2]), len(_options(kv[1][0][1])))):
        shown = " ".join(_flags(ps[0][0]))
        lines.append(f"| {lever} | `{shown}` | {b} | {job} | "
                     f"{mean_sd([r['kept_over_baseline'] - x['kept_over_baseline'] for r, x in ps])} | "
                     f"{mean_sd([r['student_metric'] - x['student_metric'] for r, x in ps])} |")
    return lines


def render_agnostic(results: Path) -> str:
    """The scoreboard's ``pick:X`` students (benchmarks/scoreboard.py ``compress_pick``): bort compress's task-agnostic student
    at X×, its int8 sentence embeddings on STS-B dev against the teacher's, and its speed-ups."""
    docs = sorted((d for folder in sorted(results.glob("agnostic*")) for d in load(folder)), key=lambda d: (d["teacher"], d["min_speedup"]))
    if not docs:
        return "No task-agnostic pick is committed yet.\n"
    lines = ["| teacher | student | at | shape | parameters | STS-B T | STS-B S (int8) | kept (95% interval) | speed-up, 128 tokens | "
             "real inputs, batch 1 | batch 32 |", "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for d in docs:
        st = d["student"]
        teacher = Path(d["teacher"]).name
        share = 100 * d["params"] / d["teacher_params"]
        lines.append(f"| {teacher} | {d['model']} | ≥ {d['min_speedup']:g}× | ⟨{d['arch']}⟩ | {d['params']:,} ({share:.0f}%) | "
                     f"{pct(st['teacher_metric'])} | {pct(st['student_metric'])} | {pct(st['kept_over_baseline'])} "
                     f"{ci(st['kept_over_baseline_interval'])} | {st['speedup_same_runtime']:.1f}× | "
                     f"{st['speedup_real_lengths']['1']:.1f}× | {st['speedup_real_lengths']['32']:.1f}× |")
    return ("\n".join(lines) + f"\n\nSpearman ×100 of the cosine of mean-pooled embeddings, without fine-tuning; the baseline of a "
            f"correlation is 0, so kept is also S/T. Speed-ups over the teacher, both int8 ONNX, one thread. From "
            f"`benchmarks/results/agnostic*/`; commits {commits(docs)}.\n")


def render_cost(results: Path) -> str:
    """The scoreboard's trials (benchmarks/results/trials/): what its fine-tunings cost on this machine, per task and model."""
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for t in load(results / "trials"):
        groups[t["job"], t["model"]].append(t)
    if not groups:
        return "No trial is committed yet.\n"
    lines = ["| task | model | fine-tunings | inputs an epoch | minutes an epoch (median) | hours in all | load average |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for (job, model), ts in sorted(groups.items(), key=lambda kv: (rank(kv[0][0]), kv[0][1] != "teacher", kv[0][1])):
        inputs = [t["train_examples"] + t["augmented"] for t in ts]
        # the epochs a trial ran: its steps over the steps of one pass over its inputs at the scoreboard's batch of 32
        per_epoch = [t["train_s"] / 60 / (t["steps_run"] / -(-n // 32)) for t, n in zip(ts, inputs)]
        loads = [t["load_avg"][0] for t in ts]
        lines.append(f"| {job} | {model} | {len(ts)} | {statistics.median(inputs):,.0f} | {statistics.median(per_epoch):.1f} | "
                     f"{sum(t['train_s'] for t in ts) / 3600:.1f} | {min(loads):.1f}–{max(loads):.1f} |")
    return ("\n".join(lines) + "\n\nTraining time only (not the teacher's labels of new inputs, the stored views or the scoring), one thread "
            "per process, the batches of 32 of the scoreboard; several processes share the 2 cores, so the load average at the end of each "
            "fine-tuning is given beside it. From `benchmarks/results/trials/`.\n")


def render_speed(results: Path) -> str:
    """Speed-ups of each student over the teacher on int8 ONNX, at a fixed length and on each task's own dev texts."""
    runs = load(results / "speed")
    if not runs:
        return "No speed result is committed yet.\n"
    # The load average (1 minute) when it ran: other jobs slow both models alike in the interleaved rounds, the ratios less than the times.
    lines = ["| task | student | texts | mean tokens | batch | teacher ms/seq | student ms/seq | speed-up, real inputs | speed-up, 128 tokens | "
             "load |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in sorted(runs, key=lambda r: (TASK_ORDER.index(r["job"]) if r["job"] in TASK_ORDER else 99, r["model"])):
        for b, row in r["by_batch"].items():
            lines.append(f"| {r['job']} | {r['model']} ⟨{r['arch']}⟩ | {r['texts']} | {row['mean_tokens']:.1f} | {b} | {row['teacher_ms_per_seq']:.3f} | "
                         f"{row['student_ms_per_seq']:.3f} | {row['speedup_real']:.2f}× | {row['speedup_fixed']:.2f}× | {r['load_avg'][0]:.1f} |")
    cpus = sorted({f"{r['machine']['cpu']} ({', '.join(r['machine']['flags'])}), {r['threads']} thread(s)" for r in runs})
    return "\n".join(lines) + f"\n\nFrom `benchmarks/results/speed/`; CPU {'; '.join(cpus)}.\n"


def render_main_job(results: Path) -> str:
    """README's main job (``make compress``): its wall time, the student it handed over, its embeddings' share kept and its speed."""
    r = one(results, "readme/main_job.json")
    if r is None:
        return "No main-job result is committed yet.\n"
    s, m = r["student"], r["machine"]
    real = ", ".join(f"{v:.1f}× at batch {b}" for b, v in (s.get("speedup_real_lengths") or {}).items()) or "not timed"
    return (f"{r['written'][:10]}, {m['cpu']} ({', '.join(m['flags'])}), {m['cores']} cores (load average {r['load_avg'][0]:.1f} over "
            f"its last minute), commit {commit(r)}: **{r['wall_s'] / 60:.1f} minutes**, "
            f"student ⟨{r['arch']}⟩ ({r['params']:,} parameters, "
            f"{100 * r['params'] / r['teacher_params']:.1f}% of the teacher's). Its int8 export's sentence embeddings keep "
            f"**{pct(s['kept_over_baseline'])}%** of the teacher's STS-B dev Spearman (95% interval {ci(s['kept_over_baseline_interval'])}; "
            f"{s['student_metric']:.3f} against {s['teacher_metric']:.3f}; fp32 {s['student_metric_fp32']:.3f}; the baseline of a "
            f"correlation is 0, so this is also the raw S/T). Speed-up over the teacher, both int8 ONNX: "
            f"**{s['speedup_same_runtime']:.1f}×** at batch 1 × {r['bench_seq']} tokens, {real} on the STS-B dev sentences as they "
            f"come; {s['speedup_vs_eager']:.1f}× against the teacher on HF eager fp32.\n")


RENDERERS = {"scoreboard": render_scoreboard, "speed": render_speed, "main_job": render_main_job, "int8_float": render_int8_float,
             "st_onnx": render_st_onnx, "train_step": render_train_step, "shapes": render_shapes,
             "padding": render_padding, "cost": render_cost, "agnostic": render_agnostic, "init_slices": render_init_slices,
             "shape_rank": render_shape_rank, "overlap": render_overlap, "grouped_teacher": render_grouped_teacher,
             "scoreboard_mpnet": lambda results: render_scoreboard(results, "scoreboard-mpnet")}


def render(text: str, results: Path) -> str:
    """``text`` with every generated block replaced by what the results give (an unknown block name is an error)."""
    def block(m: re.Match) -> str:
        name = m.group("name")
        if name not in RENDERERS:
            raise SystemExit(f"unknown block '{name}'; known: {', '.join(RENDERERS)}")
        return m.group(1) + RENDERERS[name](results) + m.group(4)

    return BLOCK.sub(block, text)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="change nothing; exit 1 where a document differs from the results")
    ap.add_argument("--doc", type=Path, action="append", help="the document(s) to render (default: docs/BENCHMARKS.md and README.md)")
    ap.add_argument("--results", type=Path, default=RESULTS)
    args = ap.parse_args()
    status = 0
    for doc in args.doc or DOCS:
        text = doc.read_text(encoding="utf-8")
        new = render(text, args.results)
        stale = [m.group("name") for m, n in zip(BLOCK.finditer(text), BLOCK.finditer(new)) if m.group("body") != n.group("body")]
        if args.check and stale:
            print(f"{doc}: the block(s) {', '.join(stale)} differ from what {args.results} gives; run python benchmarks/render.py",
                  file=sys.stderr)
            status = 1
        elif not args.check and new != text:
            doc.write_text(new, encoding="utf-8")
    return status


if __name__ == "__main__":
    sys.exit(main())
