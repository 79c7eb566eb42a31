import { mcpProblems, mcpUnsettled } from '../mcp';
import { Health } from '../protocol';

const health = (servers: Health['mcp_servers']): Health => ({
  status: 'ok',
  version: '0',
  model: 'm',
  models: [],
  llm_ready: true,
  mcp_servers: servers
});

describe('MCP servers in the chat', () => {
  it('should name the failed servers with their reason, and keep asking while any is not up', () => {
    const h = health({
      zeta: { transport: 'stdio', state: 'failed', error: "cannot start 'zz': No such file", tools: [] },
      alpha: { transport: 'http', state: 'ready', error: null, tools: ['mcp_alpha_x'] },
      beta: { transport: 'http', state: 'failed', error: null, tools: [] }
    });
    expect(mcpProblems(h)).toEqual([
      { name: 'beta', error: 'unavailable' },
      { name: 'zeta', error: "cannot start 'zz': No such file" }
    ]);
    expect(mcpUnsettled(h)).toBe(true);
  });

  it('should say nothing when every server is up or none is configured', () => {
    expect(mcpProblems(health({ a: { transport: 'stdio', state: 'ready', error: null, tools: [] } }))).toEqual([]);
    expect(mcpUnsettled(health(undefined))).toBe(false);
    expect(mcpUnsettled(health({ a: { transport: 'stdio', state: 'starting', error: null, tools: [] } }))).toBe(true);
  });
});
