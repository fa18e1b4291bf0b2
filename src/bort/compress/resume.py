"""Which finished stages of a resumed ``bort compress`` run still stand: each stage's own settings and what it read.

``RUN/compress_settings.json`` holds the run's settings (``run``) and, per finished stage, the settings of the
stage's config with the digests of the files and folders it read (:func:`bort.training.run.stamp`). A rerun
skips a finished stage whose settings and inputs are unchanged; redoes one whose output is gone, and after it each
later stage whose inputs changed with it; and refuses, before any work, one that would now run on other settings
or changed files (its output was made from the old ones), naming compress's own settings. A stage not yet
finished takes the new settings (its own run folder refuses to resume a checkpoint on others), so a corrected
rerun of a setting no finished stage used goes on.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from tqdm.auto import tqdm

from bort.atomic import atomic_write_text
from bort.compress.stages import Ledger
from bort.errors import BortError
from bort.records import read_json
from bort.training.run import changed_reads, differing, fingerprint, reads


def _present(output: Path) -> bool:
    """Whether a stage's output is still there: a file, or a folder that holds something."""
    return output.is_file() or (output.is_dir() and any(output.iterdir()))


class Stages:
    """The stages of one compress run, run through its :class:`~bort.compress.stages.Ledger` with their settings checked."""

    def __init__(self, ledger: Ledger, settings_file: Path, settings: dict) -> None:
        self.ledger, self.file, self.out = ledger, settings_file, ledger.out
        old = read_json(settings_file) if settings_file.is_file() else {}
        self.before = old.get("run", old)  # the file of an earlier bort held the run's settings alone
        self.done: dict[str, dict] = old.get("stages", {}) if "run" in old else {}
        self.now = {**settings, "_folder": str(self.out.resolve())}  # as stamp() records a run folder's, less what it reads
        self.redoing = False  # a stage ran in this session: later finished stages whose inputs changed are redone, not refused
        self.held: list[str] = []  # the progress lines of skipped stages, not yet shown
        if not settings_file.is_file():
            self._write()

    def flush(self) -> None:
        """Show the progress lines of the stages skipped so far."""
        sys.stderr.write("".join(self.held))
        self.held.clear()

    def _write(self) -> None:
        atomic_write_text(self.file, json.dumps({"run": self.now, "stages": self.done}, indent=2))

    def _record(self, settings, output: Path) -> dict:
        """A stage's settings as recorded: with the run folder (so a copied run compares its own paths by their place in
        it) and the digests of what the stage reads, less its own output."""
        fp = fingerprint(settings)
        return {**fp, "_folder": self.now["_folder"], "_reads": reads(fp, output)}

    def run(self, name: str, output: Path, fn: Callable[[], dict], settings, *, what: str = "") -> dict:
        """Stage ``name`` (writing ``output``) with ``settings`` (its config, or the arguments ``fn`` passes on), through the
        ledger (:meth:`Ledger.run`): skipped if it finished with these settings and inputs; see the module's rule."""
        new, rec = self._record(settings, output), self.ledger.record(name)
        if rec is not None and rec["status"] == "done":
            old = self.done.get(name)  # None: finished before its settings were recorded (an earlier bort, or a kill right after)
            stale = old is not None and (changed_reads(old, new) is not None or differing(old, new))
            if stale and not self.redoing:
                self._refuse(name, old, new)
            if stale or not _present(output):
                if not _present(output):
                    tqdm.write(f"{name}: its output {output} is gone; doing it again", file=sys.stderr)
                elif self.out in output.parents:  # a stage folder of this run, made from inputs that were just redone
                    shutil.rmtree(output)
                rec["status"] = "running"
        ran = rec is None or rec["status"] != "done"
        if ran:
            self.flush()
            result = self.ledger.run(name, output, fn, what=what)
        else:  # its "skipped" line waits for the first stage that runs (or the end): a refusal before any work is one line
            with contextlib.redirect_stderr(io.StringIO()) as said:
                result = self.ledger.run(name, output, fn, what=what)
            self.held.append(said.getvalue())
        if ran or name not in self.done:
            self.redoing = self.redoing or ran
            self.done[name] = self._record(settings, output)  # what it read as it left it (scoring writes the export's card)
            self._write()
        return result

    def _refuse(self, name: str, old: dict, new: dict) -> None:
        changed = changed_reads(old, new)
        if changed:
            raise BortError(f"{changed}, and the finished stage {name} of '{self.out}' read it; put it back to resume, "
                            "or choose a new --out folder")
        before, now = (self.before, self.now) if differing(self.before, self.now) else (old, new)
        diff = "; ".join(f"{k}: {before.get(k)!r} there, {now.get(k)!r} now" for k in differing(before, now)[:3])
        raise BortError(f"'{self.out}' holds a run with other settings ({diff}) that its finished stage {name} used; "
                        "repeat the original command to resume, or choose a new --out folder")
