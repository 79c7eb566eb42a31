"""The notebooks in ``examples/``, run top to bottom with nbclient as a newcomer would run them.

Each test copies ``examples/`` into its temporary directory, runs one notebook in a fresh kernel whose
environment reaches the scripted model, and checks what the reader sees in the executed notebook (the
agent's answer, the code it ran, the variable it left for the next cell) and what the model was sent.
``02`` runs in the kernel of a real Jupyter server with the agent, as it would in JupyterLab.
"""

from __future__ import annotations

import asyncio
import csv
import json
import re
import shutil
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from queue import Empty
from typing import Any

import nbformat
import pytest
from jupyter_client.asynchronous import AsyncKernelClient
from nbclient import NotebookClient
from nbformat import NotebookNode

from jupyter_agent.testing.jupyter import JupyterServer, free_port
from jupyter_agent.testing.scripted_llm import Reply, ToolCallSpec
from tests.test_magics import kernel_env

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
CELL_TIMEOUT = 120  # seconds per cell


# -- running a notebook ----------------------------------------------------------------------------------


@pytest.fixture
def examples(tmp_path: Path) -> Path:
    """A copy of ``examples/``: whatever a notebook writes stays out of the repository."""
    return Path(shutil.copytree(EXAMPLES, tmp_path / "examples"))


def run_notebook(path: Path, env: dict[str, str]) -> NotebookNode:
    """Execute every cell in order, in a new kernel started in the notebook's folder; a failing cell fails."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=CELL_TIMEOUT, resources={"metadata": {"path": str(path.parent)}})
    client.execute(env=env)
    return nb


# -- what the reader sees --------------------------------------------------------------------------------


def cell(nb: NotebookNode, cell_id: str) -> NotebookNode:
    return next(c for c in nb.cells if c.id == cell_id)


def shown(nb: NotebookNode, cell_id: str, mime: str) -> list[str]:
    """Every ``mime`` value among the cell's final outputs, in order (updated displays as last updated)."""
    return [str(out.data[mime]) for out in cell(nb, cell_id).outputs if mime in out.get("data", {})]


def stream(nb: NotebookNode, cell_id: str, name: str = "stdout") -> str:
    outputs = cell(nb, cell_id).outputs
    return "".join(out.text for out in outputs if out.output_type == "stream" and out.name == name)


def answer(nb: NotebookNode, cell_id: str) -> str:
    """The agent's answer under an ``%%agent`` cell: its last Markdown output."""
    return shown(nb, cell_id, "text/markdown")[-1]


def assert_no_agent_errors(nb: NotebookNode) -> None:
    errors = [c.id for c in nb.cells if c.cell_type == "code" and "Agent error" in stream(nb, c.id, "stderr")]
    assert not errors, {i: stream(nb, i, "stderr") for i in errors}


def tool_results(request: dict[str, Any]) -> list[str]:
    """The tool results the model was sent in one request, oldest first."""
    return [str(m.get("content")) for m in request["messages"] if m["role"] == "tool"]


def user_text(request: dict[str, Any]) -> str:
    """The text of the first user message of a request (the prompt of the turn or task)."""
    content = next(m["content"] for m in request["messages"] if m["role"] == "user")
    return content if isinstance(content, str) else " ".join(str(p.get("text", "")) for p in content)


def sales() -> list[dict[str, str]]:
    with open(EXAMPLES / "data" / "sales.csv", newline="") as f:
        return list(csv.DictReader(f))


def revenue_per_region() -> dict[str, float]:
    totals: dict[str, float] = defaultdict(float)
    for row in sales():
        totals[row["region"]] += int(row["units"]) * float(row["price"])
    return dict(totals)


def units_per_product() -> dict[str, int]:
    totals: dict[str, int] = defaultdict(int)
    for row in sales():
        totals[row["product"]] += int(row["units"])
    return dict(totals)


# -- 01: magics on data ----------------------------------------------------------------------------------

REVENUE_CODE = """\
revenue = (df["units"] * df["price"]).groupby(df["region"]).sum().sort_values(ascending=False)
revenue"""
UNITS_CODE = 'df.groupby("product")["units"].sum().sort_values(ascending=False)'


