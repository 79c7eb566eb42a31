/**
 * Registry of React renderers for tool call cards, so each feature (notebook,
 * browser, planner...) shows its own tools' results its own way.
 */
import type { ComponentType } from 'react';
import { Token } from '@lumino/coreutils';
import { DisposableDelegate, IDisposable } from '@lumino/disposable';
import { ISignal, Signal } from '@lumino/signaling';

import { ToolCard } from './conversation';

/** What a renderer receives: everything known about the call so far. */
export interface ToolRendererProps {
  card: ToolCard;
}

/** Renders the body of a tool card (the card's frame, name and status are drawn by the panel). */
export type ToolRenderer = ComponentType<ToolRendererProps>;

export interface IToolRendererRegistry {
  /**
   * Use `renderer` for the tool `toolNameOrPrefix`, or for every tool whose name
   * starts with it (a trailing `*` is allowed and ignored). An exact name beats a
   * prefix and a longer prefix beats a shorter one; a later registration of the
   * same key replaces an earlier one until it is disposed.
   */
  register(toolNameOrPrefix: string, renderer: ToolRenderer): IDisposable;
  /** The renderer for a tool: its own, else the default one. */
  get(toolName: string): ToolRenderer;
  readonly defaultRenderer: ToolRenderer;
  /** Emitted when renderers are added or removed. */
  readonly changed: ISignal<IToolRendererRegistry, void>;
}

export const IToolRendererRegistry = new Token<IToolRendererRegistry>(
  'jupyter-agent:IToolRendererRegistry',
  'Renderers for tool call cards in the agent chat, by tool name or name prefix.'
);

export class ToolRendererRegistry implements IToolRendererRegistry {
  constructor(readonly defaultRenderer: ToolRenderer) {}

  get changed(): ISignal<this, void> {
    return this._changed;
  }

  register(toolNameOrPrefix: string, renderer: ToolRenderer): IDisposable {
    const key = toolNameOrPrefix.replace(/\*+$/, '');
    if (!key) {
      throw new Error('A tool renderer needs a tool name or prefix.');
    }
    const entry = { key, renderer };
    this._entries.push(entry);
    this._changed.emit();
    return new DisposableDelegate(() => {
      const index = this._entries.indexOf(entry);
      if (index >= 0) {
        this._entries.splice(index, 1);
        this._changed.emit();
      }
    });
  }

  get(toolName: string): ToolRenderer {
    let best: { key: string; renderer: ToolRenderer } | null = null;
    for (const entry of this._entries) {
      const matches = toolName === entry.key || toolName.startsWith(entry.key);
      // `>=` so the latest registration of an equally good key wins.
      if (matches && (!best || rank(toolName, entry.key) >= rank(toolName, best.key))) {
        best = entry;
      }
    }
    return best ? best.renderer : this.defaultRenderer;
  }

  private _entries: { key: string; renderer: ToolRenderer }[] = [];
  private _changed = new Signal<this, void>(this);
}

/** Exact names first, then the longest prefix. */
function rank(toolName: string, key: string): number {
  return toolName === key ? Number.MAX_SAFE_INTEGER : key.length;
}
