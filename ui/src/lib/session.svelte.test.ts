import { tokenList } from '../security/tokenList.svelte';
import { describe, expect, it } from 'vitest';
import type { Account, SignOutReport } from './ipc';
import { parseRoute, partialSignOut, Session, type SessionCommands } from './session.svelte';

const ann: Account = {
  server_url: 'http://127.0.0.1:5080',
  username: 'ann',
  registry: '127.0.0.1:5000',
  docker_hand_off: { state: 'skipped', reason: 'no_registry', message: 'no registry' },
};

const unreachable = { code: 'unreachable', message: 'The server cannot be reached.' };

function commands(change: Partial<SessionCommands> = {}): SessionCommands {
  return {
    restore: async () => ann,
    signOut: async () => ({ not_done: [] }),
    signOutEverywhere: async () => ({ not_done: [] }),
    ...change,
  };
}

const partial: SignOutReport = {
  not_done: [
    { step: 'delete_auto_token', message: 'The server cannot be reached.' },
    { step: 'revoke_session', message: 'Still cannot.' },
  ],
};

describe('partialSignOut', () => {
  it('is nothing when every step was done', () => {
    expect(partialSignOut({ not_done: [] })).toBeNull();
  });

  it('tells every step left undone', () => {
    const notice = partialSignOut(partial);
    expect(notice?.code).toBe('partial_sign_out');
    expect(notice?.message).toContain('Signed out on this computer, but not everywhere');
    expect(notice?.message).toContain('The server cannot be reached. Still cannot.');
  });

  it('tells a reason shared by several steps once', () => {
    const message = 'The server did not answer.';
    const notice = partialSignOut({
      not_done: [
        { step: 'delete_auto_token', message },
        { step: 'revoke_session', message },
      ],
    });
    expect(notice?.message).toBe(`Signed out on this computer, but not everywhere: ${message}`);
  });
});

describe('Session', () => {
  it('restores the kept session at launch', async () => {
    const session = new Session(commands());
    expect(session.loading).toBe(true);
    await session.restore();
    expect(session.loading).toBe(false);
    expect(session.account).toEqual(ann);
    expect(session.notice).toBeNull();
  });

  it('says why a kept session could not be restored', async () => {
    const session = new Session(commands({ restore: async () => Promise.reject(unreachable) }));
    await session.restore();
    expect(session.account).toBeNull();
    expect(session.notice).toEqual(unreachable);
  });

  it('opens the home screen on sign-in and forgets an old notice', () => {
    const session = new Session(commands());
    session.signedOut({ code: 'partial_sign_out', message: 'old' });
    session.open('settings');
    session.signedIn(ann);
    expect(session.account).toEqual(ann);
    expect(session.screen).toBe('home');
    expect(session.notice).toBeNull();
  });

  it('signs out with nothing to tell', async () => {
    const session = new Session(commands());
    session.signedIn(ann);
    expect(await session.signOut()).toBeNull();
    expect(session.account).toBeNull();
    expect(session.notice).toBeNull();
  });

  it('keeps what a partial sign-out left undone for the sign-in screen', async () => {
    const session = new Session(commands({ signOut: async () => partial }));
    session.signedIn(ann);
    expect(await session.signOut()).toBeNull();
    expect(session.account).toBeNull();
    expect(session.notice).toEqual(partialSignOut(partial));
  });

  it('stays signed in when the sign-out failed altogether, and answers why', async () => {
    const session = new Session(commands({ signOut: async () => Promise.reject(unreachable) }));
    session.signedIn(ann);
    expect(await session.signOut()).toEqual(unreachable);
    expect(session.account).toEqual(ann);
  });

  it('follows the tray: a screen to open, a sign-out made there', () => {
    const session = new Session(commands());
    session.signedIn(ann);
    session.handle({ kind: 'open_security' });
    expect(session.screen).toBe('security');
    session.handle({ kind: 'tokens_changed' });
    expect(session.account).toEqual(ann);
    // A notification about one token: the Security screen, on that token.
    session.open('home');
    session.handle({ kind: 'open_token', uuid: 'a1' });
    expect(session.screen).toBe('security');
    expect(tokenList.selected).toBe('a1');
    session.handle({ kind: 'signed_out', notice: null });
    expect(session.account).toBeNull();
    expect(session.notice).toBeNull();
  });

  it('shows why the server ended the session on the sign-in screen', () => {
    const session = new Session(commands());
    session.signedIn(ann);
    const revoked = { code: 'session_revoked', message: 'Your session was ended…' } as const;
    session.handle({ kind: 'signed_out', notice: revoked });
    expect(session.account).toBeNull();
    expect(session.notice).toEqual(revoked);
  });

  it('signs out everywhere through its own command', async () => {
    const calls: string[] = [];
    const session = new Session(
      commands({
        signOut: async () => (calls.push('here'), { not_done: [] }),
        signOutEverywhere: async () => (calls.push('everywhere'), partial),
      }),
    );
    session.signedIn(ann);
    expect(await session.signOut(true)).toBeNull();
    expect(calls).toEqual(['everywhere']);
    expect(session.account).toBeNull();
    expect(session.notice).toEqual(partialSignOut(partial));
  });

  it('takes the hand-off the person chose, and ignores one after sign-out', () => {
    const session = new Session(commands());
    session.signedIn(ann);
    const done = { state: 'done', registry: '127.0.0.1:5000', config_path: '/h/.docker/config.json' } as const;
    session.handedOff(done);
    expect(session.account?.docker_hand_off).toEqual(done);
    expect(session.account?.username).toBe('ann');
    session.signedOut();
    session.handedOff(done);
    expect(session.account).toBeNull();
  });
});

describe('routes', () => {
  const token = '0b0c7f9e-5a3d-4c1e-9f00-1234567890ab';

  it('parses screens and a token\'s detail, and nothing else', () => {
    expect(parseRoute('activity')).toEqual({ screen: 'activity', token: null });
    expect(parseRoute(`security/token/${token.toUpperCase()}`)).toEqual({ screen: 'security', token });
    expect(parseRoute('security/token/nope')).toBeNull();
    expect(parseRoute('elsewhere')).toBeNull();
    expect(parseRoute('')).toBeNull();
  });

  it('opens a token\'s detail over the screen it came from, and Back returns there', () => {
    const session = new Session(commands());
    session.signedIn(ann);
    session.open('activity');
    expect(session.navigate(`security/token/${token}`)).toBe(true);
    expect(session.route).toBe(`security/token/${token}`);
    // Following a rotation link keeps where Back goes.
    session.openToken('11111111-2222-3333-4444-555555555555');
    session.closeToken();
    expect(session.route).toBe('activity');
    expect(session.navigate('nowhere')).toBe(false);
    expect(session.route).toBe('activity');
  });

  it('opens the detail a notification names', () => {
    const session = new Session(commands());
    session.signedIn(ann);
    session.handle({ kind: 'open_token', uuid: token });
    expect(session.token).toBe(token);
    session.handle({ kind: 'open_security' });
    expect(session.route).toBe('security');
    session.handle({ kind: 'open_token', uuid: token });
    session.signedOut();
    expect(session.token).toBeNull();
  });
});
