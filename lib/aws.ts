import type { StoreClock } from './clock.ts';

/**
 * Limits for the AWS SDK clients the handlers build (otherwise default configuration: region,
 * endpoints, credentials from the environment). Secrets Manager and SQS calls sit on the request
 * path of a 15 s API: a hung endpoint must fail fast enough to answer 503 with Retry-After.
 */
export const AWS_CLIENT_LIMITS = {
  maxAttempts: 2,
  // Without throwOnRequestTimeout the request timeout only logs a warning and the call hangs on.
  requestHandler: { connectionTimeout: 1_000, requestTimeout: 3_000, throwOnRequestTimeout: true },
} as const;

/**
 * Feeds a `StoreClock` with the `Date` header of every answer a client gets (the ledger's DynamoDB
 * client: the store whose clock every container's time is corrected to).
 */
export function observeServerTime(
  client: {
    middlewareStack: { add: (middleware: never, options: { step: 'deserialize'; name: string }) => void };
  },
  clock: StoreClock,
): void {
  const middleware =
    (next: (args: unknown) => Promise<{ response: unknown }>) =>
    async (args: unknown): Promise<{ response: unknown }> => {
      const sentAt = clock.machineNow();
      const result = await next(args);
      const headers = (result.response as { headers?: Record<string, string> } | undefined)?.headers;
      clock.observe(headers?.date, sentAt, clock.machineNow());
      return result;
    };
  client.middlewareStack.add(middleware as never, { step: 'deserialize', name: 'observeServerTime' });
}
