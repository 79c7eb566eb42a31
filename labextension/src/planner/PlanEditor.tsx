import * as React from 'react';

import {
  addTask,
  describeTask,
  PlanDraft,
  removeTask,
  renameTask,
  setGoal,
  toggleDependency,
  validateDraft
} from './editModel';

export interface PlanEditorProps {
  draft: PlanDraft;
  onChange: (draft: PlanDraft) => void;
  onSave: () => void;
  onDiscard: () => void;
}

/**
 * The plan, editable in place: titles, descriptions and dependencies of the tasks not started, removing
 * them, adding tasks. Started tasks are shown but cannot change.
 */
export function PlanEditor({ draft, onChange, onSave, onDiscard }: PlanEditorProps): JSX.Element {
  const [title, setTitle] = React.useState('');
  const [description, setDescription] = React.useState('');
  const [dependsOn, setDependsOn] = React.useState<string[]>([]);
  const errors = validateDraft(draft);
  const ids = draft.tasks.map(t => t.id);

  const add = () => {
    if (!title.trim()) {
      return;
    }
    onChange(addTask(draft, { title: title.trim(), description: description.trim(), depends_on: dependsOn }));
    setTitle('');
    setDescription('');
    setDependsOn([]);
  };

  return (
    <form
      className="jp-AgentPlanner-editor"
      data-testid="agent-plan-editor"
      aria-label="Edit the plan"
      onSubmit={e => {
        e.preventDefault();
        if (!errors.length) {
          onSave();
        }
      }}
    >
      {draft.goalEditable && (
        <label className="jp-AgentPlanner-field">
          <span>Goal</span>
          <input
            className="jp-AgentPlanner-input"
            data-testid="agent-plan-edit-goal"
            value={draft.goal}
            onChange={e => onChange(setGoal(draft, e.target.value))}
          />
        </label>
      )}
      <ol className="jp-AgentPlanner-editTasks">
        {draft.tasks.map(task => (
          <li
            key={task.id}
            className={`jp-AgentPlanner-editTask${task.locked ? ' jp-mod-locked' : ''}`}
            data-testid="agent-plan-edit-task"
            data-task={task.id}
          >
            <div className="jp-AgentPlanner-editRow">
              <span className="jp-AgentPlanner-editId">{task.id}</span>
              <input
                className="jp-AgentPlanner-input"
                aria-label={`Title of task ${task.id}`}
                value={task.title}
                disabled={task.locked}
                onChange={e => onChange(renameTask(draft, task.id, e.target.value))}
              />
              <button
                type="button"
                className="jp-mod-styled jp-mod-warn jp-AgentPlanner-small"
                data-testid="agent-plan-edit-remove"
                aria-label={`Remove task ${task.id}`}
                disabled={task.locked}
                title={task.locked ? 'This task has started and stays in the plan' : 'Remove this task'}
                onClick={() => onChange(removeTask(draft, task.id))}
              >
                Remove
              </button>
            </div>
            <textarea
              className="jp-AgentPlanner-input jp-AgentPlanner-description"
              aria-label={`Description of task ${task.id}`}
              rows={2}
              value={task.description}
              disabled={task.locked}
              onChange={e => onChange(describeTask(draft, task.id, e.target.value))}
            />
            <Dependencies
              owner={task.id}
              candidates={ids.filter(id => id !== task.id)}
              chosen={task.depends_on}
              disabled={task.locked}
              onToggle={dep => onChange(toggleDependency(draft, task.id, dep))}
            />
            {task.locked && <div className="jp-AgentPlanner-note">Started: it cannot change.</div>}
          </li>
        ))}
      </ol>
      <fieldset className="jp-AgentPlanner-addTask" data-testid="agent-plan-add-task">
        <legend>Add a task</legend>
        <input
          className="jp-AgentPlanner-input"
          aria-label="Title of the new task"
          placeholder="Title"
          value={title}
          onChange={e => setTitle(e.target.value)}
        />
        <textarea
          className="jp-AgentPlanner-input jp-AgentPlanner-description"
          aria-label="Description of the new task"
          placeholder="What to do, precisely enough to do it alone"
          rows={2}
          value={description}
          onChange={e => setDescription(e.target.value)}
        />
        <Dependencies
          owner="the new task"
          candidates={ids}
          chosen={dependsOn}
          onToggle={dep => setDependsOn(dependsOn.includes(dep) ? dependsOn.filter(d => d !== dep) : [...dependsOn, dep])}
        />
        <button
          type="button"
          className="jp-mod-styled jp-AgentPlanner-small"
          data-testid="agent-plan-add"
          aria-label="Add the task"
          disabled={!title.trim()}
          onClick={add}
        >
          Add task
        </button>
      </fieldset>
      {errors.length > 0 && (
        <ul className="jp-AgentPlanner-editErrors" role="alert" data-testid="agent-plan-edit-errors">
          {errors.map(error => (
            <li key={error}>{error}</li>
          ))}
        </ul>
      )}
      <div className="jp-AgentPlanner-editButtons">
        <button
          type="submit"
          className="jp-mod-styled jp-mod-accept"
          data-testid="agent-plan-save"
          aria-label="Save the edited plan"
          disabled={errors.length > 0}
        >
          Save plan
        </button>
        <button
          type="button"
          className="jp-mod-styled jp-mod-reject"
          data-testid="agent-plan-discard"
          aria-label="Discard the changes"
          onClick={onDiscard}
        >
          Discard
        </button>
      </div>
    </form>
  );
}

interface DependenciesProps {
  owner: string;
  candidates: readonly string[];
  chosen: readonly string[];
  disabled?: boolean;
  onToggle: (dep: string) => void;
}

/** A task's dependencies as one checkbox per other task. */
function Dependencies({ owner, candidates, chosen, disabled, onToggle }: DependenciesProps): JSX.Element {
  if (!candidates.length) {
    return <></>;
  }
  const label = owner.startsWith('the ') ? owner : `task ${owner}`;
  return (
    <div className="jp-AgentPlanner-deps" role="group" aria-label={`Tasks ${label} depends on`}>
      <span className="jp-AgentPlanner-depsLabel">Depends on:</span>
      {candidates.map(dep => (
        <label key={dep} className="jp-AgentPlanner-dep">
          <input
            type="checkbox"
            aria-label={`${owner.startsWith('the ') ? 'The new task' : `Task ${owner}`} depends on ${dep}`}
            checked={chosen.includes(dep)}
            disabled={disabled}
            onChange={() => onToggle(dep)}
          />
          {dep}
        </label>
      ))}
    </div>
  );
}
