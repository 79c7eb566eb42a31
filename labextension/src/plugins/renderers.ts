import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { IDocumentManager } from '@jupyterlab/docmanager';
import { INotebookTracker } from '@jupyterlab/notebook';

import { DefaultToolRenderer } from '../components/DefaultToolRenderer';
import { createNotebookToolRenderer } from '../components/NotebookToolRenderer';
import { openCell } from '../notebooks';
import { IToolRendererRegistry, ToolRendererRegistry } from '../registry';

/** The registry other features use to show their tools' results. */
export const rendererRegistryPlugin: JupyterFrontEndPlugin<IToolRendererRegistry> = {
  id: 'jupyter-agent:tool-renderers',
  description: 'Registry of renderers for tool call cards in the agent chat.',
  autoStart: true,
  provides: IToolRendererRegistry,
  activate: (): IToolRendererRegistry => new ToolRendererRegistry(DefaultToolRenderer)
};

/** Notebook tools' cards link to the cell they touched. */
export const notebookRenderersPlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-agent:notebook-tool-renderers',
  description: 'Shows notebook tool calls with a link that opens the notebook at the cell.',
  autoStart: true,
  requires: [IToolRendererRegistry, INotebookTracker],
  optional: [IDocumentManager],
  activate: (
    app: JupyterFrontEnd,
    registry: IToolRendererRegistry,
    tracker: INotebookTracker,
    docManager: IDocumentManager | null
  ): void => {
    registry.register(
      'notebook_',
      createNotebookToolRenderer((path, cellId) => void openCell(app, tracker, docManager, path, cellId))
    );
  }
};
