/**
 * The plan being edited by a person, and its translation to a `plan_edit` frame. Pure: every change
 * returns a new draft. Tasks that have started are kept as they are (the server refuses to change them).
 */
import { EditedTask, PlanEditBody, PlanSnapshot, PlanTask } from './protocol';
import { isEditable, liveTasks } from './planState';

export interface DraftTask {
  id: string;
  title: string;
  description: string;
  depends_on: string[];
  /** Started (or finished): shown, never changed. */
  locked: boolean;
  /** The task as the plan has it; absent for a task added in this edit. */
  original?: PlanTask;
}

export interface PlanDraft {
  goal: string;
  /** The goal can change only before the plan is approved. */
  goalEditable: boolean;
  tasks: DraftTask[];
  /** Every id the plan has used (re-planned tasks included): new tasks get another one. */
  usedIds: string[];
}

export interface NewTask {
  title: string;
  description?: string;
  depends_on?: string[];
}

export function draftFromPlan(plan: PlanSnapshot): PlanDraft {
  return {
    goal: plan.goal,
    goalEditable: plan.status === 'awaiting_approval',
    tasks: liveTasks(plan).map(t => ({
      id: t.id,
      title: t.title,
      description: t.description ?? '',
      depends_on: [...(t.depends_on ?? [])],
      locked: !isEditable(t),
      original: t
    })),
    usedIds: plan.tasks.map(t => t.id)
  };
}

export function setGoal(draft: PlanDraft, goal: string): PlanDraft {
  return draft.goalEditable ? { ...draft, goal } : draft;
}

export function renameTask(draft: PlanDraft, id: string, title: string): PlanDraft {
  return change(draft, id, t => ({ ...t, title }));
}

export function describeTask(draft: PlanDraft, id: string, description: string): PlanDraft {
  return change(draft, id, t => ({ ...t, description }));
}

export function setDependencies(draft: PlanDraft, id: string, dependsOn: readonly string[]): PlanDraft {
  return change(draft, id, t => ({ ...t, depends_on: [...new Set(dependsOn)].filter(d => d !== id) }));
}

/** Add `dep` to the task's dependencies, or take it away. */
export function toggleDependency(draft: PlanDraft, id: string, dep: string): PlanDraft {
  const task = draft.tasks.find(t => t.id === id);
  if (!task) {
    return draft;
  }
  const deps = task.depends_on.includes(dep) ? task.depends_on.filter(d => d !== dep) : [...task.depends_on, dep];
  return setDependencies(draft, id, deps);
}

/** Remove a task not started; the tasks that depended on it no longer do. */
export function removeTask(draft: PlanDraft, id: string): PlanDraft {
  const task = draft.tasks.find(t => t.id === id);
  if (!task || task.locked) {
    return draft;
  }
  const tasks = draft.tasks
    .filter(t => t.id !== id)
    .map(t => (!t.locked && t.depends_on.includes(id) ? { ...t, depends_on: t.depends_on.filter(d => d !== id) } : t));
  return { ...draft, tasks };
}

/** Add a task at the end with a fresh id. */
export function addTask(draft: PlanDraft, task: NewTask): PlanDraft {
  const id = nextTaskId([...draft.usedIds, ...draft.tasks.map(t => t.id)]);
  const known = new Set(draft.tasks.map(t => t.id));
  const added: DraftTask = {
    id,
    title: task.title,
    description: task.description ?? '',
    depends_on: [...new Set(task.depends_on ?? [])].filter(d => known.has(d)),
    locked: false
  };
  return { ...draft, tasks: [...draft.tasks, added], usedIds: [...draft.usedIds, id] };
}

/** The first `tN` not used yet, after the highest N used. */
export function nextTaskId(used: readonly string[]): string {
  const numbers = used.map(id => /^t(\d+)$/.exec(id)).filter(Boolean).map(m => Number(m![1]));
  let n = numbers.length ? Math.max(...numbers) + 1 : used.length + 1;
  while (used.includes(`t${n}`)) {
    n++;
  }
  return `t${n}`;
}

/** Why the server would refuse the draft (the same checks it makes); empty when it is fine. */
export function validateDraft(draft: PlanDraft): string[] {
  const errors: string[] = [];
  if (!draft.tasks.length) {
    errors.push('The plan needs at least one task.');
  }
  const ids = new Set(draft.tasks.map(t => t.id));
  for (const task of draft.tasks) {
    if (!task.title.trim()) {
      errors.push(`Task ${task.id} needs a title.`);
    }
    for (const dep of task.depends_on) {
      if (!ids.has(dep)) {
        errors.push(`Task ${task.id} depends on ${dep}, which is not in the plan.`);
      }
    }
  }
  const cycle = findCycle(draft.tasks);
  if (cycle) {
    errors.push(`The dependencies form a cycle: ${cycle.join(' → ')}.`);
  }
  if (draft.goalEditable && !draft.goal.trim()) {
    errors.push('The goal cannot be empty.');
  }
  return errors;
}

/** The `plan_edit` body for the draft: the whole task list, started tasks unchanged. */
export function toPlanEdit(draft: PlanDraft): PlanEditBody {
  const tasks = draft.tasks.map((t): EditedTask => {
    const original = t.original;
    if (t.locked && original) {
      return { id: original.id, title: original.title, description: original.description, depends_on: original.depends_on };
    }
    const edited: EditedTask = { id: t.id, title: t.title.trim(), description: t.description, depends_on: t.depends_on };
    if (original) {
      // What the person cannot change here stays; without estimate_s the server keeps the task's estimate.
      edited.tools = original.tools;
      edited.notebooks = original.notebooks;
      edited.acceptance = original.acceptance;
    }
    return edited;
  });
  const body: PlanEditBody = { tasks };
  if (draft.goalEditable && draft.goal.trim()) {
    body.goal = draft.goal.trim();
  }
  return body;
}

/** True when the draft differs from the plan it was made from. */
export function isChanged(draft: PlanDraft, plan: PlanSnapshot): boolean {
  const before = draftFromPlan(plan);
  if (draft.goal !== before.goal || draft.tasks.length !== before.tasks.length) {
    return true;
  }
  return draft.tasks.some((t, i) => {
    const b = before.tasks[i];
    return t.id !== b.id || t.title !== b.title || t.description !== b.description || t.depends_on.join() !== b.depends_on.join();
  });
}

/** A chain of task ids that leads back to its start, or null. */
export function findCycle(tasks: readonly { id: string; depends_on: readonly string[] }[]): string[] | null {
  const byId = new Map(tasks.map(t => [t.id, t]));
  const state = new Map<string, 'open' | 'closed'>();
  const stack: string[] = [];
  const visit = (id: string): string[] | null => {
    state.set(id, 'open');
    stack.push(id);
    for (const dep of byId.get(id)?.depends_on ?? []) {
      if (!byId.has(dep)) {
        continue;
      }
      if (state.get(dep) === 'open') {
        return [...stack.slice(stack.indexOf(dep)), dep];
      }
      if (!state.has(dep)) {
        const found = visit(dep);
        if (found) {
          return found;
        }
      }
    }
    stack.pop();
    state.set(id, 'closed');
    return null;
  };
  for (const task of tasks) {
    if (!state.has(task.id)) {
      const found = visit(task.id);
      if (found) {
        return found;
      }
    }
  }
  return null;
}

function change(draft: PlanDraft, id: string, edit: (t: DraftTask) => DraftTask): PlanDraft {
  return {
    ...draft,
    tasks: draft.tasks.map(t => (t.id === id && !t.locked ? edit(t) : t))
  };
}
