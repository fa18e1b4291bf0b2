"""Selection on data that is not scored (algorithms.md §4d): the held-out slice of the training set, and the order in which
fine-tuning reads the dev split."""

from __future__ import annotations

import pytest
from glue_files import _cfg, write_rte

import bort.finetune.recipe as recipe_mod
from bort.finetune.augment import Augment
from bort.finetune.recipe import finetune
from bort.finetune.selection import hold_out, select_size
from bort.finetune.task_distill import TaskDistill
from bort.tasks.registry import Example
from bort.tasks.source import TaskData


def _examples(labels: list, texts: int = 1) -> list[Example]:
    return [Example(idx=str(i), texts=("a",) * texts, label=label) for i, label in enumerate(labels)]


@pytest.fixture(scope="module")
def rte(tmp_path_factory):
    return write_rte(tmp_path_factory.mktemp("RTE"), n_train=200)


@pytest.fixture(scope="module")
def teacher(tmp_path_factory, bert_teacher, rte):
    """A fine-tuned teacher of the RTE-like task, for task distillation's new inputs."""
    out = tmp_path_factory.mktemp("teacher") / "F"
    finetune(_cfg(bert_teacher, "glue/rte", rte, out, epochs=1))
    return out


def test_the_selection_slice_is_seeded_ordered_and_at_least_a_few_hundred():
    assert [select_size(n, 0.1) for n in (10, 200, 2490, 3668, 8000)] == [2, 40, 300, 367, 800]
    examples = _examples(["x"] * 50)
    train, held = hold_out(examples, 0.1, seed=3)
    assert len(held) == 10 and len(train) == 40 and not set(map(id, train)) & set(map(id, held))
    assert [int(e.idx) for e in held] == sorted(int(e.idx) for e in held) and hold_out(examples, 0.1, seed=3) == (train, held)
    assert hold_out(examples, 0.1, seed=4)[1] != held


def test_grouped_examples_are_held_out_whole():
    """A MultiRC question's answers (one group) go to the slice or to training together, never split."""
    examples = [Example(idx=str(i), texts=("p", "q"), label="True", group=f"q{i // 4}") for i in range(80)]
    train, held = hold_out(examples, 0.1, seed=0)
    assert len(held) == 16 and len(train) == 64  # a fifth of 80, in four whole groups of 4
    assert not {ex.group for ex in train} & {ex.group for ex in held}


@pytest.mark.parametrize("select_on", ["train", "dev"])
def test_the_dev_split_is_read_after_training_unless_it_chooses(tmp_path, bert_teacher, rte, teacher, monkeypatch, select_on):
    """--select-on train: no dev example reaches the run before training ends, not even the new inputs of task distillation
    (algorithms.md §4d): the split is parsed once before (``check``, to refuse bad input), its examples forgotten, and read
    after; --select-on dev reads it first, to choose on."""
    events: list[tuple[str, str]] = []
    real_read, real_check, real_train = TaskData._read, TaskData.check, recipe_mod.train

    def read(self, name):
        events.append(("read", name))
        return real_read(self, name)

    def check(self, name):
        events.append(("check", name))
        return real_check(self, name)

    def train(*args, **kwargs):
        real_train(*args, **kwargs)
        events.append(("trained", ""))

    monkeypatch.setattr(TaskData, "_read", read)
    monkeypatch.setattr(TaskData, "check", check)
    monkeypatch.setattr(recipe_mod, "train", train)
    report = finetune(_cfg(bert_teacher, "glue/rte", rte, tmp_path / "F", epochs=1, select_on=select_on,
                           distill=TaskDistill(teacher=str(teacher)), augment=Augment(per_example=1, transform="dropout")))
    trained = events.index(("trained", ""))
    before, after = events[:trained], events[trained + 1:]
    if select_on == "train":  # parsed by check (its one read), then read once after training
        assert before.count(("read", "dev")) == 1 and before[before.index(("read", "dev")) - 1] == ("check", "dev")
        assert after.count(("read", "dev")) == 1
    else:
        assert before.count(("read", "dev")) == 1 and ("check", "dev") not in events and ("read", "dev") not in after
    assert report.select_on == select_on and report.select_examples == (40 if select_on == "train" else 48)
    assert report.augmented > 0
