import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SourceError } from '../../lib/status/errors.ts';
import { fetchSource, mapWithConcurrency } from '../../lib/status/sources.ts';
import type { StatusSource } from '../../lib/status/spec.ts';
import { waitFor } from '../support/wait.ts';
import { type SourceServer, startSourceServer, unusedPort } from './source-server.ts';

let server: SourceServer;
beforeAll(async () => {
  server = await startSourceServer();
});
afterAll(async () => {
  await server.close();
});

const local = { allowHttp: true };

function json(path: string, extra: Partial<Extract<StatusSource, { type: 'http-json' }>> = {}): StatusSource {
  return { type: 'http-json', url: `${server.origin}${path}`, timeoutMs: 3_000, headers: {}, ...extra };
}

function health(
  path: string,
  extra: Partial<Extract<StatusSource, { type: 'http-health' }>> = {},
): StatusSource {
  return { type: 'http-health', url: `${server.origin}${path}`, timeoutMs: 3_000, headers: {}, ...extra };
}

async function sourceError(promise: Promise<unknown>): Promise<SourceError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(SourceError);
  return error as SourceError;
}

describe('fetchSource: http-json', () => {
  it('returns the parsed JSON document as template data', async () => {
    await expect(fetchSource(json('/summary.json'), local)).resolves.toEqual({
      ok: true,
      checks: { passed: 12, total: 12 },
      service: { name: 'api' },
    });
  });

  it('sends a GET with the spec headers and asks for JSON', async () => {
    const echoed = (await fetchSource(json('/echo', { headers: { 'X-Api-Key': 'k-1' } }), local)) as {
      method: string;
      headers: Record<string, string>;
    };
    expect(echoed.method).toBe('GET');
    expect(echoed.headers['x-api-key']).toBe('k-1');
    expect(echoed.headers.accept).toBe('application/json');
  });

  it('lets a spec header replace a default header whatever its case', async () => {
    const echoed = (await fetchSource(
      json('/echo', { headers: { Accept: 'application/vnd.api+json' } }),
      local,
    )) as {
      headers: Record<string, string>;
    };
    expect(echoed.headers.accept).toBe('application/vnd.api+json');
  });

  it('fails with SOURCE_HTTP_STATUS on a non-2xx answer and keeps the status', async () => {
    const error = await sourceError(fetchSource(json('/status?code=503'), local));
    expect(error.code).toBe('SOURCE_HTTP_STATUS');
    expect(error.httpStatus).toBe(503);
    expect(error.message).toContain('HTTP 503');
  });

  it('fails with SOURCE_NOT_JSON when the body is HTML', async () => {
    const error = await sourceError(fetchSource(json('/html'), local));
    expect(error.code).toBe('SOURCE_NOT_JSON');
  });

  it('stops reading and fails with SOURCE_TOO_LARGE past 1 MB of a chunked body', async () => {
    const error = await sourceError(fetchSource(json('/huge-stream'), local));
    expect(error.code).toBe('SOURCE_TOO_LARGE');
    await waitFor(() => server.hungUp.length > 0, 10_000, 'the stream to close');
    expect(server.hungUp).toEqual([true]);
  });

  it('fails with SOURCE_TOO_LARGE before reading when content-length is over 1 MB', async () => {
    const error = await sourceError(fetchSource(json('/huge-declared'), local));
    expect(error.code).toBe('SOURCE_TOO_LARGE');
  });

  it('fails with SOURCE_TIMEOUT when the headers do not arrive within timeoutMs', async () => {
    // The headers would come after 5 s, and the source would then succeed: only the timeout fails it.
    const error = await sourceError(fetchSource(json('/slow-headers?ms=5000', { timeoutMs: 200 }), local));
    expect(error.code).toBe('SOURCE_TIMEOUT');
  });

  it('fails with SOURCE_TIMEOUT when the body stalls after the headers', async () => {
    // The body never ends: only the timeout ends the read.
    const error = await sourceError(fetchSource(json('/slow-body', { timeoutMs: 200 }), local));
    expect(error.code).toBe('SOURCE_TIMEOUT');
  });

  it('fails with SOURCE_UNREACHABLE when nothing listens on the port', async () => {
    const port = await unusedPort();
    const source: StatusSource = {
      type: 'http-json',
      url: `http://127.0.0.1:${port}/x`,
      timeoutMs: 2_000,
      headers: {},
    };
    const error = await sourceError(fetchSource(source, local));
    expect(error.code).toBe('SOURCE_UNREACHABLE');
    expect(error.message).toContain('ECONNREFUSED');
  });

  it('refuses a plain-HTTP URL with SOURCE_HTTP_NOT_ALLOWED without sending a request', async () => {
    const before = server.requests.length;
    const error = await sourceError(fetchSource(json('/summary.json'), { allowHttp: false }));
    expect(error.code).toBe('SOURCE_HTTP_NOT_ALLOWED');
    expect(server.requests.length).toBe(before);
  });

  it('fails with SOURCE_ABORTED when the caller aborts, not with a timeout', async () => {
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 50);
    const error = await sourceError(
      fetchSource(json('/slow-headers?ms=5000', { timeoutMs: 3_000 }), {
        ...local,
        signal: controller.signal,
      }),
    );
    expect(error.code).toBe('SOURCE_ABORTED');
  });

  it('names the host in errors but never the path or query string', async () => {
    const error = await sourceError(fetchSource(json('/status?code=500&apikey=SECRET-123'), local));
    expect(error.message).toContain(new URL(server.origin).host);
    expect(error.host).toBe(new URL(server.origin).host);
    expect(error.message).not.toContain('SECRET-123');
    expect(error.message).not.toContain('/status');
  });
});

