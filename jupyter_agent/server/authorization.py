"""Acting as the person who asked: each tool's permission is checked with the Jupyter server's Authorizer.

A turn started in the server carries a :class:`Principal`: the request handler and the Jupyter user of the
person whose prompt (or plan approval) started it. Before a tool runs, the server's own Authorizer is asked
whether that person may do what the tool declares (``kernels:execute``, ``contents:write``...): the same
question Jupyter asks for that person's own kernel, contents and terminal requests. A JupyterHub
deployment's Authorizer (scopes) therefore applies to the agent too.
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass
from typing import Any

from jupyter_agent.tools.base import Permission

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Principal:
    """Who a turn acts for: the handler of their request and their Jupyter user."""

    handler: Any
    user: Any

    @classmethod
    def of(cls, handler: Any) -> Principal | None:
        user = handler.current_user
        return None if user is None else cls(handler, user)

    @property
    def username(self) -> str:
        return str(getattr(self.user, "username", self.user))


class PersonAuthorization:
    """``await allowed(principal, ("kernels", "execute"))`` with the server's Authorizer."""

    def __init__(self, authorizer: Any) -> None:
        self.authorizer = authorizer

    async def __call__(self, principal: Principal | None, permission: Permission) -> bool:
        if principal is None:  # nobody to act for (e.g. a turn from before this server started): refuse
            return False
        resource, action = permission
        try:
            allowed = self.authorizer.is_authorized(principal.handler, principal.user, action, resource)
            if inspect.isawaitable(allowed):
                allowed = await allowed
        except Exception:
            log.exception(
                "The Authorizer failed on %s:%s for %s: refused", resource, action, principal.username
            )
            return False
        return bool(allowed)
