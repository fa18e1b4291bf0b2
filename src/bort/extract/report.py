"""The run folder's outputs: result.json, candidates.csv, pareto.json, pareto.png, report.md and best/."""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

from bort.atomic import atomic_dir, atomic_write_text
from bort.extract.fptas import Candidate, SearchResult
from bort.extract.pareto import pareto_doc
from bort.models.card import Card
from bort.models.student import build_student
from bort.plots import plt, save_figure
from bort.records import Record
from bort.surrogates.latency import LatencySettings

ERROR_LABELS = {"kl": "KL(p_T ‖ p_S) to the teacher", "ce": "cross-entropy to the teacher",
                "representation": "weighted representation terms to the teacher"}

COLUMNS = ("D", "A", "H", "I", "params", "params_effective", "latency_ms", "flops", "s", "error", "w", "status")


def candidate_row(c: Candidate, trained: set) -> dict:
    """One table row; ê and W are null where not trained or ineligible (and ê where diverged)."""
    if not c.eligible:
        status = "ineligible"
    elif c.arch not in trained:
        status = "untrained"
    else:
        status = "diverged" if math.isinf(c.error) else "trained"
    finite_error = c.error if c.error is not None and math.isfinite(c.error) else None
    return {
        **c.arch.asdict(), "params": c.params, "params_effective": c.params_effective, "latency_ms": c.latency_ms,
        "flops": c.flops, "s": c.s, "error": finite_error, "w": c.w, "status": status,
    }


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points no other point beats on both coordinates (lower is better), sorted by x."""
    front, best_y = [], math.inf
    for x, y in sorted(points):
        if y < best_y:
            front.append((x, y))
            best_y = y
    return front


def plot_pareto(path: Path, rows: list[dict], best: dict, teacher: dict, pareto: dict) -> None:
    """Size and latency (or FLOPs) against ê, with the Pareto front, the chosen ξ, the best ξ per speed-up and T marked."""
    trained = [r for r in rows if r["error"] is not None]
    cost_key, cost_label = ("latency_ms", "latency (ms)") if best["latency_ms"] is not None else ("flops", "FLOPs")
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    for ax, key, label in ((axes[0], "params", "parameters"), (axes[1], cost_key, cost_label)):
        xs = [r[key] for r in trained]
        ax.scatter(xs, [r["error"] for r in trained], s=18, alpha=0.6, label="trained candidates")
        front = pareto_front([(r[key], r["error"]) for r in trained])
        ax.step([x for x, _ in front], [y for _, y in front], where="post", color="tab:orange", label="Pareto front")
        ax.scatter([e[key] for e in pareto["front"]], [e["error"] for e in pareto["front"]], s=70, facecolors="none",
                   edgecolors="tab:green", label="front on (p̂, î, ê)")
        labels: dict[str, list[str]] = {}  # one label per point, naming every speed-up it is the best at
        for name, e in pareto["best_by_speedup"].items():
            labels.setdefault(e["arch"], []).append(name)
        for arch, names in labels.items():
            e = pareto["best_by_speedup"][names[0]]
            ax.annotate(f"best ≥{', '.join(names)}", (e[key], e["error"]), textcoords="offset points", xytext=(6, 6), fontsize=7,
                        color="tab:purple")
        ax.scatter([best[key]], [best["error"]], marker="*", s=220, color="tab:red", zorder=5, label=f"chosen ⟨{best['D']},{best['A']},{best['H']},{best['I']}⟩")
        if teacher.get(key) is not None:
            ax.axvline(teacher[key], color="gray", linestyle="--", label=f"teacher T ⟨{teacher['D']},{teacher['A']},{teacher['H']},{teacher['I']}⟩")
        if teacher.get("error_floor") is not None:
            ax.axhline(teacher["error_floor"], color="gray", linestyle=":", label="ê floor")
        ax.set_xlabel(label)
        ax.set_ylabel(f"ê: {ERROR_LABELS[pareto['error_kind']]}")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("bort extract: size and speed against error")
    save_figure(fig, path)


def _markdown(result: dict, rows: list[dict], pareto: dict) -> str:
    t, b = result["teacher"], result["best"]
    lines = [
        "# bort extract report",
        "",
        (f"- teacher: `{result['settings']['teacher']}` ⟨{t['D']},{t['A']},{t['H']},{t['I']}⟩, {t['params']:,} parameters, "
         f"latency {_fmt(t['latency_ms'])} ms"),
        f"- corpus: `{result['settings']['corpus']}` ({result['corpus']['train_sequences']} training / {result['corpus']['heldout_sequences']} held-out sequences of {result['settings']['seq_len']})",
        f"- space: {result['space']['name']}, |Ξ| = {result['space_size']} ({result['eligible']} eligible)",
        (f"- steps n = {result['steps']}, ε = {result['epsilon']}, refine = {result['refine']}, seed = {result['seed']}, "
         f"Θ = {', '.join(result['thetas'])}"),
        _latency_line(result),
        f"- trained {result['evaluated']} candidates in {result['wall_s']:.0f} s, {_backend_text(result['backend'])}",
        f"- ê: {ERROR_LABELS[result['error_kind']]} (`--error {result['error_kind']}`), teacher entropy {_fmt(t.get('entropy'), 4)}",
        "",
        (f"**Best: ⟨{b['D']},{b['A']},{b['H']},{b['I']}⟩**, W = {b['w']:.4g}, {b['params']:,} parameters "
         f"({100 * b['params'] / t['params']:.1f}% of T), latency {_fmt(b['latency_ms'])} ms, ê = {b['error']:.4f}"),
        "",
        *_pareto_lines(pareto),
        "## Candidates ranked by W (trained ones first)",
        "",
        "| rank | D | A | H | I | params | effective | latency ms | GFLOPs | S | ê | W | status |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    ranked = sorted(rows, key=lambda r: (r["w"] is None, -(r["w"] or 0), -(r["s"] or -1)))
    for i, r in enumerate(ranked, 1):
        lines.append(
            f"| {i} | {r['D']} | {r['A']} | {r['H']} | {r['I']} | {r['params']:,} | {r['params_effective']:,} | {_fmt(r['latency_ms'])} | "
            f"{r['flops'] / 1e9:.3f} | {_fmt(r['s'], 4)} | {_fmt(r['error'], 4)} | {_fmt(r['w'], 4)} | {r['status']} |"
        )
    return "\n".join(lines) + "\n"


def _pareto_lines(pareto: dict) -> list[str]:
    """report.md's tables of the best ξ per speed-up and of the front (pareto.json), each ξ ready for ``bort pretrain --arch``."""
    cost = "latency ms" if pareto["cost"] == "latency_ms" else "GFLOPs"

    def row(label: str, e: dict) -> str:
        value = _fmt(e["latency_ms"]) if pareto["cost"] == "latency_ms" else f"{e['flops'] / 1e9:.3f}"
        return f"| {label} | `--arch {e['arch']}` | {e['params']:,} | {value} | {e['speedup']:.1f}× | {_fmt(e['error'], 4)} | {_fmt(e['w'], 4)} |"

    head = [f"| | ξ | params | {cost} | speed-up | ê | W |", "|---|---|---:|---:|---:|---:|---:|"]
    by_speedup = [row(f"≥ {k[:-1]}×", e) for k, e in pareto["best_by_speedup"].items()] or ["| — | no trained ξ is 2× faster than T | | | | | |"]
    return ["## Best ξ per speed-up (pareto.json)", "", *head, *by_speedup, "",
            "## Pareto front on (p̂, î, ê)", "", *head, *(row("front", e) for e in pareto["front"]), ""]


