import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { IdempotencyKeys } from '../../lib/ledger/idempotency.ts';
import { postUpdate, updateDeps } from '../api/helpers.ts';
import { httpApiEvent } from '../support/events.ts';
import { BOT, freshLedger, type Harness, startHarness } from '../support/harness.ts';

vi.hoisted(() => {
  process.env.POWERTOOLS_METRICS_DISABLED = 'true';
});

const CASES = 400;
/** Every refusal of the caller's input names one of these (a field, a header or the body). */
const NAMES = [
  'botId',
  'messageId',
  'fields',
  'message',
  'keyboard',
  'attach',
  'urlPreview',
  'body',
  'botToken',
  'X-B24-Portal',
  'Idempotency-Key',
  'Content-Type',
];

/** mulberry32: a small seeded generator, so that a failing case can be replayed by its number. */
function generator(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Random = () => number;
const pick = <T>(r: Random, items: readonly T[]): T => items[Math.floor(r() * items.length)] as T;

function scalar(r: Random): unknown {
  return pick(r, [
    () => null,
    () => true,
    () => false,
    () => Math.floor(r() * 2_000) - 1_000,
    () => r() * 1e6,
    () => Number.MAX_SAFE_INTEGER + 2,
    () => '',
    () => ' ',
    () => 'x'.repeat(Math.floor(r() * 25_000)),
    () => String(Math.floor(r() * 1_000)),
    () => '\u0000\u001f',
    () => '\ud800',
    () => '[B]bold[/B] 😀',
    () => 'N',
    () => 'Y',
    () => [],
    () => ({}),
  ])();
}

function value(r: Random, depth = 0): unknown {
  if (depth > 3 || r() < 0.5) return scalar(r);
  if (r() < 0.5) return Array.from({ length: Math.floor(r() * 4) }, () => value(r, depth + 1));
  const out: Record<string, unknown> = {};
  for (let i = Math.floor(r() * 4); i > 0; i--) {
    out[pick(r, ['TEXT', 'LINK', 'COMMAND', 'BLOCKS', 'MESSAGE', 'ID', 'x', 'BUTTONS'])] = value(
      r,
      depth + 1,
    );
  }
  return out;
}

function fields(r: Random): unknown {
  // A share of well-formed edits, so that the accepted side is exercised as well.
  if (r() < 0.4)
    return {
      message: `Build #${Math.floor(r() * 1_000)}`,
      ...(r() < 0.5 ? { urlPreview: pick(r, ['Y', 'N', true]) } : {}),
    };
  if (r() < 0.1) return value(r);
  const out: Record<string, unknown> = {};
  const names = ['message', 'keyboard', 'attach', 'urlPreview', 'system', 'unknown'];
  for (const name of names) if (r() < 0.35) out[name] = r() < 0.5 ? scalar(r) : value(r);
  if (r() < 0.4)
    out.message = pick(r, ['Build ok', 'x'.repeat(20_001), '', '[URL]https://example.com[/URL]']);
  if (r() < 0.2)
    out.keyboard = [{ TEXT: 'Open', LINK: pick(r, ['https://example.com', 'javascript:x', '/a']) }];
  if (r() < 0.2) out.attach = [{ MESSAGE: 'hi' }];
  return out;
}

function body(r: Random): unknown {
  const out: Record<string, unknown> = {
    botId: r() < 0.8 ? BOT.id : scalar(r),
    messageId: r() < 0.8 ? 789 : scalar(r),
    fields: fields(r),
  };
  if (r() < 0.1) delete out[pick(r, ['botId', 'messageId', 'fields'])];
  if (r() < 0.1) out.botToken = scalar(r);
  if (r() < 0.05) out[pick(r, ['extra', 'BOT_ID'])] = value(r);
  return out;
}

function rawBody(r: Random): string {
  const json = JSON.stringify(body(r));
  if (r() < 0.6) return json;
  return pick(r, [
    () => json,
    () => json.slice(0, Math.floor(r() * json.length)),
    () => `${'['.repeat(100)}${']'.repeat(100)}`,
    () => json.replace('"fields":{', '"fields":{"__proto__":{"x":1},'),
    () => json.replace('"fields":', '"constructor":1,"fields":'),
    () => json.replace('Build', 'Bu\uFFFDild'),
    () => '',
    () => 'null',
    () => '[]',
    () => '"text"',
  ])();
}

function headers(r: Random): Record<string, string> {
  const out: Record<string, string> = {};
  const portal = r() < 0.75 ? 'acme' : pick(r, ['', ' ', 'ACME', 'ghost', 'a'.repeat(70), '../x', undefined]);
  if (portal !== undefined) out['x-b24-portal'] = portal;
  if (r() < 0.3) out['idempotency-key'] = pick(r, ['k-1', 'k-2', '', 'with space', 'é', 'k'.repeat(129)]);
  if (r() < 0.2) out.prefer = 'respond-async';
  out['content-type'] =
    r() < 0.85
      ? 'application/json'
      : pick(r, ['application/json; charset=utf-8', 'text/plain', 'application/vnd.api+json']);
  return out;
}

let h: Harness;
beforeAll(async () => {
  h = await startHarness({ timeoutMs: 1_000 });
});
afterAll(() => h.close());

describe('the API under generated input', () => {
  it(`answers ${CASES} generated requests with a 2xx or a 4xx naming what is wrong, never a 5xx`, async () => {
    const ledger = await freshLedger(h);
    const deps = updateDeps(h, ledger, {
      idempotency: new IdempotencyKeys({ tableName: ledger.tableName, client: h.dynamo }),
    });
    const bad: string[] = [];
    const statuses = new Map<number, number>();
    for (let n = 0; n < CASES; n++) {
      const r = generator(Math.imul(n + 1, 0x9e3779b1));
      const event = httpApiEvent(undefined, { rawBody: rawBody(r), headers: headers(r) });
      const answer = await postUpdate(event, deps);
      statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1);
      const description = String(answer.body.error_description ?? '');
      const ok = answer.status >= 200 && answer.status < 300;
      const refused = answer.status >= 400 && answer.status < 500 && typeof answer.body.error === 'string';
      const named =
        answer.status !== 400 ||
        !['INVALID_REQUEST_BODY', 'MALFORMED_JSON', 'INVALID_PORTAL', 'PORTAL_REQUIRED'].includes(
          String(answer.body.error),
        ) ||
        NAMES.some((name) => description.includes(name));
      if (!(ok || (refused && description !== '' && named))) {
        bad.push(`case ${n + 1}: ${answer.status} ${answer.body.error} ${description.slice(0, 200)}`);
      }
    }
    expect(bad).toEqual([]);
    // The generator reaches both sides: accepted edits and refusals.
    const count = (from: number, to: number) =>
      [...statuses].filter(([s]) => s >= from && s < to).reduce((sum, [, c]) => sum + c, 0);
    expect(count(200, 300)).toBeGreaterThan(20);
    expect(count(400, 500)).toBeGreaterThan(100);
  }, 120_000);
});
