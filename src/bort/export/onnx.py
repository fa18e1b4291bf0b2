"""``bort export``: a model (:mod:`bort.models.families`) as an optimised (and optionally int8) ONNX graph, checked against PyTorch.

Steps: trace the model to ONNX with dynamic batch and sequence axes (for a sequence-level head, the
last layer for the first token only: :class:`FirstTokenLayer`) → fuse it with ONNX Runtime's
transformer optimizer (``model_type="bert"``: bias + GELU; up to BERT-base's size also embedding +
LayerNorm and attention) → optionally quantise its matrix products to int8 (dynamic quantisation)
→ run the final graph on sample batches of other shapes and compare with PyTorch (:mod:`bort.export.check`) → only then write
the folder's files, swapped in whole (into a new or empty folder, or in place of an earlier export: :func:`~bort.shared.output_files`).

A sentence-transformers model (a bare encoder whose folder has ``modules.json``) gets a second output,
``sentence_embedding``: the last hidden state pooled and normalised as its pipeline says
(:mod:`bort.models.sentence`), checked like the first. Its export keeps the pipeline's files and the
PyTorch weights, so that ``SentenceTransformer(OUT)`` loads it as it loaded the source (and, with
Optimum installed, ``SentenceTransformer(OUT, backend="onnx")`` runs ``model.onnx``).

Why the TorchScript exporter (``dynamo=False``): with torch 2.13 and transformers 5 both exporters
give exact graphs, but the traced one exports in about a second where dynamo takes several, needs
no onnxscript, and is the graph ONNX Runtime's BERT fusion patterns are written for.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel

from bort import __version__
from bort.atomic import atomic_write_text, temp_dir
from bort.errors import BortError
from bort.export.check import check
from bort.models.card import Card
from bort.models.families import NAMES as FAMILY_NAMES
from bort.models.families import family
from bort.models.loading import ONNX_FILE, Head, load_model, load_tokenizer, read_config
from bort.models.runtime import DISABLED_OPTIMIZERS, EXPORT_INFO, INPUT_NAMES, SENTENCE_OUTPUT, OnnxPredictor, TorchPredictor, sample_inputs
from bort.models.sentence import Pooling, pool, read_pooling, sentence_files
from bort.options import opt
from bort.records import Record
from bort.shared import PROGRESS, output_files

QUANTIZE = ("none", "int8")
# The task head's layers: the pooler/classification dense and the classifier. They run on one token
# per sequence (no measurable cost), and a bort "linear" head stores its classifier as W/1e-4 behind
# a 1e-4·I pooler, so they stay fp32.
_HEAD_LAYERS = ("pooler", "classifier")
# The heads that read only the first token of the last layer (:class:`FirstTokenLayer`).
FIRST_TOKEN_HEADS = ("classification", "multiple_choice")
_TRACE_SHAPE = (2, 16)  # [batch, sequence] of the traced sample (check.CHECK_SHAPES differ)
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
    sentence_embedding: dict | None = None  # the pooling of the ``sentence_embedding`` output, where the graph has one


@dataclass(frozen=True)
class ExportConfig:
    """What ``bort export`` writes: ``model`` (a folder, alias or Hub name) to the folder ``out``."""

    model: str = field(metadata=opt(f"Hugging Face folder of the {FAMILY_NAMES} families (e.g. a `bort finetune` output), Hub name or "
                                    "'minilm-l6'"))
    out: Path = field(metadata=opt("output folder: model.onnx, config.json, the tokenizer, export.json"))
    quantize: str = field(default="none", metadata=opt("int8: dynamic int8 quantisation of the matrix products", choices=QUANTIZE))
    opset: int = field(default=17, metadata=opt("ONNX opset, 14..20"))
    progress: bool = field(default=True, metadata=PROGRESS)

    def __post_init__(self) -> None:
        if self.quantize not in QUANTIZE:
            raise BortError(f"--quantize must be one of {', '.join(QUANTIZE)}, got '{self.quantize}'")
        if not 14 <= self.opset <= 20:
            raise BortError(f"--opset {self.opset} is outside the supported 14..20; use 17 (the default)")


class _Forward(torch.nn.Module):
    """The model called with positional token inputs, returning its primary output (and, with ``pooling``, the sentence embedding)."""

    def __init__(self, model: PreTrainedModel, output: str, pooling: Pooling | None = None) -> None:
        super().__init__()
        self.model, self.output, self.pooling = model, output, pooling

    def forward(self, input_ids, attention_mask, token_type_ids=None):  # a family without token types is traced without them
        types = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        out = getattr(self.model(input_ids=input_ids, attention_mask=attention_mask, **types), self.output)
        return out if self.pooling is None else (out, pool(out, attention_mask, self.pooling))


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
    if head.kind not in FIRST_TOKEN_HEADS or not family(model.config).bert_layers:
        yield
        return
    layers = model.base_model.encoder.layer
    last = layers[-1]
    layers[-1] = FirstTokenLayer(last)
    try:
        yield
    finally:
        layers[-1] = last


def _trace(model: PreTrainedModel, head: Head, file: Path, opset: int, pooling: Pooling | None) -> None:
    seq_axes = {0: "batch", 1: "sequence"}
    if head.kind == "multiple_choice":
        seq_axes, out_axes = {0: "batch", 1: "choices", 2: "sequence"}, {0: "batch", 1: "choices"}
    else:  # classification logits are [batch, labels]; token-level outputs [batch, sequence, …]
        out_axes = {0: "batch"} if head.kind == "classification" else seq_axes
    inputs = family(model.config).inputs(sample_inputs(model.config, head, *_TRACE_SHAPE, padded=True))
    names = [n for n in INPUT_NAMES if n in inputs]
    # The wrapper goes to eval mode too: the exporter restores the mode it finds on the module it is given.
    wrapper = _Forward(model, head.output, pooling).eval()
    outputs = {head.output: out_axes, **({SENTENCE_OUTPUT: {0: "batch"}} if pooling else {})}
    with warnings.catch_warnings(), _first_token_last_layer(model, head):
        warnings.simplefilter("ignore")  # tracer warnings about Python control flow fixed by the trace
        torch.onnx.export(
            wrapper, tuple(torch.from_numpy(inputs[n]) for n in names), str(file), input_names=names,
            output_names=list(outputs), dynamic_axes={**{n: seq_axes for n in names}, **outputs},
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


def _quantize(src: Path, dst: Path, head_nodes: list[str], keep_float: tuple[str, ...] = ()) -> None:
    """Quantise the matrix products of ``src`` to int8 (not the head's, nor those whose node name holds one of ``keep_float``)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    head_nodes = head_nodes + [f"{name}_MatMul" for name in head_nodes]  # the quantizer first rewrites each Gemm as a MatMul of that name
    if keep_float:
        head_nodes += [n.name for n in onnx.load(str(src), load_external_data=False).graph.node if any(k in n.name for k in keep_float)]
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


@contextlib.contextmanager
def _stage(bar: tqdm | None, name: str) -> Iterator[None]:
    """One stage of an export on its progress bar (if any): named while it runs, counted when it ends."""
    if bar is not None:
        bar.set_postfix_str(name)
    yield
    if bar is not None:
        bar.update()


def export_model(model: PreTrainedModel, head: Head, folder: Path, *, quantize: str = "none", opset: int = 17, pooling: Pooling | None = None,
                 bar: tqdm | None = None) -> ExportResult:
    """Write ``folder/model.onnx`` for a model loaded with eager attention, checked against it.

    With ``pooling`` (a bare encoder only), the graph also outputs the sentence embedding. ``bar``
    shows the stages. Returns the export's record (also the content of ``export.json``). Used by
    :func:`export_onnx` and by the benchmark for random-weight models.
    """
    # The work folder lies in ``folder`` (for bort's stages, itself a temporary), named for this process,
    # so a killed export leaves nothing in /tmp and its leftovers are removed by the next writer there.
    with temp_dir(folder, "onnx") as work:
        traced = work / "traced.onnx"
        with _stage(bar, "trace"):
            try:
                _trace(model, head, traced, opset, pooling)
            except (RuntimeError, torch.onnx.errors.OnnxExporterError) as exc:
                raise BortError(f"torch.onnx cannot export this model at opset {opset} ({str(exc).splitlines()[0][:160]}); "
                                "try another --opset") from None
        with _stage(bar, "fuse"):
            fused, head_nodes = _optimize(traced, model.config)
        if quantize == "int8":
            with _stage(bar, "quantize"):
                _quantize(traced, folder / ONNX_FILE, head_nodes, family(model.config).int8_float)
        else:
            shutil.move(str(traced), folder / ONNX_FILE)
    with _stage(bar, "check"):
        onnx_model = OnnxPredictor(folder / ONNX_FILE, model.config, head, quantize=quantize)
        report = check(onnx_model, TorchPredictor(model, head), quantize, pooling)
    return ExportResult(head=head.kind, output=head.output, inputs=onnx_model.inputs, quantize=quantize, opset=opset, exporter="torchscript",
                        first_token_last_layer=head.kind in FIRST_TOKEN_HEADS, fused_operators=fused,
                        disabled_optimizers=list(DISABLED_OPTIMIZERS), check=report, bort_version=__version__,
                        sentence_embedding=None if pooling is None else {"mode": pooling.mode, "normalize": pooling.normalize})


def export_onnx(cfg: ExportConfig) -> ExportResult:
    """Export a model folder to ``cfg.out``: ``model.onnx``, the source's ``config.json`` (labels, task
    metadata), its tokenizer and ``export.json``; for a sentence-transformers encoder also its pipeline's
    files and weights (see the module's docstring). The files appear only once the check has passed, each
    whole, in place of any earlier export's (none of whose files stay); ``cfg.out`` must be new, empty or an earlier export
    holding nothing else, and not the model's folder (:func:`~bort.shared.output_files`).
    """
    # disable=None: no bar where standard error is not a terminal (a log, a pipe), as well as with --no-progress
    stages = ("load", "trace", "fuse", *(("quantize",) if cfg.quantize == "int8" else ()), "check", "write")
    with tqdm(total=len(stages), desc="export", unit="stage", disable=None if cfg.progress else True) as bar:
        with _stage(bar, "load"):
            model, head, path = load_model(cfg.model, eager_attention=True)
            tokenizer = load_tokenizer(path)
            # The pooling first: it refuses a damaged modules.json, which sentence_files then reads.
            pooling = read_pooling(path) if head.kind == "encoder" and (path / "modules.json").is_file() else None
            st_files = sentence_files(path) if pooling else {}
        with output_files(cfg.out, kind="bort export", marker=EXPORT_INFO, inputs=(path,)) as tmp:
            info = replace(export_model(model, head, tmp, quantize=cfg.quantize, opset=cfg.opset, pooling=pooling, bar=bar), source=str(path))
            with _stage(bar, "write"):
                if st_files:  # the weights, for SentenceTransformer(OUT); before the config, which replaces the one written here
                    model.save_pretrained(tmp)
                read_config(path).save_pretrained(tmp)  # the source's config (id2label, bort_task, bort_max_seq_len, …) without remote-code fields
                tokenizer.save_pretrained(tmp)
                for name, text in st_files.items():
                    atomic_write_text(tmp / name, text)
                info.write(tmp / EXPORT_INFO)
                # The model card (README.md), last: it describes the files of the export (the sentence-transformers ones too).
                Card("bort export", str(cfg.model), settings={"quantize": cfg.quantize, "opset": cfg.opset}, params=model.num_parameters(),
                     metrics={k: v for k, v in info.check.items() if k.endswith(("_error", "_agreement")) and v is not None},
                     evaluation="Agreement with PyTorch on sample batches", quantized=cfg.quantize == "int8").write(tmp, name=cfg.out)
    return info

