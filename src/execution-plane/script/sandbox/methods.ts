/**
 * The page API a sandboxed script gets (docs/scripts.md "The page API"), as data both sides read: the child builds
 * its facade from these tables, the host (host.ts) calls nothing that is not in them. Anything Playwright offers
 * beyond them — `page.context()`, `browser()`, `route`, `screenshot({ path })`, `setInputFiles`, `saveAs`,
 * `addInitScript`, element handles — is not reachable, so a script cannot open a context without the job's egress
 * restriction, touch the worker's files or keep a handle past its job.
 *
 * This file is bundled into the sandbox child: it must stay plain data with no imports.
 */

export type Kind = 'Page' | 'Frame' | 'Locator' | 'FrameLocator' | 'Dialog' | 'Download' | 'Helpers';
export type LocatorKind = 'Locator' | 'FrameLocator';

const GET_BY = ['getByRole', 'getByText', 'getByLabel', 'getByPlaceholder', 'getByAltText', 'getByTitle', 'getByTestId'] as const;
const toLocator = (names: readonly string[]): Record<string, LocatorKind> => Object.fromEntries(names.map((n) => [n, 'Locator' as const]));

/** Synchronous in Playwright: each builds a locator description from a root (Page/Frame) or from another locator. */
export const BUILDERS: Readonly<Record<'Page' | 'Frame' | 'Locator' | 'FrameLocator', Readonly<Record<string, LocatorKind>>>> = {
  Page: { ...toLocator(['locator', ...GET_BY]), frameLocator: 'FrameLocator' },
  Frame: { ...toLocator(['locator', ...GET_BY]), frameLocator: 'FrameLocator' },
  Locator: { ...toLocator(['locator', ...GET_BY, 'first', 'last', 'nth', 'filter', 'and', 'or']), frameLocator: 'FrameLocator', contentFrame: 'FrameLocator' },
  FrameLocator: { ...toLocator(['locator', ...GET_BY, 'owner']), frameLocator: 'FrameLocator', first: 'FrameLocator', last: 'FrameLocator', nth: 'FrameLocator' },
};

/** Actions and queries on a selector, shared by Page and Frame (`page.click(selector)` …). */
const SELECTOR_CALLS = [
  'click', 'dblclick', 'fill', 'type', 'press', 'check', 'uncheck', 'setChecked', 'selectOption', 'hover', 'focus', 'tap', 'dispatchEvent',
  'textContent', 'innerText', 'innerHTML', 'inputValue', 'getAttribute',
  'isVisible', 'isHidden', 'isEnabled', 'isDisabled', 'isChecked', 'isEditable',
  'waitForSelector', 'waitForFunction', 'waitForLoadState', 'waitForTimeout',
  'goto', 'title', 'content', 'evaluate', '$eval', '$$eval', 'url', 'name',
] as const;

/** Asynchronous calls: one round trip to the host each. */
export const CALLS: Readonly<Record<Kind, readonly string[]>> = {
  Page: [
    ...SELECTOR_CALLS.filter((m) => m !== 'name'), 'reload', 'goBack', 'goForward', 'bringToFront', 'close', 'isClosed',
    'frames', 'mainFrame', 'frame', 'opener', 'waitForEvent', 'cookies', 'setViewportSize',
    'keyboard.press', 'keyboard.type', 'keyboard.down', 'keyboard.up', 'keyboard.insertText',
    'mouse.click', 'mouse.dblclick', 'mouse.move', 'mouse.down', 'mouse.up', 'mouse.wheel',
  ],
  Frame: [...SELECTOR_CALLS, 'childFrames', 'parentFrame', 'isDetached'],
  Locator: [
    'click', 'dblclick', 'fill', 'clear', 'pressSequentially', 'press', 'check', 'uncheck', 'setChecked', 'selectOption', 'selectText',
    'hover', 'focus', 'blur', 'tap', 'dispatchEvent', 'scrollIntoViewIfNeeded', 'waitFor',
    'textContent', 'innerText', 'innerHTML', 'inputValue', 'getAttribute', 'allTextContents', 'allInnerTexts', 'count', 'boundingBox',
    'isVisible', 'isHidden', 'isEnabled', 'isDisabled', 'isChecked', 'isEditable', 'evaluate', 'evaluateAll',
  ],
  FrameLocator: [],
  Dialog: ['accept', 'dismiss'],
  Download: ['failure', 'save', 'cancel'],
  Helpers: ['log', 'screenshot', 'fillSecret', 'fillTotp', 'extract', 'setResult', 'handoff', 'solveCaptcha', 'fetch', 'expectDownload', 'saveDownload', 'forgetDownload', 'detectBlocker'],
};

