"""The stage ledger of ``bort compress``: ``RUN/compress.json``'s ``stages``, one record per stage.

A stage is recorded ``running`` when it starts and ``done`` (with its wall time, its output folder
and what later stages need of its result) when it ends. A resumed run skips every ``done`` stage and
runs the others again; each of those resumes through its own run folder (extraction's store, the
checkpoints of pretraining and fine-tuning).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tqdm.auto import tqdm

from bort.atomic import atomic_write_text
from bort.records import damaged, read_json

FILE = "compress.json"


def _whole(stage: object) -> bool:
    """Whether a stage record has what :meth:`Ledger.run` reads of it (a done stage: its wall time and result too)."""
    if not (isinstance(stage, dict) and isinstance(stage.get("name"), str) and stage.get("status") in ("running", "done")
            and isinstance(stage.get("output"), str)):
        return False
    return stage["status"] == "running" or (isinstance(stage.get("wall_s"), (int, float)) and isinstance(stage.get("result"), dict))


class Ledger:
    """``RUN/compress.json``: the stage records (and, once the run ends, the report's numbers beside them)."""

    def __init__(self, out: Path, total: int) -> None:
        self.out, self.path, self.total = out, out / FILE, total
        self.doc = read_json(self.path) if self.path.is_file() else {}
        self.stages: list[dict] = self.doc.get("stages", [])
        if not isinstance(self.stages, list) or not all(_whole(s) for s in self.stages):
            raise damaged(self.path, "a stage record without its name, status, output or result")

    def record(self, name: str) -> dict | None:
        """The stage's record, if it has one."""
        return next((s for s in self.stages if s["name"] == name), None)

    def write(self, **extra) -> None:
        """Write compress.json atomically: the stage records, then ``extra`` (the report's fields)."""
        self.doc = {**self.doc, **extra, "stages": self.stages}
        atomic_write_text(self.path, json.dumps(self.doc, indent=2) + "\n")

    def _set(self, entry: dict) -> None:
        old = self.record(entry["name"])
        if old is None:
            self.stages.append(entry)
        else:
            old.clear()
            old.update(entry)
        self.write()

    def run(self, name: str, output: Path, fn: Callable[[], dict], *, what: str = "") -> dict:
        """Run stage ``name`` (writing ``output``) unless it is done; returns its result (``fn()``'s, or the recorded one).

        Prints one progress line on stderr as the stage starts, ends or is skipped; the stage's own
        progress bar shows below it.
        """
        done = [s for s in self.stages if s["status"] == "done"]
        step = f"[{min(len(done) + 1, self.total)}/{self.total}] {name}"
        rec = self.record(name)
        if rec is not None and rec["status"] == "done":
            tqdm.write(f"{step}: done earlier ({rec['wall_s']:.0f} s), skipped → {rec['output']}", file=sys.stderr)
            return rec["result"]
        tqdm.write(f"{step}{': ' + what if what else ''} → {output}", file=sys.stderr)
        self._set({"name": name, "status": "running", "wall_s": None, "output": str(output), "result": {}})
        started = time.time()
        result = fn()
        wall = time.time() - started
        self._set({"name": name, "status": "done", "wall_s": wall, "output": str(output), "result": result})
        tqdm.write(f"{step}: done in {wall:.0f} s", file=sys.stderr)
        return result
