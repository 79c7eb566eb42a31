"""Resolve paths from a model or a request inside the server's root directory.

``..``, absolute paths that leave the root and symlinks that point outside it are refused with a clear
error; a path is checked after every symlink in it is resolved.
"""

from __future__ import annotations

import os
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
