import { describe, expect, it } from 'vitest';
import { DAY, NOW, daysAgo, tokenRow } from '../test/rows';
import {
  attention, clientName, dailyUses, date, exact, nextSort, relative, sparkline, stateWord, view, withRotation, canRotate,
  type Filters, type Sort,
} from './tokens';

const ALL: Filters = { origin: 'all', state: 'all', attention: false };
const labels = (rows: { label: string }[]) => rows.map((row) => row.label);

describe('view sorts', () => {
  it('by label ignoring case, both ways', () => {
    const rows = [tokenRow({ label: 'beta' }), tokenRow({ label: 'Alpha' }), tokenRow({ label: 'gamma' })];
    expect(labels(view(rows, ALL, { key: 'label', ascending: true }, NOW))).toEqual(['Alpha', 'beta', 'gamma']);
    expect(labels(view(rows, ALL, { key: 'label', ascending: false }, NOW))).toEqual(['gamma', 'beta', 'Alpha']);
  });

  it('keeps the server order between equal values', () => {
    const rows = ['a', 'b', 'c', 'd'].map((label) => tokenRow({ label, scope: 'write' }));
    expect(labels(view(rows, ALL, { key: 'scope', ascending: true }, NOW))).toEqual(['a', 'b', 'c', 'd']);
    expect(labels(view(rows, ALL, { key: 'scope', ascending: false }, NOW))).toEqual(['a', 'b', 'c', 'd']);
  });

  it('by access from public read to admin, no scope first', () => {
    const rows = (['admin', 'public_read', null, 'write', 'read'] as const).map((scope) =>
      tokenRow({ label: String(scope), scope }),
    );
    expect(labels(view(rows, ALL, { key: 'scope', ascending: true }, NOW))).toEqual([
      'null', 'public_read', 'read', 'write', 'admin',
    ]);
  });

  it('by origin with this device\'s token among the auto tokens, after the others', () => {
    const rows = [
      tokenRow({ label: 'manual' }),
      tokenRow({ label: 'other auto', origin: 'auto' }),
      tokenRow({ label: 'mine', origin: 'auto', this_device: true }),
    ];
    expect(labels(view(rows, ALL, { key: 'origin', ascending: true }, NOW))).toEqual(['other auto', 'mine', 'manual']);
  });

  it('by last use with never-used tokens as the oldest', () => {
    const rows = [
      tokenRow({ label: 'yesterday', last_used: daysAgo(1) }),
      tokenRow({ label: 'never', last_used: null }),
      tokenRow({ label: 'last week', last_used: daysAgo(7) }),
    ];
    expect(labels(view(rows, ALL, { key: 'last_used', ascending: false }, NOW))).toEqual(['yesterday', 'last week', 'never']);
  });

  it('by expiry with tokens that never expire last', () => {
    const rows = [
      tokenRow({ label: 'never', expires_at: null }),
      tokenRow({ label: 'soon', expires_at: daysAgo(-2) }),
      tokenRow({ label: 'later', expires_at: daysAgo(-20) }),
    ];
    expect(labels(view(rows, ALL, { key: 'expires_at', ascending: true }, NOW))).toEqual(['soon', 'later', 'never']);
  });

  it('by creator address, then client', () => {
    const rows = [
      tokenRow({ label: 'b', creator_ip: '10.0.0.2' }),
      tokenRow({ label: 'a2', creator_ip: '10.0.0.1', client_id: 'hubkey' }),
      tokenRow({ label: 'a1', creator_ip: '10.0.0.1', client_id: 'docker' }),
    ];
    expect(labels(view(rows, ALL, { key: 'creator', ascending: true }, NOW))).toEqual(['a1', 'a2', 'b']);
  });

  it('does not change the list it was given', () => {
    const rows = [tokenRow({ label: 'b' }), tokenRow({ label: 'a' })];
    view(rows, ALL, { key: 'label', ascending: true }, NOW);
    expect(labels(rows)).toEqual(['b', 'a']);
  });
});

describe('view filters', () => {
  const rows = [
    tokenRow({ label: 'auto active', origin: 'auto' }),
    tokenRow({ label: 'manual inactive', state: 'inactive' }),
    tokenRow({ label: 'manual expired', state: 'expired', expires_at: daysAgo(1) }),
    tokenRow({ label: 'manual fine' }),
  ];
  const newest: Sort = { key: 'created_at', ascending: false };

  it('by origin', () => {
    expect(labels(view(rows, { ...ALL, origin: 'auto' }, newest, NOW))).toEqual(['auto active']);
    expect(view(rows, { ...ALL, origin: 'manual' }, newest, NOW)).toHaveLength(3);
  });

  it('by state', () => {
    expect(labels(view(rows, { ...ALL, state: 'inactive' }, newest, NOW))).toEqual(['manual inactive']);
    expect(labels(view(rows, { ...ALL, state: 'expired' }, newest, NOW))).toEqual(['manual expired']);
  });

  it('to the tokens that need attention, combined with the others', () => {
    expect(labels(view(rows, { ...ALL, attention: true }, newest, NOW))).toEqual(['manual expired']);
    expect(view(rows, { origin: 'auto', state: 'all', attention: true }, newest, NOW)).toEqual([]);
  });
});

