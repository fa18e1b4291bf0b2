"""Scoring a fine-tuned model: its outputs on a split, the predictions they mean, and the official metrics."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel

from bort.models.families import family
from bort.tasks import metrics
from bort.tasks.features import Feature, eval_batches, target
from bort.tasks.registry import Example, TaskSpec


@torch.inference_mode()
def outputs(model: PreTrainedModel, features: Sequence[Feature], *, batch_size: int, pad_id: int, autocast: torch.dtype | None = None,
            progress: str | None = None) -> torch.Tensor:
    """The model's logits for every feature, in order: ``[n, labels]``, ``[n, choices]`` or ``[n]`` (regression).

    Features are run longest first, so each batch pads little; the order is restored after. ``progress``: a bar of that name.
    """
    device = next(model.parameters()).device
    order = sorted(range(len(features)), key=lambda i: -max(map(len, features[i].rows)))
    was_training = model.training
    model.eval()
    parts = []
    batches = eval_batches([features[i] for i in order], batch_size, pad_id)
    for batch in tqdm(batches, total=-(-len(order) // batch_size), desc=progress, unit="batch", leave=False, disable=progress is None):
        batch = {k: v.to(device) for k, v in batch.items() if k != "labels"}
        with torch.autocast(device.type, dtype=autocast or torch.bfloat16, enabled=autocast is not None):
            parts.append(model(**family(model.config).inputs(batch)).logits.float().cpu())
    model.train(was_training)
    stacked = torch.cat(parts)
    out = torch.empty_like(stacked)
    out[torch.tensor(order)] = stacked
    return out.squeeze(-1) if model.config.problem_type == "regression" else out


def predictions(task: TaskSpec, examples: Sequence[Example], logits: torch.Tensor) -> list:
    """One prediction per example: a label index, a score (regression) or a choice index.

    ReCoRD is the exception: its examples are (query, entity) pairs, and the prediction of each
    pair is 1 for the query's highest-scoring entity, 0 for the others (algorithms.md §5).
    """
    if task.kind == "regression":
        return logits.tolist()
    if task.name != "superglue/record":
        return logits.argmax(-1).tolist()
    margin = (logits[:, 1] - logits[:, 0]).tolist()
    best: dict[str, int] = {}
    for i, ex in enumerate(examples):
        if ex.group not in best or margin[i] > margin[best[ex.group]]:
            best[ex.group] = i
    chosen = set(best.values())
    return [int(i in chosen) for i in range(len(examples))]


def score(task: TaskSpec, examples: Sequence[Example], preds: Sequence) -> dict[str, float]:
    """The task's official metrics of ``preds`` (from :func:`predictions`); {} when the split is unlabelled."""
    groups = [ex.group for ex in examples] if any(ex.group for ex in examples) else None
    if any(ex.label is None for ex in examples):  # unlabelled: only gender parity (AX-g) needs no labels
        return metrics.compute(("gender_parity",), preds, None, groups=groups) if "gender_parity" in task.metrics else {}
    if task.name == "superglue/record":
        pred_texts = {ex.group: ex.candidate for ex, p in zip(examples, preds) if p}
        # Gold answers are the query's entities labelled 1. A query whose answer is none of the
        # passage's entities (rare in ReCoRD) cannot be predicted by this cast and is left out.
        gold: dict[str, list[str]] = {}
        for ex in examples:
            if ex.label == "1":
                gold.setdefault(ex.group, []).append(ex.candidate)
        return metrics.record_scores(pred_texts, gold)
    return metrics.compute(task.metrics, preds, [target(task, ex.label) for ex in examples], groups=groups)
