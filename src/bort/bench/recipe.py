"""``bort bench``: CPU latency and throughput of models on every runtime that applies, measured together.

Runtimes: PyTorch eager fp32, PyTorch under bfloat16 autocast (where the CPU has native bf16),
ONNX Runtime fp32 and ONNX Runtime int8. A PyTorch folder is exported on the fly; an ONNX folder
(a ``bort export``, or Optimum's) runs on its own runtime only; ``--arch D,A,H,I`` adds a
random-weight encoder of that shape.
Every (model, runtime) is warmed up, then all are timed in rounds, in a rotating order, so that
machine noise (other processes, clock changes) spreads over all of them alike.

With ``--texts FILE`` every model is also timed on real inputs as they come (algorithms.md §4d): the file's
texts in their order, each batch padded only to its own longest input (truncated at ``--seq`` tokens),
at ``--text-batch`` sizes (1: latency; 32: throughput); one timed call is a pass over the texts.
"""

from __future__ import annotations

import re
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import BertConfig

from bort.arch import Arch
from bort.atomic import atomic_dir, atomic_write_text
from bort.data.tokens import tokenize
from bort.errors import BortError
from bort.export.onnx import ExportConfig, export_model, export_onnx
from bort.machine import cpu_info, versions
from bort.models.families import config_arch
from bort.models.loading import ONNX_FILE, head_by_kind, load_model, load_tokenizer, position_limit, read_config, resolve_model_path
from bort.models.runtime import QUANTIZE_OF, OnnxPredictor, Predictor, TorchPredictor, export_info, load_predictor, sample_inputs
from bort.models.student import random_encoder
from bort.options import opt
from bort.plots import plt, save_figure
from bort.predict.recipe import PredictConfig, read_examples
from bort.records import Record
from bort.shared import PROGRESS, output_files
from bort.training.loop import autocast_dtype

RUNTIMES = ("torch-fp32", "torch-bf16", "onnx-fp32", "onnx-int8")


@dataclass(frozen=True)
class BenchConfig:
    """What to measure, and how. ``runs`` timed calls per (model, runtime) in each of ``rounds`` rounds."""

    out: Path = field(default=Path("runs/bench"), metadata=opt("output folder"))
    models: tuple[str, ...] = field(default=(), metadata=opt("PyTorch folders (exported on the fly into OUT/onnx/), or ONNX folders of "
                                                             "`bort export` or Optimum",
                                                             nargs="+", metavar="MODEL"))
    archs: tuple[Arch, ...] = field(default=(), metadata=opt("also random-weight encoders of these shapes", flag="--arch", parse=Arch.parse,
                                                             nargs="+", metavar="D,A,H,I"))
    teacher: str | None = field(default=None, metadata=opt("family of the --arch models, and their tokenizer for --texts: a model "
                                                           "folder or 'minilm-l6' (default: BERT, vocabulary 30,522, no tokenizer)"))
    batches: tuple[int, ...] = field(default=(1, 8), metadata=opt("batch sizes, comma-separated", flag="--batch"))
    seq: int = field(default=128, metadata=opt("sequence length"))
    threads: int = field(default=1, metadata=opt("CPU threads of every runtime"))
    runtimes: tuple[str, ...] = field(default=RUNTIMES, metadata=opt("comma-separated subset of the runtimes"))
    warmup: int = field(default=2, metadata=opt("untimed calls per model and runtime"))
    rounds: int = field(default=5, metadata=opt("interleaved rounds"))
    runs: int = field(default=3, metadata=opt("timed calls per model and runtime in each round"))
    texts: Path | None = field(default=None, metadata=opt("also time every model on real inputs: a text file (one per line, a tab between "
                                                          "a pair's segments), .csv/.tsv with a header, or .jsonl, as `bort predict` reads "
                                                          "them; unpadded, in their order"))
    text_batches: tuple[int, ...] = field(default=(1, 32), metadata=opt("batch sizes of --texts, comma-separated", flag="--text-batch"))
    max_texts: int = field(default=256, metadata=opt("time the first N texts of --texts", metavar="N"))
    seed: int = field(default=0, metadata=opt(cli=False))
    progress: bool = field(default=True, metadata=PROGRESS)

    def __post_init__(self) -> None:
        if not self.models and not self.archs:
            raise BortError("nothing to benchmark: pass --models FOLDER … and/or --arch D,A,H,I")
        if min(self.batches, default=0) < 1 or min(self.seq, self.threads, self.rounds, self.runs, self.max_texts) < 1:
            raise BortError("--batch sizes, --seq, --threads, --rounds, --runs and --max-texts must be at least 1")
        if min(self.text_batches, default=0) < 1:
            raise BortError("--text-batch sizes must be at least 1")
        if self.warmup < 0:
            raise BortError(f"--warmup must be 0 or more, got {self.warmup}")
        seen: dict[object, str] = {}
        for m in self.models:  # the same folder under two spellings is one model: each would be timed against itself
            key = Path(m).resolve() if Path(m).exists() else m
            if key in seen:
                raise BortError(f"--models names the same model twice ('{seen[key]}' and '{m}'); give each model once")
            seen[key] = m
        unknown = set(self.runtimes) - set(RUNTIMES)
        if unknown:
            raise BortError(f"unknown runtime(s) {', '.join(sorted(unknown))}: choose from {', '.join(RUNTIMES)}")