def test_magics_notebook_answers_from_the_data_and_leaves_revenue_for_the_next_cell(llm, examples, tmp_path):
    contents = "`df` holds 40 sales from January to April 2024: date, region, product, units and unit price."
    llm.script(
        Reply(tool_calls=[ToolCallSpec("python_variables", {"names": ["df"]})]),
        Reply(text=contents),
        Reply(tool_calls=[ToolCallSpec("python_run", {"code": REVENUE_CODE})]),
        Reply(text="East brings the most revenue. The Series is in `revenue`."),
        Reply(tool_calls=[ToolCallSpec("python_run", {"code": UNITS_CODE})]),
        Reply(text="Notebooks: 272 units."),
    )

    nb = run_notebook(examples / "01-magics-on-data.ipynb", kernel_env(tmp_path, llm))

    assert_no_agent_errors(nb)
    assert "model: openai/scripted" in stream(nb, "show-config")
    # What df contains: the model got a summary of df, not its rows, and its answer shows under the cell.
    first = llm.requests[0]
    assert user_text(first) == "What does df contain? Describe it in two or three sentences."
    assert {"python_run", "python_variables"} <= {t["function"]["name"] for t in first["tools"]}
    summary = tool_results(llm.requests[1])[-1]
    assert (
        "df: pandas.DataFrame, 40 rows × 5 columns" in summary and "region" in summary and "units" in summary
    )
    assert answer(nb, "ask-contents") == contents
    # Revenue per region: the code the agent ran and its output show under the cell, and the model saw it.
    expected = revenue_per_region()
    ran = tool_results(llm.requests[3])[-1]
    for region, total in expected.items():
        assert re.search(rf"{region}\s+{total:.1f}", ran), ran
    block = "\n".join(shown(nb, "ask-revenue", "text/plain"))
    assert REVENUE_CODE in block and f"{expected['East']:.1f}" in block
    assert answer(nb, "ask-revenue") == "East brings the most revenue. The Series is in `revenue`."
    # The next cell uses the variable the agent created.
    share = shown(nb, "use-revenue", "text/plain")[-1]
    total = sum(expected.values())
    for region, value in expected.items():
        assert re.search(rf"{region}\s+{round(value / total * 100, 1)}", share), share
    # The one-liner continues the same conversation.
    last = llm.requests[-1]
    assert len(llm.requests) == 6
    assert [m["content"] for m in last["messages"] if m["role"] == "user"][-1] == (
        "Which product sold the most units?"
    )
    assert re.search(rf"Notebook\s+{units_per_product()['Notebook']}", tool_results(last)[-1])
    assert answer(nb, "ask-oneline") == "Notebooks: 272 units."


# -- 02: the agent edits the notebook through the server ------------------------------------------------

NOTEBOOK_02 = "02-agent-edits-a-notebook.ipynb"


class LabKernelClient(AsyncKernelClient):
    """Sends the executing cell's id with each execute request, as JupyterLab does (nbclient does not)."""

    cell_id: str | None = None

    def execute(  # type: ignore[override]
        self,
        code: str,
        silent: bool = False,
        store_history: bool = True,
        user_expressions: dict[str, Any] | None = None,
        allow_stdin: bool | None = None,
        stop_on_error: bool = True,
    ) -> str:
        content = {
            "code": code,
            "silent": silent,
            "store_history": store_history,
            "user_expressions": user_expressions or {},
            "allow_stdin": False,
            "stop_on_error": stop_on_error,
        }
        metadata = {"cellId": self.cell_id} if self.cell_id else {}
        msg = self.session.msg("execute_request", content, metadata=metadata)
        self.shell_channel.send(msg)
        return msg["header"]["msg_id"]


async def kernel_ready(client: AsyncKernelClient, timeout: float = 60) -> None:
    """Until the kernel answers kernel_info on shell and its status reaches us on iopub (so no output of
    the first cell is missed). jupyter_client's wait_for_ready would take a starting kernel for a dead one
    when there is no kernel manager, as here."""
    async with asyncio.timeout(timeout):
        while True:
            msg_id = client.kernel_info()
            try:
                while (await client.get_shell_msg(timeout=1))["parent_header"].get("msg_id") != msg_id:
                    pass
                while (await client.get_iopub_msg(timeout=1))["parent_header"].get("msg_id") != msg_id:
                    pass
                return
            except Empty:
                continue


