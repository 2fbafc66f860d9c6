"""Writes that never destroy: every output file is written beside its target and renamed into
place only when it is complete.

A failure at any point (a full disk, a killed process, a writer that raises) leaves the old
file exactly as it was and no temporary behind (the temporary's name starts with a dot and
ends with the target's suffix, so a writer that picks its format from the name still can).
The target is followed through symbolic links, so writing "through" a link replaces the file
it points to, and a dangling link creates that file only once the output is complete.

`output_problem(path)` says, before any work starts, why a path cannot be written (None when
it can), by creating and removing a temporary where the output will go. No Qt here: the CLI
and the app share these helpers.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO


class OutputError(OSError):
    """An output that could not be written: str() is the one line to show, "cannot write
    PATH: REASON", and `strerror` the reason alone (as for any OSError)."""

    def __init__(self, shown: str, reason: str) -> None:
        super().__init__(reason)
        self.strerror = reason
        self.shown = shown

    def __str__(self) -> str:
        if not self.shown:
            return f"cannot write: {self.strerror}"
        return f"cannot write {self.shown}: {self.strerror}"


def real_target(path: str | os.PathLike[str]) -> Path:
    """Where the bytes for `path` end up: its symbolic links followed, dangling or not."""
    text = os.fspath(path)
    if text == "":
        raise OutputError("", "the output file name is empty")
    return Path(os.path.realpath(text))


def output_problem(path: str | os.PathLike[str]) -> str | None:
    """Why `path` cannot take an output (one line naming it), or None when it can."""
    shown = os.fspath(path)
    try:
        target = real_target(path)
    except OutputError as exc:
        return str(exc)
    if target.is_dir():
        return f"cannot write {shown}: it is a directory"
    try:
        mode = target.stat().st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        return f"cannot write {shown}: {exc.strerror or exc}"
    if mode is not None and not stat.S_ISREG(mode):
        return f"cannot write {shown}: it is not a regular file"
    if mode is not None and not os.access(target, os.W_OK):
        # renaming over it would succeed, but a read-only file is not ours to replace
        return f"cannot write {shown}: permission denied"
    if not target.parent.is_dir():
        return f"cannot write {shown}: no such directory {target.parent}"
    try:
        probe = _create_temporary(target)
    except OSError as exc:
        return f"cannot write {shown}: {exc.strerror or exc}"
    os.close(probe[1])
    with contextlib.suppress(OSError):
        os.unlink(probe[0])
    return None


def same_file(left: str | os.PathLike[str], right: str | os.PathLike[str]) -> bool:
    """Whether two paths name the same existing file (through links, hard links too)."""
    try:
        a, b = os.stat(left), os.stat(right)
    except (OSError, ValueError):
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _create_temporary(target: Path) -> tuple[str, int]:
    """A new, empty, exclusively created file beside `target`: (its path, an fd open on it)."""
    for _attempt in range(100):
        name = f".{target.name}.{os.urandom(4).hex()}.partial{target.suffix}"
        temporary = str(target.with_name(name))
        try:
            # 0o666 less the umask, as for a file the program created directly
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        except FileExistsError:
            continue
        return temporary, fd
    raise FileExistsError(f"cannot create a temporary file beside {target}")


@contextlib.contextmanager
def replacing(path: str | os.PathLike[str]) -> Iterator[str]:
    """Yields the path of a temporary for a writer to fill; when the block ends without an
    exception the temporary replaces `path` (keeping the old file's permissions), otherwise
    it is removed and the old file stays. OSError is turned into OutputError naming `path`."""
    shown = os.fspath(path)
    target = real_target(path)
    try:
        temporary, fd = _create_temporary(target)
    except OSError as exc:
        raise OutputError(shown, exc.strerror or str(exc)) from None
    os.close(fd)
    try:
        yield temporary
        with open(temporary, "rb+") as done:
            os.fsync(done.fileno())  # on disk before it takes the old file's place
        with contextlib.suppress(FileNotFoundError):
            os.chmod(temporary, stat.S_IMODE(target.stat().st_mode))
        os.replace(temporary, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        if isinstance(exc, OSError) and not isinstance(exc, OutputError):
            raise OutputError(shown, exc.strerror or str(exc)) from None
        raise


def write_file(path: str | os.PathLike[str], write: Callable[[BinaryIO], object]) -> None:
    """Calls `write` with a binary file that becomes `path` once `write` has returned."""
    with replacing(path) as temporary, open(temporary, "wb") as out:
        write(out)


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """`data` as the whole new content of `path`, all or nothing."""
    write_file(path, lambda out: out.write(data))
