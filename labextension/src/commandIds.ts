/** Command ids of the extension (stable: used by shortcuts, menus and tests). */
export const CommandIDs = {
  openChat: 'jupyter-agent:open-chat',
  askAboutCell: 'jupyter-agent:ask-about-cell',
  fixError: 'jupyter-agent:fix-error'
} as const;