class LiveNotebook:
    """A notebook's shared document as a JupyterLab window holds it, with a wait on its changes."""

    def __init__(self, doc: Any) -> None:
        self.doc = doc
        self._changed = asyncio.Event()
        doc.ydoc.observe(lambda _event: self._changed.set())

    def cells(self) -> list[dict[str, Any]]:
        return self.doc.get()["cells"]

    async def wait_for(self, predicate: Callable[[list[dict[str, Any]]], Any], timeout: float = 180) -> Any:
        """The first truthy ``predicate(cells)``, looked at after every change of the document."""
        async with asyncio.timeout(timeout):
            while True:
                self._changed.clear()
                found = predicate(self.cells())
                if found:
                    return found
                await self._changed.wait()


@asynccontextmanager
async def live_notebook(server: JupyterServer, path: str) -> AsyncIterator[LiveNotebook]:
    """Join ``path``'s collaboration room, as JupyterLab does when a person opens the notebook."""
    from jupyter_ydoc import YNotebook
    from pycrdt import Provider
    from tornado.httpclient import AsyncHTTPClient, HTTPRequest
    from tornado.websocket import websocket_connect

    from tests.clients import TornadoChannel

    headers = {"Authorization": f"token {server.token}"}
    response = await AsyncHTTPClient().fetch(
        server.url(f"api/collaboration/session/{path}"),
        method="PUT",
        headers=headers,
        body=json.dumps({"format": "json", "type": "notebook"}),
    )
    session = json.loads(response.body)
    room = f"json:notebook:{session['fileId']}"
    url = f"ws://127.0.0.1:{server.port}/api/collaboration/room/{room}?sessionId={session['sessionId']}"
    conn = await websocket_connect(HTTPRequest(url, headers=headers))
    doc = YNotebook()
    try:
        async with Provider(doc.ydoc, TornadoChannel(conn, room)):
            yield LiveNotebook(doc)
    finally:
        conn.close()


@pytest.mark.asyncio
async def test_cells_notebook_gets_the_agents_cell_below_the_asker_with_its_output(llm):
    inserted: list[str] = []

    def run_the_new_cell(body: dict[str, Any]) -> Reply:
        found = re.search(r"Inserted code cell (\S+) at index", tool_results(body)[-1])
        assert found, tool_results(body)
        inserted.append(found[1])
        return Reply(
            tool_calls=[ToolCallSpec("notebook_run_cell", {"path": NOTEBOOK_02, "cell_id": found[1]})]
        )

    with JupyterServer(llm_base_url=llm.base_url) as server:
        shutil.copytree(EXAMPLES, server.root, dirs_exist_ok=True)
        nb = nbformat.read(server.root / NOTEBOOK_02, as_version=4)
        asker = [c.id for c in nb.cells].index("ask-cells")
        insert = {"path": NOTEBOOK_02, "source": UNITS_CODE, "index": asker + 1}
        llm.script(
            Reply(tool_calls=[ToolCallSpec("notebook_insert_cell", insert)]),
            run_the_new_cell,
            Reply(text="Added a cell with the units per product, and ran it."),
        )
        # A person opens the notebook in JupyterLab: the server starts its kernel, the window joins its room.
        started = server.api(
            "POST", "api/sessions", {"path": NOTEBOOK_02, "type": "notebook", "kernel": {"name": "python3"}}
        )
        kc = LabKernelClient()
        kc.load_connection_file(server.base / "runtime" / f"kernel-{started['kernel']['id']}.json")
        kc.start_channels()
        try:
            async with live_notebook(server, NOTEBOOK_02) as live:
                await kernel_ready(kc)
                client = NotebookClient(nb, timeout=CELL_TIMEOUT)
                client.kc = kc
                client.on_cell_execute = lambda cell, cell_index: setattr(kc, "cell_id", cell.id)
                for index, each in enumerate(nb.cells):
                    await client.async_execute_cell(each, index)

                def agent_cell_that_ran(cells: list[dict[str, Any]]) -> dict[str, Any] | None:
                    found = [c for c in cells if inserted and c.get("id") == inserted[0]]
                    return found[0] if found and found[0].get("execution_count") is not None else None

                new = await live.wait_for(agent_cell_that_ran)
                ids = [c.get("id") for c in live.cells()]
            requests = await asyncio.to_thread(llm.wait_for_requests, 3, 120)
        finally:
            kc.stop_channels()

    assert_no_agent_errors(nb)
    # The cell that asked returned at once, saying where the agent writes.
    note = "\n".join(shown(nb, "ask-cells", "text/plain"))
    assert "Sent to the agent of the Jupyter server" in note and NOTEBOOK_02 in note
    prompt = user_text(requests[0])
    assert "Add a cell that shows the units sold per product, largest first, and run it." in prompt
    assert "right below the cell with id ask-cells" in prompt
    # In the live notebook the agent's cell sits right below the asker, and shows the output of its run.
    assert ids[asker : asker + 3] == ["ask-cells", inserted[0], "after-md"]
    assert new["source"] == UNITS_CODE
    assert [out["output_type"] for out in new["outputs"]] == ["execute_result"]
    assert new["outputs"][0]["execution_count"] == new["execution_count"]
    assert re.search(r"Notebook\s+272", new["outputs"][0]["data"]["text/plain"]), new["outputs"]
    assert re.search(r"Notebook\s+272", tool_results(requests[2])[-1])


