"""Files only their owner may read (secrets, configs holding them), which never exist with looser permissions."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

PRIVATE_MODE = 0o600


def write_private_file(path: Path, text: str) -> None:
    """Write `text` to `path` (replacing it) through a file created 0600, renamed into place once written."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.unlink(missing_ok=True)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_MODE)
    with os.fdopen(descriptor, "w", encoding="utf-8") as out:
        out.write(text)
    os.replace(temporary, path)


def private_secret(path: Path, generate: Callable[[], str]) -> str:
    """The secret kept in `path`, generated (and written 0600) on first use; a copy left readable to others by an
    older version is made private again before it is read."""
    if not path.is_file():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_MODE)
        except FileExistsError:  # another `make run` made it meanwhile: use theirs
            pass
        else:
            with os.fdopen(descriptor, "w", encoding="utf-8") as out:
                out.write(generate() + "\n")
    if path.stat().st_mode & 0o077:
        path.chmod(PRIVATE_MODE)
    return path.read_text(encoding="utf-8").strip()
