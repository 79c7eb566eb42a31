"""Three people on one server, the way a JupyterHub deployment sees them: an IdentityProvider that knows
each by their token, and an Authorizer that grants each a set of (resource, action) permissions.

- ``owner``: everything.
- ``collaborator``: may chat with the agent (``agent`` read/write) and read files, nothing else: no code
  execution, no file writes, no terminal.
- ``reader``: may watch (``agent`` read, ``contents`` read) and nothing more.

Use :func:`server_config` in ``jp_server_config`` and send ``Authorization: token <TOKENS[name]>``.
"""

from __future__ import annotations

from typing import Any

from jupyter_server.auth import Authorizer, IdentityProvider, User

TOKENS = {"owner": "owner-token-1111", "collaborator": "collab-token-2222", "reader": "reader-token-3333"}

GRANTS: dict[str, set[tuple[str, str]]] = {
    "owner": {("*", "*")},
    "collaborator": {("agent", "read"), ("agent", "write"), ("contents", "read"), ("sessions", "read")},
    "reader": {("agent", "read"), ("contents", "read"), ("sessions", "read")},
}


class TokenPeople(IdentityProvider):
    """Knows each person by their token (header ``Authorization: token ...`` or ``?token=``)."""

    def get_user(self, handler: Any) -> User | None:
        header = handler.request.headers.get("Authorization", "")
        token = (
            header[6:].strip() if header.lower().startswith("token ") else handler.get_argument("token", "")
        )
        for name, known in TOKENS.items():
            if token == known:
                handler._token_authenticated = True  # a token, not a cookie: no XSRF check (as Jupyter's own)
                return User(username=name, name=name, display_name=name.title())
        return None


class GrantAuthorizer(Authorizer):
    """Allows what :data:`GRANTS` lists for the person, refuses the rest."""

    def is_authorized(self, handler: Any, user: User, action: str, resource: str) -> bool:
        grants = GRANTS.get(user.username, set())
        return ("*", "*") in grants or (resource, action) in grants


def server_config() -> dict[str, Any]:
    return {
        "ServerApp": {"identity_provider_class": TokenPeople, "authorizer_class": GrantAuthorizer},
        "IdentityProvider": {"token": TOKENS["owner"]},  # the server's own token is the owner's
    }


def auth_header(name: str) -> dict[str, str]:
    return {"Authorization": f"token {TOKENS[name]}"}


def with_people(config: dict[str, Any]) -> dict[str, Any]:
    """A ``jp_server_config`` with these people's IdentityProvider and Authorizer added."""
    people = server_config()
    return {**config, **people, "ServerApp": {**config["ServerApp"], **people["ServerApp"]}}


def person_client(name: str, jp_fetch: Any, port: int, base_url: str) -> Any:
    """An agent API client (tests.clients.AgentClient) that authenticates as ``name``."""
    import functools

    from tests.clients import AgentClient

    return AgentClient(
        functools.partial(jp_fetch, headers=auth_header(name)), port, base_url, auth_header(name)
    )
