"""ê as KL or CE (``--error``), from random or teacher-sliced students (``--init``), ``--min-speedup``, and
``RUN/pareto.json`` (front and best ξ per speed-up)."""

from __future__ import annotations

import dataclasses
import json

import pytest
from test_extract import run, trials

from bort.arch import Arch
from bort.cli import main
from bort.data.corpus import load_corpus
from bort.extract.pareto import best_by_speedup, dominates, front, pareto_doc, ranked
from bort.extract.space import load_space
from bort.models.teacher import load_teacher
from bort.surrogates.error import ErrorSettings, ErrorSurrogate
from bort.surrogates.latency import flops
from bort.training.hparams import Theta
from bort.training.losses import LogitLoss
from bort.training.objectives import RepresentationLoss


def key(row: dict) -> str:
    return f"{row['D']},{row['A']},{row['H']},{row['I']}"


# ê of each kind, on the surrogate itself.

@pytest.fixture(scope="module")
def surrogates(bert_teacher, corpus_file):
    teacher = load_teacher(bert_teacher)
    corpus = load_corpus(corpus_file, teacher.tokenizer, seq_len=32)
    make = {kind: ErrorSurrogate(teacher, corpus, ErrorSettings(steps=3, eval_sequences=8, eval_batch_size=4, kind=kind)) for kind in ("kl", "ce")}
    return teacher, make


def test_kl_is_zero_for_the_teacher_and_positive_for_a_student(surrogates):
    teacher, s = surrogates
    kl = s["kl"]
    assert kl.floor() == 0.0
    assert kl.score(teacher.model) == pytest.approx(0.0, abs=1e-6)
    e = kl(Arch(1, 2, 32, 64), Theta(batch_size=4))
    assert e > 0


def test_kl_is_ce_minus_the_teacher_entropy(surrogates):
    """The same training scored both ways: KL = H(p_T, p_S) − H(p_T); CE's floor is the entropy."""
    teacher, s = surrogates
    arch, theta = Arch(1, 4, 32, 64), Theta(batch_size=4)
    assert s["ce"].floor() == pytest.approx(s["ce"].entropy()) == pytest.approx(s["kl"].entropy())
    assert s["ce"].score(teacher.model) == pytest.approx(s["ce"].entropy(), rel=1e-5)
    assert s["kl"](arch, theta) == pytest.approx(s["ce"](arch, theta) - s["ce"].entropy(), abs=1e-4)


def test_teacher_init_starts_from_the_teacher(bert_teacher, corpus_file):
    """ξ = T from the teacher's slices, one step at a negligible learning rate: ê stays 0; from random weights it does not
    (seed 1: the tiny teacher itself is a seed-0 random model)."""
    teacher = load_teacher(bert_teacher)
    corpus = load_corpus(corpus_file, teacher.tokenizer, seq_len=32)
    theta, T = Theta(lr=1e-12, batch_size=4), Arch(2, 4, 64, 128)
    errors = {init: ErrorSurrogate(teacher, corpus, ErrorSettings(steps=1, seed=1, eval_sequences=8, eval_batch_size=4, init=init))(T, theta)
              for init in ("teacher", "random")}
    assert errors["teacher"] == pytest.approx(0.0, abs=1e-5) and errors["random"] > 100 * max(errors["teacher"], 1e-6)


def test_unknown_error_kind_and_init():
    with pytest.raises(Exception, match="--error"):
        ErrorSettings(kind="mse")
    with pytest.raises(Exception, match="--init"):
        ErrorSettings(init="zeros")
    assert ErrorSettings(init="teacher").fingerprint()["init"] == "teacher" != ErrorSettings().fingerprint()["init"]


# The front and the best ξ per speed-up, on synthetic rows.

def row(D, params, flops_, error, w=None):
    return {"D": D, "A": 2, "H": 32, "I": 64, "params": params, "latency_ms": None, "flops": flops_, "error": error, "w": w}


def test_dominates():
    assert dominates((1, 1, 1), (1, 2, 1)) and not dominates((1, 1, 1), (1, 1, 1)) and not dominates((1, 3, 1), (2, 2, 2))


