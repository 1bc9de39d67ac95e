import type { Lang } from '../i18n';

const DAY = 24 * 60 * 60 * 1000;

/** A message or chat time: the clock time today, else the date. */
export function formatTime(lang: Lang, time: number, now: number = Date.now()): string {
  const sameDay = Math.abs(now - time) < DAY && new Date(now).getDate() === new Date(time).getDate();
  const opts: Intl.DateTimeFormatOptions = sameDay
    ? { hour: '2-digit', minute: '2-digit' }
    : { year: 'numeric', month: 'short', day: 'numeric' };
  return new Intl.DateTimeFormat(lang, opts).format(time);
}
