import { describe, expect, it, vi } from 'vitest';
import type { CommandError, Rotation, TokenRow } from '../lib/ipc';
import { NOW, tokenRow } from '../test/rows';
import { TokenList, type TokenCommands } from './tokenList.svelte';

/** A promise and the hands that settle it, for answers the test holds back. */
function deferred<T>() {
  let resolve: (value: T) => void = () => {};
  let reject: (reason: unknown) => void = () => {};
  const promise = new Promise<T>((yes, no) => {
    resolve = yes;
    reject = no;
  });
  return { promise, resolve, reject };
}

const failure: CommandError = { code: 'unreachable', message: 'The server cannot be reached.' };

/** Commands over `server`, the rows the fake server has. */
function fake(server: TokenRow[]): TokenCommands & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    listTokens: async () => {
      calls.push('list');
      return [...server];
    },
    setNewAddressAlerts: async (uuid, on) => {
      calls.push(`alerts ${uuid} ${on}`);
      const row = server.find((r) => r.uuid === uuid);
      if (!row) throw { code: 'invalid_input', message: 'no such token' };
      return { ...row, new_address_alerts: on };
    },
    setTokenActive: async (uuid, active) => {
      calls.push(`active ${uuid} ${active}`);
      const row = server.find((old) => old.uuid === uuid);
      if (!row) throw failure;
      return { ...row, state: active ? 'active' : 'inactive' };
    },
    deleteToken: async (uuid) => {
      calls.push(`delete ${uuid}`);
      return null;
    },
    rotateToken: async (uuid, overlap) => {
      calls.push(`rotate ${uuid} ${overlap}`);
      const row = tokenRow({ label: 'replacement', rotated_from: uuid });
      // The server links both and lists the successor first.
      const index = server.findIndex((old) => old.uuid === uuid);
      server[index] = { ...server[index], rotated_to: row.uuid, overlap_until: new Date(NOW + overlap * 1000).toISOString() };
      server.unshift(row);
      return { kind: 'shown', row, secret: 'hkpat_secret', warning: null };
    },
  };
}

