/**
 * REST calls to the agent server, through JupyterLab's ServerConnection so the
 * auth token and XSRF cookie are handled the same way as for Jupyter's own APIs.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import {
  EditMode,
  ErrorBody,
  EventsPage,
  Health,
  Resolution,
  ReviewAnswer,
  Session,
  ToolInfo,
  TurnChanges,
  VariablesAnswer
} from './protocol';

/** A failed call, with the server's error code when it sent one. */
export class AgentApiError extends Error {
  constructor(readonly code: string, message: string, readonly status: number | null = null) {
    super(message);
    this.name = 'AgentApiError';
  }
}

export const API_ROOT = 'api/agent';

export class AgentApi {
  constructor(readonly settings: ServerConnection.ISettings = ServerConnection.makeSettings()) {}

  health(): Promise<Health> {
    return this.request<Health>('health');
  }

  async listSessions(): Promise<Session[]> {
    return (await this.request<{ sessions: Session[] }>('sessions')).sessions;
  }

  createSession(title?: string): Promise<Session> {
    return this.request<Session>('sessions', { method: 'POST', body: JSON.stringify(title ? { title } : {}) });
  }

  getSession(id: string): Promise<Session> {
    return this.request<Session>(sessionPath(id));
  }

  renameSession(id: string, title: string): Promise<Session> {
    return this.request<Session>(sessionPath(id), { method: 'PATCH', body: JSON.stringify({ title }) });
  }

  /** Show the session to the collaborators of its notebook (true) or to its owner only; the owner only. */
  shareSession(id: string, shared: boolean): Promise<Session> {
    return this.request<Session>(sessionPath(id), { method: 'PATCH', body: JSON.stringify({ shared }) });
  }

  /** "review": the agent's notebook edits wait as pending cells until someone accepts or rejects them. */
  setEditMode(id: string, mode: EditMode): Promise<Session> {
    return this.request<Session>(sessionPath(id), { method: 'PATCH', body: JSON.stringify({ edit_mode: mode }) });
  }

  /** What a turn changed, target by target, with unified diffs. */
  turnChanges(id: string, turn: string): Promise<TurnChanges> {
    return this.request<TurnChanges>(`${turnPath(id, turn)}/changes`);
  }

  /** Take a turn's changes back; with `resolve`, settle the conflicts an undo left. */
  undoTurn(id: string, turn: string, resolve?: Resolution): Promise<ReviewAnswer> {
    return this.request<ReviewAnswer>(`${turnPath(id, turn)}/undo`, {
      method: 'POST',
      body: JSON.stringify(resolve ? { resolve } : {})
    });
  }

  redoTurn(id: string, turn: string): Promise<ReviewAnswer> {
    return this.request<ReviewAnswer>(`${turnPath(id, turn)}/redo`, { method: 'POST', body: '{}' });
  }

  /** Accept or reject a review-mode turn's pending changes: all of them, or those of `cells`. */
  reviewTurn(id: string, turn: string, action: 'accept' | 'reject', cells?: string[]): Promise<ReviewAnswer> {
    return this.request<ReviewAnswer>(`${turnPath(id, turn)}/review`, {
      method: 'POST',
      body: JSON.stringify(cells ? { action, cells } : { action })
    });
  }

  async deleteSession(id: string): Promise<void> {
    await this.request<null>(sessionPath(id), { method: 'DELETE' });
  }

  events(id: string, after: number, limit?: number): Promise<EventsPage> {
    const query = `after=${after}` + (limit ? `&limit=${limit}` : '');
    return this.request<EventsPage>(`${sessionPath(id)}/events?${query}`);
  }

  /** The user variables of a notebook's running kernel, summarised (for `@` completion). */
  variables(notebook: string): Promise<VariablesAnswer> {
    return this.request<VariablesAnswer>(`variables?notebook=${encodeURIComponent(notebook)}`);
  }

  async tools(): Promise<ToolInfo[]> {
    return (await this.request<{ tools: ToolInfo[] }>('tools')).tools;
  }

  /** Speech to text: `POST /api/agent/transcribe` with the recording as form field `file`. */
  async transcribe(audio: Blob, model?: string): Promise<string> {
    const form = new FormData();
    form.append('file', audio, fileNameFor(audio.type));
    if (model) {
      form.append('model', model);
    }
    // The browser sets the multipart Content-Type (with its boundary) for FormData bodies.
    const answer = await this.request<{ text: string }>('transcribe', { method: 'POST', body: form });
    return answer.text ?? '';
  }

  /** The websocket URL of a session, replaying events after `after`. */
  socketUrl(id: string, after: number): string {
    let url = URLExt.join(this.settings.wsUrl, API_ROOT, sessionPath(id), 'ws') + `?after=${after}`;
    // Same rule as JupyterLab's kernel and terminal sockets.
    if (this.settings.appendToken && this.settings.token !== '') {
      url += `&token=${encodeURIComponent(this.settings.token)}`;
    }
    return url;
  }

  async request<T>(path: string, init: RequestInit = {}): Promise<T> {
    const url = URLExt.join(this.settings.baseUrl, API_ROOT, path);
    let response: Response;
    try {
      response = await ServerConnection.makeRequest(url, init, this.settings);
    } catch (error) {
      throw new AgentApiError('network', `Cannot reach the Jupyter server: ${String(error)}`);
    }
    const text = await response.text();
    if (!response.ok) {
      throw errorFrom(response.status, response.statusText, text);
    }
    return (text ? JSON.parse(text) : null) as T;
  }
}

function sessionPath(id: string): string {
  return `sessions/${encodeURIComponent(id)}`;
}

function turnPath(id: string, turn: string): string {
  return `${sessionPath(id)}/turns/${encodeURIComponent(turn)}`;
}

function fileNameFor(mime: string): string {
  const sub = mime.split(';')[0].split('/')[1] || 'webm';
  return `recording.${sub}`;
}

function errorFrom(status: number, statusText: string, text: string): AgentApiError {
  let body: Partial<ErrorBody> = {};
  try {
    body = JSON.parse(text) as Partial<ErrorBody>;
  } catch {
    // not JSON: e.g. Jupyter's HTML 404 page or a proxy's error page; do not show its markup
  }
  const code = body.code ?? (status === 403 ? 'forbidden' : status === 404 ? 'not_found' : `http_${status}`);
  const message = body.message || `HTTP ${status}${statusText ? ` ${statusText}` : ''}`;
  return new AgentApiError(code, message, status);
}
