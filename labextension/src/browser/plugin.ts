import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, WidgetTracker } from '@jupyterlab/apputils';

import '../../style/browser.css';
import { IAgentChat } from '../chat';
import { IToolRendererRegistry } from '../registry';
import { globeIcon } from './icons';
import { BrowserViewModel } from './model';
import { createBrowserToolRenderer } from './ToolRenderer';
import { BrowserWidget } from './widget';

/** Opens (or shows) the Agent Browser panel. */
export const OPEN_BROWSER = 'jupyter-agent:open-browser';

/** The Agent Browser panel in the main area, following the chat's current session. */
export const browserPanelPlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-agent:browser-panel',
  description: "The Agent Browser panel: the chat session's browser tab, live, with a way to take it over.",
  autoStart: true,
  requires: [IAgentChat],
  optional: [ICommandPalette, ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    chat: IAgentChat,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null
  ): void => {
    const tracker = new WidgetTracker<BrowserWidget>({ namespace: 'jupyter-agent-browser' });
    let widget: BrowserWidget | null = null;
    const follow = () => widget?.model.setSession(chat.activeSessionId);
    chat.changed.connect(follow);

    app.commands.addCommand(OPEN_BROWSER, {
      label: 'Open Agent Browser',
      caption: "Watch the agent's browser for the current chat, and take it over",
      icon: globeIcon,
      execute: () => {
        if (!widget || widget.isDisposed) {
          widget = new BrowserWidget(new BrowserViewModel(chat.client.api.settings));
          follow();
          void tracker.add(widget);
          app.shell.add(widget, 'main', { mode: 'split-right' });
        }
        app.shell.activateById(widget.id);
      }
    });
    palette?.addItem({ command: OPEN_BROWSER, category: 'Agent' });
    if (restorer) {
      void restorer.restore(tracker, { command: OPEN_BROWSER, name: () => 'agent-browser' });
    }
  }
};

/** Browser tools' cards show the page's screenshot, title and URL. */
export const browserToolRenderersPlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-agent:browser-tool-renderers',
  description: 'Shows browser tool calls with a screenshot thumbnail, the page title and URL.',
  autoStart: true,
  requires: [IToolRendererRegistry],
  activate: (app: JupyterFrontEnd, registry: IToolRendererRegistry): void => {
    registry.register('browser_', createBrowserToolRenderer(() => void app.commands.execute(OPEN_BROWSER)));
  }
};

export const browserPlugins: JupyterFrontEndPlugin<void>[] = [browserPanelPlugin, browserToolRenderersPlugin];
