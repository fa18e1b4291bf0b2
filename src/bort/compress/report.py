"""``bort compress``'s answer: ``RUN/compress.json``, ``RUN/report.md`` and ``RUN/report.png``.

The numbers come from the stages' own outputs: the scoring stages (:mod:`bort.compress.score`: the int8
student, the fp32 student, the teacher and the trivial baseline on the scored split, ``kept_over_baseline``
and ``kept`` with their intervals), the medians of ``RUN/bench/bench.json`` at its first batch size, and
``RUN/bench_real/<task>/bench.json``. For each (teacher, student) pair: ``speedup_same_runtime`` is the
teacher's latency on the student's runtime (int8 ONNX) over the student's, ``speedup_vs_eager`` the
teacher's on Hugging Face eager PyTorch fp32 over the student's, and ``speedup_real_lengths`` (per batch
size) the teacher's int8 time per sequence over the student's on the scored split's own texts. The report
leads with ``kept_over_baseline``, pooled over the tasks whose teacher beats its baseline (algorithms.md §4d).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from bort.atomic import atomic_write_text
from bort.compress.score import percent, write_card
from bort.compress.stages import Ledger
from bort.models.loading import ONNX_FILE, model_dir
from bort.plots import plt, save_figure
from bort.records import Record
from bort.tasks.kept import pooled

EAGER = "torch-fp32"  # how users run the teacher today: transformers, eager PyTorch, fp32


@dataclass(frozen=True)
class CompressResult(Record):
    """``compress.json``: the teacher, the chosen student shape, the stages, per task (or for the task-agnostic
    student) the quality kept and the speed-ups, with the final student folder and its int8 export, and ``pooled``:
    the mean ``kept_over_baseline`` of the tasks whose teacher beats its baseline."""

    teacher: str
    arch: str
    min_speedup: float
    pick: str  # how the student shape was chosen: quality (lowest ê at the speed-up) or w (best W)
    bench_batch: int
    tasks: dict[str, dict] = field(default_factory=dict)
    student: dict = field(default_factory=dict)  # without a task: the encoder's folder, export and speed-ups
    stages: list[dict] = field(default_factory=list)
    pooled: dict = field(default_factory=dict)


def speed(bench_doc: dict, teacher: str, student: str, batch: int) -> dict:
    """Latency of ``teacher`` (every runtime) and ``student`` (its fastest) at one batch size, and the speed-ups."""
    rows = [r for r in bench_doc["results"] if r["batch"] == batch]
    t = {r["runtime"]: r["median_ms"] for r in rows if r["model"] == teacher}
    s = min((r for r in rows if r["model"] == student), key=lambda r: r["median_ms"])
    fastest = min(t, key=t.get)
    return {"teacher_ms": t, "teacher_fastest_runtime": fastest, "student_ms": s["median_ms"], "student_runtime": s["runtime"],
            "teacher_throughput_seq_s": batch * 1000.0 / t[fastest], "student_throughput_seq_s": s["throughput_seq_s"],
            "speedup_same_runtime": t[s["runtime"]] / s["median_ms"] if s["runtime"] in t else None,
            "speedup_vs_eager": t[EAGER] / s["median_ms"] if EAGER in t else None,
            "speedup_vs_teacher_fastest": t[fastest] / s["median_ms"]}


def _pair(bench_doc: dict, teacher: str, student: str) -> dict:
    """A (teacher, student) pair's numbers: the speed-ups at the first batch size, every batch's under ``by_batch``, the sizes."""
    batches = bench_doc["settings"]["batches"]
    info = {m["name"]: m for m in bench_doc["models"]}[teacher]
    by_batch = {str(b): speed(bench_doc, teacher, student, b) for b in batches}
    return {**by_batch[str(batches[0])], "by_batch": by_batch,
            "teacher_params": info.get("params"), "teacher_onnx_int8_mb": _mb(info.get("onnx-int8", {}).get("folder")), "student_onnx_mb": _mb(student)}


def _mb(folder: str | None) -> float | None:
    path = Path(folder or "") / ONNX_FILE
    return path.stat().st_size / 1e6 if folder and path.is_file() else None


def _real(folder: Path) -> dict:
    """``speedup_real_lengths`` (batch → the teacher's int8 ms per sequence over the student's) of a benchmark on real inputs, and
    the milliseconds behind it."""
    path = folder / "bench.json"
    if not path.is_file():
        return {}
    doc = json.loads(path.read_text(encoding="utf-8"))
    teacher, student = (m["name"] for m in doc["models"])
    ms = {(r["model"], r["batch"]): r["ms_per_sequence"] for r in doc["real"]}
    batches = doc["settings"]["text_batches"]
    return {"speedup_real_lengths": {str(b): ms[teacher, b] / ms[student, b] for b in batches},
            "real_lengths": {"texts": doc["texts"]["count"], "teacher_ms_per_seq": {str(b): ms[teacher, b] for b in batches},
                             "student_ms_per_seq": {str(b): ms[student, b] for b in batches}}}


def _named_now(doc: dict, models: list[str]) -> dict:
    """``bench.json`` with its models (in the order they were given) named as this run names them: the benchmark of a copied run
    folder named the original's folders."""
    names = dict(zip((m["name"] for m in doc["models"]), models))
    return {**doc, "models": [{**m, "name": names.get(m["name"], m["name"])} for m in doc["models"]],
            "results": [{**r, "model": names.get(r["model"], r["model"])} for r in doc["results"]]}