def test_front_keeps_the_undominated_trained_rows():
    rows = [row(1, 10, 10, 3.0), row(2, 20, 20, 2.0), row(3, 30, 30, 2.5),  # 3 is beaten by 2 in all three
            row(4, 5, 40, 4.0), row(5, 10, 10, 3.0), row(6, 1, 1, None)]   # 5 ties 1 (neither dominates); 6 untrained
    assert [r["D"] for r in front(rows, "flops")] == [4, 1, 5, 2]


def test_best_by_speedup():
    teacher = {"flops": 1600, "latency_ms": None}
    rows = [row(1, 10, 800, 1.0, w=0.5), row(2, 9, 400, 1.0, w=0.4), row(3, 8, 390, 2.0, w=0.45), row(4, 7, 100, 3.0, w=0.2),
            row(5, 1, 50, None), row(6, 6, 100, 3.0, w=0.2)]  # 5 untrained, 6 ties 4 on W with fewer parameters
    best = best_by_speedup(rows, teacher, "flops")
    assert {k: r["D"] for k, r in best.items()} == {"2x": 1, "4x": 3, "8x": 6, "16x": 6}
    assert "16x" not in best_by_speedup(rows[:3], teacher, "flops")
    doc = pareto_doc(rows, teacher, "kl")
    assert doc["cost"] == "flops" and doc["error_kind"] == "kl"
    e = doc["best_by_speedup"]["4x"]
    assert e["arch"] == "3,2,32,64" and Arch.parse(e["arch"]) == Arch(3, 2, 32, 64) and e["speedup"] == pytest.approx(1600 / 390)
    assert set(e) == {"D", "A", "H", "I", "params", "latency_ms", "flops", "error", "w", "speedup", "arch"}



def test_ranked_orders_the_fast_enough_by_error_or_w():
    teacher = {"flops": 1600, "latency_ms": None}
    rows = [row(1, 10, 800, 1.0, w=0.5), row(2, 9, 400, 1.5, w=0.4), row(3, 8, 390, 2.0, w=0.45), row(4, 7, 100, 3.0, w=0.2),
            row(5, 1, 50, None), row(6, 6, 100, 3.0, w=0.2)]  # 5 untrained, 6 ties 4 with fewer parameters
    assert [r["D"] for r in ranked(rows, teacher, "flops", 2)] == [1, 2, 3, 6, 4]  # ê 1.0 first, where best-W at 2× is also 1
    assert [r["D"] for r in ranked(rows, teacher, "flops", 4)] == [2, 3, 6, 4]  # ê 1.5 beats best-W's 3 (ê 2.0)
    assert [r["D"] for r in ranked(rows, teacher, "flops", 4, by="w")] == [3, 2, 6, 4]
    assert [r["D"] for r in ranked(rows, teacher, "flops", 8)] == [6, 4] and ranked(rows, teacher, "flops", 40) == []


# End to end: --error, the store, pareto.json and --min-speedup.

RUNS = {"kl": ("--error", "kl", "--init", "random"), "ce": ("--error", "ce", "--init", "random"), "kl-teacher": ("--init", "teacher")}
OTHER = {"kl": ("--error", "ce"), "ce": ("--error", "kl"), "kl-teacher": ("--init", "random")}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, bert_teacher, extract_args):
    """One ε = 3, FLOPs run per kind of ê and init, and its arguments (to run it again)."""
    out = {}
    for name, extra in RUNS.items():
        folder = tmp_path_factory.mktemp("extract") / name
        args = extract_args(bert_teacher, folder, "--epsilon", "3", "--latency", "flops", *extra)
        out[name] = (folder, args, run(args))
    return out


def test_result_names_the_kind_and_kl_is_the_excess(runs):
    (_, _, kl), (_, _, ce) = runs["kl"], runs["ce"]
    assert kl["error_kind"] == "kl" and ce["error_kind"] == "ce"
    assert kl["teacher"]["error_floor"] == 0.0 and ce["teacher"]["error_floor"] == pytest.approx(ce["teacher"]["entropy"])
    ce_errors = {key(c): c["error"] for c in ce["candidates"] if c["error"] is not None}
    kl_errors = {key(c): c["error"] for c in kl["candidates"] if c["error"] is not None}
    assert set(kl_errors) == set(ce_errors) and kl_errors
    for k, e in kl_errors.items():
        assert e >= 0
        assert e == pytest.approx(ce_errors[k] - ce["teacher"]["entropy"], abs=1e-4)


