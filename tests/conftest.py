"""Shared fixtures: the scripted LLM, a Jupyter server with collaboration and the agent, and clients."""

from __future__ import annotations

import os
from collections.abc import Iterator

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import pytest

from jupyter_agent.testing.scripted_llm import ScriptedLLM
from tests.clients import AgentClient, collaborator, open_agent
from tests.engine_kit import EngineKit

pytest_plugins = ["pytest_jupyter.jupyter_server"]


@pytest.fixture(scope="session", autouse=True)
def litellm_loaded():
    """Import litellm once, before any test: its import changes warning filters, which must not race
    pytest's per-test resets (a filter turned into an error mid-import would fail the import)."""
    from jupyter_agent.engine.llm import preload_litellm

    return preload_litellm().result(timeout=120)


@pytest.fixture(scope="session")
def scripted_llm_server():
    with ScriptedLLM() as server:
        yield server


@pytest.fixture
def llm(scripted_llm_server: ScriptedLLM):
    """The scripted model, empty before each test."""
    scripted_llm_server.reset()
    yield scripted_llm_server
    scripted_llm_server.reset()


@pytest.fixture
def engines(llm: ScriptedLLM, tmp_path, jp_asyncio_loop) -> Iterator[EngineKit]:
    """Session managers on the scripted model without a server; each one it built is closed after the test."""
    kit = EngineKit(llm, tmp_path)
    yield kit
    jp_asyncio_loop.run_until_complete(kit.close())


@pytest.fixture
def agent_config(llm: ScriptedLLM, tmp_path) -> dict:
    """The JupyterAgent configuration of the test server; tests may change it before the server starts."""
    return {
        "model": "openai/scripted",
        "model_options": {"api_base": llm.base_url, "api_key": "sk-test-secret-key-123456"},
        "db_path": str(tmp_path / "state" / "agent.db"),
        "backup_dir": str(tmp_path / "state" / "backups"),
        "retry_backoff": 0.01,
        "request_timeout": 10.0,
        "chunk_timeout": 5.0,
        "approval_timeout": 30.0,
        "cell_timeout": 30.0,
    }


@pytest.fixture
def jp_server_config(jp_root_dir, agent_config, tmp_path):
    return {
        "ServerApp": {
            "jpserver_extensions": {
                "jupyter_server_ydoc": True,
                "jupyter_server_fileid": True,
                "jupyter_agent": True,
            },
        },
        "SQLiteYStore": {"db_path": str(tmp_path / "state" / "ystore.db")},
        "BaseFileIdManager": {
            "root_dir": str(jp_root_dir),
            "db_path": str(tmp_path / "state" / "fileid.db"),
            "db_journal_mode": "OFF",
        },
        "YDocExtension": {"document_save_delay": 0.1, "document_cleanup_delay": 60},
        "JupyterAgent": agent_config,
    }


@pytest.fixture
def agent(jp_serverapp, jp_fetch, jp_http_port, jp_base_url, jp_auth_header):
    """A client of the agent's REST API and WebSockets on the test server (which stops its kernels)."""
    client = open_agent(jp_fetch, jp_http_port, jp_base_url, jp_auth_header)
    yield client
    client.close()


@pytest.fixture
def collab(jp_fetch, jp_http_port, jp_base_url, jp_auth_header):
    """``async with collab(path) as doc``: a person's pycrdt client of the live document at ``path``."""
    return lambda path, kind="notebook": collaborator(
        jp_fetch, jp_http_port, jp_base_url, jp_auth_header, path, kind
    )


@pytest.fixture
def agent_app(jp_serverapp):
    """The running JupyterAgent extension app."""
    return _find_app(jp_serverapp)


def _find_app(serverapp):
    for name, ext in serverapp.extension_manager.extensions.items():
        if name == "jupyter_agent":
            for point in ext.extension_points.values():
                if point.app is not None:
                    return point.app
    raise LookupError("jupyter_agent is not loaded")


__all__ = ["AgentClient"]