# -- 03: the planner -------------------------------------------------------------------------------------

PLAN = [
    {
        "id": "t1",
        "title": "Best-selling product",
        "description": "Sum the units per product; keep the top product's name in best_product.",
        "depends_on": [],
        "tools": ["python_run"],
        "notebooks": [],
        "estimate_s": 10,
        "acceptance": "best_product is set",
    },
    {
        "id": "t2",
        "title": "Month with the highest revenue",
        "description": "Sum units × price per month; keep the best month (YYYY-MM) in best_month.",
        "depends_on": [],
        "tools": ["python_run"],
        "notebooks": [],
        "estimate_s": 10,
        "acceptance": "best_month is set",
    },
    {
        "id": "t3",
        "title": "Write the summary",
        "description": "Write a short summary of best_product and best_month into summary.",
        "depends_on": ["t1", "t2"],
        "tools": ["python_run"],
        "notebooks": [],
        "estimate_s": 10,
        "acceptance": "summary is a string",
    },
]
TASK_STEPS = {  # each task's code, then its answer
    "t1": (
        'units = df.groupby("product")["units"].sum()\nbest_product = units.idxmax()\nbest_product',
        "Notebook sold the most units (272).",
    ),
    "t2": (
        'monthly = (df["units"] * df["price"]).groupby(df["date"].dt.to_period("M")).sum()\n'
        "best_month = str(monthly.idxmax())\nbest_month",
        "2024-04 had the highest revenue (1,442.70).",
    ),
    "t3": (
        'summary = (\n    f"The best-selling product is {best_product} ({units.max()} units). "\n'
        '    f"Revenue peaked in {best_month} at {monthly.max():,.2f}."\n)',
        "The summary is in `summary`.",
    ),
}


def plan_model(body: dict[str, Any]) -> Reply:
    """The planning call gets the plan; each task's turn runs its code once, then answers.

    Tasks t1 and t2 run at the same time, so replies are chosen by what a request is about, not by order.
    """
    system = body["messages"][0]
    if system["role"] == "system" and "You are the planner" in json.dumps(system["content"]):
        return Reply(text=json.dumps({"tasks": PLAN}))
    task = re.search(r"Your task \(id: (t\d)\)", user_text(body))
    assert task, user_text(body)
    code, text = TASK_STEPS[task[1]]
    if tool_results(body):
        return Reply(text=text)
    return Reply(tool_calls=[ToolCallSpec("python_run", {"code": code})])


def test_planner_notebook_runs_two_independent_tasks_then_the_one_that_needs_both(llm, examples, tmp_path):
    llm.default = plan_model

    nb = run_notebook(examples / "03-planner.ipynb", kernel_env(tmp_path, llm))

    assert_no_agent_errors(nb)
    plans = [s for s in shown(nb, "ask-plan", "text/markdown") if s.startswith("**Plan**")]
    assert plans, shown(nb, "ask-plan", "text/markdown")
    for line in (
        "✓ t1: Best-selling product",
        "✓ t2: Month with the highest revenue",
        "✓ t3: Write the summary",
    ):
        assert line in plans[-1], plans[-1]
    assert "Plan finished: 3 of 3 tasks done." in answer(nb, "ask-plan")
    assert stream(nb, "use-summary") == (
        "The best-selling product is Notebook (272 units). Revenue peaked in 2024-04 at 1,442.70.\n"
    )
    # The summary task started once both others were done, and read their results.
    tasks = [re.search(r"Your task \(id: (t\d)\)", user_text(r)) for r in llm.requests]
    order = [t[1] if t else "plan" for t in tasks]
    assert order[0] == "plan" and order.count("t3") == 2
    assert order.index("t3") > max(i for i, t in enumerate(order) if t in ("t1", "t2"))
    summary_prompt = user_text(llm.requests[order.index("t3")])
    assert "t1 (Best-selling product) [done]: Notebook sold the most units (272)." in summary_prompt
    assert "t2 (Month with the highest revenue) [done]: 2024-04 had the highest revenue" in summary_prompt


