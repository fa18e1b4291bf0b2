"""Read a corpus (file, folder, Hub dataset or the built-in default), tokenise and pack it.

The packed corpus is a tensor of fixed-length blocks ``[CLS] tokens… [SEP]`` with no padding,
split into a training part and a held-out part (every ``k``-th block, so both come from the
same distribution).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import PreTrainedTokenizerBase

from bort.errors import BortError
from bort.options import opt

BUILTIN = "builtin"
_TEXT_SUFFIXES = {"", ".txt", ".tokens", ".text", ".md", ".rst", ".raw"}

# The corpus options of every stage that reads one, documented once.
CORPUS = opt("text file, folder of text files, Hub dataset name[:config], or 'builtin' (the Python reference manual's topics, no download)")
SEQ_LEN = opt("tokens per packed sequence")


@dataclass
class PackedCorpus:
    """Token blocks of one length, split into training and held-out parts."""

    train: torch.Tensor  # [N, L] int64
    heldout: torch.Tensor  # [M, L] int64
    source: str
    documents: int

    @property
    def seq_len(self) -> int:
        return int(self.train.shape[1])

    @property
    def tokens(self) -> int:
        return int(self.train.numel() + self.heldout.numel())


def read_texts(spec: str | Path) -> list[tuple[str, str]]:
    """``(name, text)`` documents from a text file, a folder of text files, ``builtin`` or a Hub dataset."""
    spec = str(spec)
    if spec == BUILTIN:
        return _builtin_texts()
    path = Path(spec).expanduser()
    if path.is_file():
        return [(str(path), _read_utf8(path))]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in _TEXT_SUFFIXES and not p.name.startswith("."))
        if not files:
            raise BortError(f"corpus folder '{path}' holds no text files (.txt, .tokens, .md, …): add some, or pass a text file")
        return [(str(p), _read_utf8(p)) for p in files]
    if spec.startswith((".", "/", "~")) or "\\" in spec or spec.endswith((".txt", ".tokens")):
        raise BortError(f"corpus '{spec}' does not exist: pass a text file, a folder of text files, a Hub dataset name, or 'builtin'")
    return _hub_texts(spec)


def _read_utf8(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BortError(
            f"corpus file '{path}' is not UTF-8 text (bad byte at offset {exc.start}); convert it, e.g. `iconv -f latin1 -t utf-8`"
        ) from None


def _builtin_texts() -> list[tuple[str, str]]:
    # The Python reference manual's topic pages ship with every CPython (pydoc_data): about
    # 465 kB of real English prose, so the default job runs on a fresh machine with no download.
    from pydoc_data.topics import topics

    return [(f"pydoc:{name}", topics[name]) for name in sorted(topics)]


def _hub_texts(spec: str) -> list[tuple[str, str]]:
    """A Hub dataset ``name[:config]``; its ``train`` split's ``text`` column, one document per row."""
    try:
        import datasets
    except ImportError:
        raise BortError(f"corpus '{spec}' is not a local path; to read it as a Hugging Face dataset run `pip install datasets`") from None
    name, _, config = spec.partition(":")
    try:
        ds = datasets.load_dataset(name, config or None, split="train")
    except Exception as exc:
        raise BortError(f"could not load the Hub dataset '{spec}' ({str(exc).splitlines()[0][:140]}); connect to the network or pass a local text file") from None
    column = "text" if "text" in ds.column_names else ds.column_names[0]
    return [(f"{spec}#{i}", str(t)) for i, t in enumerate(ds[column])]


def tokenize_documents(texts: list[tuple[str, str]], tokenizer: PreTrainedTokenizerBase) -> list[list[int]]:
    """Token ids per document, without special tokens; empty documents are dropped.

    Documents are tokenised line by line (lines are the natural unit of every source here), which
    keeps the fast tokenizer's batches short and avoids its max-length warnings.
    """
    docs = []
    for _, text in texts:
        lines = [line for line in text.splitlines() if line.strip()]
        if not lines:
            continue
        ids = [tok for enc in tokenizer(lines, add_special_tokens=False)["input_ids"] for tok in enc]
        if ids:
            docs.append(ids)
    return docs


def pack(docs: list[list[int]], tokenizer: PreTrainedTokenizerBase, seq_len: int, heldout_every: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Concatenate documents (separated by SEP) into ``[CLS] … [SEP]`` blocks of ``seq_len``."""
    body = seq_len - 2
    stream: list[int] = []
    for doc in docs:
        stream.extend(doc)
        stream.append(tokenizer.sep_token_id)
    n_blocks = len(stream) // body
    if n_blocks < 2:
        raise BortError(
            f"corpus too small: {len(stream)} tokens make {n_blocks} block(s) of {seq_len}; give at least {2 * body} tokens of text, or lower --seq-len"
        )
    blocks = torch.tensor(stream[: n_blocks * body], dtype=torch.long).view(n_blocks, body)
    cls = torch.full((n_blocks, 1), tokenizer.cls_token_id, dtype=torch.long)
    sep = torch.full((n_blocks, 1), tokenizer.sep_token_id, dtype=torch.long)
    blocks = torch.cat([cls, blocks, sep], dim=1)
    held = torch.zeros(n_blocks, dtype=torch.bool)
    held[heldout_every - 1 :: heldout_every] = True
    if not held.any():
        held[-1] = True
    return blocks[~held], blocks[held]


def load_corpus(spec: str | Path, tokenizer: PreTrainedTokenizerBase, *, seq_len: int = 128, heldout_every: int = 20) -> PackedCorpus:
    """Read, tokenise and pack a corpus; every ``heldout_every``-th block is held out."""
    if seq_len < 8 or seq_len > getattr(tokenizer, "model_max_length", 10**9):
        raise BortError(f"--seq-len {seq_len} is out of range: use 8 to {tokenizer.model_max_length}")
    texts = read_texts(spec)
    docs = tokenize_documents(texts, tokenizer)
    if not docs:
        raise BortError(f"corpus '{spec}' is empty: it holds no text; pass a file or folder with English text")
    train, heldout = pack(docs, tokenizer, seq_len, heldout_every)
    return PackedCorpus(train=train, heldout=heldout, source=str(spec), documents=len(docs))
