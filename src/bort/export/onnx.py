"""``bort export``: a BERT/RoBERTa model as an optimised (and optionally int8) ONNX graph, checked against PyTorch.

Steps: trace the model to ONNX with dynamic batch and sequence axes (for a sequence-level head, the
last layer for the first token only: :class:`FirstTokenLayer`) → fuse it with ONNX Runtime's
transformer optimizer (``model_type="bert"``: bias + GELU; up to BERT-base's size also embedding +
LayerNorm and attention) → optionally quantise its matrix products to int8 (dynamic quantisation)
→ run the final graph on sample batches of other shapes and compare with PyTorch → only then write
the folder's files (into a new or empty folder, or an earlier export's: :func:`~bort.training.run.check_out`).

Why the TorchScript exporter (``dynamo=False``): with torch 2.13 and transformers 5 both exporters
give exact graphs, but the traced one exports in about a second where dynamo takes several, needs
no onnxscript, and is the graph ONNX Runtime's BERT fusion patterns are written for.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from transformers import PreTrainedModel

from bort import __version__
from bort.atomic import temp_dir
from bort.errors import BortError
from bort.export.runtime import DISABLED_OPTIMIZERS, EXPORT_INFO, INPUT_NAMES, OnnxPredictor, TorchPredictor, sample_inputs
from bort.models.loading import ONNX_FILE, Head, load_model, load_tokenizer, position_limit, read_config
from bort.options import opt
from bort.records import Record
from bort.training.run import output_files

QUANTIZE = ("none", "int8")
# The check: which error over the sample batches must stay within what. fp32 graphs agree with
# PyTorch to ~1e-6 of the output's scale, so fp32 is held to max |Δ| / max |PyTorch| ≤ 1e-3. int8
# moves outputs by a few % (more on the random token ids of the check than on text, and most for
# MiniLM-like models, whose activations have outliers), so it is held to the relative RMS error
# ‖Δ‖ / ‖PyTorch‖ ≤ 0.2, which catches a broken graph; its real check is the task metric
# (docs/BENCHMARKS.md §5 and tests/test_export.py).
GATE = {"none": ("max_relative_error", 1e-3), "int8": ("rms_relative_error", 0.2)}
# The task head's layers: the pooler/classification dense and the classifier. They run on one token
# per sequence (no measurable cost), and a bort "linear" head stores its classifier as W/1e-4 behind
# a 1e-4·I pooler, so they stay fp32.
_HEAD_LAYERS = ("pooler", "classifier")
# The heads that read only the first token of the last layer (:class:`FirstTokenLayer`).
FIRST_TOKEN_HEADS = ("classification", "multiple_choice")
_TRACE_SHAPE, _CHECK_SHAPES = (2, 16), ((3, 23), (1, 9))
_SHAPE_INFERENCE_MAX_BYTES = 1 << 30


@dataclass(frozen=True)
class ExportResult(Record):
    """``export.json``: the graph's head, output and inputs, how it was made and fused, and its check against PyTorch."""

    head: str
    output: str
    inputs: list[str]
    quantize: str
    opset: int
    exporter: str
    first_token_last_layer: bool
    fused_operators: dict[str, int]
    disabled_optimizers: list[str]
    check: dict
    bort_version: str
    source: str | None = None  # the model folder it was exported from


@dataclass(frozen=True)
class ExportConfig:
    """What ``bort export`` writes: ``model`` (a folder, alias or Hub name) to the folder ``out``."""

    model: str = field(metadata=opt("Hugging Face BERT/RoBERTa folder (e.g. a `bort finetune` output), Hub name or 'minilm-l6'"))
    out: Path = field(metadata=opt("output folder: model.onnx, config.json, the tokenizer, export.json"))
    quantize: str = field(default="none", metadata=opt("int8: dynamic int8 quantisation of the matrix products", choices=QUANTIZE))
    opset: int = field(default=17, metadata=opt("ONNX opset, 14..20"))

    def __post_init__(self) -> None:
        if self.quantize not in QUANTIZE:
            raise BortError(f"--quantize must be one of {', '.join(QUANTIZE)}, got '{self.quantize}'")
        if not 14 <= self.opset <= 20:
            raise BortError(f"--opset {self.opset} is outside the supported 14..20; use 17 (the default)")


class _Forward(torch.nn.Module):
    """The model called with positional token inputs, returning only its primary output."""

    def __init__(self, model: PreTrainedModel, output: str) -> None:
        super().__init__()
        self.model, self.output = model, output

    def forward(self, input_ids, attention_mask, token_type_ids):
        return getattr(self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids), self.output)


