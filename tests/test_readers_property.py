"""Property-based tests of the readers of one's own data (issue 36): generated CSV, TSV and JSON-lines files.

Each file is written as a user's tool would write it (Python's csv writer, ``json.dumps``), with texts full of tabs,
quotes, commas, line breaks and unicode, labels or scores, and its columns in a random order. Reading it either gives
back exactly the rows written (texts, labels, ids) or refuses it with a one-line :class:`BortError` naming the file,
and the file is never changed. Arbitrary bytes after a header are refused in one line or read, never a traceback.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bort.errors import BortError
from bort.tasks.readers import own
from bort.tasks.source import own_spec

SETTINGS = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
# Texts a hostile file holds: the delimiters and quotes of every format, line breaks, a BOM, and any other character.
HOSTILE = list('\t,"\'\n\r \\;|\ufeff\u2028é中😀')
TEXTS = st.text(st.one_of(st.sampled_from(HOSTILE), st.characters(exclude_categories=("Cs",))), max_size=30)  # Cs: surrogates have no UTF-8
LABELS = st.sampled_from(["yes", "no", "maybe", " padded ", "1", "0"])
SCORES = st.floats(allow_nan=True, allow_infinity=True)
FORMATS = st.sampled_from(["csv", "tsv", "jsonl"])


def write(path: Path, fmt: str, columns: list[str], rows: list[dict]) -> bytes:
    """``rows`` written at ``path`` in ``fmt`` with ``columns`` in that order (a header row in CSV and TSV); the file's bytes."""
    if fmt == "jsonl":
        text = "".join(json.dumps({c: r[c] for c in columns}, ensure_ascii=False) + "\n" for r in rows)
    else:
        buf = io.StringIO()
        # csv's default line end, \r\n: with "\n" its writer leaves a text's final \r unquoted, a line end to any reader
        writer = csv.writer(buf, delimiter="," if fmt == "csv" else "\t")
        writer.writerows([columns, *([r[c] for c in columns] for r in rows)])
        text = buf.getvalue()
    path.write_bytes(text.encode("utf-8"))
    return path.read_bytes()


def one_line_naming(exc: BortError, path: Path) -> None:
    message = str(exc)
    assert str(path) in message and "\n" not in message.replace(str(path), ""), message


@st.composite
def tables(draw, label=LABELS):
    """A format, a column order (texts, label and maybe an id) and rows of generated values."""
    pair = draw(st.booleans())
    texts = ["premise", "hypothesis"] if pair else ["text"]
    columns = draw(st.permutations(texts + ["label"] + (["id"] if draw(st.booleans()) else [])))
    n = draw(st.integers(1, 6))
    rows = [{**{c: draw(TEXTS) for c in texts}, "label": draw(label), "id": f"r{i}"} for i in range(n)]
    return draw(FORMATS), list(columns), texts, rows


@SETTINGS
@given(table=tables())
def test_a_read_gives_back_the_rows_written_or_one_line(table, tmp_path):
    fmt, columns, texts, rows = table
    path = tmp_path / f"data.{fmt}"
    written = write(path, fmt, columns, rows)
    try:
        read = own.read_rows(path, tuple(texts), "label", need_label=True)
    except BortError as exc:
        one_line_naming(exc, path)
    else:
        assert [r.texts for r in read] == [tuple(row[c] for c in texts) for row in rows]
        assert [r.label for r in read] == [row["label"] for row in rows]
        assert [r.idx for r in read] == [row["id"] if "id" in columns else str(i) for i, row in enumerate(rows)]
        # every text the reader accepts is one a user could mean: none is blank
        assert all(t.strip() for r in read for t in r.texts)
    assert path.read_bytes() == written


@SETTINGS
@given(table=tables(label=SCORES))
def test_scores_are_read_exactly_or_refused_when_not_finite(table, tmp_path):
    fmt, columns, texts, rows = table
    rows = [{**r, "text": "a text"} if "text" in r else {**r, "premise": "p", "hypothesis": "h"} for r in rows]
    path = tmp_path / f"scores.{fmt}"
    written = write(path, fmt, columns, rows)
    spec = own_spec("own/scores", (), True, f".{fmt}")
    try:
        examples = own.examples(spec, path, own.read_rows(path, tuple(texts), "label", need_label=True))
    except BortError as exc:
        one_line_naming(exc, path)
        assert not all(math.isfinite(r["label"]) for r in rows), str(exc)
    else:
        assert [e.label for e in examples] == [r["label"] for r in rows]
    assert path.read_bytes() == written


@SETTINGS
@given(fmt=FORMATS, body=st.text(st.one_of(st.sampled_from(list('\t,"\n\r{}[]:')), st.characters()), max_size=80))
def test_any_text_after_a_header_is_read_or_refused_in_one_line(fmt, body, tmp_path):
    header = {"csv": "text,label\n", "tsv": "text\tlabel\n", "jsonl": ""}[fmt]
    path = tmp_path / f"raw.{fmt}"
    path.write_bytes((header + body).encode("utf-8", errors="surrogatepass"))
    written = path.read_bytes()
    try:
        rows = own.read_rows(path, ("text",), "label", need_label=False)
    except BortError as exc:
        one_line_naming(exc, path)
    else:
        assert rows and all(r.texts[0].strip() for r in rows)
    assert path.read_bytes() == written
