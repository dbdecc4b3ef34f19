/**
 * Messages between the worker (host.ts) and a sandbox child (child.ts): one JSON object per line, stdin → child,
 * child → stdout. The child is untrusted: the host validates every line it reads (host.ts) and treats a bad one
 * as the script breaking the protocol. Bundled into the child: types only, no imports.
 */

/** One synchronous locator-building step (methods.ts BUILDERS), replayed by the host on every call. */
export interface Step { m: string; a: unknown[] }

/** A handle to a host-side object the script may use (a page, frame, dialog, download) and its synchronous data. */
export interface HandleRef { $h: number; k: 'Page' | 'Frame' | 'Dialog' | 'Download'; d?: Record<string, unknown> }

export type ToChild =
  | { t: 'start'; code: string; filename: string; syncTimeoutMs: number; timeoutMs: number; payload: unknown; context: unknown; page: HandleRef; helpers: number }
  | { t: 'res'; id: number; ok: true; v: unknown; u?: Record<string, string> }
  | { t: 'res'; id: number; ok: false; e: { name: string; message: string }; u?: Record<string, string> }
  | { t: 'event'; h: number; e: string; v: unknown };

export type FromChild =
  | { t: 'call'; id: number; h: number; c?: Step[]; m: string; a: unknown[] }
  | { t: 'done' }
  | { t: 'fail'; kind: 'invalid' | 'timeout' | 'error'; name: string; message: string };

/**
 * Encodings of values JSON cannot carry. Functions only as the page function of methods.ts FUNCTION_ARG calls. A
 * RegExp travels as source and flags; the host never compiles it (host.ts pageRegExp): it is for the page.
 */
export interface FnArg { $fn: string }
export interface RegExpArg { $re: [string, string] }
export interface LocatorArg { $loc: { h: number; c: Step[] } }
export interface UndefinedArg { $u: 1 }
