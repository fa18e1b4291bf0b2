"""``bort finetune --augment K``: new training inputs made from each training example and labelled by the teacher;
``--augment-inputs FILE``: unlabelled inputs the user has, labelled by the teacher the same way.

The training examples are taken in chunks of :data:`CHUNK`. Each chunk gets ``K`` variants of each of
its inputs (:func:`~bort.finetune.transforms.fresh_inputs`: variant ``v`` of chunk ``c`` with a seed made
from the run's seed, ``c`` and ``v``), keeps those equal to no training or dev input nor to an earlier
new one, and has them labelled with the teacher's soft predictions. A finished chunk is appended to
``OUT/augmented.jsonl`` (one line per new input: ``idx``, ``source``, ``texts``, and ``soft_label``,
the probabilities, or ``soft_score`` for regression), then ``OUT/augmented_state.json`` records it
atomically. The given inputs follow, in chunks of their own, those equal to no training, dev or made input
(``source``: their line in the file). A resumed run cuts the file back to the last recorded chunk and goes on from there: the
same seed gives the same file, with or without a kill. New inputs never enter dev.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

from bort.atomic import atomic_write_text
from bort.errors import BortError
from bort.finetune.task_distill import TaskTeacher, from_soft
from bort.finetune.transforms import TRANSFORMS, fresh_inputs, make_transform
from bort.options import opt
from bort.tasks.features import Feature, encode
from bort.tasks.readers import own
from bort.tasks.spec import Example, TaskSpec

FILE, STATE = "augmented.jsonl", "augmented_state.json"
MOST_PER_EXAMPLE = 20  # --augment-min-inputs raises K up to this
CHUNK = 256  # training examples per appended chunk: what a kill during augmentation can cost


@dataclass(frozen=True)
class Augment:
    """How new inputs are made: ``--augment`` (per training example; needs ``--task-teacher``) and Agora's too."""

    per_example: int = field(default=0, metadata=opt("new inputs made from each training example and labelled by --task-teacher "
                                                     "(TinyBERT used 20; 4 by dropout in BENCHMARKS §9)", flag="--augment", metavar="K"))
    transform: str = field(default="mlm-infill", metadata=opt("how new inputs are made (--augment, --agora)", choices=TRANSFORMS))
    infill_model: str | None = field(default=None, metadata=opt("masked-LM for mlm-infill (e.g. a prepared teacher); default: --model, "
                                                                "if it has an MLM head"))
    # Issue 38's lever: TinyBERT made about 20 new inputs per example for the small GLUE sets; a large set needs few.
    min_inputs: int | None = field(default=None, metadata=opt(f"raise K for a small training set until it holds at least N inputs with "
                                                              f"its new ones, at most {MOST_PER_EXAMPLE} per example (TinyBERT's)",
                                                              flag="--augment-min-inputs", metavar="N"))

    # Issue 38: inputs of the task's own kind that the user has without labels (distillation's transfer set: Hinton et al.
    # 2015; Turc et al. 2019's "well-read students"), labelled by the teacher like the made ones.
    inputs_file: Path | None = field(default=None, metadata=opt(
        "a .csv, .tsv or .jsonl file of unlabelled inputs of the task (your own in-domain texts) that --task-teacher labels for the "
        "student to learn from beside the training set and any --augment ones", flag="--augment-inputs", metavar="FILE"))
    inputs_columns: tuple[str, ...] | None = field(default=None, metadata=opt(
        "the text column of --augment-inputs, or a pair's two: a,b (default: --text-columns with your own data, else text, or "
        "text_a,text_b for pairs)", flag="--augment-columns", metavar="A[,B]"))

    def __post_init__(self) -> None:
        if self.inputs_columns is not None and not 1 <= len(self.inputs_columns) <= 2:
            raise BortError(f"--augment-columns takes one column, or two for pairs (a,b); got {len(self.inputs_columns)}")
        if self.transform not in TRANSFORMS:
            raise BortError(f"--transform must be one of {', '.join(TRANSFORMS)}, got '{self.transform}'")
        if self.per_example < 0:
            raise BortError(f"--augment must be 0 or more, got {self.per_example}")
        if self.min_inputs is not None and self.min_inputs < 1:
            raise BortError(f"--augment-min-inputs must be at least 1, got {self.min_inputs}")

    @property
    def active(self) -> bool:
        """Whether new inputs are made or read (``--augment`` K > 0, ``--augment-min-inputs``, ``--augment-inputs``)."""
        return self.per_example > 0 or self.min_inputs is not None or self.inputs_file is not None

    def per_example_for(self, n: int) -> int:
        """K for a training set of ``n`` examples: ``--augment``, raised to reach ``--augment-min-inputs`` in all, at most
        :data:`MOST_PER_EXAMPLE`."""
        if self.min_inputs is None or n == 0:
            return self.per_example
        return min(MOST_PER_EXAMPLE, max(self.per_example, -(-self.min_inputs // n) - 1))

    def made_of(self) -> dict:
        """The settings the new inputs depend on (the options added since --augment, unset, left out: files made before them stay
        valid). ``--augment-inputs``' content enters through :func:`augment`."""
        return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items() if k not in _SINCE_AUGMENT or v is not None}

    def read_inputs(self, width: int, columns: tuple[str, ...] | None = None) -> list[Example]:
        """The rows of ``--augment-inputs`` (none without it) as unlabelled inputs of ``width`` texts, read from
        ``--augment-columns``, else ``columns`` (one's own data's), else ``text`` or ``text_a,text_b``."""
        if self.inputs_file is None:
            return []
        columns = self.inputs_columns or columns or (("text",) if width == 1 else ("text_a", "text_b"))
        if len(columns) != width:
            raise BortError(f"--augment-inputs '{self.inputs_file}': the task's inputs have {width} text(s), the columns read are "
                            f"{','.join(columns)}; name {width} with --augment-columns")
        return [Example(idx=f"inputs-{row.line}", texts=row.texts, label=None)
                for row in own.read_rows(self.inputs_file, columns, None, need_label=False)]


_SINCE_AUGMENT = ("min_inputs", "inputs_file", "inputs_columns")


def soft_field(task: TaskSpec) -> str:
    """The key of a new input's soft label in ``augmented.jsonl`` and ``agora_points.jsonl``."""
    return "soft_score" if task.kind == "regression" else "soft_label"


def _seed(seed: int, chunk: int, variant: int) -> int:
    """A 63-bit seed for one (chunk, variant), distinct for every pair."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{chunk}/{variant}".encode()).digest()[:8], "big") >> 1


def _resume(path: Path, state: Path, key: str) -> tuple[list[dict], int]:
    """The lines of the chunks recorded for this ``key`` (the file cut back to them) and the number of those chunks."""
    done = json.loads(state.read_text(encoding="utf-8")) if state.is_file() else {}
    if done.get("key") != key or not path.is_file():  # another run's file, or one killed before its first chunk
        path.unlink(missing_ok=True)
        return [], 0
    with open(path, "r+b") as f:
        f.truncate(done["bytes"])  # lines of a chunk written but not recorded: it is made again
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()], done["chunks"]


def _as_given(inputs: Sequence[tuple[str, ...]], seed: int) -> list[tuple[str, ...]]:
    """The identity, as a transformation: :func:`fresh_inputs` of it keeps the given inputs not seen."""
    return list(inputs)


def augment(cfg: Augment, out: Path, examples: Sequence[Example], seen: set[tuple[str, ...]], teacher: TaskTeacher, *, seed: int,
            model: str, device: str, given: Sequence[Example] = ()) -> list[dict]:
    """Make (or finish) ``out/augmented.jsonl`` from the training ``examples`` and the ``given`` unlabelled inputs
    (``--augment-inputs``, :meth:`Augment.read_inputs`), and return its lines.

    ``seen`` holds the training and dev inputs (new inputs join it); ``teacher`` labels the new inputs and the given ones
    (those not seen); ``model`` is the mlm-infill default. A file made with other settings or data is made afresh.
    """
    task = teacher.task
    if task.kind == "multiple_choice":
        raise BortError(f"--augment and --augment-inputs apply to classification and regression tasks; {task.name} is multiple choice")
    per_example = cfg.per_example_for(len(examples))
    made_of = [cfg.made_of(), seed, model, teacher.identity, teacher.max_len, [ex.texts for ex in examples], sorted(seen)]
    made_of += [[ex.texts for ex in given]] if given else []  # without given inputs, the key of the files made before them
    path, state = Path(out) / FILE, Path(out) / STATE
    key = hashlib.sha256(json.dumps(made_of).encode()).hexdigest()
    lines, start = _resume(path, state, key)
    seen.update(tuple(line["texts"]) for line in lines)
    name, transform = soft_field(task), None
    made = -(-len(examples) // CHUNK) if per_example else 0  # the chunks of made inputs, then those of the given ones
    for c in range(start, made + -(-len(given) // CHUNK)):
        if c < made:
            part = examples[c * CHUNK : (c + 1) * CHUNK]
            transform = transform or make_transform(cfg.transform, cfg.infill_model or model, device=device,
                                                    pool=[ex.texts for ex in examples])
            fresh = fresh_inputs(transform, [ex.texts for ex in part], per_example, seen, lambda v, c=c: _seed(seed, c, v))
        else:
            part = given[(c - made) * CHUNK : (c - made + 1) * CHUNK]
            fresh = fresh_inputs(_as_given, [ex.texts for ex in part], 1, seen, lambda v: 0)  # those not seen, a repeat once
        new = [Example(idx=f"augmented-{len(lines) + j}", texts=texts, label=None) for j, (_, texts) in enumerate(fresh)]
        rows = [{"idx": ex.idx, "source": part[i].idx, "texts": list(ex.texts), name: soft}
                for ex, (i, _), soft in zip(new, fresh, teacher.soft_labels(new) if new else [])]
        with open(path, "a", encoding="utf-8") as f:
            f.write("".join(json.dumps(row) + "\n" for row in rows))
            f.flush()
            os.fsync(f.fileno())
        atomic_write_text(state, json.dumps({"key": key, "chunks": c + 1, "bytes": path.stat().st_size}))
        lines += rows
    return lines


def augmented_features(task: TaskSpec, lines: Sequence[dict], tokenizer: PreTrainedTokenizerBase, max_len: int) -> list[Feature]:
    """The new inputs as training features: the teacher's prediction as their gold label, its soft label as their teacher target."""
    labelled = [from_soft(task, line[soft_field(task)]) for line in lines]
    examples = [Example(idx=line["idx"], texts=tuple(line["texts"]), label=label) for line, (label, _) in zip(lines, labelled)]
    return [replace(f, teacher=soft) for f, (_, soft) in zip(encode(task, examples, tokenizer, max_len), labelled)]


def scored_inputs(augmented: Sequence[dict], scored: Sequence[Example]) -> int:
    """How many new inputs (an --augment-inputs file's, mostly) are inputs of the scored split, said on stderr: their teacher labels
    were learnt, so the score is optimistic. Under --select-on train the split is read only after training, so they could not be left
    out before (algorithms.md §4d)."""
    texts = {ex.texts for ex in scored}
    leaked = sum(tuple(line["texts"]) in texts for line in augmented)
    if leaked:
        tqdm.write(f"warning: {leaked} of the {len(augmented)} new inputs are inputs of the scored split; its score is optimistic (the "
                   "student learnt the teacher's labels of them): leave them out of --augment-inputs", file=sys.stderr)
    return leaked
