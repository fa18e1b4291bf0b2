"""One adapter per model family (issue 39): all that bort needs to know of a family, so that nothing else tests a model type.

An adapter says where a family keeps what bort reads and slices: the config field of the intermediate size (the other
three sizes of ξ are transformers' common names; DistilBERT's config maps them to its own), the masked-LM class and the
modules of its head, the checkpoint prefixes of that head, the path to the layers and to a layer's query/key/value
projections (attention relations), whether the model takes token types, whether its positions start after the padding
index, whether the bare model has a pooler, and what its embeddings hold (p̂). Weight names carry ``.layer.N.`` in every
family, so teacher slices (:mod:`bort.models.slices`) need nothing more.

A model folder of a type without an adapter is refused when it is read (:func:`bort.models.loading.read_config`), in one
line that names the families bort works with. Each adapter is tested at the model level (tests/test_families.py) and
every verb end to end on a tiny teacher of its family (tests/test_family_verbs.py).
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass

import torch
from transformers import PretrainedConfig, PreTrainedModel

from bort.arch import Arch
from bort.errors import BortError


@dataclass(frozen=True)
class Family:
    """How one family names its sizes, weights and modules."""

    model_type: str
    name: str
    mlm_class: str
    mlm_head: tuple[str, ...]  # the masked-LM model's attributes that make its head, applied in order
    mlm_prefixes: tuple[str, ...]  # checkpoint keys of that head
    intermediate: str = "intermediate_size"
    layers: str = "encoder.layer"  # from the bare model to its list of layers
    qkv: tuple[str, str, str, str] = ("attention.self", "query", "key", "value")  # within a layer: the module, then its Q, K, V
    token_types: bool = True
    positions_after_padding: bool = False  # RoBERTa's positions start at padding index + 1
    pooler: bool = True
    relative_bias: bool = False  # MPNet: one relative-attention bias per head, shared by the layers
    bert_layers: bool = True  # its layers are BERT's (attention.self, …): the export may compute the last for the first token alone
    int8_float: tuple[str, ...] = ()  # the int8 export keeps the matrix products whose node names hold these in float

    def arch(self, config: PretrainedConfig) -> Arch:
        """ξ of a config of this family."""
        return Arch(int(config.num_hidden_layers), int(config.num_attention_heads), int(config.hidden_size), int(getattr(config, self.intermediate)))

    def with_arch(self, config: PretrainedConfig, arch: Arch) -> PretrainedConfig:
        """A copy of ``config`` with only ξ changed (an ELECTRA embedding as wide as the hidden states stays so)."""
        config = copy.deepcopy(config)
        if getattr(config, "embedding_size", None) == config.hidden_size:
            config.embedding_size = arch.H
        config.num_hidden_layers, config.num_attention_heads, config.hidden_size = arch.D, arch.A, arch.H
        setattr(config, self.intermediate, arch.I)
        config.architectures = [self.mlm_class]
        return config

    def inputs(self, batch: dict) -> dict:
        """``batch`` as the family's models take it: without ``token_type_ids`` where it has no token types."""
        return batch if self.token_types else {k: v for k, v in batch.items() if k != "token_type_ids"}

    def position_limit(self, config: PretrainedConfig) -> int:
        """The longest input its position embeddings take."""
        offset = (config.pad_token_id or 0) + 1 if self.positions_after_padding else 0
        return config.max_position_embeddings - offset

    def bare_kwargs(self) -> dict:
        """What makes ``AutoModel.from_config`` build the bare encoder without a pooler."""
        return {"add_pooling_layer": False} if self.pooler else {}

    def layer(self, model: PreTrainedModel, i: int) -> torch.nn.Module:
        """Layer ``i`` (0-based) of a model of this family, bare or with a head."""
        return functools.reduce(getattr, self.layers.split("."), model.base_model)[i]

    def qkv_modules(self, model: PreTrainedModel, i: int) -> tuple[torch.nn.Module, torch.nn.Module, torch.nn.Module]:
        """The query, key and value projections of layer ``i``."""
        attention = functools.reduce(getattr, self.qkv[0].split("."), self.layer(model, i))
        return tuple(getattr(attention, n) for n in self.qkv[1:])

    def mlm_head_module(self, model: PreTrainedModel) -> torch.nn.Module:
        """The masked-LM head of a masked-LM model of this family, as one module from hidden states to vocabulary logits."""
        parts = [getattr(model, name) for name in self.mlm_head]
        if hasattr(model, "activation"):  # DistilBERT applies its activation between the first two (ELECTRA's is inside the first)
            parts.insert(1, model.activation)
        return parts[0] if len(parts) == 1 else torch.nn.Sequential(*parts)

    def embedding_params(self, config: PretrainedConfig, arch: Arch) -> int:
        """Parameters of the embeddings at shape ξ (p̂): words, positions and token types at the embedding width, its
        LayerNorm, ELECTRA's projection to the hidden width, MPNet's relative-attention bias."""
        width = config.embedding_size if getattr(config, "embedding_size", None) not in (None, config.hidden_size) else arch.H
        rows = config.vocab_size + config.max_position_embeddings + (config.type_vocab_size if self.token_types else 0)
        project = width * arch.H + arch.H if width != arch.H else 0
        bias = config.relative_attention_num_buckets * arch.A if self.relative_bias else 0
        return rows * width + 2 * width + project + bias


