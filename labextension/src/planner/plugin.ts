import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, WidgetTracker } from '@jupyterlab/apputils';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';

import '../../style/planner.css';
import { IAgentChat } from '../chat';
import { IToolRendererRegistry } from '../registry';
import { planIcon } from './icons';
import { PlannerModel } from './model';
import { PlannerWidget } from './widget';

/** Opens (or shows) the Agent Planner panel. */
export const OPEN_PLANNER = 'jupyter-agent:open-planner';

/** The Agent Planner panel in the main area, following the chat's current session. */
export const plannerPanelPlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-agent:planner-panel',
  description: "The Agent Planner panel: the chat session's plan as a live task graph, to approve, edit and steer.",
  autoStart: true,
  requires: [IAgentChat, IRenderMimeRegistry, IToolRendererRegistry],
  optional: [ICommandPalette, ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    chat: IAgentChat,
    rendermime: IRenderMimeRegistry,
    registry: IToolRendererRegistry,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null
  ): void => {
    const tracker = new WidgetTracker<PlannerWidget>({ namespace: 'jupyter-agent-planner' });
    let widget: PlannerWidget | null = null;
    const follow = () => widget?.model.setSession(chat.activeSessionId);
    chat.changed.connect(follow);

    app.commands.addCommand(OPEN_PLANNER, {
      label: 'Open Agent Planner',
      caption: "Show the current chat's plan as a task graph: approve, edit and steer it",
      icon: planIcon,
      execute: () => {
        if (!widget || widget.isDisposed) {
          widget = new PlannerWidget(new PlannerModel(chat.client), rendermime, registry);
          follow();
          void tracker.add(widget);
          app.shell.add(widget, 'main', { mode: 'split-right' });
        }
        app.shell.activateById(widget.id);
      }
    });
    palette?.addItem({ command: OPEN_PLANNER, category: 'Agent' });
    // The plan cards in the chat ask for the panel.
    chat.plannerRequested.connect(() => void app.commands.execute(OPEN_PLANNER));
    if (restorer) {
      void restorer.restore(tracker, { command: OPEN_PLANNER, name: () => 'agent-planner' });
    }
  }
};

export const plannerPlugins: JupyterFrontEndPlugin<void>[] = [plannerPanelPlugin];
