/**
 * The MCP servers the agent takes tools from, as the chat shows them: a server whose tools are unavailable
 * (it failed to start, or dropped) is named above the input with the reason, until it comes back.
 */
import { Health } from './protocol';

export interface McpProblem {
  name: string;
  error: string;
}

/** The servers that failed, with why, in name order. */
export function mcpProblems(health: Health): McpProblem[] {
  return Object.entries(health.mcp_servers ?? {})
    .filter(([, server]) => server.state === 'failed')
    .map(([name, server]) => ({ name, error: server.error || 'unavailable' }))
    .sort((a, b) => a.name.localeCompare(b.name));
}

/** Whether a server is still connecting or retrying: health is worth asking again. */
export function mcpUnsettled(health: Health): boolean {
  return Object.values(health.mcp_servers ?? {}).some(s => s.state === 'starting' || s.state === 'failed');
}
