"""SuperGLUE's JSON-lines files (``<Task>/{train,val,test}.jsonl``, ``AX-b.jsonl``, ``AX-g.jsonl``) as :class:`Example` rows."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bort.errors import BortError
from bort.tasks.readers.common import RowError, check_split, empty, existing, jsonl_file_objects, parse_label, scalar
from bort.tasks.spec import Example, TaskSpec

_Convert = Callable[[TaskSpec, dict, bool], list[Example]]


def _labelled(task: TaskSpec, obj: dict, need: bool, key: str = "label") -> str | float | None:
    """``obj[key]`` as a label name; None where it is absent and not needed (test splits)."""
    if key not in obj and not need:
        return None
    return parse_label(task, obj[key])


def _pair(first: str, second: str, group: str = "") -> _Convert:
    def convert(task: TaskSpec, o: dict, need: bool) -> list[Example]:
        texts = (str(scalar(o[first])), str(scalar(o[second])))
        return [Example(idx=str(o["idx"]), texts=texts, label=_labelled(task, o, need), group=str(o[group]) if group else "")]

    return convert


def _copa(task: TaskSpec, o: dict, need: bool) -> list[Example]:
    question = f"What was the {o['question']}?"
    choices = tuple((o["premise"], f"{question} {o[key]}") for key in ("choice1", "choice2"))
    return [Example(idx=str(o["idx"]), texts=(o["premise"],), label=_labelled(task, o, need), choices=choices)]


def _multirc(task: TaskSpec, o: dict, need: bool) -> list[Example]:
    p, text = o["idx"], o["passage"]["text"]
    out = []
    for q in o["passage"]["questions"]:
        for a in q["answers"]:
            out.append(
                Example(
                    idx=f"{p}-{q['idx']}-{a['idx']}",
                    texts=(text, f"{q['question']} {a['text']}"),
                    label=_labelled(task, a, need),
                    group=f"{p}-{q['idx']}",
                    candidate=str(a["idx"]),
                )
            )
    return out


def _record(task: TaskSpec, o: dict, need: bool) -> list[Example]:
    raw = o["passage"]["text"]
    passage = raw.replace("@highlight\n", ". ")
    entities = list(dict.fromkeys(raw[e["start"] : e["end"] + 1] for e in o["passage"]["entities"]))  # ends are inclusive
    out = []
    for qa in o["qas"]:
        gold = {a["text"] for a in qa["answers"]} if need or "answers" in qa else None
        for j, entity in enumerate(entities):
            label = None if gold is None else ("1" if entity in gold else "0")
            query = qa["query"].replace("@placeholder", entity)
            out.append(Example(idx=f"{qa['idx']}-{j}", texts=(passage, query), label=label, group=str(qa["idx"]), candidate=entity))
    return out


def _wic(task: TaskSpec, o: dict, need: bool) -> list[Example]:
    return [Example(idx=str(o["idx"]), texts=(f"{o['word']}: {o['sentence1']}", o["sentence2"]), label=_labelled(task, o, need))]


def _wsc(task: TaskSpec, o: dict, need: bool) -> list[Example]:
    t = o["target"]
    return [Example(idx=str(o["idx"]), texts=(o["text"], f"{t['span2_text']} refers to {t['span1_text']}"), label=_labelled(task, o, need))]


_SUPERGLUE: dict[str, tuple[str | None, _Convert]] = {  # test-only file name (None: train/val/test.jsonl), converter
    "superglue/boolq": (None, _pair("question", "passage")),
    "superglue/cb": (None, _pair("premise", "hypothesis")),
    "superglue/copa": (None, _copa),
    "superglue/multirc": (None, _multirc),
    "superglue/record": (None, _record),
    "superglue/rte": (None, _pair("premise", "hypothesis")),
    "superglue/wic": (None, _wic),
    "superglue/wsc": (None, _wsc),
    "superglue/axb": ("AX-b.jsonl", _pair("sentence1", "sentence2")),
    "superglue/axg": ("AX-g.jsonl", _pair("premise", "hypothesis", group="pair_id")),
}
CONVERTERS: dict[str, _Convert] = {name: convert for name, (_, convert) in _SUPERGLUE.items()}  # also read the Hub's rows


def read(task: TaskSpec, folder: Path, split: str) -> list[Example]:
    """The examples of one split of a SuperGLUE task, read from its folder ``folder`` (e.g. ``CB``; ``dev`` is ``val.jsonl``)."""
    test_file, convert = _SUPERGLUE[task.name]
    if test_file is not None:
        check_split(task, split, ("test",))
        path = existing(task, split, folder / test_file)
    else:
        check_split(task, split, ("train", "dev", "test"))
        path = existing(task, split, folder / f"{'val' if split == 'dev' else split}.jsonl")
    need = split != "test"
    examples: list[Example] = []
    line = 1
    for line, obj in jsonl_file_objects(path):
        try:
            examples.extend(convert(task, obj, need))
        except RowError as exc:
            raise BortError(f"{path}:{line}: {exc}; fix the line or re-download the file") from None
        except KeyError as exc:
            raise BortError(f"{path}:{line}: missing field {exc}; is this the {task.name} {split} file?") from None
        except (TypeError, AttributeError, IndexError, ValueError) as exc:
            raise BortError(f"{path}:{line}: a field has an unexpected type ({exc}); is this the {task.name} {split} file?") from None
    if not examples:
        raise empty(path, line)
    return examples
