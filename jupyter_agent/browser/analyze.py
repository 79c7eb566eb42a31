"""Working with one page: loading it, reading it (text, markdown, links), acting on refs, analysing it.

These functions know Playwright pages but nothing of sessions, pools or caches (see ``contexts`` and
``service``). The in-page probes behind ``browser_analyze`` (metadata, performance timings, accessibility
findings) are small scripts; :func:`analyze_page` runs them and the screenshot at the same time.
"""

from __future__ import annotations

import asyncio
import base64
import re
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin

from jupyter_agent.browser.policy import BrowserError

if TYPE_CHECKING:  # Playwright is optional: the HTML helpers here work without it.
    from collections.abc import Awaitable

    from playwright.async_api import CDPSession, Locator, Page

FORMATS = ("markdown", "text", "links")
#: What a reader does not see, dropped before a page becomes text (with elements marked hidden).
_UNSEEN = {"script", "style", "noscript", "template", "svg", "canvas", "iframe", "object", "select", "title"}
#: Markup that plain text leaves out (its content stays).
_MARKUP = ["a", "b", "strong", "em", "i", "code", "img", "h1", "h2", "h3", "h4", "h5", "h6"]


def html_to_text(html: str, base_url: str = "", fmt: str = "text") -> dict[str, Any]:
    """Convert HTML to ``{"title", "content", "links"}``; ``fmt`` is ``text``, ``markdown`` or ``links``.

    markdownify writes the markdown (ATX headings, tables as markdown tables); ``text`` is the same without
    link, emphasis and heading marks. Links are made absolute against ``base_url``. Callers cut the size.
    """
    from bs4 import BeautifulSoup  # imported at the first page read: a kernel need not load them
    from markdownify import MarkdownConverter

    soup = BeautifulSoup(html, "html.parser")
    title = " ".join(soup.title.get_text().split()) if soup.title else ""
    for element in soup.find_all(
        lambda tag: tag.name in _UNSEEN or tag.has_attr("hidden") or tag.get("aria-hidden") == "true"
    ):
        if not element.decomposed:  # not inside one already dropped
            element.decompose()
    links = []
    for anchor in soup.find_all("a", href=True):
        href = anchor["href"].strip()
        if not href or href.startswith(("javascript:", "#")):
            anchor.unwrap()  # its text stays, as text
            continue
        anchor["href"] = urljoin(base_url, href)
        links.append({"text": " ".join(anchor.get_text().split()), "url": anchor["href"]})
    for image in soup.find_all("img", src=True):
        if image["src"].startswith("data:"):  # its bytes would fill the page's text: its alt text stays
            image.replace_with(image.get("alt") or "")
        else:
            image["src"] = urljoin(base_url, image["src"])
    for cell in soup.find_all(["td", "th"]):  # a pipe inside a cell would split the markdown table's row
        for piece in cell.find_all(string=lambda s: "|" in s):
            piece.replace_with(piece.replace("|", "\\|"))
    soup.smooth()  # text pieces left side by side by the changes above become one (one space, not two)
    if fmt == "links":
        content = format_links(links)
    else:
        options: dict[str, Any] = {"strip": _MARKUP} if fmt == "text" else {}
        converter = MarkdownConverter(  # wrap, with no width: the source's line breaks become spaces
            heading_style="ATX", bullets="-", escape_misc=False, wrap=True, wrap_width=None, **options
        )
        content = converter.convert_soup(soup).strip()
    return {"title": title, "content": content, "links": links}


def format_links(links: list[dict[str, str]]) -> str:
    """One line per distinct link: ``- text: url``."""
    seen, lines = set(), []
    for link in links:
        if link["url"] not in seen:
            seen.add(link["url"])
            lines.append(f"- {link['text'] or '(no text)'}: {link['url']}")
    return "\n".join(lines)


# ---- in-page probes -------------------------------------------------------------------------------------

