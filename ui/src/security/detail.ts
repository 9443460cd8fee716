// What the token detail shows of its access log and uses: the usage chart's bars and the
// words of a log line. Plain functions of the data and `now`.
import type { DayUse } from '../lib/ipc';

const DAY = 24 * 60 * 60 * 1000;

/** One bar of the usage chart. */
export interface Bar {
  /** `YYYY-MM-DD`. */
  day: string;
  uses: number;
}

/** One bar a day from the first day with a use (at least `minDays` back, at most `maxDays`)
 *  to today, oldest first; days without use are 0. */
export function usageBars(days: DayUse[], now: number, minDays = 30, maxDays = 400): Bar[] {
  const today = Math.floor(now / DAY);
  const dayOf = (use: DayUse) => Math.floor(Date.parse(`${use.day}T00:00:00Z`) / DAY);
  const oldest = days.reduce((first, use) => Math.min(first, dayOf(use)), today);
  const span = Math.min(maxDays, Math.max(minDays, today - oldest + 1));
  const bars: Bar[] = [];
  for (let index = 0; index < span; index++) {
    const day = today - span + 1 + index;
    bars.push({ day: new Date(day * DAY).toISOString().slice(0, 10), uses: 0 });
  }
  for (const use of days) {
    const index = dayOf(use) - (today - span + 1);
    if (index >= 0 && index < span) bars[index].uses += use.uses;
  }
  return bars;
}

/** What a log line's uses did, for a person: "pull, push ann/app", "API sign-in". */
export function actionWords(action: string): string {
  if (action === 'api:sign-in') return 'API sign-in';
  const registry = /^registry:(.+):([a-z*,]+)$/.exec(action);
  if (registry) return `${registry[2].split(',').join(', ')} ${registry[1]}`;
  return action;
}

/** "3 uses", "1 use". */
export function uses(count: number): string {
  return `${count.toLocaleString('en')} use${count === 1 ? '' : 's'}`;
}
