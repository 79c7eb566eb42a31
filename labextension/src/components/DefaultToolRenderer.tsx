import * as React from 'react';

import { ToolRendererProps } from '../registry';
import { formatArguments } from './format';

/** Results up to this size are shown directly; longer ones are folded. */
const SHORT_RESULT = 240;

/** Fallback body of a tool card: arguments (folded), the result and its images. */
export function DefaultToolRenderer({ card }: ToolRendererProps): JSX.Element {
  const args = formatArguments(card.arguments);
  const result = card.content === undefined ? card.summary ?? '' : formatArguments(card.content);
  const short = result.length <= SHORT_RESULT && result.split('\n').length <= 4;
  return (
    <div className="jp-AgentChat-toolBody">
      {args && (
        <details className="jp-AgentChat-toolArgs">
          <summary>Arguments</summary>
          <pre>{args}</pre>
        </details>
      )}
      {result &&
        (short ? (
          <pre className="jp-AgentChat-toolResult">{result}</pre>
        ) : (
          <details className="jp-AgentChat-toolResult" open={card.status === 'error'}>
            <summary>{firstLine(result)}</summary>
            <pre>{result}</pre>
          </details>
        ))}
      {card.images.map((image, i) =>
        image.mime.startsWith('image/') ? (
          <img
            key={i}
            className="jp-AgentChat-toolImage"
            src={`data:${image.mime};base64,${image.data}`}
            alt={`Image ${i + 1} from ${card.name}`}
          />
        ) : null
      )}
    </div>
  );
}

function firstLine(text: string): string {
  const line = text.split('\n', 1)[0];
  return line.length > 100 ? `${line.slice(0, 100)}…` : line;
}
