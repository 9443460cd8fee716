// What the Security screen shows of the token list: sorting, filters and display words.
// Plain functions of the rows and `now`, so the table stays a view.
import type { TokenRow } from '../lib/ipc';

const DAY = 24 * 60 * 60 * 1000;

export type SortKey =
  | 'label'
  | 'origin'
  | 'scope'
  | 'created_at'
  | 'last_used'
  | 'creator'
  | 'state'
  | 'expires_at';

export interface Sort {
  key: SortKey;
  ascending: boolean;
}

export interface Filters {
  origin: 'all' | 'auto' | 'manual';
  state: 'all' | 'active' | 'inactive' | 'expired';
  attention: boolean;
}

const SCOPE_RANK = { public_read: 1, read: 2, write: 3, admin: 4 } as const;

function time(value: string | null): number {
  return value === null ? -Infinity : Date.parse(value);
}

function sortValue(row: TokenRow, key: SortKey): string | number {
  switch (key) {
    case 'label':
      return row.label.toLowerCase();
    case 'origin':
      return row.this_device ? 'auto 0' : row.origin;
    case 'scope':
      return row.scope === null ? 0 : SCOPE_RANK[row.scope];
    case 'created_at':
      return time(row.created_at);
    case 'last_used':
      return time(row.last_used);
    case 'creator':
      return `${row.creator_ip} ${clientName(row)}`;
    case 'state':
      return row.state;
    case 'expires_at':
      // No expiry sorts after every date.
      return row.expires_at === null ? Infinity : time(row.expires_at);
  }
}

/** Why a token deserves a look, or null: expired, expiring within 7 days, unused for 90 days, never used. */
export function attention(row: TokenRow, now: number): string | null {
  if (row.state === 'expired') return 'expired';
  if (row.expires_at !== null && time(row.expires_at) - now < 7 * DAY) return 'expires within 7 days';
  if (row.last_used === null) return 'never used';
  if (now - time(row.last_used) > 90 * DAY) return 'unused for 90 days';
  return null;
}

/** The rows that pass `filters`, in `sort` order (ties keep the server's newest-first order). */
export function view(rows: TokenRow[], filters: Filters, sort: Sort, now: number): TokenRow[] {
  const kept = rows.filter(
    (row) =>
      (filters.origin === 'all' || row.origin === filters.origin) &&
      (filters.state === 'all' || row.state === filters.state) &&
      (!filters.attention || attention(row, now) !== null),
  );
  const direction = sort.ascending ? 1 : -1;
  return kept
    .map((row, index) => ({ row, index, value: sortValue(row, sort.key) }))
    .sort((a, b) => {
      if (a.value < b.value) return -direction;
      if (a.value > b.value) return direction;
      return a.index - b.index;
    })
    .map((entry) => entry.row);
}

/** The order after a click on column `key`: the same column flips, a new one starts
 *  ascending for labels and descending (newest, most, last first) for the rest. */
export function nextSort(sort: Sort, key: SortKey): Sort {
  return sort.key === key ? { key, ascending: !sort.ascending } : { key, ascending: key === 'label' };
}

/** The list after a rotation: the successor first, and the old token linked to it, working
 *  until `overlapUntil` (ISO time; the server's list says the same at the next refresh). */
export function withRotation(rows: TokenRow[], old: TokenRow, successor: TokenRow, overlapUntil: string): TokenRow[] {
  const kept = rows.map((row) => (row.uuid === old.uuid ? { ...row, rotated_to: successor.uuid, overlap_until: overlapUntil } : row));
  return [successor, ...kept.filter((row) => row.uuid !== successor.uuid)];
}

/** The tokens whose Rotate the screen offers: manual ones and this device's auto token, not
 *  yet rotated and not expired (another device's auto token could not receive its successor). */
export function canRotate(row: TokenRow): boolean {
  return (row.origin === 'manual' || row.this_device) && row.rotated_to === null && row.state !== 'expired';
}

/** The token's state in a word. */
export function stateWord(row: TokenRow): string {
  return row.state === 'active' ? 'Active' : row.state === 'inactive' ? 'Inactive' : 'Expired';
}

/** The client that made the token, in a word. */
export function clientName(row: TokenRow): string {
  return row.client_id || row.creator_ua || 'API';
}

/** "3 min ago", "in 5 days", "never". */
export function relative(value: string | null, now: number, never = 'never'): string {
  if (value === null) return never;
  const delta = time(value) - now;
  const past = delta < 0;
  const abs = Math.abs(delta);
  const units: [number, string][] = [
    [365 * DAY, 'year'],
    [30 * DAY, 'month'],
    [DAY, 'day'],
    [60 * 60 * 1000, 'hour'],
    [60 * 1000, 'min'],
  ];
  for (const [size, name] of units) {
    if (abs >= size) {
      const count = Math.floor(abs / size);
      const words = `${count} ${name}${count > 1 && name !== 'min' ? 's' : ''}`;
      return past ? `${words} ago` : `in ${words}`;
    }
  }
  return past ? 'just now' : 'in a moment';
}

// Made once: WebKit builds a formatter on every toLocaleString() call (about 1 ms each, the
// bulk of rendering a screenful of rows). Same output as toLocaleString / toLocaleDateString.
const EXACT = new Intl.DateTimeFormat(undefined, {
  year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric', second: 'numeric',
});
const DATE = new Intl.DateTimeFormat();

function format(formatter: Intl.DateTimeFormat, value: string): string {
  const at = Date.parse(value);
  return Number.isNaN(at) ? value : formatter.format(at);
}

/** The exact time, for a `title`. */
export function exact(value: string | null): string {
  return value === null ? '' : format(EXACT, value);
}

/** A short date. */
export function date(value: string | null, none = '—'): string {
  return value === null ? none : format(DATE, value);
}

/** Uses over the last 30 days, oldest first, one number a day (0 for days without use). */
export function dailyUses(row: TokenRow, now: number): number[] {
  const today = Math.floor(now / DAY);
  const days = new Array<number>(30).fill(0);
  for (const use of row.usage) {
    const index = 29 - (today - Math.floor(Date.parse(`${use.day}T00:00:00Z`) / DAY));
    if (index >= 0 && index < 30) days[index] += use.uses;
  }
  return days;
}

/** The SVG polyline points of a sparkline `width` × `height` over `values`. */
export function sparkline(values: number[], width: number, height: number): string {
  const max = Math.max(1, ...values);
  const step = width / Math.max(1, values.length - 1);
  return values
    .map((value, index) => `${(index * step).toFixed(1)},${(height - 1 - (value / max) * (height - 2)).toFixed(1)}`)
    .join(' ');
}
