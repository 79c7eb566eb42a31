/**
 * The Agent Planner panel as a Lumino widget: renders PlannerModel's state and routes the view's
 * callbacks to it.
 */
import * as React from 'react';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { ReactWidget } from '@jupyterlab/ui-components';

import { IToolRendererRegistry } from '../registry';
import { planIcon } from './icons';
import { PlannerModel } from './model';
import { PlannerActions, PlannerView } from './PlannerView';

/** The widget id; stable for tests and for `shell.activateById`. */
export const PLANNER_WIDGET_ID = 'jupyter-agent-planner';

export class PlannerWidget extends ReactWidget {
  constructor(
    readonly model: PlannerModel,
    private readonly _rendermime: IRenderMimeRegistry,
    private readonly _registry: IToolRendererRegistry
  ) {
    super();
    this.id = PLANNER_WIDGET_ID;
    this.title.label = 'Agent Planner';
    this.title.caption = "The plan of the current chat's session: its tasks, live";
    this.title.icon = planIcon;
    this.title.closable = true;
    this.addClass('jp-AgentPlanner');
    // update() is conflated by Lumino: a burst of task events gives one render.
    model.changed.connect(() => this.update(), this);
    _registry.changed.connect(() => this.update(), this);
    this._actions = {
      approve: () => model.approve(),
      edit: plan => model.edit(plan),
      control: (action, taskId) => model.control(action, taskId),
      transcript: taskId => model.transcript(taskId),
      approvals: () => model.approvals(),
      decide: (callId, decision) => model.decide(callId, decision),
      dismissError: () => model.dismissError()
    };
  }

  protected render(): JSX.Element {
    return (
      <PlannerView
        state={this.model.state}
        actions={this._actions}
        rendermime={this._rendermime}
        getRenderer={name => this._registry.get(name)}
      />
    );
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this.model.dispose();
    super.dispose();
  }

  private _actions: PlannerActions;
}