_METADATA_JS = """() => {
  const meta = (sel) => document.querySelector(sel)?.getAttribute('content') ?? null;
  const og = {};
  for (const m of document.querySelectorAll('meta[property^="og:" i]'))
    og[m.getAttribute('property').slice(3).toLowerCase()] = m.getAttribute('content');
  return {title: document.title, description: meta('meta[name="description" i]'),
    canonical: document.querySelector('link[rel~="canonical" i]')?.href ?? null,
    lang: document.documentElement.getAttribute('lang'), viewport: meta('meta[name="viewport" i]'),
    robots: meta('meta[name="robots" i]'), open_graph: og};
}"""

_PERFORMANCE_JS = """() => {
  const r = (x) => (x == null || x <= 0) ? null : Math.round(x);
  const nav = performance.getEntriesByType('navigation')[0];
  const paint = Object.fromEntries(performance.getEntriesByType('paint').map(e => [e.name, r(e.startTime)]));
  const res = performance.getEntriesByType('resource');
  const resBytes = res.reduce((n, e) => n + (e.transferSize || 0), 0);
  return {ttfb_ms: nav ? r(nav.responseStart) : null,
    dom_content_loaded_ms: nav ? r(nav.domContentLoadedEventEnd) : null,
    load_ms: nav ? r(nav.loadEventEnd) : null,
    first_paint_ms: paint['first-paint'] ?? null,
    first_contentful_paint_ms: paint['first-contentful-paint'] ?? null,
    document_transfer_bytes: nav ? nav.transferSize : null, resources: res.length,
    resources_transfer_bytes: resBytes, total_transfer_bytes: (nav ? nav.transferSize : 0) + resBytes};
}"""

_ACCESSIBILITY_JS = """(limit) => {
  const desc = (el) => {
    let s = el.tagName.toLowerCase() + (el.id ? '#' + el.id : '');
    const t = (el.innerText || el.getAttribute('src') || el.getAttribute('name') || '').trim();
    return t ? s + ' "' + t.slice(0, 60) + '"' : s;
  };
  const images = [...document.querySelectorAll('img:not([alt])')].map(desc);
  const named = (el) => (el.getAttribute('aria-label') || '').trim() || el.getAttribute('aria-labelledby')
    || [...(el.labels || [])].some(l => l.textContent.trim()) || (el.getAttribute('title') || '').trim();
  const controls = [...document.querySelectorAll('input:not([type=hidden i]):not([type=submit i])'
    + ':not([type=button i]):not([type=reset i]):not([type=image i]), select, textarea')]
    .filter(el => !named(el)).map(desc);
  const headings = [], skips = [];
  let prev = 0;
  for (const h of document.querySelectorAll('h1, h2, h3, h4, h5, h6')) {
    const level = +h.tagName[1];
    headings.push(level);
    if (prev && level > prev + 1) skips.push(`h${prev} -> h${level}: ${desc(h)}`);
    prev = level;
  }
  const rgb = (c) => { const m = /^rgba?\\(([^)]+)\\)$/.exec(c); if (!m) return null;
    const v = m[1].split(/[\\s,\\/]+/).filter(Boolean).map(Number); return v.length === 3 ? [...v, 1] : v; };
  const lum = (c) => { const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]); };
  const background = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const s = getComputedStyle(e);
      if (s.backgroundImage !== 'none') return null;
      const c = rgb(s.backgroundColor);
      if (!c) return null;
      if (c[3] >= 1) return c;
      if (c[3] > 0) return null;  // translucent layers: too costly to blend here
    }
    return [255, 255, 255, 1];
  };
  const contrast = [], seen = new Set();
  const walker = document.createTreeWalker(document.body || document.documentElement, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(), count = 0; n && count < 400; n = walker.nextNode()) {
    const el = n.parentElement;
    if (!el || seen.has(el) || !n.textContent.trim() || !el.checkVisibility?.()) continue;
    seen.add(el); count++;
    const s = getComputedStyle(el), fg = rgb(s.color), bg = background(el);
    if (!fg || !bg || fg[3] < 1) continue;
    const [a, b] = [lum(fg), lum(bg)], ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    const size = parseFloat(s.fontSize), large = size >= 24 || (size >= 18.66 && +s.fontWeight >= 700);
    if (ratio < (large ? 3 : 4.5)) contrast.push(`${desc(el)}: ratio ${ratio.toFixed(2)} (${s.color} on rgb(${bg.slice(0, 3).join(', ')}))`);
  }
  const cut = (xs) => ({count: xs.length, items: xs.slice(0, limit)});
  return {images_without_alt: cut(images), unlabeled_controls: cut(controls), heading_skips: cut(skips),
    low_contrast_text: cut(contrast), missing_h1: !headings.includes(1), missing_lang: !document.documentElement.lang};
}"""