class FirstTokenLayer(torch.nn.Module):
    """A BERT/RoBERTa encoder layer computed for the first token only, returning ``[batch, 1, hidden]``.

    A sequence-level head (classification, regression, multiple choice) reads only the first
    token of the last layer, so that layer's query, attention, output projection and feed-forward
    are needed for one position, not every one: only its keys and values see the whole sequence.
    This is exact (the export's check compares with the unchanged model) and removes about 5/6 of
    the last layer's matrix products: 28% of a 3-layer student's at sequence 128.
    """

    def __init__(self, layer: torch.nn.Module) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None, *args, **kwargs) -> torch.Tensor:
        att, first = self.layer.attention.self, hidden_states[:, :1]
        batch, heads, size = hidden_states.shape[0], att.num_attention_heads, att.attention_head_size

        def split(x: torch.Tensor) -> torch.Tensor:  # [batch, n, hidden] → [batch, heads, n, size]
            return x.view(batch, -1, heads, size).transpose(1, 2)

        scores = split(att.query(first)) @ split(att.key(hidden_states)).transpose(2, 3) * att.scaling
        if attention_mask is not None:  # the eager additive mask, [batch, 1, 1 or sequence, sequence]: its first query row
            scores = scores + attention_mask[:, :, :1]
        context = (scores.softmax(-1) @ split(att.value(hidden_states))).transpose(1, 2).reshape(batch, 1, heads * size)
        return self.layer.feed_forward_chunk(self.layer.attention.output(context, first))


@contextlib.contextmanager
def _first_token_last_layer(model: PreTrainedModel, head: Head):
    """Swap the last encoder layer for a :class:`FirstTokenLayer` while tracing a sequence-level head (others: no change)."""
    if head.kind not in FIRST_TOKEN_HEADS:
        yield
        return
    layers = model.base_model.encoder.layer
    last = layers[-1]
    layers[-1] = FirstTokenLayer(last)
    try:
        yield
    finally:
        layers[-1] = last


def _trace(model: PreTrainedModel, head: Head, file: Path, opset: int) -> None:
    seq_axes = {0: "batch", 1: "sequence"}
    if head.kind == "multiple_choice":
        seq_axes, out_axes = {0: "batch", 1: "choices", 2: "sequence"}, {0: "batch", 1: "choices"}
    else:  # classification logits are [batch, labels]; token-level outputs [batch, sequence, …]
        out_axes = {0: "batch"} if head.kind == "classification" else seq_axes
    inputs = sample_inputs(model.config, head, *_TRACE_SHAPE, padded=True)
    # The wrapper goes to eval mode too: the exporter restores the mode it finds on the module it is given.
    wrapper = _Forward(model, head.output).eval()
    with warnings.catch_warnings(), _first_token_last_layer(model, head):
        warnings.simplefilter("ignore")  # tracer warnings about Python control flow fixed by the trace
        torch.onnx.export(
            wrapper, tuple(torch.from_numpy(inputs[n]) for n in INPUT_NAMES), str(file), input_names=list(INPUT_NAMES),
            output_names=[head.output], dynamic_axes={**{n: seq_axes for n in INPUT_NAMES}, head.output: out_axes},
            opset_version=opset, dynamo=False,
        )


def _optimize(file: Path, config) -> tuple[dict[str, int], list[str]]:
    """Fuse the graph in place with ONNX Runtime's BERT optimizer; return the fused operators' counts
    and the names of the task head's nodes (:data:`_HEAD_LAYERS`)."""
    from onnxruntime.transformers import optimizer
    from onnxruntime.transformers.fusion_options import FusionOptions

    # opt_level 0: the optimizer's own fusions only. ONNX Runtime applies its hardware-specific graph
    # optimisations anyway when a session loads, so the file stays portable. The Attention and
    # EmbedLayerNormalization fusions need symbolic shape inference, which holds several copies of
    # every weight: exporting BERT-large with it took over 18 GB and was killed on a 24 GB machine.
    # So it runs only for graphs up to 1 GiB (BERT-base and smaller); the larger graphs keep
    # attention unfused, which measured no slower there (docs/design.md).
    options = FusionOptions("bert")
    options.enable_skip_layer_norm = False  # slower than Add + LayerNormalization on the CPU (runtime.DISABLED_OPTIMIZERS)
    options.enable_shape_inference = file.stat().st_size <= _SHAPE_INFERENCE_MAX_BYTES
    logging.getLogger("fusion_skiplayernorm").setLevel(logging.ERROR)  # says, once per export, when it is off
    model = optimizer.optimize_model(str(file), model_type="bert", num_heads=config.num_attention_heads, hidden_size=config.hidden_size,
                                     opt_level=0, optimization_options=options)
    model.save_model_to_file(str(file))
    head_nodes = [n.name for n in model.nodes() if any(h in n.name for h in _HEAD_LAYERS)]
    return {op: n for op, n in model.get_fused_operator_statistics().items() if n}, head_nodes


def _quantize(src: Path, dst: Path, head_nodes: list[str]) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    head_nodes = head_nodes + [f"{name}_MatMul" for name in head_nodes]  # the quantizer first rewrites each Gemm as a MatMul of that name
    root = logging.getLogger()
    level, root.level = root.level, logging.ERROR  # the quantizer logs advice on the root logger
    try:
        # DefaultTensorType: ONNX shape inference cannot type the outputs of the fused contrib operators.
        # per_channel: one scale per output column; on the fine-tuned MiniLM teacher it halved the
        # int8 error (relative RMS 0.13 → 0.05 on CoLA dev) for ~5% more time. Only the matrix
        # products (MatMul, Attention) are quantised: int8 word embeddings flipped 4 of RTE's 277 dev
        # predictions of that teacher (−1.4 points) for no measurable speed.
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, per_channel=True, nodes_to_exclude=head_nodes,
                         op_types_to_quantize=["MatMul", "Attention"], extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    finally:
        root.level = level


