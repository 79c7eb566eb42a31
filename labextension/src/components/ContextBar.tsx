import * as React from 'react';

import { ContextChoice } from '../chat';
import { modelLabel } from '../localModel';
import { baseName } from './format';

const ACTIVE = '::active';
const NONE = '::none';

export interface ContextBarProps {
  openNotebooks: string[];
  activeNotebook: string | null;
  choice: ContextChoice;
  /** The notebook the next request acts on, as resolved from `choice`. */
  target: string | null;
  models: string[];
  selectedModel: string;
  onContextChange: (choice: ContextChoice) => void;
  onModelChange: (model: string) => void;
}

/** Shows (and lets you change) the notebook the request acts on and the model that answers. */
export function ContextBar(props: ContextBarProps): JSX.Element {
  const { choice, activeNotebook, openNotebooks, models, selectedModel } = props;
  const value = choice.mode === 'active' ? ACTIVE : choice.mode === 'none' ? NONE : choice.path;
  const onContext = (v: string) =>
    props.onContextChange(v === ACTIVE ? { mode: 'active' } : v === NONE ? { mode: 'none' } : { mode: 'path', path: v });
  const modelOptions = selectedModel && !models.includes(selectedModel) ? [selectedModel, ...models] : models;
  return (
    <div className="jp-AgentChat-contextBar">
      <label className="jp-AgentChat-field" title={props.target ?? 'The agent is not pointed at a notebook'}>
        <span className="jp-AgentChat-fieldLabel">Notebook</span>
        <select
          className="jp-mod-styled"
          data-testid="agent-context"
          data-notebook={props.target ?? ''}
          aria-label="Notebook the agent acts on"
          value={value}
          onChange={e => onContext(e.target.value)}
        >
          <option value={ACTIVE}>{activeNotebook ? `Active: ${baseName(activeNotebook)}` : 'Active notebook (none open)'}</option>
          {openNotebooks.map(path => (
            <option key={path} value={path}>
              {path}
            </option>
          ))}
          <option value={NONE}>None</option>
        </select>
      </label>
      <label className="jp-AgentChat-field">
        <span className="jp-AgentChat-fieldLabel">Model</span>
        <select
          className="jp-mod-styled"
          data-testid="agent-model-picker"
          aria-label="Model"
          value={selectedModel}
          onChange={e => props.onModelChange(e.target.value)}
        >
          {!selectedModel && <option value="">Server default</option>}
          {modelOptions.map(m => (
            <option key={m} value={m}>
              {modelLabel(m)}
            </option>
          ))}
        </select>
      </label>
    </div>
  );
}
