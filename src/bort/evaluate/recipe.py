"""``bort evaluate``: score a fine-tuned folder on a split, and write leaderboard submission files.

The folder is a fine-tuned PyTorch folder (run on ``--device``), or its ONNX export, fp32 or int8 (run by ONNX Runtime on
the CPU): the model that ships is the model scored (algorithms.md §4d).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from bort.errors import BortError
from bort.evaluate.submission import file_name, write_submission
from bort.models.loading import load_model, load_tokenizer, position_limit, read_config, resolve_model_path, run_home
from bort.models.runtime import embed_texts, export_info, load_predictor, task_logits
from bort.models.sentence import embed, read_pooling
from bort.options import nested, opt
from bort.records import Record
from bort.shared import DEVICE, PROGRESS, check_file_out, resolve_device
from bort.tasks import heads, metrics
from bort.tasks.features import encode
from bort.tasks.scoring import outputs, predictions, score
from bort.tasks.source import OwnData, TaskData, model_task
from bort.tasks.spec import Example, TaskSpec


@dataclass(frozen=True)
class EvaluateResult(Record):
    """The official metrics on a labelled split (empty on unlabelled ones) and the submission files written."""

    task: str
    split: str
    metrics: dict[str, float] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class EvaluateConfig:
    """What ``bort evaluate`` takes. ``predictions``: a folder, or (one output file) the file itself."""

    model: str = field(metadata=opt("a `bort finetune` output folder, or its `bort export` (ONNX fp32 or int8)"))
    task: str | None = field(default=None, metadata=opt("e.g. glue/rte (default: the model's own); glue/ax takes the glue/mnli model, "
                                                        "superglue/axb and axg the superglue/rte one"))
    data: Path | None = field(default=None, metadata=opt("the task's own folder of the official download (default: the Hugging Face Hub)"))
    own: OwnData = field(default_factory=OwnData, metadata=nested(only=("validation_file", "test_file", "text_columns", "label_column")))
    split: str = field(default="dev", metadata=opt("dev, test, or a task's own split name such as dev_mismatched"))
    predictions: Path | None = field(default=None, metadata=opt("folder (or file) for the submission; test predictions go to MODEL/predictions/ "
                                                                "by default"))
    batch_size: int = field(default=64, metadata=opt("evaluation batch size"))
    max_seq_len: int | None = field(default=None, metadata=opt("default: the length the model was fine-tuned with"))
    device: str = field(default="cpu", metadata=DEVICE)
    embedding: bool = field(default=False, metadata=opt("score a bare encoder without fine-tuning: the cosine of the two texts' sentence "
                                                        "embeddings against the gold scores (Pearson, Spearman; e.g. glue/stsb)"))
    progress: bool = field(default=True, metadata=PROGRESS)


    def __post_init__(self) -> None:
        if self.batch_size < 1 or (self.max_seq_len is not None and self.max_seq_len < 2):
            raise BortError("--batch-size must be at least 1 and --max-seq-len at least 2")


def _splits(task_name: str, split: str, has_dev: bool) -> list[str]:
    if split == "dev" and not has_dev:
        raise BortError(f"{task_name} is test-only (a diagnostic set): use --split test")
    if task_name == "glue/mnli" and split == "test":
        return ["test_matched", "test_mismatched"]  # two leaderboard files
    return [split]


def _targets(cfg: EvaluateConfig, model_path: Path, names: dict[str, str]) -> dict[str, Path] | None:
    """Where each split's submission goes (``names``: split → leaderboard file name); None for dev without --predictions.
    Each file is checked (:func:`~bort.shared.check_file_out`): never an input of the command, nor a file bort did not write."""
    if cfg.predictions is None:
        if not cfg.split.startswith("test"):
            return None
        files = {split: run_home(model_path) / "predictions" / name for split, name in names.items()}
    elif cfg.predictions.suffix in (".tsv", ".jsonl", ".json", ".csv") or (cfg.predictions.exists() and not cfg.predictions.is_dir()):
        if len(names) > 1:
            raise BortError(f"--predictions {cfg.predictions}: {cfg.task or 'glue/mnli'} writes {len(names)} files "
                            f"({', '.join(names.values())}); give a folder")
        files = {split: cfg.predictions for split in names}
    else:
        files = {split: cfg.predictions / name for split, name in names.items()}
    # The default, MODEL/predictions/ (RUN/predictions/ for a run's model/), is bort's own subfolder: the model folder counts as
    # an input only for a path the user gave.
    inputs = (cfg.data, cfg.own.train_file, cfg.own.validation_file, cfg.own.test_file, *((model_path,) if cfg.predictions is not None else ()))
    return {split: check_file_out(path, inputs=inputs, flag="--predictions") for split, path in files.items()}


def _onnx(path: Path):
    """The ONNX Runtime predictor of an export folder; None for a PyTorch folder."""
    return load_predictor(path) if export_info(path) is not None else None


def task_outputs(cfg: EvaluateConfig, path: Path, task: TaskSpec) -> Callable[[Sequence[Example], str], torch.Tensor]:
    """The outputs of the folder's model for examples of ``task`` (the logits :func:`~bort.tasks.scoring.predictions` takes), given
    them and the split's name (the progress bar's): a PyTorch folder on ``cfg.device``, an ONNX export on ONNX Runtime."""
    predictor = _onnx(path)
    if predictor is not None:
        heads.check_task(predictor.config, task, path)
        max_len = _max_len(cfg, predictor.config, getattr(predictor.config, "bort_max_seq_len", 128))
        return lambda examples, split: torch.from_numpy(task_logits(predictor, examples, max_len=max_len, batch_size=cfg.batch_size,
                                                                    progress=_bar(cfg, split)))
    model = heads.load(path, task).to(resolve_device(cfg.device))
    tokenizer = load_tokenizer(path)
    max_len = _max_len(cfg, model.config, getattr(model.config, "bort_max_seq_len", 128))
    return lambda examples, split: outputs(model, encode(task, examples, tokenizer, max_len), batch_size=cfg.batch_size,
                                           pad_id=tokenizer.pad_token_id, progress=_bar(cfg, split))


def _bar(cfg: EvaluateConfig, what: str) -> str | None:
    """The progress bar's name (``evaluate dev``), or None under ``--no-progress``."""
    return f"evaluate {what}" if cfg.progress else None