_LINKS_JS = """() => [...document.links].map(a => ({text: (a.innerText || a.getAttribute('aria-label')
  || a.title || '').replace(/\\s+/g, ' ').trim(), url: a.href})).filter(l => /^https?:/.test(l.url))"""

_TEXT_JS = """(n) => { const t = document.body ? document.body.innerText : '';
  return {title: document.title, text: t.slice(0, n), length: t.length}; }"""


async def page_text(page: Page, limit: int) -> dict[str, Any]:
    """``{title, text, length}``: the visible text (``innerText``) cut to ``limit`` characters, in one call."""
    return await page.evaluate(_TEXT_JS, limit)


async def extract_page(page: Page, fmt: str, limit: int) -> dict[str, Any]:
    """The current page as ``{"url", "title", "format", "content", "length"}``."""
    if fmt == "text":
        text = await page_text(page, limit)
        title, content, length = text["title"], text["text"], text["length"]
    else:
        if fmt == "links":
            content = format_links(await page.evaluate(_LINKS_JS))
        else:  # parsing a big page takes a while: keep it off the event loop
            content = (await asyncio.to_thread(html_to_text, await page.content(), page.url, "markdown"))[
                "content"
            ]
        title, length = await page.title(), len(content)
    return {"url": page.url, "title": title, "format": fmt, "content": content, "length": length}


async def capture_png(
    page: Page, cdp: CDPSession | None, *, full_page: bool = False, timeout: float = 10
) -> str:
    """A PNG of the page, base64. The viewport goes straight through CDP with Chromium's fast encoder (about
    half the time of ``page.screenshot``); a full page, or no CDP session, uses Playwright's."""
    if cdp is None or full_page:
        return base64.b64encode(await page.screenshot(type="png", full_page=full_page)).decode("ascii")
    try:
        shot = await asyncio.wait_for(
            cdp.send("Page.captureScreenshot", {"format": "png", "optimizeForSpeed": True}), timeout
        )
    except asyncio.TimeoutError:  # noqa: UP041 - distinct on Python 3.10
        raise BrowserError(f"the screenshot took longer than {timeout:g} s") from None
    return shot["data"]


async def analyze_page(page: Page, screenshot: Awaitable[str], *, findings_limit: int = 20) -> dict[str, Any]:
    """Screenshot (base64 PNG), metadata, performance and accessibility findings, gathered at once."""
    png, metadata, performance, accessibility = await asyncio.gather(
        screenshot,
        page.evaluate(_METADATA_JS),
        page.evaluate(_PERFORMANCE_JS),
        page.evaluate(_ACCESSIBILITY_JS, findings_limit),
    )
    return {
        "url": page.url,
        "title": metadata["title"],
        "screenshot": png,
        "metadata": metadata,
        "performance": performance,
        "accessibility": accessibility,
    }


# ---- loading and acting -----------------------------------------------------------------------------------

