"""Who may see a session, and who may answer its approvals.

A session is private to its owner (the person who created it) unless it is shared with the collaborators
of its notebook: then everyone the server's Authorizer lets read the workspace (``contents:read``) sees it.
Sessions that a kernel or a CLI run writes belong to whoever may run code in this server's kernels
(``kernels:execute``): the server's owner. Others get 404 (the session's existence is not revealed) on its
routes, a refused WebSocket and no entry in the session list.

Privacy applies where the server tells people apart: ``c.JupyterAgent.session_privacy = "auto"`` turns it
on unless the server's IdentityProvider is one of Jupyter's own single-person ones (a token or a password
for one person, where everyone with it is the same person).
"""

from __future__ import annotations

from typing import Any

from jupyter_agent.errors import Forbidden, NotFound
from jupyter_agent.server.authorization import PersonAuthorization, Principal
from jupyter_agent.tools.base import Permission

SINGLE_PERSON_PROVIDERS = ("IdentityProvider", "PasswordIdentityProvider", "LegacyIdentityProvider")


def privacy_applies(setting: str, identity_provider: Any) -> bool:
    """Whether sessions are private: ``private`` / ``open``, or for ``auto`` by the IdentityProvider."""
    if setting != "auto":
        return setting == "private"
    cls = type(identity_provider)
    return not (cls.__module__ == "jupyter_server.auth.identity" and cls.__name__ in SINGLE_PERSON_PROVIDERS)


class SessionAccess:
    """The visibility rules above, asked with the server's Authorizer."""

    def __init__(self, authorization: PersonAuthorization, private: bool) -> None:
        self.authorization = authorization
        self.private = private

    async def may_see(self, principal: Principal | None, meta: dict[str, Any]) -> bool:
        if not self.private:
            return True
        if principal is None:
            return False
        if meta.get("owner") == principal.username:
            return True
        if meta.get("shared") and await self.authorization(principal, ("contents", "read")):
            return True
        role = (meta.get("writer") or {}).get("role")
        return role in ("kernel", "cli") and await self.authorization(principal, ("kernels", "execute"))

    async def check_see(self, principal: Principal | None, session: Any) -> None:
        if not await self.may_see(principal, session.to_dict()):
            raise NotFound(f"no session {session.id!r}")

    async def visible(
        self, principal: Principal | None, sessions: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        return [meta for meta in sessions if await self.may_see(principal, meta)]

    def check_owner(self, principal: Principal | None, session: Any, what: str) -> None:
        """Only the owner may change who sees a session (anyone who may act, where privacy is off)."""
        if self.private and (principal is None or principal.username != session.owner):
            raise Forbidden(f"only the session's owner ({session.owner}) can {what}")

    async def check_approver(
        self, principal: Principal | None, router: Any, session: Any, call_id: str
    ) -> None:
        """An approval may be answered only by someone allowed to run the tool it is about."""
        name = session.pending_tool(call_id)
        tool = router.get(name) if name else None
        permission = getattr(tool, "permission", None)
        if permission is None or await self.authorization(principal, permission):
            return
        who = principal.username if principal is not None else "this user"
        raise Forbidden(
            f"{who} may not approve {name}: it needs {permission[0]}:{permission[1]}, which {who} lacks"
        )

    async def check_allowed(self, principal: Principal | None, permission: Permission, what: str) -> None:
        """Refuse (403) a request that needs ``permission`` of someone who lacks it."""
        if await self.authorization(principal, permission):
            return
        who = principal.username if principal is not None else "this user"
        raise Forbidden(f"{who} may not {what}: it needs {permission[0]}:{permission[1]}, which {who} lacks")

    async def check_editor(self, principal: Principal | None, what: str) -> None:
        """Undo, redo, accept and reject change notebooks and files: only people who may write them can."""
        if await self.authorization(principal, ("contents", "write")):
            return
        who = principal.username if principal is not None else "this user"
        raise Forbidden(f"{who} may not {what}: it needs contents:write, which {who} lacks")
