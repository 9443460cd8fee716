// The Security screen's token list, outside any component: the rows, how they are filtered
// and sorted, what is in flight per token, and the actions on them. The screen opens it when
// it mounts and closes it when it goes, so no list (nor another account's) outlives it.
import { asCommandError, ipc, type CommandError, type KeptList, type Rotation, type TokenRow } from '../lib/ipc';
import { overlapEnd } from './rotation';
import { nextSort, view, withRotation, type Filters, type Sort, type SortKey } from './tokens';

/** The commands the list uses (the real `ipc`, or a fake in the unit tests). */
export type TokenCommands = Pick<
  typeof ipc,
  'listTokens' | 'setTokenActive' | 'setNewAddressAlerts' | 'deleteToken' | 'rotateToken'
>;

const NO_FILTERS: Filters = { origin: 'all', state: 'all', attention: false };
const NEWEST_FIRST: Sort = { key: 'created_at', ascending: false };

export class TokenList {
  /** Null until the first list arrives. Raw: every change replaces the list (or a row), so
   *  no deep proxy of 10 000 rows is needed. */
  rows: TokenRow[] | null = $state.raw(null);
  /** Why the last refresh failed (the rows, if any, are from before). */
  loadError: CommandError | null = $state(null);
  /** While the rows are the list the app kept from its last listing (painted at once when
   *  the screen opens, until the server's list replaces them whole): when that list was
   *  listed. Null once the rows are the server's answer. */
  keptAt: string | null = $state(null);
  refreshing = $state(false);
  /** The time the attention marks and relative dates are computed against (the last refresh). */
  now: number = $state(0);
  filters: Filters = $state({ ...NO_FILTERS });
  sort: Sort = $state({ ...NEWEST_FIRST });
  /** What is in flight per token ("Deactivating…"), and why the last action failed. */
  pending: Record<string, string> = $state({});
  failures: Record<string, string> = $state({});
  /** The token a notification asked to show (`open_token`): the grid scrolls to it and marks
   *  it. Kept across `close`, as the screen may open after the request. */
  selected: string | null = $state(null);

  /** The rows that pass the filters, in the chosen order. */
  readonly shown: TokenRow[] = $derived(this.rows === null ? [] : view(this.rows, this.filters, this.sort, this.now));

  /** Bumped by `close`: answers that arrive for an earlier opening are dropped. */
  #generation = 0;

  readonly #commands: TokenCommands;
  readonly #clock: () => number;

  /** `clock` gives the time in milliseconds (time is a parameter, for the tests). */
  constructor(commands: TokenCommands, clock: () => number = Date.now) {
    this.#commands = commands;
    this.#clock = clock;
    this.now = clock();
  }

  /** The screen opened: start from nothing and load the list. */
  open(): Promise<void> {
    this.close();
    return this.refresh();
  }

  /** The screen went: forget the list, the view and anything still in flight. */
  close() {
    this.#generation += 1;
    this.rows = null;
    this.loadError = null;
    this.keptAt = null;
    this.refreshing = false;
    this.filters = { ...NO_FILTERS };
    this.sort = { ...NEWEST_FIRST };
    this.pending = {};
    this.failures = {};
    this.scrollTop = 0;
    this.now = this.#clock();
  }

