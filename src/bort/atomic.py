"""Writing outputs atomically: a kill never leaves a half-written file or folder.

Each writer fills a temporary file or folder beside its target and renames it into place. A
temporary's name says whose it is, ``.bort-tmp-<pid>-<token>-<random>-<label>`` (the random token tells
an earlier process from this one when both had the same PID, as in containers, where each run may be PID 1).
Every writer first removes the temporaries of dead processes in the folder where it writes, so a
run killed with SIGKILL leaves nothing behind once the next one writes there; a live process's
temporaries are never touched.

:class:`FolderLock` keeps a folder to one process at a time.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import secrets
import shutil
import tempfile
import weakref
from pathlib import Path
from typing import Iterator

from bort.errors import BortError

LOCK = ".bort.lock"
_TEMP = re.compile(r"^\.bort-tmp-(\d+)-([0-9a-f]+)-")
_token: dict[int, str] = {}  # PID → this process's token (a forked child has its own PID, so its own token)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _owner() -> str:
    pid = os.getpid()
    return f"{pid}-{_token.setdefault(pid, secrets.token_hex(4))}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def is_temp(name: str) -> bool:
    """Whether ``name`` is a bort temporary (of any process)."""
    return _TEMP.match(name) is not None


def _dead(name: str) -> bool:
    m = _TEMP.match(name)
    if m is None:
        return False
    pid = int(m.group(1))
    if pid == os.getpid():
        return m.group(2) != _token.get(pid)  # an earlier process with our PID
    return not _alive(pid)


def remove_leftovers(folder: str | Path) -> None:
    """Remove the temporaries that dead processes left in ``folder`` (not in its subfolders)."""
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return
    for e in entries:
        if _dead(e.name):
            if e.is_dir(follow_symlinks=False):
                shutil.rmtree(e.path, ignore_errors=True)
            else:
                Path(e.path).unlink(missing_ok=True)


def _new_temp(parent: Path, label: str, *, folder: bool) -> Path:
    """A new temporary file or folder in ``parent``, named for this process, after removing dead ones' leftovers."""
    parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(parent)
    prefix, suffix = f".bort-tmp-{_owner()}-", f"-{label}"
    if folder:
        tmp = Path(tempfile.mkdtemp(dir=parent, prefix=prefix, suffix=suffix))
        os.chmod(tmp, 0o777 & ~_umask())
        return tmp
    fd, tmp = tempfile.mkstemp(dir=parent, prefix=prefix, suffix=suffix)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())
    return Path(tmp)


@contextlib.contextmanager
def temp_dir(parent: str | Path, label: str) -> Iterator[Path]:
    """Yield a new temporary folder in ``parent``, removed when the block ends."""
    tmp = _new_temp(Path(parent), label, folder=True)
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path`` and rename it into place."""
    with atomic_file(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


@contextlib.contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write (it ends with ``path``'s name); it replaces ``path`` only if the block succeeds."""
    path = Path(path)
    tmp = _new_temp(path.parent, path.name, folder=False)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def staged_files(folder: Path) -> Iterator[Path]:
    """Yield a temporary folder inside ``folder`` to fill; if the block succeeds, each of its files is
    renamed into ``folder``. No file is ever half-written, and the folder's other files stay."""
    with temp_dir(folder, "staged") as tmp:
        yield tmp
        for f in tmp.iterdir():
            os.replace(f, folder / f.name)


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary folder to fill; it replaces the folder ``path`` whole only if the block succeeds.

    Only for folders bort owns entirely (a checkpoint, ``best/``): whatever else was in ``path`` goes.
    """
    path = Path(path)
    recover_dir(path)
    with temp_dir(path.parent, path.name) as tmp:
        yield tmp
        if path.exists():
            # The old folder waits under a fixed name (not a temporary, which the next run would delete) until the new
            # one is in place: a kill between the two renames leaves it for recover_dir, so no finished work is lost.
            old = previous(path)
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)


def previous(path: Path) -> Path:
    """Where an :func:`atomic_dir` swap keeps the old folder until the new one is in place: a name of bort's own, so that
    :func:`recover_dir` never takes a user's folder for it."""
    return path.with_name(f".{path.name}.bort-previous")


def recover_dir(path: str | Path) -> None:
    """Put back the folder an :func:`atomic_dir` swap had moved aside when a kill came before the new one was in place."""
    path = Path(path)
    old = previous(path)
    if old.is_dir():
        if path.exists():
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(old, path)


_held: dict[Path, list] = {}  # folder → [lock file descriptor, holders]: the locks this process holds


def _drop(folder: Path) -> None:
    """One holder lets go of ``folder``'s lock; the last one removes the lock file and frees the lock."""
    entry = _held[folder]
    entry[1] -= 1
    if entry[1] == 0:
        del _held[folder]
        # Removed while still locked: a process that opened the old file sees that it is gone and retries. Only our own
        # file: after a folder swap (outputs.output_files) the lock file there may be another process's.
        with contextlib.suppress(OSError):
            if os.stat(folder / LOCK).st_ino == os.fstat(entry[0]).st_ino:
                (folder / LOCK).unlink()
        os.close(entry[0])


class FolderLock:
    """An exclusive lock on ``folder`` for this process: ``folder/.bort.lock`` under ``fcntl.flock``, holding the PID.

    Another process is refused at once with a :class:`BortError` naming the PID that holds it. The
    kernel drops a flock when its process dies, so a lock file left by kill -9 is simply taken over.
    Within one process the lock is shared (two holders of one folder cannot race: they take turns).
    :meth:`release`, the lock's garbage collection or the end of the process frees it and removes the
    lock file.

    Not ``filelock`` (which huggingface_hub brings): its ``FileLock`` takes the same flock, but writes nothing into the lock
    file, so the one-line refusal could not say which process (PID and command) holds the folder, which is its point.
    """

    def __init__(self, folder: str | Path, what: str) -> None:
        self.folder = Path(folder).resolve()
        if self.folder in _held:
            _held[self.folder][1] += 1
        else:
            _held[self.folder] = [self._acquire(self.folder / LOCK, what), 1]
        self._release = weakref.finalize(self, _drop, self.folder)  # runs once: at release, collection or exit

    @staticmethod
    def _acquire(path: Path, what: str) -> int:
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666 & ~_umask())
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                raise BortError(f"'{path.parent}' is in use by another bort process ({holder(path)}); "
                                "wait for it to end, or give another --out") from None
            try:
                same = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # the holder removed the file as we opened it: lock the one there now
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {what}\n".encode())
        return fd

    def release(self) -> None:
        """Let go of the lock (only the first call counts)."""
        self._release()

    def __enter__(self) -> FolderLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def holder(path: Path) -> str:
    """``PID N, <what>`` from a lock file, or ``PID unknown`` while its holder has not written it yet."""
    try:
        pid, _, what = path.read_text(encoding="utf-8").strip().partition(" ")
    except OSError:
        pid, what = "", ""
    return f"PID {pid or 'unknown'}" + (f", {what}" if what else "")


def lock_kind(folder: Path) -> str | None:
    """What the lock file in ``folder`` says its (live or dead) holder was doing, if there is one."""
    try:
        return (folder / LOCK).read_text(encoding="utf-8").strip().partition(" ")[2] or None
    except OSError:
        return None
