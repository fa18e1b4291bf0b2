"""The formatting helpers of render.py's blocks, and its one-table blocks: int8 and stack speed, a training step, padding,
teacher slices, the candidate shapes and their ranking (render.py keeps the scoreboard's blocks and the driver)."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

TASK_ORDER = ("cola", "sst2", "mrpc", "stsb", "rte", "qnli", "pros_cons")


def one(results: Path, rel: str) -> dict | None:
    """The result file ``rel`` under ``results``, or None where none is committed."""
    path = results / rel
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def load(folder: Path) -> list[dict]:
    """Every result file under ``folder``, in path order."""
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(folder.rglob("*.json"))] if folder.is_dir() else []


def pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.1f}"


def mean_sd(values: list[float], scale: float = 100.0) -> str:
    """``mean ± sd (n)`` of the values ×``scale``; the sd only from two values on."""
    if not values:
        return "–"
    mean = scale * statistics.mean(values)
    return f"{mean:.1f} ± {scale * statistics.stdev(values):.1f} ({len(values)})" if len(values) > 1 else f"{mean:.1f} (1)"


def commit(r: dict) -> str:
    """A result's commit, short, with ``+`` where the tree had uncommitted changes."""
    return r["commit"][:7] + ("+" if r.get("dirty") else "")


def commits(docs) -> str:
    """The results' commits (:func:`commit`), each once, sorted."""
    return ", ".join(sorted({commit(d) for d in docs}))


def ci(ci: list[float] | None) -> str:
    return "–" if not ci else f"[{pct(ci[0])}, {pct(ci[1])}]"


def rank(job: str) -> tuple[int, str]:
    return TASK_ORDER.index(job) if job in TASK_ORDER else len(TASK_ORDER), job


def order(jobs) -> list[str]:
    return sorted(set(jobs), key=rank)


def render_int8_float(results: Path) -> str:
    """all-mpnet-base-v2 in int8 with every product quantised and with its family's float exceptions, against fp32."""
    r = one(results, "int8/mpnet-float-exceptions.json")
    if r is None:
        return "No int8 result is committed yet.\n"
    lines = ["| graph | hidden states ‖Δ‖/‖x‖ | embeddings ‖Δ‖/‖x‖ | least embedding cosine | STS-B Spearman |", "|---|---:|---:|---:|---:|"]
    for name, v in r["results"].items():
        cells = [f"{v[k]:.3f}" if k in v else "–" for k in ("hidden_rms_relative_error", "embedding_rms_relative_error", "least_embedding_cosine")]
        lines.append(f"| {name} | {' | '.join(cells)} | {v['stsb_spearman']:.4f} |")
    m = r["machine"]
    return "\n".join(lines) + (f"\n\n{r['data']}; commit {commit(r)}, {m['cpu']} ({', '.join(m['flags'])}); "
                               "from `benchmarks/results/int8/mpnet-float-exceptions.json`.\n")


def render_st_onnx(results: Path) -> str:
    """sentence-transformers' ONNX backend on an int8 export, in the stack the card names, against the graph and bort."""
    r = one(results, "stack/st-onnx.json")
    if r is None:
        return "No stack check is committed yet.\n"
    v, graph, ours = r["stack_versions"], r["st_onnx_vs_the_graph_run_directly"], r["st_onnx_vs_bort_predict"]
    m = r["machine"]
    return (f"Checked with sentence-transformers {v['sentence-transformers']}, transformers {v['transformers']}, optimum-onnx "
            f"{v['optimum-onnx']}, ONNX Runtime {v['onnxruntime']} on {r['teacher']}'s int8 export ({r['data']}): the embeddings equal "
            f"the graph's own to {graph['max_abs_difference']:.0e}; `bort predict --embed` agrees to a least cosine of "
            f"{ours['one text a call']['least_cosine']:.3f} (bort's runtime leaves ONNX Runtime's SkipLayerNorm fusion off for "
            f"speed, and int8 moves with it), and the default backend's fp32 weights to "
            f"{r['st_default_backend_vs_int8_graph']['least_cosine']:.3f}. Commit {commit(r)}, "
            f"{m['cpu']}; from `benchmarks/results/stack/st-onnx.json` (`benchmarks/st_onnx_stack.py`).\n")


