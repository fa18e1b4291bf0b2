"""One's own data (issue 17): a CSV task and a JSON-lines task end to end (finetune, evaluate, predict), their bad rows,
Agora and task distillation on them, the columns and labels the folder records, and the tokenizer's ``model_max_length``."""

from __future__ import annotations

import csv
import io
import json
import random
from pathlib import Path

import pytest

from bort.cli import main
from bort.finetune.recipe import FinetuneResult
from bort.tasks import metrics

WORDS = "the a dog bird sat ran on mat log tree big small".split()
RUN = ["--batch-size", "16", "--lr", "1e-3", "--patience", "0", "--no-progress", "--bf16", "off", "--device", "cpu"]


def _sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def write_csv_task(folder: Path, seed: int = 0) -> Path:
    """Pairs in CSV (quoted commas in the texts): the verdict is "no" exactly when the hypothesis ends with "not"."""
    rng = random.Random(seed)

    def write(name: str, n: int, labelled: bool) -> None:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["id", "premise", "hypothesis"] + (["verdict"] if labelled else []))
        for i in range(n):
            neg = rng.random() < 0.5
            w.writerow([f"r{i}", f"{_sentence(rng, 4)}, {_sentence(rng, 4)}", _sentence(rng, 4) + (" not" if neg else "")]
                       + ([("no" if neg else "yes")] if labelled else []))
        (folder / name).write_text(buf.getvalue(), encoding="utf-8")

    folder.mkdir(parents=True, exist_ok=True)
    write("train.csv", 200, True)  # 160 train, 40 held out to choose on
    write("dev.csv", 48, True)
    write("test.csv", 20, False)
    return folder


TOPICS = {"cat": "animals", "red": "colours", "house": "places"}


def write_jsonl_task(folder: Path, seed: int = 0) -> Path:
    """Single texts in JSON lines with three labels: the topic is that of the one key word in the text."""
    rng = random.Random(seed)

    def write(name: str, n: int) -> None:
        rows = []
        for i in range(n):
            word = rng.choice(list(TOPICS))
            words = [rng.choice(WORDS) for _ in range(6)]
            words.insert(rng.randrange(7), word)
            rows.append({"body": " ".join(words), "topic": TOPICS[word]})
        (folder / name).write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")

    folder.mkdir(parents=True, exist_ok=True)
    write("train.jsonl", 190)  # 152 train, 38 held out to choose on
    write("dev.jsonl", 45)
    return folder


