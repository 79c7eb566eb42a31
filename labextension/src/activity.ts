/**
 * The running turn's activity as people read it: its text and how long it has been at it
 * ("reading your request (prompt 1,870 tokens, 45%) · 12 s"). No React: the chat panel's line
 * and the status bar item both use it, each with its own one-second timer.
 */
import { Activity } from './viewModel';

/** When each activity was first shown here (client clock, ms): the seconds since then are counted live. */
const firstShown = new WeakMap<Activity, number>();

/**
 * Seconds this phase has lasted: what the server had measured when it sent the event, plus the time since
 * it was first shown here. Counting from the event, not from the two machines' clocks, keeps a clock that
 * is off out of it; a late joiner's count starts at the last event (the next one sets it right).
 */
export function elapsedSeconds(activity: Activity, now: number = Date.now()): number {
  let shown = firstShown.get(activity);
  if (shown === undefined) {
    shown = now;
    firstShown.set(activity, now);
  }
  return Math.max(0, activity.ts - activity.started) + Math.max(0, now - shown) / 1000;
}

/** "8 s", "1 min 05 s", "1 h 02 min". */
export function formatElapsed(seconds: number): string {
  const s = Math.floor(Math.max(0, seconds));
  if (s < 60) {
    return `${s} s`;
  }
  if (s < 3600) {
    return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
  }
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')} min`;
}

/** The activity with its time: "reading your request (prompt 1,870 tokens) · 12 s". */
export function activityLabel(activity: Activity, now: number = Date.now()): string {
  return `${activity.text} · ${formatElapsed(elapsedSeconds(activity, now))}`;
}
