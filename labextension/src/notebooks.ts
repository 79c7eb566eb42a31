/**
 * Helpers over JupyterLab's notebook tracker: which notebooks are open, and
 * opening a notebook at a given cell.
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { IDocumentManager } from '@jupyterlab/docmanager';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';

import { CellInfo } from './mentions';

/** Call `onChange(openPaths, activePath)` now and whenever notebooks open, close, rename or get focus. */
export function watchNotebooks(
  tracker: INotebookTracker,
  onChange: (open: string[], active: string | null) => void
): void {
  const report = () => {
    const open: string[] = [];
    tracker.forEach(panel => open.push(panel.context.path));
    onChange([...new Set(open)].sort(), tracker.currentWidget?.context.path ?? null);
  };
  tracker.widgetAdded.connect((_, panel) => {
    panel.context.pathChanged.connect(report);
    panel.disposed.connect(() => setTimeout(report, 0)); // after the tracker forgot it
    report();
  });
  tracker.currentChanged.connect(report);
  report();
}

/** The cells of an open notebook (none when it is not open here), for the `@` menu. */
export function notebookCells(tracker: INotebookTracker, path: string): CellInfo[] {
  const model = findNotebook(tracker, path)?.content.model;
  const cells: CellInfo[] = [];
  if (model) {
    for (let i = 0; i < model.cells.length; i++) {
      const cell = model.cells.get(i);
      cells.push({ id: cell.id, index: i, cellType: cell.type, source: cell.sharedModel.getSource() });
    }
  }
  return cells;
}

export function findNotebook(tracker: INotebookTracker, path: string): NotebookPanel | null {
  return tracker.find(panel => panel.context.path === path) ?? null;
}

/** Open (or reveal) a notebook, activate it and scroll to the cell with id `cellId`. */
export async function openCell(
  app: JupyterFrontEnd,
  tracker: INotebookTracker,
  docManager: IDocumentManager | null,
  path: string,
  cellId?: string
): Promise<void> {
  let panel = findNotebook(tracker, path);
  if (!panel && docManager) {
    const widget = docManager.openOrReveal(path);
    panel = widget instanceof NotebookPanel ? widget : null;
  }
  if (!panel) {
    return;
  }
  app.shell.activateById(panel.id);
  await panel.context.ready;
  await panel.revealed;
  if (!cellId) {
    return;
  }
  const notebook = panel.content;
  const index = notebook.widgets.findIndex(cell => cell.model.id === cellId);
  if (index < 0) {
    return; // deleted since, or not synced yet
  }
  notebook.activeCellIndex = index;
  await notebook.scrollToCell(notebook.widgets[index], 'center');
}
