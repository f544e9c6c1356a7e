/**
 * wasinn-jupyter for JupyterLab: the "wasi-nn timeline" side panel and its status-bar item. This file only wires
 * the plugin: one KernelFeed per notebook (tracker.ts), the panel (panel.ts) and the status item (statusbar.ts)
 * showing the active notebook's feed.
 */
import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { IStatusBar } from '@jupyterlab/statusbar';

import { TimelinePanel } from './panel';
import { TimelineStatus } from './statusbar';
import { KernelFeed } from './tracker';

/** Command ids, in one namespace. */
export const CommandIDs = {
  open: 'wasinn-timeline:open'
};

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'wasinn-jupyter:timeline',
  description: 'A side panel plotting each wasi-nn call of the active notebook’s kernel, and a status-bar item.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ILayoutRestorer, IStatusBar, ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    notebooks: INotebookTracker,
    restorer: ILayoutRestorer | null,
    statusBar: IStatusBar | null,
    palette: ICommandPalette | null
  ) => {
    const feeds = new Map<NotebookPanel, KernelFeed>();
    const panel = new TimelinePanel();
    app.shell.add(panel, 'right', { rank: 900 });
    restorer?.add(panel, panel.id);

    app.commands.addCommand(CommandIDs.open, {
      label: 'Show the wasi-nn Timeline',
      caption: 'Each wasi-nn call of the active notebook’s kernel, plotted',
      execute: () => app.shell.activateById(panel.id)
    });
    palette?.addItem({ command: CommandIDs.open, category: 'wasi-nn' });

    const status = new TimelineStatus(() => void app.commands.execute(CommandIDs.open));
    statusBar?.registerStatusItem('wasinn-jupyter:timeline-status', {
      item: status,
      align: 'left',
      rank: 50
    });

    const track = (nb: NotebookPanel) => {
      if (feeds.has(nb)) {
        return;
      }
      feeds.set(nb, new KernelFeed(nb.sessionContext));
      nb.disposed.connect(() => {
        feeds.get(nb)?.dispose();
        feeds.delete(nb);
      });
    };
    const follow = () => {
      const current = notebooks.currentWidget;
      if (current) {
        track(current);
      }
      const feed = current ? (feeds.get(current) ?? null) : null;
      panel.setFeed(feed);
      status.setFeed(feed);
    };
    notebooks.forEach(track);
    notebooks.widgetAdded.connect((_, nb) => track(nb));
    notebooks.currentChanged.connect(follow);
    follow();
  }
};

export default plugin;
