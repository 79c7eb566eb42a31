/**
 * The Agent Usage panel as a Lumino widget: renders UsageModel's state, and keeps the model polling only
 * while the panel can be seen (its tab shown and the browser tab in front).
 */
import * as React from 'react';
import { LabIcon, ReactWidget } from '@jupyterlab/ui-components';
import { Message } from '@lumino/messaging';

import { UsageModel } from './model';
import { UsageActions, UsagePanel } from './UsagePanel';

/** Bars of a chart; colours follow the theme through `jp-icon3`. */
const USAGE_SVG = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <rect class="jp-icon3" fill="#616161" x="3" y="12" width="4" height="9" rx="0.5"/>
  <rect class="jp-icon3" fill="#616161" x="10" y="4" width="4" height="17" rx="0.5"/>
  <rect class="jp-icon3" fill="#616161" x="17" y="8" width="4" height="13" rx="0.5"/>
</svg>`;

export const usageIcon = new LabIcon({ name: 'jupyter-agent:usage', svgstr: USAGE_SVG });

export class UsageView extends ReactWidget {
  constructor(readonly model: UsageModel) {
    super();
    this.addClass('jp-agent-usage-view');
    // update() is conflated by Lumino: a burst of changes gives one render.
    model.changed.connect(() => this.update(), this);
    this._actions = {
      setRange: (since, until) => model.setRange(since, until),
      setQuickRange: days => model.setQuickRange(days),
      setUser: user => model.setUser(user),
      refresh: () => void model.refresh()
    };
  }

  /** Browser tab shown or hidden. */
  handleEvent(): void {
    this._syncPolling();
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    document.removeEventListener('visibilitychange', this);
    this.model.dispose();
    super.dispose();
  }

  protected render(): JSX.Element {
    return <UsagePanel state={this.model.state} actions={this._actions} />;
  }

  protected onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    document.addEventListener('visibilitychange', this);
    this._syncPolling();
  }

  protected onBeforeDetach(msg: Message): void {
    document.removeEventListener('visibilitychange', this);
    this._live = false;
    this.model.stop();
    super.onBeforeDetach(msg);
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    this._syncPolling();
  }

  protected onAfterHide(msg: Message): void {
    super.onAfterHide(msg);
    this._syncPolling();
  }

  /** Poll while someone can see the panel; a panel shown again asks at once. */
  private _syncPolling(): void {
    const live = this.isVisible && document.visibilityState !== 'hidden';
    if (live !== this._live) {
      this._live = live;
      if (live) {
        this.model.start();
      } else {
        this.model.stop();
      }
    }
  }

  private _actions: UsageActions;
  private _live = false;
}
