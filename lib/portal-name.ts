/** A portal's name: the key of its secret (`<prefix><portal>`), its ledger items and its wake-ups. */
export const PORTAL_PATTERN = /^[a-z0-9][a-z0-9-]{0,62}$/;
