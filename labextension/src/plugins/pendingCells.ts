/**
 * Pending cell markers: in every open notebook, the cells the agent changed in review mode
 * (`metadata.jupyter_agent.pending`) get a coloured border and a badge with Accept and Reject.
 * The marker is shared notebook metadata, so they follow it live, whoever sets or clears it.
 */
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { Notification } from '@jupyterlab/apputils';
import { INotebookTracker, Notebook } from '@jupyterlab/notebook';

import { IAgentClient } from '../client';
import { PendingMarker, PendingOp, pendingMarker } from '../review';

type CellWidget = Notebook['widgets'][number];
type CellModel = CellWidget['model'];
type Decision = 'accept' | 'reject';
/** Accept or reject one pending cell; resolves false when that failed. */
type Decide = (marker: PendingMarker, cellId: string, action: Decision) => Promise<boolean>;

const PENDING_CLASS = 'jp-agent-pending';
const BADGE_CLASS = 'jp-agent-pending-badge';
const METADATA_KEY = 'jupyter_agent';
const OPS: readonly PendingOp[] = ['insert', 'edit', 'delete'];

/** What each button does to each kind of pending change, for its tooltip. */
const EFFECT: Record<PendingOp, Record<Decision, string>> = {
  insert: { accept: 'Keep the cell the agent inserted', reject: 'Remove the cell the agent inserted' },
  edit: { accept: "Keep the agent's edit of this cell", reject: "Put back this cell's text from before the agent's edit" },
  delete: { accept: 'Delete this cell, as the agent asked', reject: 'Keep this cell' }
};

export const pendingCellsPlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-agent:pending-cells',
  description: 'Marks the cells the agent changed in review mode, with Accept and Reject on each.',
  autoStart: true,
  requires: [IAgentClient, INotebookTracker],
  activate: (_app: JupyterFrontEnd, client: IAgentClient, tracker: INotebookTracker): void => {
    const decide: Decide = async (marker, cellId, action) => {
      try {
        await client.api.reviewTurn(marker.session, marker.turn, action, [cellId]);
        return true;
      } catch (error) {
        const reason = error instanceof Error ? error.message : String(error);
        Notification.error(`Could not ${action} the agent's pending ${marker.pending}: ${reason}`, { autoClose: 8000 });
        return false;
      }
    };
    tracker.forEach(panel => watchNotebook(panel.content, decide));
    tracker.widgetAdded.connect((_, panel) => watchNotebook(panel.content, decide));
  }
};

/** Mark the notebook's pending cells now and whenever its cells or their markers change. */
function watchNotebook(notebook: Notebook, decide: Decide): void {
  const watched = new WeakSet<CellModel>();
  const onMetadata = (model: CellModel, change: { key: string }) => {
    const cell = change.key === METADATA_KEY ? notebook.widgets.find(w => w.model === model) : undefined;
    if (cell) {
      mark(cell, decide);
    }
  };
  const markAll = () => {
    for (const cell of notebook.widgets) {
      if (!watched.has(cell.model)) {
        watched.add(cell.model);
        cell.model.metadataChanged.connect(onMetadata);
      }
      mark(cell, decide);
    }
  };
  // The notebook makes its cell widgets on the same signal, connected before this one.
  let cells: NonNullable<Notebook['model']>['cells'] | null = null;
  const follow = () => {
    cells?.changed.disconnect(markAll);
    cells = notebook.model?.cells ?? null;
    cells?.changed.connect(markAll);
    markAll();
  };
  notebook.modelChanged.connect(follow);
  follow();
}

/** Set the cell's classes and badge from its marker (a badge whose marker did not change is kept). */
function mark(cell: CellWidget, decide: Decide): void {
  const marker = pendingMarker(cell.model.getMetadata(METADATA_KEY));
  const node = cell.node;
  node.classList.toggle(PENDING_CLASS, marker !== null);
  OPS.forEach(op => node.classList.toggle(`${PENDING_CLASS}-${op}`, marker?.pending === op));
  const id = marker ? `${marker.pending} ${marker.session} ${marker.turn}` : '';
  const old = Array.from(node.children).find(child => child.classList.contains(BADGE_CLASS));
  if (old?.getAttribute('data-marker') === id) {
    return;
  }
  old?.remove();
  if (marker) {
    // Last: Lumino places the cell's own parts by child index, which a node in front would shift.
    node.appendChild(badge(marker, id, cell.model.id, decide));
  }
}

function badge(marker: PendingMarker, id: string, cellId: string, decide: Decide): HTMLElement {
  const node = document.createElement('div');
  node.className = BADGE_CLASS;
  node.setAttribute('data-marker', id);
  node.setAttribute('data-lm-suppress-shortcuts', ''); // Enter and Space press the buttons, not the notebook's keys
  const label = document.createElement('span');
  label.className = 'jp-agent-pending-label';
  label.textContent = `Agent: pending ${marker.pending}`;
  const buttons = (['accept', 'reject'] as const).map(action => {
    const button = document.createElement('button');
    button.className = `jp-mod-styled jp-agent-pending-${action}`;
    button.textContent = action === 'accept' ? 'Accept' : 'Reject';
    button.title = EFFECT[marker.pending][action];
    button.addEventListener('click', () => {
      buttons.forEach(b => (b.disabled = true)); // until the marker goes, or the call fails
      void decide(marker, cellId, action).then(ok => ok || buttons.forEach(b => (b.disabled = false)));
    });
    return button;
  });
  node.append(label, ...buttons);
  return node;
}
