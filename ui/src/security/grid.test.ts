import { describe, expect, it } from 'vitest';
import { keyTarget, OVERSCAN, ROW_HEIGHT, scrollFor, tabStop, visibleRange } from './grid';

describe('visibleRange', () => {
  it('renders the viewport and the overscan on each side, within the list', () => {
    expect(visibleRange(0, 10 * ROW_HEIGHT, 1000)).toEqual({ first: 0, last: 10 + 2 * OVERSCAN });
    const scrolled = visibleRange(100 * ROW_HEIGHT, 10 * ROW_HEIGHT, 1000);
    expect(scrolled).toEqual({ first: 100 - OVERSCAN, last: 100 - OVERSCAN + 10 + 2 * OVERSCAN });
    expect(visibleRange(990 * ROW_HEIGHT, 400, 1000).last).toBe(1000);
    expect(visibleRange(0, 400, 3)).toEqual({ first: 0, last: 3 });
    expect(visibleRange(0, 400, 0)).toEqual({ first: 0, last: 0 });
  });
});

describe('tabStop', () => {
  it('is the keyboard row while rendered, else the first rendered row', () => {
    expect(tabStop(12, 10, 40)).toBe(12);
    expect(tabStop(3, 10, 40)).toBe(10);
    expect(tabStop(40, 10, 40)).toBe(10);
  });
});

describe('keyTarget', () => {
  const height = 10 * ROW_HEIGHT;

  it('moves by one, by a page less one row, and to either end, never past them', () => {
    expect(keyTarget('ArrowDown', 5, 100, height)).toBe(6);
    expect(keyTarget('ArrowUp', 5, 100, height)).toBe(4);
    expect(keyTarget('ArrowUp', 0, 100, height)).toBe(0);
    expect(keyTarget('ArrowDown', 99, 100, height)).toBe(99);
    expect(keyTarget('PageDown', 5, 100, height)).toBe(14);
    expect(keyTarget('PageUp', 5, 100, height)).toBe(0);
    expect(keyTarget('PageDown', 95, 100, height)).toBe(99);
    expect(keyTarget('Home', 50, 100, height)).toBe(0);
    expect(keyTarget('End', 50, 100, height)).toBe(99);
  });

  it('pages by at least one row in a tiny viewport', () => {
    expect(keyTarget('PageDown', 5, 100, ROW_HEIGHT)).toBe(6);
  });

  it('ignores other keys, and every key in an empty grid', () => {
    expect(keyTarget('Enter', 5, 100, height)).toBeNull();
    expect(keyTarget('ArrowDown', 0, 0, height)).toBeNull();
  });
});

describe('scrollFor', () => {
  const height = 10 * ROW_HEIGHT;
  const header = 30;

  it('stays put while the row is in view', () => {
    expect(scrollFor(5, 0, height, header)).toBe(0);
  });

  it('scrolls up to a row above the view', () => {
    expect(scrollFor(3, 10 * ROW_HEIGHT, height, header)).toBe(3 * ROW_HEIGHT);
  });

  it('scrolls down just enough to show a row below the view under the header', () => {
    expect(scrollFor(20, 0, height, header)).toBe(21 * ROW_HEIGHT - height + header);
  });
});
