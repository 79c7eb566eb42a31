"""The agent kernel ("Python 3 (agent)"): an IPython kernel whose cells are requests in plain language.

One namespace is shared by the person and the agent: the agent's ``python_run`` runs in this kernel's user
namespace, so what either defines the other can use.

Which cells are Python (:func:`is_python`), exactly:

1. a cell whose first line is ``%%python`` runs the rest of the cell as Python;
2. a cell that starts with ``%`` or ``!`` (IPython magics, shell commands) runs as IPython input;
3. a cell that parses as Python (``ast.parse``) runs as Python, unless it is a *bare sentence*: one
   expression made only of words separated by spaces (``hello``, ``not sure``, ``thanks a lot`` does not
   even parse) — except a single word that names a variable of the namespace (``df`` shows ``df``)
   or is ``True``, ``False`` or ``None``;
4. every other cell is a request to the agent (as if it started with ``%%agent``).

Silent executions (frontends' own introspection) and empty cells are always Python.
"""

from __future__ import annotations

import ast
import re
from typing import Any

from ipykernel.ipkernel import IPythonKernel

from jupyter_agent import __version__

_WORDS = re.compile(r"^\s*[A-Za-z_]\w*(?:[ \t]+[A-Za-z_]\w*)*\s*$")


def is_python(code: str, namespace: dict[str, Any] | None = None) -> bool:
    """Whether a cell of the agent kernel is code rather than a request (see the module docstring)."""
    stripped = code.strip()
    if not stripped or stripped.startswith(("%", "!")):
        return True
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return False
    bare_sentence = (
        len(tree.body) == 1 and isinstance(tree.body[0], ast.Expr) and bool(_WORDS.match(stripped))
    )
    if not bare_sentence:
        return True
    return stripped in ("True", "False", "None") or (namespace is not None and stripped in namespace)


def route_cell(code: str, namespace: dict[str, Any] | None = None) -> str:
    """The cell as IPython runs it: ``%%python`` removed from Python cells, ``%%agent`` added to requests."""
    first, _, rest = code.lstrip("\n").partition("\n")
    if first.strip() == "%%python":
        return rest
    if is_python(code, namespace):
        return code
    return "%%agent\n" + code


class AgentKernel(IPythonKernel):
    implementation = "jupyter_agent"
    implementation_version = __version__
    banner = (
        "Python 3 (agent): write a request in plain language, or Python code.\n"
        "Cells starting with %%python always run as Python. %agent_config shows the model in use."
    )

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        from jupyter_agent.magics import load_ipython_extension

        load_ipython_extension(self.shell)

    async def do_execute(
        self,
        code: str,
        silent: bool,
        store_history: bool = True,
        user_expressions: dict[str, Any] | None = None,
        allow_stdin: bool = False,
        **kwargs: Any,
    ) -> Any:
        if not silent:
            code = route_cell(code, self.shell.user_ns)
        return await super().do_execute(code, silent, store_history, user_expressions, allow_stdin, **kwargs)
