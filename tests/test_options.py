"""The options generated from config dataclasses, and --config files (toy dataclasses shaped like the real ones)."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from bort.errors import BortError
from bort.options import add_options, build, nested, opt, parse_args
from bort.partial import Partial


@dataclass(frozen=True)
class Shape:
    """Like Arch: a dataclass read from 'D,A,H,I' by a parse function that raises BortError."""

    D: int
    H: int

    @classmethod
    def parse(cls, text: str) -> Shape:
        parts = text.split(",")
        if len(parts) != 2 or not all(p.isdigit() for p in parts):
            raise BortError(f"invalid shape '{text}': write it as D,H, e.g. 2,64")
        return cls(int(parts[0]), int(parts[1]))


@dataclass(frozen=True)
class Optim:
    lr: float = field(default=5e-4, metadata=opt("peak learning rate"))
    weight_decay: float = 0.01
    warmup: float = field(default=0.1, metadata=opt("warm-up fraction of the steps (0.1 = 10%)"))


@dataclass(frozen=True)
class Head:
    steps: int = field(default=200, metadata=opt("steps to train an MLM head"))
    batch_size: int = 16
    seed: int = 0


@dataclass(frozen=True)
class Train:
    out: Path = field(metadata=opt("output folder"))
    student: str | None = field(default=None, metadata=opt("student folder", group="who"))
    shape: Shape | None = field(default=None, metadata=opt("the student's shape D,H", parse=Shape.parse, group="who"))
    epochs: float = field(default=3.0, metadata=opt(group="length"))
    steps: int | None = field(default=None, metadata=opt("optimiser steps", group="length"))
    optim: Optim = field(default_factory=lambda: Optim(lr=5e-5), metadata=nested())
    head: Head = field(default_factory=Head, metadata=nested(prefix="head-", only=("steps",), inherit={"seed": "seed"}))
    bf16: Literal["auto", "on", "off"] = "auto"
    batches: tuple[int, ...] = (1, 8)
    models: tuple[str, ...] = field(default=(), metadata=opt("model folders", nargs="+"))
    kind: str = field(default="local", metadata=opt("where it runs", flag="--backend", choices=("local", "ray")))
    seed: int = 0
    progress: bool = field(default=True, metadata=opt("no progress bars"))
    force: bool = False
    secret: int = field(default=7, metadata=opt(cli=False))


@dataclass(frozen=True)
class Other:
    """A second verb whose optimiser (nested without metadata) has its own defaults."""

    optim: Optim = field(default_factory=lambda: Optim(lr=1e-3, warmup=0.05))
    device: str = "auto"


@dataclass(frozen=True)
class Extra:
    """Like AgoraConfig: nests the whole Train config as ``base``, which the verb gives itself."""

    base: Train
    variants: int = 4
    max_rounds: int | None = None


def make_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    parser = argparse.ArgumentParser(prog="bort")
    sub = parser.add_subparsers(dest="command", required=True)
    verbs = {name: sub.add_parser(name) for name in ("train", "other")}
    add_options(verbs["train"], Train)
    add_options(verbs["train"].add_argument_group("Extra"), Extra, skip=("base",))
    add_options(verbs["other"], Other, defaults={"device": "cpu"})
    return parser, verbs


def parse(*argv: str) -> argparse.Namespace:
    return parse_args(make_parser()[0], list(argv))


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "run.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_generated_flags_and_per_parent_defaults():
    other = parse("other")
    assert (other.lr, other.weight_decay, other.warmup, other.device) == (1e-3, 0.01, 0.05, "cpu")  # "cpu": the defaults= override
    a = parse("train", "--out", "o")
    assert (a.out, a.student, a.shape, a.epochs, a.steps) == (Path("o"), None, None, 3.0, None)
    assert (a.lr, a.weight_decay, a.warmup, a.head_steps) == (5e-5, 0.01, 0.1, 200)
    assert (a.bf16, a.batches, a.models, a.backend, a.seed, a.progress, a.force) == ("auto", (1, 8), (), "local", 0, True, False)
    assert (a.variants, a.max_rounds, a.config) == (4, None, None)
    assert not any(hasattr(a, name) for name in ("secret", "head_batch_size", "head_seed", "kind", "no_progress"))


def test_help_shows_each_default_once_from_the_dataclass():
    _, verbs = make_parser()
    text = " ".join(verbs["train"].format_help().split())
    for needle in ("--lr LR peak learning rate (default: 5e-05)", "--head-steps HEAD_STEPS steps to train an MLM head (default: 200)",
                   "--out OUT output folder (required)", "(0.1 = 10%) (default: 0.1)", "--bf16 {auto,on,off} (default: auto)",
                   "--batches BATCHES (default: 1,8)", "--backend {local,ray} where it runs (default: local)",
                   "--no-progress no progress bars", "--config FILE.yaml"):
        assert needle in text
    assert "--steps STEPS optimiser steps --lr" in text  # no default shown for None
    assert text.endswith("Extra: --variants VARIANTS (default: 4) --max-rounds MAX_ROUNDS")
    assert "--head-batch-size" not in text and "--secret" not in text and "--force (default" not in text
    assert "(default: 0.001)" in " ".join(verbs["other"].format_help().split())


def test_flags_override_the_defaults_and_build_nested_configs():
    a = parse("train", "--out", "o", "--lr", "1e-4", "--weight-decay", "0", "--head-steps", "5", "--seed", "3", "--steps", "10",
              "--shape", "2,64", "--bf16", "on", "--batches", "2,4", "--models", "a", "b", "--backend", "ray", "--no-progress",
              "--force", "--max-rounds", "2")
    cfg = build(Train, a)
    assert cfg == Train(out=Path("o"), shape=Shape(2, 64), steps=10, optim=Optim(lr=1e-4, weight_decay=0.0), head=Head(steps=5, seed=3),
                        bf16="on", batches=(2, 4), models=("a", "b"), kind="ray", seed=3, progress=False, force=True)
    assert build(Extra, a, base=cfg) == Extra(base=cfg, max_rounds=2)
    assert build(Other, parse("other", "--lr", "0.5")) == Other(optim=Optim(lr=0.5, warmup=0.05), device="cpu")
    assert build(Train, parse("train", "--out", "o")) == Train(out=Path("o"))


def test_config_file_sets_values_under_either_spelling(tmp_path):
    path = write(tmp_path, "out: runs/x\nlr: 5e-5\nweight-decay: 0\nhead_steps: 7\n--seed: 2\nno-progress: true\nbatches: [2, 4]\n"
                 "models: a\nshape: '2,64'\nmax-rounds: 3\nbf16: 'off'\n")
    a = parse("train", "--config", path)
    assert (a.out, a.lr, a.weight_decay, a.head_steps, a.seed, a.progress) == (Path("runs/x"), 5e-5, 0.0, 7, 2, False)
    assert (a.batches, a.models, a.shape, a.max_rounds, a.bf16) == ((2, 4), ("a",), Shape(2, 64), 3, "off")
    assert build(Train, a).head == Head(steps=7, seed=2)
    assert parse("train", "--config", write(tmp_path, "out: o\nprogress: false\nforce: true\nbatches: 3\n")).batches == (3,)
    assert parse("train", "--config", write(tmp_path, "out: o\nsteps: null\nmodels: [a, b]\n")).models == ("a", "b")


def test_flags_beat_the_file(tmp_path):
    path = write(tmp_path, "out: from-file\nlr: 0.1\nhead-steps: 7\nforce: false\n")
    a = parse("train", "--lr", "0.2", "--config", path, "--force")  # the flag wins before or after --config
    assert (a.out, a.lr, a.head_steps, a.force) == (Path("from-file"), 0.2, 7, True)


@pytest.mark.parametrize("text, needles", [
    ("out: o\nlrr: 1\n", ("unknown option 'lrr'", "did you mean 'lr'")),
    ("out: o\nfoo: 1\n", ("unknown option 'foo'", "--help")),
    ("- out\n- o\n", ("not a mapping",)),
    ("out: [o\n", ("cannot parse",)),
    ("out: o\nsteps: many\n", ("'steps' must be an integer", "'many'")),
    ("out: o\nsteps: 1.5\n", ("'steps' must be an integer",)),
    ("out: o\nforce: 1\n", ("'force' must be true or false",)),
    ("out: o\nbf16: off\n", ("'bf16' must be one of auto, on, off", "quote")),
    ("out: o\nbackend: cloud\n", ("'backend' must be one of local, ray, not 'cloud'",)),
    ("out: o\nlr: [1, 2]\n", ("'lr' must be a number",)),
    ("out: o\nlr: null\n", ("'lr' must be a number",)),
    ("out: o\nbatches: [1, x]\n", ("'batches' must be an integer, or a list of them",)),
    ("out: o\nshape: '2,x'\n", ("'shape': invalid shape '2,x'", "e.g. 2,64")),
])
def test_bad_config_files_are_one_line_errors(tmp_path, text, needles):
    path = write(tmp_path, text)
    with pytest.raises(BortError) as exc:
        parse("train", "--config", path)
    message = str(exc.value)
    assert "\n" not in message and path in message
    for needle in needles:
        assert needle in message


def test_missing_config_file(tmp_path):
    with pytest.raises(BortError, match=r"^--config file '.*nope\.yaml' does not exist: write one 'option: value' per line[^\n]*$"):
        parse("train", "--config", str(tmp_path / "nope.yaml"))


def argparse_error(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as exc:
        parse(*argv)
    assert exc.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1
    return errors[0]


def test_required_options_are_checked_after_the_file(tmp_path, capsys):
    assert argparse_error(capsys, "train").endswith("bort train: error: the following arguments are required: --out")
    assert parse("train", "--config", write(tmp_path, "out: o\n")).out == Path("o")


@pytest.mark.parametrize("argv, config", [
    (("--steps", "5", "--epochs", "2"), None),
    (("--student", "s", "--shape", "2,64"), None),
    (("--steps", "5"), "epochs: 2\n"),
    ((), "steps: 5\nepochs: 2\n"),
])
def test_exclusive_options(tmp_path, capsys, argv, config):
    extra = ("--config", write(tmp_path, config)) if config else ()
    line = argparse_error(capsys, "train", "--out", "o", *argv, *extra)
    assert "--steps" in line or "--student" in line
    assert "--epochs" in line or "--shape" in line


def test_bad_flags_name_the_option(capsys):
    """A bad value is one BortError line naming the flag (the CLI prints it); a bad choice is argparse's own error."""
    with pytest.raises(BortError, match=r"^--lr 'abc' is not a number; see --help$"):
        parse("train", "--out", "o", "--lr", "abc")
    with pytest.raises(BortError, match=r"^invalid shape '2,x': write it as D,H"):
        parse("train", "--out", "o", "--shape", "2,x")
    assert "argument --backend: invalid choice: 'cloud'" in argparse_error(capsys, "train", "--out", "o", "--backend", "cloud")


