import { randomUUID } from 'node:crypto';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Ledger } from '../../lib/ledger/messages.ts';
import { messageKeyText } from '../../lib/ledger/model.ts';
import { PortalCircuits } from '../../lib/pacing/circuit.ts';
import { PortalGateway } from '../../lib/portal/gateway.ts';
import { leaseTiming, PortalLease } from '../../lib/reconcile/lease.ts';
import type { ReconcileOptions } from '../../lib/reconcile/options.ts';
import type { Reconciler } from '../../lib/reconcile/reconcile.ts';
import { emptyStats } from '../../lib/reconcile/send.ts';
import { createSecretStore } from '../../lib/secrets/index.ts';
import { VirtualClock } from '../support/clock.ts';
import {
  AWS,
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
import { waitFor } from '../support/wait.ts';

// Several Reconciler instances on one ledger stand for several Lambda containers. Pacing, the
// circuit and the bucket run on a virtual clock (test/support/clock.ts), shared with the emulator
// and the ledger: what they promise holds however busy the machine is. The API callers and the
// OAuth race are about concurrency, not time: they run on the system clock.
let h: Harness;
let ledger: Ledger;
let clock: VirtualClock;

beforeAll(async () => {
  clock = new VirtualClock();
  h = await startHarness({ timeoutMs: 5_000, clock });
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
function edit(messageId: number, text: string, at = clock.now()) {
  return { ...key(messageId), fields: { message: text }, editId: randomUUID(), at, seq: '' };
}
const fill = (hints: ReturnType<typeof key>[] = []) => ({
  hints,
  mode: 'fill' as const,
  remainingMs: () => 30_000,
  stats: emptyStats(),
});
/** The fullest the portal's bucket was, right after each request counted. */
const fullest = () => Math.max(0, ...h.emulator.calls.map((call) => call.bucketLevel ?? 0));

describe('the overload circuit, fleet-wide', () => {
  it("keeps every container from calling a portal another container found blocked, until the circuit's time", async () => {
    const id = h.emulator.addMessage({ botId: BOT.id, chatId: 12, text: 'before' });
    const first = container({}, new PortalCircuits({ openMs: 2_000, now: clock.now }));
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

    clock.advance(openUntil + 50 - clock.now());
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

describe('an API caller whose portal another container holds', () => {
  it('waits by watching its message, never by asking for the lease again, and hears LEASE_HELD when the holder does not apply it in time', async () => {
    // Another container's run holds the portal for longer than the caller waits.
    const holder = new PortalLease({
      portals: ledger.portals,
      portal: 'acme',
      container: 'other-container',
      run: 1,
      timing: leaseTiming({ callTimeoutMs: 3_000, deadlineMarginMs: 100 }),
      clock,
    });
    expect((await holder.take(60_000)).acquired).toBe(true);
    // The API's container: its ledger's requests go to the same table and are written down.
    const requests: Array<{ command: string; pk: string }> = [];
    const client = new DynamoDBClient({ ...AWS, endpoint: h.dynamoEndpoint });
    client.middlewareStack.add(
      (next, context) => async (args) => {
        const input = args.input as { Key?: { pk?: { S?: string } }; RequestItems?: unknown };
        const pk = input.Key?.pk?.S ?? (input.RequestItems ? 'batch' : 'query');
        requests.push({ command: String(context.commandName), pk });
        return next(args);
      },
      { step: 'build', name: 'writeDownRequests' },
    );
    const apiLedger = new Ledger({ tableName: ledger.tableName, client, now: () => clock.now() });
    const api = testReconciler(h, apiLedger);
    const startedAt = clock.now();
    const { report } = await api.mergeAndApply(key(789), [edit(789, 'while held')], {
      remainingMs: () => 29_000,
      stats: emptyStats(),
    });
    client.destroy();
    const fate = report.fates.get(messageKeyText(key(789)));
    expect(fate).toMatchObject({ kind: 'held', code: 'LEASE_HELD' });
    expect(h.emulator.calls).toEqual([]);
    expect(clock.now() - startedAt).toBeGreaterThanOrEqual(2_800);
    // About 30 looks at the message item over the 3 s; the portal item: one read, no lease request.
    const message = requests.filter((r) => r.pk === 'msg#acme#456#789');
    const portal = requests.filter((r) => r.pk === 'portal#acme');
    expect(message.length).toBeGreaterThanOrEqual(20);
    expect(portal.length).toBeLessThanOrEqual(2);
    // The edit stays for the holder: dirty in the ledger, and the holder's lease untouched.
    const state = await ledger.get(key(789));
    expect(state.version).toBeGreaterThan(state.appliedVersion);
    expect((await ledger.portals.view('acme')).leaseUntil).toBeGreaterThan(clock.now());
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
    const deadline = clock.now() + 5_000;
    const report = await second.reconcilePortal('acme', {
      ...fill(),
      remainingMs: () => deadline - clock.now(),
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
  // Calls of 10 commands: the claims are about requests, and a small backlog keeps the test quick.
  const PER_CALL = 10;
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
    const deadline = clock.now() + ms;
    // The time kept for one call and its margin comes on top: calls stop at `deadline`.
    return { ...fill(), remainingMs: () => deadline + 3_100 - clock.now(), stats };
  };

  it('uses the portal at its full rate with two reconcilers (two containers) on it: the bucket is taken to its brim, never over', async () => {
    const options = { apiRateShare: 0, maxCommandsPerCall: PER_CALL };
    const first = container(options);
    const ids = await backlog(300, first);
    const second = container(options);
    const stats = [emptyStats(), emptyStats()];
    await Promise.all([
      first.reconcilePortal('small', runFor(6_000, stats[0])),
      second.reconcilePortal('small', runFor(6_000, stats[1])),
    ]);
    expect(h.emulator.calls.filter((call) => call.code === 'QUERY_LIMIT_EXCEEDED')).toEqual([]);
    // Divided by 10 (each drain to a tenth of the rate), the bucket would stay near empty.
    expect(fullest()).toBeGreaterThanOrEqual(SMALL.burst - 2);
    expect(ids.filter((id) => h.emulator.getMessage(id)?.text === `bulk ${id}`)).toHaveLength(ids.length);
  });

  it('lets 10 containers started one after another drain on without one fresh burst pushing the portal over', async () => {
    const ids = await backlog(300, container());
    for (let i = 0; i < 10; i += 1) {
      await container({ apiRateShare: 0, maxCommandsPerCall: PER_CALL }).reconcilePortal(
        'small',
        runFor(400),
      );
    }
    expect(h.emulator.calls.filter((call) => call.code === 'QUERY_LIMIT_EXCEEDED')).toEqual([]);
    const calls = h.emulator.calls.filter((call) => !call.viaBatch);
    // Each new container continued from the bucket the last one left: one burst for the fleet, then the rate.
    const span = ((calls.at(-1)?.at ?? 0) - (calls[0]?.at ?? 0)) / 1000;
    expect(calls.length).toBeLessThanOrEqual(SMALL.burst + Math.ceil(span * SMALL.perSecond) + 1);
    expect(calls.length).toBeGreaterThan(SMALL.burst);
    expect(ids.filter((id) => h.emulator.getMessage(id)?.text === `bulk ${id}`).length).toBe(
      calls.length * PER_CALL,
    );
  });
});

describe('on the system clock', () => {
  let sys: Harness;
  let sysLedger: Ledger;
  beforeAll(async () => {
    sys = await startHarness({ timeoutMs: 5_000 });
  });
  afterAll(() => sys.close());
  beforeEach(async () => {
    sys.emulator.reset();
    sys.emulator.setLimits(null);
    sysLedger = await freshLedger(sys);
  });
  const sysEdit = (messageId: number, text: string) => edit(messageId, text, Date.now());

  describe('API callers during a flat-out drain', () => {
    it('have their edits carried by the drain holding the portal, ahead of its backlog, and hear applied or LEASE_HELD', async () => {
      // The standard plan, enforced by the emulator as the secret says: the drain runs at the rate
      // limit, so its 500 messages in calls of 10 take 50 calls, the last 11 paced at 2 a second.
      sys.emulator.setLimits({ burst: 50, perSecond: 2 });
      const backlog = Array.from({ length: 500 }, () =>
        sys.emulator.addMessage({ botId: BOT.id, chatId: 12, text: '-' }),
      );
      const drain = testReconciler(sys, sysLedger, { batchLingerMs: 250, maxCommandsPerCall: 10 });
      for (let i = 0; i < backlog.length; i += 100) {
        await Promise.all(
          backlog.slice(i, i + 100).map((id) => drain.merge(key(id), [sysEdit(id, `bulk ${id}`)])),
        );
      }
      const drainStats = emptyStats();
      const running = drain.reconcilePortal('acme', {
        ...fill(),
        remainingMs: () => 120_000,
        stats: drainStats,
      });
      // Ten callers, each its own container, once the drain holds the portal.
      await waitFor(() => sys.emulator.calls.some((call) => call.method === 'batch'), 60_000, 'a first call');
      const targets = Array.from({ length: 10 }, () =>
        sys.emulator.addMessage({ botId: BOT.id, chatId: 12, text: '-' }),
      );
      const answers = await Promise.all(
        targets.map(async (id) => {
          const api = testReconciler(sys, sysLedger, { maxCommandsPerCall: 10 });
          const { report } = await api.mergeAndApply(key(id), [sysEdit(id, `api ${id}`)], {
            remainingMs: () => 29_000,
            stats: emptyStats(),
          });
          return { id, fate: report.fates.get(messageKeyText(key(id))) };
        }),
      );
      await running;
      // Applied while the caller waited, or left to the holder with the reason: never refused.
      for (const { id, fate } of answers) {
        if (fate?.kind === 'held') expect(fate.code, `message ${id}`).toBe('LEASE_HELD');
        else expect(fate?.kind, `message ${id}`).toBe('applied');
        expect(sys.emulator.getMessage(id)?.text).toBe(`api ${id}`);
      }
      // Ahead of the backlog: every API edit landed before the drain's last call.
      const landed = (ids: number[]) => ids.map((id) => sys.emulator.getMessage(id)?.updatedAt ?? 0);
      expect(Math.max(...landed(targets))).toBeLessThan(Math.max(...landed(backlog)));
      for (const id of backlog) expect(sys.emulator.getMessage(id)?.text).toBe(`bulk ${id}`);
      // The drain ran flat out meanwhile: full calls, no rate-limit refusal.
      expect(drainStats.rateLimited).toBe(0);
      expect(sys.emulator.calls.filter((call) => call.code === 'QUERY_LIMIT_EXCEEDED')).toEqual([]);
      const full = drainStats.commandsPerCall.filter((n) => n === 10).length;
      expect(full).toBeGreaterThanOrEqual(drainStats.commandsPerCall.length - 2);
    }, 120_000);
  });

  describe('the OAuth refresh, fleet-wide', () => {
    /** A container's own gateway: its own secret cache, its own single flight, the shared lock. */
    function gatewayOf(lock: boolean): PortalGateway {
      const store = createSecretStore({ client: sys.secretsClient, prefix: PREFIX, ttlSeconds: 300 });
      return new PortalGateway({
        store,
        // Generous: 48 calls at once on a loaded machine.
        timeoutMs: 5_000,
        allowHttp: true,
        ...(lock ? { refreshLock: () => sysLedger.portals } : {}),
      });
    }

    async function expiredPortal(name: string, botId: number) {
      const clientId = `app.${name}`;
      sys.emulator.registerBot({ id: botId, owner: { clientId } });
      const tokens = sys.emulator.addOAuthApp({ clientId, clientSecret: OAUTH_APP.clientSecret });
      const secret = JSON.parse(oauthSecret(sys.emulator.url, sys.emulator.oauthUrl, tokens));
      secret.auth.clientId = clientId;
      secret.bots = { [botId]: {} };
      sys.secretsManager.setSecret(`${PREFIX}${name}`, JSON.stringify(secret));
      return secret;
    }

    /** `containers` gateways, each with 12 calls at once, after the access token expired. */
    async function race(name: string, botId: number, containers: number, lock: boolean) {
      await expiredPortal(name, botId);
      const gateways = Array.from({ length: containers }, () => gatewayOf(lock));
      const ids = gateways.map(() =>
        Array.from({ length: 12 }, () => sys.emulator.addMessage({ botId, chatId: 12, text: 'old' })),
      );
      // Every container has the secret cached (warm), then the token expires.
      for (const gateway of gateways) await gateway.secret(name);
      sys.emulator.expireAccessTokens();
      sys.emulator.clearCalls();
      const results = await Promise.allSettled(
        gateways.flatMap((gateway, c) =>
          (ids[c] as number[]).map((id) =>
            gateway.updateMessage(name, { botId, messageId: id }, { message: `new ${id}` }),
          ),
        ),
      );
      const refreshes = sys.emulator.calls.filter((call) => call.method === 'oauth/token');
      return {
        failed: results.filter((r) => r.status === 'rejected').length,
        // The first reasons, so that a failure says why.
        reasons: results.flatMap((r) => (r.status === 'rejected' ? [String(r.reason)] : [])).slice(0, 3),
        requests: refreshes.length,
        accepted: refreshes.filter((call) => call.httpStatus === 200).length,
        stale: ids.flat().filter((id) => sys.emulator.getMessage(id)?.text !== `new ${id}`).length,
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
});
