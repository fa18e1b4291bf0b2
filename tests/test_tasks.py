"""The task registry and the readers of the official GLUE, SuperGLUE and RACE files, on tiny fixtures written to tmp dirs."""

from __future__ import annotations

from pathlib import Path

import pytest
from task_files import CASES, STSB_HEADER, E, jsonl, race_file, tsv, write_files

from bort.errors import BortError
from bort.tasks.registry import TASKS, Example, TaskSpec, get_task, read_split

GLUE_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "glue"


def test_every_task_has_a_fixture() -> None:
    assert {task for task, *_ in CASES} == set(TASKS)


@pytest.mark.parametrize(("task", "split", "files", "expected"), CASES, ids=[f"{t}:{s}" for t, s, *_ in CASES])
def test_reads_official_format(tmp_path: Path, task: str, split: str, files: dict[str, str], expected: list[Example]) -> None:
    assert read_split(task, write_files(tmp_path, files), split) == expected


def test_registry() -> None:
    for name, spec in TASKS.items():
        assert spec.name == name and get_task(name) is spec
        assert spec.kind in ("classification", "regression", "multiple_choice")
        assert (spec.kind == "regression") == (spec.labels == ())
        assert spec.metrics and spec.submission
    assert get_task("glue/mnli").dev_splits == ("dev_matched", "dev_mismatched")
    assert get_task("glue/ax").labels == get_task("glue/mnli").labels and get_task("glue/ax").dev_splits == ()
    assert get_task("superglue/axg").metrics == ("gender_parity", "accuracy")
    assert get_task("race/high").submission == "RACE-high.json"
    assert isinstance(get_task("glue/rte"), TaskSpec)


def test_unknown_task_lists_names() -> None:
    with pytest.raises(BortError, match="glue/rte.*race/high"):
        get_task("glue/rtee")


def test_mnli_reads_columns_by_header_name_and_dev_means_matched(tmp_path: Path) -> None:
    header = ["gold_label", "sentence2", "index", "sentence1"]
    write_files(tmp_path, {"dev_matched.tsv": tsv(header, ("entailment", "B.", "12", "A."))})
    assert read_split("glue/mnli", tmp_path, "dev") == [E("12", ("A.", "B."), "entailment")]


def test_ax_reads_either_name_and_is_test_only(tmp_path: Path) -> None:
    write_files(tmp_path, {"AX.tsv": tsv(("index", "sentence1", "sentence2"), ("0", "A.", "B."))})
    assert read_split("glue/ax", tmp_path, "test") == [E("0", ("A.", "B."), None)]
    with pytest.raises(BortError, match="no split 'dev'.*test"):
        read_split("glue/ax", tmp_path, "dev")


def _raises(task: str, folder: Path, split: str, *parts: str) -> str:
    with pytest.raises(BortError) as info:
        read_split(task, folder, split)
    message = str(info.value)
    assert "\n" not in message
    for part in parts:
        assert part in message, message
    return message


def test_missing_split_file_names_the_expected_path(tmp_path: Path) -> None:
    _raises("glue/rte", tmp_path, "dev", str(tmp_path / "dev.tsv"))
    _raises("superglue/cb", tmp_path, "dev", str(tmp_path / "val.jsonl"))
    _raises("race/middle", tmp_path, "dev", str(tmp_path / "dev" / "middle"))
    _raises("glue/rte", tmp_path / "nope", "dev", "does not exist")
    _raises("glue/rte", tmp_path, "validation", "no split 'validation'")


def test_wrong_column_count(tmp_path: Path) -> None:
    write_files(tmp_path, {"dev.tsv": tsv(("index", "sentence1", "sentence2", "label"), ("0", "A.", "B.", "entailment"), ("1", "A.", "entailment"))})
    _raises("glue/rte", tmp_path, "dev", "dev.tsv:3:", "3 tab-separated columns, expected 4")
    write_files(tmp_path, {"train.tsv": "gj04\t1\tA sentence.\n"})  # CoLA has no header: 4 columns
    _raises("glue/cola", tmp_path, "train", "train.tsv:1:", "expected 4")


