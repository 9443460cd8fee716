// The virtualised grid's arithmetic: which rows are rendered for a scroll position, where
// the keyboard goes, and how far to scroll to keep the keyboard's row in view. Plain
// functions, so the grid component only binds them to the DOM.

/** Every row is this tall (px): two lines of label and one of details; the CSS says the same. */
export const ROW_HEIGHT = 58;
/** Rows rendered beyond each edge of the viewport, so a scroll does not show blanks. */
export const OVERSCAN = 8;

/** The rendered rows `[first, last)` for a viewport `height` px tall scrolled to `scrollTop`. */
export function visibleRange(scrollTop: number, height: number, count: number): { first: number; last: number } {
  const first = Math.max(0, Math.floor(scrollTop / ROW_HEIGHT) - OVERSCAN);
  const last = Math.min(count, first + Math.ceil(height / ROW_HEIGHT) + 2 * OVERSCAN);
  return { first, last };
}

/** The row Tab reaches: the keyboard's row, or the first rendered one when that scrolled away. */
export function tabStop(current: number, first: number, last: number): number {
  return current >= first && current < last ? current : first;
}

/** The row `key` moves the keyboard to from `current` among `count` rows with a viewport
 *  `height` px tall, or null when the key is not a move (or there are no rows). */
export function keyTarget(key: string, current: number, count: number, height: number): number | null {
  if (count === 0) return null;
  const page = Math.max(1, Math.floor(height / ROW_HEIGHT) - 1);
  const moves: Record<string, number> = {
    ArrowDown: current + 1, ArrowUp: current - 1, PageDown: current + page, PageUp: current - page,
    Home: 0, End: count - 1,
  };
  if (!(key in moves)) return null;
  return Math.min(count - 1, Math.max(0, moves[key]));
}

/** The scroll position that shows row `index` whole in a viewport `height` px tall under a
 *  sticky header `header` px tall, moving as little as possible from `scrollTop`. */
export function scrollFor(index: number, scrollTop: number, height: number, header: number): number {
  const top = index * ROW_HEIGHT;
  if (top < scrollTop) return top;
  if (top + ROW_HEIGHT > scrollTop + height - header) return top + ROW_HEIGHT - height + header;
  return scrollTop;
}
