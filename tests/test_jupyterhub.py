"""The agent on a real JupyterHub: each person's own server, their own chats, and sharing only by the hub's rules.

One JupyterHub for the module (tests/hub_kit.py): configurable-http-proxy from npm, SharedPasswordAuthenticator
(the hub's dummy authenticator with a password), SimpleLocalProcessSpawner, and every person's server running
the agent, whose model is a LiteLLM proxy (started here) in front of the project's scripted model.

- alice logs in through the login form as a browser does (cookies, XSRF, the hub's OAuth) and uses her
  server with those cookies; bob and carol use API tokens the hub issued them (alice's own token is used
  only to show that bob's server refuses her API calls as well as her browser).
- bob has his own server and no access to alice's.
- carol is alice's collaborator: the hub grants her ``access:servers!user=alice`` (a role in ``load_roles``).
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from jupyter_agent.testing.scripted_llm import Reply, ScriptedLLM, ToolCallSpec
from tests.hub_kit import CHP, Hub, LiteLLMProxy, Person, answer, log_in_with_browser

pytestmark = [
    # About 50 s on an idle 2-core machine (most of it the servers' and the proxy's start-up), and twice
    # that on a loaded one: the module's start-up counts against its first test's timeout.
    pytest.mark.timeout(300),
]


@pytest.fixture(scope="module", autouse=True)
def proxy_installed() -> None:
    """`make install-test` installs configurable-http-proxy; without it these tests fail, saying so."""
    assert shutil.which("node"), "configurable-http-proxy needs node (Node.js 20)"
    assert CHP.exists(), f"{CHP} is missing: run `npm ci --prefix tests/hub` (make install-test does)"


PEOPLE = ["alice", "bob", "carol"]
COLLABORATION = {"name": "alice-collaborators", "scopes": ["access:servers!user=alice"], "users": ["carol"]}
ALIAS = "team-model"  # the name the agents ask the LiteLLM proxy for
UPSTREAM = "scripted"  # the name the proxy asks the scripted model for


def echo(body: dict[str, Any]) -> Reply:
    """The scripted model's default answer: it quotes the last thing the person said."""
    said = [m.get("content") for m in body.get("messages", []) if m.get("role") == "user"]
    last = said[-1] if said else ""
    if isinstance(last, list):
        last = " ".join(str(p.get("text", "")) for p in last if isinstance(p, dict))
    return Reply(text=f"You said: {last.strip().splitlines()[-1] if last.strip() else ''}")


@dataclass
class Deployment:
    hub: Hub
    proxy: LiteLLMProxy
    llm: ScriptedLLM
    alice_cookies: httpx.Cookies
    alice_visited: list[str]
    tokens: dict[str, str]
    timings: dict[str, float]  # seconds from the start, per step of the start-up (shown when a test fails)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    base: Path = tmp_path_factory.mktemp("hub")
    llm = ScriptedLLM().start()
    llm.default = echo
    proxy = LiteLLMProxy(base, llm.base_url, ALIAS, UPSTREAM)
    agent = {
        "model": f"openai/{ALIAS}",
        "model_options": {"api_base": proxy.url, "api_key": proxy.master_key},
        "local_model": "none",
        "retries": 0,
        "request_timeout": 30.0,
    }
    hub = Hub(base, PEOPLE, [COLLABORATION], agent)
    started, timings = time.monotonic(), {}

    def step(name: str) -> None:
        timings[name] = round(time.monotonic() - started, 1)

    try:
        proxy.start()  # the slowest to start: it goes first, and starts while the hub does
        hub.start()
        hub.wait_ready()
        step("hub")
        hub.spawn("bob")  # carol needs no server of her own: she works on alice's
        cookies, visited = log_in_with_browser(hub, "alice")
        step("alice")
        hub.wait_server("bob")
        step("bob")
        tokens = {name: hub.token(name) for name in PEOPLE}  # alice's too: for the API checks
        proxy.wait_ready()
        step("litellm")
        yield Deployment(hub, proxy, llm, cookies, visited, tokens, timings)
    finally:
        hub.stop()
        proxy.stop()
        llm.stop()


