"""Where a task's examples come from: the official folder (``--data``), the Hub (``--task`` alone), or one's own files.

:class:`OwnData` holds the flags of one's own data (``--train-file`` …). :func:`open_task` (fine-tuning) and
:func:`model_task` (evaluating, predicting: the model's config says how it was trained) give a
:class:`TaskData`: a plain :class:`TaskSpec` and the reading of its splits, so every later step (features,
heads, metrics, augmentation, Agora, evaluation, prediction) treats every source the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bort.errors import BortError
from bort.models.card import Scored
from bort.options import opt
from bort.tasks.readers import hub, own
from bort.tasks.registry import get_task, read_split
from bort.tasks.spec import Example, TaskSpec

TEXT_COLUMNS, LABEL_COLUMN = ("text",), "label"  # the defaults of --text-columns and --label-column
_SPLIT_FLAGS = {"train": "--train-file", "dev": "--validation-file", "test": "--test-file"}


@dataclass(frozen=True)
class OwnData:
    """One's own data: ``--train-file``, ``--validation-file``, ``--test-file`` (CSV, TSV or JSON lines) and their columns."""

    train_file: Path | None = field(default=None, metadata=opt("your own training data instead of --task: a .csv or .tsv file with a "
                                                               "header row, or .jsonl (JSON lines)"))
    validation_file: Path | None = field(default=None, metadata=opt("your own validation data, the same columns (the dev split)"))
    test_file: Path | None = field(default=None, metadata=opt("your own test data (labels optional): finetune writes its predictions to "
                                                              "OUT/predictions/; the test split of evaluate"))
    text_columns: tuple[str, ...] | None = field(default=None, metadata=opt(f"the text column, or a pair's two: a,b (default: {TEXT_COLUMNS[0]}; "
                                                                            "a fine-tuned model's own)", metavar="A[,B]"))
    label_column: str | None = field(default=None, metadata=opt(f"the label column (default: {LABEL_COLUMN}; a fine-tuned model's own)"))
    regression: bool = field(default=False, metadata=opt("the labels are scores (regression: Pearson and Spearman), not names"))

    def __post_init__(self) -> None:
        if self.text_columns is not None and not 1 <= len(self.text_columns) <= 2:
            raise BortError(f"--text-columns takes one column, or two for pairs (a,b); got {len(self.text_columns)}")
        if self.text_columns and self.label_column in self.text_columns:
            raise BortError(f"the label column '{self.label_column}' is also a text column ({','.join(self.text_columns)}): the model would "
                            "read its answer; name other --text-columns, or another --label-column")
        for flag, file in zip(_SPLIT_FLAGS.values(), (self.train_file, self.validation_file, self.test_file)):
            if file is not None and not Path(file).stem.strip("."):  # "...csv": the task (own/..) and its run folders would be named ".."
                raise BortError(f"{flag} '{file}': a file name of only dots before its extension cannot name the task; rename the file, "
                                "e.g. train.csv")

    @property
    def given(self) -> bool:
        """Whether any of the files is given."""
        return any(f is not None for f in (self.train_file, self.validation_file, self.test_file))


@dataclass(frozen=True)
class TaskData:
    """A task and where its splits are read from: ``folder`` (official), ``own`` files, or neither (the Hub)."""

    spec: TaskSpec
    folder: Path | None = None
    own: OwnData | None = None  # with text_columns and label_column filled in

    def split(self, name: str) -> list[Example]:
        """The examples of a split (``train``, ``dev``, ``test``, or a task's own split names)."""
        return self._read(name)

    def check(self, name: str) -> int:
        """Read a split only to refuse bad input before any work, and forget it; how many examples it holds. Fine-tuning checks
        the split it scores this way and reads it (:meth:`split`) once training ends (algorithms.md §4d)."""
        return len(self._read(name))

    def _read(self, name: str) -> list[Example]:
        if self.own is None:
            return read_split(self.spec, self.folder, name) if self.folder is not None else hub.read(self.spec, name)
        path = {"train": self.own.train_file, "dev": self.own.validation_file, "test": self.own.test_file}.get(name)
        if path is None:
            raise BortError(f"{self.spec.name} has no {name} split here: pass {_SPLIT_FLAGS.get(name, '--validation-file')}")
        return self.read_file(path, need_label=name != "test")

    def read_file(self, path: Path, *, need_label: bool) -> list[Example]:
        """The examples of one of one's own files (CSV, TSV or JSON lines), read with this task's columns and labels."""
        rows = own.read_rows(path, self.own.text_columns, self.own.label_column, need_label=need_label)
        return own.examples(self.spec, path, rows)

    def scored(self, split: str, metrics: dict[str, float]) -> Scored:
        """``metrics``, measured on ``split``, as the model card's model-index entry: the task's Hub dataset, or the file
        of one's own data (named, not its path)."""
        if self.own is not None:
            path = {"dev": self.own.validation_file, "test": self.own.test_file}.get(split, self.own.train_file)
            return Scored(self.spec.name, self.spec.kind, Path(path).name, None, split, metrics, on_hub=False)
        dataset, config = hub.DATASETS.get(self.spec.name, (self.spec.name, None))
        return Scored(self.spec.name, self.spec.kind, dataset, config, hub.split_name(split), metrics, on_hub=self.spec.name in hub.DATASETS)

    @property
    def config(self) -> dict:
        """What a fine-tuned model's config records to read one's own files again (``bort_*`` keys); {} otherwise."""
        return {} if self.own is None else {"bort_text_columns": list(self.own.text_columns), "bort_label_column": self.own.label_column}


