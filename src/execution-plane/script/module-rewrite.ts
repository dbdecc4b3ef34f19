/**
 * Turns a script of the contract's shape (an ES module with one `export default`) into classic script text that
 * assigns the default export to a holder object, so it can run as a `vm.Script` in a context of its own. Module
 * loading is not offered at all: `import` statements, `import()` and `import.meta` are refused up front.
 *
 * The checks read the source text, not a parse tree: a string literal that contains `export default` or a line
 * starting with `import` counts too. Compiled flows embed user values with JSON.stringify on one line, so such a
 * value never starts a line; a hand-written script that trips this can rephrase the string.
 */
import { SriError } from '../../shared/errors.ts';

/** The global the rewritten script assigns its default export to. */
export const MODULE_HOLDER = '__sriModule';

const EXPORT_DEFAULT = /\bexport\s+default\b/g;
const STATIC_IMPORT = /^\s*import\s*(?:[\w$*{'"]|$)/m;
const DYNAMIC_IMPORT = /\bimport\s*(?:\(|\.\s*meta\b)/;

export function rewriteModule(source: string): string {
  if (STATIC_IMPORT.test(source) || DYNAMIC_IMPORT.test(source)) {
    throw new SriError('SCRIPT_INVALID', 'Scripts cannot import modules: remove every import; the script gets page, payload, helpers and context as its argument.');
  }
  const exports = source.match(EXPORT_DEFAULT)?.length ?? 0;
  if (exports !== 1) {
    throw new SriError('SCRIPT_INVALID', exports === 0
      ? 'The script has no `export default`; it must be `export default async function run({ page, payload, helpers, context }) { ... }`.'
      : `The script has ${exports} \`export default\` statements; it must have exactly one.`);
  }
  return source.replace(EXPORT_DEFAULT, `${MODULE_HOLDER}.default =`);
}
