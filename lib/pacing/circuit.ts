import { overloadCircuit } from './policies.ts';

export interface PortalCircuitsOptions {
  /** How long the first open lasts, in ms. Default 5 min (`overloadCircuit.openMs`). */
  openMs?: number;
  /** The longest an open lasts however often it doubles, in ms. Default 1 h (`overloadCircuit.maxOpenMs`). */
  maxOpenMs?: number;
  /** Clock in milliseconds. Default `Date.now`. */
  now?: () => number;
}

interface CircuitState {
  openUntil: number;
  /** Opens since the last success; each one doubles the next open. */
  opens: number;
}

/**
 * Per-portal circuits for OVERLOAD_LIMIT: Bitrix24 has blocked the portal's REST API by hand, so
 * calls are pointless until support lifts it. While a portal's circuit is open, its edits wait.
 *
 * Opening an already open circuit changes nothing: calls sent before the first failure may fail
 * after it, and that is one overload, not several. An open after the circuit has run out without a
 * success in between (the probe failed) doubles the time, up to `maxOpenMs`. State lives in one
 * container's memory between calls and travels with the portal's lease (`state`, `adopt`), so one
container's OVERLOAD_LIMIT holds every container's calls to the portal.
 */
export class PortalCircuits {
  readonly #openMs: number;
  readonly #maxOpenMs: number;
  readonly #now: () => number;
  readonly #circuits = new Map<string, CircuitState>();

  constructor(options: PortalCircuitsOptions = {}) {
    const {
      openMs = overloadCircuit.openMs,
      maxOpenMs = overloadCircuit.maxOpenMs,
      now = Date.now,
    } = options;
    if (!Number.isFinite(openMs) || openMs <= 0) {
      throw new RangeError(`Expected openMs to be a positive number, got ${String(openMs)}`);
    }
    if (!Number.isFinite(maxOpenMs) || maxOpenMs < openMs) {
      throw new RangeError(
        `Expected maxOpenMs to be a number of at least openMs (${openMs}), got ${String(maxOpenMs)}`,
      );
    }
    if (typeof now !== 'function') {
      throw new TypeError(`Expected now to be a function, got ${typeof now}`);
    }
    this.#openMs = openMs;
    this.#maxOpenMs = maxOpenMs;
    this.#now = now;
  }

  /** Opens the portal's circuit (or leaves it open) and returns when it closes, in ms. */
  open(portal: string): number {
    const now = this.#now();
    const state = this.#circuits.get(portal);
    if (state && now < state.openUntil) return state.openUntil;
    const opens = (state?.opens ?? 0) + 1;
    // 2 ** n reaches Infinity for huge n, and Math.min turns that back into the cap.
    const duration = Math.min(this.#maxOpenMs, this.#openMs * 2 ** (opens - 1));
    const openUntil = now + duration;
    this.#circuits.set(portal, { openUntil, opens });
    return openUntil;
  }

  /** When the portal's circuit closes, in ms, or undefined when it is closed. */
  openUntil(portal: string): number | undefined {
    const state = this.#circuits.get(portal);
    return state && this.#now() < state.openUntil ? state.openUntil : undefined;
  }

  /** The portal's circuit as it stands (open or run out, its doubling kept), for the next lease holder. */
  state(portal: string): { openUntil: number; opens: number } | undefined {
    const state = this.#circuits.get(portal);
    return state ? { ...state } : undefined;
  }

  /**
   * Takes over the circuit another container left with the portal's lease: the later close time and
   * the larger doubling win, so a circuit never closes early by being handed on.
   */
  adopt(portal: string, handed: { openUntil: number; opens: number } | undefined): void {
    if (!handed || !Number.isFinite(handed.openUntil) || !(handed.opens >= 1)) return;
    const own = this.#circuits.get(portal);
    this.#circuits.set(portal, {
      openUntil: Math.max(own?.openUntil ?? 0, handed.openUntil),
      opens: Math.max(own?.opens ?? 0, Math.floor(handed.opens)),
    });
  }

  /** Closes the portal's circuit after a successful call and forgets its doubling. */
  close(portal: string): void {
    this.#circuits.delete(portal);
  }
}
