/**
 * Pure helpers of the browser panel: where a click on the picture lands on the page,
 * what a typed address means, and which key presses become which input.
 */

/** A point in the page's viewport, in CSS pixels. */
export interface PagePoint {
  x: number;
  y: number;
}

/** The displayed element's box (as from getBoundingClientRect). */
export interface Box {
  left: number;
  top: number;
  width: number;
  height: number;
}

/**
 * Map a point on the displayed picture (client coordinates) to page coordinates.
 * The picture is drawn with `object-fit: contain`: scaled to fit its box, centred,
 * with bands on two sides. Null when the point is in a band or nothing is shown.
 */
export function toPagePoint(
  clientX: number,
  clientY: number,
  box: Box,
  pageWidth: number,
  pageHeight: number
): PagePoint | null {
  if (pageWidth <= 0 || pageHeight <= 0 || box.width <= 0 || box.height <= 0) {
    return null;
  }
  const scale = Math.min(box.width / pageWidth, box.height / pageHeight);
  const left = box.left + (box.width - pageWidth * scale) / 2;
  const top = box.top + (box.height - pageHeight * scale) / 2;
  const x = (clientX - left) / scale;
  const y = (clientY - top) / scale;
  if (x < 0 || y < 0 || x > pageWidth || y > pageHeight) {
    return null;
  }
  return { x: Math.round(x * 10) / 10, y: Math.round(y * 10) / 10 };
}

/**
 * What a person typed in the address bar, as a URL to open: kept when it has a
 * scheme, `http://` for local hosts, `https://` otherwise. Empty input gives null.
 */
export function normalizeUrl(input: string): string | null {
  const text = input.trim();
  if (!text) {
    return null;
  }
  if (/^[a-z][a-z0-9+.-]*:/i.test(text) && !/^(localhost|[\w.-]+):\d+/i.test(text)) {
    return text;
  }
  const local = /^(localhost|127\.\d+\.\d+\.\d+|\[::1\])(:\d+)?(\/|$)/i.test(text);
  return `${local ? 'http' : 'https'}://${text}`;
}

/** Keys sent by name (Playwright's names are the DOM's `KeyboardEvent.key`). */
const NAMED_KEYS = new Set([
  'Enter',
  'Tab',
  'Backspace',
  'Delete',
  'Escape',
  'ArrowUp',
  'ArrowDown',
  'ArrowLeft',
  'ArrowRight',
  'Home',
  'End',
  'PageUp',
  'PageDown',
  'Insert',
  'F1',
  'F2',
  'F3',
  'F4',
  'F5',
  'F6',
  'F7',
  'F8',
  'F9',
  'F10',
  'F11',
  'F12'
]);

/** The parts of a KeyboardEvent that decide what it sends. */
export interface KeyLike {
  key: string;
  ctrlKey: boolean;
  metaKey: boolean;
  altKey: boolean;
  shiftKey: boolean;
}

/**
 * A key press as input for the page: a printable character is typed, a named key
 * or a shortcut (`Control+a`) is pressed. Null for lone modifiers and dead keys.
 */
export function keyInput(event: KeyLike): { action: 'type'; text: string } | { action: 'key'; key: string } | null {
  const { key } = event;
  const shortcut = event.ctrlKey || event.metaKey || event.altKey;
  if (key.length === 1 && !shortcut) {
    return { action: 'type', text: key };
  }
  if (key.length !== 1 && !NAMED_KEYS.has(key)) {
    return null;
  }
  const modifiers = [
    event.ctrlKey ? 'Control' : '',
    event.metaKey ? 'Meta' : '',
    event.altKey ? 'Alt' : '',
    event.shiftKey && key.length !== 1 ? 'Shift' : ''
  ].filter(Boolean);
  return { action: 'key', key: [...modifiers, key].join('+') };
}
