/**
 * Unsaved form input kept in sessionStorage (this tab only, gone when it closes), so that a session that ends
 * while the user types — the API answers 401, the app sends them to log in — loses nothing: back on the page, the
 * form shows what they had typed. Secrets (passwords, cookies, credentials) are never kept here: they stay in the
 * form's memory only.
 */
import { useCallback, useState } from 'react';

const PREFIX = 'sri.draft:';

function read<T>(key: string): T | undefined {
  try {
    const raw = sessionStorage.getItem(PREFIX + key);
    return raw === null ? undefined : (JSON.parse(raw) as T);
  } catch {
    return undefined;
  }
}

function write(key: string, value: unknown): void {
  try {
    sessionStorage.setItem(PREFIX + key, JSON.stringify(value));
  } catch {
    // storage full or disabled: the draft lives in memory only
  }
}

/** Every draft of this tab (a logout: the next user of the tab must not find them). */
export function clearAllDrafts(): void {
  try {
    for (const k of Object.keys(sessionStorage)) if (k.startsWith(PREFIX)) sessionStorage.removeItem(k);
  } catch {
    // nothing kept
  }
}

export function clearDraft(key: string): void {
  try {
    sessionStorage.removeItem(PREFIX + key);
  } catch {
    // nothing kept
  }
}

/** Like useState, but the value survives a trip to the login page; `clear()` once it has been saved. */
export function useDraft<T>(key: string, initial: T | (() => T)): [T, (next: T | ((prev: T) => T)) => void, () => void] {
  const [value, setValue] = useState<T>(() => read<T>(key) ?? (typeof initial === 'function' ? (initial as () => T)() : initial));
  const set = useCallback((next: T | ((prev: T) => T)) => {
    setValue((prev) => {
      const v = typeof next === 'function' ? (next as (p: T) => T)(prev) : next;
      write(key, v);
      return v;
    });
  }, [key]);
  const clear = useCallback(() => clearDraft(key), [key]);
  return [value, set, clear];
}
