import { describe, expect, it } from 'vitest';
import { emptyState, type MessageState } from '../../lib/ledger/model.ts';
import { batchWait } from '../../lib/reconcile/batching.ts';

// When a wake-up's call that would not be full goes: the rule alone, on plain numbers.
const options = { batchLingerMs: 1_000, batchMaxWaitMs: 10_000, maxCommandsPerCall: 50 };

/** `n` messages of a fresh backlog, the first dirty since `from`, one every `everyMs`. */
function backlog(n: number, from: number, everyMs: number): MessageState[] {
  return Array.from({ length: n }, (_, i) => ({
    ...emptyState({ portal: 'acme', botId: 1, messageId: i + 1 }),
    version: 1,
    dirtySince: from + i * everyMs,
    dueAt: from + i * everyMs,
  }));
}

describe('when a call that would not be full goes', () => {
  it('sends a full call at once, however recent the edits', () => {
    expect(
      batchWait(backlog(50, 0, 10), { lastCallAt: 400, touchedAt: 490, now: 500 }, options),
    ).toBeUndefined();
  });

  it('gives messages already shown a call at most every batchLingerMs after the last one', () => {
    const shown = backlog(3, 0, 10).map((state) => ({ ...state, appliedVersion: 1, version: 2 }));
    expect(batchWait(shown, { lastCallAt: 4_600, touchedAt: 4_990, now: 5_000 }, options)).toBe(5_600);
    expect(batchWait(shown, { lastCallAt: 3_000, touchedAt: 4_990, now: 5_000 }, options)).toBeUndefined();
  });

  it('lets a backlog whose producer paused go now', () => {
    expect(
      batchWait(backlog(5, 0, 100), { lastCallAt: undefined, touchedAt: 400, now: 2_000 }, options),
    ).toBeUndefined();
  });

  it('looks at a backlog still being sent again three times its age on', () => {
    // Oldest edit at 0, the latest just now: the next look at 3 × 1 s.
    expect(
      batchWait(backlog(5, 0, 200), { lastCallAt: undefined, touchedAt: 900, now: 1_000 }, options),
    ).toBe(3_000);
  });

  it('goes straight to batchMaxWaitMs from the oldest edit when the next look would come within two gaps of it', () => {
    // At 3 s the next look would be at 9 s, within 2 s of 10 s: the last look is at 10 s.
    expect(
      batchWait(backlog(20, 0, 150), { lastCallAt: undefined, touchedAt: 2_900, now: 3_000 }, options),
    ).toBe(10_000);
  });

  it('sends a backlog at batchMaxWaitMs from its oldest edit even while edits keep coming', () => {
    expect(
      batchWait(backlog(40, 0, 250), { lastCallAt: undefined, touchedAt: 9_990, now: 10_000 }, options),
    ).toBeUndefined();
  });
});
