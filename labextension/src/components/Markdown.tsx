import * as React from 'react';
import { IRenderMimeRegistry, MimeModel } from '@jupyterlab/rendermime';

const MIME = 'text/markdown';
/** Minimum time between two renders of a message that is still streaming. */
const STREAM_RENDER_INTERVAL_MS = 120;

export interface MarkdownProps {
  text: string;
  rendermime: IRenderMimeRegistry;
  /** True while text is still arriving: renders are throttled. */
  streaming?: boolean;
}

/** Markdown through JupyterLab's renderer (sanitized, code highlighted, math typeset). */
export function Markdown({ text, rendermime, streaming }: MarkdownProps): JSX.Element {
  const host = React.useRef<HTMLDivElement>(null);
  const renderer = React.useMemo(() => rendermime.createRenderer(MIME), [rendermime]);
  const state = React.useRef({ busy: false, pending: null as string | null, last: 0 });

  React.useEffect(() => {
    host.current?.appendChild(renderer.node);
    return () => renderer.dispose();
  }, [renderer]);

  React.useEffect(() => {
    const s = state.current;
    s.pending = text;
    if (s.busy) {
      return;
    }
    const run = async (): Promise<void> => {
      s.busy = true;
      while (s.pending !== null && !renderer.isDisposed) {
        const wait = streaming ? STREAM_RENDER_INTERVAL_MS - (Date.now() - s.last) : 0;
        if (wait > 0) {
          await new Promise(resolve => setTimeout(resolve, wait));
        }
        const source = s.pending;
        s.pending = null;
        s.last = Date.now();
        try {
          await renderer.renderModel(new MimeModel({ data: { [MIME]: source }, trusted: false }));
        } catch (error) {
          renderer.node.textContent = source;
        }
      }
      s.busy = false;
    };
    void run();
  }, [text, renderer, streaming]);

  return <div className="jp-AgentChat-markdown" ref={host} />;
}
