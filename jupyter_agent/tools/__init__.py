"""Built-in tools. One module per family; each exports a list of :class:`~jupyter_agent.tools.base.Tool`."""

from __future__ import annotations

from jupyter_agent.tools.base import Tool


def builtin_tools() -> list[Tool]:
    from jupyter_agent.tools.files import FILE_TOOLS
    from jupyter_agent.tools.notebook import NOTEBOOK_TOOLS
    from jupyter_agent.tools.shell import SHELL_TOOLS

    return [*NOTEBOOK_TOOLS, *FILE_TOOLS, *SHELL_TOOLS]
