"""Sentence embeddings the way sentence-transformers makes them: the folder's pooling and normalisation.

A sentence-transformers folder describes its pipeline in ``modules.json`` (Transformer → Pooling →
optionally Normalize), with the pooling mode in ``1_Pooling/config.json``. bort reads that, pools
the encoder's last hidden state the same way, and carries those files over to the models it writes,
so that ``SentenceTransformer(OUT)`` loads a student as it loaded the teacher. A folder without them
is mean-pooled without normalisation, the sentence-transformers default (the caller says so).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from bort.data.tokens import tokenize
from bort.errors import BortError

# The files of a sentence-transformers folder besides the Hugging Face model's own.
ST_FILES = ("modules.json", "sentence_bert_config.json", "config_sentence_transformers.json")
MODES = ("mean", "cls", "max", "mean_sqrt_len")


@dataclass(frozen=True)
class Pooling:
    """How token states become a sentence embedding; ``source`` says where that came from."""

    mode: str = "mean"
    normalize: bool = False
    source: str = "default: mean pooling, no normalisation (no sentence-transformers modules.json)"


def read_pooling(folder: Path) -> Pooling:
    """The pooling of the sentence-transformers pipeline in ``folder``; mean pooling where it has none."""
    folder = Path(folder)
    modules_file = folder / "modules.json"
    if not modules_file.is_file():
        return Pooling()
    try:
        modules = json.loads(modules_file.read_text(encoding="utf-8"))
        kinds = {m["type"].rsplit(".", 1)[-1]: m.get("path", "") for m in modules}
        config = json.loads((folder / kinds["Pooling"] / "config.json").read_text(encoding="utf-8")) if "Pooling" in kinds else {}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BortError(f"cannot read the sentence-transformers pipeline in '{folder}' ({type(exc).__name__}: {str(exc)[:100]}); "
                        "repair modules.json and 1_Pooling/config.json, or remove modules.json for mean pooling") from None
    on = [m for m in MODES if config.get(f"pooling_mode_{m}_tokens" if m != "cls" else "pooling_mode_cls_token")]
    if len(on) > 1:
        raise BortError(f"'{folder}' pools with several modes at once ({', '.join(on)}); bort supports one")
    return Pooling(mode=on[0] if on else "mean", normalize="Normalize" in kinds, source=f"sentence-transformers ({modules_file})")


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: Pooling) -> torch.Tensor:
    """``[batch, tokens, H]`` token states → ``[batch, H]`` sentence embeddings (padding left out)."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    if pooling.mode == "cls":
        out = hidden[:, 0]
    elif pooling.mode == "max":
        out = hidden.masked_fill(mask == 0, torch.finfo(hidden.dtype).min).amax(1)
    else:
        count = mask.sum(1).clamp(min=1)
        out = (hidden * mask).sum(1) / (count.sqrt() if pooling.mode == "mean_sqrt_len" else count)
    return F.normalize(out, dim=-1) if pooling.normalize else out


@torch.inference_mode()
def embed(encoder: torch.nn.Module, tokenizer, texts: list[str], pooling: Pooling, *, batch_size: int = 64, max_len: int = 128,
          progress: str | None = None) -> torch.Tensor:
    """The sentence embeddings of ``texts`` from a bare encoder (a model's ``base_model``), in order; ``progress``: a bar of that name."""
    device = next(encoder.parameters()).device
    was_training = encoder.training
    encoder.eval()
    parts = []
    for b in tqdm(range(0, len(texts), batch_size), desc=progress, unit="batch", leave=False, disable=progress is None):
        enc = tokenize(tokenizer, texts[b : b + batch_size], max_len=max_len, padding=True, return_tensors="pt").to(device)
        hidden = encoder(**{k: v for k, v in enc.items() if k in ("input_ids", "attention_mask", "token_type_ids")}).last_hidden_state
        parts.append(pool(hidden.float(), enc["attention_mask"], pooling).cpu())
    encoder.train(was_training)
    return torch.cat(parts)


def sentence_files(src: Path) -> dict[str, str]:
    """The sentence-transformers files of ``src`` (relative path → text): modules.json, the configs of its module
    folders besides the Transformer's own (``path`` ""), and the package's configs. Empty for any other folder."""
    src = Path(src)
    if not (src / "modules.json").is_file():
        return {}
    files = {name: (src / name).read_text(encoding="utf-8") for name in ST_FILES if (src / name).is_file()}
    for module in json.loads(files["modules.json"]):
        sub = module.get("path", "")
        if sub and (src / sub).is_dir():
            files.update({f"{sub}/{f.name}": f.read_text(encoding="utf-8") for f in sorted((src / sub).iterdir()) if f.is_file()})
    return files


def max_seq_length(folder: Path) -> int | None:
    """The length a sentence-transformers folder truncates its inputs at (``sentence_bert_config.json``); None where it says none."""
    file = Path(folder) / "sentence_bert_config.json"
    try:
        value = json.loads(file.read_text(encoding="utf-8")).get("max_seq_length") if file.is_file() else None
    except (OSError, ValueError, AttributeError) as exc:
        raise BortError(f"cannot read '{file}' ({type(exc).__name__}: {str(exc)[:100]}); repair it, or remove it") from None
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None
