import { describe, expect, it } from 'vitest';
import { MAX_OVERLAP_SECONDS, overlapEnd, overlapSeconds, overlapWords } from './rotation';

describe('overlapSeconds', () => {
  it('gives the chosen spans', () => {
    expect(overlapSeconds('none', '', 'hours')).toBe(0);
    expect(overlapSeconds('hour', '', 'hours')).toBe(3600);
    expect(overlapSeconds('day', '', 'hours')).toBe(86_400);
    expect(overlapSeconds('week', '', 'hours')).toBe(MAX_OVERLAP_SECONDS);
  });

  it('reads a typed number in its unit', () => {
    expect(overlapSeconds('custom', '90', 'minutes')).toBe(5400);
    expect(overlapSeconds('custom', ' 12 ', 'hours')).toBe(43_200);
    expect(overlapSeconds('custom', '1.5', 'days')).toBe(129_600);
    expect(overlapSeconds('custom', '0', 'days')).toBe(0);
  });

  it('refuses what is not a number, or more than 7 days', () => {
    expect(overlapSeconds('custom', '', 'hours')).toMatch(/number/);
    expect(overlapSeconds('custom', '-1', 'hours')).toMatch(/number/);
    expect(overlapSeconds('custom', 'soon', 'hours')).toMatch(/number/);
    expect(overlapSeconds('custom', '7', 'days')).toBe(MAX_OVERLAP_SECONDS);
    expect(overlapSeconds('custom', '169', 'hours')).toMatch(/at most 7 days/);
  });
});

describe('overlapWords', () => {
  it('says the span in its largest whole unit', () => {
    expect(overlapWords(0)).toBe('no overlap');
    expect(overlapWords(3600)).toBe('1 hour');
    expect(overlapWords(MAX_OVERLAP_SECONDS)).toBe('7 days');
    expect(overlapWords(5400)).toBe('90 minutes');
    expect(overlapWords(61)).toBe('61 seconds');
  });
});

describe('overlapEnd', () => {
  it('is now plus the overlap', () => {
    expect(overlapEnd(Date.parse('2026-01-01T00:00:00Z'), 3600)).toBe('2026-01-01T01:00:00.000Z');
  });
});
