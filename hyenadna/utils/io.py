"""Atomic file output: a reader never sees a half-written file, and an error or interrupt leaves no partial output."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed over ``path``, on failure removed."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; give a file name to write")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:  # a read-only or missing place: name the file asked for, not the temporary one
        raise OSError(f"cannot write {path}: {e.strerror or e}") from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp's 0600 would make shipped files unreadable to others
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_text_file(path: str | Path) -> Iterator:
    """A text handle writing ``path`` atomically, gzip-compressed where the name ends in .gz, with no timestamp in
    the gzip header, so that the same text always makes the same bytes."""
    import gzip
    import io

    with atomic_path(path) as tmp:
        if str(path).lower().endswith(".gz"):
            with (
                open(tmp, "wb") as raw,
                gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as z,
                io.TextIOWrapper(z, encoding="utf-8") as f,
            ):
                yield f
        else:
            with open(tmp, "w", encoding="utf-8") as f:
                yield f


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def ignored_folder(path: str | Path, what: str) -> Path:
    """``path``, created, with a .gitignore that keeps it and everything in it out of git (``what`` it holds, for
    the reader of that file): working state beside committed results, never committed with them."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    if not (path / ".gitignore").exists():
        atomic_write_text(path / ".gitignore", f"# {what}\n*\n")
    return path


FIGURE_FORMATS = ("png", "pdf", "svg")


def figure_format(path: str | Path) -> str:
    """The format a figure is written in, from its extension: png, pdf or svg (else an error, before any work: a PNG
    under another extension would read as a broken file)."""
    fmt = Path(path).suffix.lower().removeprefix(".")
    if fmt not in FIGURE_FORMATS:
        raise ValueError(f"{path}: a figure is written as .png, .pdf or .svg")
    return fmt


def save_figure(fig, path: str | Path, dpi: int = 110) -> None:
    """Write a matplotlib figure as PNG, PDF or SVG (by ``path``'s extension), atomically, and close it."""
    import matplotlib.pyplot as plt

    fmt = figure_format(path)
    # no dates or random ids, so that the same figure makes the same bytes
    metadata = {"pdf": {"CreationDate": None}, "svg": {"Date": None}}.get(fmt)
    with atomic_path(path) as tmp, plt.rc_context({"svg.hashsalt": "hyenadna"}):
        fig.savefig(tmp, format=fmt, dpi=dpi, metadata=metadata)
    plt.close(fig)


class FolderInUseError(OSError):
    """Another process is writing a run in the folder (an OSError, as the busy lock is: the command line's errors).
    ``holder``: who, as its lock file says ("process N on HOST: COMMAND"), or ""."""

    holder = ""


_HELD: set[str] = set()  # folders this process holds: a second lock of its own would be refused
LOCK_FILE = ".hyenadna.lock"  # in a folder while a run holds it: who holds it


@contextlib.contextmanager
def hold_folder(folder: str | Path, what: str = "run") -> Iterator[Path]:
    """An exclusive lock on ``folder`` (created) for as long as a ``what`` writes there, so that the same command
    started twice (a scheduler's requeue while the job still runs, a forgotten ``nohup``) is refused instead of
    interleaving two runs' checkpoints and metrics. The lock is ``flock`` on ``LOCK_FILE`` in the folder, which names
    the holder (process, host, command) for the one refused, and is removed when the run ends; the kernel lets go of
    the lock when the process ends, however it ends, so a file left by a killed run holds nothing. NFS clients take
    it as a POSIX lock, seen from every node; where the file system has no locks at all, the run goes on unguarded. A
    folder made here and left empty is removed."""
    import socket
    import sys

    try:
        import fcntl
    except ImportError:  # not POSIX (Windows): no flock, the run goes on unguarded
        fcntl = None

    folder = Path(folder)
    made = [p for p in (folder, *folder.parents) if not p.exists()]  # the innermost first
    folder.mkdir(parents=True, exist_ok=True)
    key = os.path.realpath(folder)
    if key in _HELD or fcntl is None:  # held by this process already (the command, then the function it calls)
        yield folder
        return
    path = folder / LOCK_FILE
    locked = False
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError:  # the folder's last holder removed it (a finished benchmark run's) since our mkdir
            folder.mkdir(parents=True, exist_ok=True)
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 1000, 0).decode(errors="replace").strip()
            os.close(fd)
            error = FolderInUseError(
                f"{folder} is in use by another {what}{f' ({holder})' if holder else ''}: a second one there would "
                "interleave its checkpoints and logs with the first's; wait for that one to end, or stop it first"
            )
            error.holder = holder
            raise error from None
        except OSError:
            break  # a file system without locks: unguarded
        # the holder before us may have removed the file between our open and our lock: then it locks nothing
        with contextlib.suppress(FileNotFoundError):
            locked = os.stat(path).st_ino == os.fstat(fd).st_ino
        if locked:
            break
        os.close(fd)
    try:
        if locked:
            command = " ".join(sys.argv)[:300]
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"process {os.getpid()} on {socket.gethostname()}: {command}\n".encode(), 0)
        _HELD.add(key)
        yield folder
    finally:
        _HELD.discard(key)
        with contextlib.suppress(OSError):  # removed while still held: one who opened it meanwhile is refused
            path.unlink()
        os.close(fd)  # releases the lock
        with contextlib.suppress(OSError):  # only while empty: an error before any output leaves no stray folder
            for p in made:
                p.rmdir()
