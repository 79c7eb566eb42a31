/**
 * The Agent Browser panel as a Lumino widget: renders BrowserViewModel's state and
 * routes the view's callbacks to it.
 */
import * as React from 'react';
import { ReactWidget } from '@jupyterlab/ui-components';

import { BrowserView, BrowserViewActions } from './BrowserView';
import { globeIcon } from './icons';
import { BrowserViewModel } from './model';

/** The widget id; stable for tests and for `shell.activateById`. */
export const BROWSER_WIDGET_ID = 'jupyter-agent-browser';

export class BrowserWidget extends ReactWidget {
  constructor(readonly model: BrowserViewModel) {
    super();
    this.id = BROWSER_WIDGET_ID;
    this.title.label = 'Agent Browser';
    this.title.caption = "The agent's browser for the current chat";
    this.title.icon = globeIcon;
    this.title.closable = true;
    this.addClass('jp-AgentBrowser');
    // update() is conflated by Lumino: many frames in one animation frame give one render.
    model.changed.connect(() => this.update(), this);
    this._actions = {
      takeControl: () => void model.takeControl(),
      handBack: () => void model.handBack(),
      input: input => void model.input(input),
      scroll: (dx, dy, x, y) => model.scroll(dx, dy, x, y),
      dismissError: () => model.dismissError()
    };
  }

  protected render(): JSX.Element {
    return <BrowserView state={this.model.state} actions={this._actions} />;
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this.model.dispose();
    super.dispose();
  }

  private _actions: BrowserViewActions;
}
