"""Issue 36, items 12-14 (the command line, numbers, configs, faults): each bad input refused in one line, exit 2, nothing left.

The table runs through :func:`bad_inputs.check_refused` like ``test_bad_inputs.py``; the faults that are not a bad
input (Ctrl-C, SIGTERM, a full disk, a damaged run record, a library's multi-line message) have their own tests below.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import warnings
from pathlib import Path

import pytest
import torch
from bad_inputs import (  # noqa: F401
    Case,
    Env,
    Y,
    check_refused,
    classifier,
    env,
    export,
    param,
    run_export,
    run_extract,
    run_finetune,
    run_predict,
    run_pretrain,
    sst2,
    yaml,
)

from bort import cli
from bort.errors import BortError, one_line
from bort.records import read_json

BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n" for p, c in zip("abcdef", "bcdefg"))


def run_compress(e: Env, *extra) -> list:
    return ["compress", "--teacher", e.teacher, "--out", e.tmp / "out", "--task", "glue/sst2", "--data", e.data, "--device", "cpu",
            "--seq-len", "32", "--max-seq-len", "32", "--bench-seq", "32", *extra]


def loop(e: Env) -> Path:
    """A symbolic link to itself, beside the case's folder (whose listing cannot follow it)."""
    return e.tmp.with_name(e.tmp.name + "-loop")


def symlink_loop(e: Env):
    os.symlink(loop(e), loop(e))
    return loop(e).unlink  # after the command: pytest's clean-up of its temporary folders cannot follow a loop either


def damaged_compress_folder(name: str, text: str):
    """An --out of an earlier `bort compress` whose run record ``name`` was cut short or edited."""
    def setup(e: Env) -> None:
        e.write(f"out/{name}", text)
        e.write("out/compress_settings.json" if name != "compress_settings.json" else "out/compress.json", "{}\n")
    return setup


CASES: list[Case] = [
    # 12: numbers out of range at parse time, on every verb's flags and in --config alike
    Case("finetune-epochs-inf#36.12", "finetune", lambda e: run_finetune(e, "--epochs", "inf", steps=()), ("--epochs", "finite", "inf")),
    Case("finetune-epochs-1e308#36.12", "finetune", lambda e: run_finetune(e, "--epochs", "1e308", steps=()), ("--epochs", "1e+308")),
    Case("finetune-seed-10e23#36.12", "finetune", lambda e: run_finetune(e, "--seed", str(10**23)), ("--seed", "4294967295")),
    Case("pretrain-negative-seed#36.12", "pretrain", lambda e: run_pretrain(e, "--seed", "-1"), ("--seed", "from 0")),
    Case("compress-student-epochs-inf#36.12", "compress", lambda e: run_compress(e, "--student-epochs", "inf"), "--student-epochs"),
    Case("extract-config-lr-nan#36.12", "extract", lambda e: run_extract(e, "--config", e.tmp / Y), ("--lr", "finite", "nan"),
         setup=yaml(Y, "lr: .nan\n")),
    Case("finetune-config-seed-huge#36.12", "finetune", lambda e: run_finetune(e, "--config", e.tmp / Y), ("'seed'", "--seed", "4294967295"),
         setup=yaml(Y, f"seed: {10**23}\n")),
    # 14: NaN for a rate or weight is refused as such, not blamed on the learning rate later
    Case("finetune-weight-decay-nan#36.14", "finetune", lambda e: run_finetune(e, "--weight-decay", "nan"), ("--weight-decay", "nan")),
    Case("finetune-grad-clip-nan#36.14", "finetune", lambda e: run_finetune(e, "--grad-clip", "nan"), ("--grad-clip", "nan")),
    Case("pretrain-temperature-nan#36.14", "pretrain", lambda e: run_pretrain(e, "--temperature", "nan"), ("--temperature", "nan")),
    # 12: YAML alias bombs, refused at once; 14: an option given twice in a --config
    Case("extract-config-alias-bomb#36.12", "extract", lambda e: run_extract(e, "--config", e.tmp / Y), ("anchors and aliases", "line 1"),
         setup=yaml(Y, BOMB)),
    Case("finetune-config-duplicate-key#36.14", "finetune", lambda e: run_finetune(e, "--config", e.tmp / Y), ("'lr' is given twice", "line 2"),
         setup=yaml(Y, "lr: 1.0e-4\nlr: 2.0e-4\n")),
    Case("extract-config-two-spellings#36.14", "extract", lambda e: run_extract(e, "--config", e.tmp / Y),
         ("'min-speedup' and 'min_speedup'", "--min-speedup"), setup=yaml(Y, "min-speedup: 2\nmin_speedup: 3\n")),
    # 12: --out a loop of symbolic links; 13: a path holding a newline is shown escaped, on one line
    Case("export-out-symlink-loop#36.12", "export", lambda e: run_export(e, out=loop(e)), ("-loop'", "loop"), setup=symlink_loop),
    Case("predict-input-path-with-newline#36.13", "predict", lambda e: run_predict(e, input=e.tmp / "in\nput.txt"), "in\\nput.txt", proc=True),
    # 12: a damaged run record of an earlier compress (bort writes them whole: someone cut or edited them)
    Case("compress-truncated-settings#36.12", "compress", run_compress, ("compress_settings.json", "damaged", "new --out"),
         setup=damaged_compress_folder("compress_settings.json", '{"teacher": "x", "ta')),
]


