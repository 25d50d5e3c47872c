/**
 * Polls `condition` every 50 ms until it holds; throws naming `what` once `boundMs` passed. The
 * bound is for a stuck test, not a performance target: make it generous.
 */
export async function waitFor(
  condition: () => Promise<boolean> | boolean,
  boundMs: number,
  what: string,
): Promise<void> {
  const until = Date.now() + boundMs;
  for (;;) {
    if (await condition()) return;
    if (Date.now() >= until) throw new Error(`Gave up after ${boundMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
