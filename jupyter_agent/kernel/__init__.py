"""The agent inside IPython kernels: the in-kernel front end of the magics and the agent kernel.

- :mod:`jupyter_agent.kernel.frontend` runs turns for ``%%agent`` cells (threads, event loops, cancel).
- :mod:`jupyter_agent.kernel.view` shows a turn under its cell as it streams.
- :mod:`jupyter_agent.kernel.kernel` is the agent kernel: cells in plain language are requests.

This module stays light (it is imported by ``%load_ext jupyter_agent``): the kernelspec and its installer.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from typing import Any

KERNEL_NAME = "agent"

#: The kernelspec; ``kernels/agent/kernel.json`` in the source tree is the same, with a bare "python".
KERNEL_SPEC: dict[str, Any] = {
    "argv": ["python", "-m", "jupyter_agent.kernel", "-f", "{connection_file}"],
    "display_name": "Python 3 (agent)",
    "language": "python",
    "metadata": {"debugger": False},
}


def install_kernel_spec(
    *, user: bool = False, prefix: str | None = None, name: str = KERNEL_NAME, python: str | None = None
) -> str:
    """Install the agent kernelspec (for this Python) and return the directory it went to."""
    from jupyter_client.kernelspec import KernelSpecManager

    spec = {**KERNEL_SPEC, "argv": [python or sys.executable, *KERNEL_SPEC["argv"][1:]]}
    with tempfile.TemporaryDirectory() as folder:
        with open(os.path.join(folder, "kernel.json"), "w", encoding="utf-8") as f:
            json.dump(spec, f, indent=1)
        return KernelSpecManager().install_kernel_spec(folder, kernel_name=name, user=user, prefix=prefix)
