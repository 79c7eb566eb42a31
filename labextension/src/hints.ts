/**
 * What a person can do about an error, by its code (see jupyter_agent/errors.py).
 */
const HINTS: Record<string, string> = {
  provider_error:
    'The model provider failed. Check its API key and network access on the Jupyter server, or pick another model.',
  auth_failed:
    'The model provider refused the API key. Set a valid key for this model on the Jupyter server (c.JupyterAgent.model_options or the provider\'s environment variable).',
  rate_limited: 'The model provider is rate limiting. Wait a moment and try again, or configure fallback models.',
  model_not_found: 'The provider does not know this model. Pick another model or fix the model name in the settings.',
  interrupted: 'The process that ran this turn (the server, a kernel or a CLI run) stopped before it finished. Send the message again.',
  turn_timeout: 'The turn took longer than the server allows and was stopped. Ask for a smaller step.',
  budget_exceeded: 'A usage budget is spent (the message says which). It renews as the message says, or an admin can raise it.',
  too_many_requests: 'You sent the most prompts allowed per minute. Wait a moment and send again.',
  approval_timeout: 'Nobody answered the approval request in time. Send the request again and answer the prompt.',
  tool_error: 'A tool failed. Read the tool card for details, then ask again with more precise instructions.',
  path_outside_root: 'The path is outside the Jupyter root directory. Use a path inside the file browser.',
  not_found: 'The session or file no longer exists. Refresh the session list.',
  conflict: 'Someone else changed this at the same time. Try again.',
  already_undone: 'Someone already undid this turn (its card shows it). Redo it to apply its changes again.',
  not_undone: 'This turn is not undone, so there is nothing to redo.',
  not_pending: 'These edits were already accepted or rejected, maybe by a collaborator.',
  bad_request: 'The server rejected the request. Check what you typed and try again.',
  bad_message: 'The server could not read a message from this page. Reload the page if this repeats.',
  llm_not_ready: 'No model is configured on the server. Set the model and its API key, then restart Jupyter.',
  forbidden: 'You do not have permission for this. Ask the server owner to grant you access.',
  network: 'The Jupyter server cannot be reached. Check that it is running; the panel reconnects by itself.',
  microphone: 'Allow microphone access for this page in the browser (site settings), then try again.',
  transcription: 'Speech could not be transcribed. Check the transcription model in the settings, or type instead.'
};

const DEFAULT_HINT = 'Try again. If it keeps failing, look at the Jupyter server log for details.';

export function errorHint(code: string): string {
  return HINTS[code] ?? (code.includes('timeout') ? 'The operation took too long. Try again.' : DEFAULT_HINT);
}
