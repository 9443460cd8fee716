import { describe, expect, it } from 'vitest';
import { DAY, NOW } from '../test/rows';
import { expiresAt, expiryProblem, firstExpiryDay } from './expiry';

describe('expiry of a new token', () => {
  it('never, or a number of days from now', () => {
    expect(expiresAt('none', '', NOW)).toBeNull();
    expect(expiresAt('30', '', NOW)).toBe(new Date(NOW + 30 * DAY).toISOString());
    expect(expiresAt('90', '2030-01-01', NOW)).toBe(new Date(NOW + 90 * DAY).toISOString());
  });

  it('at the end of a chosen day, in local time', () => {
    expect(expiresAt('custom', '2026-07-01', NOW)).toBe(new Date(2026, 6, 1, 23, 59, 59).toISOString());
  });

  it('asks for the day when none is chosen', () => {
    expect(expiryProblem('custom', '')).toBe('Pick the day the token expires.');
    expect(expiryProblem('custom', '2026-07-01')).toBeNull();
    expect(expiryProblem('none', '')).toBeNull();
    expect(expiresAt('custom', '', NOW)).toBeNull();
  });

  it('offers tomorrow as the first day', () => {
    expect(firstExpiryDay(NOW)).toBe('2026-06-16');
  });
});