@pytest.mark.parametrize("case", [param(c) for c in CASES])
def test_bad_input_is_refused_in_one_line(case: Case, env: Env, capsys, monkeypatch, bort_cmd):  # noqa: F811 (the fixture)
    check_refused(case, env, capsys, monkeypatch, bort_cmd)


# ------------------------------------------------------------------ faults: one line from main, whatever raised it


def fails_with(monkeypatch, capsys, exc: BaseException) -> tuple[int, list[str]]:
    """main's exit status and stderr lines when the parser (the first thing it builds) raises ``exc``."""
    def boom():
        raise exc
    monkeypatch.setattr(cli, "build_parser", boom)
    code = cli.main(["export"])
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err
    return code, err.strip().splitlines()


def test_ctrl_c_in_the_first_seconds_is_one_line(monkeypatch, capsys):
    code, lines = fails_with(monkeypatch, capsys, KeyboardInterrupt())
    assert code == 130 and len(lines) == 1 and lines[0].startswith("bort: interrupted")


def test_sigterm_is_one_line_and_the_handler_is_put_back(monkeypatch, capsys):
    before = signal.getsignal(signal.SIGTERM)

    def killed(args):
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("SIGTERM did not stop the command")
    monkeypatch.setattr(cli, "cmd_export", killed)
    code = cli.main(["export", "--model", "m", "--out", "o"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 143 and len(lines) == 1 and lines[0].startswith("bort: terminated")
    assert signal.getsignal(signal.SIGTERM) is before


@pytest.mark.parametrize(("exc", "needles"), [
    (OSError(errno.ENOSPC, "No space left on device", "/data/run/checkpoint/trainer.pt"), ("no space left", "'/data/run/checkpoint'")),
    (OSError(errno.EDQUOT, "Disk quota exceeded", "/q/out/x.bin"), ("no space left", "'/q/out'")),
    (OSError(errno.EROFS, "Read-only file system", "/ro/out"), ("cannot write '/ro/out'", "Read-only")),
    (OSError(errno.EACCES, "Permission denied", "/root/x"), ("cannot write '/root/x'", "permissions")),
    (RuntimeError("[enforce fail at inline_container.cc:672] . PytorchStreamWriter failed writing file data/0: file write failed"),
     None),  # not recognised as a fault: a library's bare failure stays a traceback
    (RuntimeError("Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: \"No space left on device\" })"),
     ("no space left",)),
    (RuntimeError("Symlink loop from '/tmp/loop'"), ("'/tmp/loop' is a loop of symbolic links",)),
])
def test_machine_faults_are_one_line(exc, needles, monkeypatch, capsys):
    if needles is None:
        with pytest.raises(RuntimeError):
            fails_with(monkeypatch, capsys, exc)
        return
    code, lines = fails_with(monkeypatch, capsys, exc)
    assert code == 2 and len(lines) == 1 and lines[0].startswith("bort: error: ")
    assert all(n in lines[0] for n in needles), lines[0]


def test_a_disk_full_checkpoint_names_its_folder(tmp_path, monkeypatch):
    from bort.training import checkpoint

    model = torch.nn.Linear(200, 200)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    def full(obj, f):  # what torch's C++ writer raises on a full disk: no errno, no path
        raise RuntimeError("[enforce fail at inline_container.cc:672] . PytorchStreamWriter failed writing file data/0: file write failed")
    monkeypatch.setattr(checkpoint.torch, "save", full)
    with pytest.raises(BortError, match=r"cannot write the checkpoint '.*/checkpoint' .*free space"):
        checkpoint.save_checkpoint(tmp_path / "checkpoint", model, opt, sched, checkpoint.TrainState())
    assert [p.name for p in tmp_path.iterdir()] == []  # nothing half-written


def test_a_float_rng_state_in_trainer_pt_is_one_line(tmp_path):
    from bort.training import checkpoint

    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    checkpoint.save_checkpoint(tmp_path / "ck", model, opt, sched, checkpoint.TrainState())
    trainer = torch.load(tmp_path / "ck" / "trainer.pt", weights_only=True)
    torch.save({**trainer, "rng": torch.zeros(5)}, tmp_path / "ck" / "trainer.pt")
    with pytest.raises(BortError, match="cannot resume from .*ck.*new --out"):
        checkpoint.load_checkpoint(tmp_path / "ck", model, opt, sched)


@pytest.mark.parametrize("text", ['{"stages": [{"name": "extract", "status": "done", "wall_s": 3, "output": "o"}]}',  # no "result"
                                  '{"stages": [{"name": "extract", "sta', '[1, 2]', '{"stages": {"extract": 1}}'])
def test_a_damaged_compress_ledger_is_one_line(tmp_path, text):
    from bort.compress.stages import Ledger

    (tmp_path / "compress.json").write_text(text, encoding="utf-8")
    with pytest.raises(BortError, match=r"compress\.json' is damaged .*remove it, or give a new --out"):
        Ledger(tmp_path, 5)


def test_read_json_names_the_file(tmp_path):
    (tmp_path / "r.json").write_text("[1]", encoding="utf-8")
    with pytest.raises(BortError, match="r.json' is damaged .*a JSON list, not a dict"):
        read_json(tmp_path / "r.json")
    assert read_json(tmp_path / "r.json", list) == [1]


# ------------------------------------------------------------------ 13: every message is one line, of a sane length


@pytest.mark.parametrize(("message", "expected"), [
    ("model folder 'a\nb' does not exist", "model folder 'a\\nb' does not exist"),
    ("tokenizer needs remote code.\nPlease pass trust_remote_code=True\r\n  to allow it.", "tokenizer needs remote code.\\nPlease pass"),
    ("a \x1b[31mred\x1b[0m word", "a \\x1b[31mred\\x1b[0m word"),
    ("ünïcödé → 模型", "ünïcödé → 模型"),
])
def test_error_text_is_flattened(message, expected, monkeypatch, capsys):
    code, lines = fails_with(monkeypatch, capsys, BortError(message))
    assert code == 2 and len(lines) == 1 and lines[0].startswith("bort: error: " + expected)


def test_a_huge_message_is_cut():
    line = one_line("'" + "[x, " * 3_000_000 + "'")
    assert len(line) < 1100 and line.endswith("(cut: 12,000,002 characters in all)") and "\n" not in line


# ------------------------------------------------------------------ 14: a unicode --out draws its figure silently


def test_figures_with_unicode_labels_warn_nothing(tmp_path):
    from bort.plots import plt, save_figure

    fig, ax = plt.subplots()
    ax.set_title("模型 😀 ⟨2,4,64,128⟩")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        save_figure(fig, tmp_path / "模型.png")
    assert (tmp_path / "模型.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------ 14: a 20 MB predict line is not tokenized whole


def test_a_huge_line_is_clipped_to_the_same_tokens(bert_tokenizer):
    from bort.data.tokens import clip

    line = "the quick brown fox jumps over the lazy dog " * 10_000  # 440 kB: 27× the longest cut below
    whole = bert_tokenizer([line])["input_ids"][0]  # the reference: the whole line tokenized once, then cut by hand
    for max_len in (16, 64):
        cut = clip(bert_tokenizer, line, max_len)
        assert len(cut) < 16 * 64 * max_len
        same = bert_tokenizer([cut], truncation=True, max_length=max_len)["input_ids"][0]
        assert same == whole[:max_len - 1] + whole[-1:]
    # a pair, both cut (longer than 64 × 64 characters): longest-first truncation keeps the same split of the positions (the
    # reference's truncation of the whole pair grows with the product of the sides' lengths: 9,000 characters take seconds,
    # 30,000 a minute)
    first, second = line[:6_000], line[7:9_000]
    assert len(clip(bert_tokenizer, first, 64)) < len(first) and len(clip(bert_tokenizer, second, 64)) < len(second)
    pair = bert_tokenizer([clip(bert_tokenizer, first, 64)], [clip(bert_tokenizer, second, 64)], truncation=True, max_length=64)["input_ids"]
    assert pair == bert_tokenizer([first], [second], truncation=True, max_length=64)["input_ids"]
    assert clip(bert_tokenizer, "x" * 100_000, 16) == "x" * 100_000  # no place to cut: whole
    assert clip(bert_tokenizer, "short text", 16) == "short text"


def test_run_record_reader_is_what_settings_go_through(tmp_path):
    """A truncated ``<stage>_settings.json`` reads as damaged, not as a JSON traceback."""
    (tmp_path / "s.json").write_text(json.dumps({"a": 1})[:-2], encoding="utf-8")
    with pytest.raises(BortError, match="s.json' is damaged .*not JSON"):
        read_json(tmp_path / "s.json")
