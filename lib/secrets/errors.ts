import { AppError } from '../errors.ts';

/** No secret exists for the portal (`ResourceNotFoundException`, or the secret is being deleted). */
export class PortalNotFoundError extends AppError {
  override name = 'PortalNotFoundError';
  readonly portal: string;
  readonly secretName: string;

  constructor(portal: string, secretName: string, options?: ErrorOptions) {
    super(
      'PORTAL_NOT_FOUND',
      `Portal "${portal}" is not configured: no secret named "${secretName}"`,
      404,
      options,
    );
    this.portal = portal;
    this.secretName = secretName;
  }
}

/**
 * A portal secret exists but breaks a rule of the secret format. `field` is the dotted path
 * (`auth.userId`, `bots.456.botToken`; empty for the secret as a whole). The message names the
 * field and the rule, never the value found.
 */
export class SecretInvalidError extends AppError {
  override name = 'SecretInvalidError';
  readonly secretName: string;
  readonly field: string;

  constructor(secretName: string, field: string, rule: string) {
    super('SECRET_INVALID', `Secret "${secretName}" is invalid: ${field ? `${field} ${rule}` : rule}`, 502);
    this.secretName = secretName;
    this.field = field;
  }
}

/**
 * Secrets Manager could not be asked: network failure, throttling, a 5xx, access denied.
 * `reason` is the AWS error name or network code; the original error is the `cause`.
 */
export class SecretsUnavailableError extends AppError {
  override name = 'SecretsUnavailableError';
  readonly secretName: string;
  readonly reason: string;
  /** Seconds a caller should wait before trying again. Always 5. */
  readonly retryAfterSeconds = 5;

  constructor(secretName: string, reason: string, options?: ErrorOptions) {
    super(
      'SECRETS_UNAVAILABLE',
      `Secrets Manager is unavailable for "${secretName}": ${reason}`,
      503,
      options,
    );
    this.secretName = secretName;
    this.reason = reason;
  }
}
