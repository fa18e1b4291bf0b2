"""End-to-end ``bort extract`` on a tiny teacher: the run folder, its numbers and the ``best/`` student."""

from __future__ import annotations

import copy
import csv
import json
import math
import sqlite3

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import AutoConfig, AutoModel, AutoModelForMaskedLM, AutoTokenizer

from bort.arch import Arch
from bort.cli import main
from bort.extract.report import COLUMNS
from bort.models.families import config_arch
from bort.models.loading import has_mlm_head
from bort.models.teacher import load_teacher
from bort.surrogates.latency import flops
from bort.surrogates.params import count_params

TEACHER_ARCH = (2, 4, 64, 128)  # the tiny teachers of conftest.py


def run(args: list[str]) -> dict:
    assert main(args) == 0
    out = args[args.index("--out") + 1]
    with open(f"{out}/result.json", encoding="utf-8") as f:
        return json.load(f)


def trials(out) -> list[tuple]:
    db = sqlite3.connect(out / "bort.sqlite")
    try:
        return db.execute("SELECT arch, theta, error, seconds, created FROM trial ORDER BY arch, theta").fetchall()
    finally:
        db.close()


def arch_of(row: dict) -> Arch:
    return Arch(row["D"], row["A"], row["H"], row["I"])


def s_factor(row: dict, teacher: dict, cost_key: str) -> float:
    return (1 - row["params"] / teacher["params"]) * (1 - row[cost_key] / teacher[cost_key])


@pytest.fixture(scope="module")
def exhaustive(tmp_path_factory, bert_teacher, extract_args):
    """ε = 1 with measured latency: every eligible candidate is trained."""
    out = tmp_path_factory.mktemp("extract") / "eps1"
    return out, run(extract_args(bert_teacher, out, "--epsilon", "1"))


@pytest.fixture(scope="module")
def flops_run(tmp_path_factory, bert_teacher, extract_args):
    """ε = 3 with analytic FLOPs instead of wall-clock latency."""
    out = tmp_path_factory.mktemp("extract") / "flops"
    return out, run(extract_args(bert_teacher, out, "--epsilon", "3", "--latency", "flops"))


def test_result_json_layout(exhaustive):
    _, r = exhaustive
    assert {"D", "A", "H", "I", "params", "latency_ms"} <= set(r["teacher"])
    assert tuple(r["teacher"][k] for k in "DAHI") == TEACHER_ARCH
    assert r["teacher"]["latency_ms"] > 0
    assert r["space_size"] == len(r["candidates"]) == 15  # 16 tuples minus the teacher
    assert (r["epsilon"], r["steps"]) == (1, 3)
    assert {"D", "A", "H", "I", "params", "params_effective", "latency_ms", "flops", "error", "w"} <= set(r["best"])
    assert all(set(c) == set(COLUMNS) for c in r["candidates"])
    assert TEACHER_ARCH not in {arch_of(c).astuple() for c in r["candidates"]}


def _built(teacher_folder, arch: Arch):
    """The teacher's base model (no pooler, no MLM head: what p̂ counts) actually built at shape ``arch``, eager attention."""
    config = copy.deepcopy(AutoConfig.from_pretrained(teacher_folder))
    config.num_hidden_layers, config.num_attention_heads, config.hidden_size, config.intermediate_size = arch.astuple()
    torch.manual_seed(0)
    return AutoModel.from_config(config, add_pooling_layer=False, attn_implementation="eager").eval()


def reference_params(teacher_folder, arch: Arch) -> tuple[int, int]:
    """(total, without the embeddings) counted on a real model, not with bort's formula."""
    model = _built(teacher_folder, arch)
    total = sum(p.numel() for p in model.parameters())
    return total, total - sum(p.numel() for p in model.embeddings.parameters())


