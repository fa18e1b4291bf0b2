"""Agora (algorithms.md §6) on a tiny model: pruning, new points, the labeller, resume, and a whole run."""

from __future__ import annotations

import json
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from glue_files import _cfg, write_rte, write_stsb

import bort.agora.recipe as agora_mod
from bort.agora.recipe import AgoraConfig, AgoraResult, _labels, _new_points, _point, agora
from bort.agora.thetas import load_agora_space, prune
from bort.errors import BortError
from bort.finetune.augment import Augment
from bort.finetune.recipe import FinetuneResult, subset
from bort.finetune.selection import hold_out
from bort.finetune.transforms import make_transform
from bort.tasks import heads
from bort.tasks.registry import get_task, read_split
from bort.training.hparams import FIELDS, Theta, build_thetas, expand

THETAS = (Theta(lr=1e-3, weight_decay=0.01, warmup=0.1, batch_size=16, seed=0),
          Theta(lr=1e-3, weight_decay=0.01, warmup=0.1, batch_size=16, seed=1))


@pytest.fixture(scope="module")
def rte(tmp_path_factory) -> Path:
    return write_rte(tmp_path_factory.mktemp("RTE"), n_train=96, n_dev=40)


def _agora(model: Path, data: Path, out: Path, **kw) -> AgoraConfig:
    base = _cfg(model, "glue/rte", data, out, epochs=3, augment=Augment(transform="swap"))
    return AgoraConfig(**{"base": base, "thetas": THETAS, "variants": 2, **kw})


@pytest.fixture(scope="module")
def run(tmp_path_factory, bert_teacher, rte) -> tuple[Path, AgoraResult]:
    out = tmp_path_factory.mktemp("agora") / "F"
    return out, agora(_agora(bert_teacher, rte, out))


# ------------------------------------------------------------------ Θ


def test_pruning_halves_theta_every_round():
    thetas = build_thetas(expand({"lr": [1e-4, 5e-5], "weight_decay": [0.0, 0.1], "warmup": [0.1], "batch_size": [8, 16], "seed": [0]}),
                          required=FIELDS)
    sizes = [len(thetas)]
    while thetas:
        scores = {t.slug: t.lr * 1e4 + t.batch_size + t.weight_decay for t in thetas}  # a strict order
        kept = prune(thetas, scores)
        assert all(scores[k.slug] >= max(scores[t.slug] for t in thetas if t not in kept) for k in kept)  # the better half
        thetas = kept
        sizes.append(len(thetas))
    assert sizes == [8, 4, 2, 1, 0]
    assert prune(THETAS, {t.slug: 0.5 for t in THETAS}) == [THETAS[0]]  # ties keep Θ's order


def test_space_presets_and_files(tmp_path):
    assert len(load_agora_space(None)) == 4 and len(load_agora_space("bort-paper")) == 3 * 4 * 4 * 2 * 5
    path = tmp_path / "space.yaml"
    path.write_text("lr: [1e-4, 2e-5]\nweight_decay: 0.0\nwarmup: [0.1]\nbatch_size: [8]\nseed: [0, 1, 2]\n")
    space = load_agora_space(str(path))
    assert len(space) == 6 and space[0] == Theta(lr=1e-4, weight_decay=0.0, warmup=0.1, batch_size=8, seed=0)
    path.write_text("lr: [1e-4]\n")
    with pytest.raises(BortError, match="missing"):
        load_agora_space(str(path))
    with pytest.raises(BortError, match="does not exist"):
        load_agora_space(str(tmp_path / "nope.yaml"))


# ------------------------------------------------------------------ transformations


