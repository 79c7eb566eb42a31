"""The session list: every session, with secrets in titles hidden however often it is asked for."""

from __future__ import annotations

SECRET = "s3cr3tPassw0rd"
TITLE = f"connect to postgres://app:{SECRET}@db:5432/main"


async def test_should_hide_a_secret_in_a_session_title_in_the_list_every_time(agent):
    sid = await agent.new_session(TITLE)
    plain = await agent.new_session("plots of the monthly totals")

    for _ in range(2):  # the second answer comes from the remembered redaction
        _, data = await agent.request("GET", "sessions", expect=200)
        titles = {s["id"]: s["title"] for s in data["sessions"]}
        assert SECRET not in titles[sid] and "[SECRET_" in titles[sid], titles[sid]
        assert titles[sid].startswith("connect to postgres://")
        assert titles[plain] == "plots of the monthly totals"
    _, one = await agent.request("GET", "sessions", sid, expect=200)
    assert one["title"] == titles[sid]
