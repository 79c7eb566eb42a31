"""Noticing that a run installed packages, and telling the model what that means for the running kernel.

After ``%pip install pandas`` succeeds, ``import pandas`` in the same kernel usually works, but a module the
kernel imported before the install keeps its old version (or its failed import) until the kernel restarts,
and a package installed from a shell may have gone to another environment. A model that does not know this
concludes the package is still missing; so the tools that run code add :func:`install_note` to their result.
"""

from __future__ import annotations

import re

#: A command that installs packages, in code or a shell line: ``pip install``, ``%pip install``,
#: ``!pip install``, ``python -m pip install``, ``uv pip install``, ``uv add``, ``conda``/``mamba install``,
#: or ``subprocess.run([sys.executable, "-m", "pip", "install", ...])``.
INSTALL_COMMAND = re.compile(
    r"\b(?:pip3?|conda|mamba|micromamba)(?:\.exe)?\s+install\b|\buv\s+add\b|[\"']pip[\"']\s*,\s*[\"']install[\"']"
)
#: pip's last line after it installed something: ``Successfully installed pandas-2.2.3 pytz-2024.2``.
SUCCESS = re.compile(r"^\s*Successfully installed (.+)$", re.MULTILINE)
#: Output that says an install command installed nothing: it failed, or everything was there already.
NOTHING_NEW = re.compile(
    r"^\s*(?:ERROR:|error:|Requirement already satisfied|No matching distribution|All requested packages "
    r"already installed)",
    re.MULTILINE,
)
MAX_NAMES = 8

#: What the model is told to do about it.
AFRESH = (
    "import the package afresh in a new run before concluding it is missing or broken (run "
    "importlib.invalidate_caches() first if the import still fails). A module the kernel imported before the "
    "install keeps its old version until the kernel restarts"
)
RESTART_TOOL = (
    "; when that matters, restart the kernel with notebook_restart_kernel (it asks the user first: the "
    "kernel's variables are lost)."
)
OFFER_RESTART = (
    "; when that matters, offer the user to restart the kernel (Kernel > Restart Kernel in JupyterLab; the "
    "kernel's variables are lost)."
)


def installed_packages(code: str, output: str, ok: bool = True) -> list[str] | None:
    """What a run installed: ``name-version`` entries from pip's output, ``[]`` when it ran an install command
    that seems to have worked without saying what it installed (``pip install -q``, conda), or None when it
    installed nothing."""
    found = [name for match in SUCCESS.finditer(output) for name in match.group(1).split()]
    if found:
        return found
    if ok and INSTALL_COMMAND.search(code) and not NOTHING_NEW.search(output):
        return []
    return None


def install_note(packages: list[str], *, shell: bool = False, restart_tool: bool = False) -> str:
    """The note added to a tool result after a run installed ``packages``: from a ``shell`` command or in a
    kernel; ``restart_tool``: whether notebook_restart_kernel can restart the kernel (else only the user
    can, e.g. the kernel the agent itself runs in)."""
    names = ", ".join(packages[:MAX_NAMES]) + (", ..." if len(packages) > MAX_NAMES else "")
    what = f"Packages were installed ({names})" if packages else "Packages were installed"
    restart = RESTART_TOOL if restart_tool else OFFER_RESTART
    if shell:
        return (
            f"Note: {what} from the shell, into the environment of the shell's pip or python, which may not be "
            f"the kernel's (compare sys.executable in the kernel). No running kernel has imported them: {AFRESH}"
            f"{restart}"
        )
    return f"Note: {what}. The running kernel has not imported them yet: {AFRESH}{restart}"


def with_install_note(
    text: str, code: str, output: str, ok: bool, *, shell: bool = False, restart_tool: bool = False
) -> tuple[str, list[str] | None]:
    """``text`` with the install note appended when the run installed packages, and what it installed."""
    packages = installed_packages(code, output, ok)
    if packages is None:
        return text, None
    return f"{text}\n\n{install_note(packages, shell=shell, restart_tool=restart_tool)}", packages
