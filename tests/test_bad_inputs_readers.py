"""Issue 36, readers and tokenizers: bad data files and tokenizer-less model folders, each refused in one line before any work.

The table (machinery in ``bad_inputs.py``) holds the refusals: a model folder without its tokenizer or with another
model's (#36.2), a stray quote in a TSV (#36.3), ambiguous rows of one's own data (#36.8), a non-finite score in a
validation file (#36.12), a folder or FIFO given as a data file, and a training file named only dots (#36.14).
The tests after it hold what must be accepted: a CSV field over Python csv's 128 KB default, and a quote inside a
quoted field.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from bad_inputs import (  # noqa: F401
    Case,
    Env,
    check_refused,
    classifier,
    env,
    export,
    param,
    run_evaluate,
    run_finetune,
    run_predict,
    run_pretrain,
    sst2,
)
from conftest import SEQ_LEN

from bort.errors import BortError
from bort.models.loading import TOKENIZER_FILES, load_tokenizer
from bort.tasks.readers import own

TRAIN = "".join(f"good day {i},yes\nbad film {i},no\n" for i in range(8))  # rows of a CSV "text,label"


def run_own(e: Env, *extra, train="train.csv", dev="dev.csv") -> list:
    """``bort finetune`` on one's own files in the case's folder."""
    return ["finetune", "--model", e.classifier, "--train-file", e.tmp / train, "--validation-file", e.tmp / dev, "--out", e.tmp / "out",
            "--steps", "1", "--batch-size", "4", "--max-seq-len", SEQ_LEN, "--device", "cpu", "--bf16", "off", "--no-progress", *extra]


def files(**texts: str):
    """Setup: the case's own data files, ``name_ext=text`` (``train_csv="…"`` writes train.csv)."""
    return lambda e: [e.write(name.replace("_", "."), text) for name, text in texts.items()]


def good_csv(e: Env) -> None:
    files(train_csv="text,label\n" + TRAIN, dev_csv="text,label\n" + TRAIN)(e)


def without_tokenizer(src: str, keep: tuple[str, ...] = ()):
    """Setup: a copy of a shared model (``src``: teacher, classifier, export) without its tokenizer files (or with only ``keep``)."""

    def setup(e: Env) -> None:
        folder = e.copy(getattr(e, src))
        for f in folder.iterdir():
            if (keep and f.name not in keep) or (not keep and (f.name.startswith(("tokenizer", "vocab", "special_tokens")))):
                f.unlink()

    return setup


def five_token_tokenizer(e: Env) -> None:
    """A copy of the classifier whose tokenizer is a vocab.txt of the 5 special tokens (what transformers builds from no files)."""
    without_tokenizer("classifier")(e)
    e.write("model/vocab.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n")


def fifo(e: Env) -> Path:
    """A FIFO beside (not in) the case's folder: the suite hashes every file in the folder, and reading a FIFO would block."""
    return e.tmp.parent / f"{e.tmp.name}.fifo.csv"


def make_fifo(e: Env) -> None:
    good_csv(e)
    os.mkfifo(fifo(e))



def _tsv(quoted: dict[int, str]) -> str:
    """A TSV of 40 rows "text i<TAB>yes" with ``quoted[i]`` written around text i: ``"`` before ("<"), after (">")."""
    q = {"<": ('"', ""), ">": ("", '"')}
    return "text\tlabel\n" + "".join(f"{q[quoted[i]][0] if i in quoted else ''}text {i}{q[quoted[i]][1] if i in quoted else ''}\tyes\n"
                                       for i in range(40))


STRAY = _tsv({5: "<", 15: ">"})  # 40 rows; csv with quoting on reads 30, row 5's text holding rows 5 to 15
UNCLOSED = _tsv({5: "<"})
REGRESSION = "text,label\n" + "".join(f"good day {i},{i / 10}\n" for i in range(8))

