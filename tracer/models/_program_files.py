"""Which source files are the traced program's own and which are library code.

Library code is the standard library, site-packages, Loopscope's tracer and, in a child
forked from the command line, that command line's frames left under the program's; the program is
everything else -- and always Loopscope's own scenarios, which are the programs a learner
traces even when Loopscope is installed into site-packages, and the folders named in
LOOPSCOPE_PROGRAM_PATHS.
"""

from __future__ import annotations

import importlib.util
import os
import sysconfig
from collections.abc import Mapping

from loopscope.tracer.early_child import command_line_files


def _as_root(path: str | os.PathLike[str]) -> str:
    return os.path.realpath(path) + "/"


def library_roots() -> tuple[str, ...]:
    """Folders whose files are library code (resolved, each ending in '/')."""
    paths = sysconfig.get_paths()
    roots = {paths[key] for key in ("stdlib", "platstdlib", "purelib", "platlib") if key in paths}
    roots.add(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))  # tracer/ itself
    return tuple(sorted(_as_root(root) for root in roots))


def program_roots(env: Mapping[str, str] = os.environ) -> tuple[str, ...]:
    """Folders whose files are the program's even inside a library root: the scenarios, and
    the folders the user names in LOOPSCOPE_PROGRAM_PATHS (os.pathsep apart; a benchmark
    suite's installed sources, say)."""
    spec = importlib.util.find_spec("loopscope.scenarios")
    locations = list(spec.submodule_search_locations or ()) if spec is not None else []
    locations += [folder for folder in env.get("LOOPSCOPE_PROGRAM_PATHS", "").split(os.pathsep)
                  if folder]
    return tuple(sorted(_as_root(location) for location in locations))


class ProgramFiles:
    """Decides, once per file name, whether a code object's file belongs to the program."""

    def __init__(self) -> None:
        self._library = library_roots()
        self._program = program_roots()
        self._command_line = command_line_files()
        self._verdicts: dict[str, bool] = {}

    def __call__(self, filename: str) -> bool:
        verdict = self._verdicts.get(filename)
        if verdict is None:
            if filename in self._command_line:
                verdict = False  # a forked child's command line frames, under the program's
            elif filename.startswith("<"):
                # "<frozen ...>" is the stdlib; "<string>"/"<stdin>" are the user's own code
                verdict = not filename.startswith("<frozen")
            else:
                resolved = os.path.realpath(filename)
                verdict = resolved.startswith(self._program) or not resolved.startswith(
                    self._library)
                if verdict and not os.path.isabs(filename) and not os.path.exists(resolved):
                    # a compiled library's code ("src/gevent/_imap.py": Cython names its
                    # functions' code by the path it was built from), no file of the program's
                    verdict = False
            self._verdicts[filename] = verdict
        return verdict


class LazyProgramFiles:
    """ProgramFiles for hooks installed at start-up that ask mostly about the standard
    library's files: those and Loopscope's tracer are library code at once, and ProgramFiles
    (sysconfig, resolved paths: milliseconds) is built only when another file is asked about,
    once for all of them."""

    _stdlib = os.path.dirname(os.__file__) + os.sep
    _tracer = os.path.dirname(os.path.dirname(os.path.realpath(__file__))) + os.sep
    _files: ProgramFiles | None = None  # shared by every LazyProgramFiles

    def __init__(self) -> None:
        self._verdicts: dict[str, bool] = {}

    def __call__(self, filename: str) -> bool:
        verdict = self._verdicts.get(filename)
        if verdict is None:
            if filename.startswith(self._tracer) or (
                    filename.startswith(self._stdlib) and "-packages" not in filename):
                verdict = False
            else:
                files = LazyProgramFiles._files
                if files is None:
                    files = LazyProgramFiles._files = ProgramFiles()
                verdict = files(filename)
            self._verdicts[filename] = verdict
        return verdict