def test_mistakes_in_the_dataclasses_fail_early():
    @dataclass
    class Unsupported:
        table: dict = field(default_factory=dict)

    with pytest.raises(TypeError, match="table: cannot make an option"):
        add_options(argparse.ArgumentParser(), Unsupported)
    with pytest.raises(TypeError, match="before its argument groups"):
        add_options(argparse.ArgumentParser().add_argument_group("g"), Other)
    with pytest.raises(ValueError, match="no option"):
        add_options(argparse.ArgumentParser(), Other, defaults={"lrr": 1})
    with pytest.raises(ValueError, match="no field"):
        add_options(argparse.ArgumentParser(), Other, skip=("optimiser",))


@dataclass(frozen=True)
class Renamed:
    task_teacher: str | None = field(default=None, metadata=opt("the task's teacher", old_flag="--teacher"))


@pytest.mark.parametrize(("argv", "config", "note"), [
    (["--task-teacher", "T"], None, None),
    (["--teacher", "T"], None, "bort: note: --teacher is now --task-teacher (the old spelling goes in the next release)"),
    (["--teacher=T"], None, "bort: note: --teacher is now --task-teacher (the old spelling goes in the next release)"),
    ([], "teacher: T\n", "bort: note: 'teacher' in --config file '{path}' is now --task-teacher (the old spelling goes in the next release)"),
    ([], "task-teacher: T\n", None),
])
def test_a_former_spelling_is_taken_with_one_line_that_names_the_new_one(tmp_path, capsys, argv, config, note):
    parser = argparse.ArgumentParser()
    add_options(parser, Renamed)
    path = tmp_path / "c.yaml"
    if config:
        path.write_text(config)
    args = parse_args(parser, [*argv, *(["--config", str(path)] if config else [])])
    assert build(Renamed, args) == Renamed(task_teacher="T")
    assert capsys.readouterr().err.splitlines() == ([note.format(path=path)] if note else [])



