"""A corpus as sentences, one per row: the inputs of representation distillation for embedding models.

Sentence embeddings are used on sentences (STS-B pairs average about a dozen words), while a packed
corpus only shows 128-token blocks that start and end anywhere in the text. Here each line of the
corpus (hard-wrapped prose re-joined) is split at sentence ends, every sentence is tokenised on its own (``[CLS] … [SEP]``, at most
``max_len`` tokens), every ``heldout_every``-th sentence is held out, and training batches are
padded to their longest row. Measured in BENCHMARKS §7 (sentences against cut blocks).

With ``pairs`` (issue 38), each row is a sentence pair ``[CLS] a [SEP] b [SEP]`` (with the tokenizer's token types, where
it has them): b is the sentence after a in its document, or (half the time, seeded) a sentence drawn from anywhere else
in the corpus, so that the representation terms also cover the second segment that pair tasks read.

The batch stream is a pure function of its seed and position, so a resumed run sees the same
batches: epoch e is a permutation drawn from a generator seeded with (seed, e).
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase

from bort.data.batching import epoch_batches
from bort.data.corpus import read_texts
from bort.data.tokens import tokenize
from bort.errors import BortError

# A sentence ends at . ! or ? (after an optional closing quote or bracket), before a space and a capital, digit or opening quote.
_SENTENCE_END = re.compile(r"(?:(?<=[.!?])|(?<=[.!?][\"')\]]))\s+(?=[\"'(\[]?[A-Z0-9])")
# A piece ending in one of these (or in an initial, "J.") goes on into the next: "Mr. Smith" is not two sentences.
_ABBREVIATIONS = {"mr.", "mrs.", "ms.", "dr.", "prof.", "st.", "jr.", "sr.", "vs.", "no.", "e.g.", "i.e.", "cf.", "gen.", "gov.", "sen.", "rev."}
_INITIAL = re.compile(r"^[A-Z]\.$")
_WORD = re.compile(r"\w+")
_ENDS_SENTENCE = re.compile(r"[.!?][\"')\]]?$")
MIN_WORDS = 3  # shorter pieces are headings, list markers and page furniture, not sentences
WRAP_WIDTH = 50  # a line at least this long that stops mid-sentence was wrapped: the next line of its indentation goes on with it


def logical_lines(text: str) -> list[str]:
    """The lines of ``text`` with hard-wrapped prose re-joined.

    Manuals, speeches and docstrings wrap paragraphs at about 70 characters (the built-in corpus does), so a line
    may end mid-sentence. A line of at least ``WRAP_WIDTH`` characters that does not end a sentence is joined with
    the next non-empty line of the same indentation; short lines (titles, list items, chat) and one-line
    paragraphs (WikiText) stay as they are.
    """
    out: list[str] = []
    previous, indent = "", None  # the last physical line and its indentation (None after a blank line)
    for raw in text.splitlines():
        line = raw.strip()
        level = len(raw) - len(raw.lstrip())
        if out and line and indent == level and len(previous) >= WRAP_WIDTH and not _ENDS_SENTENCE.search(previous):
            out[-1] += " " + line
        else:
            out.append(line)
        previous, indent = line, level if line else None
    return [line for line in out if line]


def split_sentences(text: str, min_words: int = MIN_WORDS) -> list[str]:
    """The sentences of ``text``: each logical line (:func:`logical_lines`) split at sentence ends (not after titles and
    initials); pieces of fewer than ``min_words`` words (runs of letters and digits) dropped."""
    out = []
    for line in logical_lines(text):
        pieces: list[str] = []
        for piece in _SENTENCE_END.split(line):
            last = pieces[-1].rsplit(None, 1)[-1] if pieces else ""
            if last.lower() in _ABBREVIATIONS or _INITIAL.match(last):
                pieces[-1] += " " + piece
            else:
                pieces.append(piece)
        out += [p.strip() for p in pieces if len(_WORD.findall(p)) >= min_words]
    return out


# A row: a sentence's token ids, or for sentence pairs with token types (ids, types).
Row = list[int] | tuple[list[int], list[int]]


def _ids(row: Row) -> list[int]:
    return row[0] if isinstance(row, tuple) else row


@dataclass
class SentenceCorpus:
    """Tokenised sentences (``[CLS] … [SEP]`` each) or sentence pairs, split into training and held-out parts."""

    train: list[Row]
    heldout: list[Row]
    source: str
    documents: int

    @property
    def tokens(self) -> int:
        return sum(len(_ids(r)) for r in (*self.train, *self.heldout))


def sentence_pairs(documents: list[list[str]], seed: int) -> list[tuple[str, str]]:
    """``(a, b)`` for each sentence a that has a next one in its document: b is that next sentence, or with probability
    1/2 a sentence drawn from the whole corpus other than a and its next (BERT's next-sentence pairs)."""
    rng, flat = random.Random(seed), [s for d in documents for s in d]
    out, at = [], 0
    for doc in documents:
        for i in range(len(doc) - 1):
            b = doc[i + 1]
            if rng.random() < 0.5 and len(flat) > 2:
                k = rng.randrange(len(flat) - 2)
                b = flat[k + 2 * (k >= at + i)]  # any sentence but a (at + i) and its next (at + i + 1)
            out.append((doc[i], b))
        at += len(doc)
    return out


def load_sentences(spec: str, tokenizer: PreTrainedTokenizerBase, *, max_len: int = 128, heldout_every: int = 20, pairs: bool = False,
                   seed: int = 0) -> SentenceCorpus:
    """Read a corpus (as :func:`bort.data.corpus.read_texts` does), split it into sentences and tokenise each one, or with
    ``pairs`` each of :func:`sentence_pairs` (seeded by ``seed``)."""
    texts = read_texts(spec)
    documents = [split_sentences(text) for _, text in texts]
    units = sentence_pairs(documents, seed) if pairs else [s for d in documents for s in d]
    if len(units) < 2 * heldout_every:
        raise BortError(f"corpus '{spec}' holds {len(units)} {'sentence pairs' if pairs else 'sentences'} of {MIN_WORDS} or more words; "
                        f"--inputs {'pairs' if pairs else 'sentences'} needs at least {2 * heldout_every}: give more text, or use --inputs blocks")
    rows: list[Row] = []
    for start in range(0, len(units), 4096):  # chunks keep the fast tokenizer's batches small
        chunk = units[start : start + 4096]
        enc = tokenize(tokenizer, [a for a, _ in chunk], [b for _, b in chunk], max_len=max_len) if pairs else tokenize(tokenizer, chunk, max_len=max_len)
        types = enc.get("token_type_ids") if pairs else None  # MPNet's and RoBERTa's tokenizers give none
        rows += list(zip(enc["input_ids"], types)) if types else enc["input_ids"]
    held = set(range(heldout_every - 1, len(rows), heldout_every))
    return SentenceCorpus(train=[r for i, r in enumerate(rows) if i not in held], heldout=[r for i, r in enumerate(rows) if i in held],
                          source=str(spec), documents=len(texts))


def pad_rows(rows: list[Row], pad_id: int) -> tuple[torch.Tensor, ...]:
    """Rows → ``(ids, attention mask)``, padded on the right to the longest row; rows with token types also give
    ``token_type_ids`` (0 on padding)."""
    width = max(len(_ids(r)) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    types = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        n = len(_ids(row))
        ids[i, :n] = torch.tensor(_ids(row), dtype=torch.long)
        mask[i, :n] = 1
        if isinstance(row, tuple):
            types[i, :n] = torch.tensor(row[1], dtype=torch.long)
    return (ids, mask, types) if isinstance(rows[0], tuple) else (ids, mask)


class SentenceStream:
    """Endless shuffled batches of ``batch_size`` sentences; batch k is a pure function of (seed, k). ``group_by_length``:
    of sentences of similar lengths (:func:`~bort.data.batching.epoch_batches`)."""

    def __init__(self, rows: list[Row], batch_size: int, seed: int, pad_id: int, *, group_by_length: bool = False) -> None:
        if len(rows) < batch_size:
            raise BortError(f"the corpus has {len(rows)} training sentences, fewer than a batch of {batch_size}: lower --batch-size or give more text")
        self.rows, self.batch_size, self.seed, self.pad_id = rows, batch_size, seed, pad_id
        self.per_epoch = len(rows) // batch_size
        self._lengths = [len(_ids(r)) for r in rows] if group_by_length else None
        self._epoch, self._batches = -1, []

    def indices(self, k: int) -> torch.Tensor:
        """The rows of batch ``k``: batch k mod E of epoch ⌊k / E⌋, its E full batches (a smaller one left out)."""
        epoch, slot = divmod(k, self.per_epoch)
        if epoch != self._epoch:
            self._epoch = epoch
            drawn = epoch_batches(len(self.rows), self.batch_size, torch.Generator().manual_seed(self.seed * 100_003 + epoch), self._lengths)
            self._batches = [b for b in drawn if len(b) == self.batch_size]
        return torch.tensor(self._batches[slot])

    def tokens(self, batches: int) -> int:
        """The real (unpadded) tokens of the first ``batches`` batches."""
        return sum(len(_ids(self.rows[i])) for k in range(batches) for i in self.indices(k).tolist())

    def batches(self, start: int = 0) -> Iterator[tuple[torch.Tensor, ...]]:
        """``(ids, attention mask[, token types])`` of batch ``start``, ``start`` + 1, …"""
        k = start
        while True:
            yield pad_rows([self.rows[i] for i in self.indices(k).tolist()], self.pad_id)
            k += 1


def heldout_batches(rows: list[Row], pad_id: int, *, batch_size: int, max_sequences: int) -> list[tuple[torch.Tensor, ...]]:
    """The fixed held-out batches: the first ``max_sequences`` held-out sentences, in order."""
    rows = rows[:max_sequences]
    return [pad_rows(rows[i : i + batch_size], pad_id) for i in range(0, len(rows), batch_size)]
