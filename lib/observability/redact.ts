/**
 * Keeps secrets out of logs and error messages. (`code` is not a secret key: it names error codes
 * everywhere; a webhook code is caught as a registered value instead.) Two nets: keys that always hold secrets are masked
 * wherever they appear, and every secret value the process has loaded is registered here and masked
 * wherever it appears inside any string (a token quoted in an upstream message, a webhook URL).
 */
/** Keys whose values are secrets wherever they appear (compared case-insensitively). */
export const SECRET_KEY_NAMES: readonly string[] = [
  'botToken',
  'accessToken',
  'access_token',
  'refreshToken',
  'refresh_token',
  'clientSecret',
  'client_secret',
  'application_token',
  'auth',
  'password',
  'authorization',
  'secretString',
];
const SECRET_KEYS = new Set(SECRET_KEY_NAMES.map((k) => k.toLowerCase()));

export const MASK = '[redacted]';
const MIN_SECRET_LENGTH = 4;
/** Each registered form (lower case) and the case-insensitive pattern that finds it. */
const secretValues = new Map<string, RegExp>();
// Webhook paths carry the secret between the user id and the method: /rest/1/abc123/method
const WEBHOOK_PATH = /(\/rest\/\d+\/)[^/\s"'?]+/g;

/**
 * The forms a credential takes when a text quotes it transformed: percent-encoded (a URL, a form
 * body), base64 and base64url (a header, a token), each without its padding (it may sit inside a
 * longer encoded text). Case is ignored when matching.
 */
function encodedForms(value: string): Array<{ form: string; base64: boolean }> {
  const bytes = Buffer.from(value);
  return [
    { form: value, base64: false },
    { form: encodeURIComponent(value), base64: false },
    { form: bytes.toString('base64').replace(/=+$/, ''), base64: true },
    { form: bytes.toString('base64url'), base64: true },
  ].filter(({ form }) => form.length >= MIN_SECRET_LENGTH);
}

function remember({ form, base64 }: { form: string; base64: boolean }): void {
  const key = form.toLowerCase();
  // A base64 form's padding, when the text has it, goes with it.
  const pattern = form.replace(/[.*+?^${}()|[\]\\]/g, '\\$&') + (base64 ? '={0,2}' : '');
  if (!secretValues.has(key)) secretValues.set(key, new RegExp(pattern, 'gi'));
}

/** Remember a secret value so that it is masked wherever it later appears, encoded forms included. */
export function registerSecret(value: string | undefined): void {
  if (!value || value.length < MIN_SECRET_LENGTH) return;
  for (const form of encodedForms(value)) remember(form);
}

/**
 * Remember a webhook's user id and code as a pair too: `userId:code` in base64 is how a Basic
 * authorization header (or a client that packs them) carries them.
 */
export function registerCredentialPair(user: string | number, code: string | undefined): void {
  if (!code || code.length < MIN_SECRET_LENGTH) return;
  for (const form of encodedForms(`${user}:${code}`)) if (form.base64) remember(form);
}

/**
 * Masks every registered secret value and webhook paths: for texts that came from elsewhere
 * (Bitrix24's and the OAuth server's error descriptions, thrown messages, log lines).
 */
export function redactString(text: string): string {
  return maskSecretValues(text.replace(WEBHOOK_PATH, `$1${MASK}`));
}

/**
 * Masks registered secret values only, leaving the rest as it is: for texts that carry a caller's
 * content (an edit's body, an answer), where a path-like string is data, not a credential.
 */
export function maskSecretValues(text: string): string {
  let out = text;
  // Every string of every log line comes through here, and a container holds a secret's four forms
  // for each portal it serves: a plain search of the lower-cased text first, the pattern only on a hit.
  let lower = out.toLowerCase();
  for (const [form, pattern] of secretValues) {
    if (!lower.includes(form)) continue;
    out = out.replace(pattern, MASK);
    lower = out.toLowerCase();
  }
  return out;
}

/** A JSON.stringify replacer that masks secret keys and registered values. */
export function redactingReplacer(key: string, value: unknown): unknown {
  if (key && SECRET_KEYS.has(key.toLowerCase()) && value !== undefined && value !== null && value !== '') {
    return MASK;
  }
  if (typeof value === 'string') return redactString(value);
  if (value instanceof Error) {
    return {
      name: value.name,
      message: redactString(value.message),
      ...('code' in value ? { code: value.code } : {}),
    };
  }
  return value;
}

/** A deep copy of `value` with secrets masked. */
export function redact<T>(value: T): T {
  return JSON.parse(JSON.stringify(value, redactingReplacer) ?? 'null') as T;
}
