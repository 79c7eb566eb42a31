"""The data in view: a notebook kernel's variables summarised for the model and for ``@`` mentions.

A real notebook kernel on the test server holds a DataFrame, a 10-million-element list, a NumPy array and an
object whose ``__repr__`` (and ``len``) sleep 10 s. ``notebook_variables``, ``GET /api/agent/variables`` and a prompt's
``@df`` attachment must answer quickly and correctly and leave no trace in the notebook; the kernel
runtime's own tool summarises the same objects the same way.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from jupyter_agent.collaboration.notebooks import output_text
from jupyter_agent.testing.scripted_llm import Reply, ToolCallSpec
from tests.clients import AgentClient, wait_for
from tests.identities import person_client, with_people
from tests.test_magics import kernel_env as magics_env
from tests.test_magics import start_kernel, stop_kernel, tool_messages
from tests.test_notebook_tools import write_notebook

SETUP = (
    "import time\n"
    "import numpy as np\n"
    "import pandas as pd\n"
    "df = pd.DataFrame({'price': [1.5, 2.0, 3.25], 'city': ['Oslo', 'Bergen', 'Tromsø']})\n"
    "big = [0] * 10_000_000\n"
    "grid = np.arange(12, dtype='float32').reshape(3, 4)\n"
    "class Slow:\n"
    "    def __repr__(self):\n"
    "        time.sleep(10)\n"
    "        return 'slow'\n"
    "    __str__ = __repr__\n"
    "    def __len__(self):  # a lazy collection that counts its items when asked\n"
    "        time.sleep(10)\n"
    "        return 1\n"
    "slow = Slow()\n"
    "_private = 1"
)
FAST = 5.0  # seconds: the slow repr alone would take 10


def call(name: str, **args: Any) -> Reply:
    return Reply(tool_calls=[ToolCallSpec(name, args)])


def results(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    assert frames[-1]["type"] == "done", frames[-1]
    return [f for f in frames if f["type"] == "tool_result"]


def check_listing_text(text: str) -> None:
    """What the model reads of the four objects: summaries, never contents."""
    assert "df: pandas.DataFrame, 3 rows × 2 columns" in text, text
    assert "columns: price (float64), city (" in text
    assert "Oslo" in text and "Tromsø" in text  # the first rows
    assert "big: list, 10000000 items: [0, 0, 0, 0, 0, ...]" in text
    assert "grid: numpy.ndarray, 3 × 4, dtype float32, 48 bytes" in text
    assert "slow: Slow (not described: looking at it took over 0.5 s)" in text  # its len; never its repr
    assert "Slow: class" in text
    assert "_private" not in text and "np:" not in text and "pd:" not in text and "time:" not in text
    assert len(text) < 3000


async def notebook_with_variables(agent_app, root) -> tuple[str, Any]:
    """A notebook whose kernel ran SETUP (through the agent's cell runner); returns its path and the run."""
    path = write_notebook(root, [("setup", "code", SETUP), ("later", "code", "print('later')")])
    run = await agent_app.tool_services["cells"].run_cell(path, "setup")
    assert run.status == "ok", run.summary()
    return path, run


async def test_notebook_variables_summarises_a_live_kernel_quickly_and_leaves_the_notebook_alone(
    agent, agent_app, llm, jp_root_dir, collab
):
    path, setup = await notebook_with_variables(agent_app, jp_root_dir)
    ws = await agent.connect(await agent.new_session())
    async with collab(path) as doc:
        await wait_for(
            lambda: len(doc.ycells) == 2 and doc.ycells[0].get("execution_count") == setup.execution_count,
            what="the person's copy in sync",
        )
        before = [c.to_py() for c in doc.ycells]
        llm.script(call("notebook_variables", path=path), Reply(text="You have a table."))
        started = time.perf_counter()
        frames = await ws.turn("what data do I have?", context={"notebook": path})
        took = time.perf_counter() - started
        [result] = results(frames)
        assert result["ok"], result
        check_listing_text(tool_messages(llm.requests[-1])[-1])
        assert took < FAST, took
        # Nothing in the notebook: same cells, outputs and execution counts, for the person watching too.
        assert [c.to_py() for c in doc.ycells] == before
    # The request was silent: the next cell run gets the next execution count, and the namespace is as it was.
    later = await agent_app.tool_services["cells"].run_cell(path, "later")
    assert later.execution_count == setup.execution_count + 1
    names = await agent_app.tool_services["variables"].listing(path)
    assert [v["name"] for v in names["variables"]] == ["df", "big", "grid", "Slow", "slow"]


async def test_variables_route_gives_the_completion_its_summaries_and_names_missing_kernels(
    agent, agent_app, jp_root_dir
):
    path, _ = await notebook_with_variables(agent_app, jp_root_dir)
    started = time.perf_counter()
    status, body = await agent.request("GET", "variables", params={"notebook": path})
    assert time.perf_counter() - started < FAST
    assert status == 200, body
    assert body["kernel"] == "running"
    found = {v["name"]: v for v in body["variables"]}
    assert found["df"]["shape"] == [3, 2]
    assert found["df"]["columns"][0] == ["price", "float64"]
    assert found["big"]["size"] == "10000000 items"
    assert found["grid"] == {
        "name": "grid",
        "type": "numpy.ndarray",
        "shape": [3, 4],
        "dtype": "float32",
        "size": "3 × 4",
        "bytes": 48,
    }
    assert "over 0.5 s" in found["slow"]["note"]
    # A notebook without a kernel has no variables, and none is started for it.
    write_notebook(jp_root_dir, [("a", "code", "x = 1")], name="idle.ipynb")
    status, body = await agent.request("GET", "variables", params={"notebook": "idle.ipynb"})
    assert status == 200 and body == {
        "path": "idle.ipynb",
        "kernel": "none",
        "variables": [],
        "more": 0,
        "missing": [],
    }
    sessions = await agent_app.serverapp.session_manager.list_sessions()
    assert "idle.ipynb" not in [s["path"] for s in sessions]
    status, body = await agent.request("GET", "variables")
    assert status == 400 and "?notebook=" in body["message"]


async def test_at_variable_puts_its_summary_in_the_prompt_and_the_message(agent, agent_app, llm, jp_root_dir):
    path, _ = await notebook_with_variables(agent_app, jp_root_dir)
    cell_id = "setup"
    ws = await agent.connect(await agent.new_session())
    llm.script(Reply(text="The prices are in df."))
    context = {
        "notebook": path,
        "attachments": [{"kind": "variable", "name": "df"}, {"kind": "cell", "id": cell_id}],
    }
    frames = await ws.turn("what is in @df and @cell-1?", context=context)
    assert frames[-1]["type"] == "done", frames[-1]
    user = llm.requests[-1]["messages"][-1]["content"]
    text = user if isinstance(user, str) else " ".join(p.get("text", "") for p in user)
    assert "[Attached by the user: @df]\ndf: pandas.DataFrame, 3 rows × 2 columns" in text
    assert "Tromsø" in text
    assert "[Attached by the user: @cell-1]\ncell 1 of t.ipynb (id=setup, code" in text
    assert "big = [0] * 10_000_000" in text  # the cell's source
    assert text.endswith("[The user's message]\nwhat is in @df and @cell-1?")
    # Everyone's chat shows what was attached.
    [message] = [f for f in frames if f["type"] == "message" and f["role"] == "user"]
    labels = [(a["kind"], a["label"]) for a in message["context"]["attachments"]]
    assert labels == [("variable", "@df"), ("cell", "@cell-1")]
    assert message["context"]["attachments"][0]["summary"].startswith("df: pandas.DataFrame")


async def test_bad_attachments_are_refused_with_a_message_that_says_how(agent):
    ws = await agent.connect(await agent.new_session())
    await ws.send(type="prompt", text="hi", context={"attachments": [{"kind": "variable", "name": "df"}]})
    error = (await ws.until_type("error"))[-1]
    assert "context.notebook" in error["message"]
    await ws.send(
        type="prompt", text="hi", context={"notebook": "t.ipynb", "attachments": [{"kind": "file"}]}
    )
    error = (await ws.until_type("error"))[-1]
    assert '{"kind": "variable", "name": ...}' in error["message"]


def test_rich_outputs_reach_the_model_as_text_not_html():
    import pandas as pd

    df = pd.DataFrame({"price": [1.5, 2.0], "city": ["Oslo", "Bergen"]})
    bundle = {"text/plain": repr(df), "text/html": df._repr_html_()}
    text = output_text({"output_type": "execute_result", "data": bundle, "execution_count": 1})
    assert text == repr(df) and "<table" not in text
    html_only = output_text({"output_type": "display_data", "data": {"text/html": df._repr_html_()}})
    assert html_only.splitlines() == ["price\tcity", "0\t1.5\tOslo", "1\t2.0\tBergen"]


class TestPermissions:
    """The route and the mention run a request in the kernel: only people who may execute code get them."""

    @pytest.fixture
    def jp_server_config(self, jp_server_config: dict[str, Any]) -> dict[str, Any]:
        return with_people(jp_server_config)

    async def test_only_people_who_may_run_code_see_a_kernels_variables(
        self, jp_serverapp, jp_fetch, jp_http_port, jp_base_url, jp_root_dir
    ):
        def client(name: str) -> AgentClient:
            return person_client(name, jp_fetch, jp_http_port, jp_base_url)

        owner, collaborator = client("owner"), client("collaborator")
        status, body = await collaborator.request("GET", "variables", params={"notebook": "t.ipynb"})
        assert status == 403 and "kernels:execute" in body["message"]
        status, _ = await owner.request("GET", "variables", params={"notebook": "t.ipynb"})
        assert status == 200
        ws = await collaborator.connect(await collaborator.new_session())
        context = {"notebook": "t.ipynb", "attachments": [{"kind": "variable", "name": "df"}]}
        await ws.send(type="prompt", text="look at @df", context=context)
        error = (await ws.until_type("error"))[-1]
        assert "may not attach a variable" in error["message"] and "kernels:execute" in error["message"]
        collaborator.close()
        owner.close()


# -- the kernel runtime: the agent inside the kernel ------------------------------------------------------


@pytest.fixture(scope="module")
def kernel(tmp_path_factory, scripted_llm_server):
    base = tmp_path_factory.mktemp("variables")
    k = start_kernel(magics_env(base, scripted_llm_server), str(base))
    loaded = k.run("%load_ext jupyter_agent")
    assert loaded.status == "ok", loaded.reply["content"]
    yield k
    stop_kernel(k)


def test_kernel_runtime_summarises_the_same_objects_without_stalling(kernel, llm):
    setup = kernel.run(SETUP)
    assert setup.status == "ok", setup.reply["content"]
    llm.script(Reply(text="Ready."))  # the engine's first turn builds it: not what is measured
    assert kernel.run("%%agent\nready?").status == "ok"
    llm.script(call("notebook_variables"), call("python_variables"), Reply(text="You have a table."))
    started = time.perf_counter()
    done = kernel.run("%%agent --no-run\nwhat data do I have?")
    took = time.perf_counter() - started
    assert done.status == "ok", done.reply["content"]
    tools = [t["function"]["name"] for t in llm.requests[-1]["tools"]]
    assert {"notebook_variables", "python_variables"} <= set(tools)
    first, second = tool_messages(llm.requests[-1])[-2:]
    check_listing_text(first)
    assert first == second  # one summariser for both tools
    assert took < FAST, took


# -- the CLI: the notebook's kernel started by `jupyter agent run` ------------------------------------------


def test_cli_lists_the_variables_of_the_kernel_it_ran_cells_in(tmp_path, llm):
    from tests.test_cli import agent_cli

    write_notebook(tmp_path, [("setup", "code", SETUP)])
    llm.script(
        call("notebook_variables", path="t.ipynb"),  # before any cell ran: no kernel, none started
        call("notebook_run_cell", path="t.ipynb", cell_id="setup"),
        call("notebook_variables", path="t.ipynb"),
        Reply(text="You have a table."),
    )
    done = agent_cli(
        "run", "what data?", "--notebook", "t.ipynb", "--yes", env=magics_env(tmp_path, llm), cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    before, after = tool_messages(llm.requests[-1])[0], tool_messages(llm.requests[-1])[-1]
    assert before.startswith("The notebook's kernel is not running")
    check_listing_text(after)