CASES: list[Case] = [
    # ---------------------------------------------------------------- #36.2 a model folder must carry its own tokenizer
    Case("finetune-model-without-tokenizer#36.2", "finetune", lambda e: run_finetune(e, model=e.tmp / "model"), "holds no tokenizer",
         without_tokenizer("classifier")),
    Case("evaluate-model-without-tokenizer#36.2", "evaluate", lambda e: run_evaluate(e, model=e.tmp / "model"), "holds no tokenizer",
         without_tokenizer("classifier")),
    Case("pretrain-teacher-without-tokenizer#36.2", "pretrain", lambda e: run_pretrain(e, teacher=e.tmp / "model"), "holds no tokenizer",
         without_tokenizer("teacher")),
    Case("predict-optimum-folder-config-and-onnx-only#36.2", "predict", lambda e: run_predict(e, model=e.tmp / "model"), "holds no tokenizer",
         lambda e: (without_tokenizer("export", keep=("config.json", "model.onnx"))(e), e.write("in.txt", "good day\n"))),
    Case("finetune-five-token-tokenizer#36.2", "finetune", lambda e: run_finetune(e, model=e.tmp / "model"), "has 5 tokens",
         five_token_tokenizer),
    Case("predict-five-token-tokenizer#36.2", "predict", lambda e: run_predict(e, model=e.tmp / "model"), "has 5 tokens",
         lambda e: (five_token_tokenizer(e), e.write("in.txt", "good day\n"))),
    # ---------------------------------------------------------------- #36.3 a stray quote in a TSV
    Case("finetune-own-tsv-stray-quote#36.3", "finetune", lambda e: run_own(e, train="train.tsv", dev="dev.tsv"),
         ("train.tsv:7", "runs from this line to line 17"), files(train_tsv=STRAY, dev_tsv="text\tlabel\na\tyes\n")),
    Case("finetune-own-tsv-unclosed-quote#36.3", "finetune", lambda e: run_own(e, train="train.tsv", dev="dev.tsv"),
         ("train.tsv:7", "never closed"), files(train_tsv=UNCLOSED, dev_tsv="text\tlabel\na\tyes\n")),
    Case("finetune-own-csv-quote-inside-field#36.3", "finetune", lambda e: run_own(e), ("train.csv:3", "a quote inside a field"),
         files(train_csv='text,label\ngood,yes\n"he said" hi,no\n', dev_csv="text,label\na,yes\n")),
    # ---------------------------------------------------------------- #36.8 own data with ambiguous content
    Case("finetune-own-csv-duplicated-header#36.8", "finetune", lambda e: run_own(e), ("train.csv:1", "'text' more than once"),
         files(train_csv="text,text,label\n" + "".join(f"a {i},b {i},yes\n" for i in range(4)), dev_csv="text,label\na,yes\n")),
    Case("finetune-own-tsv-duplicated-header-spaced#36.8", "finetune", lambda e: run_own(e, train="train.tsv", dev="dev.tsv"),
         "'label' more than once", files(train_tsv="text\tlabel\t label \na\tyes\tno\n", dev_tsv="text\tlabel\na\tyes\n")),
    Case("finetune-own-jsonl-object-as-text#36.8", "finetune", lambda e: run_own(e, train="t.jsonl", dev="d.jsonl"),
         ("t.jsonl:2", "column 'text'", "is an object"),
         files(t_jsonl='{"text": "a", "label": "yes"}\n{"text": {"a": 1}, "label": "no"}\n', d_jsonl='{"text": "a", "label": "yes"}\n')),
    Case("finetune-own-jsonl-list-as-label#36.8", "finetune", lambda e: run_own(e, train="t.jsonl", dev="d.jsonl"),
         ("d.jsonl:1", "column 'label'", "is a list"),
         files(t_jsonl='{"text": "a", "label": "yes"}\n{"text": "b", "label": "no"}\n', d_jsonl='{"text": "a", "label": ["yes"]}\n')),
    Case("finetune-own-jsonl-duplicated-key#36.8", "finetune", lambda e: run_own(e, train="t.jsonl", dev="d.jsonl"),
         ("t.jsonl:1", "key 'text' appears twice"),
         files(t_jsonl='{"text": "a", "label": "yes", "text": "b"}\n', d_jsonl='{"text": "a", "label": "yes"}\n')),
    Case("finetune-label-column-is-a-text-column#36.8", "finetune",
         lambda e: run_own(e, "--text-columns", "verdict", "--label-column", "verdict"), "'verdict' is also a text column", good_csv),
    Case("finetune-default-label-column-as-text-column#36.8", "finetune", lambda e: run_own(e, "--text-columns", "text,label"),
         "'label' is also a text column", good_csv),
    Case("finetune-own-regression-nan-score#36.8", "finetune", lambda e: run_own(e, "--regression"), ("train.csv:3", "not a finite number"),
         files(train_csv=REGRESSION.replace("0.1", "nan"), dev_csv=REGRESSION)),
    Case("finetune-own-regression-json-nan-score#36.8", "finetune", lambda e: run_own(e, "--regression", train="t.jsonl", dev="d.jsonl"),
         ("t.jsonl:2", "not a finite number"),
         files(t_jsonl='{"text": "a", "label": 0.5}\n{"text": "b", "label": NaN}\n', d_jsonl='{"text": "a", "label": 1}\n')),
    Case("finetune-own-regression-inf-in-validation#36.12", "finetune", lambda e: run_own(e, "--regression"),
         ("dev.csv:4", "not a finite number"), files(train_csv=REGRESSION, dev_csv=REGRESSION.replace("0.2", "inf"))),
    Case("finetune-own-regression-overflow-in-test#36.8", "finetune", lambda e: run_own(e, "--regression", "--test-file", e.tmp / "test.csv"),
         ("test.csv:2", "not a finite number"), files(train_csv=REGRESSION, dev_csv=REGRESSION, test_csv="text,label\na,1e999\n")),
    Case("predict-jsonl-object-as-text#36.8", "predict", lambda e: run_predict(e, input=e.tmp / "in.jsonl"), ("in.jsonl:1", "is an object"),
         files(in_jsonl='{"text": {"words": ["good", "day"]}}\n')),
    Case("predict-csv-duplicated-header#36.8", "predict", lambda e: run_predict(e, input=e.tmp / "in.csv"), "'text' more than once",
         files(in_csv="text,text\ngood,day\n")),
    Case("finetune-glue-tsv-duplicated-header#36.8", "finetune", lambda e: run_finetune(e, data=e.tmp / "data"), "'label' more than once",
         lambda e: (shutil.copytree(e.data, e.tmp / "data"), e.write("data/train.tsv", "sentence\tlabel\tlabel\ngood\t1\t0\n"))),
    # ---------------------------------------------------------------- #36.14 what a data path is; odd file names
    Case("finetune-own-train-file-is-a-folder#36.14", "finetune", lambda e: run_own(e, train="folder.csv"), "is a folder, not a file",
         lambda e: (good_csv(e), (e.tmp / "folder.csv").mkdir())),
    Case("finetune-own-train-file-is-a-fifo#36.14", "finetune", lambda e: run_own(e, train=fifo(e)), "is a FIFO (named pipe)", make_fifo),
    Case("predict-input-is-a-fifo#36.14", "predict", lambda e: run_predict(e, input=fifo(e)), "is a FIFO (named pipe)", make_fifo),
    Case("finetune-data-folder-is-a-file#36.14", "finetune", lambda e: run_finetune(e, data=e.tmp / "train.csv"), "is a file, not a folder",
         good_csv),
    Case("finetune-glue-split-is-a-folder#36.14", "finetune", lambda e: run_finetune(e, data=e.tmp / "data"), "is a folder, not a file",
         lambda e: (shutil.copytree(e.data, e.tmp / "data"), (e.tmp / "data" / "dev.tsv").unlink(), (e.tmp / "data" / "dev.tsv").mkdir())),
    Case("finetune-own-train-file-named-dots#36.14", "finetune", lambda e: run_own(e, train="...csv"), "only dots",
         files(**{"...csv": "text,label\n" + TRAIN, "dev_csv": "text,label\n" + TRAIN})),
]


