/** Small formatters shared by the components. */

export function formatDuration(ms: number | undefined | null): string {
  if (ms === undefined || ms === null || !isFinite(ms)) {
    return '';
  }
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(ms < 10000 ? 1 : 0)} s`;
}

export function formatCost(usd: number | null): string {
  if (usd === null) {
    return 'cost unknown';
  }
  return usd < 0.01 ? `$${usd.toFixed(4)}` : `$${usd.toFixed(2)}`;
}

export function formatCount(n: number): string {
  return n.toLocaleString('en-US');
}

/** Arguments as readable JSON (or the raw text when the model's JSON was invalid). */
export function formatArguments(args: unknown): string {
  if (args === undefined) {
    return '';
  }
  if (typeof args === 'string') {
    return args;
  }
  try {
    return JSON.stringify(args, null, 2);
  } catch {
    return String(args);
  }
}

/** The last part of a path, for compact labels. */
export function baseName(path: string): string {
  return path.split('/').pop() || path;
}
