import { describe, expect, it } from 'vitest';
import type { TokenRow } from '../lib/ipc';
import { tokenRow } from '../test/rows';
import { TokenDetailView, type DetailCommands } from './tokenDetail.svelte';

/** Commands over one token as the fake server has it; `failAlerts` makes the switch fail. */
function fake(row: TokenRow, failAlerts = false): DetailCommands & { calls: string[] } {
  const calls: string[] = [];
  let server = row;
  const none = async () => {
    throw new Error('not used here');
  };
  return {
    calls,
    tokenDetail: async () => ({ row: server, days: [], access: { lines: [], next: null, truncated: false } }),
    tokenAccessPage: none,
    closeTokenDetail: async () => null,
    tokenEvents: async () => ({ events: [], more: false, truncated: false, tokens: [] }),
    setTokenActive: none,
    deleteToken: none,
    rotateToken: none,
    setNewAddressAlerts: async (uuid, on) => {
      calls.push(`alerts ${uuid} ${on}`);
      if (failAlerts) throw { code: 'unreachable', message: 'The server cannot be reached.' };
      server = { ...server, new_address_alerts: on };
      return server;
    },
  };
}

describe('TokenDetailView', () => {
  it("turns the token's new-address alerts off on the server and shows its answer", async () => {
    const row = tokenRow();
    const commands = fake(row);
    const view = new TokenDetailView(commands, row.uuid);
    await view.open();
    expect(view.row?.new_address_alerts).toBe(true);
    const updated = await view.setNewAddressAlerts(false);
    expect(commands.calls).toEqual([`alerts ${row.uuid} false`]);
    expect(updated?.new_address_alerts).toBe(false);
    expect(view.row?.new_address_alerts).toBe(false);
    expect(view.busy).toBeNull();
  });

  it('keeps the switch as the server has it when the change fails, and says why', async () => {
    const row = tokenRow();
    const view = new TokenDetailView(fake(row, true), row.uuid);
    await view.open();
    expect(await view.setNewAddressAlerts(false)).toBeNull();
    expect(view.row?.new_address_alerts).toBe(true);
    expect(view.failure).toBe('The server cannot be reached.');
  });
});
