import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { messageKeyText } from '../../lib/ledger/model.ts';
import type { Ledger } from '../../lib/ledger/store.ts';
import { PortalCircuits } from '../../lib/pacing/circuit.ts';
import { PortalGateway } from '../../lib/portal/gateway.ts';
import type { ReconcileOptions } from '../../lib/reconcile/options.ts';
import type { Reconciler } from '../../lib/reconcile/reconcile.ts';
import { emptyStats } from '../../lib/reconcile/send.ts';
import { createSecretStore } from '../../lib/secrets/index.ts';
import {
  BOT,
  freshLedger,
  type Harness,
  OAUTH_APP,
  oauthSecret,
  PREFIX,
  startHarness,
  testReconciler,
  webhookSecret,
} from '../support/harness.ts';

// Several Reconciler instances on one ledger stand for several Lambda containers.
let h: Harness;
let ledger: Ledger;

beforeAll(async () => {
  h = await startHarness({ timeoutMs: 3_000 });
});
afterAll(() => h.close());
beforeEach(async () => {
  h.emulator.reset();
  h.emulator.setLimits(null);
  ledger = await freshLedger(h);
});

function container(options: Partial<ReconcileOptions> = {}, circuits?: PortalCircuits): Reconciler {
  return testReconciler(h, ledger, options, circuits ? { circuits } : {});
}

const key = (messageId: number) => ({ portal: 'acme', botId: BOT.id, messageId });
function edit(messageId: number, text: string) {
  return { ...key(messageId), fields: { message: text }, editId: randomUUID(), at: Date.now(), seq: '' };
}
const fill = (hints: ReturnType<typeof key>[] = []) => ({
  hints,
  mode: 'fill' as const,
  remainingMs: () => 30_000,
  stats: emptyStats(),
});

describe('the overload circuit, fleet-wide', () => {
  it("keeps every container from calling a portal another container found blocked, until the circuit's time", async () => {
    const id = h.emulator.addMessage({ botId: BOT.id, chatId: 12, text: 'before' });
    const first = container({}, new PortalCircuits({ openMs: 2_000 }));
    await first.merge(key(id), [edit(id, 'after the block')]);
    h.emulator.inject({ kind: 'overload' });
    const blocked = await first.reconcilePortal('acme', fill([key(id)]));
    const openUntil = first.circuits.openUntil('acme') ?? 0;
    expect(blocked.fates.get(messageKeyText(key(id)))).toMatchObject({ kind: 'pending' });
    expect(h.emulator.calls).toHaveLength(1);

    // A container that never saw the overload (its own circuits would stay closed).
    const second = container();
    const other = h.emulator.addMessage({ botId: BOT.id, chatId: 12, text: 'before' });
    await second.merge(key(other), [edit(other, 'due now')]);
    const held = await second.reconcilePortal('acme', fill([key(other)]));
    expect(held.fates.get(messageKeyText(key(other)))).toMatchObject({
      kind: 'held',
      code: 'OVERLOAD_LIMIT',
    });
    const third = container();
    const api = await third.reconcilePortal('acme', { ...fill([key(other)]), mode: 'only' });
    expect(api.fates.get(messageKeyText(key(other)))).toMatchObject({ kind: 'held', code: 'OVERLOAD_LIMIT' });
    expect(h.emulator.calls).toHaveLength(1);

    await new Promise((resolve) => setTimeout(resolve, openUntil + 50 - Date.now()));
    const applied = await third.reconcilePortal('acme', { ...fill([key(id)]), mode: 'only' });
    expect(applied.fates.get(messageKeyText(key(id)))?.kind).toBe('applied');
    expect(h.emulator.getMessage(id)?.text).toBe('after the block');
    expect(h.emulator.getMessage(other)?.text).toBe('before');
    // Closed by the success, for the whole fleet: the first container calls again at once.
    const later = h.emulator.addMessage({ botId: BOT.id, chatId: 12, text: 'before' });
    await first.merge(key(later), [edit(later, 'open again')]);
    await first.reconcilePortal('acme', fill([key(later)]));
    expect(h.emulator.getMessage(later)?.text).toBe('open again');
  });
});

describe('the rate bucket, fleet-wide', () => {
  it('lets a container started after another continue from the bucket it left, not from a fresh burst', async () => {
    // The emulator enforces the standard plan (50, at 2/s), as the secret says.
    h.emulator.setLimits({ burst: 50, perSecond: 2 });
    const ids = Array.from({ length: 60 }, () =>
      h.emulator.addMessage({ botId: BOT.id, chatId: 12, text: '-' }),
    );
    const first = container({ maxCommandsPerCall: 1, apiRateShare: 0 });
    for (const id of ids.slice(0, 45)) await first.merge(key(id), [edit(id, `first ${id}`)]);
    await first.reconcilePortal('acme', fill());
    const second = container({ maxCommandsPerCall: 1, apiRateShare: 0 });
    for (const id of ids.slice(45)) await second.merge(key(id), [edit(id, `second ${id}`)]);
    const stats = emptyStats();
    const deadline = Date.now() + 5_000;
    const report = await second.reconcilePortal('acme', {
      ...fill(),
      remainingMs: () => deadline - Date.now(),
      stats,
    });
    expect(stats.rateLimited).toBe(0);
    // 45 spent, 49 usable: the second container sends 4 at once and paces the rest.
    const applied = [...report.fates.values()].filter((fate) => fate.kind === 'applied').length;
    expect(applied).toBeGreaterThanOrEqual(4);
    expect(applied).toBeLessThan(15);
    expect(h.emulator.calls.filter((call) => call.code === 'QUERY_LIMIT_EXCEEDED')).toEqual([]);
  });
});

