import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';

import { AgentClient, IAgentClient } from '../client';

/** The connection to the agent server. */
export const clientPlugin: JupyterFrontEndPlugin<IAgentClient> = {
  id: 'jupyter-agent:client',
  description: 'Connects to the jupyter-agent server over REST and one websocket per open session.',
  autoStart: true,
  provides: IAgentClient,
  activate: (_app: JupyterFrontEnd): IAgentClient => new AgentClient()
};