def write_report(ledger: Ledger, cfg, *, chosen: dict, tasks: dict[str, dict], pairs: list[tuple[str, str]], student: Path,
                 quality: dict) -> CompressResult:
    """Write compress.json, report.md and report.png into the run folder; returns the record. ``quality``: without a task,
    the embedding scores of teacher and student (``--embedding-task``), if any."""
    doc = _named_now(json.loads((ledger.out / "bench" / "bench.json").read_text(encoding="utf-8")), [m for pair in pairs for m in pair])
    for (name, task), (t, s) in zip(tasks.items(), pairs):
        task.update(_pair(doc, t, s), **_real(ledger.out / "bench_real" / name))
        write_card(task, name, Path(task["student_folder"]), Path(task["student_onnx"]), speed=_card_speed(task, doc["settings"]))
    agnostic = {} if tasks else {"student_folder": str(model_dir(student)), "student_onnx": pairs[0][1], **_pair(doc, *pairs[0]), **quality,
                                 **_real(ledger.out / "bench_real" / "embedding")}
    if quality:  # the export's card, with the embedding scores it got at the scoring stage and now the speed
        write_card(agnostic, f"{quality['task']} (sentence embeddings, no fine-tuning)", student, Path(pairs[0][1]),
                   speed=_card_speed(agnostic, doc["settings"]))
    record = CompressResult(teacher=str(cfg.teacher), arch=chosen["arch"], min_speedup=cfg.min_speedup, pick=cfg.pick, bench_batch=doc["settings"]["batches"][0],
                            tasks=tasks, student=agnostic, stages=[{k: s[k] for k in ("name", "status", "wall_s", "output")} for s in ledger.stages],
                            pooled=pooled(list(tasks.values()) or ([agnostic] if quality else [])))
    ledger.write(**{k: v for k, v in record.to_dict().items() if k != "stages"})
    atomic_write_text(ledger.out / "report.md", markdown(record.to_dict(), chosen, seq=doc["settings"]["seq"]))
    plot(record.to_dict(), ledger.out / "report.png")
    return record


def _card_speed(e: dict, settings: dict) -> dict[str, str]:
    """The speed-ups of a task's int8 student over its teacher, for the model card."""
    shape = f"batch {settings['batches'][0]} × {settings['seq']} tokens"
    rows = {f"over the teacher on the same runtime ({e['student_runtime']}, {shape})": _x(e["speedup_same_runtime"]),
            f"over the teacher in Hugging Face eager fp32 ({shape})": _x(e["speedup_vs_eager"])}
    real = e.get("speedup_real_lengths") or {}
    rows.update({f"over the teacher's int8 export on the scored split's own texts, batch {b}": _x(v) for b, v in real.items()})
    return rows


def _x(v: float | None) -> str:
    return "–" if v is None else f"{v:.1f}×"


