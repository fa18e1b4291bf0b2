"""configs/ (issue 37): a YAML file for each command the README shows, named after its verb first. Each parses into
its verb's options, and runs a tiny version of itself: the tiny run's flags override the file's paths and sizes, as a
user's flags override a --config file."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from bad_inputs import (  # noqa: F401
    Env,
    classifier,
    env,
    export,
    run_agora,
    run_bench,
    run_compress,
    run_evaluate,
    run_export,
    run_finetune,
    run_predict,
    run_prepare,
    run_pretrain,
    sst2,
)
from bad_inputs import run_extract as _run_extract

from bort import cli, options

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))
EPOCH = ("--epochs", "1")  # the files give --epochs, which --steps would contradict: one pass over the tiny data instead


def verb(path: Path) -> list[str]:
    """The command a config file is for, from its name: ``teacher-prepare-minilm.yaml`` → ``teacher prepare``."""
    return ["teacher", "prepare"] if path.name.startswith("teacher-prepare-") else [path.name.split("-")[0]]


def own_files(e: Env) -> list:
    """Own-data files with the columns configs/compress-own-data.yaml names (text, sentiment)."""
    rows = [("good day", "pos"), ("bad film", "neg"), ("great fun", "pos"), ("awful plot", "neg")] * 4
    table = "text,sentiment\n" + "".join(f"{t} {i},{s}\n" for i, (t, s) in enumerate(rows))
    return ["--train-file", e.write("train.csv", table), "--validation-file", e.write("dev.csv", table)]


# How each file's tiny run overrides it, and the file its run writes (None: the command prints its result).
TINY = {
    "compress-sst2-rte": (lambda e: run_compress(e, "--data", e.data), "out/compress.json"),
    "compress-own-data": (lambda e: run_compress(e, *own_files(e), task=()), "out/compress.json"),
    "extract-minilm": (lambda e: _run_extract(e), "out/result.json"),
    "pretrain-student": (lambda e: run_pretrain(e, arch=("--student", e.teacher)), "out/pretrain.json"),
    "finetune-rte": (lambda e: run_finetune(e, steps=EPOCH), "out/eval.json"),
    "finetune-rte-distil": (lambda e: run_finetune(e, "--task-teacher", e.classifier, "--infill-model", e.teacher, "--augment", "1",
                                                   steps=EPOCH), "out/finetune.json"),
    "finetune-rte-agora": (lambda e: run_agora(e, "--infill-model", e.teacher, "--variants", "1", steps=EPOCH), "out/agora.json"),
    "evaluate-rte": (lambda e: run_evaluate(e), None),
    "teacher-prepare-minilm": (lambda e: run_prepare(e), "out/bort_teacher.json"),
    "export-int8": (lambda e: run_export(e), "out/model.onnx"),
    "predict-rte": (lambda e: run_predict(e, "--task", "glue/sst2", input=e.data), None),
    "bench-student-teacher": (lambda e: run_bench(e, models=[e.export, e.classifier]), "out/bench.json"),
}


def test_each_command_of_the_readme_has_a_config_and_each_config_a_tiny_run():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = r"teacher prepare|extract|pretrain|finetune|evaluate|export|predict|bench|compress"
    shown = {m.group(1) for m in re.finditer(rf"^ {{4,}}(?:torchrun .*?-m |accelerate launch .*?-m )?bort ({commands})\b", readme, re.M)}
    assert shown and shown <= {" ".join(verb(p)) for p in CONFIGS}, shown
    assert {p.stem for p in CONFIGS} == set(TINY)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_a_config_sets_each_of_its_options(path):
    args = options.parse_args(cli.build_parser(), [*verb(path), "--config", str(path)])
    for key, value in yaml.safe_load(path.read_text(encoding="utf-8")).items():
        got = getattr(args, key.replace("-", "_"))
        got = [str(x) for x in got] if isinstance(got, tuple) else got
        want = [str(x) for x in (value if isinstance(value, list) else [value])] if isinstance(got, list) else value
        assert str(got) == str(want) or got == want, (key, got, want)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_a_config_runs_a_tiny_version_of_itself(path, env, capsys):  # noqa: F811 (the fixture)
    tiny, wrote = TINY[path.stem]
    argv = [str(a) for a in tiny(env)]  # the verb, then the tiny run's flags
    assert argv[:len(verb(path))] == verb(path)
    assert cli.main([*argv, "--config", str(path)]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    if wrote is None:
        assert json.loads(out.splitlines()[-1])  # the metrics (evaluate) or the last prediction (predict) as JSON
    else:
        assert (env.tmp / wrote).is_file()
    if path.stem == "finetune-rte-distil":  # the file's own settings were used where the tiny run leaves them
        report = json.loads((env.tmp / wrote).read_text())
        assert (report["alpha_kd"], report["alpha_gold"], report["temperature"], report["teacher"]) == (0.5, 0.5, 1.0, str(env.classifier))