def check(onnx_model: OnnxPredictor, reference: TorchPredictor, quantize: str) -> dict:
    """Compare the ONNX graph with PyTorch on padded batches of shapes other than the traced one.

    Returns the relative errors (max |Δ| / max |PyTorch|, and ‖Δ‖ / ‖PyTorch‖), the gated one and its
    tolerance (:data:`GATE`), and for logits the share of rows whose argmax agrees. A
    :class:`BortError` saying by how much when the gated error is past its tolerance.
    """
    seq_cap = position_limit(reference.config)
    wants, gots = [], []
    for seed, (batch, seq) in enumerate(_CHECK_SHAPES):
        inputs = sample_inputs(reference.config, reference.head, batch, min(seq, seq_cap), padded=True, seed=seed + 1)
        want, got = reference.run(inputs), onnx_model.run(inputs)
        if got.shape != want.shape:
            raise BortError(f"the ONNX graph's output has shape {got.shape} where PyTorch's has {want.shape}; nothing written, report this model")
        wants.append(want.reshape(-1, want.shape[-1]))
        gots.append(got.reshape(-1, got.shape[-1]))
    want, got = np.concatenate(wants), np.concatenate(gots)
    errors = {"max_relative_error": float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-12)),
              "rms_relative_error": float(np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-12))}
    metric, tolerance = GATE[quantize]
    if not errors[metric] <= tolerance:  # also catches NaN
        kind = "int8 " if quantize == "int8" else ""
        what = "max |Δ| / max |PyTorch|" if metric == "max_relative_error" else "‖Δ‖ / ‖PyTorch‖"
        raise BortError(
            f"the {kind}ONNX graph misses PyTorch's outputs by {errors[metric]:.3g} ({what}; tolerance {tolerance:g}); "
            "nothing written: try another --opset" + (" or --quantize none" if quantize == "int8" else "")
        )
    agreement = float((got.argmax(-1) == want.argmax(-1)).mean()) if reference.head.output == "logits" else None
    return {**errors, "metric": metric, "error": errors[metric], "tolerance": tolerance, "argmax_agreement": agreement,
            "shapes": [list(s) for s in _CHECK_SHAPES]}


def export_model(model: PreTrainedModel, head: Head, folder: Path, *, quantize: str = "none", opset: int = 17) -> ExportResult:
    """Write ``folder/model.onnx`` for a model loaded with eager attention, checked against it.

    Returns the export's record (also the content of ``export.json``). Used by :func:`export_onnx`
    and by the benchmark for random-weight models.
    """
    # The work folder lies in ``folder`` (for bort's stages, itself a temporary), named for this process,
    # so a killed export leaves nothing in /tmp and its leftovers are removed by the next writer there.
    with temp_dir(folder, "onnx") as work:
        traced = work / "traced.onnx"
        try:
            _trace(model, head, traced, opset)
        except (RuntimeError, torch.onnx.errors.OnnxExporterError) as exc:
            raise BortError(f"torch.onnx cannot export this model at opset {opset} ({str(exc).splitlines()[0][:160]}); try another --opset") from None
        fused, head_nodes = _optimize(traced, model.config)
        if quantize == "int8":
            _quantize(traced, folder / ONNX_FILE, head_nodes)
        else:
            shutil.move(str(traced), folder / ONNX_FILE)
    onnx_model = OnnxPredictor(folder / ONNX_FILE, model.config, head, quantize=quantize)
    report = check(onnx_model, TorchPredictor(model, head), quantize)
    return ExportResult(head=head.kind, output=head.output, inputs=onnx_model.inputs, quantize=quantize, opset=opset, exporter="torchscript",
                        first_token_last_layer=head.kind in FIRST_TOKEN_HEADS, fused_operators=fused,
                        disabled_optimizers=list(DISABLED_OPTIMIZERS), check=report, bort_version=__version__)


def export_onnx(cfg: ExportConfig) -> ExportResult:
    """Export a model folder to ``cfg.out``: ``model.onnx``, the source's ``config.json`` (labels, task
    metadata), its tokenizer and ``export.json``. The files appear only once the check has passed, each
    whole; ``cfg.out`` must be new, empty or an earlier export, and not the model's folder (:func:`output_files`).
    """
    model, head, path = load_model(cfg.model, eager_attention=True)
    tokenizer = load_tokenizer(path)
    with output_files(cfg.out, kind="bort export", marker=EXPORT_INFO, inputs=(path,)) as tmp:
        info = replace(export_model(model, head, tmp, quantize=cfg.quantize, opset=cfg.opset), source=str(path))
        read_config(path).save_pretrained(tmp)  # the source's config (id2label, bort_task, bort_max_seq_len, …) without remote-code fields
        tokenizer.save_pretrained(tmp)
        info.write(tmp / EXPORT_INFO)
    return info