@dataclass(frozen=True)
class BenchResult(Record):
    """``bench.json``: the settings, the machine, the models and one row per (model, runtime, batch); with ``--texts``,
    ``real``: one row per (model, runtime, text batch) on the real inputs, and ``texts``: how many, and their mean length."""

    settings: dict
    machine: dict
    models: list[dict]
    results: list[dict]
    skipped: list[str]
    real: list[dict] = field(default_factory=list)
    texts: dict = field(default_factory=dict)


@dataclass
class _Entry:
    """One model of the benchmark, with the predictors of its runtimes."""

    name: str
    info: dict
    predictors: list[Predictor] = field(default_factory=list)
    tokenizer: object = None  # for --texts: a model folder's own; a random-weight model's is --teacher's (none without it)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.") or "model"


def _bf16_ok() -> bool:
    return autocast_dtype("auto", torch.device("cpu")) is not None


def _add_torch_runtimes(entry: _Entry, model, head, cfg: BenchConfig) -> None:
    if "torch-fp32" in cfg.runtimes:
        entry.predictors.append(TorchPredictor(model, head))
    if "torch-bf16" in cfg.runtimes and _bf16_ok():
        entry.predictors.append(TorchPredictor(model, head, bf16=True))


def _check_seq(config, name: str, cfg: BenchConfig) -> None:
    if cfg.seq > position_limit(config):
        raise BortError(f"--seq {cfg.seq} is longer than {name}'s {position_limit(config)} positions; use at most that")


def _folder_entry(name: str, cfg: BenchConfig, work: Path) -> _Entry:
    path = resolve_model_path(name)
    info = export_info(path)
    if info is not None:  # an ONNX export: its own runtime only
        predictor = load_predictor(path, threads=cfg.threads, tokenizer=False)
        _check_seq(predictor.config, name, cfg)
        return _Entry(name, {"source": str(path), "export": info}, [predictor] if predictor.runtime in cfg.runtimes else [],
                      load_tokenizer(path) if cfg.texts else None)
    model, head, path = load_model(path)
    _check_seq(model.config, name, cfg)
    entry = _Entry(name, {"source": str(path), "arch": config_arch(model.config).key, "params": sum(p.numel() for p in model.parameters())},
                   tokenizer=load_tokenizer(path) if cfg.texts else None)
    _add_torch_runtimes(entry, model, head, cfg)
    for runtime, quantize in QUANTIZE_OF.items():
        if runtime in cfg.runtimes:
            rel = Path("onnx") / f"{_slug(name)}-{runtime}"  # made in the work folder; recorded where it will be once swapped in
            export = ExportConfig(model=str(path), out=work / rel, quantize=quantize, progress=cfg.progress)
            entry.info[runtime] = {"folder": str(cfg.out / rel), "check": export_onnx(export).check}
            entry.predictors.append(load_predictor(work / rel, threads=cfg.threads, tokenizer=False))
    return entry


