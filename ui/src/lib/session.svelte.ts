// Who is signed in and which screen shows, outside any component: the app's restore at
// launch, sign-in, sign-out (with what it could not do), and what the tray asks of the UI.
// A notice set at sign-out survives the switch to the sign-in screen, which shows it.
import {
  asCommandError, ipc, type Account, type CommandError, type HandOff, type SignOutReport, type UiEvent,
} from './ipc';
import { tokenList } from '../security/tokenList.svelte';

/** The signed-in screens. */
export type Screen = 'home' | 'security' | 'activity' | 'settings';

const SCREENS: readonly Screen[] = ['home', 'security', 'activity', 'settings'];

/** Where the signed-in app is, as a path: a screen (`security`, `activity`…), or one token's
 *  detail, `security/token/<uuid>`. Null for a path that names nothing. */
export function parseRoute(path: string): { screen: Screen; token: string | null } | null {
  const parts = path.split('/');
  if (parts.length === 1 && (SCREENS as readonly string[]).includes(parts[0])) {
    return { screen: parts[0] as Screen, token: null };
  }
  if (parts.length === 3 && parts[0] === 'security' && parts[1] === 'token' && /^[0-9a-f-]{36}$/i.test(parts[2])) {
    return { screen: 'security', token: parts[2].toLowerCase() };
  }
  return null;
}

/** Something the sign-in screen tells the person on arrival: why the last session ended, or
 *  what the last sign-out left undone. */
export interface Notice {
  code: string;
  message: string;
}

/** The commands the session uses (the real `ipc`, or a fake in the unit tests). */
export type SessionCommands = Pick<typeof ipc, 'restore' | 'signOut' | 'signOutEverywhere'>;

/** The notice for a sign-out that left steps undone, or null when it did everything. Each
 *  reason is told once (a server that did not answer fails several steps alike). */
export function partialSignOut(report: SignOutReport): Notice | null {
  if (report.not_done.length === 0) return null;
  const reasons = [...new Set(report.not_done.map((left) => left.message))];
  return {
    code: 'partial_sign_out',
    message: `Signed out on this computer, but not everywhere: ${reasons.join(' ')}`,
  };
}

export class Session {
  /** Null when signed out. */
  account: Account | null = $state(null);
  /** True until the launch's restore has answered. */
  loading = $state(true);
  notice: Notice | null = $state(null);
  screen: Screen = $state('home');
  /** The token whose detail shows over `screen`, or null. */
  token: string | null = $state(null);
  /** Where the detail's Back goes: the screen it was opened from. */
  #detailFrom: Screen = 'security';

  readonly #commands: SessionCommands;

  constructor(commands: SessionCommands) {
    this.#commands = commands;
  }

  /** Signs in with the session the keyring kept, if any (once, at launch). */
  async restore() {
    try {
      this.account = await this.#commands.restore();
    } catch (failure) {
      this.notice = asCommandError(failure);
    } finally {
      this.loading = false;
      // Read by `scripts/bench desktop` (launch to the first signed-in screen).
      globalThis.performance?.mark?.('hubkey:restored');
    }
  }

  /** A sign-in finished: the account's home screen. */
  signedIn(account: Account) {
    this.account = account;
    this.notice = null;
    this.screen = 'home';
    this.token = null;
  }

  /** The docker hand-off of the signed-in account changed (the person answered its question). */
  handedOff(handOff: HandOff) {
    if (this.account) this.account = { ...this.account, docker_hand_off: handOff };
  }

  /** Signed out, elsewhere or here: the sign-in screen, with `notice` if there is one. */
  signedOut(notice: Notice | null = null) {
    this.account = null;
    this.notice = notice;
    this.token = null;
  }

  /** Signs out. Local entries are cleaned whatever the server says, so the person lands on
   *  the sign-in screen, told what was left undone; only a failure to sign out at all keeps
   *  them signed in, and is answered. `everywhere` ends every session of the account first. */
  async signOut(everywhere = false): Promise<CommandError | null> {
    let report: SignOutReport;
    try {
      report = await (everywhere ? this.#commands.signOutEverywhere() : this.#commands.signOut());
    } catch (failure) {
      return asCommandError(failure);
    }
    this.signedOut(partialSignOut(report));
    return null;
  }

  /** Shows a signed-in screen. */
  open(screen: Screen) {
    this.screen = screen;
    this.token = null;
  }

  /** The current place as a path (see `parseRoute`). */
  get route(): string {
    return this.token === null ? this.screen : `security/token/${this.token}`;
  }

  /** Goes to `path` (see `parseRoute`); false when it names nothing (nothing changes). A
   *  token's detail opened from another screen goes back there. */
  navigate(path: string): boolean {
    const route = parseRoute(path);
    if (route === null) return false;
    if (route.token === null) {
      this.open(route.screen);
    } else {
      if (this.token === null) this.#detailFrom = this.screen;
      this.token = route.token;
    }
    return true;
  }

  /** Shows the detail of token `uuid` (from the list, the timeline, a notification). */
  openToken(uuid: string) {
    this.navigate(`security/token/${uuid}`);
  }

  /** The detail's Back: the screen it was opened from, as it was left. */
  closeToken() {
    this.token = null;
    this.screen = this.#detailFrom;
  }

  /** What the tray (or a notification) asks of the UI. */
  handle(event: UiEvent) {
    if (event.kind === 'open_security') this.open('security');
    else if (event.kind === 'open_token') {
      // A notification about one token: its detail, over the Security list with its row
      // selected (where Back lands).
      tokenList.select(event.uuid);
      this.open('security');
      this.openToken(event.uuid);
    }
    else if (event.kind === 'signed_out') this.signedOut(event.notice);
  }
}

/** The app's one session. */
export const session = new Session(ipc);
