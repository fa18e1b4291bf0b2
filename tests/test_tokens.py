"""bort.data.tokens: a text or a pair is clipped before it is tokenised, and the encoding is what the whole gives
(longest-first truncation of a pair included), for the byte-level BPE, WordPiece and SentencePiece tokenizers alike."""

from __future__ import annotations

import pytest
from conftest import _bert_tokenizer, _roberta_tokenizer, _xlmr_tokenizer

from bort.data.tokens import _count, _n, clip, tokenize
from bort.tasks.features import encode
from bort.tasks.registry import Example, get_task

TOKENIZERS = {"wordpiece": _bert_tokenizer, "byte-level BPE": _roberta_tokenizer, "sentencepiece": _xlmr_tokenizer}


@pytest.fixture(scope="module", params=sorted(TOKENIZERS))
def tok(request):
    return TOKENIZERS[request.param]()


def test_counting_a_piece_at_a_time_adds_up_to_the_whole(tok):
    text = "Hello,  world!  The quick brown fox -- jumps   over the lazy dog's back.\n" * 40
    assert _count(tok, text, piece=50) == _n(tok, text) == _count(tok, text)


@pytest.mark.parametrize(("a", "b"), [
    ("wonderful " * 300, "a " * 700),
    ("wonderful " * 100, "a b " * 300),  # a short side kept whole, the other clipped
    ("a b " * 280, "b a " * 280),  # as long as each other
    ("the cat sat " * 100, "on the mat " * 200), ("the cat sat " * 100, "the cat sat " * 100)])
def test_a_clipped_pair_truncates_to_what_the_whole_pair_gives(tok, a, b):
    whole = tok([a], [b], truncation=True, max_length=16)["input_ids"]
    assert tokenize(tok, [a], [b], max_len=16)["input_ids"] == whole
    assert tokenize(tok, [b], [a], max_len=16)["input_ids"] == tok([b], [a], truncation=True, max_length=16)["input_ids"]


def _per_word(tok, word: str) -> int:
    """The tokens one more ``word`` adds to a run of it (byte-level BPE reads the first of a run apart)."""
    return _n(tok, f"{word} " * 3) - _n(tok, f"{word} " * 2)


def _words(tok) -> tuple[str, str]:
    """Two words of this tokenizer (its vocabulary is trained on whatever English is at hand): "a" (one token a word) and
    the word of the most tokens per character."""
    words = ("wonderful", "zebra", "quixotic", "internationalization")
    dense = max(words, key=lambda w: _per_word(tok, w) / (len(w) + 1))
    if _per_word(tok, dense) / (len(dense) + 1) < 1.2 * _per_word(tok, "a") / 2:
        pytest.skip("this tokenizer's vocabulary (trained on the little English at hand) reads every word a character at a time")
    return "a", dense


def _run(tok, word: str, tokens: int) -> str:
    """A run of ``word`` that holds ``tokens`` tokens or the fewest more (``word`` "a": exactly)."""
    n = 1
    while _n(tok, f"{word} " * n) < tokens:
        n += max(1, (tokens - _n(tok, f"{word} " * n)) // _per_word(tok, word))
    return f"{word} " * n


def test_a_pair_whose_clips_would_swap_which_side_is_longer(tok):
    """Clipped one by one at 1,024 characters, the side with more tokens (sparse words) would hold fewer than the other
    (dense words): clipped together, the pair truncates as the whole does."""
    sparse, dense = _words(tok)
    b = f"{dense} " * (1100 // (len(dense) + 1) + 1)
    a = _run(tok, sparse, max(_n(tok, b) + 10, 600))
    assert _n(tok, a) > _n(tok, b) and _n(tok, clip(tok, a, 16)) < _n(tok, clip(tok, b, 16))  # the case itself
    for x, y in ((a, b), (b, a)):
        assert tokenize(tok, [x], [y], max_len=16)["input_ids"] == tok([x], [y], truncation=True, max_length=16)["input_ids"]


def test_a_pair_of_equal_sides_with_unequal_clips_is_padded(tok):
    """Sides with as many tokens as each other, whose clips are not (one is padded past the positions truncation keeps)."""
    sparse, dense = _words(tok)
    b = f"{dense} " * (1100 // (len(dense) + 1) + 1)
    a = _run(tok, sparse, max(_n(tok, b), 600))
    b = _run(tok, dense, _n(tok, a)) if _n(tok, a) > _n(tok, b) else b
    assert _n(tok, a) == _n(tok, b) and _n(tok, clip(tok, a, 16)) != _n(tok, clip(tok, b, 16))
    for x, y in ((a, b), (b, a)):
        assert tokenize(tok, [x], [y], max_len=16)["input_ids"] == tok([x], [y], truncation=True, max_length=16)["input_ids"]


def test_a_huge_training_pair_is_encoded_from_its_first_tokens(tok):
    """A task's pair of 440 kB sides (whole: hours of truncation) encodes to max_len positions, each side's first tokens."""
    line = "the quick brown fox jumps over the lazy dog " * 10_000
    task = get_task("glue/mrpc")
    [feature] = encode(task, [Example(idx=0, texts=(line, line[4:]), label=task.labels[0])], tok, 64)
    [ids] = feature.rows
    assert len(ids) == 64
    first = tok(clip(tok, line, 64), add_special_tokens=False)["input_ids"]
    assert list(ids[1:21]) == first[:20]


def test_a_huge_pair_of_equal_sides_is_padded_not_tokenized_whole(tok):
    """Equal sides (a text paired with itself) are clipped to equal lengths: the same positions as a shorter equal pair."""
    line = "the quick brown fox jumps over the lazy dog " * 10_000
    got = tokenize(tok, [line], [line], max_len=32)["input_ids"]
    assert got == tok([line[:4_000]], [line[:4_000]], truncation=True, max_length=32)["input_ids"]