@pytest.mark.parametrize("name", ["dropout", "swap"])
def test_word_transforms_change_the_input_and_follow_the_seed(name):
    f = make_transform(name)
    inputs = [("a b c d e f", "g h i"), ("one two three", "four five")]
    out = f(inputs, seed=1)
    assert out == f(inputs, seed=1) and len(out) == 2
    assert all(new != old for new, old in zip(out, inputs))
    assert all(sorted(n.split()) == sorted(o.split()) for new, old in zip(out, inputs) for n, o in zip(new, old)) or name == "dropout"
    # The seed decides the change: seeds 0 and 2 give other outputs than seed 1 (a transform ignoring its seed gives one output).
    assert f(inputs, seed=0) != out and f(inputs, seed=2) != out
    assert len({tuple(f(inputs, seed=s)) for s in range(8)}) > 2


def test_pair_mix_replaces_one_side_with_another_inputs_and_halves_single_texts():
    f = make_transform("pair-mix")
    pairs = [(f"a{i}", f"b{i}") for i in range(6)]
    out = f(pairs, seed=3)
    assert out == f(pairs, seed=3) != f(pairs, seed=4) and len(out) == 6
    for (a, b), new in zip(pairs, out):
        kept, replaced = (0, 1) if new[0] == a else (1, 0)
        assert new[kept] == (a, b)[kept] and new[replaced] != (a, b)[replaced]  # exactly one side is another input's
        assert new[replaced] in {p[replaced] for p in pairs}
    assert {new[0] == a for (a, _), new in zip(pairs, out)} == {True, False}  # each side gets replaced somewhere
    singles = f([("one two three four",), ("five six seven eight",)], seed=0)
    assert singles == [("one two seven eight",), ("five six three four",)]
    assert f([("alone", "here")], seed=0) == [("alone", "here")]


def test_segment_swap_reverses_pairs_half_the_time_and_drops_words():
    f = make_transform("segment-swap")
    pairs = [(f"a{i} x{i} y{i} z{i}", f"b{i} u{i} v{i} w{i}") for i in range(40)]
    out = f(pairs, seed=5)
    assert out == f(pairs, seed=5) != f(pairs, seed=6) and len(out) == 40
    swapped = [new[0].split()[0].startswith("b") or set(new[0].split()) <= set(b.split()) for (a, b), new in zip(pairs, out)]
    assert 10 <= sum(swapped) <= 30  # about half
    for (a, b), new, s in zip(pairs, out, swapped):
        first, second = (b, a) if s else (a, b)
        assert set(new[0].split()) < set(first.split()) and set(new[1].split()) < set(second.split())  # each side lost a word
    single = f([("one two three four five",)], seed=0)[0]
    assert len(single) == 1 and set(single[0].split()) < {"one", "two", "three", "four", "five"}


def test_pair_retrieve_pairs_a_first_text_with_the_best_matching_other_second_texts(monkeypatch):
    """pair-retrieve: (a, b) becomes (a, c), c a second text of the training inputs among the BEST that share the most of a's
    rarer words, never one paired with a in them; seeded; single texts refused, here and before any work."""
    from bort.finetune import transforms

    s1, s2, s3, s4 = "The castle was built by the king.", "It stands on a hill.", "The river runs past the old castle.", "A bridge spans the river."
    pool = [("Who built the castle?", s1), ("Who built the castle?", s2), ("Where does the river run?", s3), ("What crosses the river?", s4)]
    pool += [(f"Filler question {i}?", f"Filler sentence number {i}.") for i in range(40)]
    f = make_transform("pair-retrieve", pool=pool)
    out = f(pool[:4], seed=1)
    assert out == f(pool[:4], seed=1) and [a for a, _ in out] == [a for a, _ in pool[:4]]
    # "the" is in 3 of the 44 second texts (more than 2): not counted. The castle question's own s1 and s2 are skipped, which
    # leaves s3 (castle); the river questions share "river" with s3 and s4, each its own skipped.
    assert [b for _, b in out] == [s3, s3, s4, s3]
    q = "Was the castle by the river built?"  # s1: castle, was, by, built; s3: castle, river; s4: river
    assert {f([(q, "x")], seed=k)[0][1] for k in range(40)} == {s1, s3, s4}  # drawn among the matches
    lone = f([("Nothing shared here?", "x")], seed=0)[0][1]
    assert lone in {b for _, b in pool} and lone != "x"  # no counted word in common: another second text, drawn
    with pytest.raises(BortError, match="pair-retrieve makes new sentence pairs.*1 text"):
        make_transform("pair-retrieve", pool=[("one",), ("two",)])
    with pytest.raises(BortError, match="pair-retrieve makes new sentence pairs"):
        transforms.check_transform("pair-retrieve", "unused", 1)
    monkeypatch.setattr(transforms, "BEST", 1)
    assert make_transform("pair-retrieve", pool=pool)([(q, "x")], seed=0) == [(q, s1)]  # the best one