def _arch_entry(arch: Arch, base, tokenizer, cfg: BenchConfig, work: Path) -> _Entry:
    """A random-weight encoder of shape ``arch`` in ``base``'s family (no pooler, no head: the encoder's cost), timed on
    --texts through ``tokenizer`` (--teacher's: the same vocabulary) where there is one."""
    name = f"random ⟨{arch.key}⟩"
    _check_seq(base, name, cfg)
    model = random_encoder(base, arch, seed=cfg.seed)
    head = head_by_kind("encoder")
    entry = _Entry(name, {"arch": arch.key, "params": sum(p.numel() for p in model.parameters()), "family": base.model_type},
                   tokenizer=tokenizer)
    _add_torch_runtimes(entry, model, head, cfg)
    for runtime, quantize in QUANTIZE_OF.items():
        if runtime in cfg.runtimes:
            model.set_attn_implementation("eager")  # the attention graph ONNX Runtime fuses (see bort.export.onnx)
            rel = Path("onnx") / f"arch-{arch.key.replace(',', '-')}-{runtime}"
            with atomic_dir(work / rel) as tmp:
                entry.info[runtime] = {"folder": str(cfg.out / rel), "check": export_model(model, head, tmp, quantize=quantize).check}
            entry.predictors.append(OnnxPredictor(work / rel / ONNX_FILE, model.config, head, quantize=quantize, threads=cfg.threads))
            model.set_attn_implementation("sdpa")  # from_config's default, for the PyTorch runtimes
    return entry


def _time(predictor: Predictor, inputs: dict, n: int) -> list[float]:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        predictor.run(inputs)
        times.append((time.perf_counter() - start) * 1000.0)
    return times


def _measure(entries: list[_Entry], batch: int, cfg: BenchConfig, bar: tqdm) -> list[dict]:
    items = [(e, p, sample_inputs(p.config, p.head, batch, cfg.seq, padded=False, seed=cfg.seed)) for e in entries for p in e.predictors]
    times: list[list[float]] = [[] for _ in items]
    bar.set_postfix_str(f"batch {batch}")
    for _, p, inputs in items:
        _time(p, inputs, cfg.warmup)
        bar.update(cfg.warmup)
    for r in range(cfg.rounds):
        for k in range(len(items)):  # rotate the order each round: no item always runs right after the same one
            i = (k + r) % len(items)
            times[i] += _time(items[i][1], items[i][2], cfg.runs)
            bar.update(cfg.runs)  # between timed calls, never inside one
    rows = []
    for (e, p, _), t in zip(items, times):
        median = statistics.median(t)
        rows.append({"model": e.name, "runtime": p.runtime, "batch": batch, "seq": cfg.seq, "median_ms": median,
                     "p90_ms": float(np.percentile(t, 90)), "throughput_seq_s": batch * 1000.0 / median, "samples": len(t)})
    return rows


def _text_batches(entry: _Entry, examples: list, batch: int, seq: int) -> list[dict[str, np.ndarray]]:
    """The examples in their order, ``batch`` at a time, tokenised by the entry's tokenizer, each batch padded to its own longest."""
    out = []
    for b in range(0, len(examples), batch):
        rows = [ex.texts for ex in examples[b : b + batch]]
        enc = tokenize(entry.tokenizer, [r[0] for r in rows], [r[1] for r in rows] if len(rows[0]) > 1 else None, max_len=seq,
                       padding=True, return_tensors="np", return_token_type_ids=True)
        out.append({k: enc[k].astype(np.int64) for k in ("input_ids", "attention_mask", "token_type_ids")})
    return out


def _measure_texts(entries: list[_Entry], examples: list, batch: int, cfg: BenchConfig, bar: tqdm) -> list[dict]:
    """Each (model, runtime) timed on passes over the real inputs, interleaved as :func:`_measure` does."""
    items = [(e, p, _text_batches(e, examples, batch, cfg.seq)) for e in entries for p in e.predictors if e.tokenizer is not None]
    times: list[list[float]] = [[] for _ in items]

    def one_pass(p: Predictor, batches: list) -> float:
        start = time.perf_counter()
        for inputs in batches:
            p.run(inputs)
        return (time.perf_counter() - start) * 1000.0

    bar.set_postfix_str(f"texts, batch {batch}")
    for _, p, batches in items:
        one_pass(p, batches)  # one untimed pass: warm-up
        bar.update(1)
    for r in range(cfg.rounds):
        for k in range(len(items)):
            i = (k + r) % len(items)
            times[i].append(one_pass(items[i][1], items[i][2]))
            bar.update(1)
    rows = []
    for (e, p, batches), t in zip(items, times):
        median = statistics.median(t)
        rows.append({"model": e.name, "runtime": p.runtime, "batch": batch, "texts": len(examples), "median_pass_ms": median,
                     "ms_per_sequence": median / len(examples), "throughput_seq_s": len(examples) * 1000.0 / median,
                     "mean_tokens": sum(int(b["attention_mask"].sum()) for b in batches) / len(examples),  # real tokens per text
                     "mean_padded_tokens": sum(b["attention_mask"].size for b in batches) / len(examples),  # what ran, padding included
                     "samples": len(t)})
    return rows