def _interval(ci: list[float] | None) -> str:
    return "–" if not ci else f"{percent(ci[0])} to {percent(ci[1])}"


def kept_words(e: dict, what: str) -> str:
    """The quality kept, in words: the share of the teacher's skill above chance with its interval, the raw ratio, the scores;
    or, where the teacher does not beat the trivial baseline, that it says nothing."""
    scores = (f"int8 student {e['student_metric']:.4f} (fp32 {e['student_metric_fp32']:.4f}), teacher {e['teacher_metric']:.4f}, "
              f"baseline {e['baseline_metric']:.4f}, on {e['scored_split']}")
    if not e["teacher_beats_baseline"]:
        return (f"the teacher does not beat the trivial baseline on {what} (T − B: 95% interval {e['teacher_minus_baseline_interval'][0]:+.4f} "
                f"to {e['teacher_minus_baseline_interval'][1]:+.4f}), so no share kept can be read from it ({scores})")
    return (f"kept {percent(e['kept_over_baseline'])} of the teacher's skill above chance on {what} (95% interval "
            f"{_interval(e['kept_over_baseline_interval'])}; raw S/T {percent(e['kept'])}; {scores})")


def _real_words(e: dict) -> str:
    real = e.get("speedup_real_lengths")
    return "" if not real else "; on real inputs " + ", ".join(f"{_x(v)} at batch {b}" for b, v in real.items())


def summary(result: CompressResult) -> list[str]:
    """One line per task (or for the task-agnostic student): the quality kept, the speed-ups and the final student; then the pooled figure."""
    speedups = "{} on the same runtime, {} vs HF eager"
    lines = [f"{name}: {kept_words(t, t['metric'])}; {speedups.format(_x(t['speedup_same_runtime']), _x(t['speedup_vs_eager']))}{_real_words(t)}; "
             f"student {t['student_folder']} (int8: {t['student_onnx']})" for name, t in result.tasks.items()]
    if lines:
        return lines + ([f"pooled over {result.pooled['tasks']} task(s): kept {percent(result.pooled['kept_over_baseline'])} of the teacher's "
                         f"skill above chance (raw S/T {percent(result.pooled['kept'])})"] if len(result.tasks) > 1 else [])
    s = result.student
    kept = f"{kept_words(s, s['task'] + ' embedding ' + s['metric'])}; " if "kept" in s else ""
    return [(f"task-agnostic student ⟨{result.arch}⟩: {kept}{speedups.format(_x(s['speedup_same_runtime']), _x(s['speedup_vs_eager']))}"
             f"{_real_words(s)}; {s['student_folder']} (int8: {s['student_onnx']})")]


