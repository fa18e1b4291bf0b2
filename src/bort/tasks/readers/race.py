"""RACE's folders of question files (``RACE/<split>/<level>/*.txt``, one JSON object each) as :class:`Example` rows."""

from __future__ import annotations

import json
from pathlib import Path

from bort.errors import BortError
from bort.tasks.readers.common import RowError, check_split, empty, parse_label
from bort.tasks.spec import Example, TaskSpec


def _race_option(question: str, option: str) -> str:
    return question.replace("_", option) if "_" in question else f"{question} {option}"


def _race_file(task: TaskSpec, path: Path, need: bool) -> list[Example]:
    try:
        o = json.loads(path.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError:
        raise BortError(f"{path}:1: not UTF-8 text; convert the file, e.g. `iconv -f latin1 -t utf-8`") from None
    except json.JSONDecodeError as exc:
        raise BortError(f"{path}:{exc.lineno}: malformed JSON ({exc.msg}, column {exc.colno}); each RACE file must be one JSON object") from None
    try:
        article, questions, options = o["article"], o["questions"], o["options"]
        answers = o["answers"] if need or "answers" in o else [None] * len(questions)
        if not len(questions) == len(options) == len(answers):
            raise RowError(f"{len(questions)} questions, {len(options)} option lists and {len(answers)} answers; they must match")
        out = []
        for i, (question, opts, answer) in enumerate(zip(questions, options, answers)):
            if len(opts) != len(task.labels):
                raise RowError(f"question {i} has {len(opts)} options, expected {len(task.labels)}")
            choices = tuple((article, _race_option(question, opt)) for opt in opts)
            label = None if answer is None else parse_label(task, answer)
            out.append(Example(idx=f"{o.get('id', path.name)}-{i}", texts=(article,), label=label, choices=choices))
    except RowError as exc:
        raise BortError(f"{path}:1: {exc}; fix the file or re-download RACE") from None
    except KeyError as exc:
        raise BortError(f"{path}:1: missing field {exc}; is this a RACE question file?") from None
    except (TypeError, AttributeError, ValueError) as exc:
        raise BortError(f"{path}:1: a field has an unexpected type ({exc}); is this a RACE question file?") from None
    if not out:
        raise empty(path, 1)
    return out


def read(task: TaskSpec, folder: Path, split: str) -> list[Example]:
    """The examples of one split of a RACE level (``race/middle``, ``race/high``), read from the RACE folder ``folder``."""
    check_split(task, split, ("train", "dev", "test"))
    level = task.name.split("/")[1]
    sub = folder / split / level
    if not sub.is_dir():
        raise BortError(f"{task.name} split '{split}': expected folder '{sub}' does not exist; pass the RACE folder (holding train/, dev/, test/)")
    files = sorted(sub.glob("*.txt"))
    if not files:
        raise BortError(f"{task.name} split '{split}': folder '{sub}' holds no *.txt question files; re-extract RACE")
    return [example for path in files for example in _race_file(task, path, need=split != "test")]
