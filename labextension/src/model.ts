/**
 * ChatModel: the conversation of one session, built by folding its events.
 * No React and no server calls: feed it events, read `state`, listen to `changed`.
 */
import { IDisposable } from '@lumino/disposable';
import { ISignal, Signal } from '@lumino/signaling';

import { ConversationState, EMPTY_CONVERSATION, foldEvents, ToolCard } from './conversation';
import { AgentEvent } from './protocol';
import { applyReview, ReviewOutcome } from './review';

export class ChatModel implements IDisposable {
  /** The current view-model; a new object after every change (safe to compare by identity). */
  get state(): ConversationState {
    return this._state;
  }

  get changed(): ISignal<this, ConversationState> {
    return this._changed;
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  /** Tool cards, in order of appearance. */
  get toolCards(): ToolCard[] {
    return this._state.items.flatMap(item => (item.kind === 'tool' ? [item.card] : []));
  }

  /** Number of tool calls executing right now. */
  get runningTools(): number {
    return this.toolCards.filter(card => card.status === 'running').length;
  }

  /** Fold events in order; events already folded (by seq) are ignored. */
  apply(events: readonly AgentEvent[]): void {
    const next = foldEvents(this._state, events);
    if (next !== this._state) {
      this._state = next;
      this._changed.emit(next);
    }
  }

  /** Show the outcome of a review call on `turn` at once (its `turn_review` event, folded later, says the same). */
  applyReview(turn: string, outcome: ReviewOutcome): void {
    const review = this._state.reviews[turn];
    if (review) {
      this._state = { ...this._state, reviews: { ...this._state.reviews, [turn]: applyReview(review, outcome) } };
      this._changed.emit(this._state);
    }
  }

  /**
   * Show no turn as running although the log has not ended it: the server says
   * nothing runs (a turn cut off by a server restart). Later events still fold normally.
   */
  markIdle(): void {
    const s = this._state;
    if (s.running) {
      const items = s.items.map(i => (i.kind === 'message' && i.streaming ? { ...i, streaming: false } : i));
      this._state = { ...s, items, running: false, turn: null, draft: null, approvals: [] };
      this._changed.emit(this._state);
    }
  }

  /** Start over (e.g. another session was opened). */
  reset(): void {
    if (this._state !== EMPTY_CONVERSATION) {
      this._state = EMPTY_CONVERSATION;
      this._changed.emit(this._state);
    }
  }

  dispose(): void {
    if (!this._disposed) {
      this._disposed = true;
      Signal.clearData(this);
    }
  }

  private _state: ConversationState = EMPTY_CONVERSATION;
  private _changed = new Signal<this, ConversationState>(this);
  private _disposed = false;
}
