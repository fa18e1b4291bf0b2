"""GLUE and SuperGLUE label names and order as Hugging Face ``datasets`` has them, the official files read into them,
the leaderboard files written back in the leaderboards' labels, and ``--task`` without ``--data`` through ``datasets``."""

from __future__ import annotations

import csv
import json
import sys
import types
from pathlib import Path

import pytest

from bort.cli import main
from bort.errors import BortError
from bort.evaluate import submission
from bort.tasks.readers import hub
from bort.tasks.registry import TASKS, Example, get_task, read_split
from bort.tasks.source import OwnData, open_task

GLUE_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "glue"

# The ClassLabel names of `datasets`' glue and super_glue configurations, in id order.
DATASETS_NAMES = {
    "glue/cola": ("unacceptable", "acceptable"),
    "glue/sst2": ("negative", "positive"),
    "glue/mrpc": ("not_equivalent", "equivalent"),
    "glue/qqp": ("not_duplicate", "duplicate"),
    "glue/mnli": ("entailment", "neutral", "contradiction"),
    "glue/qnli": ("entailment", "not_entailment"),
    "glue/rte": ("entailment", "not_entailment"),
    "glue/wnli": ("not_entailment", "entailment"),
    "glue/ax": ("entailment", "neutral", "contradiction"),
    "superglue/boolq": ("False", "True"),
    "superglue/cb": ("entailment", "contradiction", "neutral"),
    "superglue/copa": ("choice1", "choice2"),
    "superglue/multirc": ("False", "True"),
    "superglue/rte": ("entailment", "not_entailment"),
    "superglue/wic": ("False", "True"),
    "superglue/wsc": ("False", "True"),
    "superglue/axb": ("entailment", "not_entailment"),
    "superglue/axg": ("entailment", "not_entailment"),
}


def test_label_names_and_order_are_those_of_datasets():
    assert {name: TASKS[name].labels for name in DATASETS_NAMES} == DATASETS_NAMES


@pytest.mark.skipif(not (GLUE_DATA / "SST-2" / "dev.tsv").is_file(), reason="needs the shared GLUE data")
@pytest.mark.parametrize(("task", "folder", "column", "official"), [("glue/sst2", "SST-2", 1, ("0", "1")), ("glue/cola", "CoLA", 1, ("0", "1"))])
def test_official_files_read_into_names_and_submit_back_as_the_leaderboard_labels(tmp_path, task, folder, column, official):
    """The raw labels of the official dev file (read here with csv) ↔ the names, and a submission of the gold labels gives back the raw ones."""
    spec = get_task(task)
    examples = read_split(spec, GLUE_DATA / folder, "dev")
    with (GLUE_DATA / folder / "dev.tsv").open(encoding="utf-8") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    raw = [r[column] for r in (rows[1:] if task == "glue/sst2" else rows)]  # CoLA's files have no header
    assert [ex.label for ex in examples] == [spec.labels[official.index(r)] for r in raw]
    path = submission.write_submission(spec, examples, [spec.labels.index(ex.label) for ex in examples], tmp_path / spec.submission)
    written = list(csv.reader(path.open(encoding="utf-8"), delimiter="\t"))
    assert written[0] == ["index", "prediction"] and [r[1] for r in written[1:]] == raw


@pytest.mark.parametrize(("task", "expected"), [("glue/sst2", ["1", "0"]), ("glue/mrpc", ["1", "0"]), ("glue/qqp", ["1", "0"]),
                                                ("glue/wnli", ["1", "0"]), ("glue/rte", ["not_entailment", "entailment"]),
                                                ("glue/qnli", ["not_entailment", "entailment"]), ("glue/mnli", ["neutral", "entailment"])])
def test_glue_submissions_keep_the_leaderboard_labels(tmp_path, task, expected):
    spec = get_task(task)
    examples = [Example("0", ("a", "b"), None), Example("1", ("c", "d"), None)]
    text = submission.write_submission(spec, examples, [1, 0], tmp_path / spec.submission).read_text()
    assert text == "index\tprediction\n" + f"0\t{expected[0]}\n1\t{expected[1]}\n"


