"""The import direction of DESIGN.md, checked on the source; and what a kernel or the CLI really loads.

A module imports only from below it: the engine runs in the server, in a kernel and in the CLI, so it never
imports the web server, the shared-document stack or the browser; nothing but the composition root imports
the server extension; only ``engine/llm`` imports litellm. Imports inside functions (loaded when a tool that
needs them runs) and under ``TYPE_CHECKING`` are allowed: they cost nothing until used.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "jupyter_agent"

#: Where a module sits (its path under jupyter_agent/, as a prefix) -> what it must not import at load time.
WEB = ("tornado", "jupyter_server")
DOCUMENTS = ("pycrdt", "jupyter_ydoc", "jupyter_server_ydoc", "pycrdt_websocket")
FRONTS = ("jupyter_agent.server", "jupyter_agent.app", "jupyter_agent.kernel", "jupyter_agent.magics")
FRONTS += ("jupyter_agent.cli",)
#: Metrics and traces: only engine/prometheus.py (imported by the server) loads prometheus_client; OpenTelemetry
#: is optional and imported where tracing is turned on.
TELEMETRY = ("prometheus_client", "opentelemetry")
RULES: dict[str, tuple[str, ...]] = {
    "errors.py": ("jupyter_agent.",),
    "engine/types.py": ("jupyter_agent.engine.", "jupyter_agent.tools", "jupyter_agent.security"),
    "settings.py": (*WEB, *DOCUMENTS, "playwright", "litellm", "jupyter_agent.engine", *FRONTS),
    "security/": (*WEB, *DOCUMENTS, "playwright", "jupyter_agent.engine", "jupyter_agent.tools.", *FRONTS),
    "tools/": (*WEB, *DOCUMENTS, "playwright", "litellm", *FRONTS),
    "engine/": (*WEB, *DOCUMENTS, "playwright", "jupyter_agent.collaboration", *FRONTS, *TELEMETRY),
    "engine/prometheus.py": (*WEB, *DOCUMENTS, "playwright", "jupyter_agent.collaboration", *FRONTS),
    "collaboration/": ("jupyter_agent.engine", "playwright", "litellm", *FRONTS),
    "browser/": (*WEB, *DOCUMENTS, "litellm", *FRONTS),
    "local_model/": (*WEB, *DOCUMENTS, "playwright", "litellm", *FRONTS),
    # The MCP SDK (about a second to import) loads when a server is configured or /api/agent/mcp is used.
    "mcp/": (*WEB, *DOCUMENTS, "playwright", "litellm", "mcp", "mcp_types", *FRONTS),
    "store.py": (*WEB, *DOCUMENTS, "playwright", "litellm", "jupyter_agent.engine", *FRONTS),
    "composition.py": (*WEB, *DOCUMENTS, "playwright", "litellm", *FRONTS),
    "runtime.py": (*WEB, *DOCUMENTS, "playwright", "litellm", *FRONTS),
    "kernel/": (*WEB, *DOCUMENTS, "playwright", "litellm", "jupyter_agent.server", "jupyter_agent.app"),
    "magics.py": (*WEB, *DOCUMENTS, "playwright", "litellm", "jupyter_agent.server", "jupyter_agent.app"),
    "cli.py": (*WEB, *DOCUMENTS, "playwright", "litellm", "jupyter_agent.server", "jupyter_agent.app"),
    "server/": ("jupyter_agent.app", "jupyter_agent.kernel", "jupyter_agent.magics", "jupyter_agent.cli"),
}


def load_time_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of the imports a module runs when it is imported (not in functions or TYPE_CHECKING)."""
    tree = ast.parse(path.read_text(), str(path))
    found: list[tuple[int, str]] = []

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.Import):
                found.extend((node.lineno, alias.name) for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.append((node.lineno, node.module))
            elif isinstance(node, ast.If):
                if "TYPE_CHECKING" not in ast.unparse(node.test):
                    visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                for handler in node.handlers:
                    visit(handler.body)
                visit(node.orelse)
                visit(node.finalbody)
            elif isinstance(node, ast.ClassDef):
                visit(node.body)

    visit(tree.body)
    return found


def rule_for(relative: str) -> tuple[str, ...] | None:
    best = max((prefix for prefix in RULES if relative.startswith(prefix)), key=len, default=None)
    return RULES[best] if best else None


def forbidden(module: str, banned: tuple[str, ...]) -> bool:
    return any(
        module == b.rstrip(".") or module.startswith(b if b.endswith(".") else b + ".") for b in banned
    )


def test_every_module_imports_only_from_below():
    broken = []
    checked = 0
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        banned = rule_for(relative)
        if banned is None:
            continue
        checked += 1
        for line, module in load_time_imports(path):
            if forbidden(module, banned):
                broken.append(f"jupyter_agent/{relative}:{line} imports {module}")
    assert checked > 60  # the rules reach the package (not a pattern that matches nothing)
    assert not broken, "imports against DESIGN.md's direction:\n" + "\n".join(broken)


def test_only_engine_llm_and_the_embedded_model_import_litellm():
    importers = [
        path.relative_to(PACKAGE).as_posix()
        for path in PACKAGE.rglob("*.py")
        if "litellm" in path.read_text() and "import litellm" in path.read_text()
    ]
    assert set(importers) <= {"engine/llm.py", "app.py"}, importers


def test_a_module_that_breaks_the_direction_is_caught(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import os\nfrom tornado import web\nif TYPE_CHECKING:\n    import pycrdt\n")
    imports = load_time_imports(bad)
    assert [m for _, m in imports] == ["os", "tornado"]
    assert forbidden("tornado", RULES["engine/"]) and not forbidden("typing", RULES["engine/"])
    assert forbidden("jupyter_agent.server.handlers", RULES["engine/"])


PROBE = """
import json, os, sys, threading
from jupyter_agent.runtime import build_runtime
from jupyter_agent.tools.python import PYTHON_TOOLS
from jupyter_agent.tools.files import FILE_TOOLS
from jupyter_agent.tools.shell import SHELL_TOOLS
from jupyter_agent.tools.browser import BROWSER_TOOLS
from jupyter_agent.browser import BrowserOnFirstUse
from jupyter_agent.composition import browser_config
from jupyter_agent.cli import AgentApp
agent = build_runtime(os.getcwd(), tools=[*PYTHON_TOOLS, *FILE_TOOLS, *SHELL_TOOLS, *BROWSER_TOOLS])
agent.services["browser"] = BrowserOnFirstUse(browser_config(agent.settings))
for t in threading.enumerate():  # the background imports (litellm, jsonschema) are allowed: let them end
    if t is not threading.current_thread() and t.daemon:
        t.join(60)
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


@pytest.mark.timeout(180)
def test_the_kernel_and_cli_engine_loads_no_web_server_documents_or_browser(tmp_path):
    env = {**os.environ, "JUPYTER_AGENT_MODEL": "openai/none", "JUPYTER_DATA_DIR": str(tmp_path / "data")}
    env["JUPYTER_CONFIG_DIR"] = str(tmp_path / "config")
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=170
    )
    assert done.returncode == 0, done.stderr
    loaded = set(json.loads(done.stdout.strip().splitlines()[-1]))
    assert "jupyter_agent" in loaded and "litellm" in loaded  # the probe did build the engine
    assert not loaded & {"tornado", "jupyter_server", "pycrdt", "jupyter_ydoc", "playwright"}, sorted(loaded)
    assert not loaded & {"prometheus_client", "opentelemetry"}, sorted(loaded)  # metrics are the server's
