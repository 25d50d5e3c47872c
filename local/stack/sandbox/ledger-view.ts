import type { Ledger } from '../../../lib/ledger/messages.ts';
import {
  desiredFields,
  fateOf,
  type MessageKey,
  type MessageState,
  messageKeyText,
  type Timing,
} from '../../../lib/ledger/model.ts';
import type { PortalView } from '../../../lib/ledger/portal-item.ts';
import type { LedgerView, PortalWakeupView, SandboxState } from './state.ts';

/** The ledger the sandbox reads, and the timing its fates are computed with (the fate route's). */
export interface SandboxLedger {
  ledger: Pick<Ledger, 'getMany'> & { portals: { view(portal: string): Promise<PortalView> } };
  timing: Timing;
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

/** One message's ledger item as the page shows it; null when no edit of it has been recorded. */
export function ledgerView(state: MessageState, timing: Timing, now = Date.now()): LedgerView | null {
  if (state.version === 0) return null;
  const fields = desiredFields(state);
  const fate = fateOf(state, timing);
  const error = fate.kind === 'failed' ? fate.error : fate.kind === 'pending' ? fate.lastError : undefined;
  return {
    text: typeof fields.message === 'string' ? fields.message : undefined,
    keyboard: fields.keyboard !== undefined,
    attach: fields.attach !== undefined,
    status: fate.kind,
    ...(fate.kind === 'pending' && fate.dueAt > now ? { nextRetryAt: iso(fate.dueAt) } : {}),
    ...(error ? { error: { code: error.code, description: error.description } } : {}),
    version: state.version,
    appliedVersion: state.appliedVersion,
    pendingEditIds: state.pendingEditIds.length,
  };
}

/** A portal item's wake-up schedule as the page shows it. */
export function wakeupView(portal: string, view: PortalView, now = Date.now()): PortalWakeupView {
  const leaseHeld = view.leaseUntil !== undefined && view.leaseUntil > now;
  return {
    portal,
    wakeAt: view.wakeAt === undefined ? 'none' : iso(view.wakeAt),
    leaseHeld,
    ...(leaseHeld && view.leaseUntil !== undefined ? { leaseUntil: iso(view.leaseUntil) } : {}),
    ...(view.touchedAt === undefined ? {} : { touchedAt: iso(view.touchedAt) }),
  };
}

/** Portal items read for the page at most: one read each, several times a second while it is open. */
const MAX_WAKEUP_PORTALS = 10;

/**
 * The wake-up schedule of the stack's portal and of every other portal edits were recorded for
 * (one portal item each, a consistent read).
 */
async function wakeupsOf(
  state: SandboxState,
  source: SandboxLedger,
): Promise<PortalWakeupView[] | { error: string }> {
  const portals = [...new Set([state.portal, ...(state.portals ?? [])])].slice(0, MAX_WAKEUP_PORTALS);
  try {
    const now = Date.now();
    const views = await Promise.all(portals.map((portal) => source.ledger.portals.view(portal)));
    return views.map((view, i) => wakeupView(portals[i] as string, view, now));
  } catch (error) {
    return { error: error instanceof Error ? error.message : String(error) };
  }
}

/**
 * Adds the ledger's view to every bot message of the chat, and the portal's wake-up schedule. A
 * ledger that cannot be read leaves the messages as they are and says why, so the page still shows
 * the emulator's side.
 */
export async function withLedger(state: SandboxState, source: SandboxLedger): Promise<SandboxState> {
  const [messages, wakeups] = await Promise.all([withMessages(state, source), wakeupsOf(state, source)]);
  return { ...messages, wakeups };
}

async function withMessages(state: SandboxState, source: SandboxLedger): Promise<SandboxState> {
  const { chat } = state;
  if (!chat) return state;
  const keys: MessageKey[] = chat.messages.flatMap((m) =>
    m.botId === undefined ? [] : [{ portal: state.portal, botId: m.botId, messageId: m.id }],
  );
  if (keys.length === 0) return state;
  let states: Map<string, MessageState>;
  try {
    states = await source.ledger.getMany(keys);
  } catch (error) {
    return { ...state, ledgerError: error instanceof Error ? error.message : String(error) };
  }
  const now = Date.now();
  const messages = chat.messages.map((m) => {
    const stored =
      m.botId === undefined
        ? undefined
        : states.get(messageKeyText({ portal: state.portal, botId: m.botId, messageId: m.id }));
    return stored ? { ...m, ledger: ledgerView(stored, source.timing, now) } : m;
  });
  return { ...state, chat: { ...chat, messages } };
}
