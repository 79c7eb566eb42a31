"""Images from tools reach the model as image content when it can see, as a text note when it cannot."""

from __future__ import annotations

import pytest

from jupyter_agent.testing.scripted_llm import Reply, ToolCallSpec
from tests.test_notebook_live import make_notebook

# A 1x1 red PNG, displayed as the kernel would display a plot.
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
CELL = f"from IPython.display import display\ndisplay({{'image/png': '{PNG}', 'text/plain': '<Figure>'}}, raw=True)"


@pytest.mark.parametrize("vision", [True, False])
async def test_cell_image_output_goes_to_the_model_by_its_abilities(
    agent, agent_app, llm, jp_root_dir, vision
):
    agent_app.llm.vision = vision
    path = make_notebook(jp_root_dir, sources=(CELL,))
    llm.script(
        Reply(tool_calls=[ToolCallSpec("notebook_run_cell", {"path": path, "cell_id": "human0"})]),
        Reply(text="a red square"),
    )
    sid = await agent.new_session()
    ws = await agent.connect(sid)
    frames = await ws.turn("what does the plot show?", timeout=60)
    result = next(f for f in frames if f["type"] == "tool_result")
    assert result["ok"] and result["images"][0]["mime"] == "image/png" and result["images"][0]["data"] == PNG
    assert "[image/png output]" in result["content"]
    sent = llm.requests[-1]["messages"]
    image_parts = [
        p
        for m in sent
        if isinstance(m.get("content"), list)
        for p in m["content"]
        if p.get("type") == "image_url"
    ]
    tool_message = next(m for m in sent if m["role"] == "tool")
    if vision:
        assert image_parts and image_parts[0]["image_url"]["url"] == f"data:image/png;base64,{PNG}"
        assert "cannot see images" not in tool_message["content"]
    else:
        assert not image_parts
        assert "1 image(s) not shown: this model cannot see images" in tool_message["content"]