@pytest.mark.parametrize("name", list(RUNS))
def test_rerun_is_exact_and_other_settings_are_refused(runs, name, capsys):
    folder, args, first = runs[name]
    before = trials(folder)
    again = run(args)
    assert trials(folder) == before
    assert {k: v for k, v in again.items() if k != "wall_s"} == {k: v for k, v in first.items() if k != "wall_s"}
    capsys.readouterr()
    assert main([*args, *OTHER[name]]) == 2
    assert ("init" if name == "kl-teacher" else "error_kind") in capsys.readouterr().err
    assert trials(folder) == before


def test_teacher_init_run(runs):
    """--init teacher is recorded, trains the same candidates and scores them differently from random starts."""
    (_, _, teacher), (_, _, random) = runs["kl-teacher"], runs["kl"]
    assert teacher["settings"]["init"] == "teacher" and random["settings"]["init"] == "random"
    t = {key(c): c["error"] for c in teacher["candidates"] if c["error"] is not None}
    r = {key(c): c["error"] for c in random["candidates"] if c["error"] is not None}
    assert set(t) == set(r) and all(e >= 0 for e in t.values()) and t != r


def test_teacher_init_needs_a_space_within_the_teacher(tmp_path, bert_teacher, extract_args, capsys):
    space = tmp_path / "deep.yaml"
    space.write_text("D: [1, 3]\nA: [2]\nH: [32]\nI: [64]\n", encoding="utf-8")
    assert main(extract_args(bert_teacher, tmp_path / "run", "--latency", "flops", "--init", "teacher", "--space", str(space))) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--init teacher" in err[0] and "3,2,32,64" in err[0]
    # The default, auto, starts such a space from random weights, and says so.
    r = run(extract_args(bert_teacher, tmp_path / "auto", "--latency", "flops", "--space", str(space)))
    assert r["settings"]["init"] == "random" and "start from random weights (--init auto)" in capsys.readouterr().err


def test_auto_init_is_the_teachers_slices_where_the_space_fits(tmp_path, runs, extract_args, bert_teacher):
    folder, args, teacher = runs["kl-teacher"]
    auto = run(extract_args(bert_teacher, tmp_path / "auto", "--epsilon", "3", "--latency", "flops"))  # --init auto, the default
    assert auto["settings"]["init"] == "teacher"
    assert {key(c): c["error"] for c in auto["candidates"]} == {key(c): c["error"] for c in teacher["candidates"]}


def test_pareto_json_and_report(runs):
    folder, _, r = runs["kl"]
    doc = json.loads((folder / "pareto.json").read_text(encoding="utf-8"))
    trained = {key(c): c for c in r["candidates"] if c["status"] == "trained"}
    assert doc["front"] and {e["arch"] for e in doc["front"]} <= set(trained)
    t = r["teacher"]
    for name, e in doc["best_by_speedup"].items():
        assert name in ("2x", "4x", "8x", "16x") and e["speedup"] >= int(name[:-1])
        assert e["speedup"] == pytest.approx(t["flops"] / trained[e["arch"]]["flops"])
    report = (folder / "report.md").read_text(encoding="utf-8")
    assert "## Best ξ per speed-up" in report and "## Pareto front on (p̂, î, ê)" in report
    assert all(f"`--arch {e['arch']}`" in report for e in doc["front"])


def test_min_speedup_keeps_only_fast_enough(tmp_path, bert_teacher, extract_args, space_file):
    r = run(extract_args(bert_teacher, tmp_path / "run", "--epsilon", "3", "--latency", "flops", "--min-speedup", "4"))
    t = r["teacher"]
    seq = r["latency"]["seq"]
    expected = {a.key for a in load_space(str(space_file), Arch(2, 4, 64, 128)).archs(exclude=Arch(2, 4, 64, 128))
                if t["flops"] >= 4 * flops(a, seq=seq)}
    assert expected and {key(c) for c in r["candidates"]} == expected
    assert r["settings"]["min_speedup"] == 4


