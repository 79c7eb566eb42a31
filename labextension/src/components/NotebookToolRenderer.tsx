import * as React from 'react';

import { ToolRenderer, ToolRendererProps } from '../registry';
import { DefaultToolRenderer } from './DefaultToolRenderer';
import { baseName } from './format';

/** Opens a notebook and, when given, scrolls to a cell. */
export type OpenCell = (path: string, cellId?: string) => void;

/** Notebook tools: the default body plus a link to the cell (or notebook) the call touched. */
export function createNotebookToolRenderer(openCell: OpenCell): ToolRenderer {
  function NotebookToolRenderer({ card }: ToolRendererProps): JSX.Element {
    const { path, cellId } = card;
    const deleted = card.name.endsWith('delete_cell');
    return (
      <>
        {path && (
          <button
            className="jp-AgentChat-link"
            data-testid="agent-open-cell"
            aria-label={cellId && !deleted ? `Open cell ${cellId} in ${path}` : `Open notebook ${path}`}
            title={path}
            onClick={() => openCell(path, deleted ? undefined : cellId)}
          >
            {cellId && !deleted ? 'open cell' : 'open notebook'} · {baseName(path)}
          </button>
        )}
        <DefaultToolRenderer card={card} />
      </>
    );
  }
  return NotebookToolRenderer;
}
