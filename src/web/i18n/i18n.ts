/**
 * The dashboard's languages: Spanish and English. The language is the one the user chose last (kept in
 * localStorage), else the first of the browser's languages the dashboard speaks, else English. Dates, numbers and
 * sizes follow the user's locale (the browser's own, es-EC for an Ecuadorian Spanish browser) and time zone, through
 * Intl (lib/format.ts).
 */
import i18next from 'i18next';
import { initReactI18next } from 'react-i18next';
import { en } from './en.ts';
import { es } from './es.ts';

export const LANGUAGES = ['es', 'en'] as const;
export type Language = (typeof LANGUAGES)[number];
/** Names of the languages in themselves (the switch shows them so). */
export const LANGUAGE_NAMES: Readonly<Record<Language, string>> = { es: 'Español', en: 'English' };

const STORAGE_KEY = 'sri.language';

const isLanguage = (v: unknown): v is Language => typeof v === 'string' && (LANGUAGES as readonly string[]).includes(v);

function browserLanguages(): readonly string[] {
  return navigator.languages?.length ? navigator.languages : [navigator.language];
}

export function detectLanguage(): Language {
  let stored: string | null = null;
  try {
    stored = localStorage.getItem(STORAGE_KEY);
  } catch {
    // storage disabled: the browser's languages decide
  }
  if (isLanguage(stored)) return stored;
  for (const tag of browserLanguages()) {
    const base = tag.toLowerCase().split('-')[0];
    if (isLanguage(base)) return base;
  }
  return 'en';
}

/**
 * The locale of formatted values: the browser's own tag for the chosen language (es-EC stays es-EC), else the
 * language alone.
 */
export function localeFor(language: string): string {
  return browserLanguages().find((tag) => tag.toLowerCase().split('-')[0] === language) ?? language;
}

export function setLanguage(language: Language): void {
  try {
    localStorage.setItem(STORAGE_KEY, language);
  } catch {
    // not kept across visits; the switch still applies now
  }
  void i18next.changeLanguage(language);
}

export function initI18n(): void {
  const lng = detectLanguage();
  void i18next.use(initReactI18next).init({
    resources: { en: { translation: en }, es: { translation: es } },
    lng,
    fallbackLng: 'en',
    supportedLngs: [...LANGUAGES],
    // React escapes what it renders.
    interpolation: { escapeValue: false },
    initAsync: false,
    returnNull: false,
  });
  document.documentElement.lang = lng;
  i18next.on('languageChanged', (l) => {
    document.documentElement.lang = l;
  });
}
