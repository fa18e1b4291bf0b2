"""One predictor interface over PyTorch and ONNX Runtime, and the model folders both read.

A model folder is either a Hugging Face model folder (run by PyTorch) or an ONNX folder (run
by ONNX Runtime): a ``bort export`` (``model.onnx`` beside the source's ``config.json``, tokenizer and
``export.json``), or one exported by Optimum (``config.json`` and :data:`ONNX_FILES`, no ``export.json``:
the head comes from ``config.architectures``, the input and output names from the graph).
Either way a :class:`Predictor` maps a batch of token arrays to the model's primary output (the
logits of a task head, or the last hidden state of a bare encoder), and to sentence embeddings.
:func:`task_logits` and :func:`embed_texts` run a predictor over examples in batches, longest first, and give
their outputs back in input order (`bort predict`, `bort evaluate` on exports, `bort compress`'s scoring).
"""

from __future__ import annotations

import abc
import contextlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import transformers
from tqdm.auto import tqdm
from transformers import PreTrainedModel

from bort.data.tokens import tokenize
from bort.errors import BortError
from bort.models.families import family
from bort.models.loading import HEADS, ONNX_FILE, Head, head_by_kind, head_of, load_model, load_tokenizer, read_config, reading_weights, resolve_model_path
from bort.models.sentence import Pooling, pool

if TYPE_CHECKING:  # only a type here: importing bort.finetune would import this module back
    from bort.tasks.spec import Example

EXPORT_INFO = "export.json"
# ONNX Runtime session optimisations left off. SkipLayerNormFusion: ONNX Runtime 1.32's CPU
# SkipLayerNormalization kernel took 0.25 ms per call on a 128 × 384 input where the Add and
# LayerNormalization it replaces take 0.04 ms together: 21% of an int8 student's time at batch 1
# (docs/BENCHMARKS.md §5). Recorded in export.json for anyone who opens the graph in their own session.
DISABLED_OPTIMIZERS = ("SkipLayerNormFusion",)
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
# The graph files of an ONNX folder without ``export.json`` (Optimum's names), the first present is run.
# Optimum names a dynamically quantised graph ``model_quantized.onnx``: the name says it is int8.
ONNX_FILES = (ONNX_FILE, "onnx/model.onnx", "model_quantized.onnx", "onnx/model_quantized.onnx")
SENTENCE_OUTPUT = "sentence_embedding"  # the pooled output of an export of a sentence-transformers model
# What ONNX Runtime raises on a graph file it cannot load (none of them is a RuntimeError).
_ORT_ERRORS = ("Fail", "InvalidArgument", "InvalidGraph", "InvalidProtobuf", "NoSuchFile", "NotImplemented", "RuntimeException")
_QUANTIZE = ("none", "int8")  # bort.export.onnx.QUANTIZE, which imports this module
QUANTIZE_OF = {"onnx-fp32": "none", "onnx-int8": "int8"}  # an ONNX runtime's name → the export's --quantize


