"""After a run installs packages the model is told the running kernel has not imported them, and offered a
restart: notebook_restart_kernel in the server and in the CLI's kernels, the user's restart elsewhere.

Installs are real and offline: pip installs a wheel built here into a target folder (``--no-index``), so
nothing touches the network or the test environment.
"""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

import nbformat
import pytest

from jupyter_agent.collaboration.documents import FileProvider
from jupyter_agent.collaboration.execution import CellRunner
from jupyter_agent.collaboration.notebooks import NotebookEditor
from jupyter_agent.kernels_local import LocalKernels
from jupyter_agent.testing.scripted_llm import Reply, ToolCallSpec
from jupyter_agent.tools.base import ToolContext
from jupyter_agent.tools.installs import install_note, installed_packages
from jupyter_agent.tools.notebook import notebook_restart_kernel, notebook_run_cell
from jupyter_agent.tools.python import RunOutcome, python_run
from jupyter_agent.tools.shell import shell_run
from tests.test_notebook_live import make_notebook

PACKAGE = "fakepkg_agenttest"


def make_wheel(directory: Path, name: str = PACKAGE, version: str = "1.0") -> Path:
    """A pure-Python wheel whose module says ``VALUE = 42``."""
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": "VALUE = 42\n",
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    files[f"{dist}/RECORD"] = "".join(f"{path},,\n" for path in files) + f"{dist}/RECORD,,\n"
    wheel = directory / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    return wheel


def pip_args(wheel: Path, target: Path) -> str:
    return f"install --no-index --no-deps --disable-pip-version-check --target {target} {wheel}"


# -- what counts as an install ---------------------------------------------------------------------------


def test_installs_are_recognised_from_the_output_or_the_command() -> None:
    done = "Processing ./x.whl\nSuccessfully installed pandas-2.2.3 pytz-2024.2\n"
    assert installed_packages("%pip install pandas", done) == ["pandas-2.2.3", "pytz-2024.2"]
    assert installed_packages("import subprocess  # anything", done) == ["pandas-2.2.3", "pytz-2024.2"]
    for code in (
        "%pip install -q pandas",
        "!pip install -q pandas",
        "!python -m pip install -q pandas",
        "!uv pip install pandas",
        "%conda install -y pandas",
        'subprocess.run([sys.executable, "-m", "pip", "install", "pandas"])',
    ):
        assert installed_packages(code, "") == [], code
    assert installed_packages("%pip install pandas", "Requirement already satisfied: pandas") is None
    assert installed_packages("%pip install nope", "ERROR: No matching distribution found for nope") is None
    assert installed_packages("%pip install -q pandas", "", ok=False) is None
    assert installed_packages("print('hello')", "hello\n") is None
    note = install_note(["pandas-2.2.3"], restart_tool=True)
    assert "Packages were installed (pandas-2.2.3)" in note and "has not imported them" in note
    assert "notebook_restart_kernel" in note
    assert "notebook_restart_kernel" not in install_note([]) and "offer the user" in install_note([])


# -- the agent's own kernel (python_run) and the shell ---------------------------------------------------


class FakeNamespace:
    """The ``python`` service, answering with what pip printed."""

    def __init__(self, stdout: str) -> None:
        self.stdout = stdout

    async def run(self, code: str, timeout: float) -> RunOutcome:
        return RunOutcome(stdout=self.stdout)


async def test_python_run_tells_the_model_to_import_afresh_and_offer_a_restart(tmp_path: Path) -> None:
    ctx = ToolContext(
        "s", tmp_path, services={"python": FakeNamespace("Successfully installed pandas-2.2.3\n")}
    )
    result = await python_run(ctx, {"code": "%pip install pandas"})
    assert result.ok and result.data["installed"] == ["pandas-2.2.3"]
    assert (
        "Packages were installed (pandas-2.2.3)" in result.text and "import the package afresh" in result.text
    )
    assert "offer the user to restart the kernel" in result.text  # the agent's own kernel: only the user can

    ctx.services["python"] = FakeNamespace("3\n")
    result = await python_run(ctx, {"code": "print(1 + 2)"})
    assert "installed" not in result.data and "Note:" not in result.text


async def test_shell_run_notes_a_real_offline_install(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path)
    command = f"{sys.executable} -m pip {pip_args(wheel, tmp_path / 'site')}"
    result = await shell_run(ToolContext("s", tmp_path), {"command": command, "timeout": 120})
    assert result.ok, result.text
    assert result.data["installed"] == ["fakepkg-agenttest-1.0"]
    assert "Packages were installed (fakepkg-agenttest-1.0) from the shell" in result.text
    assert "offer the user to restart the kernel" in result.text  # no notebook kernels here
    result = await shell_run(ToolContext("s", tmp_path, services={"cells": object()}), {"command": command})
    assert result.ok and "notebook_restart_kernel" in result.text  # reinstalling says so again