  /** Loads the list again, unless a load is already under way. With no rows yet, the list
   *  the app kept from its last listing shows until the server's answer replaces it whole;
   *  if the server cannot answer, the kept rows stay with `loadError` saying so. */
  async refresh() {
    if (this.refreshing) return;
    const generation = this.#generation;
    let answered = false;
    const onKept = (kept: KeptList) => {
      if (generation !== this.#generation || answered || this.rows !== null) return;
      globalThis.performance?.mark?.('hubkey:tokens-kept');
      this.rows = kept.rows;
      this.keptAt = kept.listedAt;
    };
    this.refreshing = true;
    try {
      const list = await this.#commands.listTokens(onKept);
      answered = true;
      if (generation !== this.#generation) return;
      // Read by `scripts/bench desktop`: the render time is measured from here.
      globalThis.performance?.mark?.('hubkey:tokens-received');
      this.rows = list;
      this.keptAt = null;
      this.loadError = null;
    } catch (failure) {
      // The kept list may still arrive (the answer can overtake the channel): it shows,
      // with this failure.
      if (generation === this.#generation) this.loadError = asCommandError(failure);
    } finally {
      if (generation === this.#generation) {
        this.now = this.#clock();
        this.refreshing = false;
      }
    }
  }

  /** A click on column `key`'s header. */
  sortBy(key: SortKey) {
    this.sort = nextSort(this.sort, key);
  }

  /** Deactivates an active token, reactivates another; the row changes when the server confirms. */
  toggle(row: TokenRow): Promise<void> {
    const active = row.state !== 'active';
    return this.#act(row, active ? 'Reactivating…' : 'Deactivating…', async () => {
      const updated = await this.#commands.setTokenActive(row.uuid, active);
      this.#change((rows) => rows.map((old) => (old.uuid === updated.uuid ? updated : old)));
    });
  }

  /** Shows `uuid`: no filter hides it; the grid scrolls to it once it is listed. */
  select(uuid: string) {
    this.selected = uuid;
    this.filters = { ...NO_FILTERS };
  }

  /** Turns a token's new-address alerts on or off; the row changes when the server confirms. */
  setNewAddressAlerts(row: TokenRow, on: boolean): Promise<void> {
    return this.#act(row, 'Saving…', async () => {
      const updated = await this.#commands.setNewAddressAlerts(row.uuid, on);
      this.#change((rows) => rows.map((old) => (old.uuid === updated.uuid ? updated : old)));
    });
  }

  /** Deletes a token. True when it was this device's own token and is now gone: the docker
   *  CLI has lost access until the next sign-in. */
  async remove(row: TokenRow): Promise<boolean> {
    let lostOwn = false;
    await this.#act(row, 'Deleting…', async () => {
      await this.#commands.deleteToken(row.uuid);
      this.#change((rows) => rows.filter((old) => old.uuid !== row.uuid));
      lostOwn = row.this_device;
    });
    return lostOwn;
  }

  /** The list's scroll position, kept while a token's detail shows over it. */
  scrollTop = 0;

  /** Rotates a token through the server, the old one working `overlapSeconds` more; answers
   *  the rotation (a manual token's successor with its value, to show once), or throws why
   *  not. The row shows the rotation in flight meanwhile. */
  async rotate(row: TokenRow, overlapSeconds: number): Promise<Rotation> {
    const generation = this.#generation;
    this.pending[row.uuid] = 'Rotating…';
    delete this.failures[row.uuid];
    try {
      const rotation = await this.#commands.rotateToken(row.uuid, overlapSeconds);
      if (generation === this.#generation) {
        const until = overlapEnd(this.#clock(), overlapSeconds);
        this.#change((rows) => withRotation(rows, row, rotation.row, until));
        // The server's word on both tokens (the old one's state once the overlap ends).
        void this.refresh();
      }
      return rotation;
    } finally {
      if (generation === this.#generation) delete this.pending[row.uuid];
    }
  }

  /** A row changed elsewhere (the token's detail acted on it). */
  updated(row: TokenRow) {
    this.#change((rows) => rows.map((old) => (old.uuid === row.uuid ? row : old)));
  }

  /** A token deleted elsewhere (the token's detail). */
  removed(uuid: string) {
    this.#change((rows) => rows.filter((old) => old.uuid !== uuid));
  }

  /** A token made on this screen goes first. */
  created(row: TokenRow) {
    this.#change((rows) => [row, ...rows]);
  }

  #change(change: (rows: TokenRow[]) => TokenRow[]) {
    if (this.rows) this.rows = change(this.rows);
  }

  /** Runs `action` on `row` with `progress` shown; a failure is kept for the row. */
  async #act(row: TokenRow, progress: string, action: () => Promise<void>) {
    const generation = this.#generation;
    this.pending[row.uuid] = progress;
    delete this.failures[row.uuid];
    try {
      await action();
    } catch (failure) {
      if (generation === this.#generation) this.failures[row.uuid] = asCommandError(failure).message;
    } finally {
      if (generation === this.#generation) delete this.pending[row.uuid];
    }
  }
}

/** The one token list of the app, shown by the Security screen. */
export const tokenList = new TokenList(ipc);
