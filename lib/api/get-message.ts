import { parseIdSegment } from '../edits/validate.ts';
import { ValidationError } from '../errors.ts';
import { errorResult, type HttpResult, jsonResult, toErrorResult } from '../http/responses.ts';
import type { Ledger } from '../ledger/messages.ts';
import { fateOf, isDirty, type Timing } from '../ledger/model.ts';
import { PORTAL_PATTERN } from '../portal-name.ts';

/**
 * `.../messages/{portal}/{botId}/{messageId}` at the end of a path: the three parts as they stand in
 * the path (the portal still percent-encoded), or undefined.
 */
export function messagePath(path: string): { portal: string; botId: string; messageId: string } | undefined {
  const match = /\/messages\/([^/]+)\/([^/]+)\/([^/]+)\/?$/.exec(path);
  if (!match) return undefined;
  return { portal: match[1] as string, botId: match[2] as string, messageId: match[3] as string };
}

function decodedPortal(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new ValidationError('portal', 'portal must be valid percent-encoding (RFC 3986)', 'INVALID_PORTAL');
  }
}

/**
 * An edit's fate, as the ledger knows it: the desired fields, whether they are applied, the ids of
 * the edits still pending, the last error with its code and description, and the next retry time.
 */
export async function getMessage(
  parts: { portal: string; botId: string; messageId: string },
  deps: { ledger: Ledger; timing: Timing },
): Promise<HttpResult> {
  try {
    const portal = decodedPortal(parts.portal);
    if (!PORTAL_PATTERN.test(portal)) {
      throw new ValidationError('portal', `portal must match ${PORTAL_PATTERN.source}`, 'INVALID_PORTAL');
    }
    const key = {
      portal,
      botId: parseIdSegment('botId', parts.botId),
      messageId: parseIdSegment('messageId', parts.messageId),
    };
    const state = await deps.ledger.get(key);
    if (state.version === 0) {
      return errorResult(404, 'MESSAGE_NOT_FOUND', 'No edit of this message has been recorded');
    }
    const fate = fateOf(state, deps.timing);
    const iso = (ms: number | undefined) => (ms === undefined ? undefined : new Date(ms).toISOString());
    const desired = Object.fromEntries(
      Object.entries(state.desired).map(([field, entry]) => [
        field,
        { value: entry?.value, acceptedAt: iso(entry?.at), editId: entry?.editId },
      ]),
    );
    return jsonResult(200, {
      ...key,
      status: fate.kind,
      applied: !isDirty(state) && fate.kind === 'applied',
      version: state.version,
      appliedVersion: state.appliedVersion,
      appliedAt: iso(state.appliedAt),
      desired,
      pendingEditIds: isDirty(state) ? state.pendingEditIds : [],
      attempts: state.attempts,
      lastError: state.lastError
        ? {
            code: state.lastError.code,
            description: state.lastError.description,
            at: iso(state.lastError.at),
          }
        : undefined,
      // A message due already has no retry time to wait for: it goes with the next reconcile.
      nextRetryAt: fate.kind === 'pending' && fate.dueAt > Date.now() ? iso(fate.dueAt) : undefined,
    });
  } catch (error) {
    return toErrorResult(error);
  }
}