def test_auto_is_pair_retrieve_on_pairs_and_dropout_on_single_texts():
    """--transform auto: the same new inputs as pair-retrieve on pairs and as dropout on single texts, seed for seed; never
    refused (neither needs a masked-LM, and a single text gets dropout)."""
    from bort.finetune import transforms

    pairs = [(f"Who built castle number {i}?", f"Castle {i} was built by king {i % 7}.") for i in range(30)]
    singles = [(f"one two three four five six {i}",) for i in range(30)]
    for pool, concrete in ((pairs, "pair-retrieve"), (singles, "dropout")):
        assert transforms.resolve_transform("auto", len(pool[0])) == concrete
        assert make_transform("auto", pool=pool)(pool[:10], seed=3) == make_transform(concrete, pool=pool)(pool[:10], seed=3)
        transforms.check_transform("auto", "no-such-masked-lm", len(pool[0]))  # no error: nothing to load
    assert transforms.resolve_transform("swap", 2) == "swap" and transforms.resolve_transform("pair-retrieve", 1) == "pair-retrieve"


def test_mlm_infill_replaces_masked_tokens_with_other_tokens(bert_teacher, bert_teacher_nohead):
    f = make_transform("mlm-infill", bert_teacher)
    inputs = [("the cat sat on the mat by the red house", "a dog ran")] * 3
    out = f(inputs, seed=0)
    assert out == f(inputs, seed=0) and out != f(inputs, seed=1)
    assert all(new[i] != old[i] for new, old in zip(out, inputs) for i in range(2))  # every text changes: never the original token
    with pytest.raises(BortError, match="no masked-LM head"):
        make_transform("mlm-infill", bert_teacher_nohead)


def test_infill_logits_on_masked_positions_equal_the_full_models(bert_teacher):
    """The infill runs the vocabulary head on the masked positions of padded batches only."""
    from bort.models.student import masked_logits
    from bort.models.teacher import load_teacher

    teacher = load_teacher(bert_teacher)
    enc = teacher.tokenizer(["the cat sat on the mat by the red house", "a dog ran"], padding=True, return_tensors="pt")
    positions = torch.rand(enc["input_ids"].shape, generator=torch.Generator().manual_seed(0)) < 0.5
    positions &= enc["attention_mask"].bool()
    with torch.inference_mode():
        full = teacher.model(**enc).logits[positions]
        assert torch.allclose(masked_logits(teacher.model, enc["input_ids"], positions, enc["attention_mask"]), full, atol=1e-5)


# ------------------------------------------------------------------ new points and the labeller


def test_new_points_never_duplicate_or_reach_dev_and_take_the_labellers_labels(tmp_path, run, rte):
    out, _ = run
    task = get_task("glue/rte")
    train, dev = read_split(task, rte, "train"), read_split(task, rte, "dev")
    labeller = out / "rounds" / "0" / THETAS[0].slug
    mistakes = dev[:10] + dev[:10]  # repeated inputs must not give repeated points
    cfg = _agora(labeller, rte, tmp_path / "x", variants=3)
    seen = {ex.texts for ex in train + dev}
    before = set(seen)
    points = [_point(line) for line in _new_points(cfg, task, mistakes, seen, labeller, 0, make_transform("dropout"))]
    texts = [p.texts for p in points]
    assert len(texts) == len(set(texts)) > 0
    assert not set(texts) & before  # nothing equal to a training or dev input
    assert [p.label for p in points] == _labels(task, labeller, points, cfg.base)