def render_train_step(results: Path) -> str:
    """benchmarks/train_step.py: a task-distillation step before and after the CPU training changes, side by side."""
    r = one(results, "training/train-step.json")
    if r is None:
        return "No training-step result is committed yet.\n"
    return (f"{r['written'][:10]}, {r['machine']['cpu']} ({', '.join(r['machine']['flags'])}), {r['threads']} thread, load average "
            f"{r['load_avg'][0]:.1f}, commit {r['commit'][:7]}: a step of the ⟨{r['student']}⟩ student on {r['task']} (batch {r['batch_size']}, "
            f"{r['autocast']}) runs **{r['speedup']:.2f}×** faster after ({r['after']}) than before ({r['before']}): median of "
            f"{r['rounds']} alternating rounds of {r['steps']} steps, {r['median_before_s']:.2f} s → {r['median_after_s']:.2f} s on this "
            "loaded machine (the ratio, not the times, is the figure).\n")


def render_shapes(results: Path) -> str:
    """benchmarks/shape_speed.py: random-weight candidate shapes on int8, timed beside the teacher's shape on a task's dev texts."""
    docs = sorted(load(results / "shapes"), key=lambda d: rank(d["job"]))
    if not docs:
        return "No shape timing is committed yet.\n"
    lines = ["| task | shape | parameters | speed-up, real inputs, batch 1 | batch 32 | 128 tokens, batch 1 | load |", "|---|---|---:|---:|---:|---:|---:|"]
    for d in docs:
        for r in d["shapes"][1:]:  # the first is the teacher's own shape, the reference (1.00×)
            lines.append(f"| {d['job']} | ⟨{r['arch']}⟩ | {r['params']:,} | {r['real']['1']['speedup']:.2f}× | {r['real']['32']['speedup']:.2f}× | "
                         f"{r['fixed_128']['speedup']:.2f}× | {d['load_avg'][0]:.1f} |")
    first = docs[0]
    return ("\n".join(lines) + f"\n\nSpeed-ups over the teacher's shape ⟨{first['teacher_arch']}⟩ in the same run ({first['runtime']}, "
            f"{first['threads']} thread, {first['rounds']} interleaved rounds, the first {first['texts']} dev texts); commits "
            f"{commits(docs)}, {first['machine']['cpu']}; from "
            "`benchmarks/results/shapes/`.\n")


def render_padding(results: Path) -> str:
    """benchmarks/padding.py: the tokens an epoch computes, random batches and batches grouped by length, against the real ones."""
    r = one(results, "training/padding.json")
    if r is None:
        return "No padding count is committed yet.\n"
    rows = sorted(r["tasks"], key=lambda t: rank(t["job"]))
    lines = ["| task | examples | mean tokens | random batches | grouped by length |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {t['job']} | {t['examples']:,} | {t['mean_tokens']:.1f} | {t['random_over_real']:.2f}× | {t['grouped_over_real']:.2f}× |" for t in rows]
    return ("\n".join(lines) + f"\n\nTokens an epoch computes (padded batches of {r['batch_size']}) over the real ones, the training sets as the "
            f"scoreboard trains on them ({r['max_train']:,} at most, seed {r['seed']}, {r['tokenizer']}'s tokenizer, {r['max_seq_len']} tokens at most); "
            f"commit {commit(r)}, from `benchmarks/results/training/padding.json`.\n")


def render_init_slices(results: Path) -> str:
    """benchmarks/init_slices.py: the held-out loss along pretraining from leading and from importance slices of the teacher."""
    r = one(results, "training/init-slices.json")
    if r is None:
        return "No comparison of teacher slices is committed yet.\n"
    steps = sorted({p["step"] for run in r["runs"] for p in run["points"]})
    by = {(run["shape"], run["init"]): {p["step"]: p["heldout_loss"] for p in run["points"]} for run in r["runs"]}
    lines = ["| shape | start | " + " | ".join(f"step {s}" for s in steps) + " |", "|---|---|" + "---:|" * len(steps)]
    for shape in dict.fromkeys(run["shape"] for run in r["runs"]):
        for init in ("teacher", "importance"):
            if (shape, init) not in by:
                continue
            base = by.get((shape, "teacher"), {}) if init == "importance" else {}
            cells = [f"{by[shape, init][s]:.3f}" + (f" ({by[shape, init][s] / base[s]:.2f}×)" if s in base and s in by[shape, init] else "")
                     if s in by[shape, init] else "" for s in steps]
            lines.append(f"| ⟨{shape}⟩ | {'leading' if init == 'teacher' else 'importance'} | " + " | ".join(cells) + " |")
    return ("\n".join(lines) + f"\n\nHeld-out loss (hidden-state MSE + sentence-embedding 1 − cos, {r['corpus'].rsplit('/', 1)[-1]} held-out sentences) "
            f"of {r['recipe']}, from the teacher's leading slices (`--init teacher`) or its most important FFN units (`--init importance`; in "
            f"brackets: over leading); step 0 is the start. {r['teacher']}, {r['threads']} thread, commit {commit(r)}, from "
            "`benchmarks/results/training/init-slices.json`.\n")


