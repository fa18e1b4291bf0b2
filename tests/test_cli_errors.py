"""Every user error is one line ``bort: error: …`` on stderr, exit status 2, and no traceback."""

from __future__ import annotations

import os
import subprocess

import pytest

from bort.arch import Arch
from bort.cli import main
from bort.errors import BortError


def assert_one_line_error(code: int, stderr: str, *needles: str) -> str:
    assert code == 2, stderr
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bort: error: "), stderr
    for needle in needles:
        assert needle in lines[0]
    return lines[0]


def run_cli(bort_cmd, args, **env) -> subprocess.CompletedProcess:
    return subprocess.run(bort_cmd + args, capture_output=True, text=True, timeout=120, env={**os.environ, **env})


def in_process(capsys, args) -> str:
    code = main(args)
    err = capsys.readouterr().err
    assert_one_line_error(code, err)
    return err


# Through a real subprocess: the actual exit status and stderr of `python -m bort`.

def test_missing_teacher_folder(tmp_path, bort_cmd, extract_args):
    p = run_cli(bort_cmd, extract_args("/nonexistent/x", tmp_path / "run"))
    assert_one_line_error(p.returncode, p.stderr, "/nonexistent/x", "does not exist")


def test_non_utf8_corpus(tmp_path, bort_cmd, extract_args, bert_teacher):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xff\xfe\x00bad")
    p = run_cli(bort_cmd, extract_args(bert_teacher, tmp_path / "run", "--corpus", str(bad)))
    assert_one_line_error(p.returncode, p.stderr, "not UTF-8", "offset 0")


def test_hub_name_while_offline(tmp_path, bort_cmd, extract_args):
    p = run_cli(bort_cmd, extract_args("some-org/some-model", tmp_path / "run"), HF_HUB_OFFLINE="1")
    assert_one_line_error(p.returncode, p.stderr, "some-org/some-model", "Hugging Face Hub")


def test_epsilon_below_one(tmp_path, bort_cmd, extract_args, bert_teacher):
    p = run_cli(bort_cmd, extract_args(bert_teacher, tmp_path / "run", "--epsilon", "0"))
    assert_one_line_error(p.returncode, p.stderr, "--epsilon")


# In process, through bort.cli.main: the same contract, faster.

def test_space_without_valid_tuple(tmp_path, capsys, extract_args, bert_teacher):
    space = tmp_path / "s.yaml"
    space.write_text("D: [1]\nA: [3]\nH: [32]\nI: [64]\n", encoding="utf-8")
    assert "no valid architecture" in in_process(capsys, extract_args(bert_teacher, tmp_path / "run", "--space", str(space)))


def test_arch_with_h_not_divisible_by_a():
    with pytest.raises(BortError, match="not divisible"):
        Arch.parse("2,3,32,64")


def test_empty_corpus_file(tmp_path, capsys, extract_args, bert_teacher):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n", encoding="utf-8")
    assert "is empty" in in_process(capsys, extract_args(bert_teacher, tmp_path / "run", "--corpus", str(empty)))


def test_corpus_too_small(tmp_path, capsys, extract_args, bert_teacher):
    small = tmp_path / "small.txt"
    small.write_text("To be, or not to be.", encoding="utf-8")
    assert "too small" in in_process(capsys, extract_args(bert_teacher, tmp_path / "run", "--corpus", str(small)))


@pytest.mark.parametrize("text", ["D: [1, 2\nA: [", "- 1\n- 2\n", "D: [1]\nA: [2]\nH: [32]\n", "D: [1]\nA: [x]\nH: [32]\nI: [64]\n", "D: [1]\nA: [2]\nH: [32]\nI: [64]\nX: [1]\n"])
def test_malformed_space_yaml(tmp_path, capsys, extract_args, bert_teacher, text):
    space = tmp_path / "bad.yaml"
    space.write_text(text, encoding="utf-8")
    assert "space" in in_process(capsys, extract_args(bert_teacher, tmp_path / "run", "--space", str(space)))


def test_latency_sequence_longer_than_the_teacher(tmp_path, capsys, extract_args, bert_teacher):
    """The default --latency-seq 128 does not fit a teacher with 64 positions: an error, not a crash."""
    args = extract_args(bert_teacher, tmp_path / "run")
    args[args.index("--latency-seq") + 1] = "128"
    assert "--latency-seq 128" in in_process(capsys, args)


def test_all_trainings_diverged(tmp_path, capsys, extract_args, bert_teacher):
    err = in_process(capsys, extract_args(bert_teacher, tmp_path / "run", "--latency", "flops", "--epsilon", "5", "--steps", "4", "--lr", "1e4"))
    assert "diverged" in err


def test_resume_with_different_settings(tmp_path, capsys, extract_args, bert_teacher):
    out = tmp_path / "run"
    assert main(extract_args(bert_teacher, out, "--latency", "flops", "--epsilon", "20")) == 0
    capsys.readouterr()
    err = in_process(capsys, extract_args(bert_teacher, out, "--latency", "flops", "--epsilon", "20", "--steps", "4"))
    assert "steps: 3 there, 4 now" in err


def test_failed_first_attempt_does_not_lock_the_folder(tmp_path, capsys, extract_args, bert_teacher):
    """A run stopped by a mistyped teacher stored no result and leaves no new folder behind; in a folder the user made, what
    it leaves (a store without results) does not stop the corrected command."""
    out = tmp_path / "run"
    in_process(capsys, extract_args(tmp_path / "typo", out, "--latency", "flops"))
    assert not out.exists()
    out.mkdir()
    in_process(capsys, extract_args(tmp_path / "typo", out, "--latency", "flops"))
    assert main(extract_args(bert_teacher, out, "--latency", "flops", "--epsilon", "20")) == 0
    assert (out / "result.json").is_file()


def test_theta_file_grid_and_errors(tmp_path):
    """A Θ grid expands to the product of its lists; a bad key or value is one BortError."""
    from bort.errors import BortError
    from bort.surrogates.error import THETA_FIELDS
    from bort.training.hparams import Theta, load_thetas

    grid = tmp_path / "grid.yaml"
    grid.write_text("lr: [1e-3, 5e-4]\nbatch_size: [4, 8]\n")
    thetas = load_thetas(grid, allowed=THETA_FIELDS)
    assert len(thetas) == 4 and Theta(lr=5e-4, batch_size=8) in thetas
    for text in ("momentum: [0.9]\n", "- {lr: fast}\n", "[]\n", "lr: [1e-3\n"):
        bad = tmp_path / "bad.yaml"
        bad.write_text(text)
        with pytest.raises(BortError):
            load_thetas(bad, allowed=THETA_FIELDS)
    with pytest.raises(BortError, match="does not exist"):
        load_thetas(tmp_path / "missing.yaml", allowed=THETA_FIELDS)
