"""``bort evaluate``: score a fine-tuned folder on a split, and write leaderboard submission files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bort.errors import BortError
from bort.finetune import heads, submission
from bort.finetune.features import encode
from bort.finetune.predict import outputs, predictions, score
from bort.finetune.tasks import get_task, read_split
from bort.models.teacher import load_tokenizer, resolve_model_path


@dataclass(frozen=True)
class EvaluateConfig:
    """What ``bort evaluate`` takes. ``predictions``: a folder, or (one output file) the file itself."""

    model: str
    task: str
    data: Path
    split: str = "dev"
    predictions: Path | None = None
    batch_size: int = 64
    max_seq_len: int | None = None  # None: the length the model was fine-tuned with
    device: str = "cpu"


def _splits(task_name: str, split: str, has_dev: bool) -> list[str]:
    if split == "dev" and not has_dev:
        raise BortError(f"{task_name} is test-only (a diagnostic set): use --split test")
    if task_name == "glue/mnli" and split == "test":
        return ["test_matched", "test_mismatched"]  # two leaderboard files
    return [split]


def _targets(cfg: EvaluateConfig, model_path: Path, names: dict[str, str]) -> dict[str, Path] | None:
    """Where each split's submission goes (``names``: split → leaderboard file name); None for dev without --predictions."""
    if cfg.predictions is None:
        return {split: model_path / "predictions" / name for split, name in names.items()} if cfg.split.startswith("test") else None
    if cfg.predictions.suffix in (".tsv", ".jsonl", ".json"):
        if len(names) > 1:
            raise BortError(f"--predictions {cfg.predictions}: {cfg.task} writes {len(names)} files ({', '.join(names.values())}); give a folder")
        return {split: cfg.predictions for split in names}
    return {split: cfg.predictions / name for split, name in names.items()}


def evaluate(cfg: EvaluateConfig) -> dict:
    """Metrics on a labelled split (``{}`` on unlabelled ones) and the submission files written."""
    task = get_task(cfg.task)
    splits = _splits(task.name, cfg.split, bool(task.dev_splits))
    path = resolve_model_path(cfg.model)
    model = heads.load(path, task).to(cfg.device)
    tokenizer = load_tokenizer(path)
    max_len = cfg.max_seq_len or getattr(model.config, "bort_max_seq_len", 128)
    files = _targets(cfg, path, {s: submission.file_name(task, s) for s in splits})
    result: dict = {"task": task.name, "split": cfg.split, "metrics": {}, "files": []}
    for split in splits:
        examples = read_split(task, cfg.data, split)
        logits = outputs(model, encode(task, examples, tokenizer, max_len), batch_size=cfg.batch_size, pad_id=tokenizer.pad_token_id)
        preds = predictions(task, examples, logits)
        result["metrics"].update(score(task, examples, preds))
        if files is not None:
            result["files"].append(str(submission.write(task, examples, preds, files[split])))
    return result
