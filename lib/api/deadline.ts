/**
 * How long before the function's deadline a request answers whatever its work has reached: room for
 * a wake-up sent straight to the portal work queue and the answer, before Middy's early timeout
 * (500 ms, functions/update-message.ts) would turn the request into a 500.
 */
export const ANSWER_RESERVE_MS = 1_500;

/** The work's result, or `deadline` when `ANSWER_RESERVE_MS` before the function's deadline comes first. */
export async function beforeDeadline<T>(
  work: Promise<T>,
  remainingMs: (() => number) | undefined,
): Promise<T | 'deadline'> {
  const left = remainingMs?.() ?? Number.POSITIVE_INFINITY;
  if (!Number.isFinite(left) || left >= 2 ** 31) return work;
  // Answered at the deadline, the work goes on (or is frozen with the container): its failure then
  // has no one to hear it.
  work.catch(() => undefined);
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<'deadline'>((resolve) => {
    timer = setTimeout(() => resolve('deadline'), Math.max(0, left - ANSWER_RESERVE_MS));
  });
  try {
    return await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
  }
}