FAMILIES = {f.model_type: f for f in (
    Family("bert", "BERT", "BertForMaskedLM", ("cls",), ("cls.predictions.",)),
    Family("roberta", "RoBERTa", "RobertaForMaskedLM", ("lm_head",), ("lm_head.",), positions_after_padding=True),
    Family("xlm-roberta", "XLM-RoBERTa", "XLMRobertaForMaskedLM", ("lm_head",), ("lm_head.",), positions_after_padding=True),
    Family("electra", "ELECTRA", "ElectraForMaskedLM", ("generator_predictions", "generator_lm_head"),
           ("generator_predictions.", "generator_lm_head."), pooler=False),
    Family("mpnet", "MPNet", "MPNetForMaskedLM", ("lm_head",), ("lm_head.",), qkv=("attention.attn", "q", "k", "v"), token_types=False,
           positions_after_padding=True, relative_bias=True, bert_layers=False,
           # The FFN's down-projection reads GELU outputs with outlier columns that per-tensor int8 activations flatten: kept in
           # float, all-mpnet-base-v2's int8 hidden states on STS-B dev sentences go from 0.59 to 0.24 off fp32 (‖Δ‖/‖x‖), its
           # sentence embeddings' least cosine to fp32 from 0.82 to 0.98 (docs/BENCHMARKS.md §3).
           int8_float=("output/dense",)),
    Family("distilbert", "DistilBERT", "DistilBertForMaskedLM", ("vocab_transform", "vocab_layer_norm", "vocab_projector"),
           ("vocab_transform.", "vocab_layer_norm.", "vocab_projector."), intermediate="hidden_dim", layers="transformer.layer",
           qkv=("attention", "q_lin", "k_lin", "v_lin"), token_types=False, pooler=False, bert_layers=False),
)}
MLM_PREFIXES = tuple(p for f in FAMILIES.values() for p in f.mlm_prefixes)
*_OTHERS, _LAST = [f.name for f in FAMILIES.values()]
NAMES = f"{', '.join(_OTHERS)} and {_LAST}"  # "BERT, RoBERTa, … and DistilBERT": the families bort works with, in words


def family(config: PretrainedConfig | str | None, where: str = "the model") -> Family:
    """The adapter of a config's (or a model type's) family; one line for a model type without one, naming the families
    bort works with."""
    model_type = config if isinstance(config, str | None) else config.model_type
    found = FAMILIES.get(model_type)
    if found is None:
        raise BortError(f"{where} is a '{model_type}' model; bort works with the {NAMES} families")
    return found


def config_arch(config: PretrainedConfig) -> Arch:
    """ξ of a model's config, read by its family's adapter."""
    return family(config).arch(config)
