/**
 * Ordering of a session's event stream, kept free of sockets so it can be unit tested.
 *
 * The server numbers events 1, 2, 3... per session. Events can arrive twice (a
 * reconnect replays from `after=`, a gap fill overlaps live events) or with a hole
 * (a frame lost between the two). The sequencer hands events on exactly once and in
 * order, and says when a hole must be filled from `GET .../events?after=`.
 */
import { AgentEvent } from './protocol';

/** Where one event stands relative to the last one handed on. */
export type SeqClass = 'next' | 'duplicate' | 'gap';

/** Classify `seq` against the last delivered sequence number. */
export function classifySeq(lastSeq: number, seq: number): SeqClass {
  if (seq <= lastSeq) {
    return 'duplicate';
  }
  return seq === lastSeq + 1 ? 'next' : 'gap';
}

/** Result of offering events to the sequencer. */
export interface SequencerOutput {
  /** Events to deliver now, in order, each exactly once. */
  ready: AgentEvent[];
  /**
   * When not null, events after this seq are missing and should be fetched
   * (`GET .../events?after=missingAfter`). Reported once per hole.
   */
  missingAfter: number | null;
}

export class EventSequencer {
  constructor(lastSeq = 0) {
    this._lastSeq = lastSeq;
  }

  /** Sequence number of the last event handed on. */
  get lastSeq(): number {
    return this._lastSeq;
  }

  /** True while events are held back behind a hole. */
  get hasGap(): boolean {
    return this._held.size > 0;
  }

  /** Number of events held back behind a hole. */
  get heldCount(): number {
    return this._held.size;
  }

  /** Forget everything and start again after `lastSeq` (e.g. when switching sessions). */
  reset(lastSeq = 0): void {
    this._lastSeq = lastSeq;
    this._held.clear();
    this._reportedHole = null;
  }

  /** Offer one event (live from the socket). */
  push(event: AgentEvent): SequencerOutput {
    return this.pushAll([event]);
  }

  /** Offer several events, in any order, possibly overlapping what was already seen. */
  pushAll(events: AgentEvent[]): SequencerOutput {
    for (const event of events) {
      if (classifySeq(this._lastSeq, event.seq) !== 'duplicate') {
        this._held.set(event.seq, event);
      }
    }
    const ready: AgentEvent[] = [];
    let next = this._held.get(this._lastSeq + 1);
    while (next) {
      this._held.delete(next.seq);
      ready.push(next);
      this._lastSeq = next.seq;
      next = this._held.get(this._lastSeq + 1);
    }
    let missingAfter: number | null = null;
    if (this._held.size > 0) {
      if (this._reportedHole !== this._lastSeq) {
        this._reportedHole = this._lastSeq;
        missingAfter = this._lastSeq;
      }
    } else {
      this._reportedHole = null;
    }
    return { ready, missingAfter };
  }

  private _lastSeq: number;
  private _held = new Map<number, AgentEvent>();
  private _reportedHole: number | null = null;
}

/** Delay before reconnect attempt `attempt` (0-based): exponential, capped, with jitter. */
export function backoffDelay(
  attempt: number,
  options: { baseMs?: number; maxMs?: number; random?: () => number } = {}
): number {
  const base = options.baseMs ?? 500;
  const max = options.maxMs ?? 15000;
  const random = options.random ?? Math.random;
  const exp = Math.min(max, base * 2 ** Math.max(0, attempt));
  // Full jitter in [exp/2, exp] so many clients do not reconnect in lockstep.
  return Math.round(exp / 2 + (random() * exp) / 2);
}
