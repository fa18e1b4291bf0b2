"""The run's embedded store: every measurement and training result, in SQLite, as it finishes.

Each result is committed on its own, so a run killed at any moment (even ``kill -9``) loses at
most the one result in flight; a resumed run reads what is there and skips it. A run's
settings are stored too, and a resume with different settings is refused rather than mixing
incompatible results.
"""

from __future__ import annotations

import functools
import json
import sqlite3
import time
from pathlib import Path

from bort.errors import BortError
from bort.training.run import check_same_settings, stamp

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS latency (
    arch TEXT NOT NULL, settings TEXT NOT NULL, device TEXT NOT NULL,
    latency_ms REAL NOT NULL, created REAL NOT NULL,
    PRIMARY KEY (arch, settings));
CREATE TABLE IF NOT EXISTS trial (
    arch TEXT NOT NULL, theta TEXT NOT NULL, error REAL NOT NULL, seconds REAL NOT NULL, created REAL NOT NULL,
    worker TEXT,
    PRIMARY KEY (arch, theta));
"""


def _one_line(method):
    """Turn an SQLite error of a store operation (a corrupted page, a locked or unwritable file) into one line naming the file."""

    @functools.wraps(method)
    def wrapper(self: RunStore, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as exc:
            raise BortError(f"the run store '{self.path}' cannot be used ({exc}); if it is damaged, move it away "
                            "(its results will be recomputed) or use a new --out folder") from None

    return wrapper


class RunStore:
    """SQLite file ``RUN/bort.sqlite``; one writer (the driver), committed per result."""

    FILENAME = "bort.sqlite"

    def __init__(self, run_dir: str | Path):
        self.path = Path(run_dir) / self.FILENAME
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._open()

    @_one_line
    def _open(self) -> None:
        self._db = sqlite3.connect(self.path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        if "worker" not in {row[1] for row in self._db.execute("PRAGMA table_info(trial)")}:
            self._db.execute("ALTER TABLE trial ADD COLUMN worker TEXT")  # a store from before scale-out

    @_one_line
    def close(self) -> None:
        self._db.close()

    @_one_line
    def check_settings(self, settings: dict) -> None:
        """Record the run's settings, or refuse to resume a run that was started with others.

        A store that holds no training yet (say, a first attempt stopped by a mistyped --teacher, or refused after
        timing the space: no candidate faster than the teacher) has nothing to mix, so it takes the new settings; its
        latencies stay only if the teacher is the same one (they are keyed by their own settings, not by the teacher).
        """
        row = self._db.execute("SELECT value FROM meta WHERE key='settings'").fetchone()
        settings = stamp(settings, self.path.parent)  # with the digests of what the run reads
        text = json.dumps(settings, sort_keys=True)
        if row is None or not self._db.execute("SELECT 1 FROM trial LIMIT 1").fetchone():
            old = json.loads(row[0]) if row is not None else {}
            teacher = settings.get("teacher")
            same_teacher = old.get("teacher") == teacher and old.get("_reads", {}).get(teacher) == settings["_reads"].get(teacher)
            with self._db:
                if not same_teacher:
                    self._db.execute("DELETE FROM latency")
                self._db.execute("INSERT OR REPLACE INTO meta VALUES ('settings', ?)", (text,))
            return
        check_same_settings(self.path.parent, json.loads(row[0]), settings)

    @_one_line
    def has_results(self) -> bool:
        """Whether any latency or training result is stored."""
        return any(self._db.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone() for table in ("trial", "latency"))

    @_one_line
    def latency(self, arch_key: str, settings_key: str) -> float | None:
        row = self._db.execute("SELECT latency_ms FROM latency WHERE arch=? AND settings=?", (arch_key, settings_key)).fetchone()
        return None if row is None else row[0]

    @_one_line
    def put_latency(self, arch_key: str, settings_key: str, device: str, latency_ms: float) -> None:
        with self._db:
            self._db.execute("INSERT OR REPLACE INTO latency VALUES (?,?,?,?,?)", (arch_key, settings_key, device, latency_ms, time.time()))

    @_one_line
    def latency_device(self, settings_key: str) -> str | None:
        row = self._db.execute("SELECT device FROM latency WHERE settings=? LIMIT 1", (settings_key,)).fetchone()
        return None if row is None else row[0]

    @_one_line
    def trial(self, arch_key: str, theta_key: str) -> float | None:
        row = self._db.execute("SELECT error FROM trial WHERE arch=? AND theta=?", (arch_key, theta_key)).fetchone()
        return None if row is None else row[0]

    @_one_line
    def put_trial(self, arch_key: str, theta_key: str, error: float, seconds: float, worker: str | None = None) -> None:
        """Commit one finished training; ``worker`` says where it ran (host, process, device)."""
        with self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO trial (arch, theta, error, seconds, created, worker) VALUES (?,?,?,?,?,?)",
                (arch_key, theta_key, error, seconds, time.time(), worker),
            )

    @_one_line
    def trials(self) -> list[dict]:
        """Every finished training, oldest first."""
        keys = ("arch", "theta", "error", "seconds", "created", "worker")
        rows = self._db.execute(f"SELECT {', '.join(keys)} FROM trial ORDER BY created")
        return [dict(zip(keys, r)) for r in rows]
