"""``jupyter agent ...`` as a subprocess, against the scripted model over HTTP."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys

import nbformat
import pytest

from jupyter_agent.testing.scripted_llm import Fail, Reply, ToolCallSpec
from tests.test_magics import kernel_env


def agent_cli(*args: str, env: dict[str, str], cwd, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "jupyter_agent.cli", *args],
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def inserted_cell_id(body: dict) -> str:
    for message in reversed(body["messages"]):
        if message["role"] == "tool":
            return re.search(r"cell (\w+) at index", message["content"]).group(1)
    raise AssertionError("no tool result yet")


def test_run_adds_a_cell_runs_it_and_saves_the_notebook(tmp_path, llm):
    env = kernel_env(tmp_path, llm)
    llm.script(
        Reply(
            text="Adding the cell.",
            tool_calls=[ToolCallSpec("notebook_insert_cell", {"path": "t.ipynb", "source": "print(42)"})],
        ),
        lambda body: Reply(
            tool_calls=[
                ToolCallSpec("notebook_run_cell", {"path": "t.ipynb", "cell_id": inserted_cell_id(body)})
            ]
        ),
        Reply(text="Done: it printed 42."),
    )
    done = agent_cli(
        "run", "add a cell that prints 42", "--notebook", "t.ipynb", "--yes", env=env, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert "Adding the cell." in done.stdout and "Done: it printed 42." in done.stdout
    assert '→ notebook_insert_cell path="t.ipynb", source="print(42)"' in done.stdout  # plain: not a TTY
    assert "✓ notebook_run_cell" in done.stdout and "\x1b[" not in done.stdout
    nb = nbformat.read(tmp_path / "t.ipynb", as_version=4)
    cell = next(c for c in nb.cells if c.source == "print(42)")
    assert cell.outputs[0]["text"] == "42\n" and cell.execution_count == 1
    assert (
        llm.requests[0]["messages"][-1]["content"] == "[Active notebook: t.ipynb]\nadd a cell that prints 42"
    )

    listed = agent_cli("sessions", env=env, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if "add a cell that prints 42" in line)
    session_id = row.split()[0]
    shown = agent_cli("sessions", session_id[:8], env=env, cwd=tmp_path)
    assert "add a cell that prints 42" in shown.stdout
    assert '⚙ notebook_insert_cell(path="t.ipynb", source="print(42)")' in shown.stdout
    assert "[agent] Done: it printed 42." in shown.stdout
    as_json = json.loads(agent_cli("sessions", "--json", env=env, cwd=tmp_path).stdout)
    assert as_json[0]["id"] == session_id and as_json[0]["last_seq"] > 5


def test_failing_provider_exits_nonzero_and_ask_tools_are_refused_without_a_terminal(tmp_path, llm):
    env = kernel_env(tmp_path, llm)
    llm.script(
        Reply(tool_calls=[ToolCallSpec("shell_run", {"command": "echo hi"})]), Fail(401, "invalid key")
    )
    done = agent_cli("run", "list the files", "--notebook", "n.ipynb", env=env, cwd=tmp_path)
    assert done.returncode == 1
    refusal = (
        "shell_run needs approval and nobody can answer here, so it did not run; run with --yes, "
        'or set c.JupyterAgent.tool_policy = {"shell_run": "allow"}'
    )
    shown = re.escape('✗ shell_run command="echo hi" (') + r"0\.\d s\) Error: " + re.escape(refusal)
    assert re.search(shown, done.stdout), done.stdout  # refused at once
    assert refusal in llm.requests[-1]["messages"][-1]["content"]  # and the model read why
    assert "HTTP 401" in done.stderr and "API key" in done.stderr
    assert "Traceback" not in done.stderr


def test_missing_model_and_plan_are_explained(tmp_path, llm):
    env = {k: v for k, v in kernel_env(tmp_path, llm).items() if k != "JUPYTER_AGENT_MODEL"}
    env["JUPYTER_AGENT_LOCAL_MODEL"] = "none"  # no embedded model either, whatever this machine installed
    done = agent_cli("run", "anything", "--notebook", "x.ipynb", "--plan", env=env, cwd=tmp_path)
    assert done.returncode == 1
    assert "No model is configured" in done.stderr and "JUPYTER_AGENT_MODEL" in done.stderr
    assert llm.requests == []


def test_model_comes_from_the_jupyter_config_files(tmp_path, llm):
    from jupyter_agent.runtime import configured_model, load_agent_config

    (tmp_path / "jupyter_server_config.json").write_text(
        json.dumps({"JupyterAgent": {"model": "openai/from-json", "max_steps": 3}})
    )
    (tmp_path / "jupyter_server_config.py").write_text("c.JupyterAgent.retries = 7\n")
    config = load_agent_config([str(tmp_path)])
    assert config["model"] == "openai/from-json" and config["max_steps"] == 3 and config["retries"] == 7
    assert configured_model(config, {"model": "openai/override"}) == "openai/override"
    assert configured_model({}, None) == os.environ.get("JUPYTER_AGENT_MODEL", "")


def test_jupyter_agent_is_a_jupyter_subcommand(tmp_path, llm):
    jupyter = os.path.join(os.path.dirname(sys.executable), "jupyter")
    env = {
        **kernel_env(tmp_path, llm),
        "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"],
    }
    done = subprocess.run([jupyter, "agent", "--help"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "run" in done.stdout and "sessions" in done.stdout and "kernelspec" in done.stdout


def test_a_plan_runs_with_yes_and_never_unapproved_without_a_terminal(tmp_path, llm):
    env = kernel_env(tmp_path, llm)
    task = {
        "id": "t1",
        "title": "Add the greeting cell",
        "description": "insert a cell printing hello into p.ipynb",
        "depends_on": [],
        "tools": ["notebook_insert_cell"],
        "notebooks": ["p.ipynb"],
        "estimate_s": 5,
        "acceptance": "the cell exists",
    }
    plan = Reply(text=json.dumps({"tasks": [task]}))
    llm.script(plan)
    refused = agent_cli("run", "greet", "--notebook", "p.ipynb", "--plan", env=env, cwd=tmp_path)
    assert refused.returncode == 1, refused.stderr
    assert "○ t1: Add the greeting cell" in refused.stdout
    assert (
        "the plan needs approval and there is no terminal to ask on (use --yes to run it)" in refused.stdout
    )
    assert len(llm.requests) == 1  # planned, never run

    llm.script(
        plan,
        Reply(
            tool_calls=[ToolCallSpec("notebook_insert_cell", {"path": "p.ipynb", "source": "print('hello')"})]
        ),
        Reply(text="Inserted."),
    )
    done = agent_cli("run", "greet", "--notebook", "p.ipynb", "--plan", "--yes", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "✓ t1: Add the greeting cell" in done.stdout
    nb = nbformat.read(tmp_path / "p.ipynb", as_version=4)
    assert "print('hello')" in [c.source for c in nb.cells]


def not_installed_model():
    """A registered embedded model whose weight packages are not installed here (None if all are)."""
    from jupyter_agent.local_model.registry import MODELS
    from jupyter_agent.local_model.weights import missing_parts

    return next((spec for spec in MODELS.values() if missing_parts(spec)), None)


def test_model_list_and_prepare(tmp_path, llm):
    from jupyter_agent.local_model.registry import get_spec
    from jupyter_agent.local_model.weights import part_file

    env = {**kernel_env(tmp_path, llm), "JUPYTER_AGENT_LOCAL_MODEL": "smollm2-135m"}
    listed = agent_cli("model", "list", env=env, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if line.startswith("smollm2-135m"))
    assert row.split()[1:3] == ["yes", "no"] and row.endswith("(configured)")
    absent = not_installed_model()
    if absent is not None:  # (`make lab` installs the 1.5B: then another model is the absent one, if any)
        assert f"install: pip install 'jupyter-agent[{absent.extra}]'" in listed.stdout

    prepared = agent_cli("model", "prepare", env=env, cwd=tmp_path)
    assert prepared.returncode == 0, prepared.stderr
    # A one-part model is checked where pip installed it, not copied.
    gguf = part_file(get_spec("smollm2-135m").parts[0])
    assert f"smollm2-135m: {gguf} (98 MB" in prepared.stdout and gguf.stat().st_size == 98_362_432
    assert not (tmp_path / "data" / "agent" / "models" / "smollm2-135m.gguf").exists()
    listed = agent_cli("model", "list", env=env, cwd=tmp_path)
    row = next(line for line in listed.stdout.splitlines() if line.startswith("smollm2-135m"))
    assert row.split()[1:3] == ["yes", "yes"]

    if absent is not None:
        missing = agent_cli("model", "prepare", absent.name, env=env, cwd=tmp_path)
        assert missing.returncode == 1
        assert f"Install it with: pip install 'jupyter-agent[{absent.extra}]'" in missing.stderr
    unknown = agent_cli("model", "prepare", "gpt-17", env=env, cwd=tmp_path)
    assert unknown.returncode == 1 and "unknown local model 'gpt-17'" in unknown.stderr


def test_a_plan_tasks_approval_on_the_terminal_names_the_task(monkeypatch):
    import asyncio

    from jupyter_agent.terminal import TerminalPrinter

    asked: list[str] = []
    monkeypatch.setattr("builtins.input", lambda prompt: asked.append(prompt) or "y")

    class Session:
        def __init__(self) -> None:
            self.answers: list[tuple[str, str]] = []

        def approve(self, call_id: str, decision: str) -> None:
            self.answers.append((call_id, decision))

    async def show() -> None:
        printer = TerminalPrinter(session, can_ask=True, out=io.StringIO())
        plan = {"type": "plan", "status": "running", "tasks": [{"id": "t2", "title": "Load the data"}]}
        printer.handle(plan)
        printer.handle(
            {"type": "approval_request", "task": "t2", "call_id": "c1", "name": "shell_run", "arguments": {}}
        )
        await asyncio.gather(*printer._asking)

    session = Session()
    asyncio.run(show())
    assert asked == ["Task t2 · Load the data: Allow shell_run()? [y]es / [a]lways / [N]o: "]
    assert session.answers == [("c1", "once")]


def test_settings_are_jupyter_configurables_read_from_the_same_files_everywhere(tmp_path):
    from jupyter_agent.runtime import agent_settings, load_agent_config

    (tmp_path / "jupyter_config.py").write_text(
        "c.BrowserSettings.browser_pool_size = 4\nc.ModelSettings.max_steps = 9\n"
    )
    (tmp_path / "jupyter_server_config.py").write_text("c.JupyterAgent.max_steps = 5\n")
    settings = agent_settings(load_agent_config([str(tmp_path)]))
    # A group's own section works, and c.JupyterAgent.<name> wins over it, as people write it.
    assert settings.browser_pool_size == 4 and settings.max_steps == 5
    with pytest.raises(ValueError, match="max_parallel_tasks must be at least 1"):
        agent_settings({"max_parallel_tasks": 0})


def test_the_cli_takes_any_setting_the_jupyter_way(tmp_path, llm):
    env = kernel_env(tmp_path, llm)
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "jupyter_server_config.json").write_text(
        json.dumps({"JupyterAgent": {"max_steps": 7}})
    )
    shown = agent_cli("sessions", "--show-config", env=env, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "max_steps" in shown.stdout and "7" in shown.stdout  # read from the server's config file
    shown = agent_cli("sessions", "--JupyterAgent.max_steps=2", "--show-config", env=env, cwd=tmp_path)
    assert re.search(r"max_steps\D+2", shown.stdout), shown.stdout  # the command line wins
    listed = agent_cli("run", "--help-all", env=env, cwd=tmp_path)
    assert "--JupyterAgent.untrusted_content_policy" in listed.stdout and "--notebook" in listed.stdout
    bad = agent_cli("run", "x", "--notebook", "a.ipynb", "--JupyterAgent.max_steps=0", env=env, cwd=tmp_path)
    assert bad.returncode != 0 and "max_steps must be at least 1" in bad.stderr
    assert llm.requests == []
    missing = agent_cli("run", "--notebook", "a.ipynb", env=env, cwd=tmp_path)
    assert missing.returncode == 2 and "run needs a goal" in missing.stderr
    unknown = agent_cli("model", "frobnicate", env=env, cwd=tmp_path)
    assert unknown.returncode == 2 and "unknown action 'frobnicate'" in unknown.stderr
    generated = agent_cli("--generate-config", "-y", env=env, cwd=tmp_path)
    assert generated.returncode == 0, generated.stderr
    written = (tmp_path / "config" / "jupyter_jupyter_agent_config.py").read_text()
    assert "# c.JupyterAgent.model_options = {}" in written and "# c.JupyterAgent.max_steps = 25" in written


def test_run_code_adds_a_cell_and_runs_it_in_one_call(tmp_path, llm):
    env = kernel_env(tmp_path, llm)
    (tmp_path / "fares.csv").write_text("Fare\n10.5\n20.5\n")
    llm.script(
        Reply(
            tool_calls=[
                ToolCallSpec(
                    "notebook_run_code",
                    {
                        "path": "t.ipynb",
                        "source": "import pandas as pd\nprint(pd.read_csv('fares.csv').Fare.mean())",
                    },
                )
            ]
        ),
        Reply(text="The mean fare is 15.5."),
    )
    done = agent_cli("run", "mean fare?", "--notebook", "t.ipynb", "--yes", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    result = llm.requests[1]["messages"][-1]
    assert result["role"] == "tool" and result["content"].startswith("Cell ") and "15.5" in result["content"]
    cell = nbformat.read(tmp_path / "t.ipynb", as_version=4).cells[-1]
    assert cell.source.endswith(".Fare.mean())") and cell.outputs[0]["text"] == "15.5\n"


def test_run_code_that_fails_shows_what_the_variables_it_assigned_hold(tmp_path, llm):
    env = kernel_env(tmp_path, llm)
    (tmp_path / "fares.csv").write_text("Fare,Age\n10.5,30\n20.5,40\n")
    source = "import pandas as pd\ndf = pd.read_csv('fares.csv')\nmean = df['fare'].mean()"
    llm.script(
        Reply(tool_calls=[ToolCallSpec("notebook_run_code", {"path": "fares.csv", "source": source})]),
        Reply(tool_calls=[ToolCallSpec("notebook_run_code", {"path": "t.ipynb", "source": source})]),
        Reply(text="There is no fare column."),
    )
    done = agent_cli("run", "mean fare?", "--notebook", "t.ipynb", "--yes", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    wrong_path = llm.requests[1]["messages"][-1]["content"]
    assert (
        "path is the notebook the code runs in" in wrong_path and "pandas.read_csv('fares.csv')" in wrong_path
    )
    result = llm.requests[2]["messages"][-1]["content"]
    assert "KeyError: 'fare'" in result
    shown = result.split("The variables this code assigned before it failed:\n")[1]
    assert shown.startswith("df: pandas.DataFrame, 2 rows × 2 columns")  # no rows; nothing about `mean`
    assert shown.endswith("; columns: Fare (float64), Age (int64)")