def _json_out(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def _refused(capsys, argv: list) -> str:
    """The one error line of a refused command."""
    assert main([str(a) for a in argv]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bort: error: "), lines
    return lines[0]


@pytest.fixture(scope="module")
def csv_data(tmp_path_factory) -> Path:
    return write_csv_task(tmp_path_factory.mktemp("csv"))


@pytest.fixture(scope="module")
def csv_run(tmp_path_factory, bert_teacher, csv_data) -> Path:
    out = tmp_path_factory.mktemp("csv_run") / "F"
    d = csv_data
    assert main(["finetune", "--model", str(bert_teacher), "--train-file", str(d / "train.csv"), "--validation-file", str(d / "dev.csv"),
                 "--test-file", str(d / "test.csv"), "--text-columns", "premise,hypothesis", "--label-column", "verdict", "--out", str(out),
                 "--epochs", "10", "--max-seq-len", "32", *RUN]) == 0  # 32: not the tokenizer's own 64, so model_max_length is tested
    return out


def _gold(path: Path, column: str) -> list[str]:
    if path.suffix == ".csv":
        return [row[column] for row in csv.DictReader(path.open(encoding="utf-8"))]
    return [json.loads(line)[column] for line in path.read_text().splitlines()]


# ------------------------------------------------------------------ CSV, end to end


def test_csv_task_trains_records_its_columns_and_predicts_the_test_file(csv_run, csv_data):
    config = json.loads((csv_run / "model" / "config.json").read_text())
    assert config["id2label"] == {"0": "no", "1": "yes"} and config["label2id"] == {"no": 0, "yes": 1}
    assert (config["bort_text_columns"], config["bort_label_column"], config["bort_task"]) == (["premise", "hypothesis"], "verdict", "own/train")
    report = FinetuneResult.read(csv_run / "finetune.json")
    assert report.labels == ["no", "yes"] and report.task == "own/train"
    assert set(report.dev) == {"accuracy"} and report.dev["accuracy"] > 0.8  # learnt the rule; chance is about 0.5
    rows = list(csv.DictReader((csv_run / "predictions" / "predictions.csv").open(encoding="utf-8")))
    assert [r["idx"] for r in rows] == [f"r{i}" for i in range(20)] and {r["label"] for r in rows} <= {"no", "yes"}
    tokenizer_config = json.loads((csv_run / "model" / "tokenizer_config.json").read_text())
    assert tokenizer_config["model_max_length"] == config["bort_max_seq_len"] == 32


def test_csv_task_evaluates_and_predicts_without_the_column_flags(csv_run, csv_data, tmp_path, capsys):
    assert main(["evaluate", "--model", str(csv_run), "--validation-file", str(csv_data / "dev.csv"), "--batch-size", "16"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out) == json.loads((csv_run / "eval.json").read_text())["metrics"]
    assert "evaluate dev:" in captured.err and "0/3 [" in captured.err  # the progress bar over the 48 examples' 3 batches
    assert main(["evaluate", "--model", str(csv_run), "--validation-file", str(csv_data / "dev.csv"), "--no-progress"]) == 0
    assert capsys.readouterr().err == ""
    assert main(["predict", "--model", str(csv_run), "--input", str(csv_data / "dev.csv"), "--output-format", "csv"]) == 0
    captured = capsys.readouterr()
    rows = list(csv.DictReader(io.StringIO(captured.out)))
    gold = _gold(csv_data / "dev.csv", "verdict")
    accuracy = metrics.accuracy([r["label"] for r in rows], gold)  # scored here from the labels predict wrote
    assert len(rows) == 48 and accuracy == pytest.approx(json.loads((csv_run / "eval.json").read_text())["metrics"]["accuracy"])
    assert json.loads(captured.err.strip().splitlines()[-1])["metrics"]["accuracy"] == pytest.approx(accuracy)
    # The test split: evaluate writes what finetune wrote; an ONNX export predicts the same labels from the same columns.
    assert main(["evaluate", "--model", str(csv_run), "--test-file", str(csv_data / "test.csv"), "--split", "test",
                 "--predictions", str(tmp_path / "test.csv")]) == 0
    assert (tmp_path / "test.csv").read_text() == (csv_run / "predictions" / "predictions.csv").read_text()
    capsys.readouterr()
    assert main(["export", "--model", str(csv_run), "--out", str(tmp_path / "onnx"), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["predict", "--model", str(tmp_path / "onnx"), "--input", str(csv_data / "dev.csv"), "--output-format", "tsv"]) == 0
    exported = list(csv.DictReader(io.StringIO(capsys.readouterr().out), delimiter="\t"))
    assert [r["label"] for r in exported] == [r["label"] for r in rows] and [r["idx"] for r in exported] == [f"r{i}" for i in range(48)]


@pytest.mark.parametrize("select_on", ["dev", "train"])
def test_a_labelled_test_file_is_the_scored_split_when_the_validation_file_chooses(tmp_path, bert_teacher, csv_data, capsys, select_on):
    """--select-on dev chooses on the validation file, so the labelled --test-file is what eval.json scores, with its own
    baseline; under --select-on train the validation file is scored and the test file's metrics sit beside it."""
    test = write_csv_task(tmp_path / "other", seed=1) / "dev.csv"  # labelled rows the run never sees otherwise
    out = tmp_path / "F"
    assert main(["finetune", "--model", str(bert_teacher), "--train-file", str(csv_data / "train.csv"), "--validation-file",
                 str(csv_data / "dev.csv"), "--test-file", str(test), "--text-columns", "premise,hypothesis", "--label-column", "verdict",
                 "--out", str(out), "--epochs", "2", "--max-seq-len", "32", "--select-on", select_on, *RUN]) == 0
    capsys.readouterr()
    report, scored = FinetuneResult.read(out / "finetune.json"), json.loads((out / "eval.json").read_text())
    assert main(["evaluate", "--model", str(out), "--test-file", str(test), "--split", "test", "--predictions", str(tmp_path / "p.csv")]) == 0
    assert report.test == _json_out(capsys)  # the test file's metrics, as `bort evaluate` scores them
    majority = max(("no", "yes"), key=_gold(csv_data / "train.csv", "verdict").count)
    if select_on == "dev":
        gold = _gold(test, "verdict")
        assert report.scored == scored["split"] == "test" and scored["metrics"] == report.test
        assert scored["baseline"] == {"accuracy": pytest.approx(gold.count(majority) / len(gold))}
    else:
        gold = _gold(csv_data / "dev.csv", "verdict")
        assert report.scored == scored["split"] == "dev" and scored["metrics"] == report.dev
        assert scored["baseline"] == {"accuracy": pytest.approx(gold.count(majority) / len(gold))}


def test_csv_bad_rows_are_named_by_file_and_line(tmp_path, bert_teacher, csv_data, csv_run, capsys):
    lines = (csv_data / "train.csv").read_text().splitlines()
    cases = {
        "empty-text": (3, 'r1,"",big not,no', "empty text in column 'premise'"),
        "bad-label": (4, "r2,a dog,big,maybe", "label 'maybe' is not one of no, yes"),  # in the validation file: unknown to training
        "short": (2, "r0,a dog", "2 columns, the header has 4"),
    }
    for name, (line, row, message) in cases.items():
        bad = tmp_path / f"{name}.csv"
        bad.write_text("\n".join(lines[: line - 1] + [row] + lines[line:]) + "\n", encoding="utf-8")
        train, dev = (csv_data / "train.csv", bad) if name == "bad-label" else (bad, csv_data / "dev.csv")
        err = _refused(capsys, ["finetune", "--model", bert_teacher, "--train-file", train, "--validation-file", dev, "--text-columns",
                                "premise,hypothesis", "--label-column", "verdict", "--out", tmp_path / name, "--steps", "1"])
        assert f"{bad}:{line}: {message}" in err
        assert not (tmp_path / name).exists() or not (tmp_path / name / "config.json").exists()
    err = _refused(capsys, ["evaluate", "--model", csv_run, "--validation-file", csv_data / "dev.csv", "--label-column", "nope"])
    assert f"{csv_data / 'dev.csv'}:2: no column 'nope'" in err


# ------------------------------------------------------------------ JSON lines, end to end


def test_jsonl_task_end_to_end_with_three_labels(tmp_path, bert_teacher, capsys):
    d = write_jsonl_task(tmp_path / "data")
    out = tmp_path / "F"
    assert main(["finetune", "--model", str(bert_teacher), "--train-file", str(d / "train.jsonl"), "--validation-file", str(d / "dev.jsonl"),
                 "--text-columns", "body", "--label-column", "topic", "--out", str(out), "--epochs", "6", "--max-seq-len", "64", *RUN]) == 0
    dev = _json_out(capsys)["dev"]
    config = json.loads((out / "model" / "config.json").read_text())
    assert config["id2label"] == {"0": "animals", "1": "colours", "2": "places"}  # sorted, whatever the order in the file
    assert set(dev) == {"accuracy", "macro_f1"} and dev["accuracy"] > 0.7  # chance is about 1/3
    assert main(["evaluate", "--model", str(out), "--validation-file", str(d / "dev.jsonl")]) == 0
    assert _json_out(capsys) == dev
    assert main(["predict", "--model", str(out), "--input", str(d / "dev.jsonl")]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    gold = _gold(d / "dev.jsonl", "topic")
    predicted = [r["label"] for r in rows]
    assert metrics.accuracy(predicted, gold) == pytest.approx(dev["accuracy"])
    assert metrics.macro_f1(predicted, gold) == pytest.approx(dev["macro_f1"])

    bad = tmp_path / "bad.jsonl"
    good = (d / "train.jsonl").read_text().splitlines()
    for n, row, message in [(4, '{"body": "a cat", "topic": ', "malformed JSON"), (2, '{"text": "a cat", "topic": "animals"}', "no column 'body'"),
                            (3, '{"body": "   ", "topic": "animals"}', "empty text in column 'body'")]:
        bad.write_text("\n".join(good[: n - 1] + [row] + good[n:]) + "\n", encoding="utf-8")
        err = _refused(capsys, ["finetune", "--model", bert_teacher, "--train-file", bad, "--validation-file", d / "dev.jsonl", "--text-columns",
                                "body", "--label-column", "topic", "--out", tmp_path / "G", "--steps", "1"])
        assert f"{bad}:{n}: {message}" in err


def test_jsonl_regression_scores_pearson_and_spearman(tmp_path, bert_teacher, capsys):
    rng = random.Random(0)
    rows = [{"a": _sentence(rng, 4), "b": " ".join(["big"] * k + ["dog"] * (5 - k)), "score": k} for k in (rng.randint(0, 5) for _ in range(64))]
    d = tmp_path / "data"
    d.mkdir()
    (d / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:48]), encoding="utf-8")
    (d / "dev.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[48:]), encoding="utf-8")
    out = tmp_path / "F"
    common = ["--model", bert_teacher, "--train-file", d / "train.jsonl", "--validation-file", d / "dev.jsonl", "--text-columns", "a,b",
              "--label-column", "score", "--regression"]
    assert main([str(a) for a in ["finetune", *common, "--out", out, "--steps", "4", "--max-seq-len", "64", *RUN]]) == 0
    dev = _json_out(capsys)["dev"]
    config = json.loads((out / "model" / "config.json").read_text())
    assert set(dev) == {"pearson", "spearman"} and config["problem_type"] == "regression" and len(config["id2label"]) == 1
    assert main(["predict", "--model", str(out), "--input", str(d / "dev.jsonl")]) == 0
    scores = [json.loads(line)["score"] for line in capsys.readouterr().out.splitlines()]
    gold = [r["score"] for r in rows[48:]]
    assert metrics.pearson(scores, gold) == pytest.approx(dev["pearson"], abs=1e-4)
    assert metrics.spearman(scores, gold) == pytest.approx(dev["spearman"], abs=1e-4)
    (d / "bad.jsonl").write_text('{"a": "x", "b": "y", "score": 1}\n{"a": "x", "b": "y", "score": "high"}\n', encoding="utf-8")
    err = _refused(capsys, ["finetune", *common[:3], d / "bad.jsonl", *common[4:], "--out", tmp_path / "G", "--steps", "1"])
    assert f"{d / 'bad.jsonl'}:2: score 'high' is not a number" in err


# ------------------------------------------------------------------ Agora and task distillation on one's own data


def test_agora_and_task_distillation_take_own_data(tmp_path, bert_teacher, csv_data, csv_run, capsys):
    d = csv_data
    own = ["--model", str(bert_teacher), "--train-file", str(d / "train.csv"), "--validation-file", str(d / "dev.csv"),
           "--text-columns", "premise,hypothesis", "--label-column", "verdict", "--max-seq-len", "32", *RUN]
    assert main(["finetune", *own, "--out", str(tmp_path / "K"), "--steps", "3", "--task-teacher", str(csv_run), "--augment", "1",
                 "--transform", "swap"]) == 0
    report = FinetuneResult.read(tmp_path / "K" / "finetune.json")
    augmented = [json.loads(line) for line in (tmp_path / "K" / "augmented.jsonl").read_text().splitlines()]
    assert report.teacher == str(csv_run) and report.augmented == len(augmented) > 0 and len(augmented[0]["soft_label"]) == 2
    space = tmp_path / "space.yaml"
    space.write_text("lr: [1.0e-3]\nweight_decay: [0.01]\nwarmup: [0.1]\nbatch_size: [16]\nseed: [0]\n", encoding="utf-8")
    assert main(["finetune", *own, "--out", str(tmp_path / "A"), "--epochs", "1", "--agora", "--agora-space", str(space), "--max-rounds", "1",
                 "--transform", "swap", "--labeller", str(csv_run)]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["task"] == report.task == json.loads((tmp_path / "A" / "agora.json").read_text())["task"] and printed["task"]
    points = [json.loads(line) for line in (tmp_path / "A" / "agora_points.jsonl").read_text().splitlines()]
    assert {p["label"] for p in points} <= {"no", "yes"}
    assert json.loads((tmp_path / "A" / "model" / "config.json").read_text())["bort_text_columns"] == ["premise", "hypothesis"]


def test_own_data_flags_are_checked(tmp_path, bert_teacher, csv_data, capsys):
    d = csv_data
    base = ["finetune", "--model", bert_teacher, "--out", tmp_path / "F", "--steps", "1"]
    assert "both --train-file and --validation-file" in _refused(capsys, [*base, "--train-file", d / "train.csv"])
    assert "not both" in _refused(capsys, [*base, "--task", "glue/rte", "--train-file", d / "train.csv", "--validation-file", d / "dev.csv"])
    (tmp_path / "x.txt").write_text("text,label\na,b\n", encoding="utf-8")
    assert "unknown file type '.txt'" in _refused(capsys, [*base, "--train-file", tmp_path / "x.txt", "--validation-file", d / "dev.csv"])
    assert "--text-columns takes one column, or two" in _refused(capsys, [*base, "--train-file", d / "train.csv", "--validation-file",
                                                                          d / "dev.csv", "--text-columns", "a,b,c"])


# ------------------------------------------------------------------ truncation as transformers.pipeline() does it


def test_pipeline_truncates_like_predict(csv_run, tmp_path, capsys):
    from transformers import pipeline

    long = " ".join(["the big dog sat on a log"] * 30)  # about 210 tokens; the model was fine-tuned at 32, its tokenizer made for 64
    (tmp_path / "long.txt").write_text(long + "\n", encoding="utf-8")
    assert main(["predict", "--model", str(csv_run), "--input", str(tmp_path / "long.txt")]) == 0
    ours = json.loads(capsys.readouterr().out)
    theirs = pipeline("text-classification", model=str(csv_run / "model"), device="cpu")(long, truncation=True)[0]
    assert theirs["label"] == ours["label"] and theirs["score"] == pytest.approx(ours["score"], abs=1e-5)


def test_no_output_tokenizer_asks_for_remote_code(tmp_path, bert_teacher, csv_data):
    """A teacher whose tokenizer_config.json names remote code (auto_map) gives a fine-tuned folder whose tokenizer does not."""
    import shutil

    teacher = tmp_path / "T"
    shutil.copytree(bert_teacher, teacher)
    config = json.loads((teacher / "tokenizer_config.json").read_text())
    config["auto_map"] = {"AutoTokenizer": ["remote_code.Tok", None]}
    (teacher / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    d = csv_data
    assert main(["finetune", "--model", str(teacher), "--train-file", str(d / "train.csv"), "--validation-file", str(d / "dev.csv"),
                 "--text-columns", "premise,hypothesis", "--label-column", "verdict", "--out", str(tmp_path / "F"), "--steps", "1",
                 "--max-seq-len", "32", *RUN]) == 0
    written = json.loads((tmp_path / "F" / "model" / "tokenizer_config.json").read_text())
    assert "auto_map" not in written and written["tokenizer_class"] == config["tokenizer_class"]