def sample_inputs(config: transformers.PretrainedConfig, head: Head, batch: int, seq: int, *, padded: bool, seed: int = 0) -> dict[str, np.ndarray]:
    """Random token inputs of shape ``[batch, seq]`` (``[batch, 2, seq]`` for multiple choice).

    With ``padded``, later rows are shorter (padding token, mask 0), as in a real padded batch;
    the second half of each row is segment 1 where the model has two token types.
    """
    rng = np.random.default_rng(seed)
    rows = batch * (2 if head.kind == "multiple_choice" else 1)
    pad = config.pad_token_id if config.pad_token_id is not None else 0
    ids = rng.integers(0, config.vocab_size - 1, size=(rows, seq), dtype=np.int64)
    ids[ids >= pad] += 1  # never the padding token at a real position (RoBERTa counts positions by it)
    mask = np.ones((rows, seq), dtype=np.int64)
    types = np.zeros((rows, seq), dtype=np.int64)
    for r in range(rows):
        length = max(1, seq - (r * seq) // (rows + 1)) if padded else seq
        ids[r, length:], mask[r, length:] = pad, 0
        if getattr(config, "type_vocab_size", 1) > 1:  # MPNet and DistilBERT have no token types
            types[r, length // 2 : length] = 1
    arrays = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
    if head.kind == "multiple_choice":
        arrays = {k: v.reshape(batch, 2, seq) for k, v in arrays.items()}
    return arrays


class Predictor(abc.ABC):
    """A loaded model: its config, head and tokenizer (None for random-weight models), :meth:`run` and :meth:`embed`."""

    runtime: str  # "torch-fp32", "torch-bf16", "onnx-fp32" or "onnx-int8"
    folder: Path | None = None  # the model folder it was loaded from (:func:`load_predictor`)

    def __init__(self, config: transformers.PretrainedConfig, head: Head, tokenizer=None) -> None:
        self.config, self.head, self.tokenizer = config, head, tokenizer

    @abc.abstractmethod
    def run(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """The primary output (float32) for a batch of ``input_ids``, ``attention_mask``, ``token_type_ids``."""

    @abc.abstractmethod
    def embed(self, inputs: dict[str, np.ndarray], pooling: Pooling) -> np.ndarray:
        """Sentence embeddings ``[batch, hidden]``: the encoder's last hidden state pooled as ``pooling`` says."""


class TorchPredictor(Predictor):
    """PyTorch eager mode, fp32 or under bfloat16 autocast."""

    def __init__(self, model: PreTrainedModel, head: Head, tokenizer=None, *, bf16: bool = False) -> None:
        super().__init__(model.config, head, tokenizer)
        self.model, self.bf16 = model, bf16
        self.runtime = "torch-bf16" if bf16 else "torch-fp32"

    def _autocast(self):
        return torch.autocast("cpu", dtype=torch.bfloat16) if self.bf16 else contextlib.nullcontext()

    @torch.inference_mode()
    def run(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        feed = {k: torch.from_numpy(v) for k, v in family(self.config).inputs(inputs).items()}
        with self._autocast():
            return getattr(self.model(**feed), self.head.output).float().numpy()

    @torch.inference_mode()
    def embed(self, inputs: dict[str, np.ndarray], pooling: Pooling) -> np.ndarray:
        feed = {k: torch.from_numpy(v) for k, v in family(self.config).inputs(inputs).items()}
        with self._autocast():  # the encoder under any head (a classifier's too)
            hidden = self.model.base_model(**feed).last_hidden_state.float()
        return pool(hidden, feed["attention_mask"], pooling).numpy()


class OnnxPredictor(Predictor):
    """An ONNX Runtime session on the CPU; ``quantize`` is what the export recorded ("none" or "int8").

    The inputs it feeds and the outputs it reads are the graph's own: the primary output is the
    head's (``logits`` or ``last_hidden_state``, as bort and Optimum name them) or else the graph's first
    (``token_embeddings`` in a sentence-transformers graph), and :data:`SENTENCE_OUTPUT` where there is one.
    """

    def __init__(self, model_file: Path, config, head: Head, tokenizer=None, *, quantize: str = "none", threads: int = 1) -> None:
        import onnxruntime as ort
        from onnxruntime.capi import onnxruntime_pybind11_state as ort_errors

        super().__init__(config, head, tokenizer)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # Idle worker threads would otherwise spin for a while after each run and slow whatever runs
        # next (the benchmark interleaves PyTorch and ONNX Runtime in one process).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        errors = tuple(getattr(ort_errors, name) for name in _ORT_ERRORS)
        with reading_weights(model_file, fix="re-export the model with `bort export`", errors=errors):
            self.session = ort.InferenceSession(str(model_file), options, providers=["CPUExecutionProvider"],
                                                disabled_optimizers=list(DISABLED_OPTIMIZERS))
        self.inputs = [i.name for i in self.session.get_inputs()]
        unknown = [n for n in self.inputs if n not in INPUT_NAMES]
        if unknown:
            raise BortError(f"the graph '{model_file}' takes the input(s) {', '.join(unknown)}, which bort does not feed; "
                            f"export it with the inputs {', '.join(INPUT_NAMES)} only")
        outputs = [o.name for o in self.session.get_outputs()]
        self.output = head.output if head.output in outputs else outputs[0]
        self.sentence_output = SENTENCE_OUTPUT if SENTENCE_OUTPUT in outputs else None
        self.runtime = "onnx-int8" if quantize == "int8" else "onnx-fp32"

    def _output(self, name: str, inputs: dict[str, np.ndarray]) -> np.ndarray:
        return self.session.run([name], {n: inputs[n] for n in self.inputs})[0]

    def run(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        return self._output(self.output, inputs)

    def embed(self, inputs: dict[str, np.ndarray], pooling: Pooling) -> np.ndarray:
        """The graph's :data:`SENTENCE_OUTPUT` (pooled as the export's source said), or a bare encoder's hidden state pooled here."""
        if self.sentence_output is not None:
            return self._output(self.sentence_output, inputs)
        if self.head.kind != "encoder":
            raise BortError(f"this ONNX graph has no {SENTENCE_OUTPUT} output and gives a {self.head.kind.replace('_', '-')} head's "
                            f"{self.output}; embed with the PyTorch folder it was exported from, or export a bare encoder")
        return pool(torch.from_numpy(self.run(inputs)), torch.from_numpy(inputs["attention_mask"]), pooling).numpy()


def export_info(path: Path) -> dict | None:
    """The record of an ONNX folder, with the ``file`` of its graph; None for a PyTorch folder.

    A ``bort export``'s is its ``export.json`` (see :class:`bort.export.onnx.ExportResult`); one that is
    not JSON, or lacks a known ``head`` or ``quantize``, is a :class:`BortError`. A folder with one of
    :data:`ONNX_FILES` and no ``export.json`` (Optimum's) gets a record made from its config's
    ``architectures`` (the head) and the graph's file name (``quantized``: int8).
    """
    file = path / EXPORT_INFO
    if not ((path / ONNX_FILE).is_file() and file.is_file()):
        graph = next((name for name in ONNX_FILES if (path / name).is_file()), None)
        if graph is None:
            return None
        return {"head": head_of(read_config(path)).kind, "quantize": "int8" if "quantized" in graph else "none", "file": graph,
                "exporter": "not bort (no export.json)"}
    fix = "re-export the model with `bort export`"
    try:
        info = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BortError(f"cannot parse {file}: {exc}; {fix}") from None
    kinds = sorted({h.kind for h in HEADS.values()})
    if not isinstance(info, dict) or info.get("head") not in kinds or info.get("quantize") not in _QUANTIZE:
        got = {k: info.get(k) for k in ("head", "quantize")} if isinstance(info, dict) else f"a JSON {type(info).__name__}"
        raise BortError(f"{file} is not a `bort export` record (head one of {', '.join(kinds)}, quantize one of "
                        f"{', '.join(_QUANTIZE)}; got {got}); {fix}")
    return {**info, "file": ONNX_FILE}


def load_predictor(name: str | Path, *, threads: int = 1, tokenizer: bool = True) -> Predictor:
    """An ONNX folder (:func:`export_info`) as an ONNX Runtime predictor, any other model folder as a PyTorch fp32 one."""
    path = resolve_model_path(name)
    info = export_info(path)
    if info is None:
        model, head, path = load_model(path)
        predictor: Predictor = TorchPredictor(model, head, load_tokenizer(path) if tokenizer else None)
    else:
        predictor = OnnxPredictor(path / info["file"], read_config(path), head_by_kind(info["head"]), load_tokenizer(path) if tokenizer else None,
                                  quantize=info["quantize"], threads=threads)
    predictor.folder = path
    return predictor


def _encode(predictor: Predictor, items: Sequence[tuple[tuple[str, ...], ...]], max_len: int, choices: bool) -> dict[str, np.ndarray]:
    rows = [row for item in items for row in item]
    second = [r[1] for r in rows] if len(rows[0]) > 1 else None  # the readers give every example the same number of segments
    enc = tokenize(predictor.tokenizer, [r[0] for r in rows], second, max_len=max_len, padding=True, return_tensors="np", return_token_type_ids=True)
    arrays = {k: enc[k].astype(np.int64) for k in ("input_ids", "attention_mask", "token_type_ids")}
    return {k: v.reshape(len(items), -1, v.shape[-1]) for k, v in arrays.items()} if choices else arrays


def _in_order(run, predictor: Predictor, items: Sequence[tuple[tuple[str, ...], ...]], max_len: int, choices: bool, batch_size: int,
              progress: str | None = None) -> np.ndarray:
    """``run`` over the encoded items (each its rows of segments: one, or one per choice) in batches, longest first so that
    each batch pads little; its outputs in input order. ``progress``: a bar of that name over the batches (stderr)."""
    order = sorted(range(len(items)), key=lambda i: -sum(len(text) for row in items[i] for text in row))
    starts = tqdm(range(0, len(order), batch_size), desc=progress, unit="batch", leave=False, disable=progress is None)
    outputs = np.concatenate([run(_encode(predictor, [items[i] for i in order[b : b + batch_size]], max_len, choices)) for b in starts])
    rows = np.empty_like(outputs)
    rows[order] = outputs
    return rows


def is_regression(predictor: Predictor) -> bool:
    """Whether the model's head gives one score (regression) rather than a probability per label."""
    config = predictor.config
    return predictor.head.kind == "classification" and (config.problem_type == "regression" or config.num_labels == 1)


def task_logits(predictor: Predictor, examples: Sequence[Example], *, max_len: int, batch_size: int, progress: str | None = None) -> np.ndarray:
    """The model's outputs for task examples, in input order: ``[n, labels]``, ``[n, choices]``, or ``[n]`` (regression);
    ``progress``: a bar of that name."""
    choices = predictor.head.kind == "multiple_choice"
    items = [ex.choices if choices else (ex.texts,) for ex in examples]
    logits = _in_order(predictor.run, predictor, items, max_len, choices, batch_size, progress)
    return logits[:, 0] if is_regression(predictor) else logits


def embed_texts(predictor: Predictor, texts: Sequence[str], pooling: Pooling, *, max_len: int, batch_size: int,
                progress: str | None = None) -> np.ndarray:
    """Sentence embeddings ``[n, hidden]`` of single texts, in input order (:meth:`Predictor.embed`); ``progress``: a bar of that name."""
    return _in_order(lambda inputs: predictor.embed(inputs, pooling), predictor, [((t,),) for t in texts], max_len, False, batch_size,
                     progress)
