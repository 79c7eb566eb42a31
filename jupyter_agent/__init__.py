"""jupyter-agent: an AI agent that works inside Jupyter next to people."""

from __future__ import annotations

from typing import Any

try:
    from jupyter_agent._version import __version__
except ImportError:  # running from a source tree that was never built
    __version__ = "0.0.0"


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    return [{"src": "labextension", "dest": "jupyter-agent"}]


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    from jupyter_agent.app import AgentExtension

    return [{"module": "jupyter_agent", "app": AgentExtension}]


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext jupyter_agent``: the ``%%agent`` and ``%agent_config`` magics (the engine loads at first use)."""
    from jupyter_agent.magics import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    from jupyter_agent.magics import unload_ipython_extension as unload

    unload(ipython)
