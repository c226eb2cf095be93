"""Files and directories the relay creates hold personal data: owner-only from the start.

Under systemd the unit's StateDirectory and UMask decide; run by hand (umask 022 is usual) the
mode is set here, at creation, so there is no moment in which others could read (issue 10 §6).
"""

from __future__ import annotations

import os
from pathlib import Path

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def make_private_dir(path: Path) -> None:
    """Create `path` and each missing parent with mode 0700; existing ones are left alone
    (the operator, or systemd, chose their mode)."""
    missing: list[Path] = []
    current = path
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=PRIVATE_DIR)
        except FileExistsError:
            continue  # made meanwhile by another process: theirs to decide
        # mkdir's mode is masked by the umask; a umask wider than 077 must not loosen it.
        os.chmod(directory, PRIVATE_DIR)


def create_private_file(path: Path) -> bool:
    """Create an empty `path` with mode 0600 unless it exists; True when created now."""
    make_private_dir(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    except FileExistsError:
        return False
    os.close(fd)
    return True


def restrict_file(path: Path) -> None:
    """Make a file we just wrote owner-only (for writers that create with 0666 & ~umask)."""
    os.chmod(path, PRIVATE_FILE)
