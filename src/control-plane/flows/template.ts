/**
 * Templates in step values (docs/scripts.md "Templates"): `{{metadata.NAME}}` is the job's metadata field NAME,
 * `{{row.NAME}}` a field the enclosing `forEach {fields}` read from its row, `{{index}}` the 1-based number of a
 * `downloadAll` file. Nothing else: every `{{` in a templated value must start one of these, so a typo is a compile
 * error, not a literal `{{metadata.mnth}}` typed into a portal (a lone `}}` is text: JSON bodies end objects so). A template is compiled to a JS expression of
 * string literals (`lit`) and calls of fixed helper functions with literal names — never to code built from its text.
 */

/** A piece of a parsed template: literal text, or a variable. */
export type TemplatePart = string | { readonly ns: 'metadata' | 'row' | 'index'; readonly name: string };

export interface TemplateScope {
  /** Fields `{{row.NAME}}` may name (of the innermost forEach with fields); undefined: no row here. */
  readonly rowFields?: ReadonlySet<string>;
  /** Whether `{{index}}` is meaningful (downloadAll's saveAs). */
  readonly index?: boolean;
}

const NAME = '[A-Za-z][A-Za-z0-9_-]{0,63}';
const VARIABLE = new RegExp(`\\{\\{\\s*(?:(metadata|row)\\.(${NAME})|(index))\\s*\\}\\}`, 'g');

/** Parses `text`; throws an Error whose message says what is wrong (the compiler prefixes the step). */
export function parseTemplate(text: string, scope: TemplateScope): TemplatePart[] {
  const parts: TemplatePart[] = [];
  let last = 0;
  const literal = (s: string) => {
    if (s.includes('{{')) {
      throw new Error(`"${s.slice(s.indexOf('{{'), s.indexOf('{{') + 40)}" is not a template: use {{metadata.NAME}}${scope.rowFields ? ', {{row.NAME}}' : ''}${scope.index ? ', {{index}}' : ''}`);
    }
    if (s) parts.push(s);
  };
  for (const m of text.matchAll(VARIABLE)) {
    literal(text.slice(last, m.index));
    last = m.index + m[0].length;
    if (m[3] === 'index') {
      if (!scope.index) throw new Error('{{index}} is only available in downloadAll\'s saveAs');
      parts.push({ ns: 'index', name: 'index' });
    } else if (m[1] === 'row') {
      if (!scope.rowFields) throw new Error(`{{row.${m[2]!}}} is only available inside a forEach with fields`);
      if (!scope.rowFields.has(m[2]!)) throw new Error(`{{row.${m[2]!}}}: the enclosing forEach reads no field "${m[2]!}" (its fields: ${[...scope.rowFields].join(', ') || 'none'})`);
      parts.push({ ns: 'row', name: m[2]! });
    } else {
      parts.push({ ns: 'metadata', name: m[2]! });
    }
  }
  literal(text.slice(last));
  return parts;
}

export const isLiteral = (parts: readonly TemplatePart[]): boolean => parts.every((p) => typeof p === 'string');

/** The text with every variable replaced by `stand` (for the compiler's checks of a templated URL). */
export function sample(parts: readonly TemplatePart[], stand = 'x'): string {
  return parts.map((p) => (typeof p === 'string' ? p : stand)).join('');
}
