import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, MainAreaWidget, WidgetTracker } from '@jupyterlab/apputils';

import '../../style/usage.css';
import { IAgentClient } from '../client';
import { UsageModel } from '../usage/model';
import { usageIcon, UsageView } from '../usage/widget';

/** Opens (or shows) the Agent Usage panel; also in the View menu (schema/usage.json). */
export const OPEN_USAGE = 'jupyter-agent:open-usage';

/** The widget id; stable for tests and for `shell.activateById`. */
export const USAGE_WIDGET_ID = 'jupyter-agent-usage';

/** The Agent Usage panel in the main area: tokens, cost, tools and latency over a period, live. */
export const usagePlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-agent:usage',
  description:
    "The Agent Usage panel: cost and tokens per day, tools by use and failure, turn latency, over a chosen period; live.",
  autoStart: true,
  requires: [IAgentClient],
  optional: [ICommandPalette, ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    client: IAgentClient,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null
  ): void => {
    const tracker = new WidgetTracker<MainAreaWidget<UsageView>>({ namespace: 'jupyter-agent-usage' });
    app.commands.addCommand(OPEN_USAGE, {
      label: 'Agent Usage',
      caption: "The agent's usage: cost and tokens per day, tools by use and failure, turn latency",
      icon: usageIcon,
      execute: () => {
        let widget = tracker.currentWidget;
        if (!widget || widget.isDisposed) {
          widget = new MainAreaWidget({ content: new UsageView(new UsageModel(client.api)) });
          widget.id = USAGE_WIDGET_ID;
          widget.title.label = 'Agent Usage';
          widget.title.caption = "The agent's usage over a period, live";
          widget.title.icon = usageIcon;
          widget.title.closable = true;
          void tracker.add(widget);
          app.shell.add(widget, 'main');
        }
        app.shell.activateById(widget.id);
      }
    });
    palette?.addItem({ command: OPEN_USAGE, category: 'Agent' });
    if (restorer) {
      void restorer.restore(tracker, { command: OPEN_USAGE, name: () => 'agent-usage' });
    }
  }
};
