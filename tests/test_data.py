"""Corpus reading and packing, and BERT-style dynamic masking (algorithms.md §4)."""

from __future__ import annotations

import itertools

import pytest
import torch

from bort.data.corpus import load_corpus, pack, read_texts, tokenize_documents
from bort.data.masking import fixed_masked_batches, mask_tokens, masked_batch_stream
from bort.errors import BortError


@pytest.fixture(scope="module")
def tok(bert_tokenizer):
    return bert_tokenizer


def random_blocks(tok, n: int, length: int, seed: int = 0) -> torch.Tensor:
    """``[CLS] random non-special tokens … [SEP]`` blocks, with a few padding tokens inside."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, len(tok), (n, length), generator=gen)  # ids 0-4 are the special tokens
    ids[:, 0], ids[:, -1] = tok.cls_token_id, tok.sep_token_id
    ids[:, length // 2] = tok.pad_token_id
    ids[::7, 3] = tok.mask_token_id  # a literal [MASK] in the text is special too
    return ids


def test_masking_statistics(tok):
    """15% of the non-special tokens are chosen; of those 80% [MASK], 10% random, 10% unchanged."""
    ids = random_blocks(tok, 512, 256)
    batch = mask_tokens(ids, tok, torch.Generator().manual_seed(0))
    special = torch.isin(ids, torch.tensor(tok.all_special_ids))
    chosen = batch.positions
    n = int((~special).sum())
    assert abs(int(chosen.sum()) / n - 0.15) < 0.005
    assert not (chosen & special).any()
    assert torch.equal(batch.input_ids[special], ids[special])  # special tokens are never touched
    assert torch.equal(batch.input_ids[~chosen], ids[~chosen])  # nor any token that is not chosen
    assert torch.equal(batch.targets, ids[chosen])  # the labels are the gold tokens
    picked_in, picked_gold = batch.input_ids[chosen], ids[chosen]
    k = len(picked_in)
    as_mask = float((picked_in == tok.mask_token_id).sum()) / k
    unchanged = float((picked_in == picked_gold).sum()) / k
    assert abs(as_mask - 0.8) < 0.01
    assert abs(unchanged - 0.1) < 0.01
    assert abs(1 - as_mask - unchanged - 0.1) < 0.01  # replaced by another token


def test_masking_is_a_function_of_the_seed(tok):
    ids = random_blocks(tok, 8, 64)
    a, b = (mask_tokens(ids, tok, torch.Generator().manual_seed(3)) for _ in range(2))
    c = mask_tokens(ids, tok, torch.Generator().manual_seed(4))
    assert torch.equal(a.input_ids, b.input_ids) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.labels, c.labels)


def test_at_least_one_position_is_masked(tok):
    ids = random_blocks(tok, 1, 12)
    batch = mask_tokens(ids, tok, torch.Generator().manual_seed(0), prob=0.0)
    assert int(batch.positions.sum()) == 1
    assert not torch.isin(batch.targets, torch.tensor(tok.all_special_ids)).any()


def unmask(batch) -> torch.Tensor:
    """The original token ids of a masked batch."""
    return torch.where(batch.positions, batch.labels, batch.input_ids)


@pytest.mark.parametrize("start", [1, 3, 5, 8])
def test_batch_stream_start_skips_batches(tok, start):
    """``start=k`` is the same stream with its first k batches dropped, across epoch boundaries."""
    blocks = random_blocks(tok, 10, 16)  # 2 batches of 4 per epoch (the last 2 blocks wait)
    full = list(itertools.islice(masked_batch_stream(blocks, tok, 4, seed=5), start + 4))
    resumed = list(itertools.islice(masked_batch_stream(blocks, tok, 4, seed=5, start=start), 4))
    for a, b in zip(full[start:], resumed, strict=True):
        assert torch.equal(a.input_ids, b.input_ids) and torch.equal(a.labels, b.labels)


def test_batch_stream_epochs_are_permutations(tok):
    blocks = random_blocks(tok, 12, 16)
    rows = {tuple(r.tolist()) for r in blocks}
    epoch = list(itertools.islice(masked_batch_stream(blocks, tok, 4, seed=1), 3))
    seen = [tuple(r.tolist()) for b in epoch for r in unmask(b)]
    assert len(seen) == 12 and set(seen) == rows  # every block once per epoch
    other = list(itertools.islice(masked_batch_stream(blocks, tok, 4, seed=2), 3))
    assert [tuple(r.tolist()) for b in other for r in unmask(b)] != seen  # another seed, another order


def test_fixed_masked_batches_repeat_exactly(tok):
    blocks = random_blocks(tok, 11, 16)
    a = fixed_masked_batches(blocks, tok, batch_size=4, max_sequences=10, seed=0)
    b = fixed_masked_batches(blocks, tok, batch_size=4, max_sequences=10, seed=0)
    assert [len(x.input_ids) for x in a] == [4, 4, 2]
    assert all(torch.equal(x.input_ids, y.input_ids) and torch.equal(x.labels, y.labels) for x, y in zip(a, b))
    assert torch.equal(torch.cat([unmask(x) for x in a]), blocks[:10])


def test_corpus_packing(corpus_file, tok):
    """``[N, L]`` blocks of [CLS] body [SEP]; every 20th block is held out; nothing else is lost."""
    L = 32
    corpus = load_corpus(corpus_file, tok, seq_len=L)
    assert corpus.train.ndim == 2 and corpus.train.shape[1] == L and corpus.heldout.shape[1] == L
    assert corpus.seq_len == L and corpus.documents == 1
    both = torch.cat([corpus.train, corpus.heldout])
    assert (both[:, 0] == tok.cls_token_id).all() and (both[:, -1] == tok.sep_token_id).all()
    # Reference: the token stream of the whole text, cut into bodies of L - 2 by hand.
    text = corpus_file.read_text(encoding="utf-8")
    stream = [t for line in text.splitlines() if line.strip() for t in tok(line, add_special_tokens=False)["input_ids"]] + [tok.sep_token_id]
    n = len(stream) // (L - 2)
    bodies = [stream[i * (L - 2) : (i + 1) * (L - 2)] for i in range(n)]
    held = [b for i, b in enumerate(bodies) if i % 20 == 19]
    kept = [b for i, b in enumerate(bodies) if i % 20 != 19]
    assert n >= 40 and len(corpus.heldout) == len(held) == n // 20
    assert corpus.heldout[:, 1:-1].tolist() == held
    assert corpus.train[:, 1:-1].tolist() == kept
    assert corpus.tokens == n * L


def test_pack_short_corpus_holds_out_last_block(tok):
    docs = [list(range(5, 40)), list(range(40, 60))]  # 35 + 1 + 20 + 1 = 57 tokens → 4 bodies of 14
    train, held = pack(docs, tok, 16, heldout_every=20)
    assert train.shape == (3, 16) and held.shape == (1, 16)
    assert train[0, 1:-1].tolist() == list(range(5, 19))
    assert train[2, 1:-1].tolist() == list(range(33, 40)) + [tok.sep_token_id] + list(range(40, 46))
    assert held[0, 1:-1].tolist() == list(range(46, 60))  # fewer than 20 blocks: the last is held out


def test_pack_too_small_corpus(tok):
    with pytest.raises(BortError, match="too small"):
        pack([[5, 6, 7]], tok, 16, heldout_every=20)


def test_read_texts_folder(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "b.txt").write_text("second file", encoding="utf-8")
    (tmp_path / "a.md").write_text("first file", encoding="utf-8")
    (tmp_path / "sub" / "c.tokens").write_text("third file é", encoding="utf-8")
    (tmp_path / ".hidden.txt").write_text("hidden", encoding="utf-8")
    (tmp_path / "weights.bin").write_bytes(b"\x00\xff")
    docs = read_texts(tmp_path)
    assert [(name.removeprefix(str(tmp_path) + "/"), text) for name, text in docs] == [
        ("a.md", "first file"), ("b.txt", "second file"), ("sub/c.tokens", "third file é"),
    ]


def test_read_texts_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(BortError, match="holds no text files"):
        read_texts(tmp_path / "empty")
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(BortError, match="not UTF-8"):
        read_texts(bad)
    with pytest.raises(BortError, match="does not exist"):
        read_texts(tmp_path / "missing.txt")


def test_tokenize_documents_drops_empty(tok):
    docs = tokenize_documents([("a", "hello world\n\nthe king"), ("b", "  \n\n"), ("c", "")], tok)
    assert len(docs) == 1
    assert docs[0] == tok("hello world", add_special_tokens=False)["input_ids"] + tok("the king", add_special_tokens=False)["input_ids"]