@pytest.mark.parametrize("value, needle", [("1000", "no architecture"), ("0", "positive")])
def test_min_speedup_errors(tmp_path, bert_teacher, extract_args, capsys, value, needle):
    assert main(extract_args(bert_teacher, tmp_path / "run", "--latency", "flops", "--min-speedup", value)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--min-speedup" in err[0] and needle in err[0]


# ê from representations: a bare encoder, no masked-LM head trained.

REP = ("--alpha-mlm", "0", "--alpha-kd", "0", "--alpha-hidden", "1", "--alpha-attn", "1", "--alpha-embed", "1")


def test_representation_error_is_zero_for_the_teacher(bert_teacher_nohead, corpus_file):
    teacher = load_teacher(bert_teacher_nohead)
    corpus = load_corpus(corpus_file, teacher.tokenizer, seq_len=32)
    rep = RepresentationLoss(alpha_hidden=1, alpha_attn=1, alpha_embed=1)
    T, theta = Arch(2, 4, 64, 128), Theta(lr=1e-12, batch_size=4)
    errors = {init: ErrorSurrogate(teacher, corpus, ErrorSettings(steps=1, seed=1, eval_sequences=8, eval_batch_size=4, init=init,
                                                                  loss=LogitLoss(alpha_mlm=0, alpha_kd=0), representation=rep))(T, theta)
              for init in ("teacher", "random")}
    assert errors["teacher"] == pytest.approx(0.0, abs=1e-5) and errors["random"] > 1e-3
    with pytest.raises(Exception, match="not both"):
        ErrorSettings(representation=rep)  # a logit term and representation terms


@pytest.mark.parametrize("layer_map", ["last", "uniform"])
def test_representation_error_is_the_same_from_the_teacher_views_cache(bert_teacher_nohead, corpus_file, layer_map):
    """The teacher's views of the n training batches are cached: a second candidate runs the teacher only on the
    held-out batches, and ê is identical to a surrogate that caches nothing."""
    teacher = load_teacher(bert_teacher_nohead)
    corpus = load_corpus(corpus_file, teacher.tokenizer, seq_len=32)
    rep = RepresentationLoss(alpha_hidden=1, alpha_attn=1, alpha_embed=1, layer_map=layer_map)
    settings = ErrorSettings(steps=3, eval_sequences=8, eval_batch_size=4, loss=LogitLoss(alpha_mlm=0, alpha_kd=0), representation=rep)
    theta, archs = Theta(batch_size=4), (Arch(1, 2, 32, 64), Arch(2, 4, 64, 128), Arch(1, 4, 64, 64))
    calls = []
    hook = teacher.model.base_model.register_forward_hook(lambda _m, inputs, _o: calls.append(inputs[0].shape[0] if inputs else 0))
    try:
        cached = ErrorSurrogate(teacher, corpus, settings)
        first = [cached(a, theta) for a in archs]
        n_calls = len(calls)
        again = [cached(a, theta) for a in archs]
    finally:
        hook.remove()
    held_out = 2 * len(archs)  # 8 held-out sequences in batches of 4, per candidate
    assert len(calls) - n_calls == held_out
    assert n_calls == held_out + 3 * (1 if layer_map == "last" else 2)  # the teacher's layers: one set, or one per student depth
    uncached = ErrorSurrogate(teacher, corpus, dataclasses.replace(settings, teacher_cache_gb=0.0))
    assert first == again == [uncached(a, theta) for a in archs]
    assert uncached._views_cache == {} and len(cached._views_cache) == (1 if layer_map == "last" else 2)


def test_representation_run(tmp_path, bert_teacher_nohead, extract_args, capsys):
    out = tmp_path / "rep"
    args = extract_args(bert_teacher_nohead, out, "--epsilon", "3", "--latency", "flops", *REP)
    r = run(args)
    assert r["error_kind"] == "representation" and r["teacher"]["error_floor"] == 0.0 and r["teacher"]["entropy"] is None
    assert not (out / "teacher_mlm").exists()
    errors = [c["error"] for c in r["candidates"] if c["status"] == "trained"]
    assert errors and all(e >= 0 for e in errors)
    assert json.loads((out / "pareto.json").read_text(encoding="utf-8"))["error_kind"] == "representation"
    before = trials(out)
    again = run(args)
    assert trials(out) == before and again["candidates"] == r["candidates"] and again["best"] == r["best"]
    capsys.readouterr()
    assert main([*args, "--alpha-attn", "0"]) == 2
    assert "representation" in capsys.readouterr().err
