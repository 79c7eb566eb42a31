/**
 * `@` mentions in the chat input: which word is being completed, the options it offers (the notebook's
 * kernel variables and its cells), inserting the chosen one, and the attachments a prompt carries.
 * Pure functions: the composer renders them, the chat loads the options.
 */
import { Attachment, VariableSummary, VariablesAnswer } from './protocol';

/** A cell of the notebook, as the `@` menu offers it. */
export interface CellInfo {
  id: string;
  /** 0-based position in the notebook. */
  index: number;
  cellType: string;
  source: string;
}

/** One entry of the `@` menu. */
export interface MentionOption {
  kind: 'variable' | 'cell';
  /** What follows `@` in the text: the variable's name, or `cell-<position>`. */
  token: string;
  /** The variable's name or the cell's id: what the server looks up. */
  key: string;
  /** A line to tell options apart: type and size, or the cell's first line. */
  detail: string;
}

/** The `@word` being typed: where it starts (the `@`), where it ends, and the word so far. */
export interface MentionQuery {
  start: number;
  end: number;
  query: string;
}

const WORD = /[\w.-]/;
const MAX_OPTIONS = 12;

/** The mention the caret is in, if any: an `@` at the start of a word, then word characters up to the caret. */
export function mentionQuery(text: string, caret: number): MentionQuery | null {
  let at = caret;
  while (at > 0 && WORD.test(text[at - 1])) {
    at--;
  }
  if (at === 0 || text[at - 1] !== '@') {
    return null;
  }
  const before = at >= 2 ? text[at - 2] : '';
  if (before && !/[\s([{'"]/.test(before)) {
    return null; // an e-mail address or a decorator-like word: not a mention
  }
  return { start: at - 1, end: caret, query: text.slice(at, caret) };
}

/** The kernel's variables as options (classes and functions after the data). */
export function variableOptions(answer: VariablesAnswer | null): MentionOption[] {
  const vars = answer?.variables ?? [];
  const data = vars.filter(v => v.type !== 'class' && v.type !== 'function');
  const code = vars.filter(v => v.type === 'class' || v.type === 'function');
  return [...data, ...code].map(v => ({ kind: 'variable', token: v.name, key: v.name, detail: variableDetail(v) }));
}

export function variableDetail(v: VariableSummary): string {
  return [v.type, v.size].filter(Boolean).join(' · ');
}

/** The notebook's cells as options: `@cell-3` for the third, described by its first non-empty line. */
export function cellOptions(cells: CellInfo[]): MentionOption[] {
  return cells.map(cell => {
    const line = cell.source.split('\n').find(l => l.trim()) ?? '';
    const first = line.trim().length > 60 ? `${line.trim().slice(0, 59)}…` : line.trim();
    return {
      kind: 'cell',
      token: `cell-${cell.index + 1}`,
      key: cell.id,
      detail: first || `(empty ${cell.cellType} cell)`
    };
  });
}

/** The options matching `query`: names starting with it first, then names containing it; at most `max`. */
export function filterOptions(options: MentionOption[], query: string, max = MAX_OPTIONS): MentionOption[] {
  const q = query.toLowerCase();
  const starts = options.filter(o => o.token.toLowerCase().startsWith(q));
  const contains = options.filter(
    o => !o.token.toLowerCase().startsWith(q) && (o.token.toLowerCase().includes(q) || (q.length > 1 && o.detail.toLowerCase().includes(q)))
  );
  return [...starts, ...contains].slice(0, max);
}

/** `text` with the mention at `query` replaced by the option's `@token ` and where the caret goes. */
export function insertMention(text: string, query: MentionQuery, option: MentionOption): { text: string; caret: number } {
  const inserted = `@${option.token}`;
  const rest = text.slice(query.end);
  const space = rest.startsWith(' ') ? '' : ' ';
  return { text: text.slice(0, query.start) + inserted + space + rest, caret: query.start + inserted.length + 1 };
}

/** The attachments of a prompt: the chosen mentions whose `@token` is still in its text, once each. */
export function attachmentsFor(text: string, chosen: MentionOption[]): Attachment[] {
  const seen = new Set<string>();
  const out: Attachment[] = [];
  for (const option of chosen) {
    const id = `${option.kind}:${option.key}`;
    if (seen.has(id) || !hasToken(text, option.token)) {
      continue;
    }
    seen.add(id);
    out.push(option.kind === 'variable' ? { kind: 'variable', name: option.key } : { kind: 'cell', id: option.key });
  }
  return out;
}

function hasToken(text: string, token: string): boolean {
  const escaped = token.replace(/[.*+?^${}()|[\]\\-]/g, '\\$&');
  return new RegExp(`(^|[^\\w.-])@${escaped}(?![\\w-])`).test(text);
}
