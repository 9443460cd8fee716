// The account's events as a timeline, newest first, outside any component: the filter (a
// token, kinds), the pages loaded so far and "more". The Activity view and each token's
// detail hold one each; the core keeps the events (a few thousand at most), this keeps only
// the pages shown.
import { asCommandError, ipc, type ActivityEvent, type CommandError, type EventFilter, type EventKind, type EventToken } from '../lib/ipc';

/** The commands the timeline uses (the real `ipc`, or a fake in the unit tests). */
export type TimelineCommands = Pick<typeof ipc, 'tokenEvents'>;

/** Events per page. */
export const PAGE = 50;

export class Timeline {
  /** Null until the first page arrives. */
  events: ActivityEvent[] | null = $state.raw(null);
  more = $state(false);
  truncated = $state(false);
  tokens: EventToken[] = $state.raw([]);
  error: CommandError | null = $state(null);
  loading = $state(false);
  token: string | null = $state(null);
  kinds: EventKind[] = $state([]);

  /** Bumped by each reload: a page for an older filter is dropped. */
  #generation = 0;
  readonly #commands: TimelineCommands;

  constructor(commands: TimelineCommands, token: string | null = null) {
    this.#commands = commands;
    this.token = token;
  }

  #filter(): EventFilter {
    return { token: this.token, kinds: [...this.kinds] };
  }

  /** Reads the newest events again (the feed is read to its end first), for the filter. */
  async reload() {
    const generation = ++this.#generation;
    this.loading = true;
    try {
      const page = await this.#commands.tokenEvents(this.#filter(), null, PAGE);
      if (generation !== this.#generation) return;
      this.events = page.events;
      this.more = page.more;
      this.truncated = page.truncated;
      this.tokens = page.tokens;
      this.error = null;
    } catch (failure) {
      if (generation === this.#generation) this.error = asCommandError(failure);
    } finally {
      if (generation === this.#generation) this.loading = false;
    }
  }

  /** The next older page, after the ones shown. */
  async loadMore() {
    const last = this.events?.at(-1);
    if (!last || this.loading) return;
    const generation = this.#generation;
    this.loading = true;
    try {
      const page = await this.#commands.tokenEvents(this.#filter(), last.cursor, PAGE);
      if (generation !== this.#generation) return;
      this.events = [...(this.events ?? []), ...page.events];
      this.more = page.more;
      this.error = null;
    } catch (failure) {
      if (generation === this.#generation) this.error = asCommandError(failure);
    } finally {
      if (generation === this.#generation) this.loading = false;
    }
  }

  /** Shows one token's events (null: every token's). */
  filterToken(token: string | null) {
    this.token = token;
    return this.reload();
  }

  /** Shows only `kinds` (empty: every kind). */
  filterKinds(kinds: EventKind[]) {
    this.kinds = [...kinds];
    return this.reload();
  }
}
