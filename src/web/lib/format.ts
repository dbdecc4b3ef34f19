/** Dates, numbers, sizes and durations in the user's locale and time zone (Intl; no hand-made formats). */
import { useMemo } from 'react';
import { useTranslation } from 'react-i18next';
import { localeFor } from '../i18n/i18n.ts';

export interface Formatters {
  locale: string;
  dateTime(iso: string | null | undefined): string;
  date(iso: string | null | undefined): string;
  time(epochMs: number): string;
  number(n: number): string;
  bytes(n: number | null | undefined): string;
  durationMs(ms: number | null | undefined): string;
}

const UNITS = ['byte', 'kilobyte', 'megabyte', 'gigabyte'] as const;

export function formatters(locale: string): Formatters {
  const dateTime = new Intl.DateTimeFormat(locale, { dateStyle: 'medium', timeStyle: 'short' });
  const date = new Intl.DateTimeFormat(locale, { dateStyle: 'medium' });
  const time = new Intl.DateTimeFormat(locale, { hour: '2-digit', minute: '2-digit', second: '2-digit', fractionalSecondDigits: 3 });
  const number = new Intl.NumberFormat(locale);
  const none = '—';
  const parse = (iso: string | null | undefined) => {
    if (!iso) return undefined;
    const d = new Date(iso);
    return Number.isNaN(d.getTime()) ? undefined : d;
  };
  return {
    locale,
    dateTime: (iso) => { const d = parse(iso); return d ? dateTime.format(d) : none; },
    date: (iso) => { const d = parse(iso); return d ? date.format(d) : none; },
    time: (ms) => time.format(new Date(ms)),
    number: (n) => number.format(n),
    bytes(n) {
      if (n === null || n === undefined) return none;
      let v = n;
      let i = 0;
      while (v >= 1024 && i < UNITS.length - 1) { v /= 1024; i++; }
      return new Intl.NumberFormat(locale, { style: 'unit', unit: UNITS[i], unitDisplay: 'short', maximumFractionDigits: i === 0 ? 0 : 1 }).format(v);
    },
    durationMs(ms) {
      if (ms === null || ms === undefined) return none;
      if (ms < 60_000) return new Intl.NumberFormat(locale, { style: 'unit', unit: 'second', unitDisplay: 'short', maximumFractionDigits: 1 }).format(ms / 1000);
      return new Intl.NumberFormat(locale, { style: 'unit', unit: 'minute', unitDisplay: 'short', maximumFractionDigits: 1 }).format(ms / 60_000);
    },
  };
}

/** The formatters of the current language, in the browser's locale for it. */
export function useFormat(): Formatters {
  const { i18n } = useTranslation();
  return useMemo(() => formatters(localeFor(i18n.language)), [i18n.language]);
}
