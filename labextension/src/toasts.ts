/**
 * Keeps JupyterLab's notification toasts off the chat panel's input.
 *
 * Lab shows its toasts (news, updates, errors of any extension) in a fixed box at the bottom right of the
 * window, which is where the chat panel's input is when the panel sits in the right sidebar: a click on
 * "Message the agent" then lands on a toast. While the panel is shown there, the box moves to the panel's
 * left, or, when the panel leaves no room for it, up above the input. base.css reads the offsets.
 */

/** Set on `document.body` while the toasts are moved; base.css keys the move on it. */
export const TOAST_ATTRIBUTE = 'data-jp-agent-chat-toasts';
/** Room (px) a toast needs beside the panel: Lab's toasts are 25em wide. */
const TOAST_ROOM = 420;
/** Gap (px) between a moved toast and the panel. */
const GAP = 8;

/** Where the toast box goes for a panel at `panel` with its input at `input` (null: leave it be). */
export function toastOffsets(
  panel: DOMRect,
  input: DOMRect | null,
  viewport: { width: number; height: number }
): { right: number; bottom: number } | null {
  const shown = panel.width > 0 && panel.height > 0;
  const atRightEdge = viewport.width - panel.right < TOAST_ROOM; // the toasts' box reaches into the panel
  if (!shown || !atRightEdge) {
    return null;
  }
  if (panel.left >= TOAST_ROOM + GAP) {
    return { right: Math.ceil(viewport.width - panel.left + GAP), bottom: 0 };
  }
  const top = input ? input.top : panel.bottom;
  return { right: 0, bottom: Math.ceil(viewport.height - top + GAP) };
}

/** Keep the toasts clear of `panel` (and of its `inputSelector` element) until the returned function runs. */
export function keepToastsClear(panel: HTMLElement, inputSelector: string): () => void {
  const body = document.body;
  const update = () => {
    const input = panel.querySelector(inputSelector);
    const offsets = toastOffsets(panel.getBoundingClientRect(), input ? input.getBoundingClientRect() : null, {
      width: window.innerWidth,
      height: window.innerHeight
    });
    if (!offsets) {
      clear();
      return;
    }
    body.setAttribute(TOAST_ATTRIBUTE, offsets.right ? 'beside' : 'above');
    body.style.setProperty('--jp-AgentChat-toastRight', `${offsets.right}px`);
    body.style.setProperty('--jp-AgentChat-toastBottom', `${offsets.bottom}px`);
  };
  const clear = () => {
    body.removeAttribute(TOAST_ATTRIBUTE);
    body.style.removeProperty('--jp-AgentChat-toastRight');
    body.style.removeProperty('--jp-AgentChat-toastBottom');
  };
  const observer = typeof ResizeObserver === 'undefined' ? null : new ResizeObserver(update);
  observer?.observe(panel);
  const input = panel.querySelector(inputSelector);
  if (input) {
    observer?.observe(input);
  }
  window.addEventListener('resize', update);
  update();
  return () => {
    observer?.disconnect();
    window.removeEventListener('resize', update);
    clear();
  };
}
