import { JupyterFrontEndPlugin } from '@jupyterlab/application';

import { browserPlugins } from './browser/plugin';
import { plannerPlugins } from './planner/plugin';
import { cellCommandsPlugin } from './plugins/cellCommands';
import { chatPlugin } from './plugins/chat';
import { clientPlugin } from './plugins/client';
import { pendingCellsPlugin } from './plugins/pendingCells';
import { notebookRenderersPlugin, rendererRegistryPlugin } from './plugins/renderers';
import { statusPlugin } from './plugins/status';
import { usagePlugin } from './plugins/usage';

const plugins: JupyterFrontEndPlugin<any>[] = [
  clientPlugin,
  rendererRegistryPlugin,
  notebookRenderersPlugin,
  chatPlugin,
  statusPlugin,
  cellCommandsPlugin,
  pendingCellsPlugin,
  usagePlugin,
  ...browserPlugins,
  ...plannerPlugins
];

export default plugins;