describe('fetchSource: http-health', () => {
  it('reports a 2xx answer as ok with its status, latency and check time', async () => {
    const ticks = [1_700_000_000_000, 1_700_000_000_042];
    const data = await fetchSource(health('/summary.json'), { ...local, now: () => ticks.shift() ?? 0 });
    expect(data).toEqual({ ok: true, status: 200, latencyMs: 42, checkedAt: '2023-11-14T22:13:20.000Z' });
  });

  it('reports a 5xx answer as data with ok false, not as an error', async () => {
    const data = await fetchSource(health('/status?code=500'), local);
    expect(data).toMatchObject({ ok: false, status: 500 });
  });

  it('reports a refused connection as data with ok false and no status', async () => {
    const port = await unusedPort();
    const source: StatusSource = {
      type: 'http-health',
      url: `http://127.0.0.1:${port}/`,
      timeoutMs: 2_000,
      headers: {},
    };
    const data = await fetchSource(source, local);
    expect(data).toMatchObject({ ok: false, status: null, error: { code: 'SOURCE_UNREACHABLE' } });
  });

  it('reports a check that times out as data with ok false', async () => {
    const data = await fetchSource(health('/slow-headers?ms=5000', { timeoutMs: 150 }), local);
    expect(data).toMatchObject({ ok: false, status: null, error: { code: 'SOURCE_TIMEOUT' } });
  });

  it('still refuses plain HTTP with SOURCE_HTTP_NOT_ALLOWED, a rule of ours and not the endpoint', async () => {
    const error = await sourceError(fetchSource(health('/'), { allowHttp: false }));
    expect(error.code).toBe('SOURCE_HTTP_NOT_ALLOWED');
  });
});

describe('fetchSource: none', () => {
  it('returns empty data without any request', async () => {
    const before = server.requests.length;
    await expect(fetchSource({ type: 'none' }, { allowHttp: false })).resolves.toEqual({});
    expect(server.requests.length).toBe(before);
  });
});

describe('mapWithConcurrency', () => {
  const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

  it('never runs more than limit calls at once and keeps the order of the results', async () => {
    let inFlight = 0;
    let peak = 0;
    const items = Array.from({ length: 20 }, (_, i) => i);
    const results = await mapWithConcurrency(items, 3, async (item) => {
      inFlight++;
      peak = Math.max(peak, inFlight);
      await delay(5 + ((item * 7) % 11));
      inFlight--;
      return item * 2;
    });
    expect(peak).toBe(3);
    expect(results).toEqual(items.map((i) => i * 2));
  });

  it('lets fast sources finish while a slow one waits out its own timeout', async () => {
    // Two seconds of timeout: ample for six local fetches on a loaded machine.
    const sources = [
      json('/slow-headers?ms=30000', { timeoutMs: 2_000 }),
      ...Array.from({ length: 6 }, () => json('/summary.json')),
    ];
    const finished: number[] = [];
    const outcomes = await mapWithConcurrency(sources, 2, async (source, i) => {
      const outcome = await fetchSource(source, local).then(
        () => 'ok',
        (error: SourceError) => error.code,
      );
      finished.push(i);
      return outcome;
    });
    expect(outcomes).toEqual(['SOURCE_TIMEOUT', 'ok', 'ok', 'ok', 'ok', 'ok', 'ok']);
    // Every fast source finished while the slow one still held its slot.
    expect(finished.at(-1)).toBe(0);
  });

  it('rejects with the first error and starts no further items', async () => {
    const started: number[] = [];
    const run = mapWithConcurrency([0, 1, 2, 3, 4, 5], 2, async (item) => {
      started.push(item);
      await delay(10);
      if (item === 1) throw new Error('boom');
      return item;
    });
    await expect(run).rejects.toThrow('boom');
    await delay(50);
    expect(started.length).toBeLessThan(6);
  });

  it('refuses a limit below 1 with a message naming the value', async () => {
    await expect(mapWithConcurrency([1], 0, async (x) => x)).rejects.toThrow(
      'Expected limit to be a positive integer, got 0',
    );
  });
});