def test_unknown_label_lists_the_allowed_ones(tmp_path: Path) -> None:
    write_files(tmp_path, {"dev.tsv": tsv(("index", "sentence1", "sentence2", "label"), ("0", "A.", "B.", "maybe"))})
    _raises("glue/rte", tmp_path, "dev", "dev.tsv:2:", "'maybe'", "entailment, not_entailment")
    write_files(
        tmp_path,
        {
            "train.jsonl": jsonl(
                {"premise": "A.", "hypothesis": "B.", "label": "entailment", "idx": 0}, {"premise": "A.", "hypothesis": "B.", "label": "yes", "idx": 1}
            )
        },
    )
    _raises("superglue/cb", tmp_path, "train", "train.jsonl:2:", "entailment, contradiction, neutral")
    write_files(tmp_path, {"train/high/h1.txt": race_file("high1.txt", "Art.", ["Q?"], [["a", "b", "c", "d"]], ["E"])})
    _raises("race/high", tmp_path, "train", "h1.txt:1:", "A, B, C, D")
    write_files(tmp_path, {"dev.tsv": tsv(STSB_HEADER, ("0", "g", "f", "y", "0", "n", "n", "A.", "B.", "high"))})
    _raises("glue/stsb", tmp_path, "dev", "dev.tsv:2:", "not a number")


def test_empty_files(tmp_path: Path) -> None:
    write_files(tmp_path, {"dev.tsv": tsv(("index", "sentence1", "sentence2", "label"))})
    _raises("glue/rte", tmp_path, "dev", "dev.tsv:1:", "no examples")
    write_files(tmp_path, {"train.tsv": ""})
    _raises("glue/cola", tmp_path, "train", "train.tsv:1:", "no examples")
    write_files(tmp_path, {"val.jsonl": "\n"})
    _raises("superglue/boolq", tmp_path, "dev", "val.jsonl:1:", "no examples")
    write_files(tmp_path, {"dev/middle/m1.txt": race_file("middle1.txt", "Art.", [], [], [])})
    _raises("race/middle", tmp_path, "dev", "m1.txt:1:", "no examples")
    (tmp_path / "test" / "middle").mkdir(parents=True)
    _raises("race/middle", tmp_path, "test", "holds no *.txt")


def test_malformed_json(tmp_path: Path) -> None:
    write_files(tmp_path, {"val.jsonl": jsonl({"premise": "A.", "hypothesis": "B.", "label": "neutral", "idx": 0}) + '{"premise": "A.", "hyp\n'})
    _raises("superglue/cb", tmp_path, "dev", "val.jsonl:2:", "malformed JSON")
    write_files(tmp_path, {"train/middle/m1.txt": '{"article": "x",\n "questions": [}'})
    _raises("race/middle", tmp_path, "train", "m1.txt:2:", "malformed JSON")


def test_missing_fields(tmp_path: Path) -> None:
    write_files(tmp_path, {"train.jsonl": jsonl({"premise": "A.", "hypothesis": "B.", "idx": 0})})  # train rows need a label
    _raises("superglue/rte", tmp_path, "train", "train.jsonl:1:", "missing field 'label'")
    write_files(tmp_path, {"train.tsv": tsv(("index", "sentence1", "label"), ("0", "A.", "1"))})
    _raises("glue/wnli", tmp_path, "train", "train.tsv:1:", "sentence2")


def test_multirc_test_split_has_no_labels(tmp_path: Path) -> None:
    passage = {"text": "P.", "questions": [{"question": "Q?", "idx": 3, "answers": [{"text": "A", "idx": 7}]}]}
    write_files(tmp_path, {"test.jsonl": jsonl({"idx": 2, "passage": passage})})
    assert read_split(get_task("superglue/multirc"), tmp_path, "test") == [E("2-3-7", ("P.", "Q? A"), None, group="2-3", candidate="7")]


REAL_COUNTS = {
    ("glue/cola", "CoLA"): {"train": 8551, "dev": 1043},
    ("glue/sst2", "SST-2"): {"train": 67349, "dev": 872},
    ("glue/mrpc", "MRPC"): {"train": 3668, "dev": 408, "test": 1725},
    ("glue/stsb", "STS-B"): {"train": 5749, "dev": 1500},
    ("glue/rte", "RTE"): {"train": 2490, "dev": 277, "test": 3000},
}


@pytest.mark.skipif(not GLUE_DATA.is_dir(), reason=f"the real GLUE data is not at {GLUE_DATA}")
def test_real_glue_row_counts() -> None:
    for (task, folder), counts in REAL_COUNTS.items():
        for split, n in counts.items():
            examples = read_split(task, GLUE_DATA / folder, split)
            assert len(examples) == n, (task, split)
            assert len({e.idx for e in examples}) == n
            assert all(e.label is None for e in examples) if split == "test" else all(e.label is not None for e in examples)
