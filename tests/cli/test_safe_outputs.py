"""Outputs never destroy: a write that fails (here: a real file-size limit, as on a full
disk) keeps the old file, leaves no temporary and says so in one line with a non-zero exit;
an output that would overwrite the input is refused before anything runs."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from loopscope.tracer.native import load_native
from loopscope.tracer.safe_write import OutputError, write_bytes, write_file
from tests.cli.test_cli import GENERATOR_SCRIPT, _env, _script, assert_one_error, run_cli

ROOT = Path(__file__).resolve().parents[2]
OLD = b"an earlier, good output\n"


def _limit_file_size(limit: int) -> None:
    """In the child: files may not grow beyond `limit` bytes (EFBIG, as ENOSPC would)."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def _run_limited(limit: int, *args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loopscope", *map(str, args)], cwd=cwd,
        capture_output=True, text=True, timeout=120, env=_env(),
        preexec_fn=lambda: _limit_file_size(limit),
    )


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".partial" in p.name)


@pytest.mark.parametrize("name", ["old.loopscope", "old.json", "old.png", "old.svg", "old.pdf"])
def test_a_write_that_fails_midway_keeps_the_old_file(tmp_path: Path, name: str) -> None:
    script = _script(tmp_path, "gen.py", GENERATOR_SCRIPT)
    old = tmp_path / name
    old.write_bytes(OLD)
    command = "export" if old.suffix in (".png", ".svg", ".pdf") else "trace"
    done = _run_limited(300, command, script, "-o", old, cwd=tmp_path)
    assert_one_error(done, "cannot write", str(old))
    assert done.returncode != 0
    assert old.read_bytes() == OLD
    assert _leftovers(tmp_path) == []


def test_a_complete_write_replaces_the_old_file_and_keeps_its_permissions(tmp_path: Path) -> None:
    script = _script(tmp_path, "gen.py", GENERATOR_SCRIPT)
    old = tmp_path / "run.loopscope"
    old.write_bytes(OLD)
    old.chmod(0o640)
    done = run_cli("trace", script, "-o", old, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert len(load_native(old)) > 0
    assert old.stat().st_mode & 0o777 == 0o640
    assert _leftovers(tmp_path) == []


def test_the_input_script_is_never_the_output(tmp_path: Path) -> None:
    script = _script(tmp_path, "gen.py", GENERATOR_SCRIPT)
    before = script.read_bytes()
    (tmp_path / "alias.py").symlink_to(script)
    for output in (script, tmp_path / "alias.py", Path("gen.py")):
        done = run_cli("trace", script, "-o", output, cwd=tmp_path)
        assert_one_error(done, "over the input")
        assert "HI" not in done.stdout  # refused before the run
        assert script.read_bytes() == before


def test_the_input_trace_is_never_the_output(tmp_path: Path) -> None:
    script = _script(tmp_path, "gen.py", GENERATOR_SCRIPT)
    saved = tmp_path / "run.loopscope"
    assert run_cli("trace", script, "-o", saved, cwd=tmp_path).returncode == 0
    before = saved.read_bytes()
    done = run_cli("trace", saved, "-o", saved, cwd=tmp_path)
    assert_one_error(done, "over the input")
    assert saved.read_bytes() == before


def test_an_empty_output_name_is_a_clear_error(tmp_path: Path) -> None:
    done = run_cli("trace", "producer-consumer", "-o", "", cwd=tmp_path)
    assert_one_error(done, "file name is empty")
    assert list(tmp_path.iterdir()) == []


def test_a_dangling_symlink_gets_the_output_once_complete_and_nothing_on_failure(
    tmp_path: Path,
) -> None:
    link = tmp_path / "link.loopscope"
    link.symlink_to(tmp_path / "real.loopscope")
    done = run_cli("trace", "no-such-scenario", "-o", link, cwd=tmp_path)
    assert done.returncode != 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.loopscope"]
    assert link.is_symlink() and not link.exists()

    script = _script(tmp_path, "gen.py", GENERATOR_SCRIPT)
    done = run_cli("trace", script, "-o", link, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert link.is_symlink() and len(load_native(tmp_path / "real.loopscope")) > 0
    assert _leftovers(tmp_path) == []


def test_the_helper_leaves_the_old_file_when_the_writer_raises(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(OLD)

    def half_then_fail(out: object) -> None:
        assert hasattr(out, "write")
        out.write(b"half")
        raise RuntimeError("the writer failed")

    with pytest.raises(RuntimeError):
        write_file(target, half_then_fail)
    assert target.read_bytes() == OLD
    assert _leftovers(tmp_path) == []
    write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    with pytest.raises(OutputError, match=r"cannot write .*missing"):
        write_bytes(tmp_path / "missing" / "x", b"")
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(OutputError, match="cannot write"):
            write_bytes(locked / "x", b"")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_a_read_only_output_is_refused_before_the_run(tmp_path: Path) -> None:
    script = _script(tmp_path, "gen.py", GENERATOR_SCRIPT)
    old = tmp_path / "kept.loopscope"
    old.write_bytes(OLD)
    old.chmod(0o444)
    done = run_cli("trace", script, "-o", old, cwd=tmp_path)
    assert_one_error(done, "permission denied")
    assert "HI" not in done.stdout and old.read_bytes() == OLD
