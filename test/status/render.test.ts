import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderStatus } from '../../lib/status/render.ts';
import { assertValidStatusSpecs, type StatusSpec } from '../../lib/status/spec.ts';
import { type SourceServer, startSourceServer } from './source-server.ts';

let server: SourceServer;
beforeAll(async () => {
  server = await startSourceServer();
});
afterAll(async () => {
  await server.close();
});

const now = new Date(Date.UTC(2026, 10, 25, 13, 5));
const options = { allowHttp: true, now };

function spec(patch: Record<string, unknown>): StatusSpec {
  const [parsed] = assertValidStatusSpecs(
    {
      portal: 'acme',
      botId: 456,
      messageId: 789,
      source: { type: 'http-json', url: `${server.origin}/summary.json` },
      template:
        '[B]Deploy[/B]: {{#ok}}✅ green{{/ok}}{{^ok}}❌ red{{/ok}} · {{checks.passed}}/{{checks.total}} · {{now}}',
      timezone: 'Europe/Berlin',
      ...patch,
    },
    'test spec',
    { allowHttp: true },
  );
  if (!parsed) throw new Error('no spec');
  return parsed;
}

describe('renderStatus', () => {
  it('renders the template from the source JSON and adds the static fields', async () => {
    const keyboard = [{ TEXT: 'Open', LINK: 'https://status.example.com' }];
    const result = await renderStatus(spec({ fields: { urlPreview: false, keyboard } }), options);
    expect(result).toEqual({
      kind: 'render',
      fields: { message: '[B]Deploy[/B]: ✅ green · 12/12 · 2026-11-25 14:05', urlPreview: 'N', keyboard },
    });
  });

  it('renders a health check as ok data', async () => {
    const result = await renderStatus(
      spec({
        source: { type: 'http-health', url: `${server.origin}/summary.json` },
        template: 'API {{#ok}}up ({{status}}){{/ok}}{{^ok}}down{{/ok}}',
      }),
      options,
    );
    expect(result).toEqual({ kind: 'render', fields: { message: 'API up (200)' } });
  });

  it('renders a none source from the template and built-in data only', async () => {
    const result = await renderStatus(
      spec({ source: { type: 'none' }, template: 'Checked {{now}}' }),
      options,
    );
    expect(result).toEqual({ kind: 'render', fields: { message: 'Checked 2026-11-25 14:05' } });
  });

  it('keeps the message when the source fails and onSourceError is keep', async () => {
    const result = await renderStatus(
      spec({ source: { type: 'http-json', url: `${server.origin}/html` } }),
      options,
    );
    expect(result.kind).toBe('keep');
    expect(result.kind === 'keep' && result.error.code).toBe('SOURCE_NOT_JSON');
  });

  it('renders the error template with the error and the time when the source fails', async () => {
    const result = await renderStatus(
      spec({
        source: { type: 'http-json', url: `${server.origin}/status?code=503&key=SECRET` },
        onSourceError: { template: '[B]Deploy[/B]: ⚠️ status unknown ({{error.code}}) · {{now}}' },
        fields: { urlPreview: 'N' },
      }),
      options,
    );
    expect(result).toMatchObject({
      kind: 'render',
      fields: {
        message: '[B]Deploy[/B]: ⚠️ status unknown (SOURCE_HTTP_STATUS) · 2026-11-25 14:05',
        urlPreview: 'N',
      },
      sourceError: { code: 'SOURCE_HTTP_STATUS', httpStatus: 503 },
    });
  });

  it('offers error.message to the error template without the query string', async () => {
    const result = await renderStatus(
      spec({
        source: { type: 'http-json', url: `${server.origin}/status?code=500&key=SECRET` },
        onSourceError: { template: '{{error.message}}' },
      }),
      options,
    );
    expect(result.kind).toBe('render');
    const message = result.kind === 'render' ? result.fields.message : '';
    expect(message).toContain(new URL(server.origin).host);
    expect(message).not.toContain('SECRET');
  });

  it('fails, and sends nothing, when the rendered message is too long', async () => {
    const result = await renderStatus(
      spec({ source: { type: 'none' }, template: `${'x'.repeat(20_000)}{{now}}` }),
      options,
    );
    expect(result.kind).toBe('failed');
    expect(result.kind === 'failed' && result.error.code).toBe('MESSAGE_TOO_LONG');
  });

  it('fails instead of rendering the error template when the caller aborts', async () => {
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 50);
    const result = await renderStatus(
      spec({
        source: { type: 'http-json', url: `${server.origin}/slow-headers?ms=5000` },
        onSourceError: { template: 'unknown' },
      }),
      { ...options, signal: controller.signal },
    );
    expect(result.kind).toBe('failed');
    expect(result.kind === 'failed' && result.error.code).toBe('SOURCE_ABORTED');
  });
});
