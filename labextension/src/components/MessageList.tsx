import * as React from 'react';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';

import { ChatItem, ErrorItem, TurnEndItem, TurnReview } from '../conversation';
import { PlanCard } from '../planner/PlanCard';
import { ToolRenderer } from '../registry';
import { reviewAnchors } from '../review';
import { TurnError } from './Errors';
import { Message } from './Message';
import { CompactionNote } from './CompactionNote';
import { RedactionNote } from './RedactionNote';
import { ReviewActions, ReviewCard } from './ReviewCard';
import { ToolCard } from './ToolCard';
import { Usage } from './Usage';

export interface MessageListProps {
  items: readonly ChatItem[];
  rendermime: IRenderMimeRegistry;
  getRenderer: (toolName: string) => ToolRenderer;
  thinkingExpanded: boolean;
  /** Shown when there is nothing yet. */
  emptyText: string;
  /** Shows the planner panel (the plan cards' button); without it the cards have none. */
  onOpenPlanner?: () => void;
  /** What the turns changed, shown after each finished turn with its undo; without it, no review cards. */
  review?: { reviews: Readonly<Record<string, TurnReview>>; actions: ReviewActions };
}

/** Distance from the bottom (px) under which the list keeps following new content. */
const STICK_THRESHOLD = 48;

/** The conversation, announced politely to screen readers as it grows. */
export function MessageList(props: MessageListProps): JSX.Element {
  const { items, review } = props;
  const anchors = React.useMemo(() => reviewAnchors(items), [items]);
  const list = React.useRef<HTMLDivElement>(null);
  const stick = React.useRef(true);

  const content = React.useRef<HTMLDivElement>(null);
  const follow = React.useCallback(() => {
    const el = list.current;
    if (el && stick.current) {
      el.scrollTop = el.scrollHeight;
    }
  }, []);

  React.useLayoutEffect(follow);
  // Markdown renders asynchronously and images load late: follow size changes too.
  React.useEffect(() => {
    if (typeof ResizeObserver === 'undefined' || !content.current) {
      return;
    }
    const observer = new ResizeObserver(follow);
    observer.observe(content.current);
    return () => observer.disconnect();
  }, [follow]);

  const onScroll = () => {
    const el = list.current;
    if (el) {
      stick.current = el.scrollHeight - el.scrollTop - el.clientHeight < STICK_THRESHOLD;
    }
  };

  /** The review card of the turn `item` ends, when it ends it last and the turn changed something. */
  const reviewCard = (item: ErrorItem | TurnEndItem): JSX.Element | null => {
    const turn = item.turn;
    const r = turn && anchors.get(turn) === item.key ? review?.reviews[turn] : undefined;
    return r && review && (r.targets.length || r.conflicts.length) ? (
      <ReviewCard key={`review-${r.turn}`} review={r} actions={review.actions} />
    ) : null;
  };

  return (
    <div
      ref={list}
      className="jp-AgentChat-messages"
      data-testid="agent-messages"
      role="log"
      aria-live="polite"
      aria-label="Conversation with the agent"
      tabIndex={0}
      onScroll={onScroll}
    >
      <div ref={content} className="jp-AgentChat-messagesContent">
        {items.length === 0 && <div className="jp-AgentChat-empty">{props.emptyText}</div>}
        {items.map(item => {
          switch (item.kind) {
            case 'message':
              return (
                <Message
                  key={item.key}
                  message={item}
                  rendermime={props.rendermime}
                  thinkingExpanded={props.thinkingExpanded}
                />
              );
            case 'tool':
              return <ToolCard key={item.key} card={item.card} renderer={props.getRenderer(item.card.name)} />;
            case 'error':
              return [<TurnError key={item.key} item={item} />, reviewCard(item)];
            case 'turn_end':
              return [<Usage key={item.key} item={item} />, reviewCard(item)];
            case 'plan':
              return <PlanCard key={item.key} item={item} onOpen={props.onOpenPlanner} />;
            case 'redaction':
              return <RedactionNote key={item.key} item={item} />;
            case 'compaction':
              return <CompactionNote key={item.key} item={item} />;
          }
        })}
      </div>
    </div>
  );
}
