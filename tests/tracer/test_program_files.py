"""Which code is the program's: its files, wherever they are; never a library's."""

from __future__ import annotations

import os
from pathlib import Path

import gevent.pool
import pytest

from loopscope.tracer.models._program_files import ProgramFiles


def test_the_programs_files_are_its_own_and_the_librarys_are_not(tmp_path: Path) -> None:
    script = tmp_path / "prog.py"
    script.write_text("pass\n")
    is_program = ProgramFiles()
    assert is_program(str(script))
    assert is_program("<string>")
    assert not is_program(os.__file__)
    assert not is_program("<frozen importlib._bootstrap>")
    assert not is_program(gevent.pool.__file__)


def test_a_relative_file_of_the_program_is_its_own(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "mod.py").write_text("pass\n")
    monkeypatch.chdir(tmp_path)
    assert ProgramFiles()("pkg/mod.py")


def test_a_compiled_librarys_code_named_by_the_path_it_was_built_from_is_not(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # gevent compiles its imap with Cython: the code of IMapUnordered._run names
    # "src/gevent/_imap.py", a path of gevent's build tree, relative and nowhere here
    monkeypatch.chdir(tmp_path)
    code = compile("pass", "src/gevent/_imap.py", "exec")
    assert not ProgramFiles()(code.co_filename)