def _ratios(rows: list[dict], first: str, key: str = "median_ms") -> None:
    """Add each row's speed-up over the first model (same runtime and batch) and over its own PyTorch fp32."""
    median = {(r["model"], r["runtime"], r["batch"]): r[key] for r in rows}
    for r in rows:
        ref = median.get((first, r["runtime"], r["batch"]))
        own = median.get((r["model"], "torch-fp32", r["batch"]))
        r["speedup_vs_first"] = ref / r[key] if ref else None
        r["speedup_vs_torch_fp32"] = own / r[key] if own else None


def bench(cfg: BenchConfig) -> BenchResult:
    """Measure every model on every runtime that applies; write ``bench.json``, ``bench.md``, ``bench.png`` and the
    exports made on the way (``onnx/``) to ``cfg.out``, in place of an earlier benchmark's files, in one swap
    (:func:`~bort.shared.output_files`): a run killed on the way leaves the folder as it was, and the next one redoes it."""
    with output_files(cfg.out, kind="bort bench", marker="bench.json", inputs=(*cfg.models, cfg.teacher, cfg.texts)) as work:
        result = _bench(cfg, work)
        result.write(work / "bench.json")
        doc = result.to_dict()
        atomic_write_text(work / "bench.md", markdown(doc))
        _plot(doc, work / "bench.png")
    return result


def _bench(cfg: BenchConfig, work: Path) -> BenchResult:
    """The measurements of :func:`bench`, with the models' exports made in ``work``."""
    torch.set_num_threads(cfg.threads)
    base = read_config(resolve_model_path(cfg.teacher)) if cfg.teacher else BertConfig(vocab_size=30522)
    examples = _texts(cfg)
    tokenizer = load_tokenizer(resolve_model_path(cfg.teacher)) if examples and cfg.teacher and cfg.archs else None
    entries = [_folder_entry(m, cfg, work) for m in cfg.models] + [_arch_entry(a, base, tokenizer, cfg, work) for a in cfg.archs]
    calls = len(cfg.batches) * sum(len(e.predictors) for e in entries) * (cfg.warmup + cfg.rounds * cfg.runs)
    calls += len(cfg.text_batches) * sum(len(e.predictors) for e in entries if e.tokenizer is not None) * (1 + cfg.rounds) if examples else 0
    # disable=None: no bar where standard error is not a terminal (a log, a pipe), as well as with --no-progress
    with tqdm(total=calls, desc="bench", unit="call", disable=None if cfg.progress else True) as bar:
        rows = [row for batch in cfg.batches for row in _measure(entries, batch, cfg, bar)]
        real = [row for batch in cfg.text_batches for row in _measure_texts(entries, examples, batch, cfg, bar)] if examples else []
    _ratios(rows, entries[0].name)
    _ratios(real, entries[0].name, key="median_pass_ms")
    skipped = [] if _bf16_ok() or "torch-bf16" not in cfg.runtimes else ["torch-bf16: this CPU has no native bfloat16 (emulated, not a fair figure)"]
    skipped += [f"{e.name} on --texts: a random-weight model has no tokenizer without --teacher" for e in entries if examples and e.tokenizer is None]
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items() if k not in ("models", "archs", "progress")}
    texts = {"file": str(cfg.texts), "count": len(examples), "pairs": len(examples[0].texts) > 1} if examples else {}
    return BenchResult(settings=settings, machine=_machine(cfg.threads), models=[{"name": e.name, **e.info} for e in entries], results=rows,
                       skipped=skipped, real=real, texts=texts)