def _task_splits(cfg: EvaluateConfig) -> tuple[Path, TaskData, list[str]]:
    """The model's folder, its task and the splits of ``cfg.split`` (MNLI's test: both)."""
    path = resolve_model_path(cfg.model)
    data = model_task(read_config(path), cfg.task, cfg.data, cfg.own)
    return path, data, _splits(data.spec.name, cfg.split, bool(data.spec.dev_splits))


def _predict(cfg: EvaluateConfig, path: Path, data: TaskData, splits: list[str]) -> dict[str, tuple[list[Example], list]]:
    """Per split, its examples and the model's predictions."""
    run = task_outputs(cfg, path, data.spec)
    out = {}
    for split in splits:
        examples = data.split(split)
        out[split] = (examples, predictions(data.spec, examples, run(examples, split)))
    return out


def split_predictions(cfg: EvaluateConfig) -> tuple[TaskData, dict[str, tuple[list[Example], list]]]:
    """The model's task and, per split of ``cfg.split`` (MNLI's test: both), its examples and the model's predictions."""
    path, data, splits = _task_splits(cfg)
    return data, _predict(cfg, path, data, splits)


def evaluate(cfg: EvaluateConfig) -> EvaluateResult:
    """Metrics on a labelled split (``{}`` on unlabelled ones) and the submission files written."""
    path, data, splits = _task_splits(cfg)
    if cfg.embedding:
        return _embedding_scores(cfg, data, path)
    task = data.spec
    files = _targets(cfg, path, {s: file_name(task, s) for s in splits})  # checked before the model runs
    result = EvaluateResult(task=task.name, split=cfg.split)
    for split, (examples, preds) in _predict(cfg, path, data, splits).items():
        result.metrics.update(score(task, examples, preds))
        if files is not None:
            result.files.append(str(write_submission(task, examples, preds, files[split])))
    return result


def _embedding_scores(cfg: EvaluateConfig, data: TaskData, path: Path) -> EvaluateResult:
    """``--embedding``: Pearson and Spearman between cos(e(text 1), e(text 2)) and the gold scores, the way users of an
    embedding model measure it; the embeddings pooled as the folder's sentence-transformers pipeline says (else mean)."""
    task = data.spec
    if task.kind != "regression":
        raise BortError(f"--embedding scores sentence-pair similarity tasks (e.g. glue/stsb); {task.name} is {task.kind.replace('_', ' ')}")
    examples = data.split(cfg.split)
    if any(ex.label is None for ex in examples):
        raise BortError(f"--embedding needs gold scores; the {cfg.split} split of {task.name} has none: use --split dev")
    cos = pair_cosines(cfg, path, examples)
    gold = [float(ex.label) for ex in examples]
    return EvaluateResult(task=task.name, split=cfg.split, metrics={"pearson": metrics.pearson(cos, gold), "spearman": metrics.spearman(cos, gold)})


def pair_cosines(cfg: EvaluateConfig, path: Path, examples: Sequence[Example]) -> list[float]:
    """cos(e(text 1), e(text 2)) per example, the embeddings of a PyTorch folder's encoder or of an ONNX export (its
    ``sentence_embedding`` output, or its bare encoder pooled here)."""
    pooling, predictor = read_pooling(path), _onnx(path)
    if predictor is not None:
        max_len = _max_len(cfg, predictor.config, 128)
        first, second = (torch.from_numpy(embed_texts(predictor, [ex.texts[i] for ex in examples], pooling, max_len=max_len,
                                                      batch_size=cfg.batch_size, progress=_bar(cfg, f"text {i + 1}"))) for i in (0, 1))
    else:
        encoder = load_model(path)[0].base_model.to(resolve_device(cfg.device))
        tokenizer, max_len = load_tokenizer(path), _max_len(cfg, encoder.config, 128)
        first, second = (embed(encoder, tokenizer, [ex.texts[i] for ex in examples], pooling, batch_size=cfg.batch_size, max_len=max_len,
                               progress=_bar(cfg, f"text {i + 1}")) for i in (0, 1))
    return torch.nn.functional.cosine_similarity(first.float(), second.float(), dim=-1).tolist()


def _max_len(cfg: EvaluateConfig, config, default: int) -> int:
    """``--max-seq-len``, or ``default``; refused past the model's positions."""
    limit = position_limit(config)
    if cfg.max_seq_len is not None and cfg.max_seq_len > limit:
        raise BortError(f"--max-seq-len {cfg.max_seq_len} is longer than the model's {limit} positions; use at most {limit}")
    return min(cfg.max_seq_len or default, limit)
