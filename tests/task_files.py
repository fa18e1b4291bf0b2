"""The official GLUE, SuperGLUE and RACE file formats as tiny fixtures (test_tasks.py): ``CASES`` holds, per task and split,
the files written under the task's folder and the examples a reader must return."""

from __future__ import annotations

import json
from pathlib import Path

from bort.tasks.registry import Example


def write_files(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return folder


def tsv(*rows: tuple[str, ...] | list[str]) -> str:
    return "".join("\t".join(row) + "\n" for row in rows)


def jsonl(*objs: dict) -> str:
    return "".join(json.dumps(o) + "\n" for o in objs)


E = Example
MNLI_HEADER = ["index", "promptID", "pairID", "genre", "sentence1_binary_parse", "sentence2_binary_parse", "sentence1_parse", "sentence2_parse"]
MNLI_HEADER += ["sentence1", "sentence2", "label1", "label2", "label3", "label4", "label5", "gold_label"]
STSB_HEADER = ["index", "genre", "filename", "year", "old_index", "source1", "source2", "sentence1", "sentence2", "score"]


def mnli_row(i: int, s1: str, s2: str, gold: str | None) -> list[str]:
    parse = ["( x )", "( y )", "(ROOT x)", "(ROOT y)"]
    return [str(i), "31193", "31193n", "government", *parse, s1, s2] + ([gold, gold, gold, gold, gold, gold] if gold else [])


def record_passage() -> dict:
    text = "Tom met Anna in Paris.\n@highlight\nTom visits Paris"
    spans = [(0, "Tom"), (8, "Anna"), (16, "Paris"), (34, "Tom"), (45, "Paris")]
    assert all(text[i : i + len(w)] == w for i, w in spans)
    return {"text": text, "entities": [{"start": i, "end": i + len(w) - 1} for i, w in spans]}


def race_file(fid: str, article: str, questions: list[str], options: list[list[str]], answers: list[str] | None) -> str:
    obj = {"article": article, "questions": questions, "options": options, "id": fid}
    if answers is not None:
        obj["answers"] = answers
    return json.dumps(obj)


_PASSAGE = "The sky is blue. Grass is green."
_RECORD_TEXT = "Tom met Anna in Paris.\n. Tom visits Paris"  # "@highlight\n" becomes ". "

# (task, split, files written under the task's folder, the examples expected)
CASES: list[tuple[str, str, dict[str, str], list[Example]]] = [
    (
        "glue/cola",
        "train",
        {"train.tsv": tsv(("gj04", "1", "", "The sailors rode the breeze."), ("gj04", "0", "*", "The more we study verbs, the crazier."))},
        [E("0", ("The sailors rode the breeze.",), "acceptable"), E("1", ("The more we study verbs, the crazier.",), "unacceptable")],
    ),
    (
        "glue/cola",
        "test",
        {"test.tsv": tsv(("index", "sentence"), ("0", "Bill whistled."), ("1", "The car honked."))},
        [E("0", ("Bill whistled.",), None), E("1", ("The car honked.",), None)],
    ),
    (
        "glue/sst2",
        "dev",
        {"dev.tsv": tsv(("sentence", "label"), ("it 's a charming journey . ", "1"), ("unflinchingly bleak ", "0"))},
        [E("0", ("it 's a charming journey . ",), "positive"), E("1", ("unflinchingly bleak ",), "negative")],
    ),
    (
        "glue/sst2",
        "test",
        {"test.tsv": tsv(("index", "sentence"), ("0", "uneasy mishmash ."), ("1", "a masterpiece ."))},
        [E("0", ("uneasy mishmash .",), None), E("1", ("a masterpiece .",), None)],
    ),
    (
        "glue/mrpc",
        "train",
        {
            "train.tsv": "\ufeff"
            + tsv(
                ("Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"),
                ("1", "702876", "702977", 'Amrozi accused "the witness".', "Referring to him as the witness."),
                ("0", "2108705", "2108831", "Yucaipa owned Dominick's.", "Yucaipa bought Dominick's."),
            )
        },
        [
            E("0", ('Amrozi accused "the witness".', "Referring to him as the witness."), "equivalent"),
            E("1", ("Yucaipa owned Dominick's.", "Yucaipa bought Dominick's."), "not_equivalent"),
        ],
    ),
    (
        "glue/mrpc",
        "test",  # first column named Quality in some copies: it is the index there
        {"test.tsv": tsv(("Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"), ("0", "1", "2", "A.", "B."), ("1", "3", "4", "C.", "D."))},
        [E("0", ("A.", "B."), None), E("1", ("C.", "D."), None)],
    ),
    (
        "glue/stsb",
        "dev",
        {
            "dev.tsv": tsv(
                STSB_HEADER,
                ("0", "main-captions", "MSRvid", "2012test", "0000", "none", "none", "A man is dancing.", "A man dances.", "5.000"),
                ("1", "main-captions", "MSRvid", "2012test", "0002", "none", "none", "A child rides.", "A dog barks.", "0.250"),
            )
        },
        [E("0", ("A man is dancing.", "A man dances."), 5.0), E("1", ("A child rides.", "A dog barks."), 0.25)],
    ),
    (
        "glue/stsb",
        "test",
        {"test.tsv": tsv(STSB_HEADER[:-1], ("0", "main-news", "headlines", "2016", "0001", "none", "none", "Two dogs.", "Dogs play."))},
        [E("0", ("Two dogs.", "Dogs play."), None)],
    ),
    (
        "glue/qqp",
        "train",
        {
            "train.tsv": tsv(
                ("id", "qid1", "qid2", "question1", "question2", "is_duplicate"),
                ("133273", "213221", "213222", "How is the life of a math student?", "Which level of prepration is enough?", "0"),
                ("402555", "536040", "536041", "How do I control my horny emotions?", "How do you control your horniness?", "1"),
            )
        },
        [
            E("133273", ("How is the life of a math student?", "Which level of prepration is enough?"), "not_duplicate"),
            E("402555", ("How do I control my horny emotions?", "How do you control your horniness?"), "duplicate"),
        ],
    ),
    (
        "glue/qqp",
        "test",
        {"test.tsv": tsv(("id", "question1", "question2"), ("0", "Why?", "Why not?"))},
        [E("0", ("Why?", "Why not?"), None)],
    ),
    (
        "glue/mnli",
        "dev_matched",
        {"dev_matched.tsv": tsv(MNLI_HEADER, mnli_row(0, "The new rights are nice.", "Everyone likes them.", "neutral"))},
        [E("0", ("The new rights are nice.", "Everyone likes them."), "neutral")],
    ),
    (
        "glue/mnli",
        "dev_mismatched",
        {"dev_mismatched.tsv": tsv(MNLI_HEADER, mnli_row(7, "Your gift is appreciated.", "Your gift is not welcome.", "contradiction"))},
        [E("7", ("Your gift is appreciated.", "Your gift is not welcome."), "contradiction")],
    ),
    (
        "glue/mnli",
        "test",  # test_matched, no gold_label column
        {"test_matched.tsv": tsv(MNLI_HEADER[:-6], mnli_row(3, "Hierbas is a drink.", "It is a drink.", None))},
        [E("3", ("Hierbas is a drink.", "It is a drink."), None)],
    ),
    (
        "glue/mnli",
        "test_mismatched",
        {"test_mismatched.tsv": tsv(MNLI_HEADER[:-6], mnli_row(4, "A.", "B.", None))},
        [E("4", ("A.", "B."), None)],
    ),
    (
        "glue/qnli",
        "train",
        {
            "train.tsv": tsv(
                ("index", "question", "sentence", "label"), ("0", "When?", "In 1990.", "entailment"), ("1", "Who?", "Nobody knows.", "not_entailment")
            )
        },
        [E("0", ("When?", "In 1990."), "entailment"), E("1", ("Who?", "Nobody knows."), "not_entailment")],
    ),
    (
        "glue/rte",
        "dev",
        {
            "dev.tsv": tsv(
                ("index", "sentence1", "sentence2", "label"),
                ("0", "Dana Reeve died.", "Reeve had an accident.", "not_entailment"),
                ("1", "A won.", "A won.", "entailment"),
            )
        },
        [E("0", ("Dana Reeve died.", "Reeve had an accident."), "not_entailment"), E("1", ("A won.", "A won."), "entailment")],
    ),
    (
        "glue/rte",
        "test",
        {"test.tsv": tsv(("index", "sentence1", "sentence2"), ("0", "Mangla was summoned.", "Shukla is related to Mangla."))},
        [E("0", ("Mangla was summoned.", "Shukla is related to Mangla."), None)],
    ),
    (
        "glue/wnli",
        "train",
        {"train.tsv": tsv(("index", "sentence1", "sentence2", "label"), ("0", "I stuck a pin through a carrot.", "The carrot had a hole.", "1"))},
        [E("0", ("I stuck a pin through a carrot.", "The carrot had a hole."), "entailment")],
    ),
    (
        "glue/ax",
        "test",
        {"diagnostic.tsv": tsv(("index", "sentence1", "sentence2"), ("0", "The cat sat.", "The cat did not sit."), ("1", "A.", "B."))},
        [E("0", ("The cat sat.", "The cat did not sit."), None), E("1", ("A.", "B."), None)],
    ),
    (
        "superglue/boolq",
        "dev",
        {"val.jsonl": jsonl({"question": "is france in europe", "passage": "France is in Europe.", "idx": 0, "label": True})},
        [E("0", ("is france in europe", "France is in Europe."), "True")],
    ),
    (
        "superglue/cb",
        "train",
        {
            "train.jsonl": jsonl(
                {"premise": "It was rain.", "hypothesis": "It was dry.", "label": "contradiction", "idx": 0},
                {"premise": "He left.", "hypothesis": "He is gone.", "label": "entailment", "idx": 1},
            )
        },
        [E("0", ("It was rain.", "It was dry."), "contradiction"), E("1", ("He left.", "He is gone."), "entailment")],
    ),
    (
        "superglue/copa",
        "train",
        {
            "train.jsonl": jsonl(
                {
                    "premise": "My body cast a shadow.",
                    "choice1": "The sun was rising.",
                    "choice2": "The grass was cut.",
                    "question": "cause",
                    "idx": 0,
                    "label": 0,
                },
                {"premise": "I tipped the bottle.", "choice1": "It was empty.", "choice2": "It spilled.", "question": "effect", "idx": 1, "label": 1},
            )
        },
        [
            E(
                "0",
                ("My body cast a shadow.",),
                "choice1",
                choices=(
                    ("My body cast a shadow.", "What was the cause? The sun was rising."),
                    ("My body cast a shadow.", "What was the cause? The grass was cut."),
                ),
            ),
            E(
                "1",
                ("I tipped the bottle.",),
                "choice2",
                choices=(("I tipped the bottle.", "What was the effect? It was empty."), ("I tipped the bottle.", "What was the effect? It spilled.")),
            ),
        ],
    ),
    (
        "superglue/multirc",
        "dev",
        {
            "val.jsonl": jsonl(
                {
                    "idx": 0,
                    "passage": {
                        "text": _PASSAGE,
                        "questions": [
                            {
                                "question": "What is blue?",
                                "idx": 0,
                                "answers": [{"text": "The sky", "idx": 0, "label": 1}, {"text": "Grass", "idx": 1, "label": 0}],
                            },
                            {"question": "What is green?", "idx": 1, "answers": [{"text": "Grass", "idx": 2, "label": 1}]},
                        ],
                    },
                }
            )
        },
        [
            E("0-0-0", (_PASSAGE, "What is blue? The sky"), "True", group="0-0", candidate="0"),
            E("0-0-1", (_PASSAGE, "What is blue? Grass"), "False", group="0-0", candidate="1"),
            E("0-1-2", (_PASSAGE, "What is green? Grass"), "True", group="0-1", candidate="2"),
        ],
    ),
    (
        "superglue/record",
        "train",
        {
            "train.jsonl": jsonl(
                {
                    "idx": 0,
                    "passage": record_passage(),
                    "qas": [{"query": "@placeholder flew to France.", "idx": 5, "answers": [{"text": "Tom", "start": 0, "end": 2}]}],
                }
            )
        },
        [
            E("5-0", (_RECORD_TEXT, "Tom flew to France."), "1", group="5", candidate="Tom"),
            E("5-1", (_RECORD_TEXT, "Anna flew to France."), "0", group="5", candidate="Anna"),
            E("5-2", (_RECORD_TEXT, "Paris flew to France."), "0", group="5", candidate="Paris"),
        ],
    ),
    (
        "superglue/record",
        "test",
        {"test.jsonl": jsonl({"idx": 1, "passage": record_passage(), "qas": [{"query": "@placeholder is a city.", "idx": 9}]})},
        [
            E("9-0", (_RECORD_TEXT, "Tom is a city."), None, group="9", candidate="Tom"),
            E("9-1", (_RECORD_TEXT, "Anna is a city."), None, group="9", candidate="Anna"),
            E("9-2", (_RECORD_TEXT, "Paris is a city."), None, group="9", candidate="Paris"),
        ],
    ),
    (
        "superglue/rte",
        "test",
        {"test.jsonl": jsonl({"premise": "A dog ran.", "hypothesis": "An animal ran.", "idx": 0}, {"premise": "B.", "hypothesis": "C.", "idx": 1})},
        [E("0", ("A dog ran.", "An animal ran."), None), E("1", ("B.", "C."), None)],
    ),
    (
        "superglue/rte",
        "dev",
        {"val.jsonl": jsonl({"premise": "A dog ran.", "hypothesis": "An animal ran.", "label": "entailment", "idx": 0})},
        [E("0", ("A dog ran.", "An animal ran."), "entailment")],
    ),
    (
        "superglue/wic",
        "train",
        {
            "train.jsonl": jsonl(
                {
                    "word": "place",
                    "sentence1": "Do you want to come over to my place later?",
                    "sentence2": "A political system with no place for the less prominent.",
                    "idx": 0,
                    "label": False,
                    "start1": 31,
                    "start2": 27,
                    "end1": 36,
                    "end2": 32,
                },
            )
        },
        [E("0", ("place: Do you want to come over to my place later?", "A political system with no place for the less prominent."), "False")],
    ),
    (
        "superglue/wsc",
        "dev",
        {
            "val.jsonl": jsonl(
                {
                    "text": "Mark told Pete many lies about himself.",
                    "target": {"span1_text": "Mark", "span2_text": "himself", "span1_index": 0, "span2_index": 6},
                    "idx": 0,
                    "label": True,
                },
            )
        },
        [E("0", ("Mark told Pete many lies about himself.", "himself refers to Mark"), "True")],
    ),
    (
        "superglue/axb",
        "test",
        {"AX-b.jsonl": jsonl({"sentence1": "The cat sat.", "sentence2": "The cat did not sit.", "label": "not_entailment", "idx": 0})},
        [E("0", ("The cat sat.", "The cat did not sit."), "not_entailment")],
    ),
    (
        "superglue/axg",
        "test",
        {
            "AX-g.jsonl": jsonl(
                {"premise": "The nurse called.", "hypothesis": "She called.", "label": "entailment", "idx": 0, "pair_id": 550},
                {"premise": "The nurse called.", "hypothesis": "He called.", "label": "not_entailment", "idx": 1, "pair_id": 550},
            )
        },
        [E("0", ("The nurse called.", "She called."), "entailment", group="550"), E("1", ("The nurse called.", "He called."), "not_entailment", group="550")],
    ),
    (
        "race/middle",
        "train",
        {
            "train/middle/m1.txt": race_file("middle1.txt", "Art.", ["The boy is _ .", "Why?"], [["a", "b", "c", "d"], ["w", "x", "y", "z"]], ["B", "D"]),
            "train/high/h1.txt": race_file("high1.txt", "Other.", ["Q?"], [["a", "b", "c", "d"]], ["A"]),
        },
        [
            E("middle1.txt-0", ("Art.",), "B", choices=tuple(("Art.", f"The boy is {o} .") for o in "abcd")),
            E("middle1.txt-1", ("Art.",), "D", choices=tuple(("Art.", f"Why? {o}") for o in "wxyz")),
        ],
    ),
    (
        "race/high",
        "test",
        {
            "test/high/h2.txt": race_file("high2.txt", "Text.", ["Q?"], [["a", "b", "c", "d"]], None),
            "test/middle/m2.txt": race_file("middle2.txt", "Other.", ["Q?"], [["a", "b", "c", "d"]], ["A"]),
        },
        [E("high2.txt-0", ("Text.",), None, choices=tuple(("Text.", f"Q? {o}") for o in "abcd"))],
    ),
]
