/**
 * Frames of the browser panel's socket, `WS /api/agent/sessions/{id}/browser/ws`
 * (see jupyter_agent/server/browser_handlers.py).
 */
import { UserInfo } from '../protocol';

/** The live view's state: sent on connect and whenever it changes. */
export interface BrowserStateFrame {
  type: 'state';
  /** False while the session has no page (the agent has not browsed yet). */
  active: boolean;
  url: string;
  title: string;
  controlled_by: UserInfo | null;
  /** This connection holds control. */
  in_control: boolean;
  /** An agent browser call is waiting for control to be handed back. */
  agent_waiting: boolean;
}

/** One picture of the page; `width`/`height` are the page's viewport in CSS pixels. */
export interface BrowserFrame {
  type: 'frame';
  /** Base64 JPEG. */
  data: string;
  url: string;
  title: string;
  width: number;
  height: number;
  seq: number;
}

export interface BrowserErrorFrame {
  type: 'error';
  code: string;
  message: string;
}

export type BrowserServerFrame = BrowserStateFrame | BrowserFrame | BrowserErrorFrame | { type: 'pong' };

export type BrowserInput =
  | { action: 'click'; x: number; y: number }
  | { action: 'type'; text: string }
  | { action: 'key'; key: string }
  | { action: 'scroll'; dx: number; dy: number; x?: number; y?: number }
  | { action: 'navigate'; url: string }
  | { action: 'back' }
  | { action: 'forward' }
  | { action: 'reload' };

export type BrowserClientFrame =
  | ({ type: 'input' } & BrowserInput)
  | { type: 'control'; take: boolean }
  | { type: 'ping'; id?: unknown };
