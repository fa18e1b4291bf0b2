"""A corpus as sentences (`--inputs sentences`) or sentence pairs (`--inputs pairs`): splitting, held-out rows, the seeded
batch stream, and pretraining on them."""

from __future__ import annotations

import itertools
import json

import pytest
import torch

from bort.cli import main
from bort.data.sentences import SentenceStream, heldout_batches, load_sentences, logical_lines, pad_rows, sentence_pairs, split_sentences
from bort.errors import BortError


def test_sentences_are_split_at_sentence_ends_and_short_pieces_dropped():
    text = ('The cat sat on the mat. Then it slept! Did it dream? "Perhaps it did." (It woke at 3.) A 2nd line of it.\n'
            "\n= Heading =\nMr. Smith met Dr. Jones at 10.30 a.m. today.\n  ok ok  \n")
    got = split_sentences(text)
    assert got[:6] == ["The cat sat on the mat.", "Then it slept!", "Did it dream?", '"Perhaps it did."', "(It woke at 3.)", "A 2nd line of it."]
    assert "= Heading =" not in got and "ok ok" not in got  # fewer than 3 words: not a sentence
    assert got[6:] == ["Mr. Smith met Dr. Jones at 10.30 a.m. today."]  # titles do not end sentences
    assert split_sentences("J. R. R. Tolkien wrote it. He was a professor.") == ["J. R. R. Tolkien wrote it.", "He was a professor."]
    assert split_sentences("one two three", min_words=4) == []


def test_hard_wrapped_paragraphs_are_rejoined_before_splitting():
    """Manuals and speeches wrap at ~70 characters: a long line that stops mid-sentence goes on in the next line of its
    indentation; short lines, code (other indentation) and blank-line breaks stay apart."""
    text = ("  If the primary is a mutable sequence object (such as a list), the\n"
            "  subscript must yield an integer.  If it is negative, the sequence's\n"
            "  length is added to it.\n"
            "\n"
            "     x = items[index] if index else None  # a code line\n"
            "  add icons to the context menu\n"
            "  keyboard shortcut is broken\n")
    assert logical_lines(text) == [
        "If the primary is a mutable sequence object (such as a list), the subscript must yield an integer.  If it is negative, "
        "the sequence's length is added to it.", "x = items[index] if index else None  # a code line", "add icons to the context menu",
        "keyboard shortcut is broken"]
    assert split_sentences(text)[:2] == ["If the primary is a mutable sequence object (such as a list), the subscript must yield an integer.",
                                         "If it is negative, the sequence's length is added to it."]
    one_per_line = "A first paragraph that is long enough to look wrapped, ending here.\nA second one, on its own line, also long enough."
    assert logical_lines(one_per_line) == one_per_line.splitlines()  # a line that ends a sentence is not joined


def test_every_twentieth_sentence_is_held_out_and_each_row_is_a_whole_sentence(bert_tokenizer, tmp_path):
    lines = [f"Sentence number {i} is here." for i in range(100)]
    path = tmp_path / "c.txt"
    path.write_text(" ".join(lines[:50]) + "\n" + " ".join(lines[50:]) + "\n", encoding="utf-8")
    corpus = load_sentences(str(path), bert_tokenizer, max_len=64)
    assert len(corpus.train) == 95 and len(corpus.heldout) == 5 and corpus.documents == 1
    expected = bert_tokenizer(lines[19], truncation=True, max_length=64)["input_ids"]
    assert corpus.heldout[0] == expected and corpus.train[0] == bert_tokenizer(lines[0])["input_ids"]
    assert all(r[0] == bert_tokenizer.cls_token_id and r[-1] == bert_tokenizer.sep_token_id for r in corpus.train)
    assert corpus.tokens == sum(map(len, corpus.train + corpus.heldout))
    short = load_sentences(str(path), bert_tokenizer, max_len=4)
    assert max(map(len, short.train)) == 4 and short.train[0][-1] == bert_tokenizer.sep_token_id
    with pytest.raises(BortError, match="holds 2 sentences"):
        (tmp_path / "small.txt").write_text("Only two sentences here. And a second one.", encoding="utf-8")
        load_sentences(str(tmp_path / "small.txt"), bert_tokenizer)


def test_padding_and_held_out_batches():
    ids, mask = pad_rows([[1, 5, 2], [1, 2]], pad_id=0)
    assert ids.tolist() == [[1, 5, 2], [1, 2, 0]] and mask.tolist() == [[1, 1, 1], [1, 1, 0]]
    batches = heldout_batches([[1, 2]] * 10, 0, batch_size=4, max_sequences=9)
    assert [len(b[0]) for b in batches] == [4, 4, 1]


def test_the_stream_is_a_pure_function_of_seed_and_position():
    rows = [[1] + [7] * n + [2] for n in range(1, 24)]  # 23 rows of different lengths: 5 batches of 4 per epoch
    stream = SentenceStream(rows, 4, seed=3, pad_id=0)
    first = list(itertools.islice(stream.batches(), 12))
    resumed = list(itertools.islice(SentenceStream(rows, 4, seed=3, pad_id=0).batches(start=7), 5))
    for (a, m), (b, n) in zip(first[7:], resumed):
        assert torch.equal(a, b) and torch.equal(m, n)
    epoch = torch.cat([stream.indices(k) for k in range(5)])
    assert len(set(epoch.tolist())) == 20  # an epoch draws each row at most once
    assert not torch.equal(stream.indices(0), stream.indices(5))  # the next epoch is another permutation
    assert stream.tokens(12) == sum(int(m.sum()) for _, m in first)
    assert not torch.equal(SentenceStream(rows, 4, seed=4, pad_id=0).indices(0), stream.indices(0))
    with pytest.raises(BortError, match="fewer than a batch"):
        SentenceStream(rows[:3], 4, seed=0, pad_id=0)


