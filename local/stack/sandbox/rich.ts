// Keyboards and attach blocks as the chat shows them, plainly: buttons as buttons, blocks as what
// they say. Every value is escaped; a link is shown only when it is http(s).
import { bbcodeToHtml, escapeHtml as e } from './bbcode.ts';

type Json = Record<string, unknown>;

const isRecord = (value: unknown): value is Json =>
  typeof value === 'object' && value !== null && !Array.isArray(value);
const text = (value: unknown): string =>
  typeof value === 'string' || typeof value === 'number' ? String(value) : '';
const safeUrl = (value: unknown): string | undefined => {
  const url = text(value);
  return /^https?:\/\//i.test(url) ? url : undefined;
};
const color = (value: unknown): string | undefined => {
  const c = text(value);
  return /^#[0-9a-f]{3,8}$/i.test(c) ? c : undefined;
};

/** A keyboard (`{BUTTONS: [...]}`, `NEWLINE` entries break the row) as rows of buttons. */
export function renderKeyboard(keyboard: unknown, testId: string): string {
  const buttons = isRecord(keyboard) && Array.isArray(keyboard.BUTTONS) ? keyboard.BUTTONS : [];
  if (buttons.length === 0) return '';
  const rows: string[][] = [[]];
  for (const button of buttons) {
    if (!isRecord(button)) continue;
    if (text(button.TYPE).toUpperCase() === 'NEWLINE') {
      rows.push([]);
      continue;
    }
    const style = [
      color(button.BG_COLOR) ? `background:${color(button.BG_COLOR)}` : '',
      color(button.TEXT_COLOR) ? `color:${color(button.TEXT_COLOR)}` : '',
    ]
      .filter(Boolean)
      .join(';');
    const link = safeUrl(button.LINK);
    const title = link ? `opens ${link}` : button.COMMAND ? `command ${text(button.COMMAND)}` : '';
    const block = text(button.DISPLAY).toUpperCase() === 'BLOCK' ? ' block' : '';
    rows
      .at(-1)
      ?.push(
        `<button type="button" class="kb-button${block}" disabled${style ? ` style="${e(style)}"` : ''}${title ? ` title="${e(title)}"` : ''}>${e(text(button.TEXT))}</button>`,
      );
  }
  const html = rows
    .filter((row) => row.length > 0)
    .map((row) => `<div class="kb-row">${row.join('')}</div>`)
    .join('');
  return `<div class="keyboard" data-testid="${e(testId)}">${html}</div>`;
}

function block(item: Json): string {
  if ('MESSAGE' in item) return `<div class="at-message">${bbcodeToHtml(text(item.MESSAGE))}</div>`;
  if ('DELIMITER' in item) return '<hr class="at-delimiter">';
  if (isRecord(item.LINK)) {
    const link = item.LINK;
    const url = safeUrl(link.LINK);
    const name = e(text(link.NAME) || text(link.LINK));
    const desc = text(link.DESC) ? `<div class="muted">${e(text(link.DESC))}</div>` : '';
    return `<div class="at-link">${url ? `<a href="${e(url)}" rel="noreferrer">${name}</a>` : name}${desc}</div>`;
  }
  if (Array.isArray(item.GRID)) {
    const rows = item.GRID.filter(isRecord)
      .map(
        (cell) =>
          `<div class="at-cell"><dt>${e(text(cell.NAME))}</dt><dd>${bbcodeToHtml(text(cell.VALUE))}</dd></div>`,
      )
      .join('');
    return `<dl class="at-grid">${rows}</dl>`;
  }
  if (isRecord(item.IMAGE) || Array.isArray(item.IMAGE)) {
    const images = (Array.isArray(item.IMAGE) ? item.IMAGE : [item.IMAGE]).filter(isRecord);
    return images
      .map((image) => `<div class="at-file">🖼 ${e(text(image.NAME) || text(image.LINK) || 'image')}</div>`)
      .join('');
  }
  if (isRecord(item.FILE) || Array.isArray(item.FILE)) {
    const files = (Array.isArray(item.FILE) ? item.FILE : [item.FILE]).filter(isRecord);
    return files
      .map((file) => `<div class="at-file">📎 ${e(text(file.NAME) || text(file.LINK) || 'file')}</div>`)
      .join('');
  }
  if (isRecord(item.USER)) return `<div class="at-user">👤 ${e(text(item.USER.NAME))}</div>`;
  const [kind] = Object.keys(item);
  return `<div class="muted">(${e(kind ?? 'empty')} block)</div>`;
}

/** An attach (a list of blocks, or `{COLOR, BLOCKS}`) as a bordered card of its blocks. */
export function renderAttach(attach: unknown, testId: string): string {
  const blocks = Array.isArray(attach)
    ? attach
    : isRecord(attach) && Array.isArray(attach.BLOCKS)
      ? attach.BLOCKS
      : [];
  if (blocks.length === 0) return '';
  const accent = isRecord(attach) ? color(attach.COLOR) : undefined;
  const items = blocks.filter(isRecord).map(block).join('');
  return `<div class="attach" data-testid="${e(testId)}"${accent ? ` style="border-color:${accent}"` : ''}>${items}</div>`;
}
