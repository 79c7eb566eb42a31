import { ToolRenderer, ToolRendererRegistry } from '../registry';

const renderer = (name: string): ToolRenderer => {
  const r = (() => null) as unknown as ToolRenderer;
  (r as { displayName?: string }).displayName = name;
  return r;
};
const nameOf = (r: ToolRenderer) => (r as { displayName?: string }).displayName;

describe('ToolRendererRegistry', () => {
  const fallback = renderer('default');

  it('should use the default renderer for unknown tools', () => {
    const registry = new ToolRendererRegistry(fallback);
    expect(registry.get('anything')).toBe(fallback);
    expect(registry.defaultRenderer).toBe(fallback);
  });

  it('should match exact names before prefixes and longer prefixes before shorter ones', () => {
    const registry = new ToolRendererRegistry(fallback);
    registry.register('notebook_', renderer('notebook'));
    registry.register('notebook_run*', renderer('run'));
    registry.register('notebook_run_cell', renderer('exact'));
    expect(nameOf(registry.get('notebook_read'))).toBe('notebook');
    expect(nameOf(registry.get('notebook_run_all'))).toBe('run');
    expect(nameOf(registry.get('notebook_run_cell'))).toBe('exact');
    expect(registry.get('browser_open')).toBe(fallback);
  });

  it('should let a later registration win until it is disposed', () => {
    const registry = new ToolRendererRegistry(fallback);
    registry.register('browser_', renderer('first'));
    const second = registry.register('browser_', renderer('second'));
    expect(nameOf(registry.get('browser_open'))).toBe('second');
    second.dispose();
    expect(nameOf(registry.get('browser_open'))).toBe('first');
  });

  it('should signal changes and refuse an empty key', () => {
    const registry = new ToolRendererRegistry(fallback);
    let changes = 0;
    registry.changed.connect(() => changes++);
    const d = registry.register('plan', renderer('plan'));
    d.dispose();
    d.dispose();
    expect(changes).toBe(2);
    expect(() => registry.register('*', renderer('x'))).toThrow();
  });
});
