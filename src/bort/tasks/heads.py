"""Task heads (algorithms.md §5), built on the stock Hugging Face classes so outputs load anywhere.

- classification and the binary casts (MultiRC, ReCoRD, WSC): ``AutoModelForSequenceClassification``;
- STS-B: the same with one output and ``problem_type="regression"`` (mean squared error);
- COPA and RACE: ``AutoModelForMultipleChoice``: one shared linear score per (context, choice),
  softmax over the choices.

Two heads: ``linear`` (§5's single linear classifier: first token → dropout → linear) and ``dense``
(§5's CoLA option: an extra dense + activation layer first). The stock classes always have that dense
layer (BERT's pooler, RoBERTa's classification head, ELECTRA's with GELU, its sequence summary for multiple
choice), so ``dense`` is the stock head itself, while ``linear`` trains with that layer replaced by an
identity. To save ``linear`` in the stock layout, :func:`stock_copy` stores the dense layer as ``s·I`` and
the classifier as ``W/(s·g)``, g = act(s)/s the activation's slope at 0 (tanh 1, GELU ½):
``W/(s·g) · act(s·h) = W·h·(1 + O(s·h))``; s = 1e-4 for an odd activation (tanh: the error is O(s²h²)), 1e-7
otherwise, so that it is within float precision for any hidden state this side of |h| ≈ 100. DistilBERT's dense layer
is followed by a ReLU: the stand-in is ``I·h + c`` (c = 100), which the ReLU passes unchanged for h > −c, and the
classifier's bias gives c back (b − W·c), exactly. A plain
``AutoModelForSequenceClassification.from_pretrained`` (and an ONNX export of it) then computes the trained model;
``config.bort_head`` records which head it is.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForMultipleChoice, AutoModelForSequenceClassification, PreTrainedModel

from bort.errors import BortError
from bort.models.loading import from_folder, read_config
from bort.tasks.registry import TaskSpec

TASK_HEADS = ("linear", "dense")
SCALE = 1e-4  # s above for an odd activation: small enough that tanh(s·h) = s·h to float precision


class _FirstToken(torch.nn.Module):
    """The pooler (or ELECTRA's multiple-choice sequence summary) of the ``linear`` head: the first token's hidden state, as it is."""

    def forward(self, hidden_states: torch.Tensor, cls_index=None) -> torch.Tensor:
        return hidden_states[:, 0]


SHIFT = 100.0  # c above: LayerNorm-ed hidden states stay far above −c


class _Shift(torch.nn.Module):
    """Adds ``c``: DistilBERT's pre-classifier for the ``linear`` head (after its dropout), so that the ReLU that follows
    passes the first token unchanged; its dropout slot then takes ``c`` back (:func:`build`)."""

    def __init__(self, c: float, dropout: torch.nn.Module | None = None) -> None:
        super().__init__()
        self.c, self.dropout = c, dropout or torch.nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(x) + self.c


class _LinearClassifier(torch.nn.Module):
    """RoBERTa's classification head without its dense + tanh: first token → dropout → linear."""

    def __init__(self, config) -> None:
        super().__init__()
        p = getattr(config, "classifier_dropout", None)  # MPNet has none: its hidden dropout, as its own head uses
        p = config.hidden_dropout_prob if p is None else p
        self.dropout = torch.nn.Dropout(p)
        self.out_proj = torch.nn.Linear(config.hidden_size, config.num_labels)

    def forward(self, features: torch.Tensor, **_) -> torch.Tensor:
        return self.out_proj(self.dropout(features[:, 0]))


def _auto_class(task: TaskSpec):
    return AutoModelForMultipleChoice if task.kind == "multiple_choice" else AutoModelForSequenceClassification


def _task_config(task: TaskSpec, head: str, max_seq_len: int) -> dict:
    """The config entries that make the saved folder self-describing (labels, task, head)."""
    if task.kind == "regression":
        labels = {"num_labels": 1, "problem_type": "regression"}
    elif task.kind == "multiple_choice":
        labels = {}
    else:
        labels = {"num_labels": len(task.labels), "problem_type": "single_label_classification",
                  "id2label": dict(enumerate(task.labels)), "label2id": {n: i for i, n in enumerate(task.labels)}}
    return {**labels, "bort_task": task.name, "bort_head": head, "bort_max_seq_len": max_seq_len}


def _fresh_linear(layer: torch.nn.Linear, std: float) -> None:
    torch.nn.init.normal_(layer.weight, std=std)
    torch.nn.init.zeros_(layer.bias)


def build(path: Path, task: TaskSpec, head: str, max_seq_len: int, seed: int) -> PreTrainedModel:
    """The encoder in ``path`` with a fresh ``head`` for ``task``, in its training form.

    Fine-tuning always starts a new head. The ``dense`` head keeps a pretrained pooler where the
    checkpoint has one (BERT's next-sentence pooler) unless it came from a bort ``linear`` head.
    """
    if head not in TASK_HEADS:
        raise BortError(f"unknown head '{head}': choose one of {', '.join(TASK_HEADS)}")
    config = read_config(path)
    source_head = getattr(config, "bort_head", None)  # a bort fine-tuned model's head, if any
    for key, value in _task_config(task, head, max_seq_len).items():
        setattr(config, key, value)
    torch.manual_seed(seed)  # the fresh head's weights
    model = from_folder(_auto_class(task), path, new_head=True, config=config, ignore_mismatched_sizes=True)  # another label set
    std = model.config.initializer_range
    roberta_seq = hasattr(model, "classifier") and hasattr(model.classifier, "out_proj")
    if roberta_seq:  # RoBERTa's (and ELECTRA's) sequence classification: the dense + activation sit in the classifier
        if head == "linear":
            model.classifier = _LinearClassifier(model.config)
        else:
            _fresh_linear(model.classifier.dense, std)
        _fresh_linear(model.classifier.out_proj, std)
    elif hasattr(model, "pre_classifier"):  # DistilBERT: pre-classifier, ReLU, dropout, classifier
        if head == "linear":  # first token → dropout → (+c, ReLU, −c: no change) → classifier
            model.pre_classifier, model.dropout = _Shift(SHIFT, model.dropout), _Shift(-SHIFT)
        else:
            _fresh_linear(model.pre_classifier, std)
        _fresh_linear(model.classifier, std)
    elif hasattr(model, "sequence_summary"):  # ELECTRA's multiple choice: the dense + activation are its sequence summary
        if head == "linear":
            model.sequence_summary = _FirstToken()
        else:
            _fresh_linear(model.sequence_summary.summary, std)
        _fresh_linear(model.classifier, std)
    else:
        if head == "linear":
            model.base_model.pooler = _FirstToken()
        elif source_head == "linear":  # its pooler is the s·I stand-in, not a trained layer
            _fresh_linear(model.base_model.pooler.dense, std)
        _fresh_linear(model.classifier, std)
    return model


def stock_copy(model: PreTrainedModel) -> PreTrainedModel:
    """A copy of a training-form model in the stock Hugging Face layout, ready for ``save_pretrained``."""
    if model.config.bort_head != "linear":
        return model
    stock = type(model)._from_config(model.config)  # the same stock class; the linear head's parts are swapped in below
    state = dict(model.state_dict())
    H = model.config.hidden_size
    if isinstance(getattr(model, "pre_classifier", None), _Shift):  # DistilBERT: I·h + c, and the classifier's bias takes c back
        state["pre_classifier.weight"], state["pre_classifier.bias"] = torch.eye(H), torch.full((H,), SHIFT)
        state["classifier.bias"] = state["classifier.bias"] - SHIFT * state["classifier.weight"].sum(1)
        stock.load_state_dict(state, strict=True)
        return stock.eval()
    if isinstance(getattr(model, "classifier", None), _LinearClassifier):
        dense, classifier, act = "classifier.dense", "classifier.out_proj", getattr(stock.classifier, "activation", torch.tanh)
    elif isinstance(getattr(model, "sequence_summary", None), _FirstToken):
        dense, classifier, act = "sequence_summary.summary", "classifier", stock.sequence_summary.activation
    else:
        dense, classifier, act = f"{model.base_model_prefix}.pooler.dense", "classifier", torch.tanh
    scale, gain = _stand_in(act)
    state[f"{dense}.weight"], state[f"{dense}.bias"] = torch.eye(H) * scale, torch.zeros(H)
    state[f"{classifier}.weight"] = state[f"{classifier}.weight"] / (scale * gain)
    stock.load_state_dict(state, strict=True)
    return stock.eval()


def _stand_in(act) -> tuple[float, float]:
    """The scale s of the dense stand-in ``s·I`` for an activation, and its slope g = act(s)/s at 0 (module docstring)."""
    with torch.no_grad():
        t = torch.tensor([SCALE, -SCALE], dtype=torch.float64)
        odd = abs(float(act(t[0]) + act(t[1]))) < 1e-12  # tanh: no second-order term
        scale = SCALE if odd else 1e-7
        return scale, float(act(torch.tensor(scale, dtype=torch.float64))) / scale


def load(path: Path, task: TaskSpec) -> PreTrainedModel:
    """A fine-tuned folder as saved (stock layout), in inference mode, checked against ``task``."""
    config = read_config(path)  # a missing folder or config gets its one-line error
    check_task(config, task, path)
    return from_folder(_auto_class(task), path, config=config).eval()


def check_task(config, task: TaskSpec, path: Path) -> None:
    """Refuse a model (its ``config``) whose outputs do not fit ``task``: other label names, or not one score for regression."""
    if task.kind == "classification":
        names = tuple(config.id2label[i] for i in range(config.num_labels))
        if names != task.labels:
            raise BortError(
                f"'{path}' predicts the labels ({', '.join(names)}) but {task.name} needs ({', '.join(task.labels)}); "
                "use a model fine-tuned on this task (for glue/ax: glue/mnli; superglue/axb and axg: superglue/rte)"
            )
    elif task.kind == "regression" and config.num_labels != 1:
        raise BortError(f"'{path}' has {config.num_labels} outputs but {task.name} is a regression task; fine-tune it on {task.name}")
