import { SECRET_KEY_NAMES } from '../../lib/observability/redact.ts';

export const MASK = '[redacted]';

const SECRET_KEYS = new Set(SECRET_KEY_NAMES.map((k) => k.toLowerCase()));

// Secrets by name inside query strings, such as a batch command carrying a mistyped botToken.
const SECRET_IN_QUERY = new RegExp(`(^|[?&])(${[...SECRET_KEYS].join('|')})=[^&]*`, 'gi');

// Shorter values would mask ordinary words and digits in message texts.
const MIN_SECRET_LENGTH = 4;

/**
 * Every token, webhook code and secret the emulator knows, so that recorded parameters can be
 * masked by key and also wherever a secret sits inside a string (a batch command's query string).
 */
export class SecretRegistry {
  readonly #values = new Set<string>();

  add(value: string | undefined): void {
    if (value && value.length >= MIN_SECRET_LENGTH) this.#values.add(value);
  }

  /** Every value known, for the credential-echo switch (a server that quotes secrets back). */
  values(): string[] {
    return [...this.#values];
  }

  redactString(text: string): string {
    let out = text.replace(SECRET_IN_QUERY, `$1$2=${MASK}`);
    for (const secret of this.#values) {
      if (out.includes(secret)) out = out.split(secret).join(MASK);
    }
    return out;
  }

  redact(value: unknown): unknown {
    if (typeof value === 'string') return this.redactString(value);
    if (Array.isArray(value)) return value.map((item) => this.redact(item));
    if (typeof value === 'object' && value !== null) {
      const out: Record<string, unknown> = {};
      for (const [key, item] of Object.entries(value)) {
        const secret =
          SECRET_KEYS.has(key.toLowerCase()) && item !== undefined && item !== null && item !== '';
        out[key] = secret ? MASK : this.redact(item);
      }
      return out;
    }
    return value;
  }
}