@pytest.mark.parametrize("flags, needle", [
    (["--inputs", "sentences"], "serves the representation terms alone"),  # the default logit terms
    (["--alpha-mlm", "0", "--alpha-kd", "0", "--alpha-hidden", "1", "--inputs", "sentences", "--min-view-len", "8"], "use it with --inputs blocks"),
    (["--inputs", "paragraphs"], "invalid choice"),
])
def test_bad_sentence_settings_are_refused(tmp_path, capsys, bert_teacher, corpus_file, flags, needle):
    argv = ["pretrain", "--teacher", str(bert_teacher), "--corpus", str(corpus_file), "--arch", "1,2,32,64", "--seq-len", "32",
            "--steps", "1", "--out", str(tmp_path / "o"), "--no-progress", *flags]
    if needle == "invalid choice":
        with pytest.raises(SystemExit):
            main(argv)
    else:
        assert main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err and not (tmp_path / "o").exists()


def test_compress_refuses_cut_views_of_sentences_in_one_line(tmp_path, capsys):
    """compress pretrains on sentences by default; cut views need its packed blocks, and the line names compress's flag."""
    assert main(["compress", "--pretrain-min-view-len", "8", "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "--pretrain-inputs blocks" in err and err.count("\n") == 1 and "Traceback" not in err and not (tmp_path / "run").exists()


# ------------------------------------------------------------------ sentence pairs (`--inputs pairs`, issue 38)


def test_sentence_pairs_take_the_next_sentence_or_one_from_elsewhere():
    documents = [[f"d{d} s{i}" for i in range(n)] for d, n in enumerate((30, 1, 45, 25))]
    flat = [s for doc in documents for s in doc]
    pairs = sentence_pairs(documents, seed=0)
    assert [a for a, _ in pairs] == [s for doc in documents for s in doc[:-1]]  # each sentence with a next one, in order
    after = {a: doc[i + 1] for doc in documents for i, a in enumerate(doc[:-1])}
    following = [b == after[a] for a, b in pairs]
    assert 0.35 < sum(following) / len(pairs) < 0.65  # about half the pairs are adjacent
    assert all(b in flat and b != a for (a, b), f in zip(pairs, following) if not f)
    assert sentence_pairs(documents, seed=0) == pairs != sentence_pairs(documents, seed=1)


def test_pair_rows_carry_the_tokenizers_token_types_through_padding(bert_tokenizer, tmp_path):
    path = tmp_path / "c.txt"
    path.write_text(" ".join(f"Sentence number {i} is here." for i in range(100)) + "\n", encoding="utf-8")
    corpus = load_sentences(str(path), bert_tokenizer, max_len=64, pairs=True, seed=0)
    assert len(corpus.train) + len(corpus.heldout) == 99 and len(corpus.heldout) == 4
    ids, types = corpus.train[0]
    expected = bert_tokenizer("Sentence number 0 is here.", sentence_pairs([[f"Sentence number {i} is here." for i in range(100)]], 0)[0][1])
    assert ids == expected["input_ids"] and types == expected["token_type_ids"] and 0 in types and 1 in types
    assert corpus.tokens == sum(len(r[0]) for r in corpus.train + corpus.heldout)
    batch_ids, mask, batch_types = pad_rows([([1, 5, 2, 6, 2], [0, 0, 0, 1, 1]), ([1, 2, 3, 2], [0, 0, 1, 1])], pad_id=0)
    assert batch_types.tolist() == [[0, 0, 0, 1, 1], [0, 0, 1, 1, 0]] and mask.tolist()[1] == [1, 1, 1, 1, 0] and batch_ids[1, 4] == 0
    assert SentenceStream(corpus.train, 4, seed=0, pad_id=0).tokens(2) == sum(int(b[1].sum()) for b in itertools.islice(
        SentenceStream(corpus.train, 4, seed=0, pad_id=0).batches(), 2))


def test_pretraining_on_sentence_pairs(tmp_path, bert_teacher, corpus_file):
    out = tmp_path / "pairs"
    assert main(["pretrain", "--teacher", str(bert_teacher), "--corpus", str(corpus_file), "--arch", "1,2,32,64", "--seq-len", "32",
                 "--steps", "2", "--batch-size", "4", "--eval-sequences", "8", "--inputs", "pairs", "--alpha-mlm", "0", "--alpha-kd", "0",
                 "--alpha-hidden", "1", "--alpha-attn", "1", "--out", str(out), "--no-progress", "--device", "cpu", "--bf16", "off"]) == 0
    report = json.loads((out / "pretrain.json").read_text())
    assert report["inputs"] == "pairs" and report["steps"] == 2 and report["heldout"]["hidden_mse"] > 0 and report["heldout"]["attn_kl"] > 0
