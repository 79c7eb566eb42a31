"""Which llama.cpp runtime serves the embedded model on this machine, and how it is started.

Two runtimes speak the same OpenAI-compatible HTTP API:

- ``xllamacpp`` (the ``local`` extras): a prebuilt wheel (no compiler, ~3 s to install) with llama.cpp's own C++
  server, its prompt cache, slot save/restore and LLGuidance for ``response_format`` schemas. Its x86-64 wheel
  is built for AVX2 (with FMA, F16C, BMI2): on a CPU without them importing it kills the process with an
  illegal instruction, so it is only ever imported in the model's own subprocess, after :func:`cpu_problem`
  found the instructions present.
- ``llama-cpp-python[server]`` (the ``local-compiled`` extra): compiled on the machine at install (6-11 min,
  cmake and g++), so it runs on any CPU. The fallback where the prebuilt wheel cannot run.

:func:`choose` picks the first that can run here, or says what to install and why.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
from dataclasses import dataclass
from pathlib import Path

PREBUILT = "xllamacpp"
PREBUILT_VERSION = "2026.10.11549"  # exact: its Python API mirrors llama.cpp's parameter struct
COMPILED = "llama-cpp-python"
COMPILED_REQUIREMENT = "llama-cpp-python[server]==0.3.36"
#: Modules ``python -m llama_cpp.server`` needs: the compiled runtime and its ``[server]`` extras.
COMPILED_MODULES = (
    "llama_cpp",
    "uvicorn",
    "fastapi",
    "sse_starlette",
    "starlette_context",
    "pydantic_settings",
)
#: x86-64 instructions the prebuilt wheel's llama.cpp was built with (``xllamacpp.get_system_info()``).
PREBUILT_X86_FLAGS = ("avx2", "fma", "f16c", "bmi2")
#: Tests only: a space-separated list of CPU flags that replaces /proc/cpuinfo's (e.g. "sse4_2 avx" = no AVX2).
TEST_CPU_FLAGS = "JUPYTER_AGENT_TEST_CPU_FLAGS"

COMPILED_HINT = f"pip install '{COMPILED_REQUIREMENT}' (it compiles llama.cpp for this CPU: 6-11 min, needs cmake and g++)"


@dataclass(frozen=True)
class Runtime:
    """A usable runtime: its name and version (shown in the health status)."""

    name: str  # PREBUILT or COMPILED
    version: str

    @property
    def slots(self) -> bool:
        """Whether the server can save and restore a slot's prompt state (llama.cpp's own server can)."""
        return self.name == PREBUILT

    @property
    def label(self) -> str:
        return f"{self.name} {self.version}"


@dataclass(frozen=True)
class Choice:
    """The runtime to use, or (``runtime`` None) why none can run and the command that fixes it."""

    runtime: Runtime | None
    problem: str = ""
    install_command: str | None = None


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str] | None:
    """The CPU's feature flags (x86 Linux), or None when they cannot be read (other systems)."""
    override = os.environ.get(TEST_CPU_FLAGS)
    if override is not None:
        return set(override.split())
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as lines:
            for line in lines:
                if line.startswith("flags"):
                    return set(line.partition(":")[2].split())
    except OSError:
        pass
    return None


def cpu_problem() -> str:
    """Why the prebuilt runtime cannot run on this CPU ('' when it can, or when the flags cannot be read)."""
    flags = cpu_flags()
    if flags is None:
        return ""  # not x86 Linux: try it (a crash on start is reported as an illegal instruction)
    if os.environ.get(TEST_CPU_FLAGS) is None and platform.machine().lower() not in ("x86_64", "amd64"):
        return ""  # the aarch64 wheel targets plain armv8-a
    missing = [flag for flag in PREBUILT_X86_FLAGS if flag not in flags]
    if not missing:
        return ""
    return (
        f"this CPU lacks {', '.join(m.upper() for m in missing)}, which the prebuilt runtime {PREBUILT} needs"
    )


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def compiled_installed() -> bool:
    return all(_installed(module) for module in COMPILED_MODULES)


def prebuilt_installed() -> bool:
    return _installed("xllamacpp")  # found, never imported here: the import itself needs AVX2


def choose(extra: str = "local", *, avoid_prebuilt: str = "") -> Choice:
    """The runtime for this machine: the prebuilt one where it can run, else the compiled one, else why not.

    ``avoid_prebuilt`` is a reason the prebuilt runtime failed here already (e.g. it crashed on start).
    """
    problem = avoid_prebuilt or cpu_problem()
    if prebuilt_installed() and not problem:
        return Choice(Runtime(PREBUILT, _version(PREBUILT)))
    if compiled_installed():
        return Choice(Runtime(COMPILED, _version("llama_cpp_python")))
    if problem:
        return Choice(
            None,
            f"{problem}. Install the compiled runtime instead: {COMPILED_HINT}",
            f"pip install '{COMPILED_REQUIREMENT}'",
        )
    return Choice(
        None,
        f"the local model runtime is not installed ({PREBUILT} is missing). Install it with "
        f"pip install 'jupyter-agent[{extra}]' (a prebuilt wheel, seconds)",
        f"pip install 'jupyter-agent[{extra}]'",
    )
