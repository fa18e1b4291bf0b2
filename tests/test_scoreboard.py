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
    assert plain.finetune.group_by_length is False and scoreboard.recipe(["--group-by-length"]).finetune.group_by_length is True
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
