"""``bort predict``: batched predictions with label names, from an ONNX export or a PyTorch folder.

Input: plain text (one example per line, a tab between the two segments of a pair), a CSV or TSV file with
a header row (a model of one's own data reads its own columns), JSON lines, or, with a task, the task's own folder of the official download (whose
labels, where present, also give the task's metrics).
"""

from __future__ import annotations

import io
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bort.errors import BortError
from bort.models.loading import position_limit
from bort.models.runtime import Predictor, embed_texts, is_regression, task_logits
from bort.models.sentence import Pooling, max_seq_length, read_pooling
from bort.options import nested, opt
from bort.shared import PROGRESS
from bort.tasks.heads import check_task
from bort.tasks.readers.common import RowError, data_file, scalar, table_rows
from bort.tasks.readers.own import write_rows
from bort.tasks.registry import Example, TaskSpec, jsonl_objects
from bort.tasks.source import OwnData, TaskData, model_task

FORMATS = ("auto", "text", "tsv", "csv", "jsonl")
# Names of the text fields of TSV headers and JSON objects, first match wins (GLUE's and the common ones).
_TEXT_FIELDS = (("sentence1", "sentence2"), ("question1", "question2"), ("question", "sentence"), ("#1 String", "#2 String"),
                ("premise", "hypothesis"), ("text", "text_pair"), ("sentence",), ("text",))
_ID_FIELDS = ("idx", "id", "index")


@dataclass(frozen=True)
class PredictConfig:
    """``bort predict``'s settings besides the model."""

    input: str = field(metadata=opt("text file (one example per line, a tab between a pair's segments), .csv or .tsv with a header, .jsonl, "
                                    "'-' for standard input, or with --task the task's data folder"))
    task: str | None = field(default=None, metadata=opt("e.g. glue/rte: its label names (default: the model's bort_task), and how to read "
                                                        "a task data folder"))
    split: str = field(default="dev", metadata=opt("split to read from a task data folder"))
    format: str = field(default="auto", metadata=opt("input format (auto: by file extension; text otherwise)", choices=FORMATS))
    batch_size: int = field(default=32, metadata=opt("batch size"))
    max_seq_len: int | None = field(default=None, metadata=opt("default: the length the model was fine-tuned with, else its position limit "
                                                               "(at most 512)"))
    embed: bool = field(default=False, metadata=opt("write each input's sentence embedding (idx, embedding) instead of labels: the export's "
                                                    "sentence_embedding output, else the encoder pooled as the folder's sentence-transformers "
                                                    "pipeline says (mean where it has none)"))
    own: OwnData = field(default_factory=OwnData, metadata=nested(only=("text_columns", "label_column")))  # a model of one's own data: its columns
    progress: bool = field(default=True, metadata=PROGRESS)

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
    output_format: str = field(default="jsonl", metadata=opt("output format", choices=("jsonl", "tsv", "csv")))
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


def _read_table(text: str, name: str, delimiter: str) -> list[Example]:
    # TSV as GLUE writes it: no quoting
    rows = table_rows(io.StringIO(text), Path(name), delimiter, quoting=delimiter != "\t", size=len(text))
    if not rows:
        raise BortError(f"{name} is empty: write a header row, then one example per row")
    (_, header), examples = rows[0], []
    texts, id_col = _fields(header, f"{name}'s header")
    pos = {c: i for i, c in enumerate(header)}
    for n, row in rows[1:]:
        if len(row) != len(header):
            raise BortError(f"{name}:{n}: {len(row)} columns, the header has {len(header)}; fix the row")
        idx = row[pos[id_col]] if id_col else str(len(examples))
        examples.append(Example(idx=idx, texts=tuple(row[pos[c]] for c in texts), label=None))
    return examples


def _read_jsonl(text: str, name: str) -> list[Example]:
    examples, first = [], None
    for n, obj in jsonl_objects(text, name):
        texts, id_key = _fields(obj, f"{name}:{n}")
        try:
            context = tuple(str(scalar(obj[k])) for k in texts)
            listed = obj.get("choices", [])
            if not isinstance(listed, list):
                raise RowError(f"'choices' is {type(listed).__name__}, not a list of texts")
            choices = tuple((context[0], str(scalar(c))) for c in listed)
        except RowError as exc:
            raise BortError(f"{name}:{n}: {exc}; write each text and choice as a JSON string") from None
        idx = str(obj[id_key]) if id_key else str(len(examples))
        first = _same_segments(len(context), f"{name}:{n}", first)
        examples.append(Example(idx=idx, texts=context, label=None, choices=choices))
    return examples


def read_examples(cfg: PredictConfig, data: TaskData | None) -> list[Example]:
    """The examples to predict: from the task's data folder, from a CSV, TSV or JSON-lines file in the columns of a
    model of one's own data (labels, where given, are scored), or from a text, CSV, TSV or JSON-lines file (or stdin)."""
    path = Path(cfg.input)
    if cfg.input != "-" and path.is_dir():
        if data is None or data.own is not None:
            raise BortError(f"'{path}' is a folder: pass --task to read it as that task's data folder, or pass a file")
        return data.split(cfg.split)
    fmt = cfg.format if cfg.format != "auto" else {".tsv": "tsv", ".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl"}.get(path.suffix.lower(), "text")
    if data is not None and data.own is not None and fmt != "text" and cfg.input != "-":
        return data.read_file(path, need_label=False)
    if cfg.input == "-":
        data, name = sys.stdin.buffer.read(), "<stdin>"
    else:
        data_file(path, "pass a text, TSV or JSON-lines file, '-' for standard input, or a task's data folder", what="input")
        data, name = path.read_bytes(), str(path)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BortError(f"input '{name}' is not UTF-8 text; convert it, e.g. `iconv -f latin1 -t utf-8`") from None
    readers = {"text": _read_text, "tsv": lambda t, n: _read_table(t, n, "\t"), "csv": lambda t, n: _read_table(t, n, ","), "jsonl": _read_jsonl}
    examples = readers[fmt](text, name)
    if not examples:
        raise BortError(f"{name} holds no examples: write one example per line")
    return examples


