// One token's detail, outside any component: its row, uses per day, the access log's pages
// shown so far, its events (a timeline filtered to it) and the actions on it. Opened when
// the detail shows and closed when it goes (the core then forgets the access log).
import { asCommandError, ipc, type AccessLine, type CommandError, type DayUse, type Rotation, type TokenRow } from '../lib/ipc';
import { Timeline } from '../activity/timeline.svelte';

/** The commands the detail uses (the real `ipc`, or a fake in the unit tests). */
export type DetailCommands = Pick<typeof ipc,
  'tokenDetail' | 'tokenAccessPage' | 'closeTokenDetail' | 'tokenEvents' | 'setTokenActive' | 'setNewAddressAlerts' | 'deleteToken' | 'rotateToken'>;

/** Access-log lines per page. */
export const ACCESS_PAGE = 25;

export class TokenDetailView {
  readonly uuid: string;
  row: TokenRow | null = $state.raw(null);
  days: DayUse[] = $state.raw([]);
  lines: AccessLine[] = $state.raw([]);
  next: number | null = $state(null);
  truncated = $state(false);
  error: CommandError | null = $state(null);
  /** The action in flight ("Deactivating…"), and why the last one failed. */
  busy: string | null = $state(null);
  failure: string | null = $state(null);
  /** Deleted from here: the detail has nothing left to show. */
  deleted = $state(false);
  readonly events: Timeline;
  #closed = false;
  readonly #commands: DetailCommands;

  constructor(commands: DetailCommands, uuid: string) {
    this.#commands = commands;
    this.uuid = uuid;
    this.events = new Timeline(commands, uuid);
  }

  /** Loads everything the detail shows. */
  async open() {
    await Promise.all([this.#load(), this.events.reload()]);
  }

  async #load() {
    try {
      const detail = await this.#commands.tokenDetail(this.uuid, ACCESS_PAGE);
      if (this.#closed) return;
      this.row = detail.row;
      this.days = detail.days;
      this.lines = detail.access.lines;
      this.next = detail.access.next;
      this.truncated = detail.access.truncated;
      this.error = null;
    } catch (failure) {
      if (!this.#closed) this.error = asCommandError(failure);
    }
  }

  /** The next page of the access log. */
  async more() {
    if (this.next === null) return;
    try {
      const page = await this.#commands.tokenAccessPage(this.uuid, this.next, ACCESS_PAGE);
      if (this.#closed) return;
      this.lines = [...this.lines, ...page.lines];
      this.next = page.next;
    } catch (failure) {
      if (!this.#closed) this.error = asCommandError(failure);
    }
  }

  /** The detail went. */
  close() {
    this.#closed = true;
    this.#commands.closeTokenDetail(this.uuid).catch(() => undefined);
  }

  /** Deactivates an active token, reactivates another; answers the row as it now is. */
  async toggle(): Promise<TokenRow | null> {
    const row = this.row;
    if (row === null) return null;
    const active = row.state !== 'active';
    return this.#act(active ? 'Reactivating…' : 'Deactivating…', async () => {
      const updated = await this.#commands.setTokenActive(row.uuid, active);
      this.row = updated;
      void this.events.reload();
      return updated;
    });
  }

  /** Turns the token's new-address alerts on or off (on the server, for every device: a CI
   *  token used from many addresses is quieted); answers the row as it now is. */
  async setNewAddressAlerts(on: boolean): Promise<TokenRow | null> {
    const row = this.row;
    if (row === null) return null;
    return this.#act(on ? 'Turning alerts on…' : 'Turning alerts off…', async () => {
      const updated = await this.#commands.setNewAddressAlerts(row.uuid, on);
      this.row = updated;
      return updated;
    });
  }

  /** Deletes the token; true when done. */
  async remove(): Promise<boolean> {
    const done = await this.#act('Deleting…', async () => {
      await this.#commands.deleteToken(this.uuid);
      this.deleted = true;
      return true;
    });
    return done === true;
  }

  /** Rotates the token (the Rotate dialog calls this); the detail then shows the link. */
  async rotate(overlapSeconds: number): Promise<Rotation> {
    const rotation = await this.#commands.rotateToken(this.uuid, overlapSeconds);
    await this.open();
    return rotation;
  }

  async #act<T>(progress: string, action: () => Promise<T>): Promise<T | null> {
    this.busy = progress;
    this.failure = null;
    try {
      return await action();
    } catch (failure) {
      this.failure = asCommandError(failure).message;
      return null;
    } finally {
      this.busy = null;
    }
  }
}