def _latency_line(result: dict) -> str:
    lat = result["latency"]
    if lat["mode"] == "flops":
        return f"- î: analytic FLOPs at batch {lat['batch']}, sequence {lat['seq']} (no latency measured)"
    settings = LatencySettings(**lat)
    line = (f"- î: measured latency on {settings.runtime_name} at batch {lat['batch']}, sequence {lat['seq']}, {lat['threads']} thread(s), "
            f"on {result['latency_device']}")
    return line if settings.runtime == "torch" else line + "; each width's shallowest and deepest ξ measured, the depths between interpolated"


def _backend_text(backend: dict) -> str:
    if backend["kind"] == "ray":
        where = backend["address"] or "a local cluster"
        return f"as Ray tasks on {where} ({backend['threads']} CPU(s), {backend['gpus_per_trial']:g} GPU(s) each)"
    workers = backend["workers"] or 1
    return "in the driver process" if workers == 1 else f"on {workers} local worker processes"


def _fmt(value, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


@dataclass(frozen=True)
class ExtractResult(Record):
    """``result.json``: the teacher T, the space, the search's settings and counts, the best ξ and every candidate's row."""

    teacher: dict
    space: dict
    space_size: int
    eligible: int
    evaluated: int
    intervals: int
    epsilon: int
    steps: int
    refine: int
    seed: int
    thetas: list[str]
    error_kind: str
    loss: dict
    latency: dict
    latency_device: str | None
    backend: dict
    settings: dict
    corpus: dict
    wall_s: float
    best: dict
    candidates: list[dict]


def write_outputs(out: Path, *, cfg, teacher, teacher_path: Path, corpus, space, result: SearchResult, teacher_row: dict, latency_device: str | None,
                  wall_s: float) -> ExtractResult:
    """Write every output of the run folder atomically; returns ``result.json``'s record."""
    trained = {c.arch for c in result.trained}
    rows = [candidate_row(c, trained) for c in sorted(result.candidates, key=lambda c: c.arch)]
    best = candidate_row(result.best, trained)
    record = ExtractResult(
        teacher=teacher_row, space=space.as_dict(), space_size=len(result.candidates), eligible=sum(c.eligible for c in result.candidates),
        evaluated=len(result.trained), intervals=result.intervals, epsilon=cfg.epsilon, steps=cfg.steps, refine=cfg.refine, seed=cfg.seed,
        thetas=[t.key for t in cfg.thetas], error_kind=cfg.error_settings().error_kind, loss=asdict(cfg.loss), latency=asdict(cfg.latency),
        latency_device=latency_device,
        backend=cfg.backend.describe(),
        settings={"teacher": str(cfg.teacher), "teacher_path": str(teacher_path), "mlm_teacher_path": str(teacher.path), "corpus": str(cfg.corpus),
                  "seq_len": cfg.seq_len, "max_params": cfg.max_params, "max_latency_ms": cfg.max_latency_ms, "min_speedup": cfg.min_speedup,
                  "init": cfg.init, "representation": asdict(cfg.representation)},
        corpus={"documents": corpus.documents, "tokens": corpus.tokens, "train_sequences": len(corpus.train), "heldout_sequences": len(corpus.heldout)},
        wall_s=wall_s, best=best, candidates=rows,
    )
    doc = record.to_dict()
    atomic_write_text(out / "result.json", json.dumps(doc, indent=2))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: ("" if r[k] is None else r[k]) for k in COLUMNS} for r in rows)
    atomic_write_text(out / "candidates.csv", buf.getvalue())
    pareto = pareto_doc(rows, teacher_row, record.error_kind)
    atomic_write_text(out / "pareto.json", json.dumps(pareto, indent=2))
    plot_pareto(out / "pareto.png", rows, best, teacher_row, pareto)
    atomic_write_text(out / "report.md", _markdown(doc, rows, pareto))
    with atomic_dir(out / "best") as tmp:
        # The chosen shape in the teacher's family, randomly initialised from the run's seed, with
        # the teacher's tokenizer: loadable by AutoModelForMaskedLM, and the input of `bort pretrain`.
        build_student(teacher.config, result.best.arch, seed=cfg.seed).save_pretrained(tmp)
        teacher.tokenizer.save_pretrained(tmp)
        atomic_write_text(tmp / "bort_extract.json", json.dumps({"trained": False, "best": best, "teacher": str(cfg.teacher)}, indent=2))
        where = f"{cfg.latency.runtime_name}, batch {cfg.latency.batch} × {cfg.latency.seq} tokens, {latency_device}"
        Card("bort extract", str(cfg.teacher), settings={"epsilon": cfg.epsilon, "steps": cfg.steps, "space": str(cfg.space), **record.settings},
             metrics={f"ê ({record.error_kind})": best["error"], "S": best["s"], "W": best["w"]}, evaluation="Search scores (algorithms.md §3)",
             latency={where: best["latency_ms"], f"the teacher, {where}": teacher_row["latency_ms"]} if best["latency_ms"] is not None else {},
             ).write(tmp, name=out / "best")
    return record