describe('TokenList', () => {
  it('loads on open, with the time of the load', async () => {
    const rows = [tokenRow(), tokenRow()];
    let clock = NOW - 1000;
    const list = new TokenList(fake(rows), () => clock);
    clock = NOW;
    await list.open();
    expect(list.rows).toEqual(rows);
    expect(list.shown).toHaveLength(2);
    expect(list.now).toBe(NOW);
    expect(list.refreshing).toBe(false);
  });

  it('keeps the old rows and says why when a refresh fails', async () => {
    const rows = [tokenRow()];
    const commands = fake(rows);
    const list = new TokenList(commands, () => NOW);
    await list.open();
    commands.listTokens = async () => {
      throw failure;
    };
    await list.refresh();
    expect(list.rows).toEqual(rows);
    expect(list.loadError).toEqual(failure);
  });

  it('shows the kept list at once, then the server\'s list replaces it whole', async () => {
    const kept = tokenRow();
    const removed = tokenRow({ label: 'deleted since' });
    const commands = fake([]);
    const answer = deferred<TokenRow[]>();
    commands.listTokens = (onKept) => {
      onKept?.({ rows: [kept, removed], listedAt: new Date(NOW - 60_000).toISOString() });
      return answer.promise;
    };
    const list = new TokenList(commands, () => NOW);
    const loading = list.open();
    expect(list.rows).toEqual([kept, removed]);
    expect(list.keptAt).toBe(new Date(NOW - 60_000).toISOString());
    expect(list.refreshing).toBe(true);
    answer.resolve([{ ...kept, state: 'inactive' }]);
    await loading;
    expect(list.rows).toEqual([{ ...kept, state: 'inactive' }]);
    expect(list.keptAt).toBeNull();
    expect(list.loadError).toBeNull();
  });

  it('keeps the kept list and says so when the server cannot be asked, in either order', async () => {
    const kept = tokenRow();
    const listedAt = new Date(NOW - 60_000).toISOString();
    for (const keptFirst of [true, false]) {
      const commands = fake([]);
      let late: (() => void) | null = null;
      commands.listTokens = async (onKept) => {
        const give = () => onKept?.({ rows: [kept], listedAt });
        if (keptFirst) give();
        else late = give;
        throw failure;
      };
      const list = new TokenList(commands, () => NOW);
      await list.open();
      (late as (() => void) | null)?.();
      expect(list.rows).toEqual([kept]);
      expect(list.keptAt).toBe(listedAt);
      expect(list.loadError).toEqual(failure);
      expect(list.refreshing).toBe(false);
    }
  });

  it('never lets the kept list replace rows already shown', async () => {
    const fresh = tokenRow();
    const commands = fake([fresh]);
    const list = new TokenList(commands, () => NOW);
    await list.open();
    let late: (() => void) | null = null;
    commands.listTokens = async (onKept) => {
      late = () => onKept?.({ rows: [tokenRow({ label: 'stale' })], listedAt: new Date(NOW).toISOString() });
      return [fresh];
    };
    await list.refresh();
    (late as (() => void) | null)?.();
    expect(list.rows).toEqual([fresh]);
    expect(list.keptAt).toBeNull();
  });

  it('loads once while a load is under way', async () => {
    const commands = fake([]);
    const answer = deferred<TokenRow[]>();
    let asked = 0;
    commands.listTokens = () => {
      asked += 1;
      return answer.promise;
    };
    const list = new TokenList(commands, () => NOW);
    const first = list.open();
    await list.refresh();
    answer.resolve([tokenRow()]);
    await first;
    expect(asked).toBe(1);
    expect(list.rows).toHaveLength(1);
  });

  it('forgets everything on close, and drops an answer that arrives after it', async () => {
    const commands = fake([]);
    const answer = deferred<TokenRow[]>();
    commands.listTokens = () => answer.promise;
    const list = new TokenList(commands, () => NOW);
    const loading = list.open();
    list.filters.origin = 'auto';
    list.sortBy('label');
    list.close();
    answer.resolve([tokenRow()]);
    await loading;
    expect(list.rows).toBeNull();
    expect(list.refreshing).toBe(false);
    expect(list.filters).toEqual({ origin: 'all', state: 'all', attention: false });
    expect(list.sort).toEqual({ key: 'created_at', ascending: false });
  });

  it('shows the rows through the filters and the sort', async () => {
    const list = new TokenList(fake([tokenRow({ label: 'b', origin: 'auto' }), tokenRow({ label: 'a' }), tokenRow({ label: 'c' })]), () => NOW);
    await list.open();
    list.sortBy('label');
    expect(list.shown.map((row) => row.label)).toEqual(['a', 'b', 'c']);
    list.sortBy('label');
    expect(list.shown.map((row) => row.label)).toEqual(['c', 'b', 'a']);
    list.filters.origin = 'manual';
    expect(list.shown.map((row) => row.label)).toEqual(['c', 'a']);
  });

  it('changes a row when the server confirms, showing the action meanwhile', async () => {
    const row = tokenRow();
    const commands = fake([row]);
    const answer = deferred<TokenRow>();
    commands.setTokenActive = () => answer.promise;
    const list = new TokenList(commands, () => NOW);
    await list.open();
    const toggling = list.toggle(row);
    expect(list.pending[row.uuid]).toBe('Deactivating…');
    expect(list.rows?.[0].state).toBe('active');
    answer.resolve({ ...row, state: 'inactive' });
    await toggling;
    expect(list.pending[row.uuid]).toBeUndefined();
    expect(list.rows?.[0].state).toBe('inactive');
  });

  it('keeps why an action failed for its row until the next try', async () => {
    const row = tokenRow({ state: 'inactive' });
    const commands = fake([row]);
    commands.setTokenActive = async () => {
      throw failure;
    };
    const list = new TokenList(commands, () => NOW);
    await list.open();
    await list.toggle(row);
    expect(list.failures[row.uuid]).toBe(failure.message);
    expect(list.rows?.[0].state).toBe('inactive');
    commands.setTokenActive = async () => ({ ...row, state: 'active' });
    const retry = list.toggle(row);
    expect(list.pending[row.uuid]).toBe('Reactivating…');
    expect(list.failures[row.uuid]).toBeUndefined();
    await retry;
    expect(list.rows?.[0].state).toBe('active');
  });

  it('removes a deleted row and tells when it was this device\'s own', async () => {
    const mine = tokenRow({ origin: 'auto', this_device: true });
    const other = tokenRow();
    const list = new TokenList(fake([mine, other]), () => NOW);
    await list.open();
    expect(await list.remove(other)).toBe(false);
    expect(list.rows).toEqual([mine]);
    expect(await list.remove(mine)).toBe(true);
    expect(list.rows).toEqual([]);
  });

  it('does not report a lost token when the delete failed', async () => {
    const mine = tokenRow({ origin: 'auto', this_device: true });
    const commands = fake([mine]);
    commands.deleteToken = async () => {
      throw failure;
    };
    const list = new TokenList(commands, () => NOW);
    await list.open();
    expect(await list.remove(mine)).toBe(false);
    expect(list.rows).toEqual([mine]);
    expect(list.failures[mine.uuid]).toBe(failure.message);
  });

  it('rotates with the overlap asked for, lists the successor first and links the old token', async () => {
    const old = tokenRow();
    const commands = fake([old]);
    const list = new TokenList(commands, () => NOW);
    await list.open();
    const rotated = list.rotate(old, 3600);
    expect(list.pending[old.uuid]).toBe('Rotating…');
    const rotation: Rotation = await rotated;
    expect(commands.calls).toContain(`rotate ${old.uuid} 3600`);
    expect(rotation.kind === 'shown' && rotation.secret).toBe('hkpat_secret');
    // At once, before the server's list arrives: the successor first, the old one linked.
    expect(list.rows?.map((row) => [row.label, row.state, row.overlap_until])).toEqual([
      ['replacement', 'active', null], [old.label, 'active', new Date(NOW + 3_600_000).toISOString()],
    ]);
    expect(list.rows?.[1].rotated_to).toBe(rotation.row.uuid);
    expect(list.pending[old.uuid]).toBeUndefined();
    // Then the list is read again from the server.
    await vi.waitFor(() => expect(commands.calls.filter((call) => call === 'list')).toHaveLength(2));
    expect(list.rows?.map((row) => row.label)).toEqual(['replacement', old.label]);
  });

  it('lists a token made on the screen first', async () => {
    const list = new TokenList(fake([tokenRow()]), () => NOW);
    await list.open();
    const made = tokenRow({ label: 'made' });
    list.created(made);
    expect(list.rows?.[0]).toBe(made);
  });

  it('switches new-address alerts when the server confirms, and a selected token survives the screen opening', async () => {
    const row = tokenRow();
    const commands = fake([row]);
    const list = new TokenList(commands, () => NOW);
    list.select(row.uuid);
    list.filters = { origin: 'auto', state: 'all', attention: false };
    list.select(row.uuid);
    await list.open();
    expect(list.selected).toBe(row.uuid);
    expect(list.shown.map((shown) => shown.uuid)).toEqual([row.uuid]);
    await list.setNewAddressAlerts(row, false);
    expect(commands.calls).toContain(`alerts ${row.uuid} false`);
    expect(list.rows?.[0].new_address_alerts).toBe(false);
  });
});
