/**
 * Runs a script with node:vm in a fresh context that holds only the module holder; eval and `new Function` are
 * switched off inside it. node:vm is NOT a security boundary: the objects the script receives (page, helpers)
 * come from the worker's realm, and their constructors lead back to it. That is acceptable only because every
 * script has passed hash and signature checks first (VerifiedScript); issue 4 replaces this runner with an
 * isolated one behind the same ScriptRunner interface. Timeouts: vm's `timeout` bounds the synchronous parts
 * (top level, and the entry call up to its first await); the pipeline bounds the whole run by closing the browser
 * context, which makes every pending page call fail.
 */
import vm from 'node:vm';
import { SriError } from '../../shared/errors.ts';
import { MODULE_HOLDER, rewriteModule } from './module-rewrite.ts';
import type { ScriptArgs, ScriptRunner, ScriptRunOptions } from './runner.ts';
import type { VerifiedScript } from './verified-script.ts';

interface ModuleHolder { default?: unknown; args?: ScriptArgs }

function isTimeout(e: unknown): boolean {
  return (e as { code?: string } | null)?.code === 'ERR_SCRIPT_EXECUTION_TIMEOUT';
}

export class VmScriptRunner implements ScriptRunner {
  readonly name = 'node-vm';

  async run(script: VerifiedScript, args: ScriptArgs, opts: ScriptRunOptions): Promise<void> {
    const code = rewriteModule(script.text);
    const holder: ModuleHolder = Object.create(null) as ModuleHolder;
    const sandbox = vm.createContext({ [MODULE_HOLDER]: holder }, {
      name: opts.filename,
      codeGeneration: { strings: false, wasm: false },
    });

    // V8 gives every context an inspector `console`; the script logs through helpers.log, nothing else.
    vm.runInContext('delete globalThis.console', sandbox);

    let compiled: vm.Script;
    try {
      compiled = new vm.Script(code, { filename: opts.filename });
    } catch (e) {
      throw new SriError('SCRIPT_INVALID', `The script does not compile: ${(e as Error).message}`);
    }
    this.runSync(() => compiled.runInContext(sandbox, { timeout: opts.timeoutMs, breakOnSigint: false }), opts.timeoutMs);
    if (typeof holder.default !== 'function') {
      throw new SriError('SCRIPT_INVALID', 'The script\'s default export is not a function; export default async function run({ page, payload, helpers, context }) { ... }.');
    }
    if (opts.signal.aborted) return;

    holder.args = Object.freeze({ page: args.page, payload: args.payload, helpers: args.helpers, context: args.context });
    // Called inside the context so vm's timeout also bounds the entry function's synchronous start.
    const entry = new vm.Script(`${MODULE_HOLDER}.default(${MODULE_HOLDER}.args)`, { filename: `${opts.filename}#entry` });
    const result = this.runSync(() => entry.runInContext(sandbox, { timeout: opts.timeoutMs }), opts.timeoutMs) as unknown;
    await result;
  }

  private runSync<T>(fn: () => T, timeoutMs: number): T {
    try {
      return fn();
    } catch (e) {
      if (isTimeout(e)) throw new SriError('EXECUTION_TIMEOUT', `Execution timed out after ${timeoutMs} ms`);
      throw e;
    }
  }
}
