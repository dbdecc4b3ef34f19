/**
 * Per-account login lockout (docs/security.md "API hardening"). The per-client rate limit of /api/auth/* is kept in
 * each API process's memory and keyed by address; a password guesser spread over many addresses (or API replicas)
 * passes it. This counts failures per **account** in Redis, shared by every API process: AUTH_LOCKOUT_MAX_FAILURES
 * failures within AUTH_LOCKOUT_WINDOW_MS lock the account for AUTH_LOCKOUT_MS — every login is then refused with
 * ACCOUNT_LOCKED (429, Retry-After), the right password included. A successful login clears the count.
 *
 * The account is the SHA-256 of the normalised e-mail (key names are visible to SCAN; e-mails stay out of them), and
 * an unknown e-mail is counted and locked exactly like a known one, so the lockout tells nothing about which exist.
 * One transition per Lua file: ./lua/recordLoginFailure-2.lua, registered by the platform's one loader
 * (src/shared/lua/scripts.ts) under a versioned name when the lockout is created.
 */
import type { Redis } from 'ioredis';
import { sha256Hex } from '../../shared/enrolment.ts';
import { keys } from '../../shared/keys.ts';
import { registerScripts, type LuaCall, type ScriptArea } from '../../shared/lua/scripts.ts';

/** The lockout's scripts. Bump `version` when one changes behaviour: two releases sharing one Redis keep their own names. */
export const AUTH_SCRIPTS: ScriptArea = Object.freeze({ area: 'auth', version: 1, dir: new URL('./lua/', import.meta.url) });

export interface LockoutOptions {
  /** Failures that lock an account; 0 = no lockout. */
  maxFailures: number;
  windowMs: number;
  lockMs: number;
}

export const accountOf = (email: string) => sha256Hex(email.trim().toLowerCase());

export class LoginLockout {
  private readonly lua: Readonly<Record<string, LuaCall>>;

  constructor(private readonly redis: Redis, private readonly opts: LockoutOptions) {
    this.lua = registerScripts(redis, AUTH_SCRIPTS);
  }

  get enabled(): boolean {
    return this.opts.maxFailures > 0;
  }

  /** Milliseconds the account stays locked; 0 when it is not. */
  async lockedForMs(email: string): Promise<number> {
    if (!this.enabled) return 0;
    return Math.max(0, await this.redis.pttl(keys.authLocked(accountOf(email))));
  }

  /** Counts a failed login; returns the failures of the window and how long the account is now locked (0: not). */
  async recordFailure(email: string): Promise<{ failures: number; lockedForMs: number }> {
    if (!this.enabled) return { failures: 0, lockedForMs: 0 };
    const account = accountOf(email);
    const [failures, lockedForMs] = await this.lua['recordLoginFailure']!(
      [keys.authFailures(account), keys.authLocked(account)], [this.opts.maxFailures, this.opts.windowMs, this.opts.lockMs],
    ) as [number, number];
    return { failures: Number(failures), lockedForMs: Number(lockedForMs) };
  }

  /** A successful login starts the count again. */
  async recordSuccess(email: string): Promise<void> {
    if (!this.enabled) return;
    await this.redis.del(keys.authFailures(accountOf(email)));
  }
}
