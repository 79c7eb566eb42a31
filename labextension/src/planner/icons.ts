import { LabIcon } from '@jupyterlab/ui-components';

/** Three linked boxes: a task graph. Colours follow the theme through `jp-icon3`. */
const PLAN_SVG = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <rect class="jp-icon3" fill="#616161" x="2" y="3" width="8" height="5" rx="1"/>
  <rect class="jp-icon3" fill="#616161" x="14" y="9.5" width="8" height="5" rx="1"/>
  <rect class="jp-icon3" fill="#616161" x="2" y="16" width="8" height="5" rx="1"/>
  <path class="jp-icon3" stroke="#616161" fill="none" stroke-width="1.6" d="M10 5.5h2v6.5h2M10 18.5h2V12"/>
</svg>`;

export const planIcon = new LabIcon({ name: 'jupyter-agent:plan', svgstr: PLAN_SVG });
