/**
 * The worker's side of the live configuration (src/shared/live-config.ts, docs/configuration.md "Live
 * configuration"): the document in keys.workerConfig, read at start, again at once when keys.workerConfigChanged
 * announces a write, and every `pollMs` whatever happens (a missed announcement, a reconnect, a document edited by
 * hand: all converge within one poll). The worker asks it at each decision — before each take (maxJobs), when a job
 * fails (retries), when a job passes its provider's gate (breaker threshold), when a job attempt starts (feature
 * flags) — so a change applies to the next decision, never half: one document is swapped in whole.
 *
 * A document that does not validate is ignored: the worker keeps its last good configuration, says so once per
 * bad document in its log and counts it (sri_worker_config_rejected_total). A missing key means the environment's
 * values. Redis trouble keeps what the worker has. Nothing here ever throws into the worker.
 */
import type { Redis } from 'ioredis';
import { Counter, Gauge } from 'prom-client';
import { keys } from '../shared/keys.ts';
import type { Logger } from '../shared/logger.ts';
import {
  breakerBlockerKindsFor, breakerThresholdFor, effectiveFeatures, effectiveMaxJobs, effectiveRetry, EMPTY_LIVE_CONFIG, parseLiveConfigDocument,
  type LiveConfig, type LiveDefaults, type RetryPolicy, type WorkerFeatures,
} from '../shared/live-config.ts';
import type { Registry } from '../shared/metrics/registry.ts';
import type { ProviderPacing } from '../shared/provider-pacing.ts';
import type { BlockerKind } from '../shared/schemas.ts';
import type { WorkerConfig } from './config.ts';

/** How often the document is read even without an announcement. @default 5000 */
export const DEFAULT_LIVE_CONFIG_POLL_MS = 5000;

/** The environment's values, which the live document overrides (and, for maxJobs, may not exceed). */
export function liveDefaultsOf(config: WorkerConfig): LiveDefaults {
  return { maxJobs: config.maxJobs, maxAttempts: config.maxAttempts, backoffBaseMs: config.retryBaseMs, backoffMaxMs: config.retryMaxMs };
}

export interface LiveConfigWatcherOptions {
  /** Reads the key (used, not closed). */
  readonly redis: Redis;
  /** A connection in subscriber mode (the worker's control channel), used, not closed. */
  readonly subscriber: Redis;
  readonly logger: Logger;
  readonly defaults: LiveDefaults;
  /** @default DEFAULT_LIVE_CONFIG_POLL_MS */
  readonly pollMs?: number;
  /** Where sri_worker_config_version and sri_worker_config_rejected_total go. @default none */
  readonly registry?: Registry;
  /** Told after a new version is in force (the worker wakes its poll loop: a raised maxJobs takes jobs at once). */
  readonly onChange?: (version: number) => void;
}

export class LiveConfigWatcher {
  private config: LiveConfig = EMPTY_LIVE_CONFIG;
  private currentVersion = 0;
  /** The raw text of the last refused document, so one bad document is said once, not at every poll. */
  private lastRefused: string | undefined;
  /** The raw text in force (null: no document, the environment's values). */
  private appliedRaw: string | null = null;
  private timer: NodeJS.Timeout | undefined;
  private reading: Promise<void> | undefined;
  private again = false;
  private stopped = false;
  private readonly rejected: Counter | undefined;
  private readonly onMessage = (channel: string) => {
    if (channel === keys.workerConfigChanged) this.refresh();
  };
  private readonly onReady = () => this.refresh();

  constructor(private readonly opts: LiveConfigWatcherOptions) {
    if (opts.registry) {
      const registers = [opts.registry];
      const version = () => this.currentVersion;
      new Gauge({
        name: 'sri_worker_config_version', help: 'Version of the live configuration (sri:worker-config) this worker applies; 0: none written, the environment\'s values.',
        registers, collect() { this.set(version()); },
      });
      this.rejected = new Counter({ name: 'sri_worker_config_rejected_total', help: 'Live configuration documents this worker read and ignored as invalid (it kept its last good one).', registers });
    }
  }