describe('attention', () => {
  it('names why a token deserves a look, the most urgent reason first', () => {
    expect(attention(tokenRow({ state: 'expired', last_used: null }), NOW)).toBe('expired');
    expect(attention(tokenRow({ expires_at: daysAgo(-6.9), last_used: null }), NOW)).toBe('expires within 7 days');
    expect(attention(tokenRow({ last_used: null }), NOW)).toBe('never used');
    expect(attention(tokenRow({ last_used: daysAgo(91) }), NOW)).toBe('unused for 90 days');
  });

  it('leaves a token in use and far from expiry alone', () => {
    expect(attention(tokenRow({ expires_at: daysAgo(-8), last_used: daysAgo(89) }), NOW)).toBeNull();
    expect(attention(tokenRow(), NOW)).toBeNull();
  });
});

describe('nextSort', () => {
  it('flips the same column and starts a new one in its natural direction', () => {
    expect(nextSort({ key: 'label', ascending: true }, 'label')).toEqual({ key: 'label', ascending: false });
    expect(nextSort({ key: 'created_at', ascending: false }, 'label')).toEqual({ key: 'label', ascending: true });
    expect(nextSort({ key: 'label', ascending: true }, 'last_used')).toEqual({ key: 'last_used', ascending: false });
  });
});

describe('withRotation', () => {
  const old = tokenRow({ label: 'ci' });
  const other = tokenRow({ label: 'other' });
  const successor = tokenRow({ label: 'ci', rotated_from: old.uuid });

  it('puts the successor first and links the old token, working until the overlap ends', () => {
    const until = daysAgo(-1);
    const rows = withRotation([other, old], old, successor, until);
    expect(rows.map((row) => [row.uuid, row.state, row.rotated_to, row.overlap_until])).toEqual([
      [successor.uuid, 'active', null, null], [other.uuid, 'active', null, null], [old.uuid, 'active', successor.uuid, until],
    ]);
  });

  it('does not list the successor twice', () => {
    const rows = withRotation([successor, old], old, successor, daysAgo(0));
    expect(rows.map((row) => row.uuid)).toEqual([successor.uuid, old.uuid]);
  });
});

describe('canRotate', () => {
  it('offers manual tokens and this device\'s auto token, once', () => {
    expect(canRotate(tokenRow())).toBe(true);
    expect(canRotate(tokenRow({ origin: 'auto', this_device: true }))).toBe(true);
    expect(canRotate(tokenRow({ origin: 'auto' }))).toBe(false);
    expect(canRotate(tokenRow({ rotated_to: tokenRow().uuid }))).toBe(false);
    expect(canRotate(tokenRow({ state: 'expired' }))).toBe(false);
  });
});

describe('words', () => {
  it('states and clients', () => {
    expect(stateWord(tokenRow({ state: 'active' }))).toBe('Active');
    expect(stateWord(tokenRow({ state: 'inactive' }))).toBe('Inactive');
    expect(stateWord(tokenRow({ state: 'expired' }))).toBe('Expired');
    expect(clientName(tokenRow({ client_id: 'hubkey', creator_ua: 'ua' }))).toBe('hubkey');
    expect(clientName(tokenRow({ client_id: '', creator_ua: 'ua' }))).toBe('ua');
    expect(clientName(tokenRow({ client_id: '', creator_ua: '' }))).toBe('API');
  });

  it('relative times, past and future, in the largest whole unit', () => {
    expect(relative(null, NOW)).toBe('never');
    expect(relative(null, NOW, 'not yet')).toBe('not yet');
    expect(relative(new Date(NOW - 20 * 1000).toISOString(), NOW)).toBe('just now');
    expect(relative(new Date(NOW + 20 * 1000).toISOString(), NOW)).toBe('in a moment');
    expect(relative(new Date(NOW - 3 * 60 * 1000).toISOString(), NOW)).toBe('3 min ago');
    expect(relative(new Date(NOW - 60 * 60 * 1000).toISOString(), NOW)).toBe('1 hour ago');
    expect(relative(daysAgo(-5), NOW)).toBe('in 5 days');
    expect(relative(daysAgo(45), NOW)).toBe('1 month ago');
    expect(relative(daysAgo(800), NOW)).toBe('2 years ago');
  });

  it('dates as the locale writes them, and what cannot be read as it is', () => {
    const at = '2026-03-04T05:06:07Z';
    expect(date(at)).toBe(new Date(at).toLocaleDateString());
    expect(exact(at)).toBe(new Date(at).toLocaleString());
    expect(date(null)).toBe('—');
    expect(date(null, 'none')).toBe('none');
    expect(exact(null)).toBe('');
    expect(date('not a date')).toBe('not a date');
    expect(exact('not a date')).toBe('not a date');
  });
});

describe('usage over 30 days', () => {
  it('counts one number a day, oldest first, ignoring days outside the window', () => {
    const day = (back: number) => new Date(NOW - back * DAY).toISOString().slice(0, 10);
    const row = tokenRow({
      usage: [
        { day: day(0), uses: 4 },
        { day: day(29), uses: 2 },
        { day: day(30), uses: 100 },
        { day: day(-1), uses: 100 },
      ],
    });
    const days = dailyUses(row, NOW);
    expect(days).toHaveLength(30);
    expect(days[29]).toBe(4);
    expect(days[0]).toBe(2);
    expect(days.reduce((a, b) => a + b, 0)).toBe(6);
  });

  it('draws a sparkline across the width, the busiest day at the top', () => {
    expect(sparkline([0, 2, 1], 60, 16)).toBe('0.0,15.0 30.0,1.0 60.0,8.0');
    // A quiet month is a flat line at the bottom.
    expect(sparkline([0, 0], 60, 16)).toBe('0.0,15.0 60.0,15.0');
    expect(sparkline([3], 60, 16)).toBe('0.0,1.0');
  });
});
