"""The agent kernel, installed with ``jupyter agent kernelspec install`` and driven by jupyter_client."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager

from jupyter_agent.kernel import KERNEL_SPEC
from jupyter_agent.kernel.kernel import is_python, route_cell
from jupyter_agent.testing.scripted_llm import Reply, ToolCallSpec
from tests.test_magics import Kernel, kernel_env, stop_kernel

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory, scripted_llm_server):
    base = tmp_path_factory.mktemp("agent-kernel")
    env = kernel_env(base, scripted_llm_server)
    done = subprocess.run(
        [sys.executable, "-m", "jupyter_agent.cli", "kernelspec", "install", "--user"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return base, env, done.stdout


@pytest.fixture(scope="module")
def kernel(installed):
    base, env, _ = installed
    specs = KernelSpecManager(kernel_dirs=[str(base / "data" / "kernels")])
    km = KernelManager(kernel_name="agent", kernel_spec_manager=specs)
    km.start_kernel(env=env, cwd=str(base))
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=60)
    k = Kernel(km, kc)
    yield k
    stop_kernel(k)


def test_kernelspec_template_matches_the_installed_spec(installed):
    base, _, output = installed
    template = json.loads((ROOT / "kernels" / "agent" / "kernel.json").read_text())
    assert template == KERNEL_SPEC
    spec = json.loads((base / "data" / "kernels" / "agent" / "kernel.json").read_text())
    assert spec["display_name"] == "Python 3 (agent)"
    assert spec["argv"] == [sys.executable, "-m", "jupyter_agent.kernel", "-f", "{connection_file}"]
    assert "Installed" in output


@pytest.mark.parametrize(
    ("cell", "python"),
    [
        ("x = 1", True),
        ("print(df.head())", True),
        ("import os", True),
        ("df", True),  # a variable: shows it
        ("42", True),
        ("%%python\nhello", True),
        ("!ls", True),
        ("", True),
        ("hello", False),  # one word that is not a variable
        ("not sure", False),  # parses, but is a bare sentence
        ("plot the prices by month", False),
        ("what is in df?", False),
        ("Explain this: x = 1", False),
    ],
)
def test_cells_are_python_by_a_simple_rule(cell, python):
    assert is_python(cell, {"df": object()}) is python


def test_requests_become_agent_cells_and_python_cells_lose_their_marker():
    assert route_cell("plot it", {}) == "%%agent\nplot it"
    assert route_cell("%%python\nhello = 1\n", {}) == "hello = 1\n"
    assert route_cell("y = 2", {}) == "y = 2"


def test_kernel_identifies_itself(kernel):
    msg_id = kernel.kc.kernel_info()
    reply = kernel.reply(msg_id)
    assert reply["content"]["implementation"] == "jupyter_agent"
    assert reply["content"]["language_info"]["name"] == "python"


def test_plain_language_cell_runs_a_turn(kernel, llm):
    llm.script(Reply(text="I can read and run your code."))
    done = kernel.run("what can you do for me?")
    assert done.status == "ok", done.reply["content"]
    assert done.shown("text/markdown")[-1] == "I can read and run your code."
    assert llm.requests[-1]["messages"][-1]["content"] == "what can you do for me?"
    assert "python_run" in [t["function"]["name"] for t in llm.requests[-1]["tools"]]


def test_python_cells_run_as_python(kernel, llm):
    assert kernel.run("%%python\nprint(6 * 7)").stream() == "42\n"
    assert kernel.run("numbers = [1, 2, 3]\nprint(sum(numbers))").stream() == "6\n"
    assert kernel.run("numbers").shown("text/plain") == ["[1, 2, 3]"]
    assert llm.requests == []


def test_agent_and_person_share_one_namespace(kernel, llm):
    kernel.run("base = 40")
    llm.script(
        Reply(tool_calls=[ToolCallSpec("python_run", {"code": "shared = base + 2"})]),
        Reply(text="shared is 42."),
    )
    assert kernel.run("make shared from base").status == "ok"
    assert kernel.run("%%python\nprint(shared)").stream() == "42\n"