def test_superglue_submissions_keep_their_json_labels(tmp_path):
    cb, boolq = get_task("superglue/cb"), get_task("superglue/boolq")
    ex = [Example("0", ("p", "h"), None), Example("1", ("p", "h"), None), Example("2", ("p", "h"), None)]
    rows = [json.loads(line) for line in submission.write_submission(cb, ex, [0, 1, 2], tmp_path / "CB.jsonl").read_text().splitlines()]
    assert [r["label"] for r in rows] == ["entailment", "contradiction", "neutral"]
    rows = [json.loads(line) for line in submission.write_submission(boolq, ex[:2], [1, 0], tmp_path / "BoolQ.jsonl").read_text().splitlines()]
    assert [r["label"] for r in rows] == [True, False]


# ------------------------------------------------------------------ --task without --data: the Hub, through datasets


@pytest.fixture
def fake_datasets(monkeypatch):
    """A stand-in ``datasets`` whose ``load_dataset`` serves ``module.tables[(dataset, config, split)]`` or raises ``module.error``."""
    module = types.ModuleType("datasets")
    module.tables, module.error, module.calls = {}, None, []

    def load_dataset(path, name, split):
        module.calls.append((path, name, split))
        if module.error is not None:
            raise module.error
        return module.tables[(path, name, split)]

    module.load_dataset = load_dataset
    monkeypatch.setitem(sys.modules, "datasets", module)
    return module


def test_hub_rows_become_examples_with_the_label_names(fake_datasets):
    fake_datasets.tables[("nyu-mll/glue", "sst2", "validation")] = [{"sentence": "good", "label": 1, "idx": 0}, {"sentence": "bad", "label": 0, "idx": 1}]
    fake_datasets.tables[("nyu-mll/glue", "sst2", "test")] = [{"sentence": "meh", "label": -1, "idx": 0}]
    fake_datasets.tables[("nyu-mll/glue", "mnli", "validation_mismatched")] = [{"premise": "p", "hypothesis": "h", "label": 2, "idx": 4}]
    fake_datasets.tables[("aps/super_glue", "boolq", "train")] = [{"question": "q", "passage": "p", "label": 1, "idx": 3}]
    fake_datasets.tables[("aps/super_glue", "copa", "validation")] = [
        {"premise": "P", "choice1": "a", "choice2": "b", "question": "cause", "label": 1, "idx": 0}]
    data = open_task("glue/sst2", None, OwnData())
    assert data.split("dev") == [Example("0", ("good",), "positive"), Example("1", ("bad",), "negative")]
    assert data.split("test") == [Example("0", ("meh",), None)]
    assert hub.read(get_task("glue/mnli"), "dev_mismatched") == [Example("4", ("p", "h"), "contradiction")]
    assert hub.read(get_task("superglue/boolq"), "train") == [Example("3", ("q", "p"), "True")]
    assert hub.read(get_task("superglue/copa"), "dev")[0].label == "choice2"
    with pytest.raises(BortError, match="superglue/record from its official download only: pass --data"):
        hub.read(get_task("superglue/record"), "train")


def test_offline_hub_is_one_line_naming_the_fix(fake_datasets, tmp_path, bert_teacher, capsys):
    fake_datasets.error = ConnectionError("Couldn't reach 'nyu-mll/glue' on the Hub (LocalEntryNotFoundError)\nmore detail")
    assert main(["finetune", "--model", str(bert_teacher), "--task", "glue/rte", "--out", str(tmp_path / "F"), "--steps", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["bort: error: cannot load glue/rte from the Hugging Face Hub (Couldn't reach 'nyu-mll/glue' on the Hub "
                   "(LocalEntryNotFoundError)): offline, pass --data with the task's folder of the official download, or go online"]
    assert fake_datasets.calls == [("nyu-mll/glue", "rte", "train")]


def test_missing_datasets_names_the_extra(monkeypatch, tmp_path, bert_teacher, capsys):
    monkeypatch.setitem(sys.modules, "datasets", None)  # import datasets → ImportError
    assert main(["finetune", "--model", str(bert_teacher), "--task", "glue/rte", "--out", str(tmp_path / "F"), "--steps", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install 'bort[hub]'" in err[0] and "--data" in err[0]


def test_real_datasets_offline_is_one_line(monkeypatch):
    datasets = pytest.importorskip("datasets")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True, raising=False)
    with pytest.raises(BortError, match="cannot load glue/rte from the Hugging Face Hub .*pass --data"):
        hub.read(get_task("glue/rte"), "train")
