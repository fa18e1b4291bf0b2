"""Progress bars of ``bort teacher prepare``, ``export`` and ``bench``: on standard error where it is a terminal, off with --no-progress or elsewhere."""

from __future__ import annotations

import io
import sys

import pytest
from test_teacher_prepare import prepare_args

from bort.cli import main


class _Terminal(io.StringIO):
    """Standard error as a terminal."""

    def isatty(self) -> bool:
        return True


def _commands(teacher, corpus, out) -> dict[str, list[str]]:
    return {
        "teacher prepare": prepare_args(teacher, out, corpus, "--steps", "2"),
        "export": ["export", "--model", str(teacher), "--out", str(out), "--quantize", "int8"],
        "bench": ["bench", "--arch", "1,2,32,64", "--batch", "1,2", "--seq", "8", "--runtimes", "torch-fp32", "--warmup", "1", "--rounds", "2",
                  "--runs", "2", "--out", str(out)],
    }


@pytest.mark.parametrize("command", ["teacher prepare", "export", "bench"])
def test_a_bar_on_a_terminal_only(command, bert_teacher_nohead, corpus_file, tmp_path, monkeypatch, capsys):
    totals = {"teacher prepare": "2/2", "export": "6/6", "bench": "10/10"}  # steps; load, trace, fuse, quantize, check, write; 2 × (1 + 2 × 2) calls
    for where, stream, extra in (("terminal", _Terminal(), ()), ("pipe", io.StringIO(), ()), ("--no-progress", _Terminal(), ("--no-progress",))):
        monkeypatch.setattr(sys, "stderr", stream)
        assert main(_commands(bert_teacher_nohead, corpus_file, tmp_path / where)[command] + list(extra)) == 0, stream.getvalue()
        bar = f"{command}: 100%"
        if where == "terminal":
            assert bar in stream.getvalue() and totals[command] in stream.getvalue(), stream.getvalue()
        else:
            assert bar not in stream.getvalue() and "%|" not in stream.getvalue(), (where, stream.getvalue())
    capsys.readouterr()
