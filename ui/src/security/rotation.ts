// The Rotate dialog's rule: how long the old token keeps working (the overlap), chosen from
// a few spans or typed as a number of minutes, hours or days; at most 7 days, as the server.

/** The overlap the server accepts at most: 7 days. */
export const MAX_OVERLAP_SECONDS = 7 * 24 * 3600;

export type OverlapChoice = 'none' | 'hour' | 'day' | 'week' | 'custom';
export type OverlapUnit = 'minutes' | 'hours' | 'days';

const CHOICE_SECONDS: Record<Exclude<OverlapChoice, 'custom'>, number> = {
  none: 0, hour: 3600, day: 24 * 3600, week: MAX_OVERLAP_SECONDS,
};
const UNIT_SECONDS: Record<OverlapUnit, number> = { minutes: 60, hours: 3600, days: 24 * 3600 };

/** The overlap in seconds, or a sentence saying what is wrong with the typed number. */
export function overlapSeconds(choice: OverlapChoice, amount: string, unit: OverlapUnit): number | string {
  if (choice !== 'custom') return CHOICE_SECONDS[choice];
  const text = amount.trim();
  if (!/^\d+(\.\d+)?$/.test(text)) return 'Type the overlap as a number, for example 12.';
  const seconds = Math.round(Number(text) * UNIT_SECONDS[unit]);
  if (seconds > MAX_OVERLAP_SECONDS) return 'The overlap is at most 7 days.';
  return seconds;
}

/** "1 hour", "7 days", "90 minutes", "no overlap". */
export function overlapWords(seconds: number): string {
  if (seconds <= 0) return 'no overlap';
  const units: [number, string][] = [[24 * 3600, 'day'], [3600, 'hour'], [60, 'minute'], [1, 'second']];
  for (const [size, name] of units) {
    if (seconds % size === 0) {
      const count = seconds / size;
      return `${count} ${name}${count === 1 ? '' : 's'}`;
    }
  }
  return `${seconds} seconds`;
}

/** When the old token stops working, as an ISO time, for an overlap chosen at `now`. */
export function overlapEnd(now: number, seconds: number): string {
  return new Date(now + seconds * 1000).toISOString();
}
