import { describe, expect, it } from 'vitest';
import type { ExportReport } from '../lib/ipc';
import { tokenCount, TokenExport } from './tokenExport.svelte';

describe('TokenExport', () => {
  it('shows the format being written, then the report', async () => {
    let finish: (report: ExportReport | null) => void = () => {};
    const exporter = new TokenExport({ exportTokens: () => new Promise((done) => (finish = done)) });
    const running = exporter.run('csv');
    expect(exporter.exporting).toBe('csv');
    finish({ path: '/tmp/tokens.csv', token_count: 3 });
    await running;
    expect(exporter.exporting).toBeNull();
    expect(exporter.exported).toEqual({ path: '/tmp/tokens.csv', token_count: 3 });
    expect(exporter.error).toBeNull();
  });

  it('keeps why it failed, and forgets it on the next try', async () => {
    let full = true;
    const exporter = new TokenExport({
      exportTokens: async () => {
        if (full) throw { code: 'local_io', message: 'The disk is full.' };
        return { path: '/tmp/tokens.json', token_count: 1 };
      },
    });
    await exporter.run('json');
    expect(exporter.error).toBe('The disk is full.');
    expect(exporter.exported).toBeNull();
    full = false;
    await exporter.run('json');
    expect(exporter.error).toBeNull();
    expect(exporter.exported?.token_count).toBe(1);
  });

  it('a cancelled save dialog reports nothing', async () => {
    const exporter = new TokenExport({ exportTokens: async () => null });
    await exporter.run('csv');
    expect(exporter.exported).toBeNull();
    expect(exporter.error).toBeNull();
  });

  it('counts tokens in words', () => {
    expect(tokenCount(1)).toBe('1 token');
    expect(tokenCount(0)).toBe('0 tokens');
    expect(tokenCount(2)).toBe('2 tokens');
  });
});