def own_spec(name: str, labels: tuple[str, ...], regression: bool, suffix: str) -> TaskSpec:
    """The spec of one's own task: accuracy (plus macro-F1 beyond two labels), or Pearson and Spearman; predictions as ``suffix`` files."""
    metrics = ("pearson", "spearman") if regression else ("accuracy",) + (("macro_f1",) if len(labels) > 2 else ())
    return TaskSpec(name=name, kind="regression" if regression else "classification", labels=() if regression else labels,
                    metrics=metrics, dev_splits=("dev",), submission=f"predictions{suffix}")


def _suffix(files: OwnData) -> str:
    """The extension predictions are written with: the test file's, else the validation or training file's."""
    first = next(f for f in (files.test_file, files.validation_file, files.train_file) if f is not None)
    return "." + own.file_format(first)


def open_task(task: str | None, data: Path | None, files: OwnData) -> TaskData:
    """The task to fine-tune: one's own files (labels: those of the training file, sorted), else ``task`` from
    its official folder ``data``, else from the Hub."""
    if not files.given:
        if not task:
            raise BortError("give --task (with --data, or from the Hugging Face Hub), or your own --train-file and --validation-file")
        spec = get_task(task)
        return TaskData(spec, folder=data)
    if task or data:
        raise BortError("--train-file and --validation-file replace --task and --data: give your own files, or a task, not both")
    if files.train_file is None or files.validation_file is None:
        raise BortError("your own data needs both --train-file and --validation-file (and optionally --test-file)")
    columns = OwnData(files.train_file, files.validation_file, files.test_file, files.text_columns or TEXT_COLUMNS,
                      files.label_column or LABEL_COLUMN, files.regression)
    rows = own.read_rows(files.train_file, columns.text_columns, columns.label_column, need_label=True)
    labels = () if files.regression else own.task_labels(files.train_file, rows)
    spec = own_spec(f"{own.OWN}/{Path(files.train_file).stem}", labels, files.regression, _suffix(files))
    return TaskData(spec, own=columns)


def model_task(config, task: str | None, data: Path | None, files: OwnData) -> TaskData:
    """The task a fine-tuned model (its ``config``) is evaluated or used on: ``task`` if given, else the one it
    was fine-tuned on; one's own task from its recorded columns and labels (flags override the columns)."""
    columns = getattr(config, "bort_text_columns", None)
    if task or columns is None:
        name = task or getattr(config, "bort_task", None)
        if not name:
            raise BortError("the model does not say which task it was fine-tuned on: pass --task")
        if files.given:
            raise BortError(f"{name} is read from --data or the Hub; --validation-file and --test-file are for a model fine-tuned on your own files")
        return TaskData(get_task(name), folder=data)
    regression = config.problem_type == "regression"
    labels = () if regression else tuple(config.id2label[i] for i in range(config.num_labels))
    chosen = OwnData(None, files.validation_file, files.test_file, files.text_columns or tuple(columns),
                     files.label_column or config.bort_label_column, regression)
    spec = own_spec(config.bort_task, labels, regression, _suffix(chosen) if chosen.given else ".jsonl")
    return TaskData(spec, own=chosen)