def reference_flops(teacher_folder, arch: Arch, *, seq: int, batch: int) -> int:
    """FLOPs of the matrix products of one real forward, counted by torch (2 per multiply-add; embedding lookups,
    LayerNorm, softmax and bias adds are no matrix products)."""
    model = _built(teacher_folder, arch)
    ids = torch.randint(model.config.vocab_size, (batch, seq), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(input_ids=ids)
    return counter.get_total_flops()


def test_reference_counts_are_worked_by_hand(bert_teacher):
    """The references above on the teacher ⟨2,4,64,128⟩ (vocabulary V, 64 positions, 2 token types), by hand."""
    V, H, I = AutoConfig.from_pretrained(bert_teacher).vocab_size, 64, 128  # noqa: E741
    layer = 4 * (H * H + H) + 2 * H + (H * I + I) + (I * H + H) + 2 * H
    assert reference_params(bert_teacher, Arch(*TEACHER_ARCH)) == ((V + 64 + 2) * H + 2 * H + 2 * layer, 2 * layer)
    S = 32  # noqa: N806
    assert reference_flops(bert_teacher, Arch(*TEACHER_ARCH), seq=S, batch=3) == 3 * 2 * 2 * (S * (4 * H * H + 2 * H * I) + 2 * S * S * H)


def test_numbers_are_consistent(exhaustive, bert_teacher):
    """p̂, FLOPs, S and W of every row recomputed from first principles; null exactly where ineligible.

    p̂ is checked against a real model's parameter count, FLOPs against torch's FLOP counter on a real forward."""
    _, r = exhaustive
    t = r["teacher"]
    config = load_teacher(bert_teacher).config
    seq, batch = r["latency"]["seq"], r["latency"]["batch"]
    assert t["params"] == count_params(config, Arch(*TEACHER_ARCH)).total
    assert t["params"] == reference_params(bert_teacher, Arch(*TEACHER_ARCH))[0]
    for c in r["candidates"]:
        a = arch_of(c)
        assert c["params"] == count_params(config, a).total and c["params_effective"] == count_params(config, a).effective
        assert (c["params"], c["params_effective"]) == reference_params(bert_teacher, a), a
        assert c["flops"] == flops(a, seq=seq, batch=batch)
        assert c["flops"] == reference_flops(bert_teacher, a, seq=seq, batch=batch), a
        eligible = c["params"] < t["params"] and c["latency_ms"] < t["latency_ms"]
        if not eligible:
            assert c["s"] is None and c["error"] is None and c["w"] is None and c["status"] == "ineligible"
            continue
        assert c["status"] == "trained"  # ε = 1 trains all eligible ones
        assert c["s"] == pytest.approx(s_factor(c, t, "latency_ms"))
        assert c["w"] == pytest.approx(c["s"] / c["error"])
        assert c["error"] >= t["error_floor"] - 1e-6
    # ⟨2,2,64,128⟩ has exactly the teacher's parameters: never smaller, so always ineligible.
    same = next(c for c in r["candidates"] if arch_of(c) == Arch(2, 2, 64, 128))
    assert same["params"] == t["params"] and same["status"] == "ineligible"
    assert r["evaluated"] == r["eligible"] == sum(c["status"] == "trained" for c in r["candidates"])


def test_epsilon_one_best_is_argmax_w(exhaustive):
    _, r = exhaustive
    scored = [c for c in r["candidates"] if c["w"] is not None]
    top = max(scored, key=lambda c: (c["w"], -c["params"]))
    assert arch_of(r["best"]) == arch_of(top) and r["best"]["w"] == top["w"]


def test_store_holds_every_training(exhaustive):
    out, r = exhaustive
    rows = trials(out)
    assert len(rows) == r["evaluated"]
    errors = {arch_of(c).key: c["error"] for c in r["candidates"] if c["error"] is not None}
    assert {row[0]: row[2] for row in rows} == errors


def test_csv_png_and_report(exhaustive):
    out, r = exhaustive
    with open(out / "candidates.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == r["space_size"] and list(rows[0]) == list(COLUMNS)
    for row, c in zip(rows, r["candidates"]):
        assert int(row["params"]) == c["params"] and row["status"] == c["status"]
        assert (row["w"] == "") == (c["w"] is None)
        if c["w"] is not None:
            assert float(row["w"]) == pytest.approx(c["w"])
    assert (out / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (out / "report.md").read_text(encoding="utf-8")
    b = r["best"]
    assert f"**Best: ⟨{b['D']},{b['A']},{b['H']},{b['I']}⟩**" in report
    assert sum(line.startswith("| ") and line[2].isdigit() for line in report.splitlines()) == r["space_size"]


def test_best_folder_is_a_loadable_student(exhaustive, bert_teacher):
    """best/ loads as a masked LM of the chosen shape, in the teacher's family, with its tokenizer."""
    out, r = exhaustive
    model = AutoModelForMaskedLM.from_pretrained(out / "best")
    b = r["best"]
    assert type(model).__name__ == "BertForMaskedLM" and model.config.model_type == "bert"
    assert config_arch(model.config) == arch_of(b)
    assert len(model.bert.encoder.layer) == b["D"] and model.config.hidden_size == b["H"]
    assert b["params"] == sum(p.numel() for p in model.base_model.parameters())
    assert b["params_effective"] == b["params"] - sum(p.numel() for p in model.base_model.embeddings.parameters())
    teacher_tok, tok = AutoTokenizer.from_pretrained(bert_teacher), AutoTokenizer.from_pretrained(out / "best")
    assert tok.get_vocab() == teacher_tok.get_vocab()
    assert tok("To be, or not to be")["input_ids"] == teacher_tok("To be, or not to be")["input_ids"]
    assert model.config.vocab_size == len(teacher_tok) and model.config.max_position_embeddings == 64
    meta = json.loads((out / "best" / "bort_extract.json").read_text(encoding="utf-8"))
    assert meta["trained"] is False and meta["best"] == b


def test_rerun_reuses_every_result(exhaustive, extract_args, bert_teacher):
    """The same command again trains nothing: every trial row is unchanged, and so is the answer."""
    out, r = exhaustive
    before = trials(out)
    again = run(extract_args(bert_teacher, out, "--epsilon", "1"))
    assert trials(out) == before
    assert again["best"] == r["best"] and again["candidates"] == r["candidates"]


def test_flops_mode(flops_run):
    """--latency flops: no latency anywhere; S uses FLOPs; one trained representative per interval."""
    out, r = flops_run
    t = r["teacher"]
    assert t["latency_ms"] is None and r["latency_device"] is None
    assert all(c["latency_ms"] is None for c in r["candidates"]) and r["best"]["latency_ms"] is None
    eligible = [c for c in r["candidates"] if c["s"] is not None]
    assert len(eligible) == 14  # everything but ⟨2,2,64,128⟩, as large as T
    for c in eligible:
        assert c["s"] == pytest.approx(s_factor(c, t, "flops"))
    ranked = sorted(eligible, key=lambda c: (-c["s"], arch_of(c).astuple()))
    reps = ranked[::3]
    assert r["intervals"] == r["evaluated"] == len(reps) == 5
    assert {arch_of(c) for c in r["candidates"] if c["status"] == "trained"} == {arch_of(c) for c in reps}
    for c in eligible:
        if c not in reps:
            assert c["status"] == "untrained" and c["error"] is None and c["w"] is None
    assert arch_of(r["best"]) == arch_of(max(reps, key=lambda c: c["w"]))
    assert len(trials(out)) == 5
    assert (out / "pareto.png").stat().st_size > 1000


def test_refine_trains_the_best_interval(tmp_path, bert_teacher, extract_args):
    r = run(extract_args(bert_teacher, tmp_path / "run", "--epsilon", "3", "--latency", "flops", "--refine", "1"))
    eligible = sorted((c for c in r["candidates"] if c["s"] is not None), key=lambda c: (-c["s"], arch_of(c).astuple()))
    parts = [eligible[i : i + 3] for i in range(0, len(eligible), 3)]
    best_part = max(parts, key=lambda p: p[0]["w"])
    expected = {arch_of(p[0]) for p in parts} | {arch_of(c) for c in best_part}
    assert {arch_of(c) for c in r["candidates"] if c["status"] == "trained"} == expected
    assert r["evaluated"] == len(expected) == 5 + 2
    assert r["best"]["w"] == max(c["w"] for c in r["candidates"] if c["w"] is not None)


def test_theta_set_takes_the_minimum(tmp_path, bert_teacher, extract_args):
    """With Θ of two sets every trained ξ has two trials, and ê is the smaller."""
    theta = tmp_path / "theta.yaml"
    theta.write_text("- {lr: 1.0e-3, batch_size: 4}\n- {lr: 3.0e-3, batch_size: 2, warmup: 0.2}\n", encoding="utf-8")
    out = tmp_path / "run"
    r = run(extract_args(bert_teacher, out, "--epsilon", "5", "--latency", "flops", "--theta", str(theta)))
    assert r["thetas"] == ["lr=0.001,batch_size=4,warmup=0.1", "lr=0.003,batch_size=2,warmup=0.2"]
    rows = trials(out)
    assert len(rows) == 2 * r["evaluated"] == 2 * 3
    for c in r["candidates"]:
        if c["status"] == "trained":
            pair = [row[2] for row in rows if row[0] == arch_of(c).key]
            assert len(pair) == 2 and pair[0] != pair[1] and c["error"] == min(pair)


def test_max_params_filters_the_space(tmp_path, bert_teacher, extract_args):
    config = load_teacher(bert_teacher).config
    limit = count_params(config, Arch(2, 2, 32, 64)).total
    expected = {(d, a, h, i) for d in (1, 2) for a in (2, 4) for h in (32, 64) for i in (64, 128) if count_params(config, Arch(d, a, h, i)).total <= limit}
    r = run(extract_args(bert_teacher, tmp_path / "run", "--epsilon", "20", "--latency", "flops", "--max-params", str(limit)))
    assert {arch_of(c).astuple() for c in r["candidates"]} == expected and len(expected) == 6  # H = 32, and D = 1 or I = 64
    assert r["space_size"] == 6 and r["evaluated"] == 1


def test_teacher_without_mlm_head_gets_one(tmp_path, bert_teacher_nohead, extract_args):
    """A teacher saved without an MLM head has one trained first, cached in RUN/teacher_mlm."""
    assert not has_mlm_head(bert_teacher_nohead)
    out = tmp_path / "run"
    args = extract_args(bert_teacher_nohead, out, "--epsilon", "20", "--latency", "flops")
    r = run(args)
    report_file = out / "teacher_mlm" / "bort_teacher.json"
    report = json.loads(report_file.read_text(encoding="utf-8"))
    assert report["config"]["steps"] == 5 and 0.0 <= report["mlm_accuracy"] <= 1.0 and math.isfinite(report["final_loss"])
    assert has_mlm_head(out / "teacher_mlm")
    # The prepared teacher keeps the original encoder weights; only the head is new.
    prepared = load_teacher(out / "teacher_mlm").model
    original = AutoModelForMaskedLM.from_pretrained(bert_teacher_nohead)
    assert torch.equal(prepared.bert.encoder.layer[1].output.dense.weight, original.bert.encoder.layer[1].output.dense.weight)
    assert not original.cls.predictions.bias.any()  # a fresh head's bias is zero; training moved it
    assert prepared.cls.predictions.bias.abs().min() > 0
    assert r["evaluated"] == 1
    # Running again reuses the cached head (not retrained) and every result.
    mtime, rows = report_file.stat().st_mtime_ns, trials(out)
    assert run(args)["best"] == r["best"]
    assert report_file.stat().st_mtime_ns == mtime and trials(out) == rows


def test_roberta_teacher_keeps_its_family(tmp_path, roberta_teacher, bert_teacher, extract_args):
    # RoBERTa's positions start after the padding index: 66 embeddings hold 64 tokens.
    assert load_teacher(roberta_teacher).max_seq_len == 64 == load_teacher(bert_teacher).max_seq_len
    out = tmp_path / "run"
    r = run(extract_args(roberta_teacher, out, "--epsilon", "20", "--latency", "flops"))
    model = AutoModelForMaskedLM.from_pretrained(out / "best")
    assert type(model).__name__ == "RobertaForMaskedLM" and model.config.type_vocab_size == 1
    assert config_arch(model.config) == arch_of(r["best"])
    assert r["best"]["params"] == sum(p.numel() for p in model.base_model.parameters())
    assert AutoTokenizer.from_pretrained(out / "best").get_vocab() == AutoTokenizer.from_pretrained(roberta_teacher).get_vocab()


def test_onnx_int8_latency_measures_the_anchors_and_interpolates_between(tmp_path, bert_teacher, extract_args):
    """î on ONNX Runtime int8: T and each width's shallowest and deepest ξ are exported and timed, D = 2 is their mean."""
    space = tmp_path / "space.yaml"
    space.write_text("D: [1, 2, 3]\nA: [2]\nH: [32, 64]\nI: [64]\n", encoding="utf-8")
    out = tmp_path / "run"
    r = run(extract_args(bert_teacher, out, "--space", str(space), "--epsilon", "20", "--latency-runtime", "onnx-int8"))
    db = sqlite3.connect(out / "bort.sqlite")
    try:
        timed = {row[0]: row[1] for row in db.execute("SELECT arch, latency_ms FROM latency")}
        device = db.execute("SELECT device FROM latency LIMIT 1").fetchone()[0]
    finally:
        db.close()
    assert set(timed) == {Arch(*TEACHER_ARCH).key} | {Arch(d, 2, h, 64).key for d in (1, 3) for h in (32, 64)}
    assert "ONNX Runtime int8" in device
    latency = {arch_of(c): c["latency_ms"] for c in r["candidates"]}
    for h in (32, 64):
        assert latency[Arch(2, 2, h, 64)] == pytest.approx((timed[Arch(1, 2, h, 64).key] + timed[Arch(3, 2, h, 64).key]) / 2)
    assert r["teacher"]["latency_ms"] == pytest.approx(timed[Arch(*TEACHER_ARCH).key])
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "measured latency on ONNX Runtime int8 at batch 1" in report and "the depths between interpolated" in report
    assert not list(out.rglob(".bort-tmp*"))  # the exports were temporaries
