import { LabIcon } from '@jupyterlab/ui-components';

/** A speech bubble with a spark: the agent chat. Colours follow the theme through `jp-icon3`. */
const AGENT_SVG = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <path class="jp-icon3" fill="#616161" d="M4 3h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2zm8 3-1.2 2.8L8 10l2.8 1.2L12 14l1.2-2.8L16 10l-2.8-1.2z"/>
</svg>`;

export const agentIcon = new LabIcon({ name: 'jupyter-agent:agent', svgstr: AGENT_SVG });

/** A microphone (JupyterLab has no icon for it). */
const MIC_SVG = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <path class="jp-icon3" fill="#616161" d="M12 14a3 3 0 0 0 3-3V5a3 3 0 0 0-6 0v6a3 3 0 0 0 3 3zm5-3a5 5 0 0 1-10 0H5a7 7 0 0 0 6 6.93V21h2v-3.07A7 7 0 0 0 19 11z"/>
</svg>`;

export const micIcon = new LabIcon({ name: 'jupyter-agent:mic', svgstr: MIC_SVG });
