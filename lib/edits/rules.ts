/** Small rules shared by the field validators. */

export const LINK_RULE = 'must be an absolute http(s) URL or a path from the portal root ("/…")';

export const count = (n: number) => n.toLocaleString('en-US');

/** The docs allow `http://`, `https://` and root-relative paths; `//host` would leave the portal. */
export function isLink(value: unknown): boolean {
  if (typeof value !== 'string') return false;
  if (value.startsWith('/')) return !value.startsWith('//') && !value.startsWith('/\\');
  if (!/^https?:\/\//i.test(value)) return false;
  return URL.canParse(value);
}

const encoder = new TextEncoder();
export function utf8Bytes(text: string): number {
  return encoder.encode(text).length;
}
