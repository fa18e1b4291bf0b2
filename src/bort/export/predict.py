"""``bort predict``: batched predictions with label names, from an ONNX export or a PyTorch folder.

Input: plain text (one example per line, a tab between the two segments of a pair), a TSV file with
a header row, JSON lines, or, with a task, the task's own folder of the official download (whose
labels, where present, also give the task's metrics).
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bort.errors import BortError
from bort.export.runtime import Predictor
from bort.finetune.tasks import Example, TaskSpec, get_task, jsonl_objects, read_split
from bort.models.loading import position_limit
from bort.options import nested, opt

FORMATS = ("auto", "text", "tsv", "jsonl")
# Names of the text fields of TSV headers and JSON objects, first match wins (GLUE's and the common ones).
_TEXT_FIELDS = (("sentence1", "sentence2"), ("question1", "question2"), ("question", "sentence"), ("#1 String", "#2 String"),
                ("premise", "hypothesis"), ("text", "text_pair"), ("sentence",), ("text",))
_ID_FIELDS = ("idx", "id", "index")


@dataclass(frozen=True)
class PredictConfig:
    """``bort predict``'s settings besides the model."""

    input: str = field(metadata=opt("text file (one example per line, a tab between a pair's segments), .tsv with a header, .jsonl, "
                                    "'-' for standard input, or with --task the task's data folder"))
    task: str | None = field(default=None, metadata=opt("e.g. glue/rte: its label names (default: the model's bort_task), and how to read "
                                                        "a task data folder"))
    split: str = field(default="dev", metadata=opt("split to read from a task data folder"))
    format: str = field(default="auto", metadata=opt("input format (auto: by file extension; text otherwise)", choices=FORMATS))
    batch_size: int = field(default=32, metadata=opt("batch size"))
    max_seq_len: int | None = field(default=None, metadata=opt("default: the length the model was fine-tuned with, else its position limit "
                                                               "(at most 512)"))

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise BortError(f"--format must be one of {', '.join(FORMATS)}, got '{self.format}'")
        if self.batch_size < 1 or (self.max_seq_len is not None and self.max_seq_len < 2):
            raise BortError("--batch-size must be at least 1 and --max-seq-len at least 2")


@dataclass(frozen=True)
class PredictRun:
    """``bort predict``: the model and how it runs, and what it reads and writes (:class:`PredictConfig`)."""

    model: str = field(metadata=opt("a `bort export` folder (ONNX Runtime) or a fine-tuned Hugging Face folder (PyTorch)"))
    data: PredictConfig = field(metadata=nested())
    output_format: str = field(default="jsonl", metadata=opt("output format", choices=("jsonl", "tsv")))
    threads: int = field(default=1, metadata=opt("CPU threads"))

    def __post_init__(self) -> None:
        if self.threads < 1:
            raise BortError(f"--threads must be at least 1, got {self.threads}")


def _fields(names: Iterable[str], where: str) -> tuple[tuple[str, ...], str | None]:
    present = set(names)
    texts = next((f for f in _TEXT_FIELDS if set(f) <= present), None)
    if texts is None:
        raise BortError(f"{where} has no text field ({', '.join(sorted(present))[:120]}); name them sentence1/sentence2, text/text_pair or sentence")
    if "text" in texts and "text_pair" not in present:
        texts = ("text",)
    return texts, next((f for f in _ID_FIELDS if f in present), None)


def _same_segments(width: int, where: str, first: tuple[int, str] | None) -> tuple[int, str]:
    """The first example's number of segments and place; an example with another number (a single text among pairs,
    or a pair among single texts) is refused, naming both places."""
    if first is not None and width != first[0]:
        kind = {1: "a single text", 2: "a pair"}
        raise BortError(f"{where}: {kind[width]}, but {first[1]} is {kind[first[0]]}; make every example a single text, "
                        "or every one a pair (a tab between its two segments)")
    return first or (width, where)


def _read_text(text: str, name: str) -> list[Example]:
    examples, first = [], None
    for n, line in enumerate(io.StringIO(text), 1):
        if line.strip():
            texts = tuple(line.rstrip("\r\n").split("\t"))
            if len(texts) > 2:
                raise BortError(f"{name}:{n}: {len(texts)} tab-separated segments; an example has one, or two for a pair")
            first = _same_segments(len(texts), f"{name}:{n}", first)
            examples.append(Example(idx=str(len(examples)), texts=texts, label=None))
    return examples


def _read_tsv(text: str, name: str) -> list[Example]:
    rows = [r for r in csv.reader(io.StringIO(text), delimiter="\t", quoting=csv.QUOTE_NONE) if any(r)]
    if not rows:
        raise BortError(f"{name} is empty: write a header row, then one example per row")
    texts, id_col = _fields(rows[0], f"{name}'s header")
    pos = {c: i for i, c in enumerate(rows[0])}
    examples = []
    for n, row in enumerate(rows[1:], 2):
        if len(row) != len(rows[0]):
            raise BortError(f"{name}:{n}: {len(row)} tab-separated columns, the header has {len(rows[0])}; fix the row")
        idx = row[pos[id_col]] if id_col else str(len(examples))
        examples.append(Example(idx=idx, texts=tuple(row[pos[c]] for c in texts), label=None))
    return examples


def _read_jsonl(text: str, name: str) -> list[Example]:
    examples, first = [], None
    for n, obj in jsonl_objects(text, name):
        texts, id_key = _fields(obj, f"{name}:{n}")
        idx = str(obj[id_key]) if id_key else str(len(examples))
        context = tuple(str(obj[k]) for k in texts)
        first = _same_segments(len(context), f"{name}:{n}", first)
        choices = tuple((context[0], str(c)) for c in obj.get("choices", ()))
        examples.append(Example(idx=idx, texts=context, label=None, choices=choices))
    return examples


