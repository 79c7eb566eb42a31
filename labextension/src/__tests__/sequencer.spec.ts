import { backoffDelay, classifySeq, EventSequencer } from '../sequencer';
import { eventLog } from './events';

function events(...seqs: number[]) {
  const e = eventLog();
  return seqs.map(seq => e('token', { seq, text: String(seq) }));
}
const seqsOf = (list: { seq: number }[]) => list.map(e => e.seq);

describe('classifySeq', () => {
  it('should tell the next event from a duplicate and a gap', () => {
    expect(classifySeq(4, 5)).toBe('next');
    expect(classifySeq(4, 4)).toBe('duplicate');
    expect(classifySeq(4, 2)).toBe('duplicate');
    expect(classifySeq(4, 7)).toBe('gap');
    expect(classifySeq(0, 1)).toBe('next');
  });
});

describe('EventSequencer', () => {
  it('should deliver events in order, once each', () => {
    const s = new EventSequencer();
    expect(seqsOf(s.pushAll(events(1, 2)).ready)).toEqual([1, 2]);
    expect(s.pushAll(events(1, 2)).ready).toEqual([]);
    expect(seqsOf(s.push(events(3)[0]).ready)).toEqual([3]);
    expect(s.lastSeq).toBe(3);
  });

  it('should start after a given seq, as when reconnecting with after=N', () => {
    const s = new EventSequencer(10);
    expect(s.pushAll(events(9, 10)).ready).toEqual([]);
    expect(seqsOf(s.pushAll(events(11)).ready)).toEqual([11]);
  });

  it('should hold events behind a gap and report the hole once', () => {
    const s = new EventSequencer();
    s.pushAll(events(1, 2));
    const first = s.pushAll(events(5));
    expect(first).toEqual({ ready: [], missingAfter: 2 });
    expect(s.hasGap).toBe(true);
    expect(s.pushAll(events(6)).missingAfter).toBeNull(); // same hole, already reported
    expect(s.heldCount).toBe(2);
  });

  it('should release held events once the gap is filled, even with overlapping fills', () => {
    const s = new EventSequencer();
    s.pushAll(events(1, 2));
    s.pushAll(events(5, 6));
    const out = s.pushAll(events(2, 3, 4, 5)); // REST fill overlapping both sides
    expect(seqsOf(out.ready)).toEqual([3, 4, 5, 6]);
    expect(out.missingAfter).toBeNull();
    expect(s.hasGap).toBe(false);
    expect(s.lastSeq).toBe(6);
  });

  it('should report a new hole after a partial fill', () => {
    const s = new EventSequencer();
    s.pushAll(events(1));
    s.pushAll(events(6));
    const out = s.pushAll(events(2, 3));
    expect(seqsOf(out.ready)).toEqual([2, 3]);
    expect(out.missingAfter).toBe(3);
  });

  it('should accept out-of-order arrivals', () => {
    const s = new EventSequencer();
    expect(seqsOf(s.pushAll(events(3, 1, 2)).ready)).toEqual([1, 2, 3]);
  });

  it('should forget held events on reset', () => {
    const s = new EventSequencer();
    s.pushAll(events(1, 5));
    s.reset(1);
    expect(s.hasGap).toBe(false);
    expect(s.lastSeq).toBe(1);
    expect(s.pushAll(events(5)).missingAfter).toBe(1);
  });
});

describe('backoffDelay', () => {
  it('should grow exponentially with jitter and stay under the cap', () => {
    const low = () => 0;
    const high = () => 1;
    expect(backoffDelay(0, { random: low })).toBe(250);
    expect(backoffDelay(0, { random: high })).toBe(500);
    expect(backoffDelay(3, { random: high })).toBe(4000);
    expect(backoffDelay(30, { random: high })).toBe(15000);
    expect(backoffDelay(30, { random: low, maxMs: 1000 })).toBe(500);
  });
});