# -- the CLI's kernels (jupyter_client, no server) -------------------------------------------------------


@pytest.mark.timeout(120)
async def test_local_kernels_note_an_install_and_restart_the_kernel(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path)
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    sources = ["x = 41", f"%pip {pip_args(wheel, tmp_path / 'site')}", "print('x' in globals())"]
    for i, source in enumerate(sources):
        nb.cells.append(nbformat.v4.new_code_cell(source, id=f"c{i}"))
    nbformat.write(nb, tmp_path / "t.ipynb")
    kernels = LocalKernels(tmp_path)
    ctx = ToolContext(
        "s", tmp_path, services={"cells": CellRunner(NotebookEditor(FileProvider(tmp_path)), kernels)}
    )
    try:
        assert (await notebook_run_cell(ctx, {"path": "t.ipynb", "cell_id": "c0"})).ok
        installed = await notebook_run_cell(ctx, {"path": "t.ipynb", "cell_id": "c1"})
        assert installed.ok, installed.text
        assert installed.data["installed"] == ["fakepkg-agenttest-1.0"]
        assert "has not imported them" in installed.text and "notebook_restart_kernel" in installed.text
        first = (await kernels.kernel_for("t.ipynb", None)).client

        restarted = await notebook_restart_kernel(ctx, {"path": "t.ipynb"})
        assert restarted.ok and "Restarted the kernel of t.ipynb" in restarted.text, restarted.text
        assert (await kernels.kernel_for("t.ipynb", None)).client is not first  # reconnected in place
        after = await notebook_run_cell(ctx, {"path": "t.ipynb", "cell_id": "c2"})
        assert after.ok and "False" in after.text, after.text  # x is gone: the kernel really restarted
        assert "execution count 1" in after.text
    finally:
        await kernels.close()
    assert notebook_restart_kernel.policy == "ask"  # a restart loses the user's variables


# -- the server, with the scripted model ----------------------------------------------------------------


@pytest.fixture
def restart_allowed(agent_config):
    """The server lets notebook_restart_kernel run without an approval (it asks by default)."""
    agent_config["tool_policy"] = {"notebook_restart_kernel": "allow"}


@pytest.mark.timeout(180)
async def test_the_model_reads_the_install_note_and_restarts_the_notebooks_kernel(
    restart_allowed, agent, llm, jp_root_dir, tmp_path
) -> None:
    wheel = make_wheel(tmp_path)
    site = tmp_path / "site"
    path = make_notebook(
        jp_root_dir,
        sources=(
            "x = 41",
            f"%pip {pip_args(wheel, site)}",
            f"import sys; sys.path.insert(0, {str(site)!r})\n"
            f"import {PACKAGE}; print({PACKAGE}.VALUE, 'x' in globals())",
        ),
    )

    def run(cell_id: str) -> Reply:
        return Reply(tool_calls=[ToolCallSpec("notebook_run_cell", {"path": path, "cell_id": cell_id})])

    llm.script(
        run("human0"),
        run("human1"),
        Reply(tool_calls=[ToolCallSpec("notebook_restart_kernel", {"path": path})]),
        run("human2"),
        Reply(text="fakepkg_agenttest works after the restart."),
    )
    sid = await agent.new_session()
    ws = await agent.connect(sid)
    frames = await ws.turn("install fakepkg_agenttest and use it", timeout=150)

    assert frames[-1]["type"] == "done", frames[-1]
    results = [f for f in frames if f["type"] == "tool_result"]
    assert [r["name"] for r in results] == [
        "notebook_run_cell",
        "notebook_run_cell",
        "notebook_restart_kernel",
        "notebook_run_cell",
    ]
    assert all(r["ok"] for r in results), results
    assert results[1]["data"]["installed"] == ["fakepkg-agenttest-1.0"]
    # what the model read after the install: the tool message of its next request
    tool_message = llm.requests[2]["messages"][-1]
    assert tool_message["role"] == "tool"
    assert "Successfully installed fakepkg-agenttest-1.0" in tool_message["content"]
    assert "Note: Packages were installed (fakepkg-agenttest-1.0)" in tool_message["content"]
    assert "has not imported them" in tool_message["content"]
    assert "notebook_restart_kernel" in tool_message["content"]
    assert "42 False" in results[3]["content"]  # the package imports, and the old variables are gone