def read_examples(cfg: PredictConfig, task: TaskSpec | None) -> list[Example]:
    """The examples to predict: from the task's data folder, or from a text, TSV or JSON-lines file (or stdin)."""
    path = Path(cfg.input)
    if cfg.input != "-" and path.is_dir():
        if task is None:
            raise BortError(f"'{path}' is a folder: pass --task to read it as that task's data folder, or pass a file")
        return read_split(task, path, cfg.split)
    if cfg.input == "-":
        data, name = sys.stdin.buffer.read(), "<stdin>"
    elif not path.is_file():
        raise BortError(f"input '{path}' does not exist: pass a text, TSV or JSON-lines file, '-' for standard input, or a task's data folder")
    else:
        data, name = path.read_bytes(), str(path)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BortError(f"input '{name}' is not UTF-8 text; convert it, e.g. `iconv -f latin1 -t utf-8`") from None
    fmt = cfg.format if cfg.format != "auto" else {".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl"}.get(path.suffix.lower(), "text")
    examples = {"text": _read_text, "tsv": _read_tsv, "jsonl": _read_jsonl}[fmt](text, name)
    if not examples:
        raise BortError(f"{name} holds no examples: write one example per line")
    return examples


def _task_of(predictor: Predictor, task: str | None) -> TaskSpec | None:
    name = task or getattr(predictor.config, "bort_task", None)
    return get_task(name) if name else None


def _encode(predictor: Predictor, examples: Sequence[Example], max_len: int, choices: bool) -> dict[str, np.ndarray]:
    rows = [c for ex in examples for c in ex.choices] if choices else [ex.texts for ex in examples]
    second = [r[1] for r in rows] if len(rows[0]) > 1 else None  # the readers give every example the same number of segments
    enc = predictor.tokenizer([r[0] for r in rows], second, truncation=True, max_length=max_len, padding=True,
                              return_tensors="np", return_token_type_ids=True)
    arrays = {k: enc[k].astype(np.int64) for k in ("input_ids", "attention_mask", "token_type_ids")}
    return {k: v.reshape(len(examples), -1, v.shape[-1]) for k, v in arrays.items()} if choices else arrays


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def predict(predictor: Predictor, cfg: PredictConfig) -> tuple[list[dict], dict[str, float] | None]:
    """One output row per example, in input order, and the task's metrics when the input is labelled.

    Rows hold ``idx`` and ``label`` with its probability ``score`` (classification), ``score``
    (regression), or ``choice`` with its probability ``score`` (multiple choice).
    """
    kind = predictor.head.kind
    if kind not in ("classification", "multiple_choice"):
        raise BortError(f"predict needs a model with a task head; this one is a bare {kind.replace('_', '-')} model: fine-tune it first (bort finetune)")
    task = _task_of(predictor, cfg.task)
    examples = read_examples(cfg, task)
    choices = kind == "multiple_choice"
    widths = {len(ex.choices) for ex in examples}
    if choices and (0 in widths or len(widths) > 1):
        raise BortError('a multiple-choice model needs the same number of choices for every example: write JSON lines like {"text": "…", "choices": ["…", "…"]}')
    limit = position_limit(predictor.config)
    if cfg.max_seq_len is not None and cfg.max_seq_len > limit:
        raise BortError(f"--max-seq-len {cfg.max_seq_len} is longer than the model's {limit} positions; use at most {limit}")
    max_len = cfg.max_seq_len or getattr(predictor.config, "bort_max_seq_len", None) or min(limit, 512)
    # Longest first, so each batch pads little; the input order is restored after.
    order = sorted(range(len(examples)), key=lambda i: -sum(map(len, examples[i].texts + sum(examples[i].choices, ()))))
    outputs = np.concatenate([predictor.run(_encode(predictor, [examples[i] for i in order[b : b + cfg.batch_size]], max_len, choices))
                              for b in range(0, len(order), cfg.batch_size)])
    logits = np.empty_like(outputs)
    logits[order] = outputs
    regression = kind == "classification" and (predictor.config.problem_type == "regression" or predictor.config.num_labels == 1)
    probs = _softmax(logits)
    if regression:
        rows = [{"idx": ex.idx, "score": float(s)} for ex, s in zip(examples, logits[:, 0])]
    elif choices:
        rows = [{"idx": ex.idx, "choice": int(p.argmax()), "score": float(p.max())} for ex, p in zip(examples, probs)]
    else:
        names = [predictor.config.id2label[i] for i in range(probs.shape[-1])]
        if task and task.labels and names == [f"LABEL_{i}" for i in range(len(names))]:  # the config's default names
            names = list(task.labels)
        rows = [{"idx": ex.idx, "label": names[int(p.argmax())], "score": float(p.max())} for ex, p in zip(examples, probs)]
    return rows, _metrics(task, examples, logits[:, 0] if regression else logits)


def _metrics(task: TaskSpec | None, examples: Sequence[Example], logits: np.ndarray) -> dict[str, float] | None:
    if task is None or any(ex.label is None for ex in examples):
        return None
    import torch

    from bort.finetune.predict import predictions, score

    return score(task, examples, predictions(task, examples, torch.from_numpy(logits)))


def format_rows(rows: Sequence[dict], fmt: str) -> str:
    """The rows as JSON lines, or as TSV with a header row."""
    if fmt == "jsonl":
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    keys = list(rows[0]) if rows else []
    return "\t".join(keys) + "\n" + "".join("\t".join(str(r[k]) for k in keys) + "\n" for r in rows)