def _quality(entries: dict[str, dict], pool: dict) -> list[str]:
    """report.md's first table: per task B, T, S (int8) and fp32, kept above chance and raw, with intervals; the pooled figure first."""
    lines = []
    if pool.get("kept_over_baseline") is not None:
        lines += [f"**Kept above chance: {percent(pool['kept_over_baseline'])}** of the teacher's skill, the mean of (S − B)/(T − B) over "
                  f"{pool['tasks']} task(s) whose teacher beats its baseline (raw S/T over the same: {percent(pool['kept'])}"
                  + (f"; {pool['left_out']} left out" if pool["left_out"] else "") + ").", ""]
    lines += ["S is the int8 ONNX export that ships, T the teacher (fine-tuned, for a task), B the trivial baseline (the training set's "
              "majority class; 0 for correlations and MCC), all on a split no stage chose on; 95% paired bootstrap intervals.", "",
              "| task | metric | B | T | S (int8) | S (fp32) | kept above chance (S − B)/(T − B) | raw S/T |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for name, e in entries.items():
        kob = (f"**{percent(e['kept_over_baseline'])}** ({_interval(e['kept_over_baseline_interval'])})" if e["teacher_beats_baseline"]
               else "– (the teacher does not beat B)")
        lines.append(f"| {name} ({e['scored_split']}) | {e['metric']} | {e['baseline_metric']:.4f} | {e['teacher_metric']:.4f} | "
                     f"{e['student_metric']:.4f} | {e['student_metric_fp32']:.4f} | {kob} | {percent(e['kept'])} ({_interval(e['kept_interval'])}) |")
    notes = [f"- {name}: {kept_words(e, e['metric'])}." for name, e in entries.items() if not e["teacher_beats_baseline"]]
    notes += [f"- {name}: teacher and student chose their epoch on the {e['scored_split']} split they are scored on (`--select-on dev`), "
              "so these scores are optimistic." for name, e in entries.items() if e.get("select_on") == "dev" and e["scored_split"] != "test"]
    notes += [f"- {name}: {e['left_out_learnt']} {e['scored_split']} example(s) left out of every score (of {e['examples'] + e['left_out_learnt']}): "
              "their inputs were among the student's new inputs, labelled by the teacher." for name, e in entries.items() if e.get("left_out_learnt")]
    notes += [line for name, e in entries.items() for line in _grid_notes(name, e)]
    return lines + ([""] + notes if notes else []) + [""]


def _grid_notes(name: str, e: dict) -> list[str]:
    """A line per learning-rate grid of the task (--teacher-lrs, --student-lrs): each rate's selection score, the chosen one bold."""
    grids = {model: e[f"{model}_selection"] for model in ("teacher", "student") if e.get(f"{model}_selection")}
    if not grids:  # one rate each (and the sentence-embedding entry, which has no fine-tuning)
        return []
    chosen = {"teacher": e["teacher_folder"], "student": str(Path(e["student_folder"]).parent)}
    return [f"- {name}: the {model}'s learning rate, chosen on the held-out slice (selection score per rate): "
            + ", ".join((f"**{rate} {score:.4f}**" if folder == chosen[model] else f"{rate} {score:.4f}")
                        for folder, score in grid.items() for rate in [Path(folder).name.removeprefix("lr")])
            for model, grid in grids.items()]


def _real_rows(entries: dict[str, dict]) -> list[str]:
    rows = [f"| {name} | {e['real_lengths']['texts']} | {b} | {e['real_lengths']['teacher_ms_per_seq'][b]:.3f} | "
            f"{e['real_lengths']['student_ms_per_seq'][b]:.3f} | {_x(v)} |"
            for name, e in entries.items() if e.get("speedup_real_lengths") for b, v in e["speedup_real_lengths"].items()]
    if not rows:
        return []
    return ["## Speed on real inputs (the scored split's own texts, unpadded; both on int8 ONNX)", "",
            "| | texts | batch | teacher ms per sequence | student ms per sequence | speed-up |", "|---|---:|---:|---:|---:|---:|", *rows, ""]


def _speed_rows(name: str, e: dict) -> list[str]:
    rows = []
    for batch, b in e["by_batch"].items():
        t, fast = b["teacher_ms"], b["teacher_fastest_runtime"]
        rows.append(f"| {name} | {batch} | {t.get(EAGER, float('nan')):.2f} | {t[fast]:.2f} ({fast}) | {b['student_ms']:.2f} ({b['student_runtime']}) | "
                    f"{b['teacher_throughput_seq_s']:.1f} → {b['student_throughput_seq_s']:.1f} | {_x(b['speedup_same_runtime'])} | "
                    f"{_x(b['speedup_vs_eager'])} | {_x(b['speedup_vs_teacher_fastest'])} |")
    return rows


def _size(mb: float | None) -> str:
    return "–" if mb is None else f"{mb:.1f}"


def _timed(chosen: dict) -> str:
    """The pick's check, in words: its speed-up timed beside the teacher, and how many better-ê shapes failed it."""
    if chosen.get("speedup_timed") is None:
        return ""
    failed = len(chosen["checked"]) - 1
    return f", {chosen['speedup_timed']:.1f}× timed beside the teacher" + (f"; {failed} better-ranked shape(s) timed below the budget" if failed else "")


def markdown(doc: dict, chosen: dict, *, seq: int) -> str:
    """report.md: quality kept, latency and speed-ups, sizes, and each stage's wall time."""
    lines = ["# bort compress report", "",
             (f"Teacher `{doc['teacher']}` ({chosen['teacher_params']:,} parameters) → student ⟨{doc['arch']}⟩ ({chosen['params']:,} parameters, "
              f"{100 * chosen['params'] / chosen['teacher_params']:.1f}%), the {'best-W' if doc['pick'] == 'w' else 'lowest-ê'} ξ at least {doc['min_speedup']:g}× faster by the "
              f"extraction's î ({chosen['speedup_estimate']:.1f}×{_timed(chosen)}; ê {chosen['error_kind']} {chosen['error']:.4g})."), ""]
    if doc["tasks"]:
        lines += ["## Quality kept", "", *_quality({e["task"]: e for e in doc["tasks"].values()}, doc["pooled"])]
    elif "kept" in doc["student"]:
        lines += ["## Quality kept (sentence embeddings, without fine-tuning: the cosine of the two texts' embeddings against the gold "
                  "scores)", "", *_quality({doc["student"]["task"]: doc["student"]}, doc["pooled"])]
    speed_head = [f"## Latency (sequence {seq}; median ms, from bench/bench.md) and speed-ups of the student", "",
                  ("| | batch | teacher, HF eager fp32 | teacher, fastest | student, fastest | sequences/s, teacher's fastest → student | "
                   "same runtime | vs HF eager | vs teacher's fastest |"), "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    entries = doc["tasks"] or {"task-agnostic encoder": doc["student"]}
    lines += speed_head + [row for name, e in entries.items() for row in _speed_rows(name, e)] + [""] + _real_rows(entries)
    lines += ["## Final students", "", "| | folder | int8 ONNX | MB (int8 ONNX) | teacher's MB (int8 ONNX) |", "|---|---|---|---:|---:|"]
    lines += [f"| {name} | `{e['student_folder']}` | `{e['student_onnx']}` | {_size(e['student_onnx_mb'])} | {_size(e['teacher_onnx_int8_mb'])} |"
              for name, e in entries.items()]
    lines += ["", "## Stages", "", "| stage | status | wall time | output |", "|---|---|---:|---|"]
    lines += [f"| {s['name']} | {s['status']} | {'–' if s['wall_s'] is None else format(s['wall_s'], '.0f') + ' s'} | `{s['output']}` |"
              for s in doc["stages"]]
    return "\n".join(lines) + "\n"


def plot(doc: dict, path: Path) -> None:
    """report.png: the quality kept above chance (with its interval) against the speed-ups per task, and each stage's wall time."""
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4.5))
    entries = doc["tasks"] or ({"embeddings": doc["student"]} if "kept" in doc["student"] else {})
    # Only the tasks whose teacher beats its baseline: elsewhere the share says nothing (report.md says so in words).
    points = {n: e for n, e in entries.items() if e["teacher_beats_baseline"] and e["kept_over_baseline"] is not None}
    for name, e in points.items():
        kept, ci = 100 * e["kept_over_baseline"], e["kept_over_baseline_interval"]
        for key, marker in (("speedup_same_runtime", "o"), ("speedup_vs_eager", "s")):
            if e[key] is not None:
                ax.errorbar([e[key]], [kept], yerr=[[max(0.0, kept - 100 * ci[0])], [max(0.0, 100 * ci[1] - kept)]], fmt=marker, capsize=4,
                            label=f"{name}: {key.removeprefix('speedup_').replace('_', ' ')}")
                ax.annotate(name, (e[key], kept), textcoords="offset points", xytext=(5, 5), fontsize=8)
    if not points:
        words = "no task whose teacher beats its baseline" if entries else "no task: a task-agnostic student"
        ax.text(0.5, 0.5, f"{words}\n(see report.md)", ha="center", va="center", transform=ax.transAxes)
    else:
        ax.legend(fontsize=7)
    ax.set_xlabel("speed-up over the teacher (×)")
    ax.set_ylabel("teacher's skill kept above chance, (S − B)/(T − B) (%)")
    ax.set_title("quality kept (int8 student) vs speed-up")
    ax.grid(alpha=0.3)
    stages = [s for s in doc["stages"] if s["wall_s"] is not None]
    bx.barh([s["name"] for s in stages], [s["wall_s"] for s in stages], color="tab:blue")
    bx.invert_yaxis()
    bx.set_xlabel("wall time (s)")
    bx.set_title("stages")
    save_figure(fig, path)
