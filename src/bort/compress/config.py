"""``CompressConfig``: everything ``bort compress`` takes, built from the stages' own config dataclasses.

Each stage's options come from its config, nested (:func:`bort.options.nested`): the extraction's
``--space``/``--epsilon``, the objectives ``--alpha-*`` of pretraining, fine-tuning's ``--epochs``,
``--lr``, ``--batch-size`` and data options, the task distillation's ``--task-alpha-kd`` and
``--augment``, the benchmark's ``--bench-*``. A stage's config is a :class:`~bort.partial.Partial`: the options
compress takes of it, and compress's departures from the stage's defaults, one line each with its reason; the fields a
stage gets from the run (its folder, the teacher, the corpus, the seed, the budgets) are given when
:mod:`bort.compress.recipe` builds it, and :func:`bort.compress.recipe.check` builds each before the first stage runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path

from bort.bench.recipe import BenchConfig
from bort.data.corpus import CORPUS, SEQ_LEN
from bort.errors import BortError
from bort.extract.pareto import check_min_speedup
from bort.extract.recipe import ExtractConfig
from bort.finetune.augment import Augment
from bort.finetune.recipe import FinetuneConfig
from bort.finetune.task_distill import TaskDistill
from bort.models.loading import TEACHER
from bort.models.slices import INITS
from bort.options import nested, opt
from bort.partial import Partial
from bort.pretrain.recipe import PretrainConfig
from bort.shared import DEVICE, LOGGING_EVERY, LOGGING_STEPS, NO_TRACKER, PROGRESS, REPORT_TO, SEED
from bort.surrogates.latency import LatencySettings
from bort.tasks.registry import get_task
from bort.training.loop import OptimConfig
from bort.training.losses import LogitLoss, check_some_weight
from bort.training.objectives import RepresentationLoss
from bort.training.run import fingerprint
from bort.training.tracking import check_tracking

# The options compress takes of each stage's config (the stage's other fields are set per stage). Fine-tuning's, teacher and student
# alike; ``own``: one's own files (--train-file …), then the run's one task.
_OWN = {"extract": ("space", "epsilon", "refine", "latency"), "pretrain": ("batch_size", "optim", "head", "inputs", "min_view_len", "group_by_length"),
        "finetune": ("own", "epochs", "batch_size", "group_by_length", "optim", "head", "max_seq_len", "patience", "train_examples", "select_on",
                     "select_fraction"),
        "task_distill": ("alpha_kd", "alpha_gold", "temperature", "representation"),
        "augment": ("per_example", "transform", "min_inputs", "inputs_file", "inputs_columns"),
        "bench": ("seq", "threads", "rounds", "runs", "warmup")}


@dataclass(frozen=True)
class CompressConfig:
    """``bort compress``: teacher (and tasks) → extract → pretrain → fine-tune → int8 ONNX → bench → report.

    The defaults are the README's main job: MiniLM, the built-in corpus, no task, within 30 minutes on 2 cores.
    """

    out: Path = field(default=Path("runs/compress"), metadata=opt("run folder, one subfolder per stage; re-running the same command resumes it",
                                                                  aliases=("--output_dir",)))
    teacher: str = field(default="minilm-l6", metadata=TEACHER)
    corpus: str = field(default="builtin", metadata=CORPUS)
    tasks: tuple[str, ...] = field(default=(), metadata=opt("tasks to fine-tune and distil, e.g. glue/sst2 glue/rte (none: a task-agnostic "
                                                           "student)", flag="--task", nargs="+", metavar="NAME"))
    data: tuple[Path, ...] = field(default=(), metadata=opt("each --task's folder of the official download, in the same order "
                                                            "(default: the Hugging Face Hub)", nargs="+", metavar="FOLDER"))
    task_teachers: tuple[str, ...] = field(default=(), metadata=opt("already fine-tuned teachers, one per --task, instead of fine-tuning "
                                                                    "--teacher on each", flag="--task-teacher", nargs="+", metavar="FOLDER"))
    # Without a task, the quality kept is that of the sentence embeddings, scored as `bort evaluate --embedding` does.
    embedding_task: str | None = field(default=None, metadata=opt("without --task: score the teacher's and the student's sentence "
                                                                  "embeddings without fine-tuning on this sentence-pair similarity "
                                                                  "task (e.g. glue/stsb), and report the share kept", metavar="NAME"))
    embedding_data: Path | None = field(default=None, metadata=opt("--embedding-task's folder of the official download (default: the "
                                                                   "Hugging Face Hub)", metavar="FOLDER"))
    min_speedup: float = field(default=4.0, metadata=opt("the student is at least this many times faster than the teacher by î", metavar="X"))
    # docs/design.md: W = S/ê picks the smallest shape when ê is flat; "N× faster, keeping the quality" asks for the lowest ê.
    pick: str = field(default="quality", metadata=opt("quality: the candidate of lowest ê at --min-speedup; w: the paper's best W = S/ê",
                                                      choices=("quality", "w")))
    # BENCHMARKS §10.4: the benchmark's interleaved protocol read the pick 15% slower against the teacher than the check's timing
    # (4.45× timed side by side, 3.8× benched), and î's interpolation errs by up to 10% (§10.3); the budget holds with this margin.
    speedup_margin: float = field(default=0.2, metadata=opt("the extraction's candidates and the pick, timed side by side with the "
                                                            "teacher on the extraction's runtime, are at least (1 + this) × "
                                                            "--min-speedup faster", metavar="FRACTION"))
    extract_steps: int = field(default=20, metadata=opt("n: training steps per extraction candidate for ê"))
    pretrain_steps: int = field(default=600, metadata=opt("pretraining steps of the chosen student"))
    finetune_steps: int | None = field(default=None, metadata=opt("fine-tuning steps per model and task, instead of --epochs", group="length"))
    init: str = field(default="teacher", metadata=opt("start of the extraction candidates and the student: slices of the teacher (its "
                                                      "leading units), importance: slices keeping each layer's most important FFN units, "
                                                      "or random", choices=INITS))
    # BENCHMARKS §7: the hidden-state objective with teacher init keeps the most of a MiniLM-like teacher; its MLM head is a poor signal.
    loss: LogitLoss = field(default_factory=lambda: LogitLoss(alpha_mlm=0.0, alpha_kd=0.0))
    representation: RepresentationLoss = field(default_factory=lambda: RepresentationLoss(alpha_hidden=1.0, alpha_embed=1.0))
    # ε 16 (the extraction's default is 8): about half the trainings, so that the main job fits in 30 minutes on 2 cores.
    # î on ONNX Runtime int8, where the student ships: int8 speeds wide shapes up more than narrow ones, so a shape that is
    # X× faster on PyTorch eager may not be on int8, and the other way round (BENCHMARKS §10.1, §10.2).
    extract: Partial[ExtractConfig] = field(default_factory=lambda: Partial(ExtractConfig, epsilon=16, latency=LatencySettings(runtime="onnx-int8")),
                                            metadata=nested(only=_OWN["extract"]))
    # The corpus's sentences, one per row, at lr 3e-4: sentence embeddings are used on sentences, and these kept the most of the
    # teacher's STS-B per second of training (BENCHMARKS §7). The arch is the extraction's choice and the objectives the run's.
    pretrain: Partial[PretrainConfig] = field(default_factory=lambda: Partial(PretrainConfig, optim=OptimConfig(lr=3e-4, warmup=0.05),
                                                                              inputs="sentences"),
                                              metadata=nested(prefix="pretrain-", only=_OWN["pretrain"]))
    finetune: Partial[FinetuneConfig] = field(default_factory=lambda: Partial(FinetuneConfig), metadata=nested(only=_OWN["finetune"]))
    # The scoreboard's tuned teacher (issue 38: "a better teacher for the student"): one fine-tuning per rate, the best selection
    # score (on the held-out slice of the training set, as each epoch is chosen) teaches the student.
    teacher_lrs: tuple[float, ...] = field(default=(), metadata=opt("learning rates to fine-tune the teacher at, one run each; the one of "
                                                                    "the best selection score teaches the student (none: --lr alone)",
                                                                    nargs="+", metavar="LR"))
    # BENCHMARKS §9: the student fine-tunes best at a higher rate than the teacher, learning the fine-tuned teacher's predictions
    # (α 1) and its hidden states and attention relations, over 4 new inputs per example. `auto` (issue 38, BENCHMARKS §1): pairs
    # re-paired from the training texts (pair-retrieve: on MRPC +20.9 ± 9.9 points kept above chance over dropout, three seeds; on
    # qnli-from-dev, with --group-by-length, 92% kept where dropout kept 62%), single texts by word dropout (4 dropped copies
    # kept about 20 points more of CoLA than 0 or 12). Neither needs a masked-LM.
    student_lr: float = field(default=3e-4, metadata=opt("peak learning rate of the student's fine-tuning (the teacher's is --lr)"))
    student_lrs: tuple[float, ...] = field(default=(), metadata=opt("learning rates to distil the student at, one run each (instead of "
                                                                    "--student-lr); the one of the best selection score is exported",
                                                                    nargs="+", metavar="LR"))
    # Batches of similar lengths for the student (issue 38, BENCHMARKS §1 `grouped`): it kept 9.1 ± 2.6 points more of CoLA above
    # chance on every seed, at about a third of the tokens, and the same share of MRPC with pair-retrieve (`prg` against `prf`).
    # The teacher's fine-tuning stays on random batches (--group-by-length groups both): grouped, it gained nothing on dev
    # (CoLA −2.4 ± 3.1 MCC over three seeds, MRPC +1.0 ± 2.3 over two: BENCHMARKS §1, benchmarks/grouped_teacher.py).
    student_group_by_length: bool = field(default=True, metadata=opt("the student's fine-tuning on random batches, not on batches of "
                                                                     "inputs of similar lengths (--group-by-length groups the teacher's "
                                                                     "too, and the student's whatever this says)"))
    # BENCHMARKS §10.1: over 3 epochs the student's SST-2 dev accuracy was still rising (96.6% of the teacher's); 5 kept 98.5%.
    student_epochs: float = field(default=5.0, metadata=opt("passes of the student's fine-tuning over the training set and its new "
                                                            "inputs (the teacher's: --epochs; --finetune-steps sets both)"))
    task_distill: TaskDistill = field(default_factory=lambda: TaskDistill(representation=RepresentationLoss(alpha_hidden=1.0, alpha_attn=1.0)),
                                      metadata=nested(prefix="task-", only=_OWN["task_distill"]))
    augment: Augment = field(default_factory=lambda: Augment(per_example=4, transform="auto"),
                             metadata=nested(only=_OWN["augment"]))
    bench: Partial[BenchConfig] = field(default_factory=lambda: Partial(BenchConfig),  # the models: the run's teachers and students
                                        metadata=nested(prefix="bench-", only=_OWN["bench"]))
    seq_len: int = field(default=128, metadata=SEQ_LEN)
    seed: int = field(default=0, metadata=SEED)
    device: str = field(default="auto", metadata=DEVICE)
    progress: bool = field(default=True, metadata=PROGRESS)
    report_to: tuple[str, ...] = field(default=NO_TRACKER, metadata=REPORT_TO)  # each training stage's evaluations, to the tracker
    logging_steps: int = field(default=LOGGING_EVERY, metadata=LOGGING_STEPS)

    @property
    def student_grouped(self) -> bool:
        """Whether the student fine-tunes on batches of similar lengths: its own switch, or --group-by-length (both models')."""
        return self.student_group_by_length or self.finetune.group_by_length

    def __post_init__(self) -> None:
        check_tracking(self)
        if self.own_data and self.tasks:
            raise BortError("give either --task NAME … (with --data FOLDER …) or your own files (--train-file …), not both")
        if self.data and len(self.data) != len(self.tasks):
            raise BortError(f"--data needs one folder per --task: got {len(self.tasks)} task(s) and {len(self.data)} folder(s)")
        if self.task_teachers and len(self.task_teachers) != len(self.jobs()):
            raise BortError(f"--task-teacher needs one fine-tuned teacher per task: got {len(self.task_teachers)} for {len(self.jobs())} task(s)")
        if self.embedding_task and (self.tasks or self.own_data):
            raise BortError("--embedding-task scores a task-agnostic student (no --task); with a task, the student is scored on it")
        if self.embedding_data and not self.embedding_task:
            raise BortError("--embedding-data needs --embedding-task (e.g. --embedding-task glue/stsb)")
        if len({t.rstrip("/") for t in self.tasks}) != len(self.tasks):
            raise BortError("--task names a task twice; give each once")
        if self.pick not in ("quality", "w"):
            raise BortError(f"--pick must be quality or w, got '{self.pick}'")
        check_min_speedup(self.min_speedup)
        if self.extract.latency.head != "encoder":
            raise BortError("--latency-head: bort compress times the top its students ship with (its tasks' head, or the bare encoder "
                            "without a task); drop it")
        if not 0 <= self.speedup_margin < 1:
            raise BortError(f"--speedup-margin is a fraction of --min-speedup in [0, 1), e.g. 0.05, got {self.speedup_margin}")
        if not 0 < self.student_epochs < math.inf:
            raise BortError(f"--student-epochs must be positive and finite, got {self.student_epochs}")
        for flag, lrs in (("--teacher-lrs", self.teacher_lrs), ("--student-lrs", self.student_lrs)):
            if not all(0 < lr < math.inf for lr in lrs) or len(set(lrs)) != len(lrs):
                raise BortError(f"{flag} takes distinct positive learning rates, e.g. 3e-5 1e-4 3e-4, got {' '.join(map(str, lrs))}")
        if self.teacher_lrs and self.task_teachers:
            raise BortError("--teacher-lrs fine-tunes --teacher on each task, which --task-teacher replaces: give one of them")
        if not 0 < self.student_lr < math.inf:
            raise BortError(f"--student-lr must be a positive learning rate, e.g. 3e-4, got {self.student_lr}")
        if min(self.extract_steps, self.pretrain_steps, self.finetune_steps or 1) < 1:
            raise BortError("--extract-steps, --pretrain-steps and --finetune-steps must be at least 1")
        check_some_weight(self.loss.weights | self.representation.weights)

    def settings(self) -> dict:
        """The run's settings as a resumed run compares them (:func:`~bort.training.run.fingerprint`): each stage's config only by
        the options compress takes of it, its other fields being placeholders set per stage."""
        return fingerprint({f.name: {k: getattr(v, k) for k in _OWN[f.name]} if f.name in _OWN else v
                            for f in fields(self) for v in (getattr(self, f.name),)})

    @property
    def own_data(self) -> bool:
        """Whether the task is the user's own files (``--train-file …``)."""
        return self.finetune.own.given

    def ship_head(self) -> str:
        """The top the students ship with, which î times: the tasks' head (regression's is a classifier's), the bare encoder
        without a task, and also where the tasks' heads differ (one student shape serves them all)."""
        if self.own_data:
            return "classification"
        kinds = {get_task(t).kind.replace("regression", "classification") for t in self.tasks}
        return kinds.pop() if len(kinds) == 1 else "encoder"

    def jobs(self) -> list[tuple[str, dict, str | None]]:
        """One ``(name, task and data of fine-tuning, given teacher)`` per task (none without a task); ``name`` is the
        subfolder under RUN/finetune and RUN/export."""
        given = list(self.task_teachers) or [None] * max(len(self.tasks), 1)
        if self.own_data:
            return [(_slug(str(self.finetune.own.train_file or self.finetune.own.validation_file)), {}, given[0])]
        short = [_slug(t) for t in self.tasks]
        names = [s if short.count(s) == 1 else t.rstrip("/").replace("/", "-") for s, t in zip(short, self.tasks)]  # glue-rte, superglue-rte
        return [(n, {"task": t, "data": d}, g) for n, t, d, g in zip(names, self.tasks, self.data or (None,) * len(self.tasks), given)]


def _slug(name: str) -> str:
    """A task's folder name: ``glue/sst2`` → ``sst2``; a file ``data/train.csv`` → ``train``; :meth:`CompressConfig.jobs` names two
    tasks of one name in different benchmarks by their full names."""
    return Path(name).stem if "." in Path(name).name else name.rstrip("/").rsplit("/", 1)[-1]