_REF = re.compile(r"(f\d+)?e\d+")  # aria-snapshot refs: e12, or f3e12 inside a frame
_DIRECTIONS = {"down": (0, 1), "up": (0, -1), "right": (1, 0), "left": (-1, 0)}
_SCROLL_STATE = """() => ({x: Math.round(scrollX), y: Math.round(scrollY),
  height: document.documentElement.scrollHeight, viewport: innerHeight})"""


async def load_page(
    page: Page, url: str, *, timeout: float, load_grace: float, excerpt_chars: int
) -> tuple[dict[str, Any], dict[str, str]]:
    """Go to ``url``: wait for the DOM, then at most ``load_grace`` s for the load event (a page whose
    trackers never finish still loads). Returns the result (url, title, status, excerpt...) and headers."""
    from playwright.async_api import TimeoutError as PlaywrightTimeout

    started = time.perf_counter()
    response = await page.goto(url, wait_until="domcontentloaded", timeout=timeout * 1000)
    loading = False
    try:
        remaining = max(timeout - (time.perf_counter() - started), 0.1)
        await page.wait_for_load_state("load", timeout=min(load_grace, remaining) * 1000)
    except PlaywrightTimeout:
        loading = True
    if response is None:  # same-document navigations have no response
        headers, text = {}, await page_text(page, excerpt_chars)
    else:
        headers, text = await asyncio.gather(response.all_headers(), page_text(page, excerpt_chars))
    status = response.status if response else None
    result = {"url": page.url, "requested_url": url, "title": text["title"], "status": status}
    result.update(excerpt=text["text"], length=text["length"], loading=loading, cached=False)
    return result, headers


async def locate(page: Page, ref: str) -> Locator:
    """The element a snapshot ref names, or a :class:`BrowserError` that tells the model what to do."""
    if not isinstance(ref, str) or not _REF.fullmatch(ref.strip()):
        raise BrowserError(f"{ref!r} is not an element ref; use a [ref=...] value from browser_snapshot")
    locator = page.locator(f"aria-ref={ref.strip()}")
    if await locator.count() == 0:
        raise BrowserError(
            f"no element with ref {ref} on the current page; refs change when the page does, "
            "so take a new browser_snapshot"
        )
    return locator


_OPENS_NEW_TAB = """el => { const a = el.closest('a[href], area[href]'), f = el.form || el.closest('form');
  const t = ((a ? a.target : f?.target) || '').toLowerCase();
  return t !== '' && !['_self', '_parent', '_top'].includes(t); }"""


async def opens_new_tab(element: Locator) -> bool:
    """Whether clicking ``element`` follows a link or submits a form into another tab (``target=_blank``)."""
    return bool(await element.evaluate(_OPENS_NEW_TAB))


async def scroll_page(page: Page, direction: str, amount: int | None, ref: str | None) -> dict[str, Any]:
    """Scroll the window (or the element ``ref``) by ``amount`` px, default 80% of the viewport; with a ref
    and no amount, scroll that element into view. Returns the window's scroll position."""
    if direction not in _DIRECTIONS:
        raise BrowserError(f"direction must be one of {', '.join(_DIRECTIONS)}, not {direction!r}")
    if amount is not None and (isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0):
        raise BrowserError("amount must be a positive whole number of pixels")
    dx, dy = _DIRECTIONS[direction]
    size = page.viewport_size or {"width": 1280, "height": 800}
    step = amount or int((size["height"] if dy else size["width"]) * 0.8)
    if ref is not None and amount is None:
        await (await locate(page, ref)).scroll_into_view_if_needed()
    elif ref is not None:
        await (await locate(page, ref)).evaluate("(el, [x, y]) => el.scrollBy(x, y)", [dx * step, dy * step])
    else:
        await page.evaluate("([x, y]) => window.scrollBy(x, y)", [dx * step, dy * step])
    return {"url": page.url, **await page.evaluate(_SCROLL_STATE)}
