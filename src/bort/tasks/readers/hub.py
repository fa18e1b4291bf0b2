"""The GLUE and SuperGLUE tasks loaded through Hugging Face ``datasets`` (``--task`` without ``--data``).

``datasets`` is an optional extra (``pip install 'bort[hub]'``). Its rows are turned into the official
files' shape and read by the same converters (labels come as ids of the names :data:`~bort.tasks.registry.TASKS`
shares with ``datasets``; -1 marks an unlabelled test row).
"""

from __future__ import annotations

from bort.errors import BortError
from bort.tasks.readers import superglue
from bort.tasks.readers.common import check_split
from bort.tasks.spec import Example, TaskSpec

# task → (dataset, configuration, text columns; None: SuperGLUE, read by its converter)
_HUB: dict[str, tuple[str, str, tuple[str, ...] | None]] = {
    **{f"glue/{n}": ("nyu-mll/glue", n, cols) for n, cols in (
        ("cola", ("sentence",)), ("sst2", ("sentence",)), ("mrpc", ("sentence1", "sentence2")), ("stsb", ("sentence1", "sentence2")),
        ("qqp", ("question1", "question2")), ("mnli", ("premise", "hypothesis")), ("qnli", ("question", "sentence")),
        ("rte", ("sentence1", "sentence2")), ("wnli", ("sentence1", "sentence2")), ("ax", ("premise", "hypothesis")))},
    **{f"superglue/{n}": ("aps/super_glue", n, None) for n in ("boolq", "cb", "copa", "rte", "wic", "axb")},
    "superglue/wsc": ("aps/super_glue", "wsc.fixed", None),
}
# Each task's dataset on the Hub, where the model card names it (RACE is read from its official download only).
DATASETS = {**{task: (dataset, config) for task, (dataset, config, _) in _HUB.items()}, "race/middle": ("ehovy/race", "middle"),
            "race/high": ("ehovy/race", "high")}
_SPLITS = {"dev": "validation", "dev_matched": "validation_matched", "dev_mismatched": "validation_mismatched",
           "test_matched": "test_matched", "test_mismatched": "test_mismatched", "train": "train", "test": "test"}


def split_name(split: str) -> str:
    """The Hub's name of one of bort's splits (``dev`` → ``validation``, ``dev_mismatched`` → ``validation_mismatched``)."""
    return _SPLITS.get(split, split)


def _load(task: TaskSpec, dataset: str, config: str, split: str):
    try:
        import datasets
    except ImportError:
        raise BortError(f"loading {task.name} without --data needs Hugging Face datasets: pip install 'bort[hub]' "
                        "(or pass --data with the task's folder of the official download)") from None
    try:
        return datasets.load_dataset(dataset, config, split=split)
    except (OSError, ConnectionError) as exc:  # offline, unreachable or not cached: datasets' errors are OSErrors
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise BortError(f"cannot load {task.name} from the Hugging Face Hub ({reason}): offline, pass --data with the task's folder "
                        "of the official download, or go online") from None


def _superglue_object(task: TaskSpec, row: dict) -> dict:
    """A ``datasets`` row of SuperGLUE in the official JSON shape: a label name (absent when -1), WSC's ``target``."""
    obj = {k: v for k, v in row.items() if k != "label"}
    if row.get("label", -1) != -1:
        obj["label"] = task.labels[row["label"]]
    if task.name == "superglue/wsc":
        obj["target"] = {"span1_text": row["span1_text"], "span2_text": row["span2_text"]}
    return obj


def read(task: TaskSpec, split: str) -> list[Example]:
    """The examples of one split of ``task`` (``train``, ``dev``, ``test``; MNLI ``dev_matched`` …) from the Hub."""
    if task.name not in _HUB:
        raise BortError(f"bort reads {task.name} from its official download only: pass --data with the task's folder")
    dataset, config, columns = _HUB[task.name]
    if task.name == "glue/mnli":
        split = {"dev": "dev_matched", "test": "test_matched"}.get(split, split)
    check_split(task, split, tuple(_SPLITS) if task.name == "glue/mnli" else ("test",) if not task.dev_splits else ("train", "dev", "test"))
    rows = _load(task, dataset, config, _SPLITS[split])
    if columns is None:
        convert = superglue.CONVERTERS[task.name]
        return [ex for row in rows for ex in convert(task, _superglue_object(task, row), False)]
    out = []
    for i, row in enumerate(rows):
        label = row["label"]
        name = None if label == -1 else float(label) if task.kind == "regression" else task.labels[label]
        out.append(Example(idx=str(row.get("idx", i)), texts=tuple(row[c] for c in columns), label=name))
    return out
