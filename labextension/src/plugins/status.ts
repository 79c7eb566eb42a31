import * as React from 'react';
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { IStatusBar } from '@jupyterlab/statusbar';
import { ReactWidget } from '@jupyterlab/ui-components';

import { IAgentChat } from '../chat';
import { CommandIDs } from '../commandIds';
import { StatusItem } from '../components/StatusItem';

/** Status bar item: agent connection, latency, running tools, the offline model's state and the turn's activity. */
export const statusPlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-agent:status',
  description:
    "Shows the agent connection, its latency, running tools, the offline model's state and what the agent is doing in the status bar.",
  autoStart: true,
  requires: [IAgentChat, IStatusBar],
  activate: (app: JupyterFrontEnd, chat: IAgentChat, statusBar: IStatusBar): void => {
    const item = new AgentStatusWidget(chat, () => void app.commands.execute(CommandIDs.openChat));
    statusBar.registerStatusItem('jupyter-agent:status', { item, align: 'left', rank: 5 });
  }
};

class AgentStatusWidget extends ReactWidget {
  constructor(private readonly _chat: IAgentChat, private readonly _open: () => void) {
    super();
    const update = () => this.update();
    _chat.client.stateChanged.connect(update);
    _chat.client.latencyChanged.connect(update);
    _chat.model.changed.connect(update);
    _chat.localModel.changed.connect(update);
  }

  protected render(): JSX.Element {
    const { client, model } = this._chat;
    return React.createElement(StatusItem, {
      state: client.state,
      latency: client.latency,
      runningTools: model.runningTools,
      localModel: this._chat.localModel.status,
      activity: model.state.running ? model.state.activity : null,
      onClick: this._open
    });
  }
}
