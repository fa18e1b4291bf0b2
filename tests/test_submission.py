"""Leaderboard files in the official formats, and the prediction rules behind them (ReCoRD's cast, MNLI's two files)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from task_files import MNLI_HEADER, mnli_row, tsv

from bort.evaluate import submission
from bort.evaluate.recipe import EvaluateConfig, evaluate
from bort.tasks import heads
from bort.tasks.registry import Example, get_task
from bort.tasks.scoring import predictions, score

E = Example


def _write(task: str, examples: list[Example], preds: list, tmp_path: Path) -> str:
    spec = get_task(task)
    return submission.write_submission(spec, examples, preds, tmp_path / spec.submission).read_text()


def test_glue_tsv_has_index_and_label_names(tmp_path):
    text = _write("glue/rte", [E("0", ("a", "b"), None), E("7", ("c", "d"), None)], [1, 0], tmp_path)
    assert text == "index\tprediction\n0\tnot_entailment\n7\tentailment\n"


def test_stsb_scores_are_clipped_to_the_scale(tmp_path):
    text = _write("glue/stsb", [E(str(i), ("a", "b"), None) for i in range(3)], [-0.4, 2.34567, 5.7], tmp_path)
    assert text.splitlines()[1:] == ["0\t0.000", "1\t2.346", "2\t5.000"]


def test_superglue_labels_have_the_official_json_types(tmp_path):
    boolq = _write("superglue/boolq", [E("0", ("q", "p"), None), E("1", ("q", "p"), None)], [1, 0], tmp_path)
    assert [json.loads(line) for line in boolq.splitlines()] == [{"idx": 0, "label": True}, {"idx": 1, "label": False}]
    cb = _write("superglue/cb", [E("4", ("p", "h"), None)], [2], tmp_path)
    assert json.loads(cb) == {"idx": 4, "label": "neutral"}
    copa = _write("superglue/copa", [E("0", ("p",), None, choices=(("p", "a"), ("p", "b")))], [1], tmp_path)
    assert json.loads(copa) == {"idx": 0, "label": 1}


def test_multirc_is_nested_by_passage_and_question(tmp_path):
    examples = [E("0-0-0", ("p", "q a"), None, group="0-0", candidate="0"), E("0-0-1", ("p", "q b"), None, group="0-0", candidate="1"),
                E("0-1-2", ("p", "q c"), None, group="0-1", candidate="2"), E("1-3-4", ("p", "q d"), None, group="1-3", candidate="4")]
    rows = [json.loads(line) for line in _write("superglue/multirc", examples, [1, 0, 1, 0], tmp_path).splitlines()]
    assert rows == [
        {"idx": 0, "passage": {"questions": [{"idx": 0, "answers": [{"idx": 0, "label": 1}, {"idx": 1, "label": 0}]},
                                             {"idx": 1, "answers": [{"idx": 2, "label": 1}]}]}},
        {"idx": 1, "passage": {"questions": [{"idx": 3, "answers": [{"idx": 4, "label": 0}]}]}},
    ]


def test_record_predicts_the_best_entity_per_query_and_scores_it(tmp_path):
    task = get_task("superglue/record")
    examples = [E("5-0", ("p", "Tom"), "0", group="5", candidate="Tom"), E("5-1", ("p", "Anna"), "1", group="5", candidate="Anna"),
                E("6-0", ("p", "Paris"), "1", group="6", candidate="Paris"), E("6-1", ("p", "Tom"), "0", group="6", candidate="Tom")]
    logits = torch.tensor([[0.0, 2.0], [0.0, 1.0], [0.0, 0.5], [1.0, 0.0]])  # query 5 picks Tom (margin 2 > 1), 6 picks Paris
    preds = predictions(task, examples, logits)
    assert preds == [1, 0, 1, 0]
    assert score(task, examples, preds) == {"record_f1": 0.5, "record_em": 0.5}
    rows = [json.loads(line) for line in _write("superglue/record", examples, preds, tmp_path).splitlines()]
    assert rows == [{"idx": 5, "label": "Tom"}, {"idx": 6, "label": "Paris"}]


def test_race_answers_are_letters_by_question_id(tmp_path):
    ex = [E("high1.txt-0", ("art",), None, choices=(("a", "1"),) * 4), E("high1.txt-1", ("art",), None, choices=(("a", "1"),) * 4)]
    assert json.loads(_write("race/high", ex, [3, 0], tmp_path)) == {"high1.txt-0": "D", "high1.txt-1": "A"}


def test_mnli_test_writes_matched_and_mismatched_files_and_ax_takes_the_mnli_model(tmp_path, bert_teacher):
    mnli = tmp_path / "MNLI"
    mnli.mkdir()
    header = MNLI_HEADER[:-6]  # test files have no label columns
    for split in ("test_matched", "test_mismatched"):
        (mnli / f"{split}.tsv").write_text(tsv(header, *(mnli_row(i, "a b", "c d", None) for i in range(3))), encoding="utf-8")
    (tmp_path / "AX").mkdir()
    (tmp_path / "AX" / "diagnostic.tsv").write_text(tsv(("index", "sentence1", "sentence2"), ("0", "a", "b"), ("1", "c", "d")), encoding="utf-8")
    model = heads.build(bert_teacher, get_task("glue/mnli"), "linear", 64, seed=0)
    heads.stock_copy(model).save_pretrained(tmp_path / "F")
    (tmp_path / "F" / "tokenizer.json").symlink_to(bert_teacher / "tokenizer.json")
    (tmp_path / "F" / "tokenizer_config.json").symlink_to(bert_teacher / "tokenizer_config.json")

    result = evaluate(EvaluateConfig(model=str(tmp_path / "F"), task="glue/mnli", data=mnli, split="test", predictions=tmp_path / "sub"))
    assert sorted(Path(f).name for f in result.files) == ["MNLI-m.tsv", "MNLI-mm.tsv"]
    for name in ("MNLI-m.tsv", "MNLI-mm.tsv"):
        lines = (tmp_path / "sub" / name).read_text().splitlines()
        assert lines[0] == "index\tprediction" and len(lines) == 4
        assert {line.split("\t")[1] for line in lines[1:]} <= {"contradiction", "entailment", "neutral"}
    evaluate(EvaluateConfig(model=str(tmp_path / "F"), task="glue/ax", data=tmp_path / "AX", split="test", predictions=tmp_path / "sub"))
    assert len((tmp_path / "sub" / "AX.tsv").read_text().splitlines()) == 3
