import { oauthFailure } from './credentials.ts';
import { customFailure, type Failure, failure } from './outcome.ts';
import type { Fault, FaultKind, RandomFaults } from './types.ts';

/** What the emulator writes instead of the real answer; `reset` destroys the socket. */
export type FaultReply =
  | { kind: 'json'; failure: Failure }
  | { kind: 'html'; status: number; body: string }
  | { kind: 'redirect'; status: 307 | 308; location: string }
  | { kind: 'reset' };

export const OAUTH_METHOD = 'oauth/token';
const DEFAULT_SLOW_MS = 200;
/** Another host: `.invalid` never resolves, so a client that follows the redirect fails loudly. */
export const DEFAULT_REDIRECT_ORIGIN = 'http://moved.b24-emulator.invalid';
const AMBIGUOUS: ReadonlySet<Fault['kind']> = new Set(['reset', 'server-error', 'html']);
const BAD_GATEWAY_HTML =
  '<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1><hr><center>nginx</center></body></html>';

function sameMethod(a: string, b: string): boolean {
  return a.replace(/\.json$/i, '').toLowerCase() === b.replace(/\.json$/i, '').toLowerCase();
}

/** Scripted faults (first match wins, counted down) and, for REST calls only, random ones. */
export class Faults {
  #scripted: { fault: Fault; remaining: number }[] = [];
  #random: RandomFaults | null = null;
  readonly #draw: () => number;

  constructor(random: () => number) {
    this.#draw = random;
  }

  inject(fault: Fault, times = 1): void {
    if (!Number.isInteger(times) || times < 1) {
      throw new RangeError(`Expected times to be a positive integer, got ${times}`);
    }
    this.#scripted.push({ fault, remaining: times });
  }

  setRandom(random: RandomFaults | null): void {
    if (random && (!(random.rate >= 0 && random.rate <= 1) || random.kinds.length === 0)) {
      throw new RangeError(
        `Expected random faults with a rate in 0..1 and at least one kind, got ${JSON.stringify(random)}`,
      );
    }
    this.#random = random;
  }

  clear(): void {
    this.#scripted = [];
    this.#random = null;
  }

  /** The fault for the next HTTP request to `method`, if any. The OAuth endpoint is only hit by name. */
  take(method: string): Fault | undefined {
    const oauth = method === OAUTH_METHOD;
    const index = this.#scripted.findIndex(({ fault }) =>
      fault.method === undefined ? !oauth : sameMethod(fault.method, method),
    );
    const entry = this.#scripted[index];
    if (entry) {
      entry.remaining -= 1;
      if (entry.remaining === 0) this.#scripted.splice(index, 1);
      return entry.fault;
    }
    if (oauth || !this.#random || this.#draw() >= this.#random.rate) return undefined;
    const kinds = this.#random.kinds;
    const kind = kinds[Math.floor(this.#draw() * kinds.length)] ?? (kinds[0] as FaultKind);
    if (kind === 'slow') return { kind, delayMs: this.#random.slowMs ?? DEFAULT_SLOW_MS };
    // Half of the random ambiguous faults hit after the call ran, as real lost answers do.
    return AMBIGUOUS.has(kind) ? { kind, afterApply: this.#draw() < 0.5 } : { kind };
  }
}

export function runsFirst(fault: Fault): boolean {
  return fault.kind === 'slow' || (fault.afterApply === true && AMBIGUOUS.has(fault.kind));
}

/** The answer a fault gives; undefined for 'slow', which answers normally. */
export function faultReply(fault: Fault): FaultReply | undefined {
  switch (fault.kind) {
    case 'redirect':
      return {
        kind: 'redirect',
        status: fault.status === 308 ? 308 : 307,
        location: fault.location ?? `${DEFAULT_REDIRECT_ORIGIN}/`,
      };
    case 'server-error':
      return { kind: 'json', failure: failure('INTERNAL_SERVER_ERROR') };
    case 'overload':
      return { kind: 'json', failure: failure('OVERLOAD_LIMIT') };
    case 'query-limit':
      return { kind: 'json', failure: failure('QUERY_LIMIT_EXCEEDED') };
    case 'operating-limit':
      return { kind: 'json', failure: failure('OPERATION_TIME_LIMIT') };
    case 'html':
      return { kind: 'html', status: 502, body: BAD_GATEWAY_HTML };
    case 'reset':
      return { kind: 'reset' };
    case 'error': {
      const code = fault.code ?? 'INTERNAL_SERVER_ERROR';
      // At the token endpoint a code means what the auth server means by it, not the REST row.
      const oauth = fault.method !== undefined && sameMethod(fault.method, OAUTH_METHOD);
      const own = oauth ? oauthFailure(code, fault.status, fault.description) : undefined;
      return { kind: 'json', failure: own ?? customFailure(code, fault.status, fault.description) };
    }
    case 'slow':
      return undefined;
  }
}
