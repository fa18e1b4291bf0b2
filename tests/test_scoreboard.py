"""benchmarks/scoreboard.py's levers (issue 38): a student's bort compress flags become its recipe, and ``--lr-from`` lends one
student's learning rate to the others."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import scoreboard  # noqa: E402

from bort.compress import CompressConfig  # noqa: E402


def test_a_students_flags_change_its_recipe_as_they_change_compress():
    plain, default = scoreboard.recipe([]), CompressConfig()
    assert (plain.task_distill, plain.augment, plain.student_epochs) == (default.task_distill, default.augment, default.student_epochs)
    lever = scoreboard.recipe(["--task-attn-layers", "2", "--task-layer-map", "uniform", "--transform", "pair-mix", "--augment-min-inputs", "900"])
    assert (lever.task_distill.representation.attn_layers, lever.task_distill.representation.layer_map) == (2, "uniform")
    assert (lever.augment.transform, lever.augment.min_inputs, lever.augment.per_example) == ("pair-mix", 900, default.augment.per_example)
    # compress groups the student's batches by length by default; a recorded `--group-by-length` still groups them
    assert plain.student_grouped and not plain.finetune.group_by_length and scoreboard.recipe(["--group-by-length"]).student_grouped
    assert not scoreboard.recipe(["--no-student-group-by-length"]).student_grouped
    assert scoreboard.recipe(["--no-student-group-by-length", "--group-by-length"]).student_grouped  # both models' switch wins
    job = scoreboard.JOBS["mrpc"]  # and the student's fine-tuning takes it
    args = argparse.Namespace(max_train=8000, batch_size=32, patience=2)
    assert scoreboard._config("S", job, Path("o"), args, lr=1e-4, seed=0, epochs=2, group_by_length=True).group_by_length is True
    with pytest.raises(SystemExit):
        scoreboard.recipe(["--no-such-flag"])


def test_lr_from_lends_its_choice_on_the_grid_seeds_and_after(tmp_path):
    job = scoreboard.JOBS["mrpc"]
    (tmp_path / "mrpc").mkdir()
    (tmp_path / "mrpc" / "fast-seed0.json").write_text(json.dumps({"lr": 3e-4}))
    (tmp_path / "mrpc" / "inter-seed0.json").write_text(json.dumps({"lr": 3e-5}))
    args = argparse.Namespace(results=tmp_path, lrs=[3e-5, 1e-4, 3e-4], grid_seeds=[0], lr_from="fast")
    assert scoreboard._lrs("fast", job, 0, args) == (args.lrs, "the best selection score of the grid, seed 0")
    assert scoreboard._lrs("teacher", job, 0, args)[0] == args.lrs
    assert scoreboard._lrs("inter", job, 0, args) == ([3e-4], "seed 0's grid (fast-seed0.json)")
    assert scoreboard._lrs("inter", job, 1, args)[0] == [3e-4]
    args.lr_from = None  # each student its own grid, and its own choice after
    assert scoreboard._lrs("inter", job, 0, args)[0] == args.lrs and scoreboard._lrs("inter", job, 1, args)[0] == [3e-5]
    with pytest.raises(SystemExit, match="run seed 0"):
        scoreboard._lrs("other", job, 1, args)


def test_a_pick_student_is_compress_own_task_agnostic_student_and_its_embedding_row(tmp_path, monkeypatch, bert_teacher_nohead, corpus_file,
                                                                                     space_file):
    """``NAME=pick:X``: bort compress without a task at X× (extraction, pretraining, the STS-B embedding score, the speed-ups);
    its pretrained folder is the student, and its row is written once."""
    from conftest import SEQ_LEN
    from glue_files import write_stsb

    monkeypatch.setattr(scoreboard, "GLUE", tmp_path / "glue")
    write_stsb(tmp_path / "glue" / "STS-B")
    flags = ["--space", str(space_file), "--seq-len", str(SEQ_LEN), "--max-seq-len", str(SEQ_LEN), "--latency", "flops", "--latency-seq", str(SEQ_LEN),
             "--extract-steps", "3",
             "--epsilon", "4", "--pretrain-batch-size", "8", "--bench-seq", str(SEQ_LEN), "--bench-rounds", "1", "--bench-runs", "1",
             "--bench-warmup", "0", "--device", "cpu"]
    args = argparse.Namespace(runs=tmp_path / "out" / "runs", results=tmp_path / "results" / "scoreboard", teacher=str(bert_teacher_nohead),
                              corpus=str(corpus_file), pretrain_steps=4, flags={"p2": flags}, recipes={"p2": scoreboard.recipe(flags)})
    folder = scoreboard.pretrained("p2", "pick:2", args)
    run = tmp_path / "out" / "students" / "p2"
    assert folder == str(run / "pretrain") and (run / "pretrain" / "model" / "model.safetensors").is_file()
    doc = json.loads((tmp_path / "results" / "agnostic" / "p2.json").read_text())
    record = json.loads((run / "compress.json").read_text())
    assert doc["arch"] == record["arch"] and doc["min_speedup"] == 2 and doc["pretrain_steps"] == 4 and doc["flags"] == flags
    assert doc["student"]["kept_over_baseline"] == record["student"]["kept_over_baseline"] and doc["student"]["task"] == "glue/stsb"
    assert set(doc["stages"]) == {"extract", "pretrain", "export/encoder", "score/embedding", "bench", "bench_real/embedding"}
    weights = (run / "pretrain" / "model" / "model.safetensors").stat().st_mtime_ns
    assert scoreboard.pretrained("p2", "pick:2", args) == folder  # read back: compress resumes its finished stages
    assert (run / "pretrain" / "model" / "model.safetensors").stat().st_mtime_ns == weights


def test_each_teachers_board_keeps_its_trials_apart():
    minilm = argparse.Namespace(results=Path("R") / "scoreboard")
    mpnet = argparse.Namespace(results=Path("R") / "scoreboard-mpnet")
    assert scoreboard.beside(minilm, "trials") == Path("R") / "trials" and scoreboard.beside(mpnet, "trials") == Path("R") / "trials-scoreboard-mpnet"


def test_a_shape_student_is_pretrained_from_the_start_its_flags_give(tmp_path, bert_teacher_nohead, corpus_file):
    from conftest import SEQ_LEN

    flags = ["--init", "importance", "--seq-len", str(SEQ_LEN), "--pretrain-batch-size", "4", "--device", "cpu"]
    args = argparse.Namespace(runs=tmp_path / "runs", teacher=str(bert_teacher_nohead), corpus=str(corpus_file), pretrain_steps=2,
                              recipes={"imp": scoreboard.recipe(flags)})
    folder = Path(scoreboard.pretrained("imp", "1,4,64,48", args))
    assert folder == tmp_path / "students" / "imp"
    report = json.loads((folder / "pretrain.json").read_text())
    assert report["init"] == "importance" and report["steps"] == 2 and report["arch"] == {"D": 1, "A": 4, "H": 64, "I": 48}


def test_a_teacher_scored_elsewhere_is_trained_again_at_its_rate_where_its_model_is_not_here(tmp_path, monkeypatch):
    job = scoreboard.JOBS["mrpc"]
    args = argparse.Namespace(results=tmp_path / "results", runs=tmp_path / "runs", teacher="T", teacher_epochs=10.0)
    path = args.results / "mrpc" / "teacher-seed1.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"lr": 3e-5, "score": 0.8, "trials": {"3e-05": {"lr": 3e-5, "folder": "/elsewhere/lr3e-05"}}}))
    calls = []

    def trial(name, source, job_, seed, args_, lr, epochs, *, train=False, **form):
        calls.append((name, seed, lr, epochs, train))
        folder = scoreboard._run(args_, job_, seed, name, lr)
        folder.mkdir(parents=True)
        (folder / "eval.json").write_text("{}")
        return {"lr": lr, "folder": str(folder), "retrained": {"selection_score_before": 0.7}}

    monkeypatch.setattr(scoreboard, "_trial", trial)
    assert not scoreboard._teacher_ready(job, 1, args)  # --follow waits
    doc = scoreboard.teacher(job, 1, args)
    assert calls == [("teacher", 1, 3e-5, 10.0, True)] and scoreboard._teacher_ready(job, 1, args)
    assert doc["trials"]["3e-05"]["folder"] == str(tmp_path / "runs" / "seed1" / "mrpc" / "teacher" / "lr3e-05") and doc["score"] == 0.8
    folder = Path(doc["trials"]["3e-05"]["folder"])
    assert scoreboard._retrained(folder) is None  # the student's record: not known to be trained again until the run says so
    (folder / scoreboard.RETRAINED).write_text(json.dumps({"selection_score_before": 0.7, "selection_score": 0.71}))
    assert scoreboard._retrained(folder) == {"selection_score_before": 0.7, "selection_score": 0.71}
    scoreboard.teacher(job, 1, args)  # now here: read back, not trained again
    assert len(calls) == 1 and json.loads(path.read_text())["trials"]["3e-05"]["folder"] == "/elsewhere/lr3e-05"  # the result file unchanged


def test_transfer_inputs_leave_out_the_scored_texts_and_repeats(tmp_path, monkeypatch):
    """benchmarks/transfer_inputs.py: a source's inputs with a text near one of the task's dev split (the same words up to case,
    punctuation and brackets, or nearly all of them) are left out, and each input is kept once; a corpus gives a seeded sample
    of its sentences of CoLA's lengths, Latin-1 files read."""
    import transfer_inputs

    head = "index\tsentence1\tsentence2\tlabel\n"
    dev = [("The broader Standard & Poor's 500 Index .SPX edged down 9 points.", "It fell."), ("A cat sat.", "A dog ran.")]
    near = ("the broader standard & poor's 500 index <.SPX> edged down 9 points", "Something else entirely.")  # case, brackets
    most = ("Stocks fell.", "one two three four five six seven eight nine ten eleven")  # 10 of 11 words of the dev text below
    far = [("Markets rose on Monday.", "Bonds were flat."), ("The rain stopped.", "Children played outside.")]
    dev.append(("Nothing here.", "one two three four five six seven eight nine ten"))
    folder = tmp_path / "RTE"
    folder.mkdir()
    for split, pairs in (("dev", dev), ("train", [near, far[0], most, far[1], far[0]])):
        (folder / f"{split}.tsv").write_text(head + "".join(f"{i}\t{a}\t{b}\tentailment\n" for i, (a, b) in enumerate(pairs)))
    monkeypatch.setitem(transfer_inputs.JOBS, "t", scoreboard.Job("t", "glue/rte", folder))
    monkeypatch.setitem(transfer_inputs.SOURCES, "t", (("glue/rte", folder, "dev"), ("glue/rte", folder, "train"), ("glue/rte", folder, "train")))
    inputs, counts = transfer_inputs.transfer_inputs("t")
    assert inputs == far and counts == {"glue/rte:dev": 0, "glue/rte:train": 2}  # the second train source: none new
    corpus = tmp_path / "corpus"
    (corpus / "a").mkdir(parents=True)
    (corpus / "a" / "one.txt").write_text("The cat sat on the mat. A dog ran.\nThis sentence is far too long " + "to keep " * 12 + "here.\n")
    (corpus / "a" / "two.txt").write_bytes("We ate in a caf\xe9 today.\n".encode("latin-1"))
    sentences = transfer_inputs._corpus_sentences(corpus, 10)
    assert sentences == [("The cat sat on the mat.",), ("A dog ran.",), ("We ate in a café today.",)]
    two = transfer_inputs._corpus_sentences(corpus, 2)
    assert two == transfer_inputs._corpus_sentences(corpus, 2) and len(two) == 2 and set(two) < set(sentences)