def test_a_given_labeller_labels_the_new_points(tmp_path, bert_teacher, rte):
    """A labeller that always says not_entailment: every new point carries that label."""
    task = get_task("glue/rte")
    model = heads.build(bert_teacher, task, "linear", 64, seed=0)
    with torch.no_grad():
        model.classifier.bias.copy_(torch.tensor([-50.0, 50.0]))
    heads.stock_copy(model).save_pretrained(tmp_path / "L")
    for f in ("tokenizer.json", "tokenizer_config.json"):
        (tmp_path / "L" / f).symlink_to(bert_teacher / f)
    result = agora(_agora(bert_teacher, rte, tmp_path / "F", labeller=str(tmp_path / "L"), max_rounds=1))
    points = [json.loads(line) for line in (tmp_path / "F" / "agora_points.jsonl").read_text().splitlines()]
    assert result.rounds[0].new_points == len(points) > 0
    assert {p["label"] for p in points} == {"not_entailment"}
    held = hold_out(read_split("glue/rte", rte, "train"), 0.1, 0)[1]  # the selection slice: 19 of the 96 (a fifth, fewer than 300)
    assert len(held) == 19 and result.rounds[0].labeller_accuracy == sum(ex.label == "not_entailment" for ex in held) / 19


# ------------------------------------------------------------------ whole runs


def test_agora_end_to_end(run):
    out, result = run
    records = json.loads((out / "agora.json").read_text())["rounds"]
    assert [r["theta_run"] for r in records] == [2, 1] and [r["theta_left"] for r in records] == [1, 0]
    assert records[1]["train_size"] == records[0]["train_size"] + records[0]["new_points"]
    assert records[0]["labeller"] == records[0]["best_folder"]  # the first round's best labels by default
    assert records[0]["labeller_accuracy"] == records[0]["best_metric"]
    assert all(r["mistakes"] <= 19 for r in records)  # made on the 19 held-out training examples, never on dev
    best = max(records, key=lambda r: r["best_metric"])  # by the selection metric
    chosen = FinetuneResult.read(Path(best["best_folder"]) / "finetune.json")
    assert chosen.selection["accuracy"] == best["best_metric"] and chosen.select_examples == 19
    assert json.loads((out / "eval.json").read_text())["metrics"] == chosen.dev == result.dev
    table = (out / "agora.md").read_text().splitlines()
    assert table[2].startswith("| round") and len(table) == 4 + len(records)
    assert (out / "model" / "model.safetensors").read_bytes() == (Path(best["best_folder"]) / "model" / "model.safetensors").read_bytes()


def test_killed_between_rounds_resumes_at_the_next_round(tmp_path, monkeypatch, bert_teacher, rte, run):
    real, calls = agora_mod.finetune, []

    def finetune_or_die(cfg, train_set=None, select_set=None):
        calls.append(cfg.out)
        if "/rounds/1/" in str(cfg.out) and len(calls) == 3:
            raise KeyboardInterrupt  # killed as round 1 starts
        return real(cfg, train_set=train_set, select_set=select_set)

    monkeypatch.setattr(agora_mod, "finetune", finetune_or_die)
    with pytest.raises(KeyboardInterrupt):
        agora(_agora(bert_teacher, rte, tmp_path / "F"))
    assert len(json.loads((tmp_path / "F" / "agora.json").read_text())["rounds"]) == 1
    calls.clear()
    monkeypatch.setattr(agora_mod, "finetune", lambda cfg, train_set=None, select_set=None: (calls.append(cfg.out),
                                                                                          real(cfg, train_set=train_set, select_set=select_set))[1])
    resumed = agora(_agora(bert_teacher, rte, tmp_path / "F"))
    assert all("/rounds/1/" in str(c) for c in calls) and len(calls) == 1  # round 0 is not trained again
    strip = lambda recs: [{k: v for k, v in r.items() if k not in ("best_folder", "labeller")} for r in recs]
    assert strip(resumed.to_dict()["rounds"]) == strip(run[1].to_dict()["rounds"])