@pytest.fixture
def people(deployment: Deployment, jp_asyncio_loop) -> Iterator[dict[str, Person]]:
    hub = deployment.hub
    clients = {name: Person(hub, name, token=token) for name, token in deployment.tokens.items()}
    clients["alice-browser"] = Person(hub, "alice", cookies=deployment.alice_cookies)
    yield clients
    for client in clients.values():
        jp_asyncio_loop.run_until_complete(client.close())


async def test_each_person_has_their_own_server_whose_agent_answers_through_the_litellm_proxy(
    deployment: Deployment, people: dict[str, Person]
) -> None:
    print("start-up (s):", deployment.timings)
    alice, bob = people["alice-browser"], people["bob"]
    # alice came in through the login form, the spawn, and her server's OAuth with the hub.
    visited = deployment.alice_visited
    assert visited[0] == "/hub/login" and visited[-1] == "/user/alice/lab", visited
    assert "/hub/api/oauth2/authorize" in visited and "/user/alice/oauth_callback" in visited, visited

    for person in (alice, bob):
        status, health = await person.agent("GET", person.name, "health")
        assert status == 200 and health["private_sessions"] is True, (status, health)
    served_before = deployment.proxy.completions_served()
    upstream_before = len(deployment.llm.requests)

    mine, sockets = {}, {}
    for person in (alice, bob):  # each on their own server
        mine[person.name] = await person.new_session(person.name, f"{person.name}'s analysis")
        sockets[person.name] = await person.connect(person.name, mine[person.name])
    turns = await asyncio.gather(*(answer(sockets[n], f"hello from {n}") for n in ("alice", "bob")))

    for name, turn in zip(("alice", "bob"), turns, strict=True):
        assert turn["end"]["type"] == "done", turn["frames"][-3:]
        assert turn["answer"] == f"You said: hello from {name}"
        assert turn["user"]["user"]["username"] == name
    listed = {
        p.name: [s["id"] for s in (await p.agent("GET", p.name, "sessions"))[1]["sessions"]]
        for p in (alice, bob)
    }
    assert mine["alice"] in listed["alice"] and mine["bob"] not in listed["alice"]
    assert mine["bob"] in listed["bob"] and mine["alice"] not in listed["bob"]
    for name in ("alice", "bob"):
        _, session = await people[name].agent("GET", name, "sessions", mine[name])
        assert session["owner"] == name

    # The model calls went through the LiteLLM proxy: it answered them, and the scripted model was asked
    # for the proxy's upstream model name, not the alias the agents asked the proxy for.
    upstream = deployment.llm.requests[upstream_before:]
    assert len(upstream) >= 2 and {r["model"] for r in upstream} == {UPSTREAM}
    assert deployment.proxy.completions_served() - served_before >= 2