@dataclass(frozen=True)
class Stage:
    """Like a stage config: a field set per run (no default), and options checked when it is built."""

    out: Path
    steps: int = field(default=10, metadata=opt("steps"))
    optim: Optim = field(default_factory=Optim)

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise BortError(f"--steps must be at least 1, got {self.steps}")


@dataclass(frozen=True)
class Chain:
    """Like compress: a stage's options under a prefix, with one departure from its defaults, and no placeholder."""

    stage: Partial[Stage] = field(default_factory=lambda: Partial(Stage, steps=20), metadata=nested(prefix="stage-", only=("steps", "optim")))


def test_a_partial_config_reads_its_values_then_the_class_defaults_and_is_checked_when_built():
    part = Partial(Stage, steps=20)
    assert (part.steps, part.optim) == (20, Optim()) and part == Partial(Stage, steps=20) != Partial(Stage)
    assert part.build(out=Path("o")) == Stage(Path("o"), 20) and part.replace(steps=3).build(out=Path("o")).steps == 3
    with pytest.raises(AttributeError, match="set when the config is built"):
        part.out
    with pytest.raises(TypeError, match="no field"):
        Partial(Stage, nope=1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        part.steps = 1


def test_a_partial_config_nested_in_a_verb_takes_its_prefixed_options_and_names_them_when_built():
    parser = argparse.ArgumentParser()
    add_options(parser, Chain)
    assert "(default: 20)" in parser.format_help() and "--stage-lr" in parser.format_help()
    chain = build(Chain, parse_args(parser, ["--stage-lr", "0.1"]))
    assert chain.stage.build(out=Path("o")) == Stage(Path("o"), 20, Optim(lr=0.1))
    bad = build(Chain, parse_args(parser, ["--stage-steps", "0"]))  # unchecked until built: the per-run fields are not there yet
    with pytest.raises(BortError, match="^--stage-steps must be at least 1, got 0$"):
        bad.stage.build(out=Path("o"))


@dataclass(frozen=True)
class Tune:
    """Like FinetuneConfig: a switch off by default, with Trainer's spelling as an alias."""

    grouped: bool = field(default=False, metadata=opt("batches of similar lengths", aliases=("--grouped_batches",)))


@dataclass(frozen=True)
class Run:
    """Like compress: the switch on by default, through the stage's Partial."""

    tune: Partial[Tune] = field(default_factory=lambda: Partial(Tune, grouped=True), metadata=nested(only=("grouped",)))


@pytest.mark.parametrize(("argv", "config", "grouped"), [
    ([], None, True), (["--no-grouped"], None, False), (["--grouped"], None, True), (["--grouped_batches"], None, True),
    ([], "no-grouped: true\n", False), ([], "grouped: false\n", False), ([], "grouped_batches: true\n", True),
    (["--grouped"], "no-grouped: true\n", True),
])
def test_a_switch_whose_default_turned_on_still_takes_its_former_spelling_and_aliases(tmp_path, argv, config, grouped):
    parser = argparse.ArgumentParser()
    add_options(parser, Run)
    help_text = " ".join(parser.format_help().split())
    assert "--no-grouped batches of similar lengths (on by default: this switch turns it off)" in help_text
    assert "--grouped " not in help_text and "--grouped_batches" not in help_text
    path = tmp_path / "c.yaml"
    if config:
        path.write_text(config)
    args = parse_args(parser, [*argv, *(["--config", str(path)] if config else [])])
    assert build(Run, args).tune.grouped is grouped
    off = argparse.ArgumentParser()
    add_options(off, Tune)  # where the default is off, the flag and its alias turn it on, as before
    assert build(Tune, parse_args(off, ["--grouped_batches"])).grouped and not build(Tune, parse_args(off, [])).grouped
