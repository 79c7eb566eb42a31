import * as React from 'react';

import { DefaultToolRenderer } from '../components/DefaultToolRenderer';
import { ToolRenderer, ToolRendererProps } from '../registry';

/**
 * Browser tools' cards: the page's title and URL, the screenshot as a thumbnail that
 * grows on click, a "watch live" link to the Agent Browser, then the default body.
 */
export function createBrowserToolRenderer(openBrowser?: () => void): ToolRenderer {
  function BrowserToolRenderer({ card }: ToolRendererProps): JSX.Element {
    const [enlarged, setEnlarged] = React.useState(false);
    const image = card.images.find(i => i.mime.startsWith('image/'));
    const url = typeof card.data.url === 'string' ? card.data.url : '';
    const title = typeof card.data.title === 'string' ? card.data.title : '';
    const what = title || url || 'the page';
    return (
      <>
        {(image || url) && (
          <div className={`jp-AgentBrowser-card${enlarged ? ' jp-mod-enlarged' : ''}`}>
            {image && (
              <button
                className="jp-AgentBrowser-thumbButton"
                aria-expanded={enlarged}
                aria-label={enlarged ? `Shrink the screenshot of ${what}` : `Enlarge the screenshot of ${what}`}
                onClick={() => setEnlarged(!enlarged)}
              >
                <img
                  className="jp-AgentBrowser-thumb"
                  data-testid="agent-browser-thumbnail"
                  src={`data:${image.mime};base64,${image.data}`}
                  alt={`Screenshot of ${what}`}
                />
              </button>
            )}
            <div className="jp-AgentBrowser-cardText">
              {title && <div className="jp-AgentBrowser-cardTitle">{title}</div>}
              {url && (
                <div className="jp-AgentBrowser-cardUrl" data-testid="agent-browser-card-url" title={url}>
                  {url}
                </div>
              )}
              {openBrowser && (
                <button
                  className="jp-AgentChat-link jp-AgentBrowser-watch"
                  data-testid="agent-browser-watch"
                  aria-label="Watch the agent's browser live"
                  onClick={openBrowser}
                >
                  watch live
                </button>
              )}
            </div>
          </div>
        )}
        <DefaultToolRenderer card={{ ...card, images: [] }} />
      </>
    );
  }
  return BrowserToolRenderer;
}
