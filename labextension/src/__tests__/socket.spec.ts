import { ReconnectingSocket } from '../socket';

/** Stands in for the browser's WebSocket; a test opens, feeds and drops it by hand. */
class FakeSocket {
  static readonly OPEN = 1;
  static made: FakeSocket[] = [];

  constructor(readonly url: string) {
    FakeSocket.made.push(this);
  }

  readyState = 0;
  sent: string[] = [];
  closed = false;
  onopen: (() => void) | null = null;
  onmessage: ((msg: { data: unknown }) => void) | null = null;
  onclose: (() => void) | null = null;

  send(data: string): void {
    this.sent.push(data);
  }
  close(): void {
    this.closed = true;
    this.readyState = 3;
  }

  accept(): void {
    this.readyState = FakeSocket.OPEN;
    this.onopen?.();
  }
  deliver(data: unknown): void {
    this.onmessage?.({ data });
  }
  lose(): void {
    this.readyState = 3;
    this.onclose?.();
  }
}

const latest = (): FakeSocket => FakeSocket.made[FakeSocket.made.length - 1];

/** A socket whose n-th reconnect attempt waits 100 * 2^n ms, with the drops it reported. */
function connect(url: () => string = () => 'ws://agent/ws'): { socket: ReconnectingSocket; drops: number[] } {
  const socket = new ReconnectingSocket({
    url,
    WebSocket: FakeSocket as unknown as typeof WebSocket,
    delay: attempt => 100 * 2 ** attempt
  });
  const drops: number[] = [];
  socket.dropped.connect((_, failed) => drops.push(failed));
  return { socket, drops };
}

beforeEach(() => {
  jest.useFakeTimers();
  FakeSocket.made = [];
});

afterEach(() => {
  jest.useRealTimers();
});

describe('ReconnectingSocket', () => {
  it('should wait longer after each failed attempt, and start over once connected', () => {
    const { socket, drops } = connect();
    expect(FakeSocket.made).toHaveLength(1);

    for (const wait of [100, 200, 400]) {
      latest().lose();
      jest.advanceTimersByTime(wait - 1);
      const before = FakeSocket.made.length;
      jest.advanceTimersByTime(1);
      expect(FakeSocket.made).toHaveLength(before + 1);
    }
    expect(drops).toEqual([0, 1, 2]);

    latest().accept();
    latest().lose();
    expect(drops).toEqual([0, 1, 2, 0]);
    jest.advanceTimersByTime(100);
    expect(FakeSocket.made).toHaveLength(5);
    socket.dispose();
  });

  it('should ask for the address before every attempt', () => {
    let seq = 0;
    const { socket } = connect(() => `ws://agent/ws?after=${seq}`);
    seq = 7;
    latest().lose();
    jest.advanceTimersByTime(100);
    expect(FakeSocket.made.map(s => s.url)).toEqual(['ws://agent/ws?after=0', 'ws://agent/ws?after=7']);
    socket.dispose();
  });

  it('should not reconnect once disposed, even with an attempt scheduled', () => {
    const { socket } = connect();
    latest().lose();
    socket.dispose();
    jest.advanceTimersByTime(60_000);
    expect(FakeSocket.made).toHaveLength(1);
    expect(socket.isDisposed).toBe(true);
  });

  it('should close the open socket when disposed and not reconnect', () => {
    const { socket, drops } = connect();
    const ws = latest();
    ws.accept();
    socket.dispose();
    expect(ws.closed).toBe(true);
    ws.lose(); // a late close event changes nothing
    jest.advanceTimersByTime(60_000);
    expect(FakeSocket.made).toHaveLength(1);
    expect(drops).toEqual([]);
  });

  it('should hand on frames parsed and skip the ones that are not JSON', () => {
    const { socket } = connect();
    const frames: unknown[] = [];
    socket.received.connect((_, frame) => frames.push(frame));
    latest().accept();
    latest().deliver('{"type": "pong", "id": 1}');
    latest().deliver('not json {');
    latest().deliver('[1, 2]');
    expect(frames).toEqual([{ type: 'pong', id: 1 }, [1, 2]]);
    socket.dispose();
  });

  it('should send JSON only while open', () => {
    const { socket } = connect();
    expect(socket.send({ type: 'ping' })).toBe(false);
    latest().accept();
    expect(socket.send({ type: 'ping', id: 2 })).toBe(true);
    expect(latest().sent).toEqual(['{"type":"ping","id":2}']);
    latest().lose();
    expect(socket.send({ type: 'ping' })).toBe(false);
    socket.dispose();
  });

  it('should reconnect at once on request, and after backoff when dropped', () => {
    const { socket, drops } = connect();
    latest().lose();
    latest().lose(); // a second close event of the same socket is ignored
    expect(drops).toEqual([0]);
    socket.reconnect(); // cancels the scheduled attempt
    expect(FakeSocket.made).toHaveLength(2);
    jest.advanceTimersByTime(60_000);
    expect(FakeSocket.made).toHaveLength(2);

    const first = latest();
    first.accept();
    socket.drop();
    expect(first.closed).toBe(true);
    expect(drops).toEqual([0, 0]);
    jest.advanceTimersByTime(99);
    expect(FakeSocket.made).toHaveLength(2);
    jest.advanceTimersByTime(1);
    expect(FakeSocket.made).toHaveLength(3);
    socket.dispose();
  });
});