/**
 * Where Playwright itself would evaluate a URL pattern in the process that calls it — a glob string (compiled to a
 * backtracking JS RegExp by playwright-core's `urlMatches`/`globToRegexPattern`), a RegExp, a URLPattern or a
 * predicate: on the page API, `waitForURL` (Page, Frame: on the current URL and every navigation) and
 * `page.frame({ url })` (every frame's URL). Called in the worker, a script's pattern would run on the worker's event
 * loop — `…/**a**a**a**a**a**a**a**b` against a 60-character URL backtracks for half a minute, and every job on the
 * worker stalls with it. So the host never serves them with a pattern: the child implements these methods itself
 * (child.ts, url-match.ts) and matches in its own process, within its own CPU limit, against URLs the host reports
 * (`navigations` below, frame URLs in `frames()`); the host's `frame` takes a name only. The rest of Playwright's
 * URL-pattern methods (`route`, `waitForRequest`, `waitForResponse`, `waitForNavigation`, `waitForEvent` predicates,
 * `clearCookies({ name: RegExp })`, `routeFromHAR`) are not on the page API at all, and `waitForEvent` here takes no
 * predicate.
 *
 * Regular expressions that Playwright serialises instead — `getBy*` text, `filter`/`locator` `{ hasText,
 * hasNotText }`, evaluate arguments — run in the page (Chromium's renderer), not in the worker: host.ts hands
 * Playwright a stand-in with the source and flags and no way to run it.
 */
export const MATCHED_IN_CHILD: Readonly<Record<'Page' | 'Frame', readonly string[]>> = { Page: ['waitForURL', 'frame'], Frame: ['waitForURL'] };

/**
 * Calls only the child's own code makes (not methods of the facades): `navigations(afterSeq, timeoutMs?)` reports the
 * URLs a page's main frame or a frame committed since `afterSeq` (a negative `afterSeq`: its URL now), waiting for
 * the next one when there is none — the host counts and keeps URLs, the child matches them (waitForURL).
 */
export const CHILD_ONLY_CALLS: Readonly<Partial<Record<Kind, readonly string[]>>> = { Page: ['navigations'], Frame: ['navigations'] };

/**
 * Calls that take a function, and its argument's position: the function is sent as its source text and runs in the
 * page, never in the worker.
 */
export const FUNCTION_ARG: Readonly<Record<string, number>> = { evaluate: 0, evaluateAll: 0, waitForFunction: 0, $eval: 1, $$eval: 1 };
export const takesFunction = (method: string, index: number): boolean => Object.hasOwn(FUNCTION_ARG, method) && FUNCTION_ARG[method] === index;

/** Events a script may listen to with page.on/once/off; each delivers a handle. */
export const PAGE_EVENTS: Readonly<Record<string, 'Dialog' | 'Page' | 'Download'>> = { dialog: 'Dialog', popup: 'Page', download: 'Download' };

/** Events `page.waitForEvent` may wait for, and what each resolves to (null: nothing). */
export const WAITABLE_EVENTS: Readonly<Record<string, 'Dialog' | 'Page' | 'Download' | null>> = {
  ...PAGE_EVENTS, load: null, domcontentloaded: null, close: null,
};
