"""The program's source files, read only as a trace's own and never beyond them.

A trace names source files by path, and a trace file can come from anywhere, so a path in it
is never simply opened: that would let a crafted trace show /etc/shadow, hang on a FIFO or
read /dev/zero until memory runs out. Source text is read only

- from a regular file (checked on the open file, which is opened without blocking), of at
  most MAX_SOURCE_BYTES, as UTF-8;
- and only when it is the file the trace was recorded from: while a run is recorded the
  parent notes each source file's identity, its size and SHA-256 (`track_source_files`,
  saved in the trace's meta as "source_files": {path: [size, sha256 hex]}), and the text is
  shown only while the file still has that identity.

A trace without the "source_files" table (saved by a Loopscope from before it, or built in
process) is *unverified*: its sources are read only from regular files whose name ends in
.py, under the same size cap, so an old trace still shows its program while a crafted one
can show at most a Python file. A trace with the table shows nothing it does not list.
"""

# No `from __future__ import annotations` in this module: with it, a NamedTuple's field
# annotations are strings, and typing compiles each one (3.11-3.13) when the class is
# made, on every run's start-up (tests/cli/test_startup_imports.py).
import importlib
import os
import stat
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

MAX_SOURCE_BYTES = 4 << 20
SOURCE_FILES = "source_files"  # the meta key
_CACHE_SIZE = 64


def _builtin_sha256() -> Callable[[bytes | bytearray], Any]:
    """SHA-256 from the interpreter's own module (_sha2 from 3.12, _sha256 before), else
    hashlib's: hashlib loads OpenSSL first, about 11M instructions of every traced run's
    command line, for the digest of a script or two."""
    for name in ("_sha2", "_sha256"):
        try:
            sha256: Callable[[bytes | bytearray], Any] = importlib.import_module(name).sha256
        except (ImportError, AttributeError):
            continue
        return sha256
    import hashlib

    return hashlib.sha256


_sha256 = _builtin_sha256()


class SourceText(NamedTuple):
    """A source file's text, or why it is not shown (`text` None, `reason` one phrase).
    (Not a dataclass: the command line that records a run needs this module, and
    `dataclasses` would be its costliest import.)"""

    text: str | None
    reason: str = ""
    verified: bool = False

    def line(self, number: int) -> str:
        """Line `number` (from 1), or "" where there is none."""
        if self.text is None or number < 1:
            return ""
        lines = _lines_of(self.text)
        return lines[number - 1] if number <= len(lines) else ""


_split_cache: dict[int, tuple[str, list[str]]] = {}


def _lines_of(text: str) -> list[str]:
    cached = _split_cache.get(id(text))
    if cached is not None and cached[0] is text:
        return cached[1]
    lines = text.splitlines()
    if len(_split_cache) >= _CACHE_SIZE:
        _split_cache.clear()
    _split_cache[id(text)] = (text, lines)
    return lines


# (path) -> (stat key, size, sha256, text or None, reason)
_read_cache: dict[str, tuple[tuple[int, ...], int, str, str | None, str]] = {}


def _read_regular(path: str) -> tuple[int, str, str | None, str]:
    """(size, sha256, text or None, reason) of a regular file of at most MAX_SOURCE_BYTES;
    size -1 when it is not one."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else None
        return -1, "", None, (reason or "cannot be read").lower()
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return -1, "", None, "not a regular file"
        key = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
        cached = _read_cache.get(path)
        if cached is not None and cached[0] == key:
            return cached[1:]
        if info.st_size > MAX_SOURCE_BYTES:
            return info.st_size, "", None, "too large to show"
        os.set_blocking(fd, True)
        data = bytearray()
        while len(data) <= MAX_SOURCE_BYTES:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            data += chunk
    except OSError as exc:
        return -1, "", None, (exc.strerror or "cannot be read").lower()
    finally:
        os.close(fd)
    if len(data) > MAX_SOURCE_BYTES:
        return len(data), "", None, "too large to show"
    digest = _sha256(data).hexdigest()
    try:
        text: str | None = data.decode("utf-8")
        reason = ""
    except UnicodeDecodeError:
        text, reason = None, "not UTF-8 text"
    if len(_read_cache) >= _CACHE_SIZE:
        _read_cache.clear()
    _read_cache[path] = (key, len(data), digest, text, reason)
    return len(data), digest, text, reason


def file_identity(path: str) -> list[Any] | None:
    """[size, sha256 hex] of a regular file small enough to show; None otherwise."""
    size, digest, _text, _reason = _read_regular(path)
    return [size, digest] if digest else None


def is_file_name(path: str) -> bool:
    """Whether a source path names a file at all ("<string>", "<frozen ...>" do not)."""
    return bool(path) and not (path.startswith("<") and path.endswith(">"))


def record_identities(meta: dict[str, Any], paths: Iterable[str]) -> None:
    """Notes the identity of each of `paths` not yet noted in `meta` (see the module doc)."""
    known = meta.setdefault(SOURCE_FILES, {})
    for path in paths:
        if path in known or not is_file_name(path):
            continue
        identity = file_identity(path)
        if identity is not None:
            known[path] = identity


def track_source_files(trace: Any, also: Iterable[str] = ()) -> None:
    """While `trace` is recorded, notes each new source file's identity as its first event
    arrives (and those of `also`, the program's own file, at once)."""
    record_identities(trace.meta, also)
    seen = [0]

    def on_batch(_first_seq: int, _count: int) -> None:
        sources = trace.sources
        if len(sources) > seen[0]:
            record_identities(trace.meta, {row[0] for row in sources[seen[0]:]})
            seen[0] = len(sources)

    trace.listeners.insert(0, on_batch)


def source_text(meta: dict[str, Any] | None, path: str) -> SourceText:
    """The text of source file `path` of a trace with this meta (None: a file the user chose
    themselves, read under the same file checks but not verified), or why it is not shown."""
    if not is_file_name(path):
        return SourceText(None, "not a file")
    identities = None if meta is None else meta.get(SOURCE_FILES)
    if meta is not None and not isinstance(identities, dict):
        if not path.endswith((".py", ".pyw")):
            return SourceText(None, "not recorded with this trace")
    elif meta is not None:
        assert isinstance(identities, dict)
        expected = identities.get(path)
        if expected is None:
            return SourceText(None, "not recorded with this trace")
    size, digest, text, reason = _read_regular(path)
    if text is None:
        return SourceText(None, reason or "cannot be read")
    if meta is not None and isinstance(identities, dict):
        if [size, digest] != expected:
            return SourceText(None, "changed since the trace was recorded")
        return SourceText(text, verified=True)
    return SourceText(text)


def source_line(meta: dict[str, Any] | None, path: str, line: int) -> str:
    """One line of a trace's source file (see source_text); "" when it is not shown."""
    return source_text(meta, path).line(line)
