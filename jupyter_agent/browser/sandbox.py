"""Whether the launched Chromium can run inside its sandbox, and why not when it cannot.

Chromium's sandbox needs an ordinary user (it refuses to start as root) and user namespaces. The browser is
launched with the sandbox whenever that looks possible; if Chromium still cannot set it up, it is launched
again without, and the reason is kept for the server's health report.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

_PROC_SWITCHES = (
    ("/proc/sys/kernel/unprivileged_userns_clone", "kernel.unprivileged_userns_clone"),
    ("/proc/sys/user/max_user_namespaces", "user.max_user_namespaces"),
)
_LOG_PREFIX = re.compile(r"^(\[pid=\d+\]\s*(\[err\])?\s*)?(\[[^\]]*\]\s*)?")


def sandbox_plan(launch_args: list[str], euid: int | None = None) -> tuple[bool, str]:
    """``(True, "")`` when Chromium should start with its sandbox, else ``(False, why not)``."""
    if "--no-sandbox" in launch_args:
        return False, "--no-sandbox is among the browser's launch arguments"
    euid = os.geteuid() if euid is None else euid
    if euid == 0:
        return False, (
            "running as root: Chromium's sandbox does not run as root (run Jupyter as an ordinary user "
            "to have it)"
        )
    for path, name in _PROC_SWITCHES:
        try:
            value = Path(path).read_text().strip()
        except OSError:
            continue
        if value == "0":
            return False, f"user namespaces are disabled ({name} is 0), and Chromium's sandbox needs them"
    return True, ""


def sandbox_failure(message: str) -> str | None:
    """Chromium's own line saying why its sandbox failed, from a launch error; None if it is not that."""
    if "sandbox" not in message.lower() and "namespace" not in message.lower():
        return None
    for line in message.splitlines():
        text = _LOG_PREFIX.sub("", line.strip().lstrip("- ")).strip()
        lowered = text.lower()
        if (
            ("sandbox" in lowered or "namespace" in lowered)
            and "chromiumsandbox" not in lowered
            and ("error" in line.lower() or "fatal" in line.lower() or "no usable" in lowered)
        ):
            return text
    return "Chromium could not set up its sandbox"
