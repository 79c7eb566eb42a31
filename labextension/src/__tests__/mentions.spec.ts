import {
  MentionOption,
  attachmentsFor,
  cellOptions,
  filterOptions,
  insertMention,
  mentionQuery,
  variableOptions
} from '../mentions';
import { VariablesAnswer } from '../protocol';

const ANSWER: VariablesAnswer = {
  path: 't.ipynb',
  kernel: 'running',
  more: 0,
  missing: [],
  variables: [
    { name: 'clean', type: 'function', preview: 'clean(df)' },
    { name: 'df', type: 'pandas.DataFrame', size: '3 rows × 2 columns', shape: [3, 2] },
    { name: 'big', type: 'list', size: '10000000 items' },
    { name: 'df_raw', type: 'pandas.DataFrame', size: '9 rows × 4 columns' },
    { name: 'grid', type: 'numpy.ndarray', size: '3 × 4', dtype: 'float32' }
  ]
};
const CELLS = [
  { id: 'c-1', index: 0, cellType: 'code', source: '\nimport pandas as pd\ndf = pd.read_csv("sales.csv")' },
  { id: 'c-2', index: 1, cellType: 'markdown', source: '' }
];

describe('mentionQuery', () => {
  it('finds the word after an @ that starts a word, up to the caret', () => {
    expect(mentionQuery('look at @d', 10)).toEqual({ start: 8, end: 10, query: 'd' });
    expect(mentionQuery('@', 1)).toEqual({ start: 0, end: 1, query: '' });
    expect(mentionQuery('(@df_r', 6)).toEqual({ start: 1, end: 6, query: 'df_r' });
  });

  it('ignores e-mail addresses, a caret outside the word and text without @', () => {
    expect(mentionQuery('mail me@host', 12)).toBeNull();
    expect(mentionQuery('@df and more', 12)).toBeNull();
    expect(mentionQuery('plain', 5)).toBeNull();
  });
});

describe('options', () => {
  it('offers data first, then functions and classes, with type and size', () => {
    const options = variableOptions(ANSWER);
    expect(options.map(o => o.token)).toEqual(['df', 'big', 'df_raw', 'grid', 'clean']);
    expect(options[0]).toEqual({
      kind: 'variable',
      token: 'df',
      key: 'df',
      detail: 'pandas.DataFrame · 3 rows × 2 columns'
    });
    expect(variableOptions(null)).toEqual([]);
  });

  it('offers cells by position, described by their first non-empty line', () => {
    expect(cellOptions(CELLS)).toEqual([
      { kind: 'cell', token: 'cell-1', key: 'c-1', detail: 'import pandas as pd' },
      { kind: 'cell', token: 'cell-2', key: 'c-2', detail: '(empty markdown cell)' }
    ]);
  });

  it('puts names that start with the query before names that contain it', () => {
    const options = [...variableOptions(ANSWER), ...cellOptions(CELLS)];
    expect(filterOptions(options, 'df').map(o => o.token)).toEqual(['df', 'df_raw']);
    expect(filterOptions(options, 'R').map(o => o.token)).toEqual(['df_raw', 'grid']);
    expect(filterOptions(options, 'cell').map(o => o.token)).toEqual(['cell-1', 'cell-2']);
    expect(filterOptions(options, 'pandas').map(o => o.token)).toEqual(['df', 'df_raw', 'cell-1']);
    expect(filterOptions(options, '', 3)).toHaveLength(3);
  });
});

describe('choosing and sending', () => {
  const df: MentionOption = { kind: 'variable', token: 'df', key: 'df', detail: '' };
  const cell: MentionOption = { kind: 'cell', token: 'cell-1', key: 'c-1', detail: '' };

  it('replaces the typed word with the mention and a space, caret after it', () => {
    const text = 'what is in @d';
    expect(insertMention(text, mentionQuery(text, 13)!, df)).toEqual({ text: 'what is in @df ', caret: 15 });
    const middle = 'see @ and more';
    expect(insertMention(middle, mentionQuery(middle, 5)!, cell)).toEqual({ text: 'see @cell-1 and more', caret: 12 });
  });

  it('attaches the chosen mentions still in the text, once each', () => {
    expect(attachmentsFor('plot @df against @cell-1, then @df again.', [df, cell, df])).toEqual([
      { kind: 'variable', name: 'df' },
      { kind: 'cell', id: 'c-1' }
    ]);
    expect(attachmentsFor('plot @df_raw instead', [df])).toEqual([]); // the mention was edited away
    expect(attachmentsFor('no mentions', [df, cell])).toEqual([]);
  });
});
