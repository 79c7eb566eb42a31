import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { IDocumentManager } from '@jupyterlab/docmanager';
import { INotebookTracker } from '@jupyterlab/notebook';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { ISettingRegistry } from '@jupyterlab/settingregistry';

import { AgentChat, ChatSettings, DEFAULT_SETTINGS, IAgentChat } from '../chat';
import { IAgentClient } from '../client';
import { CommandIDs } from '../commandIds';
import { agentIcon } from '../icons';
import { notebookCells, openCell, watchNotebooks } from '../notebooks';
import { IToolRendererRegistry } from '../registry';
import { ChatWidget } from '../widget';

/** Id of this plugin; also names its settings (schema/plugin.json). */
const PLUGIN_ID = 'jupyter-agent:plugin';

/** The chat panel in the right sidebar and the command that opens it. */
export const chatPlugin: JupyterFrontEndPlugin<IAgentChat> = {
  id: PLUGIN_ID,
  description: 'The agent chat panel: sessions, conversation, tool approvals and voice input.',
  autoStart: true,
  provides: IAgentChat,
  requires: [IAgentClient, IToolRendererRegistry, IRenderMimeRegistry],
  optional: [INotebookTracker, ISettingRegistry, ILayoutRestorer, ICommandPalette, IDocumentManager],
  activate: (
    app: JupyterFrontEnd,
    client: IAgentClient,
    registry: IToolRendererRegistry,
    rendermime: IRenderMimeRegistry,
    tracker: INotebookTracker | null,
    settingRegistry: ISettingRegistry | null,
    restorer: ILayoutRestorer | null,
    palette: ICommandPalette | null,
    docManager: IDocumentManager | null
  ): IAgentChat => {
    const chat = new AgentChat(client);
    // The review cards open the notebook at the cell a turn changed, or the file.
    const open = (path: string, cellId?: string) =>
      void (tracker ? openCell(app, tracker, docManager, path, cellId) : docManager?.openOrReveal(path));
    const widget = new ChatWidget(chat, rendermime, registry, open);
    app.shell.add(widget, 'right', { rank: 600 });
    restorer?.add(widget, widget.id);

    app.commands.addCommand(CommandIDs.openChat, {
      label: 'Open Agent Chat',
      caption: 'Show the agent chat and focus its input',
      icon: agentIcon,
      execute: () => app.shell.activateById(widget.id)
    });
    palette?.addItem({ command: CommandIDs.openChat, category: 'Agent' });
    chat.focusRequested.connect(() => app.shell.activateById(widget.id));

    if (tracker) {
      watchNotebooks(tracker, (open, active) => chat.setNotebooks(open, active));
      chat.setCellSource(path => notebookCells(tracker, path));
    }
    if (settingRegistry) {
      settingRegistry
        .load(PLUGIN_ID)
        .then(settings => {
          const apply = () => chat.updateSettings(readSettings(settings.composite));
          settings.changed.connect(apply);
          apply();
        })
        .catch(reason => console.error('jupyter-agent: could not load settings', reason));
    }
    void app.restored.then(() => chat.start());
    return chat;
  }
};

function readSettings(composite: Record<string, unknown>): ChatSettings {
  const text = (key: string, fallback: string) => (typeof composite[key] === 'string' ? (composite[key] as string) : fallback);
  return {
    defaultModel: text('defaultModel', DEFAULT_SETTINGS.defaultModel),
    sendOnEnter: text('sendKey', 'Enter') !== 'Shift+Enter',
    thinkingExpanded: composite.thinkingExpanded === true,
    transcriptionModel: text('transcriptionModel', DEFAULT_SETTINGS.transcriptionModel)
  };
}
