"""Private files: written through a 0600 file renamed into place, a secret generated once and kept, and a copy left
readable to others made private before it is read."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from launcher.private_files import private_secret, write_private_file


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def loose_umask() -> Iterator[None]:
    """A umask that lets every file be created world-readable unless its creator says otherwise."""
    previous = os.umask(0)
    yield
    os.umask(previous)


def test_a_private_file_is_written_0600_in_a_0700_folder_and_replaced_whole(tmp_path: Path):
    path = tmp_path / "conf" / "redis.conf"
    write_private_file(path, "requirepass x\n")
    assert path.read_text() == "requirepass x\n" and mode_of(path) == 0o600 and mode_of(path.parent) == 0o700
    write_private_file(path, "maxmemory 1\n")
    assert path.read_text() == "maxmemory 1\n" and mode_of(path) == 0o600
    assert [entry.name for entry in path.parent.iterdir()] == ["redis.conf"]  # no temporary file left


def test_a_secret_is_generated_once_then_read_back(tmp_path: Path):
    made: list[str] = []

    def generate() -> str:
        made.append(f"secret-{len(made)}")
        return made[-1]

    path = tmp_path / "run" / "secret"
    assert private_secret(path, generate) == "secret-0" and private_secret(path, generate) == "secret-0"
    assert made == ["secret-0"] and path.read_text() == "secret-0\n" and mode_of(path) == 0o600


def test_a_secret_left_readable_to_others_is_made_private_and_kept(tmp_path: Path):
    path = tmp_path / "secret"
    path.write_text("old\n")
    path.chmod(0o644)
    assert private_secret(path, lambda: "new") == "old" and mode_of(path) == 0o600
