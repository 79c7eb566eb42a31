"""Chat latency as people see it: from pressing Enter to the answer's first token painted in the panel.

Starts JupyterLab with the agent and the scripted LLM (zero delay), opens two browser contexts on the same
chat session in headless Chromium (one person typing, one watching), and for N prompts measures:
- typist: Enter keydown -> first assistant text painted in the typist's panel;
- watcher: the same keydown -> first assistant text painted in the watcher's panel (clocks aligned through
  ``performance.timeOrigin + performance.now()``, epoch milliseconds, in both pages);
- (dom): the same up to the DOM mutation that put the text in, before the browser painted it.

"Painted" is the first task after the next animation frame that follows the mutation (a MutationObserver
sees it, ``requestAnimationFrame`` then a message-channel task runs after that frame's paint).

    .venv/bin/python benchmarks/chat_latency.py --n 20
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from playwright.sync_api import sync_playwright

from jupyter_agent.testing.jupyter import JupyterServer
from jupyter_agent.testing.scripted_llm import Reply, ScriptedLLM
from tests.e2e.conftest import NOTEBOOK, ChatPage, LabPages, lab_config, launch_chromium, notebook_json

ANSWER = "The notebook loads a CSV file and plots the monthly totals."

# Installed in both pages: the epoch time of each Enter in the agent input, and for each new assistant
# message the time its text first became non-empty (DOM) and the time after the next paint.
INSTRUMENT = """() => {
    const clock = () => performance.timeOrigin + performance.now();
    const b = (window.__bench = { keydown: [], dom: [], painted: [] });
    document.addEventListener('keydown', e => {
        if (e.key === 'Enter' && !e.shiftKey && e.target.dataset && e.target.dataset.testid === 'agent-input') {
            b.keydown.push(clock());
        }
    }, true);
    const seen = new WeakSet();
    const afterPaint = done => requestAnimationFrame(() => {
        const channel = new MessageChannel();
        channel.port1.onmessage = done;
        channel.port2.postMessage(null);
    });
    const look = () => {
        for (const el of document.querySelectorAll('[data-testid="agent-message"][data-role="assistant"]')) {
            if (seen.has(el)) continue;
            const md = el.querySelector('.jp-AgentChat-markdown');
            if (!md || !md.textContent.trim()) continue;
            seen.add(el);
            const index = b.dom.push(clock()) - 1;
            afterPaint(() => { b.painted[index] = clock(); });
        }
    };
    new MutationObserver(look).observe(document.querySelector('#jupyter-agent-chat'), {
        subtree: true, childList: true, characterData: true
    });
}"""


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def row(name: str, values: list[float]) -> str:
    return (
        f"{name:<44} p50 {pct(values, 50):8.1f} ms   p90 {pct(values, 90):8.1f} ms   "
        f"max {max(values):8.1f} ms   (n={len(values)})"
    )


def bench(chat_pages: LabPages, n: int, warmup: int) -> dict[str, list[float]]:
    typist = chat_pages.open()
    typist.open_chat()
    session_id = typist.new_session()
    watcher = chat_pages.open()
    watcher.open_chat()
    watcher.select_session(session_id)
    for page in (typist, watcher):
        page.page.evaluate(INSTRUMENT)

    results: dict[str, list[float]] = {k: [] for k in ("typist", "watcher", "typist_dom", "watcher_dom")}
    for i in range(warmup + n):
        prompt(typist, watcher, i)
        key = typist.page.evaluate("window.__bench.keydown")[i]
        t = typist.page.evaluate(f"[window.__bench.dom[{i}], window.__bench.painted[{i}]]")
        w = watcher.page.evaluate(f"[window.__bench.dom[{i}], window.__bench.painted[{i}]]")
        if i >= warmup:
            results["typist_dom"].append(t[0] - key)
            results["typist"].append(t[1] - key)
            results["watcher_dom"].append(w[0] - key)
            results["watcher"].append(w[1] - key)
    return results


def prompt(typist: ChatPage, watcher: ChatPage, i: int) -> None:
    """Send prompt ``i`` and wait until both pages painted its answer and the typist may send again."""
    typist.input.fill(f"Question {i}: what does this notebook do?")
    typist.input.press("Enter")
    done = f"() => window.__bench.painted.length > {i} && window.__bench.painted[{i}] !== undefined"
    typist.page.wait_for_function(done, timeout=60_000)
    watcher.page.wait_for_function(done, timeout=60_000)
    typist.wait_idle()
    watcher.wait_idle()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20, help="measured prompts")
    parser.add_argument("--warmup", type=int, default=2, help="prompts sent first and not measured")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="chat-latency-") as tmp, ScriptedLLM(chunk_delay=0.0) as llm:
        llm.default = Reply(text=ANSWER)
        config = lab_config(Path(tmp))
        with JupyterServer(llm_base_url=llm.base_url, app="jupyterlab", config=config) as srv:
            (srv.root / NOTEBOOK).write_text(json.dumps(notebook_json("x = 1")))
            with sync_playwright() as playwright:
                browser = launch_chromium(playwright)
                pages = LabPages(browser, srv, "chat-latency")
                try:
                    results = bench(pages, args.n, args.warmup)
                finally:
                    pages.close()
                    browser.close()
    print(
        f"Enter -> first token painted, scripted LLM at zero delay ({time.perf_counter() - started:.0f} s run)"
    )
    print(row("typist  (same page)", results["typist"]))
    print(row("watcher (second browser context)", results["watcher"]))
    print(row("typist  up to the DOM change (before paint)", results["typist_dom"]))
    print(row("watcher up to the DOM change (before paint)", results["watcher_dom"]))
    lag = [w - t for w, t in zip(results["watcher"], results["typist"], strict=True)]
    print(row("watcher minus typist", lag))


if __name__ == "__main__":
    main()
