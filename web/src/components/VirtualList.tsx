// A windowed list: only the rows near the viewport are in the DOM, whatever the list's length
// (a chat of 10,000 messages keeps a few dozen nodes). Row heights vary; each rendered row is
// measured and remembered by key, unmeasured ones count as `estimate`.
import type { ComponentChildren } from 'preact';
import { useLayoutEffect, useMemo, useRef, useState } from 'preact/hooks';

export interface VirtualListProps<T> {
  items: readonly T[];
  itemKey: (item: T) => string;
  renderItem: (item: T) => ComponentChildren;
  /** Height assumed for a row not yet measured, in CSS pixels. */
  estimate?: number;
  /** Extra rows rendered above and below the viewport. */
  overscan?: number;
  /** Start at the end and stay there while the reader is at the end (a chat). */
  stickToEnd?: boolean;
  /** Called when the reader scrolls near the start (load older rows). */
  onNearStart?: () => void;
  label: string;
  class?: string;
}

/** Used when the container has no layout yet (or none at all, as in tests without CSS). */
const FALLBACK_VIEWPORT = 600;

export function VirtualList<T>(props: VirtualListProps<T>) {
  const { items, itemKey, renderItem, estimate = 64, overscan = 8, stickToEnd = false } = props;
  const container = useRef<HTMLDivElement>(null);
  const heights = useRef(new Map<string, number>());
  const [scrollTop, setScrollTop] = useState(0);
  const [viewport, setViewport] = useState(FALLBACK_VIEWPORT);
  const [measured, setMeasured] = useState(0);
  const atEnd = useRef(stickToEnd);
  const firstKey = useRef<string | undefined>(undefined);

  // offsets[i] = top of row i; offsets[n] = total height.
  const offsets = useMemo(() => {
    const out = new Float64Array(items.length + 1);
    for (let i = 0; i < items.length; i++) {
      const item = items[i] as T;
      out[i + 1] = (out[i] as number) + (heights.current.get(itemKey(item)) ?? estimate);
    }
    return out;
    // `measured` changes when a row's height was learnt.
  }, [items, itemKey, estimate, measured]);
  const total = offsets[items.length] as number;

  const indexAt = (y: number): number => {
    let lo = 0;
    let hi = items.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((offsets[mid + 1] as number) <= y) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
  const start = Math.max(0, indexAt(scrollTop) - overscan);
  const end = Math.min(items.length, indexAt(scrollTop + viewport) + 1 + overscan);

  // Measure the rendered rows; keep the reader's place when older rows were put in front.
  useLayoutEffect(() => {
    const el = container.current;
    if (!el) return;
    if (el.clientHeight > 0 && el.clientHeight !== viewport) setViewport(el.clientHeight);
    let changed = false;
    for (const row of el.querySelectorAll<HTMLElement>('[data-row]')) {
      const key = row.dataset.row ?? '';
      const h = row.offsetHeight;
      if (h > 0 && heights.current.get(key) !== h) {
        heights.current.set(key, h);
        changed = true;
      }
    }
    if (changed) setMeasured((m) => m + 1);

    const first = items[0] === undefined ? undefined : itemKey(items[0]);
    const previous = firstKey.current;
    firstKey.current = first;
    if (previous !== undefined && first !== previous && !atEnd.current) {
      const moved = items.findIndex((item) => itemKey(item) === previous);
      if (moved > 0) {
        el.scrollTop += offsets[moved] as number;
        setScrollTop(el.scrollTop);
      }
    }
    if (atEnd.current) {
      const top = Math.max(0, total - (el.clientHeight || viewport));
      el.scrollTop = top;
      if (top !== scrollTop) setScrollTop(top);
    }
  });

  const onScroll = () => {
    const el = container.current;
    if (!el) return;
    setScrollTop(el.scrollTop);
    const height = el.clientHeight || viewport;
    atEnd.current = stickToEnd && el.scrollTop + height >= total - 4;
    if (el.scrollTop < estimate * overscan) props.onNearStart?.();
  };

  return (
    <div
      ref={container}
      class={'vlist ' + (props.class ?? '')}
      onScroll={onScroll}
      tabIndex={0}
      role="region"
      aria-label={props.label}
    >
      <div style={{ height: `${offsets[start] as number}px` }} aria-hidden="true" />
      {items.slice(start, end).map((item) => {
        const key = itemKey(item);
        return (
          <div key={key} data-row={key} class="vlist-row">
            {renderItem(item)}
          </div>
        );
      })}
      <div style={{ height: `${total - (offsets[end] as number)}px` }} aria-hidden="true" />
    </div>
  );
}
