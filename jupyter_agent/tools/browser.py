"""Browser tools: navigate, read, act on and analyse web pages in the chat session's own browser tab.

The work happens in :class:`jupyter_agent.browser.BrowserService` (``ctx.service("browser")``); these
functions turn its results into what the model reads. Page text always reaches the model wrapped as
untrusted content. :func:`http_extract` reads a page without a browser, for when the browser is down; it
connects only to the addresses the network policy checked, for the first request and each redirect.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urljoin

import httpx

from jupyter_agent.browser.analyze import FORMATS, html_to_text
from jupyter_agent.browser.network import Destination, unmapped
from jupyter_agent.browser.policy import BrowserError, UrlPolicy, UrlRefused, wrap_untrusted
from jupyter_agent.errors import AgentError
from jupyter_agent.tools.base import (
    ImagePart,
    Tool,
    ToolContext,
    ToolFunction,
    ToolResult,
    object_schema,
    tool,
)

_REF = {"type": "string", "description": "An element ref from browser_snapshot, such as e12."}


def _readable_errors(fn: ToolFunction) -> ToolFunction:
    """Errors the model can act on (bad ref, refused URL, a crash it must recover from) become results it
    reads. ``BrowserUnavailable`` is left to propagate: the router treats it as an infrastructure failure."""

    @functools.wraps(fn)
    async def run(ctx: ToolContext, **arguments: Any) -> ToolResult:
        try:
            return await fn(ctx, **arguments)
        except AgentError as err:
            return ToolResult.error(err.message, code=err.code)

    return run


def _where(info: dict[str, Any]) -> str:
    tab = " That opened a new tab, which is now the current page." if info.get("new_tab") else ""
    return f"The page is now {info['url']}.{tab} Take a new browser_snapshot to see the result."


@tool(
    "browser_navigate",
    "Open a URL (http or https) in this chat's browser tab. Returns the final URL, HTTP status, title and "
    "a short text excerpt; use browser_snapshot to act on the page or browser_extract to read all of it.",
    object_schema(["url"], url={"type": "string", "description": "The full URL to open."}),
    permission=("agent_browser", "execute"),
    reads_untrusted=True,
)
@_readable_errors
async def browser_navigate(ctx: ToolContext, url: str) -> ToolResult:
    service = ctx.service("browser")
    nav = await service.navigate(ctx.session_id, url)
    notes = " (from cache)" if nav["cached"] else ""
    if nav["loading"]:
        notes += "; the page was still loading, so its content may be incomplete"
    body = f"Title: {nav['title']}\n\n{nav['excerpt']}"
    text = f"Opened {nav['url']} (HTTP {nav['status']}){notes}.\n"
    text += wrap_untrusted(body, nav["url"], max_chars=len(body))
    shown, total = len(nav["excerpt"]), nav["length"]
    if total > shown:
        text += f"\nThat is the first {shown} of {total} characters of text; browser_extract reads it all."
    blocked = nav.get("blocked") or []
    if blocked:
        text += f"\nThe network policy blocked {len(blocked)} request(s) of this page: " + "; ".join(blocked)
    data = {k: nav[k] for k in ("url", "requested_url", "title", "status", "cached", "loading")}
    data["blocked"] = blocked
    return ToolResult(text=text, data=data)


@tool(
    "browser_snapshot",
    "The current page's accessibility tree (roles, names, text) with [ref=...] element refs for "
    "browser_click, browser_type and browser_scroll. Refs change when the page changes.",
    object_schema(),
    permission=("agent_browser", "execute"),
    reads_untrusted=True,
)
@_readable_errors
async def browser_snapshot(ctx: ToolContext) -> ToolResult:
    service = ctx.service("browser")
    snap = await service.snapshot(ctx.session_id)
    tree = wrap_untrusted(snap["snapshot"], snap["url"], max_chars=service.config.max_text_chars)
    return ToolResult(
        text=f"Snapshot of {snap['url']}:\n{tree}", data={"url": snap["url"], "title": snap["title"]}
    )


@tool(
    "browser_click",
    "Click the element with this ref (from browser_snapshot).",
    object_schema(["ref"], ref=_REF),
    permission=("agent_browser", "execute"),
    reads_untrusted=True,
)
@_readable_errors
async def browser_click(ctx: ToolContext, ref: str) -> ToolResult:
    info = await ctx.service("browser").click(ctx.session_id, ref)
    return ToolResult(text=f"Clicked {ref}. {_where(info)}", data=info)


@tool(
    "browser_type",
    "Replace the text of an input, text area or editable element (by ref), optionally pressing Enter.",
    object_schema(
        ["ref", "text"],
        ref=_REF,
        text={"type": "string", "description": "The text to type."},
        submit={
            "type": "boolean",
            "description": "Press Enter afterwards (submits most forms).",
            "default": False,
        },
    ),
    permission=("agent_browser", "execute"),
    reads_untrusted=True,
)
@_readable_errors
async def browser_type(ctx: ToolContext, ref: str, text: str, submit: bool = False) -> ToolResult:
    info = await ctx.service("browser").type(ctx.session_id, ref, text, bool(submit))
    enter = " and pressed Enter" if submit else ""
    return ToolResult(text=f"Typed {len(text)} characters into {ref}{enter}. {_where(info)}", data=info)


@tool(
    "browser_scroll",
    "Scroll the page (or, with a ref, that element) up, down, left or right by some pixels, 80% of the "
    "window by default. With a ref and no amount, scroll that element into view.",
    object_schema(
        direction={"type": "string", "enum": ["down", "up", "left", "right"], "default": "down"},
        amount={"type": ["integer", "null"], "minimum": 1, "description": "Pixels to scroll."},
        ref={**_REF, "type": ["string", "null"]},
    ),
    permission=("agent_browser", "execute"),
    reads_untrusted=True,
)
@_readable_errors
async def browser_scroll(
    ctx: ToolContext, direction: str = "down", amount: int | None = None, ref: str | None = None
) -> ToolResult:
    pos = await ctx.service("browser").scroll(ctx.session_id, direction, amount, ref)
    text = (
        f"Scrolled {direction}. The window shows y={pos['y']} to {pos['y'] + pos['viewport']} of a "
        f"{pos['height']} px tall page (x={pos['x']})."
    )
    return ToolResult(text=text, data=pos)


@tool(
    "browser_extract",
    "The current page's content as markdown (default), plain text, or a list of links.",
    object_schema(format={"type": "string", "enum": list(FORMATS), "default": "markdown"}),
    permission=("agent_browser", "execute"),
    reads_untrusted=True,
)
@_readable_errors
async def browser_extract(ctx: ToolContext, format: str = "markdown") -> ToolResult:
    service = ctx.service("browser")
    page = await service.extract(ctx.session_id, format)
    limit = service.config.max_text_chars
    body = wrap_untrusted(page["content"], page["url"], max_chars=limit, total=page["length"])
    data = {k: page[k] for k in ("url", "title", "format", "length", "cached")}
    return ToolResult(
        text=f"Content of {page['url']} as {format}:\n{body}",
        data={**data, "truncated": page["length"] > limit},
    )


@tool(
    "browser_screenshot",
    "A PNG screenshot of the current page: the visible window, or the whole page with full_page.",
    object_schema(full_page={"type": "boolean", "default": False}),
    permission=("agent_browser", "execute"),
    reads_untrusted=True,
)
@_readable_errors
async def browser_screenshot(ctx: ToolContext, full_page: bool = False) -> ToolResult:
    shot = await ctx.service("browser").screenshot(ctx.session_id, bool(full_page))
    what = "the whole page" if full_page else "the visible window"
    image = ImagePart("image/png", shot["png"], f"Screenshot of {shot['url']}")
    data = {"url": shot["url"], "title": shot["title"], "full_page": bool(full_page)}
    return ToolResult(text=f"Screenshot of {what} at {shot['url']} (attached).", data=data, images=[image])


@tool(
    "browser_analyze",
    "Load a URL and report in one step: a screenshot, page metadata (title, description, canonical URL, "
    "Open Graph), performance timings and sizes, and accessibility problems (images without alt text, "
    "unlabeled form fields, low-contrast text, skipped heading levels).",
    object_schema(["url"], url={"type": "string", "description": "The full URL to analyse."}),
    permission=("agent_browser", "execute"),
    reads_untrusted=True,
)
@_readable_errors
async def browser_analyze(ctx: ToolContext, url: str) -> ToolResult:
    service = ctx.service("browser")
    report = await service.analyze(ctx.session_id, url)
    image = ImagePart("image/png", report["screenshot"], f"Screenshot of {report['url']}")
    keys = ("url", "title", "status", "metadata", "performance", "accessibility", "cached")
    data = {k: report[k] for k in keys}
    cached = f", from an analysis in the last {service.config.cache_ttl:g} s" if report["cached"] else ""
    text = f"Analysis of {report['url']} (HTTP {report['status']}{cached}), screenshot attached:\n"
    text += wrap_untrusted(_report_text(report), report["url"], max_chars=service.config.max_text_chars)
    return ToolResult(text=text, data=data, images=[image])


def _report_text(report: dict[str, Any]) -> str:
    meta, perf, a11y = report["metadata"], report["performance"], report["accessibility"]
    lines = ["## Metadata"]
    lines += [f"- {k}: {meta[k]}" for k in ("title", "description", "canonical", "lang") if meta.get(k)]
    lines += [f"- og:{k}: {v}" for k, v in meta["open_graph"].items()]
    lines += ["", "## Performance (ms from navigation start; bytes)"]
    lines += [f"- {k}: {v}" for k, v in perf.items() if v is not None]
    lines += ["", "## Accessibility"]
    for key in ("images_without_alt", "unlabeled_controls", "low_contrast_text", "heading_skips"):
        found = a11y[key]
        lines.append(f"- {key.replace('_', ' ')}: {found['count']}")
        lines += [f"  - {item}" for item in found["items"]]
    lines += [f"- {flag.replace('_', ' ')}" for flag in ("missing_h1", "missing_lang") if a11y[flag]]
    return "\n".join(lines)


BROWSER_TOOLS: list[Tool] = [
    browser_navigate,
    browser_snapshot,
    browser_click,
    browser_type,
    browser_scroll,
    browser_extract,
    browser_screenshot,
    browser_analyze,
]


# ---- the no-browser fallback --------------------------------------------------------------------------


MAX_REDIRECTS = 10
_USER_AGENT = "Mozilla/5.0 (compatible; jupyter-agent)"


async def _fetch(url: str, policy: UrlPolicy, timeout: float, max_bytes: int) -> tuple[int, str, str, str]:
    """GET ``url``, following redirects the policy allows; each hop goes to the address that was checked.

    Environment proxies are not used: the request must reach the checked address, not a proxy's choice.
    """
    async with httpx.AsyncClient(
        timeout=timeout, trust_env=False, headers={"User-Agent": _USER_AGENT}
    ) as client:
        for _hop in range(MAX_REDIRECTS + 1):
            url = policy.check(url)
            if not url.lower().startswith(("http://", "https://")):
                raise UrlRefused(f"web_fetch reads http:// and https:// URLs only, not {url}")
            destination = await policy.request_destination(url)
            async with _pinned_get(client, url, destination) as response:
                location = response.headers.get("location")
                if response.is_redirect and location:
                    url = urljoin(url, location)
                    continue
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) >= max_bytes:
                        break
                mime = response.headers.get("content-type", "text/plain").split(";", 1)[0].strip().lower()
                text = bytes(body[:max_bytes]).decode(response.charset_encoding or "utf-8", "replace")
                return response.status_code, url, mime or "text/plain", text
    raise BrowserError(f"{url} redirected more than {MAX_REDIRECTS} times")


@contextlib.asynccontextmanager
async def _pinned_get(
    client: httpx.AsyncClient, url: str, destination: Destination
) -> AsyncIterator[httpx.Response]:
    """A streamed GET of ``url`` sent to the first checked address that accepts a connection, with the URL's
    own Host header and TLS server name (so virtual hosts and certificates work as if resolved here)."""
    for n, address in enumerate(destination.addresses, 1):
        request = client.build_request("GET", url)  # the Host header comes from the URL's host
        request.url = request.url.copy_with(host=str(unmapped(address)))
        request.extensions["sni_hostname"] = destination.host
        try:
            response = await client.send(request, stream=True)
            break
        except httpx.ConnectError:
            if n == len(destination.addresses):
                raise
    try:
        yield response
    finally:
        await response.aclose()


async def http_extract(
    url: str,
    format: str = "text",
    *,
    policy: UrlPolicy | None = None,
    max_chars: int = 20_000,
    timeout: float = 20.0,
    max_bytes: int = 5 * 2**20,
) -> ToolResult:
    """Read ``url`` over plain HTTP (no JavaScript) as text, markdown or links; never raises.

    The fallback for browser_navigate/browser_extract when the browser is unavailable. ``policy`` defaults
    to http(s)-only rules and public addresses only; pass the browser's (``service.policy``) to apply the
    same allow/deny lists and ``allowed_networks``.
    """
    policy = policy or UrlPolicy()
    if format not in FORMATS:
        return ToolResult.error(f"unknown format {format!r}; use one of {', '.join(FORMATS)}")
    try:
        status, final_url, content_type, body = await _fetch(url, policy, timeout, max_bytes)
    except UrlRefused as err:
        return ToolResult.error(err.message, code=err.code, url=url)
    except BrowserError as err:  # a host that does not resolve, too many redirects
        return ToolResult.error(f"could not fetch {url}: {err.message}", code="fetch_failed", url=url)
    except (httpx.HTTPError, OSError, ValueError) as err:  # timeouts, refused connections, bad URLs
        reason = str(err) or type(err).__name__
        return ToolResult.error(f"could not fetch {url}: {reason}", code="fetch_failed", url=url)
    if content_type in ("text/html", "application/xhtml+xml"):
        page = await asyncio.to_thread(html_to_text, body, final_url, format)  # seconds for a big page
        title, content = page["title"], page["content"]
    elif content_type.startswith("text/") or content_type.endswith(("json", "xml")):
        title, content = "", body
    else:
        return ToolResult.error(
            f"{final_url} is not a text document (content type {content_type})", url=final_url
        )
    data = {"url": final_url, "title": title, "status": status, "format": format, "via": "http"}
    header = f"Fetched {final_url} over plain HTTP (status {status}, no JavaScript run)."
    return ToolResult(text=f"{header}\n{wrap_untrusted(content, final_url, max_chars=max_chars)}", data=data)


@tool(
    "web_fetch",
    "Read a URL over plain HTTP without a browser (no JavaScript): text, markdown or links. Faster than the "
    "browser for static pages and documentation.",
    object_schema(
        ["url"],
        url={"type": "string"},
        format={"type": "string", "enum": list(FORMATS), "default": "markdown"},
    ),
    timeout=30,
    permission=("agent_browser", "execute"),
    reads_untrusted=True,
)
async def web_fetch(ctx: ToolContext, url: str, format: str = "markdown") -> ToolResult:
    browser = ctx.services.get("browser")
    return await http_extract(url, format, policy=browser.policy if browser is not None else None)


browser_navigate.fallbacks = ("web_fetch",)
BROWSER_TOOLS.append(web_fetch)