def _texts(cfg: BenchConfig) -> list:
    """The first ``--max-texts`` examples of ``--texts`` (none without it); choices and mixed single texts and pairs are refused."""
    if cfg.texts is None:
        return []
    examples = read_examples(PredictConfig(input=str(cfg.texts)), None)[: cfg.max_texts]
    if any(ex.choices for ex in examples):
        raise BortError(f"--texts {cfg.texts}: multiple-choice examples are not timed; give single texts or pairs")
    return examples


def _machine(threads: int) -> dict:
    return {**cpu_info(), "threads": threads, **versions(), "bf16_native": _bf16_ok()}


def _fmt(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f}×"


def markdown(doc: dict) -> str:
    """The benchmark as Markdown tables, one per batch size."""
    s, m = doc["settings"], doc["machine"]
    head = (f"# Inference benchmark\n\nSequence length {s['seq']}, {m['threads']} thread(s), {s['rounds']} rounds × {s['runs']} runs after "
            f"{s['warmup']} warm-ups, interleaved; torch {m['torch']}, onnxruntime {m['onnxruntime']}, CPU {m['cpu']} "
            f"({', '.join(m.get('flags', [])) or 'no AVX2/AVX-512'}).\n")
    lines = [head]
    first = doc["models"][0]["name"]
    for batch in s["batches"]:
        lines += [f"\n## Batch {batch}\n", f"| model | runtime | median ms | p90 ms | sequences/s | speed-up vs {first} | vs own torch-fp32 |",
                  "|---|---|---:|---:|---:|---:|---:|"]
        for r in (r for r in doc["results"] if r["batch"] == batch):
            lines.append(f"| {r['model']} | {r['runtime']} | {r['median_ms']:.2f} | {r['p90_ms']:.2f} | {r['throughput_seq_s']:.1f} | "
                         f"{_fmt(r['speedup_vs_first'])} | {_fmt(r['speedup_vs_torch_fp32'])} |")
    if doc.get("real"):
        t = doc["texts"]
        lines += [f"\n## Real inputs: the first {t['count']} {'pairs' if t['pairs'] else 'texts'} of {t['file']}, in their order, each batch "
                  f"padded to its own longest (at most {s['seq']} tokens)\n"]
        for batch in s["text_batches"]:
            lines += [f"\n### Batch {batch}\n", f"| model | runtime | mean tokens | ms per sequence | sequences/s | speed-up vs {first} |",
                      "|---|---|---:|---:|---:|---:|"]
            lines += [f"| {r['model']} | {r['runtime']} | {r['mean_tokens']:.1f} | {r['ms_per_sequence']:.3f} | {r['throughput_seq_s']:.1f} | "
                      f"{_fmt(r['speedup_vs_first'])} |" for r in doc["real"] if r["batch"] == batch]
    lines += [f"\nSkipped: {x}" for x in doc["skipped"]]
    return "\n".join(lines) + "\n"


def _plot(doc: dict, path: Path) -> None:
    batches = doc["settings"]["batches"]
    models = [m["name"] for m in doc["models"]]
    runtimes = [r for r in RUNTIMES if any(x["runtime"] == r for x in doc["results"])]
    fig, axes = plt.subplots(1, len(batches), figsize=(max(6, 1.6 * len(models)) * len(batches), 4.5), squeeze=False)
    width = 0.8 / max(len(runtimes), 1)
    for ax, batch in zip(axes[0], batches):
        for k, runtime in enumerate(runtimes):
            ms = {r["model"]: r["median_ms"] for r in doc["results"] if r["batch"] == batch and r["runtime"] == runtime}
            xs = [i + (k - (len(runtimes) - 1) / 2) * width for i, m in enumerate(models) if m in ms]
            ax.bar(xs, [ms[m] for m in models if m in ms], width, label=runtime)
        ax.set_xticks(range(len(models)), models, rotation=20, ha="right", fontsize=8)
        ax.set_yscale("log")
        ax.set_ylabel("median latency (ms, log scale)")
        ax.set_title(f"batch {batch}, sequence {doc['settings']['seq']}")
        ax.legend(fontsize=8)
    save_figure(fig, path)
