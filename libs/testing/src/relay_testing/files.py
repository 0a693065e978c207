"""Reading a directory tree that running servers are still writing to."""

from __future__ import annotations

from pathlib import Path

# A writer that renames its files into place (a Maildir's tmp/ → new/, an atomic object write) can move a file
# between the listing and the read; a few rescans pick up where it went without looping on a busy directory.
_RESCANS = 5


def read_tree(root: Path, pattern: str = "*", *, max_size: int | None = None) -> dict[Path, bytes]:
    """Every file under ``root`` matching ``pattern`` with its bytes; files that vanish mid-scan are followed."""
    found: dict[Path, bytes] = {}
    for _ in range(_RESCANS):
        missed = False
        for path in root.rglob(pattern):
            if path in found:
                continue
            try:
                if not path.is_file() or (max_size is not None and path.stat().st_size >= max_size):
                    continue
                found[path] = path.read_bytes()
            except FileNotFoundError:
                missed = True
        if not missed:
            return found
    return found
