"""Issue 36: property-based tests of the command line's numbers (Hypothesis).

Any value given to a numeric flag, on the command line or in ``--config``, either parses to the number
it spells (finite, within the option's range) or is refused in exactly one ``bort: error:`` line with
exit status 2, never a traceback; argparse's own errors (a value that looks like a flag) as its one line.
Parse only: no command runs.
"""

from __future__ import annotations

import contextlib
import io
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bort import cli, options
from bort.errors import BortError, one_line

BASE = ["finetune", "--model", "m", "--task", "glue/sst2", "--out", "o"]
FLOATS = ("--lr", "--epochs", "--weight-decay", "--grad-clip", "--select-fraction")
INTS = ("--seed", "--batch-size", "--patience", "--data-seed")
SEEDS = ("--seed", "--data-seed")

numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(min_value=-(2**80), max_value=2**80).map(str),
    st.sampled_from(["nan", "-nan", "inf", "-inf", "Infinity", "1e308", "1e-320", "10" * 30, "0x10", "1_000", " 5", "5\n", "١٢"]),
    st.text(max_size=12),
)
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def parser():
    return cli.build_parser()


def parse(parser, argv: list[str]):
    """The namespace, or the BortError, or None for an error of argparse's own (one line)."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            return options.parse_args(parser, argv)
    except BortError as exc:
        return exc
    except SystemExit as exc:
        assert exc.code == 2 and err.getvalue().startswith("bort: error: ") and err.getvalue().count("\n") == 1
        return None


def expected(flag: str, text: str):
    """The value bort must take for ``text``, or None where it must refuse it."""
    try:
        value = (int if flag in INTS else float)(text)
    except ValueError:
        return None
    low, high = (0, 2**32 - 1) if flag in SEEDS else (-(2**63) + 1, 2**63 - 1) if flag in INTS else (-1e9, 1e9)
    return value if (flag in INTS or math.isfinite(value)) and low <= value <= high else None


def check(flag: str, text: str, got, named: str | None = None) -> None:
    """``got`` (of :func:`parse`) is what ``text`` must give ``flag``; a refusal names ``named`` (default: the flag)."""
    if got is None:  # argparse's own error: only for what looks like a flag
        assert text.startswith("-") and not _number(text), text
        return
    want = expected(flag, text)
    if isinstance(got, BortError):
        line = one_line(str(got))
        assert want is None, (flag, text, line)
        assert (named or flag) in line and "\n" not in line
        return
    assert want is not None and getattr(got, flag[2:].replace("-", "_")) == want, (flag, text)


def _number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


@SETTINGS
@given(flag=st.sampled_from(FLOATS + INTS), text=numbers)
def test_a_numeric_flag_parses_to_its_value_or_is_refused(parser, flag, text):
    check(flag, text, parse(parser, [*BASE, f"{flag}={text}"]))


@SETTINGS
@given(flag=st.sampled_from(FLOATS + INTS), value=st.one_of(st.floats(), st.integers(min_value=-(2**80), max_value=2**80), st.text(max_size=12)))
def test_a_config_value_is_checked_like_the_flag(parser, tmp_path, flag, value):
    import yaml

    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({flag[2:]: value}), encoding="utf-8")
    got = parse(parser, [*BASE, "--config", str(path)])
    assert got is not None  # the file's values never reach argparse
    check(flag, repr(value) if isinstance(value, float) else str(value), got, named=f"'{flag[2:]}'")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(min_size=1, max_size=40))
def test_main_prints_one_line_for_any_path(text, monkeypatch, capsys):
    """Any --model path (newlines, escapes, unicode) ends in one error line or runs the (stubbed) command."""
    ran = []
    monkeypatch.setattr(cli, "cmd_export", lambda args: ran.append(args.model) or 0)
    argv = ["export", "--model", text, "--out", "o", "--opset", "9999999999999999999999"]
    try:
        code = cli.main(argv)
    except SystemExit as exc:  # argparse: a value that looks like a flag
        assert exc.code == 2 and text.startswith("-")
        capsys.readouterr()
        return
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2 and not ran and out == "" and len(lines) == 1 and lines[0].startswith("bort: error: --opset"), err
