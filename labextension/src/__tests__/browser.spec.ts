import { keyInput, normalizeUrl, toPagePoint } from '../browser/geometry';

const key = (k: string, mods: Partial<Record<'ctrlKey' | 'metaKey' | 'altKey' | 'shiftKey', boolean>> = {}) => ({
  key: k,
  ctrlKey: false,
  metaKey: false,
  altKey: false,
  shiftKey: false,
  ...mods
});

describe('toPagePoint', () => {
  it('should scale a click on a picture shown at half size', () => {
    const box = { left: 100, top: 50, width: 640, height: 400 };
    expect(toPagePoint(100, 50, box, 1280, 800)).toEqual({ x: 0, y: 0 });
    expect(toPagePoint(420, 250, box, 1280, 800)).toEqual({ x: 640, y: 400 });
    expect(toPagePoint(740, 450, box, 1280, 800)).toEqual({ x: 1280, y: 800 });
  });

  it('should skip the bands of a box wider than the picture', () => {
    // 1000x400 box, 1280x800 page: scale 0.5, picture 640 wide, centred with 180 px bands.
    const box = { left: 0, top: 0, width: 1000, height: 400 };
    expect(toPagePoint(180, 0, box, 1280, 800)).toEqual({ x: 0, y: 0 });
    expect(toPagePoint(500, 200, box, 1280, 800)).toEqual({ x: 640, y: 400 });
    expect(toPagePoint(100, 200, box, 1280, 800)).toBeNull();
    expect(toPagePoint(900, 200, box, 1280, 800)).toBeNull();
  });

  it('should skip the bands of a box taller than the picture', () => {
    const box = { left: 10, top: 10, width: 640, height: 800 };
    // scale 0.5: picture 400 tall, bands of 200 above and below.
    expect(toPagePoint(10, 100, box, 1280, 800)).toBeNull();
    expect(toPagePoint(330, 410, box, 1280, 800)).toEqual({ x: 640, y: 400 });
  });

  it('should give nothing without a picture or a box', () => {
    expect(toPagePoint(5, 5, { left: 0, top: 0, width: 0, height: 0 }, 1280, 800)).toBeNull();
    expect(toPagePoint(5, 5, { left: 0, top: 0, width: 100, height: 100 }, 0, 0)).toBeNull();
  });
});

describe('normalizeUrl', () => {
  it('should keep URLs with a scheme', () => {
    expect(normalizeUrl(' https://example.com/a ')).toBe('https://example.com/a');
    expect(normalizeUrl('http://127.0.0.1:8000/')).toBe('http://127.0.0.1:8000/');
    expect(normalizeUrl('about:blank')).toBe('about:blank');
  });

  it('should add https to bare hosts and http to local ones', () => {
    expect(normalizeUrl('example.com/docs')).toBe('https://example.com/docs');
    expect(normalizeUrl('example.com:8443')).toBe('https://example.com:8443');
    expect(normalizeUrl('localhost:8888/lab')).toBe('http://localhost:8888/lab');
    expect(normalizeUrl('127.0.0.1:5000')).toBe('http://127.0.0.1:5000');
  });

  it('should give nothing for blank input', () => {
    expect(normalizeUrl('   ')).toBeNull();
  });
});

describe('keyInput', () => {
  it('should type printable characters', () => {
    expect(keyInput(key('a'))).toEqual({ action: 'type', text: 'a' });
    expect(keyInput(key('A', { shiftKey: true }))).toEqual({ action: 'type', text: 'A' });
    expect(keyInput(key(' '))).toEqual({ action: 'type', text: ' ' });
  });

  it('should press named keys and shortcuts with their modifiers', () => {
    expect(keyInput(key('Enter'))).toEqual({ action: 'key', key: 'Enter' });
    expect(keyInput(key('Tab', { shiftKey: true }))).toEqual({ action: 'key', key: 'Shift+Tab' });
    expect(keyInput(key('a', { ctrlKey: true }))).toEqual({ action: 'key', key: 'Control+a' });
    expect(keyInput(key('ArrowLeft', { altKey: true }))).toEqual({ action: 'key', key: 'Alt+ArrowLeft' });
  });

  it('should ignore lone modifiers and dead keys', () => {
    expect(keyInput(key('Shift', { shiftKey: true }))).toBeNull();
    expect(keyInput(key('Dead'))).toBeNull();
    expect(keyInput(key('Control', { ctrlKey: true }))).toBeNull();
  });
});
