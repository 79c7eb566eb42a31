"""Resolve paths from a model or a request inside the server's root directory, and replace files safely.

``..``, absolute paths that leave the root and symlinks that point outside it are refused with a clear
error; a path is checked after every symlink in it is resolved. :func:`write_atomically` is how the agent
writes a file itself (backups, notebooks outside the server): never half-written, never through a planted
symlink.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path, PurePosixPath

from jupyter_agent.errors import PathOutsideRoot


def resolve_in_root(root: Path | str, path: str, *, must_exist: bool = False) -> Path:
    """Return the absolute, symlink-free path of ``path`` (relative to ``root``), or raise PathOutsideRoot."""
    root_real = Path(os.path.realpath(root))
    if not isinstance(path, str) or "\x00" in path:
        raise PathOutsideRoot(f"invalid path {path!r}")
    raw = path.strip() or "."
    candidate = Path(raw)
    if candidate.is_absolute():
        # An absolute path is accepted only when it already lies inside the root.
        target = Path(os.path.realpath(candidate))
    else:
        target = Path(os.path.realpath(root_real / candidate))
    if target != root_real and root_real not in target.parents:
        raise PathOutsideRoot(f"path {path!r} is outside the workspace root; use a path relative to the root")
    if must_exist and not target.exists():
        from jupyter_agent.errors import NotFound

        raise NotFound(f"no such file or directory: {relative_to_root(root_real, target)!r}")
    return target


def relative_to_root(root: Path | str, target: Path) -> str:
    """The API path (POSIX, relative to the root) of an already resolved path."""
    rel = Path(target).relative_to(os.path.realpath(root))
    return PurePosixPath(*rel.parts).as_posix() if rel.parts else ""


def api_path(root: Path | str, path: str) -> str:
    """Normalise a user path to the server's API form: relative to the root, POSIX separators, no ``..``."""
    return relative_to_root(root, resolve_in_root(root, path))


def write_atomically(target: Path, data: bytes) -> None:
    """Replace ``target`` with ``data`` in one step: readers see the old file or the new one, never a part.

    The bytes go to a temporary file with an unpredictable name in the same directory, created with
    ``O_EXCL`` (so a symlink planted at that name is never followed), then ``os.replace`` swaps it in (which
    replaces a symlink at ``target`` rather than writing through it). An existing file keeps its permissions;
    a new one is private to its owner (0600).
    """
    target = Path(target)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        try:
            before = os.stat(target, follow_symlinks=False)
        except FileNotFoundError:
            before = None
        if before is not None and stat.S_ISREG(before.st_mode):
            os.chmod(tmp, stat.S_IMODE(before.st_mode))
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
