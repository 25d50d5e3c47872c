import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Ledger } from '../../lib/ledger/messages.ts';
import { postUpdate, updateDeps } from '../api/helpers.ts';
import { httpApiEvent } from '../support/events.ts';
import { BOT, freshLedger, type Harness, startHarness } from '../support/harness.ts';

vi.hoisted(() => {
  process.env.POWERTOOLS_METRICS_DISABLED = 'true';
});

let h: Harness;
let ledger: Ledger;
beforeAll(async () => {
  h = await startHarness({ timeoutMs: 1_000 });
});
afterAll(() => h.close());
beforeEach(async () => {
  h.emulator.reset();
  ledger = await freshLedger(h);
});

const ACME = { 'x-b24-portal': 'acme' };
/** The API with DEFAULT_PORTAL=acme, so that a fall-back to it would go through. */
const invoke = (event: unknown) =>
  postUpdate(event, updateDeps(h, ledger, { config: { defaultPortal: 'acme' } }));
const raw = (rawBody: string, headers: Record<string, string> = ACME) =>
  httpApiEvent(undefined, { rawBody, headers });
const text = () => h.emulator.getMessage(789)?.text;

describe('bad input that deserves a clear answer', () => {
  it.each([
    ['empty', ''],
    ['blank', '   '],
  ])(
    'answers 400 INVALID_PORTAL naming X-B24-Portal for an %s header, without falling back to DEFAULT_PORTAL',
    async (_, value) => {
      const before = text();
      const res = await invoke(
        httpApiEvent(
          { botId: BOT.id, messageId: 789, fields: { message: 'to the default?' } },
          {
            headers: { 'x-b24-portal': value },
          },
        ),
      );
      expect(res.status).toBe(400);
      expect(res.body.error).toBe('INVALID_PORTAL');
      expect(String(res.body.error_description)).toContain('X-B24-Portal is empty');
      expect(text()).toBe(before);
    },
  );

  it('answers 400 INVALID_IDEMPOTENCY_KEY for an empty Idempotency-Key header', async () => {
    const res = await invoke(
      httpApiEvent(
        { botId: BOT.id, messageId: 789, fields: { message: 'x' } },
        {
          headers: { ...ACME, 'idempotency-key': '' },
        },
      ),
    );
    expect(res).toMatchObject({ status: 400, body: { error: 'INVALID_IDEMPOTENCY_KEY' } });
  });

  it.each(['__proto__', 'constructor', 'prototype'])(
    'answers 400 naming the rule for a body with the key %s (not "not valid JSON")',
    async (key) => {
      const before = text();
      const res = await invoke(
        raw(`{"botId":${BOT.id},"messageId":789,"fields":{"message":"polluted","${key}":{"isAdmin":true}}}`),
      );
      expect(res.status).toBe(400);
      expect(res.body.error).toBe('INVALID_REQUEST_BODY');
      expect(String(res.body.error_description)).toContain(`the key "${key}"`);
      expect(text()).toBe(before);
    },
  );

  it('finds a forbidden key written with escapes', async () => {
    const res = await invoke(
      raw(`{"botId":${BOT.id},"messageId":789,"fields":{"message":"x","\\u005f_proto__":{}}}`),
    );
    expect(res).toMatchObject({ status: 400, body: { error: 'INVALID_REQUEST_BODY' } });
    expect(String(res.body.error_description)).toContain('"__proto__"');
  });

  it('answers 400 naming the depth rule for a body nested 2,000 levels deep', async () => {
    const deep = `${'['.repeat(2_000)}${']'.repeat(2_000)}`;
    const res = await invoke(raw(`{"botId":${BOT.id},"messageId":789,"fields":{"attach":${deep}}}`));
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('INVALID_REQUEST_BODY');
    expect(String(res.body.error_description)).toContain('deeper than 64 levels');
  });

  it('does not count brackets inside strings as nesting', async () => {
    const res = await invoke(
      raw(`{"botId":${BOT.id},"messageId":789,"fields":{"message":"${'[{'.repeat(100)}"}}`),
    );
    expect(res.status).toBe(200);
    expect(text()).toBe('[{'.repeat(100));
  });

  it('answers 400 for a base64 body that is not UTF-8, and applies nothing', async () => {
    const before = text();
    const bytes = Buffer.concat([
      Buffer.from(`{"botId":${BOT.id},"messageId":789,"fields":{"message":"bad `),
      Buffer.from([0xff, 0xfe, 0xc3]),
      Buffer.from('"}}'),
    ]);
    const event = { ...raw(bytes.toString('base64')), isBase64Encoded: true };
    const res = await invoke(event);
    expect(res.status).toBe(400);
    expect(String(res.body.error_description)).toContain('not valid UTF-8');
    expect(text()).toBe(before);
  });

  it('answers 400 for a text body holding U+FFFD (invalid UTF-8 replaced on the way), and applies nothing', async () => {
    const before = text();
    const res = await invoke(raw(`{"botId":${BOT.id},"messageId":789,"fields":{"message":"bad \uFFFD"}}`));
    expect(res.status).toBe(400);
    expect(String(res.body.error_description)).toContain('not valid UTF-8');
    expect(text()).toBe(before);
  });

  it('applies U+FFFD sent escaped, the way to mean it', async () => {
    const res = await invoke(raw(`{"botId":${BOT.id},"messageId":789,"fields":{"message":"meant \\ufffd"}}`));
    expect(res.status).toBe(200);
    expect(text()).toBe('meant \uFFFD');
  });

  it('still answers 400 MALFORMED_JSON for a body that is not JSON, and 415 for another content type', async () => {
    expect(await invoke(raw('{"botId":'))).toMatchObject({ status: 400, body: { error: 'MALFORMED_JSON' } });
    const form = httpApiEvent(undefined, {
      rawBody: 'botId=456',
      headers: { ...ACME, 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(await invoke(form)).toMatchObject({ status: 415, body: { error: 'UNSUPPORTED_MEDIA_TYPE' } });
  });
});
