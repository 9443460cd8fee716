import { describe, expect, it } from 'vitest';
import { actionWords, usageBars, uses } from './detail';

const NOW = Date.parse('2031-03-31T15:00:00Z');

describe('usageBars', () => {
  it('has a bar a day over 30 days at least, today last', () => {
    const bars = usageBars([{ day: '2031-03-31', uses: 4 }, { day: '2031-03-02', uses: 1 }], NOW);
    expect(bars).toHaveLength(30);
    expect(bars[29]).toEqual({ day: '2031-03-31', uses: 4 });
    expect(bars[0]).toEqual({ day: '2031-03-02', uses: 1 });
    expect(bars.slice(1, 29).every((bar) => bar.uses === 0)).toBe(true);
  });

  it('reaches back to the oldest day the log keeps, within a bound', () => {
    expect(usageBars([{ day: '2031-01-01', uses: 2 }], NOW)).toHaveLength(90);
    expect(usageBars([{ day: '2021-01-01', uses: 2 }], NOW)).toHaveLength(400);
    expect(usageBars([], NOW)).toHaveLength(30);
  });
});

describe('actionWords', () => {
  it('names registry actions and sign-ins', () => {
    expect(actionWords('registry:ann/app:pull,push')).toBe('pull, push ann/app');
    expect(actionWords('api:sign-in')).toBe('API sign-in');
    expect(actionWords('something:else')).toBe('something:else');
    expect(uses(1)).toBe('1 use');
    expect(uses(1200)).toBe('1,200 uses');
  });
});