def test_transfer_inputs_pair_questions_with_the_sentences_that_share_their_rarer_words(monkeypatch):
    """QNLI's transfer set: each question with the pool's sentences ranked by the summed inverse document frequency of the
    words they share (words in too many sentences not counted), its own sentences skipped; WikiText read as prose."""
    import math

    import transfer_inputs

    pool = ["the castle stood on the hill", "the river ran past the castle", "a river of the north", "the hill and the river"]
    pool += [f"the filler sentence {i}" for i in range(20)]
    monkeypatch.setattr(transfer_inputs, "COMMON", 0.5)  # "the" (in 23 of 24) is a stop word; "castle", "river", "hill" are not
    q = "Where is the castle by the river?"
    pairs = transfer_inputs._best_matches([q], pool, 4, {})
    idf = {w: math.log(24 / n) for w, n in (("castle", 2), ("river", 3))}
    assert idf["castle"] > idf["river"] > 0  # so by hand: castle and river; castle alone; river alone (earlier first), twice
    assert pairs == [(q, pool[1]), (q, pool[0]), (q, pool[2]), (q, pool[3])]
    assert transfer_inputs._best_matches([q], pool, 2, {q: {pool[1]}}) == [(q, pool[0]), (q, pool[2])]
    assert transfer_inputs._best_matches(["Why filler?"], pool, 2, {}) == []  # "filler" is in 20 of 24: no word counts
    assert transfer_inputs._detokenized("A well @-@ known 1 @,@ 000 ( big ) city , ok .") == "A well-known 1,000 (big) city, ok."
