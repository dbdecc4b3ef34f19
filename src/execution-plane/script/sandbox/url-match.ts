/**
 * URL matching for `waitForURL` and `page.frame({ url })` with Playwright's meaning of each kind of matcher — run in
 * the sandbox child only, never in the worker (methods.ts MATCHED_IN_CHILD says why). A pattern that backtracks for
 * minutes burns the script's own CPU limit (WORKER_SCRIPT_CPU_SECONDS) and ends its job; the worker's event loop
 * never sees it.
 *
 * Bundled into the child: plain code, no imports.
 */

/** Characters that are literal in a glob but special in a RegExp (playwright-core's `escapedChars`). */
const ESCAPED = new Set(['$', '^', '+', '.', '*', '(', ')', '|', '\\', '?', '{', '}', '[', ']']);

/**
 * Playwright's glob syntax (playwright-core `globToRegexPattern`, 1.5x): `*` any characters but `/`, `**` any
 * characters, `{a,b}` alternatives, `\` escapes the next character; everything else is literal. There is no
 * `baseURL` in a job's context, so a relative glob (`**\/login`) is matched as written.
 */
export function globToRegexSource(glob: string): string {
  const tokens = ['^'];
  let inGroup = false;
  for (let i = 0; i < glob.length; ++i) {
    const c = glob[i]!;
    if (c === '\\' && i + 1 < glob.length) {
      const next = glob[++i]!;
      tokens.push(ESCAPED.has(next) ? `\\${next}` : next);
      continue;
    }
    if (c === '*') {
      const before = glob[i - 1];
      let stars = 1;
      while (glob[i + 1] === '*') { stars++; i++; }
      if (stars > 1) {
        if (glob[i + 1] === '/') {
          tokens.push(before === '/' ? '((.+/)|)' : '(.*/)');
          ++i;
        } else {
          tokens.push('(.*)');
        }
      } else {
        tokens.push('([^/]*)');
      }
      continue;
    }
    switch (c) {
      case '{':
        if (inGroup) throw new TypeError(`Invalid glob pattern ${JSON.stringify(glob)}: nested '{' is not supported`);
        inGroup = true;
        tokens.push('(');
        break;
      case '}':
        if (!inGroup) throw new TypeError(`Invalid glob pattern ${JSON.stringify(glob)}: unmatched '}'`);
        inGroup = false;
        tokens.push(')');
        break;
      case ',':
        tokens.push(inGroup ? '|' : '\\,');
        break;
      default:
        tokens.push(ESCAPED.has(c) ? `\\${c}` : c);
    }
  }
  if (inGroup) throw new TypeError(`Invalid glob pattern ${JSON.stringify(glob)}: unmatched '{'`);
  tokens.push('$');
  return tokens.join('');
}

const isRegExp = (v: unknown): v is RegExp => Object.prototype.toString.call(v) === '[object RegExp]';

/**
 * A test of a URL string for what the script passed: a glob string (the empty string matches every URL), a RegExp
 * (of the script's realm), or a predicate that gets a `URL` (and false for a URL that does not parse). Throws a
 * TypeError for anything else, as Playwright does.
 */
export function urlMatcher(match: unknown, api: string): (url: string) => boolean {
  if (match === undefined || match === '') return () => true;
  if (typeof match === 'string') {
    const re = new RegExp(globToRegexSource(match));
    return (url) => re.test(url);
  }
  if (isRegExp(match)) {
    return (url) => { match.lastIndex = 0; return match.test(url); };
  }
  if (typeof match === 'function') {
    return (url) => {
      let parsed: URL;
      try { parsed = new URL(url); } catch { return false; }
      return Boolean((match as (u: URL) => unknown)(parsed));
    };
  }
  throw new TypeError(`${api}: the url should be a string (glob), a RegExp or a function of a URL`);
}
