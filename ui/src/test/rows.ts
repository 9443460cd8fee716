// Token rows for the unit tests: a plausible row, changed where a test says.
import type { TokenRow } from '../lib/ipc';

export const NOW = Date.parse('2026-06-15T12:00:00Z');
export const DAY = 24 * 60 * 60 * 1000;

/** An ISO time `days` days before NOW (negative: after). */
export function daysAgo(days: number): string {
  return new Date(NOW - days * DAY).toISOString();
}

let next = 0;

/** A manual, active, recently used read token, with `change` applied. */
export function tokenRow(change: Partial<TokenRow> = {}): TokenRow {
  next += 1;
  return {
    uuid: `00000000-0000-4000-8000-${String(next).padStart(12, '0')}`,
    label: `token ${next}`,
    origin: 'manual',
    this_device: false,
    scope: 'read',
    scope_words: 'read',
    hint: 'hkpat_…abcd',
    created_at: daysAgo(10),
    last_used: daysAgo(1),
    creator_ip: '127.0.0.1',
    creator_ua: 'curl/8',
    client_id: '',
    state: 'active',
    expires_at: null,
    usage: [],
    rotated_from: null,
    rotated_to: null,
    overlap_until: null,
    last_addresses: [],
    new_address_alerts: true,
    ...change,
  };
}