describe('the rate bucket shared by many containers', () => {
  // A small plan (burst 10, 5/s), enforced by the emulator as the portal's secret says, so that
  // a few seconds hold many bursts' worth of calls.
  const SMALL = { burst: 10, perSecond: 5 };
  const small = (messageId: number) => ({ portal: 'small', botId: BOT.id, messageId });
  async function backlog(n: number, merger: Reconciler): Promise<number[]> {
    h.secretsManager.setSecret(`${PREFIX}small`, webhookSecret(h.emulator.url, { limits: SMALL }));
    h.emulator.setLimits(SMALL);
    const ids = Array.from({ length: n }, () =>
      h.emulator.addMessage({ botId: BOT.id, chatId: 12, text: '-' }),
    );
    for (let i = 0; i < ids.length; i += 100) {
      await Promise.all(
        ids
          .slice(i, i + 100)
          .map((id) => merger.merge(small(id), [{ ...edit(id, `bulk ${id}`), ...small(id) }])),
      );
    }
    return ids;
  }
  const runFor = (ms: number, stats = emptyStats()) => {
    const deadline = Date.now() + ms;
    // The time kept for one call and its margin comes on top: calls stop at `deadline`.
    return { ...fill(), remainingMs: () => deadline + 3_100 - Date.now(), stats };
  };

  it('uses the portal at its full rate with 2 of a mapping’s 10 drains active: the bucket is taken to its brim, never over', async () => {
    const first = container({ maxConcurrency: 10, apiRateShare: 0 });
    const ids = await backlog(1_500, first);
    const second = container({ maxConcurrency: 10, apiRateShare: 0 });
    let fullest = 0;
    const sampler = setInterval(() => {
      fullest = Math.max(fullest, h.emulator.bucketLevel());
    }, 20);
    const stats = [emptyStats(), emptyStats()];
    await Promise.all([
      first.reconcilePortal('small', runFor(6_000, stats[0])),
      second.reconcilePortal('small', runFor(6_000, stats[1])),
    ]);
    clearInterval(sampler);
    expect(h.emulator.calls.filter((call) => call.code === 'QUERY_LIMIT_EXCEEDED')).toEqual([]);
    // Divided by 10 (each drain to a tenth of the rate), the bucket would stay near empty.
    expect(fullest).toBeGreaterThanOrEqual(SMALL.burst - 2);
    expect(ids.filter((id) => h.emulator.getMessage(id)?.text === `bulk ${id}`)).toHaveLength(ids.length);
  });

  it('lets 10 containers started one after another drain on without one fresh burst pushing the portal over', async () => {
    const ids = await backlog(1_500, container());
    for (let i = 0; i < 10; i += 1) {
      await container({ maxConcurrency: 10, apiRateShare: 0 }).reconcilePortal('small', runFor(400));
    }
    expect(h.emulator.calls.filter((call) => call.code === 'QUERY_LIMIT_EXCEEDED')).toEqual([]);
    const calls = h.emulator.calls.filter((call) => !call.viaBatch);
    // Each new container continued from the bucket the last one left: one burst for the fleet, then the rate.
    const span = ((calls.at(-1)?.at ?? 0) - (calls[0]?.at ?? 0)) / 1000;
    expect(calls.length).toBeLessThanOrEqual(SMALL.burst + Math.ceil(span * SMALL.perSecond) + 1);
    expect(calls.length).toBeGreaterThan(SMALL.burst);
    expect(ids.filter((id) => h.emulator.getMessage(id)?.text === `bulk ${id}`).length).toBe(
      calls.length * 50,
    );
  });
});

