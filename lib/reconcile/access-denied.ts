import { Strategy } from '../bitrix24/error-table.ts';
import { isBitrix24Error } from '../bitrix24/errors.ts';
import { logger } from '../observability/logger.ts';
import type { PortalGateway } from '../portal/gateway.ts';

/**
 * `ACCESS_DENIED` means either "this message is not the bot's" (final for the message) or "this
 * portal has no REST access" (its plan, or the credentials: every message waits for an operator).
 * The error table tells them apart by the description's wording where it knows the wording; the
 * docs say the wording may change, so an answer it does not recognise is told apart by what does
 * not depend on words:
 * - refused for a whole `batch` call: the call itself was refused, which no message can cause;
 * - refused for a message inside a `batch` call while other commands of it ran: the message;
 * - refused for a single call, or for every command of a `batch` call: a follow-up `server.time`
 *   (scope basic, any user, no side effects) says whether REST works for the portal at all. When
 *   that check fails too, the failure names both meanings and is retried, never final.
 */
export const ACCESS_DENIED = 'ACCESS_DENIED';

/**
 * How long a portal's `server.time` answer stands for later refusals: short, since a portal that
 * loses REST access within it has its refusals read as the messages' (final, with their reason).
 */
export const REST_CHECK_TTL_MS = 60_000;

interface Judged {
  code: string;
  description: string;
  strategy: Strategy;
  callerStatus?: number | undefined;
}

/** Where the refusal came from. */
export type Refusal = 'batch-call' | 'single-call' | 'every-command';

/** The portal-level meaning, said plainly for the failed-edits queue and the caller. */
function portalLevel(description: string, why: string): Judged {
  return {
    code: ACCESS_DENIED,
    description: `${description} — REST access is refused for the whole portal (${why}): the portal’s plan or the credentials, not the message`,
    strategy: Strategy.Auth,
    callerStatus: 502,
  };
}

/** Per portal: when `server.time` last answered, and whether it was served. */
const checks = new Map<string, { at: number; served: boolean }>();

export interface AccessCheck {
  gateway: Pick<PortalGateway, 'call'>;
  now: () => number;
  signal?: AbortSignal | undefined;
  /** Milliseconds left in the invocation, and what one more call needs: no check past the deadline. */
  remainingMs?: () => number;
  callTimeoutMs?: number;
  deadlineMarginMs?: number;
}

/**
 * The meaning of an `ACCESS_DENIED` the error table read as the message's (strategy permanent). A
 * failure of another code, or one already read as the portal's, is returned as it is.
 */
export async function judgeAccessDenied<F extends Judged>(
  portal: string,
  failure: F,
  refusal: Refusal,
  check: AccessCheck,
): Promise<F | Judged> {
  if (failure.code.toUpperCase() !== ACCESS_DENIED || failure.strategy !== Strategy.Permanent) return failure;
  if (refusal === 'batch-call') return portalLevel(failure.description, 'the batch call itself was refused');
  const served = await restServed(portal, check);
  if (served === true) return failure;
  if (served === false) return portalLevel(failure.description, 'server.time was refused too');
  logger.error('ACCESS_DENIED that could not be told apart: retried', { portal, code: ACCESS_DENIED });
  return {
    code: ACCESS_DENIED,
    description: `${failure.description} — either the message is not the bot’s or the portal lost REST access; the check that tells them apart (server.time) failed, so the edit is tried again`,
    strategy: Strategy.Server,
  };
}

/** Whether REST is served for the portal (cached); undefined when the check itself failed. */
async function restServed(portal: string, check: AccessCheck): Promise<boolean | undefined> {
  const now = check.now();
  const known = checks.get(portal);
  if (known && now - known.at < REST_CHECK_TTL_MS && now >= known.at) return known.served;
  const spare =
    (check.remainingMs?.() ?? Number.POSITIVE_INFINITY) -
    (check.callTimeoutMs ?? 0) -
    (check.deadlineMarginMs ?? 0);
  if (spare < 0 || check.signal?.aborted) return undefined;
  let served: boolean;
  try {
    await check.gateway.call(portal, 'server.time', {}, { signal: check.signal });
    served = true;
  } catch (error) {
    if (!isBitrix24Error(error)) return undefined;
    const auth = error.code.toUpperCase() === ACCESS_DENIED || error.strategy === Strategy.Auth;
    if (!auth) return undefined;
    served = false;
  }
  checks.set(portal, { at: now, served });
  return served;
}

/** Forgets every portal's check (tests). */
export function forgetRestChecks(): void {
  checks.clear();
}
