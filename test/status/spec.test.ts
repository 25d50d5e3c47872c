import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../lib/errors.ts';
import { assertValidStatusSpecs, parseStatusInput } from '../../lib/status/spec.ts';

const valid = {
  portal: 'acme',
  botId: 456,
  messageId: 789,
  source: { type: 'http-json', url: 'https://status.example.com/api/summary.json', timeoutMs: 3000 },
  template:
    '[B]Deploy[/B]: {{#ok}}✅ green{{/ok}}{{^ok}}❌ red{{/ok}} · {{checks.passed}}/{{checks.total}} · {{now}}',
  timezone: 'Europe/Berlin',
  fields: { urlPreview: 'N' },
  onSourceError: 'keep',
};

function issuesOf(input: unknown) {
  return parseStatusInput(input).invalid.map(({ index, field, message }) => ({ index, field, message }));
}

describe('parseStatusInput', () => {
  it('accepts the documented example as one spec at index 0', () => {
    const { specs, invalid } = parseStatusInput(valid);
    expect(invalid).toEqual([]);
    expect(specs).toEqual([
      {
        index: 0,
        spec: {
          portal: 'acme',
          botId: 456,
          messageId: 789,
          source: {
            type: 'http-json',
            url: 'https://status.example.com/api/summary.json',
            timeoutMs: 3000,
            headers: {},
          },
          template: valid.template,
          timezone: 'Europe/Berlin',
          fields: { urlPreview: 'N' },
          onSourceError: 'keep',
        },
      },
    ]);
  });

  it('fills defaults: timeout 3000, no headers, UTC, no fields, keep on source error', () => {
    const { specs } = parseStatusInput({
      portal: 'acme',
      botId: 1,
      messageId: 2,
      source: { type: 'http-health', url: 'https://example.com/health' },
      template: 'x',
    });
    expect(specs[0]?.spec).toMatchObject({
      source: { type: 'http-health', timeoutMs: 3000, headers: {} },
      timezone: 'UTC',
      fields: {},
      onSourceError: 'keep',
    });
  });

  it('normalises urlPreview booleans to Y and N', () => {
    const parsed = parseStatusInput({
      messages: [
        { ...valid, messageId: 1, fields: { urlPreview: true } },
        { ...valid, messageId: 2, fields: { urlPreview: false } },
      ],
    });
    expect(parsed.specs.map(({ spec }) => spec.fields.urlPreview)).toEqual(['Y', 'N']);
  });

  it('accepts a none source, keyboard "N", an attach object and an error template', () => {
    const { specs, invalid } = parseStatusInput({
      ...valid,
      source: { type: 'none' },
      fields: { keyboard: 'N', attach: { COLOR_TOKEN: 'alert', BLOCKS: [{ MESSAGE: 'hi' }] } },
      onSourceError: { template: 'Status unavailable: {{error.code}}' },
    });
    expect(invalid).toEqual([]);
    expect(specs[0]?.spec.source).toEqual({ type: 'none' });
    expect(specs[0]?.spec.onSourceError).toEqual({ template: 'Status unavailable: {{error.code}}' });
  });

  it('reports a bad spec by index and field and still returns the valid ones', () => {
    const input = {
      messages: [
        { ...valid, messageId: 1 },
        { ...valid, messageId: 2 },
        { ...valid, messageId: 3 },
        { ...valid, messageId: 4, source: { type: 'http-json', url: 'http://status.example.com/x' } },
      ],
    };
    const { specs, invalid } = parseStatusInput(input);
    expect(specs.map(({ index }) => index)).toEqual([0, 1, 2]);
    expect(invalid).toEqual([{ index: 3, field: 'messages[3].source.url', message: 'must be an https URL' }]);
  });

  it('accepts http source URLs only when allowHttp is set', () => {
    const spec = { ...valid, source: { type: 'http-json', url: 'http://127.0.0.1:8080/x' } };
    expect(parseStatusInput(spec).invalid).toHaveLength(1);
    expect(parseStatusInput(spec, { allowHttp: true }).invalid).toEqual([]);
  });

  it.each([
    ['portal', { portal: 'Acme!' }, 'portal', 'must match'],
    ['botId', { botId: 0 }, 'botId', 'must be a positive integer'],
    ['messageId', { messageId: 1.5 }, 'messageId', 'must be a positive integer'],
    ['messageId type', { messageId: '789' }, 'messageId', 'must be a positive integer'],
    ['template', { template: '   ' }, 'template', 'must not be empty'],
    ['template syntax', { template: '{{#ok}}green' }, 'template', 'is not a valid template'],
    ['timezone', { timezone: 'Mars/Olympus' }, 'timezone', 'must be an IANA time zone name'],
    ['timezone offset', { timezone: '+01:00' }, 'timezone', 'must be an IANA time zone name'],
    [
      'source type',
      { source: { type: 'ftp' } },
      'source.type',
      'must be one of http-json, http-health, none',
    ],
    ['source url', { source: { type: 'http-json', url: 'not a url' } }, 'source.url', 'must be an https URL'],
    [
      'source url credentials',
      { source: { type: 'http-json', url: 'https://user:pw@example.com/' } },
      'source.url',
      'must not hold a user name or password',
    ],
    [
      'timeoutMs',
      { source: { type: 'http-json', url: 'https://e.com/', timeoutMs: 10_001 } },
      'source.timeoutMs',
      'must be an integer from 1 to 10000',
    ],
    [
      'header value',
      { source: { type: 'http-json', url: 'https://e.com/', headers: { 'x-key': 5 } } },
      'source.headers.x-key',
      'must be a string',
    ],
    [
      'header name',
      { source: { type: 'http-json', url: 'https://e.com/', headers: { 'bad name': 'v' } } },
      'source.headers',
      'must hold valid HTTP header names and values',
    ],
    ['source none extras', { source: { type: 'none', url: 'https://e.com/' } }, 'source.url', 'unknown key'],
    ['fields.keyboard', { fields: { keyboard: 'Y' } }, 'fields.keyboard', 'must be an array of buttons'],
    [
      'fields.attach',
      { fields: { attach: 'text' } },
      'fields.attach',
      'must be an array of blocks or an object with BLOCKS',
    ],
    [
      'fields.attach size',
      { fields: { attach: [{ MESSAGE: 'x'.repeat(60_001) }] } },
      'fields.attach',
      'the limit is 60,000',
    ],
    [
      'fields.urlPreview',
      { fields: { urlPreview: 'yes' } },
      'fields.urlPreview',
      'must be "Y", "N", true or false',
    ],
    ['fields.message', { fields: { message: 'static' } }, 'fields.message', 'unknown key'],
    ['onSourceError', { onSourceError: 'retry' }, 'onSourceError', 'must be "keep" or { "template": "..." }'],
  ])('refuses a bad %s with its path', (_name, patch, field, message) => {
    const issues = issuesOf({ messages: [valid, { ...valid, messageId: 2, ...patch }] });
    expect(issues).toContainEqual({
      index: 1,
      field: `messages[1].${field}`,
      message: expect.stringContaining(message),
    });
  });

  // The edit rules of the API and the queue, on the status specs too: each of these was refused by the
  // update API and the drain, and sent by the status refresher.
  it.each([
    ['a button without TEXT', { keyboard: [{ COMMAND: 'go' }] }, 'fields.keyboard[0]'],
    ['lower-case button keys', { keyboard: [{ text: 'Go', link: 'https://e.com' }] }, 'fields.keyboard[0]'],
    [
      'a button with two actions',
      { keyboard: [{ TEXT: 'Go', LINK: 'https://e.com', COMMAND: 'go' }] },
      'fields.keyboard[0]',
    ],
    ['an unknown attach block type', { attach: [{ FOO: 1 }] }, 'fields.attach'],
    ['an attach of 80,016 bytes', { attach: [{ MESSAGE: 'é'.repeat(40_000) }] }, 'fields.attach'],
  ])('refuses what an edit would be refused for: %s', (_name, fields, field) => {
    const issues = issuesOf({ ...valid, fields });
    expect(issues).toHaveLength(1);
    expect(issues[0]?.field.startsWith(field)).toBe(true);
    expect(issues[0]?.message.length).toBeGreaterThan(0);
  });

  it('keeps the static fields in the edit rules’ normal form: a keyboard object becomes its buttons', () => {
    const { specs, invalid } = parseStatusInput({
      ...valid,
      fields: { keyboard: { BUTTONS: [{ TEXT: 'Logs', LINK: 'https://ci.example/1' }] } },
    });
    expect(invalid).toEqual([]);
    expect(specs[0]?.spec.fields.keyboard).toEqual([{ TEXT: 'Logs', LINK: 'https://ci.example/1' }]);
  });

  it('names every unknown key, not only the first', () => {
    const issues = issuesOf({ ...valid, colour: 'red', priority: 1 });
    expect(issues.map(({ field }) => field)).toEqual(['colour', 'priority']);
    expect(issues[0]?.message).toContain('unknown key');
  });

  it('reports every problem of one spec, not only the first', () => {
    const issues = issuesOf({ ...valid, portal: '', botId: -1, template: '' });
    expect(issues.map(({ field }) => field)).toEqual(['portal', 'botId', 'template']);
  });

  it('reports a missing required key by name', () => {
    const { template: _template, ...withoutTemplate } = valid;
    expect(issuesOf(withoutTemplate)).toEqual([{ index: 0, field: 'template', message: 'is required' }]);
  });

  it('refuses a second spec for the same message', () => {
    const { specs, invalid } = parseStatusInput({ messages: [valid, { ...valid, template: 'other' }] });
    expect(specs).toHaveLength(1);
    expect(invalid).toEqual([
      { index: 1, field: 'messages[1].messageId', message: expect.stringContaining('messages[0]') },
    ]);
  });

  it.each([
    ['null', null],
    ['a string', 'acme'],
    ['an array', [valid]],
  ])('reports %s as one problem at index -1', (_name, input) => {
    expect(parseStatusInput(input)).toEqual({
      specs: [],
      invalid: [{ index: -1, field: '', message: expect.stringContaining('messages') }],
    });
  });

  it('reports a messages key that is not a non-empty array at index -1', () => {
    expect(issuesOf({ messages: {} })).toEqual([
      { index: -1, field: 'messages', message: 'must be a non-empty array of status specs' },
    ]);
    expect(issuesOf({ messages: [] })).toHaveLength(1);
  });

  it('refuses keys beside messages at index -1 and still parses the specs', () => {
    const { specs, invalid } = parseStatusInput({ messages: [valid], dryRun: true });
    expect(specs).toHaveLength(1);
    expect(invalid).toEqual([
      { index: -1, field: 'dryRun', message: expect.stringContaining('unknown key') },
    ]);
  });

  it('reports a non-object entry of messages at its index', () => {
    expect(issuesOf({ messages: [valid, 42] })).toEqual([
      { index: 1, field: 'messages[1]', message: 'must be a status spec object' },
    ]);
  });
});

describe('assertValidStatusSpecs', () => {
  it('returns the specs when all are valid', () => {
    expect(assertValidStatusSpecs({ messages: [valid] }, 'deploy-status')).toHaveLength(1);
  });

  it('throws one ConfigError listing every problem with its path', () => {
    const input = {
      messages: [
        { ...valid, botId: 0 },
        { ...valid, messageId: 2, source: { type: 'http-json', url: 'http://e.com/?key=SECRET' } },
      ],
    };
    let thrown: unknown;
    try {
      assertValidStatusSpecs(input, 'schedules.deployStatus');
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(ConfigError);
    const error = thrown as ConfigError;
    expect(error.variable).toBe('schedules.deployStatus');
    expect(error.message).toContain('schedules.deployStatus: 2 problems');
    expect(error.message).toContain('messages[0].botId: must be a positive integer');
    expect(error.message).toContain('messages[1].source.url: must be an https URL');
    expect(error.message).not.toContain('SECRET');
  });
});
