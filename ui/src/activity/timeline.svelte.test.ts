import { describe, expect, it } from 'vitest';
import type { ActivityEvent, EventFilter } from '../lib/ipc';
import { PAGE, Timeline, type TimelineCommands } from './timeline.svelte';

/** A core holding `count` events, newest last, alternating two tokens and two kinds. */
function core(count: number): TimelineCommands & { asked: (EventFilter & { before: string | null })[] } {
  const kept: ActivityEvent[] = Array.from({ length: count }, (_, n) => ({
    cursor: String(n + 1), kind: n % 2 ? 'deactivated' : 'created', token_uuid: n % 3 ? 'b' : 'a', token_label: n % 3 ? 'beta' : 'alpha',
    origin: 'manual', at: new Date(n * 1000).toISOString(), url: null, source: null, address: null, user_agent: null, related_token: null,
  }));
  const asked: (EventFilter & { before: string | null })[] = [];
  return {
    asked,
    tokenEvents: async (filter, before, limit) => {
      asked.push({ ...filter, before });
      const end = before === null ? kept.length : kept.findIndex((e) => e.cursor === before);
      const passing = kept.slice(0, end).reverse()
        .filter((e) => (filter.token === null || e.token_uuid === filter.token) && (filter.kinds.length === 0 || filter.kinds.includes(e.kind)));
      return { events: passing.slice(0, limit), more: passing.length > limit, truncated: false, tokens: [{ uuid: 'a', label: 'alpha' }, { uuid: 'b', label: 'beta' }] };
    },
  };
}

describe('Timeline', () => {
  it('pages newest first, "more" continuing after the last event shown', async () => {
    const commands = core(PAGE + 10);
    const timeline = new Timeline(commands);
    await timeline.reload();
    expect(timeline.events?.[0].cursor).toBe(String(PAGE + 10));
    expect(timeline.events).toHaveLength(PAGE);
    expect(timeline.more).toBe(true);
    await timeline.loadMore();
    expect(timeline.events).toHaveLength(PAGE + 10);
    expect(timeline.events?.at(-1)?.cursor).toBe('1');
    expect(timeline.more).toBe(false);
    expect(commands.asked[1].before).toBe('11');
  });

  it('filters by token and kind, from the newest again', async () => {
    const commands = core(30);
    const timeline = new Timeline(commands);
    await timeline.reload();
    await timeline.filterToken('a');
    expect(timeline.events?.every((e) => e.token_uuid === 'a')).toBe(true);
    await timeline.filterKinds(['deactivated']);
    expect(timeline.events?.every((e) => e.token_uuid === 'a' && e.kind === 'deactivated')).toBe(true);
    expect(commands.asked.at(-1)).toEqual({ token: 'a', kinds: ['deactivated'], before: null });
    await timeline.filterToken(null);
    expect(timeline.events?.some((e) => e.token_uuid === 'b')).toBe(true);
  });

  it('keeps the events shown and says why when a page fails', async () => {
    const commands = core(5);
    const timeline = new Timeline(commands, 'a');
    await timeline.reload();
    const shown = timeline.events;
    commands.tokenEvents = async () => { throw { code: 'unreachable', message: 'down' }; };
    await timeline.reload();
    expect(timeline.events).toBe(shown);
    expect(timeline.error?.code).toBe('unreachable');
  });
});