def render_shape_rank(results: Path) -> str:
    """benchmarks/shape_rank.py: ê of each shape beside the skill its student keeps, and Spearman's ρ of each ranking."""
    r = one(results, "shapes/rank.json")
    if r is None:
        return "No ranking of shapes is committed yet.\n"
    variants = list(r["errors"])
    lines = ["| model | shape | parameters | " + " | ".join(f"ê {v}" for v in variants) + " | kept above chance, pooled |",
             "|---|---|---:|" + "---:|" * (len(variants) + 1)]
    for m in sorted(r["models"], key=lambda m: -(m["pooled"] or 0)):
        lines.append(f"| {m['model']} | ⟨{m['arch']}⟩ | {m['params']:,} | " + " | ".join(f"{m['errors'][v]:.4f}" for v in variants)
                     + f" | {'–' if m['pooled'] is None else pct(m['pooled'])} |")
    lines += ["", "| ranking | " + " | ".join(r["tasks"]) + " | pooled |", "|---|" + "---:|" * (len(r["tasks"]) + 1)]
    lines += [f"| {name} | " + " | ".join("–" if x[t] is None else f"{x[t]:.3f}" for t in (*r["tasks"], "pooled")) + " |" for name, x in r["rho"].items()]
    return ("\n".join(lines) + f"\n\nSpearman's ρ between each ranking (−ê: a lower ê should keep more; p̂: a larger student should) and the "
            f"share kept above chance (mean over seeds, ×100 above), over {len(r['models'])} shapes (– below 3); ê from `bort compress`'s "
            f"extraction surrogate, INIT:N steps. {r['teacher']}, commit {commit(r)}, from `benchmarks/results/shapes/rank.json`.\n")


def render_overlap(results: Path) -> str:
    """benchmarks/overlap.py: the teacher's and students' dev scores on the examples whose texts the training split holds, and
    on the others, with the share kept above chance on each."""
    docs = load(results / "overlap")
    if not docs:
        return "No split of the dev examples by overlap is committed yet.\n"
    lines = []
    for r in docs:
        students = [m for m in r["models"] if m != "teacher"]
        lines += [f"{r['job']}, seed {r['seed']} ({r['left_out_learnt']} dev examples among the students' new inputs left out):", "",
                  "| dev examples | how many | B | T | " + " | ".join(f"{m}: S int8 | {m}: kept above chance" for m in students) + " |",
                  "|---|---:|---:|---:|" + "---:|---:|" * len(students)]
        for name, row in r["subsets"].items():
            b, t = row["baseline"], row["teacher"]
            cells = [f"{pct(row[m])} | {pct((row[m] - b) / (t - b)) if t > b else '–'}" for m in students]
            lines.append(f"| {name} | {row['examples']:,} | {pct(b)} | {pct(t)} | " + " | ".join(cells) + " |")
        lines.append("")
    return ("\n".join(lines) + f"\nScores ×100 on the dev split, cut by whether an example's first text (or either text) is one of the training "
            f"split's (the scoreboard's training subset); B the training set's majority class on each cut; students on int8; commits "
            f"{commits(docs)}; from `benchmarks/results/overlap/`.\n")


def render_grouped_teacher(results: Path) -> str:
    """benchmarks/grouped_teacher.py: the scoreboard's teacher fine-tuned again on batches of similar lengths (compress's default
    for the student only) beside the same teacher on random batches."""
    docs = load(results / "training" / "grouped-teacher")
    if not docs:
        return "No grouped teacher is committed yet.\n"
    lines = ["| task | seed | lr | B | T, random batches | T, grouped by length | Δ | grouped's steps run |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in sorted(docs, key=lambda r: (rank(r["job"]), r["seed"])):
        g, t = r["grouped"], r["random"]
        here = "" if t.get("trained_here") else " (another machine)"
        lines.append(f"| {r['job']} | {r['seed']} | {r['lr']:g} | {pct(r['baseline_score'])} | {pct(t['score'])}{here} | {pct(g['score'])} | "
                     f"{100 * (g['score'] - t['score']):+.1f} | {g['steps_run']:,} |")
    return ("\n".join(lines) + f"\n\nDev scores ×100 (the mean of a task's metrics), each teacher choosing its epoch on the held-out slice of the "
            f"training set, the scoreboard's settings and rate; the random-batch teacher is the scoreboard's run, on the same machine "
            f"unless marked. "
            f"Commits {commits(docs)}; from `benchmarks/results/training/grouped-teacher/`.\n")