# -- 04: the browser -------------------------------------------------------------------------------------

HOURS_CODE = """\
import pandas as pd

hours = pd.DataFrame(
    [
        ["Monday", "09:00", "18:00", "no"],
        ["Tuesday", "09:00", "20:00", "yes"],
        ["Wednesday", "09:00", "18:00", "no"],
        ["Thursday", "09:00", "20:00", "yes"],
        ["Friday", "09:00", "17:00", "no"],
        ["Saturday", "10:00", "16:00", "no"],
        ["Sunday", "closed", "closed", "no"],
    ],
    columns=["Day", "Opens", "Closes", "Late study room"],
)
hours.shape"""


def test_browser_notebook_reads_the_local_page_into_a_dataframe(llm, examples, tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}/opening-hours.html"
    llm.script(
        Reply(tool_calls=[ToolCallSpec("python_variables", {"names": ["url"]})]),
        Reply(tool_calls=[ToolCallSpec("browser_navigate", {"url": url})]),
        Reply(tool_calls=[ToolCallSpec("browser_extract", {"format": "markdown"})]),
        Reply(tool_calls=[ToolCallSpec("python_run", {"code": HOURS_CODE})]),
        Reply(text="`hours` has the seven days; the late study room is open on Tuesdays and Thursdays."),
    )

    env = kernel_env(tmp_path, llm, EXAMPLE_SITE_PORT=str(port))
    nb = run_notebook(examples / "04-browser.ipynb", env)

    assert_no_agent_errors(nb)
    assert stream(nb, "serve-site") == url + "\n"
    results = tool_results(llm.requests[-1])
    assert url in results[0]  # python_variables: the address the notebook printed
    assert f"Opened {url} (HTTP 200)" in results[1] and "Riverside Library" in results[1]
    page = results[2]  # browser_extract: the whole page, with its table, as the model read it
    assert "Opening hours" in page
    assert re.search(r"Tuesday\s*\|\s*09:00\s*\|\s*20:00\s*\|\s*yes", page), page
    assert "[result]\n(7, 4)" in results[3]
    assert answer(nb, "ask-browser").startswith("`hours` has the seven days")
    table = shown(nb, "use-hours", "text/html")[-1]
    assert "Late study room" in table and "Thursday" in table and "closed" in table


# -- 05: configuring a provider --------------------------------------------------------------------------


def test_configure_notebook_points_the_kernel_at_an_openai_compatible_server(llm, examples, tmp_path):
    llm.script(Reply(text="Hello! I can read your variables and run Python in this kernel."))
    env = kernel_env(tmp_path, llm, EXAMPLE_API_BASE=llm.base_url, EXAMPLE_MODEL="openai/scripted")
    for configured_elsewhere in ("JUPYTER_AGENT_MODEL", "OPENAI_API_BASE", "OPENAI_API_KEY"):
        env.pop(configured_elsewhere)  # only the notebook's own cell configures the model

    nb = run_notebook(examples / "05-configure-a-provider.ipynb", env)

    assert_no_agent_errors(nb)
    assert stream(nb, "set-endpoint") == f"openai/scripted at {llm.base_url}\n"
    assert "model: openai/scripted" in stream(nb, "show-config")
    assert len(llm.requests) == 1 and llm.requests[0]["model"] == "scripted"
    assert user_text(llm.requests[0]) == (
        "Say hello, and tell me in one sentence what you can do in this notebook."
    )
    assert answer(nb, "ask-hello") == "Hello! I can read your variables and run Python in this kernel."
    changed = stream(nb, "set-kernel-model")
    assert "model: openai/gpt-4o-mini" in changed and "max_steps" in changed
    assert "model: openai/scripted" in stream(nb, "reset-config")
