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
