import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { INotebookTracker } from '@jupyterlab/notebook';

import { IAgentChat } from '../chat';
import { CommandIDs } from '../commandIds';
import { agentIcon } from '../icons';

const CELL_SELECTOR = '.jp-Cell';
const ERROR_OUTPUT_SELECTOR = '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]';

interface CellRef {
  path: string;
  cellId: string;
  /** Last lines of the error output the menu was opened on, if any. */
  errorText: string;
}

/** Notebook context menu entries that hand a cell (or its error) to the agent. */
export const cellCommandsPlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-agent:cell-commands',
  description: 'Adds "Ask the agent about this cell" and "Fix this error with the agent" to notebook context menus.',
  autoStart: true,
  requires: [IAgentChat, INotebookTracker],
  activate: (app: JupyterFrontEnd, chat: IAgentChat, tracker: INotebookTracker): void => {
    /** The cell under the context menu, else the active cell. */
    const target = (selector: string): CellRef | null => {
      const hit = app.contextMenuHitTest(node => node.matches(selector));
      const cellNode = hit?.closest(CELL_SELECTOR) ?? null;
      const panel = cellNode ? tracker.find(p => p.node.contains(cellNode)) : tracker.currentWidget;
      const cell = cellNode ? panel?.content.widgets.find(c => c.node === cellNode) : tracker.activeCell;
      if (!panel || !cell) {
        return null;
      }
      const errorText = hit && hit !== cellNode ? tail(hit.textContent ?? '', 3, 400) : '';
      return { path: panel.context.path, cellId: cell.model.id, errorText };
    };

    app.commands.addCommand(CommandIDs.askAboutCell, {
      label: 'Ask the agent about this cell',
      icon: agentIcon,
      isEnabled: () => tracker.currentWidget !== null,
      execute: () => {
        const ref = target(CELL_SELECTOR);
        if (ref) {
          chat.prefill(`About cell ${ref.cellId} of ${ref.path}: `);
        }
      }
    });

    app.commands.addCommand(CommandIDs.fixError, {
      label: 'Fix this error with the agent',
      icon: agentIcon,
      isEnabled: () => tracker.currentWidget !== null,
      execute: async () => {
        const ref = target(ERROR_OUTPUT_SELECTOR);
        if (!ref) {
          return;
        }
        const excerpt = ref.errorText ? `\n\nThe error ends with:\n\`\`\`\n${ref.errorText}\n\`\`\`` : '';
        const prompt =
          `Cell ${ref.cellId} of ${ref.path} fails. Read the cell and its error output, fix the code in that cell, ` +
          `and run it again to check the fix.${excerpt}`;
        await app.commands.execute(CommandIDs.openChat);
        await chat.send(prompt, ref.path);
      }
    });

    app.contextMenu.addItem({ command: CommandIDs.askAboutCell, selector: CELL_SELECTOR, rank: 100 });
    app.contextMenu.addItem({ command: CommandIDs.fixError, selector: ERROR_OUTPUT_SELECTOR, rank: 0 });
  }
};

/** The last `lines` non-empty lines of `text`, at most `max` characters. */
function tail(text: string, lines: number, max: number): string {
  const kept = text.trim().split('\n').filter(l => l.trim()).slice(-lines).join('\n');
  return kept.length > max ? kept.slice(kept.length - max) : kept;
}
