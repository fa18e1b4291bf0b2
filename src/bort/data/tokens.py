"""Texts and pairs tokenised to a model's length without tokenising what truncation would drop.

A fast tokenizer works on the whole text before it truncates: it holds some 170 bytes per character (a 20 MB line took
3.4 GB to keep its first 64 tokens), and its longest-first truncation of a pair takes time that grows with the product
of the sides' lengths (two sides of 40,000 characters took 10 s at 64 tokens; 600 tokens each, 3 s at 8). Every
tokenisation of a task's, a corpus's or a user's texts goes through :func:`tokenize`, which cuts each text to a prefix
that still gives the same tokens first.
"""

from __future__ import annotations

from collections.abc import Sequence


def _n(tokenizer, text: str) -> int:
    """The tokens of ``text``, special ones left out."""
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def _cut(text: str, limit: int, start: int = 0) -> int:
    """The last place after ``start`` and at or before ``limit`` that starts a run of spaces after a word (0: none), where
    pre-tokenizers split."""
    return next((i for i in range(min(limit, len(text) - 1), start, -1) if text[i].isspace() and not text[i - 1].isspace()), 0)


def clip(tokenizer, text: str, tokens: int) -> str:
    """``text``, or a prefix of it that ends a word and holds more than ``tokens`` tokens, so that truncation to ``tokens``
    keeps the same ones.

    The prefix ends just before a space, where the pre-tokenizers (WordPiece's, byte-level BPE's, SentencePiece's
    Metaspace) split, so its tokens are the text's first ones. A text without such a place (no spaces) is tokenized whole.
    """
    limit = 64 * tokens
    while len(text) > limit:
        cut = _cut(text, limit)
        if cut and _n(tokenizer, text[:cut]) > tokens:
            return text[:cut]
        limit *= 4
    return text


def _count(tokenizer, text: str, piece: int = 1 << 16) -> int:
    """The tokens of ``text`` (no special ones), counted a piece at a time, each cut where :func:`clip` cuts (the counts add up)."""
    n, start = 0, 0
    while start < len(text):
        end = len(text) if len(text) - start <= piece else _cut(text, start + piece, start) or len(text)
        n += _n(tokenizer, text[start:end])
        start = end
    return n


FILLERS = (".", ",", "a", "the", "-")


def _pad(tokenizer, text: str, n: int) -> str | None:
    """``text`` with ``n`` more tokens at its end: a word the tokenizer reads as one token, ``n`` times (a clipped side holds
    more than ``max_len`` tokens, so truncation drops them); without such a word, None (the caller keeps the whole)."""
    one = next((w for w in FILLERS if _n(tokenizer, f"{text[-1:]} {w}") == _n(tokenizer, text[-1:]) + 1), None)
    return None if one is None else text + f" {one}" * n


def _pair(tokenizer, a: str, b: str, max_len: int) -> tuple[str, str]:
    """A pair, clipped so that longest-first truncation gives what the whole pair gives.

    A clipped side holds more than ``max_len`` tokens, so the split of the positions depends only on which side is the
    longer: where clipping would change that, the longer side's clip is lengthened past the other's (its whole is longer
    still); sides of equal length get clips of equal length (:func:`_pad`).
    """
    ca, cb = clip(tokenizer, a, max_len), clip(tokenizer, b, max_len)
    if ca is a and cb is b:
        return a, b
    ka, kb = _n(tokenizer, ca), _n(tokenizer, cb)
    if (ca is a and kb > ka) or (cb is b and ka > kb):  # the clipped side is the longer, whole or not
        return ca, cb
    na = ka if ca is a else _count(tokenizer, a)
    nb = kb if cb is b else _count(tokenizer, b)
    if na == nb:  # the clips made as long as each other: the shorter one padded past the positions truncation keeps
        padded = _pad(tokenizer, ca, kb - ka) if ka < kb else _pad(tokenizer, cb, ka - kb)
        return (a, b) if padded is None else (padded, cb) if ka < kb else (ca, padded)
    if na > nb and ka <= kb:
        ca = clip(tokenizer, a, kb)
    elif nb > na and kb <= ka:
        cb = clip(tokenizer, b, ka)
    return ca, cb


def tokenize(tokenizer, first: Sequence[str], second: Sequence[str] | None = None, *, max_len: int, **kwargs):
    """``tokenizer(first, second, truncation=True, max_length=max_len, **kwargs)``, each text or pair clipped first
    (:func:`clip`, :func:`_pair`): the same encoding, at a cost bounded by ``max_len`` rather than by the texts' lengths."""
    if second is None:
        first = [clip(tokenizer, t, max_len) for t in first]
    else:
        pairs = [_pair(tokenizer, a, b, max_len) for a, b in zip(first, second)]
        first, second = [a for a, _ in pairs], [b for _, b in pairs]
    return tokenizer(first, second, truncation=True, max_length=max_len, **kwargs)
