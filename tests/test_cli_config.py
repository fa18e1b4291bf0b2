"""The CLI is generated from the config dataclasses: defaults from one source, ``--config FILE.yaml``, devices checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from bort import options
from bort.arch import Arch
from bort.cli import build_parser, main
from bort.errors import BortError
from bort.finetune.recipe import FinetuneConfig
from bort.pretrain.recipe import PretrainConfig
from bort.shared import resolve_device
from bort.teacher.prepare import HeadConfig
from bort.training.loop import OptimConfig
from bort.training.losses import LogitLoss


def parse(argv: list[str]):
    return options.parse_args(build_parser(), argv)


def test_help_shows_the_dataclass_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["pretrain", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--lr LR, --learning_rate LR peak learning rate (default: 0.0005)" in text  # pretrain's own OptimConfig default
    assert "--head-steps HEAD_STEPS steps to train the masked-LM head (default: 200)" in text
    with pytest.raises(SystemExit):
        main(["finetune", "--help"])
    assert "--lr LR, --learning_rate LR peak learning rate (default: 5e-05)" in " ".join(capsys.readouterr().out.split())  # finetune's


def test_flags_build_the_same_config_as_the_library():
    args = parse(["pretrain", "--arch", "1,2,32,64", "--out", "o", "--steps", "7", "--lr", "1e-3", "--alpha-kd", "0.25", "--head-steps", "9",
                  "--seed", "4", "--no-progress"])
    # The unchanged optimiser fields keep pretrain's own defaults (warm-up 0.05); the head takes the run's seed.
    assert options.build(PretrainConfig, args) == PretrainConfig(
        out=Path("o"), arch=Arch(1, 2, 32, 64), steps=7, optim=OptimConfig(lr=1e-3, warmup=0.05), loss=LogitLoss(alpha_kd=0.25),
        head=HeadConfig(steps=9, seed=4), seed=4, progress=False)


def test_config_file_sets_options_and_flags_override_it(tmp_path):
    yaml = tmp_path / "ft.yaml"
    yaml.write_text("model: minilm-l6\ntask: glue/rte\ndata: d\nout: o\nlr: 2.0e-5\nbatch-size: 8\nweight_decay: 0.1\npatience: 5\n")
    cfg = options.build(FinetuneConfig, parse(["finetune", "--config", str(yaml), "--patience", "1"]))
    assert (cfg.model, cfg.task, str(cfg.data), cfg.batch_size) == ("minilm-l6", "glue/rte", "d", 8)
    assert cfg.optim.lr == 2e-5 and cfg.optim.weight_decay == 0.1 and cfg.optim.warmup == 0.1
    assert cfg.patience == 1  # the flag beats the file


@pytest.mark.parametrize("text, needle", [
    ("lr: 1e-3\nlearning_rate: 2\n", "'lr' and 'learning_rate' set the same option --lr; keep one"),  # Trainer's spelling is an alias
    ("lr: 1e-3\nlerning_rate: 2\n", "unknown option 'lerning_rate'"),
    ("- lr\n", "not a mapping"),
    ("steps: many\n", "'steps' must be"),
])
def test_bad_config_file_is_one_line(tmp_path, capsys, text, needle):
    yaml = tmp_path / "bad.yaml"
    yaml.write_text(text)
    assert main(["pretrain", "--arch", "1,2,32,64", "--out", str(tmp_path / "o"), "--config", str(yaml)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bort: error: ") and needle in err[0]
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("name, needle", [("tpu", "must be auto, cpu, cuda or cuda:N"), ("cuda:x", "must be auto")])
def test_resolve_device_refuses_unknown_names(name, needle):
    with pytest.raises(BortError, match=needle):
        resolve_device(name)


def test_resolve_device_knows_what_is_here():
    import torch

    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    with pytest.raises(BortError, match="CUDA device"):
        resolve_device(f"cuda:{count}")  # one past the last


@pytest.mark.parametrize("verb", [
    ["pretrain", "--arch", "1,2,32,64"],
    ["finetune", "--model", "minilm-l6", "--task", "glue/rte", "--data", "d"],
    ["teacher", "prepare"],
])
def test_every_training_verb_refuses_a_missing_device(tmp_path, capsys, verb):
    assert main([*verb, "--out", str(tmp_path / "o"), "--device", "tpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--device must be" in err[0], err
    assert not (tmp_path / "o").exists()


def test_repeated_list_flags_add_up():
    from bort.bench.recipe import BenchConfig

    cfg = options.build(BenchConfig, parse(["bench", "--arch", "1,2,32,64", "--arch", "2,2,32,64", "1,1,16,32", "--batch", "1,4"]))
    assert cfg.archs == (Arch(1, 2, 32, 64), Arch(2, 2, 32, 64), Arch(1, 1, 16, 32)) and cfg.batches == (1, 4)


HF_SPELLINGS = {"--model_name_or_path": "--model", "--output_dir": "--out", "--learning_rate": "--lr", "--num_train_epochs": "--epochs",
                "--per_device_train_batch_size": "--batch-size", "--max_seq_length": "--max-seq-len", "--warmup_ratio": "--warmup",
                "--weight_decay": "--weight-decay", "--logging_steps": "--logging-steps", "--report_to": "--report-to"}


def test_run_glue_and_trainer_spellings_are_aliases_of_bort_flags(tmp_path):
    """The flags users know from run_glue/Trainer (issue 40) give the same config as bort's own, on the line and in a file."""
    from bort import cli, options
    from bort.finetune.recipe import FinetuneConfig

    values = dict(zip(HF_SPELLINGS, ["m", str(tmp_path / "o"), "2e-05", "2", "8", "64", "0.06", "0.0", "5", "tensorboard"]))
    task = ["finetune", "--task", "glue/rte"]

    def built(argv: list[str]) -> FinetuneConfig:
        return options.build(FinetuneConfig, options.parse_args(cli.build_parser(), argv))

    ours = built([*task, *(w for hf, v in values.items() for w in (HF_SPELLINGS[hf], v))])
    assert built([*task, *(w for hf, v in values.items() for w in (hf, v))]) == ours
    (tmp_path / "c.yaml").write_text("".join(f"{hf.lstrip('-')}: {v}\n" for hf, v in values.items()))
    assert built([*task, "--config", str(tmp_path / "c.yaml")]) == ours
    assert (ours.optim.lr, ours.epochs, ours.batch_size, ours.max_seq_len, ours.optim.warmup, ours.logging_steps, ours.report_to) == \
        (2e-5, 2.0, 8, 64, 0.06, 5, ("tensorboard",))
    shown = cli.build_parser()._subparsers._group_actions[0].choices["finetune"].format_help()
    assert all(shown.count(hf) == 1 for hf in HF_SPELLINGS)  # once each, beside its flag
