// The check's report: a markdown table to paste into an issue, a step per row.
import { type Answer, sameAnswer, summary } from './answers.ts';

export interface Row {
  step: string;
  portal: Answer;
  emulator: Answer;
}

export interface Report {
  host: string;
  /** The portal's imbot.v2 REST revision, when it said. */
  revision: number | undefined;
  at: Date;
  setup: readonly string[];
  rows: readonly Row[];
  /** Steps in the sequence: more than rows when the check was interrupted. */
  steps: number;
  cleanup: readonly string[];
}

export function differences(rows: readonly Row[]): number {
  return rows.filter((row) => !sameAnswer(row.portal, row.emulator)).length;
}

// A `|` would end the cell, inside backticks too.
const cell = (text: string) => text.replace(/\|/g, '\\|').replace(/\n/g, ' ');

function description(answer: Answer): string {
  return answer.kind === 'error' && answer.description ? `\`${answer.description}\`` : summary(answer);
}

export function renderReport(report: Report): string {
  const { host, revision, rows, steps } = report;
  const differing = differences(rows);
  const lines = [
    `### \`npm run b24 -- check\`: ${host} against the emulator`,
    '',
    `Portal ${host}${revision === undefined ? '' : ` (imbot.v2 REST revision ${revision})`} against this checkout's ` +
      `Bitrix24 emulator (local/bitrix24-emulator: its default, documented rules), ${report.at.toISOString().slice(0, 16)}Z. ` +
      'Each answer is reduced to its HTTP status and the shape of its `result` (ids, texts and times left out) ' +
      'or its error code; `+ time`: the answer had a `time` object; `2xx`: a success (the client does not say which).',
    '',
    ...report.setup.map((note) => `- ${note}`),
    '',
    '| # | step | portal | emulator | |',
    '|--:|---|---|---|---|',
    ...rows.map((row, i) => {
      const verdict = sameAnswer(row.portal, row.emulator) ? 'same' : '**DIFFERENT**';
      return `| ${i + 1} | ${cell(row.step)} | ${cell(summary(row.portal))} | ${cell(summary(row.emulator))} | ${verdict} |`;
    }),
    '',
    `${steps} steps: ${rows.length - differing} same, ${differing} DIFFERENT` +
      `${rows.length < steps ? `; interrupted after step ${rows.length}` : ''}.`,
  ];
  const explained = rows.flatMap((row, i) =>
    sameAnswer(row.portal, row.emulator) || (row.portal.kind !== 'error' && row.emulator.kind !== 'error')
      ? []
      : [
          `- ${i + 1}. ${cell(row.step)}: portal ${description(row.portal)}; emulator ${description(row.emulator)}`,
        ],
  );
  if (explained.length > 0) lines.push('', 'What the differing errors said:', '', ...explained);
  if (report.cleanup.length > 0) lines.push('', 'Cleanup:', '', ...report.cleanup.map((line) => `- ${line}`));
  return `${lines.join('\n')}\n`;
}
