/**
 * `sri parse sri FILE…`: runs the SRI parser (src/sri/parse.ts) on XML files — bare documents, `<autorizacion>`
 * wrappers or the authorisation service's SOAP answers — and prints one JSON object per document: one per line, or a
 * JSON array with --json. A file that cannot be read or is not an SRI document is reported on stderr as
 * `error SRI_XML_INVALID: file: why` (or `error: file: cannot be read (ENOENT)`); the others are still printed, and the exit code is 1.
 */
import { readFile } from 'node:fs/promises';
import { Argument, type Command } from 'commander';
import { isSriError } from '../shared/errors.ts';
import type { CliIo } from './queue-ops.ts';

/** The parsers `sri parse` knows (the provider whose documents they read). */
export const PARSERS = ['sri'] as const;

export function addParseCommand(program: Command, io?: CliIo): void {
  program.command('parse')
    .description('parse documents a portal gave (sri: the SRI\'s electronic documents) and print them as JSON')
    .addArgument(new Argument('<parser>', 'which parser').choices(PARSERS))
    .argument('<files...>', 'XML files: bare documents, <autorizacion> wrappers or SOAP answers')
    .option('--json', 'print one JSON array instead of one object per line')
    .action(async (_parser: string, files: string[], opts: { json?: boolean }) => {
      const out = io?.out ?? ((t: string) => console.log(t));
      const err = io?.err ?? ((t: string) => process.stderr.write(`${t}\n`));
      const { parseSriDocument } = await import('../sri/parse.ts');
      const docs = [];
      let failed = 0;
      for (const file of files) {
        try {
          const doc = parseSriDocument(await readFile(file, 'utf8'), file);
          if (opts.json) docs.push(doc);
          else out(JSON.stringify(doc));
        } catch (e) {
          failed++;
          if (isSriError(e)) err(`error ${e.code}: ${e.message}`);
          else err(`error: ${file}: cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
        }
      }
      if (opts.json) out(JSON.stringify(docs, null, 2));
      if (failed > 0) process.exitCode = 1;
    });
}
