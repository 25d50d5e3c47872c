import { describe, expect, it } from 'vitest';
import { StatusRenderError } from '../../lib/status/errors.ts';
import { formatNow, MESSAGE_MAX_CHARS, renderTemplate } from '../../lib/status/template.ts';

// 2026-11-25 13:05:09 UTC
const now = new Date(Date.UTC(2026, 10, 25, 13, 5, 9));
const utc = { now, timezone: 'UTC' };

function renderError(fn: () => unknown): StatusRenderError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(StatusRenderError);
    return error as StatusRenderError;
  }
  throw new Error('expected a StatusRenderError');
}

describe('renderTemplate', () => {
  it('reaches nested values with dotted paths', () => {
    const data = { checks: { passed: 12, total: 12 }, service: { region: { name: 'eu-1' } } };
    expect(renderTemplate('{{checks.passed}}/{{checks.total}} in {{service.region.name}}', data, utc)).toBe(
      '12/12 in eu-1',
    );
  });

  it('renders a section for a truthy value and an inverted section for a falsy one', () => {
    const template = '{{#ok}}✅ green{{/ok}}{{^ok}}❌ red{{/ok}}';
    expect(renderTemplate(template, { ok: true }, utc)).toBe('✅ green');
    expect(renderTemplate(template, { ok: false }, utc)).toBe('❌ red');
    expect(renderTemplate(template, {}, utc)).toBe('❌ red');
  });

  it('repeats a section over an array, including a top-level JSON array', () => {
    expect(
      renderTemplate('{{#items}}[{{name}}]{{/items}}', { items: [{ name: 'a' }, { name: 'b' }] }, utc),
    ).toBe('[a][b]');
    expect(renderTemplate('{{#.}}{{name}} {{/.}}at {{now}}', [{ name: 'api' }, { name: 'db' }], utc)).toBe(
      'api db at 2026-11-25 13:05',
    );
  });

  it('does not HTML-escape <, &, quotes or BB-code', () => {
    const data = { text: '<b>R&D</b> "quoted" [b]bold[/b]' };
    expect(renderTemplate('{{text}}', data, utc)).toBe('<b>R&D</b> "quoted" [b]bold[/b]');
  });

  it('leaves the global mustache escaping alone', async () => {
    renderTemplate('{{x}}', { x: '<' }, utc);
    const Mustache = (await import('mustache')).default;
    expect(Mustache.render('{{x}}', { x: '<' })).toBe('&lt;');
  });

  it('formats now as YYYY-MM-DD HH:mm in the spec time zone and nowIso in UTC', () => {
    expect(renderTemplate('{{now}} | {{nowIso}}', {}, { now, timezone: 'Europe/Berlin' })).toBe(
      '2026-11-25 14:05 | 2026-11-25T13:05:09.000Z',
    );
    expect(renderTemplate('{{now}}', {}, { now, timezone: 'Asia/Kolkata' })).toBe('2026-11-25 18:35');
    expect(renderTemplate('{{now}}', {}, { now, timezone: 'America/New_York' })).toBe('2026-11-25 08:05');
  });

  it('uses a 24-hour clock with midnight as 00', () => {
    expect(formatNow(new Date(Date.UTC(2026, 0, 1, 23, 30)), 'Europe/Berlin')).toBe('2026-01-02 00:30');
  });

  it('keeps the built-in now when the source has a field of the same name', () => {
    expect(renderTemplate('{{now}}', { now: 'source value' }, utc)).toBe('2026-11-25 13:05');
  });

  it('renders with built-in data only when the data is null', () => {
    expect(renderTemplate('at {{now}}', null, utc)).toBe('at 2026-11-25 13:05');
  });

  it('accepts exactly 20,000 code points, counting an emoji as one', () => {
    const text = renderTemplate('{{x}}', { x: '✅'.repeat(MESSAGE_MAX_CHARS) }, utc);
    expect([...text]).toHaveLength(MESSAGE_MAX_CHARS);
    // An astral-plane emoji is two UTF-16 units but one character.
    expect(renderTemplate('{{x}}', { x: '🚀'.repeat(MESSAGE_MAX_CHARS) }, utc)).toHaveLength(
      2 * MESSAGE_MAX_CHARS,
    );
  });

  it('refuses a message over 20,000 code points with MESSAGE_TOO_LONG instead of truncating', () => {
    const error = renderError(() => renderTemplate('{{x}}!', { x: 'a'.repeat(MESSAGE_MAX_CHARS) }, utc));
    expect(error.code).toBe('MESSAGE_TOO_LONG');
    expect(error.message).toContain('20,001');
    expect(error.message).toContain('20,000');
  });

  it('refuses a blank result with MESSAGE_EMPTY', () => {
    expect(renderError(() => renderTemplate('{{#ok}}up{{/ok}}  ', { ok: false }, utc)).code).toBe(
      'MESSAGE_EMPTY',
    );
  });

  it('refuses a template that does not parse with TEMPLATE_INVALID', () => {
    expect(renderError(() => renderTemplate('{{#ok}}up', {}, utc)).code).toBe('TEMPLATE_INVALID');
  });

  it('refuses an unknown time zone with TIMEZONE_INVALID', () => {
    expect(renderError(() => renderTemplate('{{now}}', {}, { now, timezone: 'Mars/Olympus' })).code).toBe(
      'TIMEZONE_INVALID',
    );
  });
});