def _default_names(names: Sequence[str]) -> bool:
    """Whether a config's label names are transformers' defaults (``LABEL_0``, …): a model that names no labels."""
    return list(names) == [f"LABEL_{i}" for i in range(len(names))]


def _task_of(predictor: Predictor, cfg: PredictConfig) -> TaskData | None:
    """The model's task (or ``--task``) and how to read its files; None for a model that names none."""
    config = predictor.config
    if not (cfg.task or getattr(config, "bort_task", None)):
        return None
    data = model_task(config, cfg.task, Path(cfg.input) if Path(cfg.input).is_dir() else None, cfg.own)
    names = [config.id2label[i] for i in range(config.num_labels)]
    if not _default_names(names) or data.spec.kind != "classification":
        check_task(config, data.spec, predictor.folder or Path("the model"))  # the task's label names, or one score for regression
    elif len(names) != len(data.spec.labels):  # the config's default names: only their number can be checked
        raise BortError(f"'{predictor.folder}' has {len(names)} outputs but {data.spec.name} has {len(data.spec.labels)} labels; "
                        "use a model fine-tuned on this task")
    return data


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _max_len(predictor: Predictor, cfg: PredictConfig, preferred: int | None = None) -> int:
    """``--max-seq-len``, else ``preferred``, else the length the model was fine-tuned with, else its position limit (at most 512)."""
    limit = position_limit(predictor.config)
    if cfg.max_seq_len is not None and cfg.max_seq_len > limit:
        raise BortError(f"--max-seq-len {cfg.max_seq_len} is longer than the model's {limit} positions; use at most {limit}")
    return min(cfg.max_seq_len or preferred or getattr(predictor.config, "bort_max_seq_len", None) or 512, limit)


def embeddings(predictor: Predictor, cfg: PredictConfig) -> list[dict]:
    """``--embed``: one row per example, in input order, with its ``idx`` and sentence ``embedding``.

    Pooled as the model folder's sentence-transformers pipeline says (mean where it has none; an
    export's ``sentence_embedding`` output has it built in), and truncated at its ``max_seq_length``
    as sentence-transformers does.
    """
    examples = read_examples(cfg, _task_of(predictor, cfg))
    if len(examples[0].texts) > 1 or examples[0].choices:
        raise BortError("--embed embeds single texts, and this input holds pairs or choices: write one text per line (or per example)")
    folder = predictor.folder
    pooling = read_pooling(folder) if folder else Pooling()
    max_len = _max_len(predictor, cfg, max_seq_length(folder) if folder else None)
    vectors = embed_texts(predictor, [ex.texts[0] for ex in examples], pooling, max_len=max_len, batch_size=cfg.batch_size,
                          progress="predict" if cfg.progress else None)
    return [{"idx": ex.idx, "embedding": v.tolist()} for ex, v in zip(examples, vectors)]


def predict(predictor: Predictor, cfg: PredictConfig) -> tuple[list[dict], dict[str, float] | None]:
    """One output row per example, in input order, and the task's metrics when the input is labelled.

    Rows hold ``idx`` and ``label`` with its probability ``score`` (classification), ``score``
    (regression), or ``choice`` with its probability ``score`` (multiple choice); with ``cfg.embed``,
    ``embedding`` (:func:`embeddings`).
    """
    if cfg.embed:
        return embeddings(predictor, cfg), None
    kind = predictor.head.kind
    if kind not in ("classification", "multiple_choice"):
        raise BortError(f"predict needs a model with a task head; this one is a bare {kind.replace('_', '-')} model: fine-tune it first "
                        "(bort finetune), or pass --embed for its sentence embeddings")
    data = _task_of(predictor, cfg)
    task = data.spec if data else None
    examples = read_examples(cfg, data)
    choices = kind == "multiple_choice"
    widths = {len(ex.choices) for ex in examples}
    if choices and (0 in widths or len(widths) > 1):
        raise BortError("a multiple-choice model needs the same number of choices for every example: "
                        'write JSON lines like {"text": "…", "choices": ["…", "…"]}')
    logits = task_logits(predictor, examples, max_len=_max_len(predictor, cfg), batch_size=cfg.batch_size, progress="predict" if cfg.progress else None)
    regression = is_regression(predictor)
    if regression:
        rows = [{"idx": ex.idx, "score": float(s)} for ex, s in zip(examples, logits)]
    elif choices:
        rows = [{"idx": ex.idx, "choice": int(p.argmax()), "score": float(p.max())} for ex, p in zip(examples, _softmax(logits))]
    else:
        probs = _softmax(logits)
        names = [predictor.config.id2label[i] for i in range(probs.shape[-1])]
        if task and task.labels and _default_names(names):
            names = list(task.labels)
        rows = [{"idx": ex.idx, "label": names[int(p.argmax())], "score": float(p.max())} for ex, p in zip(examples, probs)]
    return rows, _metrics(task, examples, logits)


def _metrics(task: TaskSpec | None, examples: Sequence[Example], logits: np.ndarray) -> dict[str, float] | None:
    if task is None or any(ex.label is None for ex in examples):
        return None
    import torch

    from bort.tasks.scoring import predictions, score

    return score(task, examples, predictions(task, examples, torch.from_numpy(logits)))


def format_rows(rows: Sequence[dict], fmt: str) -> str:
    """The rows as JSON lines, or as CSV or TSV with a header row."""
    return write_rows(rows, fmt)