@pytest.mark.parametrize("case", [param(c) for c in CASES])
def test_bad_reader_input_is_refused_in_one_line(case: Case, env: Env, capsys, monkeypatch, bort_cmd):  # noqa: F811 (the fixture)
    try:
        check_refused(case, env, capsys, monkeypatch, bort_cmd)
    finally:
        fifo(env).unlink(missing_ok=True)


def test_the_table_holds_each_reader_item_of_the_issue():
    assert len({c.id for c in CASES}) == len(CASES)
    assert {n for c in CASES for n in ("#36.2", "#36.3", "#36.8", "#36.12", "#36.14") if n in c.id} == {"#36.2", "#36.3", "#36.8", "#36.12", "#36.14"}


# ------------------------------------------------------------------ what must be accepted


def test_a_field_over_128_kb_is_read_whole(tmp_path):
    """Python csv refuses fields over 131,072 characters by default; a long text with right quoting is read as written."""
    long = "word, " * 40_000  # 240,000 characters, commas inside: quoted
    path = tmp_path / "t.csv"
    path.write_text(f'text,label\n"{long}",yes\nshort,no\n', encoding="utf-8")
    rows = own.read_rows(path, ("text",), "label", need_label=True)
    assert [(r.texts, r.label) for r in rows] == [((long,), "yes"), (("short",), "no")]


def test_quoted_quotes_and_line_breaks_in_a_csv_are_read_as_written(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text('text,label\n"he said ""hi""\nthen left",yes\nplain,no\n', encoding="utf-8")
    rows = own.read_rows(path, ("text",), "label", need_label=True)
    assert [(r.line, r.texts, r.label) for r in rows] == [(2, ('he said "hi"\nthen left',), "yes"), (4, ("plain",), "no")]


def test_a_tokenizer_larger_than_the_models_vocabulary_is_refused(tmp_path, classifier):  # noqa: F811 (the fixture)
    folder = Path(shutil.copytree(classifier, tmp_path / "model"))
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    tokens = config["vocab_size"]
    (folder / "config.json").write_text(json.dumps({**config, "vocab_size": tokens - 10}), encoding="utf-8")
    with pytest.raises(BortError, match=f"has {tokens:,} tokens and the model {tokens - 10:,} token embeddings"):
        load_tokenizer(folder)


def test_the_models_own_tokenizer_loads(classifier):  # noqa: F811 (the fixture)
    assert any((classifier / f).is_file() for f in TOKENIZER_FILES)
    tokenizer = load_tokenizer(classifier)
    assert len(tokenizer) == json.loads((classifier / "config.json").read_text(encoding="utf-8"))["vocab_size"]
