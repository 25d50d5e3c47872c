/** Small rules shared by the field validators. */

export const LINK_RULE = 'must be an absolute http(s) URL or a path from the portal root ("/…")';

/** The colour tokens of the attach and keyboard docs (`COLOR_TOKEN`, `BG_COLOR_TOKEN`). */
export const COLOR_TOKENS = ['primary', 'secondary', 'alert', 'base'] as const;

/**
 * The docs ask for HEX colours; the im module keeps a colour only when it matches `#` and 3 or 6
 * hex digits, and silently drops or replaces any other, so a typo is refused here instead.
 */
export const HEX_COLOR_RULE = 'must be a HEX colour: "#" and 3 or 6 hex digits, e.g. "#29619b"';

export const count = (n: number) => n.toLocaleString('en-US');

/** The docs allow `http://`, `https://` and root-relative paths; `//host` would leave the portal. */
export function isLink(value: unknown): boolean {
  if (typeof value !== 'string') return false;
  if (value.startsWith('/')) return !value.startsWith('//') && !value.startsWith('/\\');
  if (!/^https?:\/\//i.test(value)) return false;
  return URL.canParse(value);
}

export function isHexColor(value: unknown): boolean {
  return typeof value === 'string' && /^#(?:[0-9a-f]{3}){1,2}$/i.test(value);
}

export function isColorToken(value: unknown): boolean {
  return (COLOR_TOKENS as readonly unknown[]).includes(value);
}

const encoder = new TextEncoder();
export function utf8Bytes(text: string): number {
  return encoder.encode(text).length;
}
