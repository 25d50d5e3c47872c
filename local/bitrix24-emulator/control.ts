import { type HttpReply, json } from './http.ts';
import type { Bitrix24Emulator, Fault, FaultKind, RandomFaults } from './types.ts';

export const CONTROL_PREFIX = '/_emulator/';

const FAULT_KINDS: ReadonlySet<string> = new Set<FaultKind | 'error' | 'redirect'>([
  'server-error',
  'overload',
  'query-limit',
  'operating-limit',
  'html',
  'reset',
  'slow',
  'error',
  'redirect',
]);

function bad(description: string): HttpReply {
  return json(400, { error: 'INVALID_CONTROL_REQUEST', error_description: description });
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isFault(value: unknown): value is Fault {
  return isRecord(value) && typeof value.kind === 'string' && FAULT_KINDS.has(value.kind);
}

function isRandomFaults(value: unknown): value is RandomFaults {
  return (
    isRecord(value) &&
    typeof value.rate === 'number' &&
    Array.isArray(value.kinds) &&
    value.kinds.every((k) => typeof k === 'string' && FAULT_KINDS.has(k) && k !== 'error' && k !== 'redirect')
  );
}

function faults(emu: Bitrix24Emulator, body: unknown): HttpReply {
  if (isRecord(body) && 'random' in body) {
    if (body.random !== null && !isRandomFaults(body.random)) {
      return bad('Expected random to be null or {rate, kinds, slowMs?}');
    }
    emu.setRandomFaults(body.random);
    return json(200, { ok: true });
  }
  if (!isRecord(body) || !isFault(body.fault)) {
    return bad(`Expected {fault: {kind}, times?} with kind one of ${[...FAULT_KINDS].join(', ')}`);
  }
  const times = body.times ?? 1;
  if (typeof times !== 'number' || !Number.isInteger(times) || times < 1) {
    return bad(`Expected times to be a positive integer, got ${JSON.stringify(times)}`);
  }
  emu.inject(body.fault, times);
  return json(200, { ok: true });
}

/**
 * Steering and introspection for a child-process emulator. Only data the emulator already keeps
 * token-free (messages, bots without their tokens, chats, redacted call records) is exposed.
 */
export function handleControl(emu: Bitrix24Emulator, method: string, path: string, body: unknown): HttpReply {
  const route = path.slice(CONTROL_PREFIX.length).replace(/\/$/, '');
  if (method === 'GET' && route === 'messages') return json(200, emu.messages());
  if (method === 'GET' && route.startsWith('messages/')) {
    const message = emu.getMessage(Number(route.slice('messages/'.length)));
    return message
      ? json(200, message)
      : json(404, { error: 'NOT_FOUND', error_description: 'No such message' });
  }
  if (method === 'GET' && route === 'bots') return json(200, emu.bots());
  if (method === 'GET' && route === 'chats') return json(200, emu.chats());
  if (method === 'GET' && route === 'calls') return json(200, emu.calls);
  if (method === 'GET' && route === 'bucket') return json(200, { level: emu.bucketLevel() });
  if (method === 'POST' && route === 'faults') return faults(emu, body);
  if (method === 'POST' && route === 'reset') {
    emu.reset();
    return json(200, { ok: true });
  }
  return json(404, { error: 'NOT_FOUND', error_description: `No control endpoint ${method} ${path}` });
}