  /** Reads the document once and follows its announcements; resolves when the first read is done (or failed). */
  async start(): Promise<void> {
    this.opts.subscriber.on('message', this.onMessage);
    // ioredis resubscribes after a reconnect; what was announced meanwhile is read here.
    this.opts.subscriber.on('ready', this.onReady);
    await this.opts.subscriber.subscribe(keys.workerConfigChanged);
    this.refresh();
    await this.reading;
    this.timer = setInterval(() => this.refresh(), this.opts.pollMs ?? DEFAULT_LIVE_CONFIG_POLL_MS);
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
    this.opts.subscriber.off('message', this.onMessage);
    this.opts.subscriber.off('ready', this.onReady);
  }

  /** The version in force; 0 when none was ever read. */
  version(): number {
    return this.currentVersion;
  }

  /** Jobs at once now: the live value, held at WORKER_MAX_JOBS. */
  maxJobs(): number {
    return effectiveMaxJobs(this.config, this.opts.defaults);
  }

  /** The retry policy of a provider's jobs now (a job's own maxAttempts still wins over it). */
  retryFor(providerName: string): RetryPolicy {
    return effectiveRetry(this.config, providerName, this.opts.defaults);
  }

  /** The feature flags of a provider's jobs now (an attempt reads them once, at its start). */
  featuresFor(providerName: string): WorkerFeatures {
    return effectiveFeatures(this.config, providerName);
  }

  /** Blocker kinds that count as failures in the provider's circuit breaker now (breaker.blockerKinds). */
  breakerBlockerKinds(providerName: string): readonly BlockerKind[] {
    return breakerBlockerKindsFor(this.config, providerName);
  }

  /** The provider's pacing with the live breaker threshold, when the pacing has a breaker and the document sets one. */
  pacingFor(providerName: string, pacing: ProviderPacing): ProviderPacing {
    const threshold = breakerThresholdFor(this.config, providerName);
    if (!pacing.breaker || threshold === undefined) return pacing;
    return { ...pacing, breaker: { ...pacing.breaker, failureThreshold: threshold } };
  }

  /** Reads the document now; reads overlapping one under way are folded into one more read after it. */
  refresh(): void {
    if (this.stopped) return;
    if (this.reading) {
      this.again = true;
      return;
    }
    this.reading = this.read().finally(() => {
      this.reading = undefined;
      if (this.again) {
        this.again = false;
        this.refresh();
      }
    });
  }

  private async read(): Promise<void> {
    let raw: string | null;
    try {
      raw = await this.opts.redis.get(keys.workerConfig);
    } catch (e) {
      // Redis away: keep what we have; the next poll or the reconnect reads again.
      this.opts.logger.debug({ err: (e as Error).message }, 'could not read the live configuration; keeping the one in force');
      return;
    }
    const read = parseLiveConfigDocument(raw);
    if (read.state === 'invalid') {
      if (raw !== this.lastRefused) {
        this.lastRefused = raw ?? undefined;
        this.rejected?.inc();
        this.opts.logger.error({ key: keys.workerConfig, storedVersion: read.version, problem: read.problem, versionInForce: this.currentVersion },
          'the live configuration in Redis is invalid and was ignored; the worker keeps its last good configuration (write it through PUT /api/operator/worker-config or sri config set)');
      }
      return;
    }
    this.lastRefused = undefined;
    // Compared as text: a document edited by hand without a new version is applied too.
    if (raw === this.appliedRaw) return;
    this.appliedRaw = raw;
    const version = read.state === 'absent' ? 0 : read.document.version;
    this.config = read.state === 'absent' ? EMPTY_LIVE_CONFIG : read.document.config;
    const before = this.currentVersion;
    this.currentVersion = version;
    const retry = this.retryFor('');
    this.opts.logger.info({ workerConfigVersion: version, from: before, maxJobs: this.maxJobs(), retry, providers: Object.keys(this.config.providers).length },
      version === 0 ? 'live configuration removed; the environment\'s values apply' : 'live configuration applied');
    this.opts.onChange?.(version);
  }
}
