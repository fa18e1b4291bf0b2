"""benchmarks/shape_rank.py: each model's share kept per task from its scoreboard results, ê of each shape from compress's
extraction surrogate (read back where known), and Spearman's ρ of each ranking against the share kept."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import shape_rank  # noqa: E402

from bort.arch import Arch  # noqa: E402
from bort.models.loading import read_config  # noqa: E402
from bort.surrogates.params import count_params  # noqa: E402


def _result(board: Path, job: str, model: str, seed: int, arch: str, kob: float | None) -> None:
    path = board / job / f"{model}-seed{seed}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"job": job, "model": model, "seed": seed, "arch": arch, "kept_over_baseline": kob}))


def test_a_models_share_kept_is_the_mean_over_its_seeds_per_task(tmp_path):
    _result(tmp_path, "mrpc", "a", 0, "2,4,64,64", 0.3)
    _result(tmp_path, "mrpc", "a", 1, "2,4,64,64", 0.5)
    _result(tmp_path, "cola", "a", 0, "2,4,64,64", 0.6)
    _result(tmp_path, "rte", "a", 0, "2,4,64,64", None)  # the teacher at chance: left out
    _result(tmp_path, "mrpc", "ab", 0, "1,4,64,64", 0.9)  # another model whose name starts alike
    assert shape_rank.downstream(tmp_path, "a") == ("2,4,64,64", {"cola": 0.6, "mrpc": pytest.approx(0.4)})
    _result(tmp_path, "cola", "a", 1, "1,4,64,64", 0.6)
    with pytest.raises(SystemExit, match="several shapes"):
        shape_rank.downstream(tmp_path, "a")
    with pytest.raises(SystemExit, match="no scoreboard result"):
        shape_rank.downstream(tmp_path, "none")


def test_rankings_and_their_rho_end_to_end(tmp_path, monkeypatch, bert_teacher_nohead, corpus_file):
    """Three shapes whose share kept grows with their size: p̂ ranks them exactly (ρ 1); ê is computed for each shape (positive,
    finite), and a re-run reads it back instead of training again."""
    from conftest import SEQ_LEN

    board = tmp_path / "board"
    shapes = {"s1": ("1,4,64,32", 0.2), "s2": ("1,4,64,128", 0.5), "s3": ("2,4,64,128", 0.7)}
    for model, (arch, kob) in shapes.items():
        for job in ("mrpc", "cola"):
            _result(board, job, model, 0, arch, kob)
    monkeypatch.setattr(shape_rank, "PATH", tmp_path / "rank.json")
    argv = ["shape_rank.py", "--models", "s1", "s2", "s3", "--variants", "teacher:2", "--teacher", str(bert_teacher_nohead),
            "--corpus", str(corpus_file), "--seq-len", str(SEQ_LEN), "--board", str(board)]
    monkeypatch.setattr(sys, "argv", argv)
    shape_rank.main()
    doc = json.loads((tmp_path / "rank.json").read_text())
    assert doc["tasks"] == ["cola", "mrpc"] and doc["rho"]["p̂ alone"] == pytest.approx({"cola": 1.0, "mrpc": 1.0, "pooled": 1.0})
    config = read_config(bert_teacher_nohead)
    by = {m["model"]: m for m in doc["models"]}
    assert by["s2"]["params"] == count_params(config, Arch.parse("1,4,64,128")).total and by["s3"]["pooled"] == pytest.approx(0.7)
    e = doc["errors"]["teacher:2"]
    assert set(e) == {a for a, _ in shapes.values()} and all(0 < v < float("inf") for v in e.values())
    assert min(abs(doc["rho"]["ê teacher:2"]["pooled"] - r) for r in (-1.0, -0.5, 0.5, 1.0)) < 1e-9  # 3 distinct ranks
    # read back: a known ê is not computed again
    planted = {**doc, "errors": {"teacher:2": {**e, "1,4,64,32": 123.0}}}
    (tmp_path / "rank.json").write_text(json.dumps(planted))
    shape_rank.main()
    assert json.loads((tmp_path / "rank.json").read_text())["errors"]["teacher:2"]["1,4,64,32"] == 123.0
