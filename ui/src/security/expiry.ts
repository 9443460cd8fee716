// The expiry a person picks for a new token, as the create dialog offers it. Plain
// functions of the choice and `now`, so the dialog stays a form.

const DAY = 24 * 60 * 60 * 1000;

/** Never, in 30 or 90 days, or at the end of a chosen day. */
export type Expiry = 'none' | '30' | '90' | 'custom';

/** The first day a custom expiry may be (tomorrow, as `YYYY-MM-DD` for a date input's `min`). */
export function firstExpiryDay(now: number): string {
  return new Date(now + DAY).toISOString().slice(0, 10);
}

/** Why the choice cannot be submitted yet, or null. */
export function expiryProblem(expiry: Expiry, customDay: string): string | null {
  return expiry === 'custom' && !customDay ? 'Pick the day the token expires.' : null;
}

/** The expiry to send (RFC 3339), or null for a token that never expires. A custom day ends
 *  at 23:59:59 local time. */
export function expiresAt(expiry: Expiry, customDay: string, now: number): string | null {
  if (expiry === 'none') return null;
  if (expiry === 'custom') {
    return customDay ? new Date(`${customDay}T23:59:59`).toISOString() : null;
  }
  return new Date(now + Number(expiry) * DAY).toISOString();
}