describe('API callers during a flat-out drain', () => {
  it('are not refused: the drain holding the portal carries their edits in its next calls, ahead of its backlog', async () => {
    // The standard plan, enforced by the emulator as the secret says: the drain runs at the rate limit.
    h.emulator.setLimits({ burst: 50, perSecond: 2 });
    const backlog = Array.from({ length: 2_500 }, () =>
      h.emulator.addMessage({ botId: BOT.id, chatId: 12, text: '-' }),
    );
    const drain = container({ batchLingerMs: 250 });
    for (let i = 0; i < backlog.length; i += 100) {
      await Promise.all(
        backlog.slice(i, i + 100).map((id) => drain.merge(key(id), [edit(id, `bulk ${id}`)])),
      );
    }
    const drainStats = emptyStats();
    const drainDeadline = Date.now() + 20_000;
    const running = drain
      .reconcilePortal('acme', {
        ...fill(),
        remainingMs: () => drainDeadline - Date.now(),
        stats: drainStats,
      })
      .then(() => Date.now());
    // Ten callers, each its own container, once the drain holds the portal.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const targets = Array.from({ length: 10 }, () =>
      h.emulator.addMessage({ botId: BOT.id, chatId: 12, text: '-' }),
    );
    const answers = await Promise.all(
      targets.map(async (id, i) => {
        await new Promise((resolve) => setTimeout(resolve, i * 150));
        const startedAt = Date.now();
        const { report } = await container().mergeAndApply(key(id), [edit(id, `api ${id}`)], {
          remainingMs: () => 29_000,
          stats: emptyStats(),
        });
        return { id, fate: report.fates.get(messageKeyText(key(id))), ms: Date.now() - startedAt };
      }),
    );
    const answeredAt = Date.now();
    const drainEndedAt = await running;
    // All of them were answered while the drain still held the portal.
    expect(drainEndedAt).toBeGreaterThan(answeredAt);
    for (const { id, fate, ms } of answers) {
      expect(fate?.kind, `message ${id} after ${ms} ms`).toBe('applied');
      expect(h.emulator.getMessage(id)?.text).toBe(`api ${id}`);
    }
    // The drain ran flat out meanwhile: full calls, no rate-limit refusal.
    expect(drainStats.rateLimited).toBe(0);
    expect(h.emulator.calls.filter((call) => call.code === 'QUERY_LIMIT_EXCEEDED')).toEqual([]);
    const full = drainStats.commandsPerCall.filter((n) => n === 50).length;
    expect(full).toBeGreaterThanOrEqual(drainStats.commandsPerCall.length - 2);
  });
});

describe('the OAuth refresh, fleet-wide', () => {
  /** A container's own gateway: its own secret cache, its own single flight, the shared lock. */
  function gatewayOf(lock: boolean): PortalGateway {
    const store = createSecretStore({ client: h.secretsClient, prefix: PREFIX, ttlSeconds: 300 });
    return new PortalGateway({
      store,
      // Generous: 48 calls at once on a loaded machine.
      timeoutMs: 5_000,
      allowHttp: true,
      ...(lock ? { refreshLock: () => ledger } : {}),
    });
  }

  async function expiredPortal(name: string, botId: number) {
    const clientId = `app.${name}`;
    h.emulator.registerBot({ id: botId, owner: { clientId } });
    const tokens = h.emulator.addOAuthApp({ clientId, clientSecret: OAUTH_APP.clientSecret });
    const secret = JSON.parse(oauthSecret(h.emulator.url, h.emulator.oauthUrl, tokens));
    secret.auth.clientId = clientId;
    secret.bots = { [botId]: {} };
    h.secretsManager.setSecret(`${PREFIX}${name}`, JSON.stringify(secret));
    return secret;
  }

  /** `containers` gateways, each with 12 calls at once, after the access token expired. */
  async function race(name: string, botId: number, containers: number, lock: boolean) {
    await expiredPortal(name, botId);
    const gateways = Array.from({ length: containers }, () => gatewayOf(lock));
    const ids = gateways.map(() =>
      Array.from({ length: 12 }, () => h.emulator.addMessage({ botId, chatId: 12, text: 'old' })),
    );
    // Every container has the secret cached (warm), then the token expires.
    for (const gateway of gateways) await gateway.secret(name);
    h.emulator.expireAccessTokens();
    h.emulator.clearCalls();
    const results = await Promise.allSettled(
      gateways.flatMap((gateway, c) =>
        (ids[c] as number[]).map((id) =>
          gateway.updateMessage(name, { botId, messageId: id }, { message: `new ${id}` }),
        ),
      ),
    );
    const refreshes = h.emulator.calls.filter((call) => call.method === 'oauth/token');
    return {
      failed: results.filter((r) => r.status === 'rejected').length,
      // The first reasons, so that a failure says why.
      reasons: results.flatMap((r) => (r.status === 'rejected' ? [String(r.reason)] : [])).slice(0, 3),
      requests: refreshes.length,
      accepted: refreshes.filter((call) => call.httpStatus === 200).length,
      stale: ids.flat().filter((id) => h.emulator.getMessage(id)?.text !== `new ${id}`).length,
    };
  }

  it.each([2, 4])(
    'makes exactly one refresh for %i containers with 12 calls each, and every call succeeds',
    async (containers) => {
      const outcome = await race(`fleet-oauth-${containers}`, 470 + containers, containers, true);
      expect(outcome).toMatchObject({ failed: 0, requests: 1, accepted: 1, stale: 0 });
    },
  );

  it('without the shared lock, recovers the refreshes that lost the race (invalid_grant) from the secret', async () => {
    const outcome = await race('fleet-oauth-nolock', 479, 4, false);
    // Each container refreshes; the OAuth server accepts the first and refuses the others' void token.
    expect(outcome.requests).toBeGreaterThan(1);
    expect(outcome).toMatchObject({ failed: 0, accepted: 1, stale: 0 });
  });
});