async def test_nobody_reaches_another_persons_server_sessions_or_files(
    deployment: Deployment, people: dict[str, Person]
) -> None:
    alice, bob, carol = people["alice"], people["bob"], people["carol"]
    (deployment.hub.homes / "alice" / "work" / "diary.txt").write_text("alice's private notes")
    (deployment.hub.homes / "bob" / "work" / "plans.txt").write_text("bob's private plans")
    alices = await alice.new_session("alice", "alice's private chat")
    bobs = await bob.new_session("bob", "bob's private chat")
    assert (await alice.call("GET", "alice", "api", "contents", "diary.txt"))[0] == 200

    # The hub refuses bob on alice's server, and alice and carol on bob's: agent, sessions, files, chat.
    refused = {
        "bob -> alice": [
            (await bob.agent("GET", "alice", "sessions"))[0],
            (await bob.agent("GET", "alice", "sessions", alices))[0],
            (await bob.agent("POST", "alice", "sessions", body={"title": "intruder"}))[0],
            (await bob.call("GET", "alice", "api", "contents", "diary.txt"))[0],
        ],
        "alice -> bob": [
            (await alice.agent("GET", "bob", "sessions"))[0],
            (await alice.call("GET", "bob", "api", "contents", "plans.txt"))[0],
        ],
        "carol -> bob": [
            (await carol.agent("GET", "bob", "sessions", bobs))[0],
            (await carol.call("GET", "bob", "api", "contents", "plans.txt"))[0],
        ],
    }
    # alice's browser, sent to bob's server, is turned away by the hub's OAuth.
    page = await people["alice-browser"].open_lab("bob")
    assert page.status_code == 403 and page.url.path == "/hub/api/oauth2/authorize", (
        page.status_code,
        page.url,
    )
    assert refused == {
        "bob -> alice": [403, 403, 403, 403],
        "alice -> bob": [403, 403],
        "carol -> bob": [403, 403],
    }
    for person, owner, session in ((bob, "alice", alices), (alice, "bob", bobs)):
        with pytest.raises(Exception, match="403"):
            await person.connect(owner, session)
    # Nothing was created on alice's server by bob's attempt.
    _, listed = await alice.agent("GET", "alice", "sessions")
    assert "intruder" not in [s["title"] for s in listed["sessions"]]


async def test_a_collaborator_with_access_to_alices_server_sees_and_uses_only_her_shared_chat(
    deployment: Deployment, people: dict[str, Person]
) -> None:
    alice, carol = people["alice-browser"], people["carol"]
    (deployment.hub.homes / "alice" / "work" / "results.csv").write_text("metric,value\nauc,0.91\n")
    private = await alice.new_session("alice", "alice alone")
    shared = await alice.new_session("alice", "alice and carol")
    status, meta = await alice.agent("PATCH", "alice", "sessions", shared, body={"shared": True})
    assert status == 200 and meta["shared"] is True, (status, meta)

    # carol reaches alice's server (the hub grants it), sees the shared chat and not the private one.
    _, listed = await carol.agent("GET", "alice", "sessions")
    assert [s["id"] for s in listed["sessions"]] == [shared]
    assert (await carol.agent("GET", "alice", "sessions", private))[0] == 404
    with pytest.raises(Exception, match="404"):
        await carol.connect("alice", private)
    # Only alice may change who sees her chat.
    assert (await carol.agent("PATCH", "alice", "sessions", shared, body={"shared": False}))[0] == 403

    # carol asks in the shared chat; alice, watching it, sees carol's prompt and the answer. The agent
    # acts as carol: the tool call it makes is carol's in alice's audit log.
    alice_watch = await alice.connect("alice", shared)
    carol_sock = await carol.connect("alice", shared)
    deployment.llm.script(
        Reply(tool_calls=[ToolCallSpec("file_read", {"path": "results.csv"}, id="carol-read")]),
        Reply(text="The AUC is 0.91."),
    )
    turn = await answer(carol_sock, "what is the AUC in results.csv?")
    assert turn["end"]["type"] == "done", turn["frames"][-3:]
    assert turn["answer"] == "The AUC is 0.91."
    assert turn["user"]["user"]["username"] == "carol"
    read = next(f for f in turn["frames"] if f["type"] == "tool_result")
    assert read["ok"] and "auc,0.91" in read["content"]

    seen = await alice_watch.until_type("done")
    prompt = next(f for f in seen if f["type"] == "message" and f["role"] == "user")
    assert prompt["user"]["username"] == "carol" and prompt["content"] == "what is the AUC in results.csv?"
    _, events = await alice.agent("GET", "alice", "sessions", shared, "events")
    assert any(
        e.get("user", {}).get("username") == "carol" for e in events["events"] if e["type"] == "message"
    )
    _, audit = await alice.agent("GET", "alice", "audit")
    calls = [e for e in audit["entries"] if "carol-read" in str(e["detail"])]
    assert calls and {e["user"] for e in calls} == {"carol"}, audit["entries"][:5]
