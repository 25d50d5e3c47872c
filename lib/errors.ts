/**
 * The project's one error family. Every error the project raises on purpose extends `AppError`
 * and carries a stable `code` to switch on; `status` is the HTTP status an API caller sees.
 * Messages never contain tokens, webhook codes or secret values.
 */
export class AppError extends Error {
  override name = 'AppError';
  readonly code: string;
  readonly status: number;

  constructor(code: string, message: string, status = 500, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    this.status = status;
  }
}

/** A value a caller sent breaks a rule. `field` is the dotted path, e.g. `fields.message`. */
export class ValidationError extends AppError {
  override name = 'ValidationError';
  readonly field: string;

  constructor(field: string, message: string, code = 'INVALID_REQUEST_BODY') {
    super(code, message, 400);
    this.field = field;
  }
}

/** Configuration (environment variables, status spec files) is wrong; raised at cold start. */
export class ConfigError extends AppError {
  override name = 'ConfigError';
  readonly variable: string;

  constructor(variable: string, message: string) {
    super('CONFIG_INVALID', message, 500);
    this.variable = variable;
  }
}
