"""The pytest plugin loads on every platform: pytest imports it wherever imgconf is installed
(the ``pytest11`` entry point), so nothing POSIX-only may be imported at its top."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from conformance import pytest_plugin


def test_the_plugin_imports_without_fcntl() -> None:
    """As on Windows, where there is no ``fcntl``."""
    code = "import sys; sys.modules['fcntl'] = None; import conformance.pytest_plugin"
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr


class FakeMsvcrt(types.ModuleType):
    """``msvcrt.locking`` as Windows has it, recording each call and the file position."""

    LK_UNLCK, LK_LOCK = 0, 1

    def __init__(self, failures: list[OSError]) -> None:
        super().__init__("msvcrt")
        self.failures = failures
        self.calls: list[tuple[int, int, int]] = []

    def locking(self, fd: int, mode: int, nbytes: int) -> None:
        self.calls.append((mode, nbytes, os.lseek(fd, 0, os.SEEK_CUR)))
        if mode == self.LK_LOCK and self.failures:
            raise self.failures.pop(0)


def windows(monkeypatch: pytest.MonkeyPatch, failures: list[OSError]) -> FakeMsvcrt:
    msvcrt = FakeMsvcrt(failures)
    monkeypatch.setitem(sys.modules, "fcntl", None)
    monkeypatch.setitem(sys.modules, "msvcrt", msvcrt)
    return msvcrt


def test_without_fcntl_the_lock_is_msvcrt_s_and_waits_until_it_is_free(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    busy = OSError(errno.EDEADLOCK, "Resource deadlock avoided")  # LK_LOCK's ten tries ran out
    msvcrt = windows(monkeypatch, [busy, busy])
    lock = tmp_path / "budget.lock"
    lock.write_text("x" * 10)  # opened for appending: the position starts at the end
    with pytest_plugin._locked(lock):
        assert msvcrt.calls == [(msvcrt.LK_LOCK, 1, 0)] * 3
    assert msvcrt.calls[3:] == [(msvcrt.LK_UNLCK, 1, 0)]


def test_without_fcntl_another_locking_error_is_raised(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    msvcrt = windows(monkeypatch, [OSError(errno.EBADF, "Bad file descriptor")])
    with pytest.raises(OSError, match="Bad file"), pytest_plugin._locked(tmp_path / "x.lock"):
        pass
    assert msvcrt.calls == [(msvcrt.LK_LOCK, 1, 0)]
