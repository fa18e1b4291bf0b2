"""Training batches grouped by length (``--group-by-length``, Trainer's group_by_length): every input once an epoch, far less
padding than random batches, the same stream on resume, and random batches exactly as before without it."""

from __future__ import annotations

import itertools
import json
import random

import pytest
import torch
from glue_files import _cfg, write_rte
from safetensors.torch import load_file

from bort.data.batching import MEGABATCH
from bort.data.sentences import SentenceStream
from bort.errors import BortError
from bort.finetune.recipe import finetune
from bort.pretrain.recipe import PretrainConfig
from bort.tasks.features import Feature, task_batch_stream


def _features(n: int, seed: int = 0) -> list[Feature]:
    """``n`` single-text features of lengths 3 to 60, drawn."""
    rng = random.Random(seed)
    lengths = [rng.randint(3, 60) for _ in range(n)]
    return [Feature(tuple(range(1, k + 1)), (0,) * k, i % 2) for i, k in enumerate(lengths)]


def _padded(batches) -> int:
    return sum(b["input_ids"].numel() for b in batches)


def test_grouped_batches_visit_every_input_once_an_epoch_with_little_padding():
    feats = _features(1003)
    per_epoch = -(-1003 // 8)  # 126: the last group's shortest batch holds the 3 left over
    grouped = list(itertools.islice(task_batch_stream(feats, 8, 0, seed=1, group_by_length=True), per_epoch))
    plain = list(itertools.islice(task_batch_stream(feats, 8, 0, seed=1), per_epoch))
    for batches in (grouped, plain):
        assert sorted(i for b in batches for i in b["index"].tolist()) == list(range(1003))
    real = sum(len(f.input_ids) for f in feats)
    assert _padded(grouped) < 1.1 * real < 1.5 * real < _padded(plain)
    # groups of MEGABATCH batches (400 inputs) sorted, then sliced: each batch spans a narrow band of lengths
    lengths = [len(f.input_ids) for f in feats]
    spans = sorted((min(lengths[i] for i in b["index"].tolist()), max(lengths[i] for i in b["index"].tolist())) for b in grouped[:10])
    assert all(hi - lo <= 10 for lo, hi in spans)
    assert len({len(b["index"]) for b in grouped}) == 2 and sum(len(b["index"]) < 8 for b in grouped) == 1
    assert MEGABATCH == 50


def test_the_grouped_stream_is_seeded_and_resumes_where_it_stopped():
    feats = _features(300, seed=2)
    per_epoch = -(-300 // 8)
    full = list(itertools.islice(task_batch_stream(feats, 8, 0, seed=3, group_by_length=True), per_epoch + 5))
    again = list(itertools.islice(task_batch_stream(feats, 8, 0, seed=3, group_by_length=True), per_epoch + 5))
    resumed = list(itertools.islice(task_batch_stream(feats, 8, 0, seed=3, start=per_epoch - 3, group_by_length=True), 8))
    assert all(torch.equal(a["index"], b["index"]) for a, b in zip(full, again))
    assert all(torch.equal(a[k], b[k]) for a, b in zip(full[per_epoch - 3 :], resumed) for k in a)  # across the epoch's end
    other = next(task_batch_stream(feats, 8, 0, seed=4, group_by_length=True))
    assert not torch.equal(other["index"], full[0]["index"])
    # the batches' order is drawn too: the first batches of an epoch are not all of the first group's longest inputs
    first = [max(len(feats[i].input_ids) for i in b["index"].tolist()) for b in full[:per_epoch]]
    assert first != sorted(first, reverse=True)


def test_random_batches_are_the_permutations_slices_as_before():
    feats = _features(100, seed=5)
    stream = task_batch_stream(feats, 16, 0, seed=7)
    for epoch in range(2):  # epoch e: consecutive slices of the permutation drawn with seed + e
        order = torch.randperm(100, generator=torch.Generator().manual_seed(7 + epoch)).tolist()
        for b in range(0, 100, 16):
            assert next(stream)["index"].tolist() == order[b : b + 16]


def test_finetune_with_grouped_batches_learns_and_a_run_without_the_setting_resumes_as_random(tmp_path, bert_teacher):
    rte = write_rte(tmp_path / "RTE", n_train=200)
    grouped = finetune(_cfg(bert_teacher, "glue/rte", rte, tmp_path / "G", epochs=3, group_by_length=True))
    plain = finetune(_cfg(bert_teacher, "glue/rte", rte, tmp_path / "P", epochs=3))
    assert grouped.steps == plain.steps  # the same schedule, other batches: other weights
    a, b = (load_file(tmp_path / f / "model" / "model.safetensors") for f in ("G", "P"))
    assert a.keys() == b.keys() and not all(torch.equal(a[k], b[k]) for k in a)
    assert json.loads((tmp_path / "G" / "finetune_settings.json").read_text())["group_by_length"] is True
    # a run recorded before --group-by-length existed trained on random batches: it resumes as such, and not as grouped
    settings = json.loads((tmp_path / "P" / "finetune_settings.json").read_text())
    del settings["group_by_length"]
    (tmp_path / "P" / "finetune_settings.json").write_text(json.dumps(settings))
    assert finetune(_cfg(bert_teacher, "glue/rte", rte, tmp_path / "P", epochs=3)).dev == plain.dev
    with pytest.raises(BortError, match="group_by_length: False there, True now"):
        finetune(_cfg(bert_teacher, "glue/rte", rte, tmp_path / "P", epochs=3, group_by_length=True))


def test_pretrainings_sentence_stream_groups_by_length_in_full_batches():
    rng = random.Random(8)
    rows = [[1] + [7] * rng.randint(1, 60) + [2] for _ in range(803)]  # 803 sentences: 100 full batches of 8 an epoch, 3 left out
    grouped, plain = (SentenceStream(rows, 8, seed=2, pad_id=0, group_by_length=g) for g in (True, False))
    for stream in (grouped, plain):
        epoch = [stream.indices(k).tolist() for k in range(100)]
        assert all(len(b) == 8 for b in epoch) and len({i for b in epoch for i in b}) == 800
    padded = {name: sum(b[0].numel() for b in itertools.islice(s.batches(), 100)) for name, s in (("grouped", grouped), ("plain", plain))}
    assert padded["grouped"] < 1.1 * grouped.tokens(100) < 1.5 * plain.tokens(100) < padded["plain"]
    again = SentenceStream(rows, 8, seed=2, pad_id=0, group_by_length=True)  # a pure function of (seed, k): a resumed run's batches
    assert all(torch.equal(again.indices(k), grouped.indices(k)) for k in (150, 3, 99))
    for k in (0, 57, 130):  # ungrouped: batch k mod 100 of the permutation of epoch k // 100, as before
        perm = torch.randperm(803, generator=torch.Generator().manual_seed(2 * 100_003 + k // 100))
        assert torch.equal(plain.indices(k), perm[(k % 100) * 8 : (k % 100 + 1) * 8])


def test_pretraining_on_blocks_refuses_group_by_length(tmp_path):
    with pytest.raises(BortError, match="--inputs blocks are all --seq-len tokens"):
        PretrainConfig(out=tmp_path, arch=None, student="S", inputs="blocks", group_by_length=True)