def test_killed_after_a_rounds_points_before_its_record_makes_them_once(tmp_path, monkeypatch, bert_teacher, rte, run):
    real, writes = agora_mod.atomic_write_text, []

    def write_or_die(path, text):
        if Path(path).name == "agora.json":
            writes.append(path)
            if len(writes) == 2:
                raise KeyboardInterrupt  # round 1's points are on disk, its record is not
        real(path, text)

    monkeypatch.setattr(agora_mod, "atomic_write_text", write_or_die)
    with pytest.raises(KeyboardInterrupt):
        agora(_agora(bert_teacher, rte, tmp_path / "F"))
    monkeypatch.setattr(agora_mod, "atomic_write_text", real)
    resumed = agora(_agora(bert_teacher, rte, tmp_path / "F"))
    idx = [json.loads(line)["idx"] for line in (tmp_path / "F" / "agora_points.jsonl").read_text().splitlines()]
    assert len(idx) == len(set(idx)) == sum(r.new_points for r in resumed.rounds)


def test_the_subset_follows_data_seed(tmp_path, monkeypatch, bert_teacher, rte):
    full = read_split(get_task("glue/rte"), rte, "train")
    picked: dict[int | None, list] = {}  # --data-seed → the train set of the first θ's run

    def first_run(cfg, train_set=None, select_set=None):
        picked[data_seed] = [ex for ex in full if ex in train_set or ex in select_set]  # the subset, before its slice is held out
        assert len(train_set) + len(select_set) == 32
        raise KeyboardInterrupt  # only the subset is under test

    monkeypatch.setattr(agora_mod, "finetune", first_run)
    for data_seed in (None, 0, 1):
        cfg = _agora(bert_teacher, rte, tmp_path / str(data_seed))
        with pytest.raises(KeyboardInterrupt):  # --seed 1 throughout: --data-seed alone moves the subset
            agora(replace(cfg, base=replace(cfg.base, train_examples=32, seed=1, data_seed=data_seed)))
    assert picked[None] == picked[1] == subset(full, 32, 1) != picked[0] == subset(full, 32, 0)
    assert len(picked[0]) == 32 and len(full) == 96


def test_regression_and_multiple_choice_are_refused(tmp_path, bert_teacher):
    data = write_stsb(tmp_path / "STS-B")
    cfg = _agora(bert_teacher, data, tmp_path / "F")
    with pytest.raises(BortError, match="Agora applies to classification tasks; glue/stsb is regression"):
        agora(replace(cfg, base=replace(cfg.base, task="glue/stsb")))


def test_cli_agora(tmp_path, bort_cmd, bert_teacher, rte):
    space = tmp_path / "space.yaml"
    space.write_text("lr: [1e-3]\nweight_decay: [0.01]\nwarmup: [0.1]\nbatch_size: [16]\nseed: [0, 1]\n")
    base = ["finetune", "--agora", "--model", str(bert_teacher), "--task", "glue/rte", "--data", str(rte), "--max-seq-len", "64",
            "--epochs", "1", "--agora-space", str(space), "--transform", "dropout", "--no-progress", "--bf16", "off"]
    run = subprocess.run([*bort_cmd, *base, "--out", str(tmp_path / "F")], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["rounds"] == 2 and (tmp_path / "F" / "agora.md").is_file()
    bad = subprocess.run([*bort_cmd, *base, "--task", "superglue/copa", "--out", str(tmp_path / "G")], capture_output=True, text=True)
    assert bad.returncode == 2 and "Agora applies to classification tasks; superglue/copa is multiple choice" in bad.stderr
