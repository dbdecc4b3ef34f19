/**
 * Recordings of a job's page (docs/scripts.md "Recordings"): a Playwright trace (trace.zip) and a video (video.webm),
 * when the job's message asks for them (`record`: `onFailure` or `always`; absent or `none`: nothing here runs).
 *
 * - The video needs `recordVideo` when the context is created, so a recording job does not take its slot's warm
 *   context: BrowserPool.reserve opens one for it with the same preparation (egress lease, host guard, service
 *   workers blocked) and `recordVideo` into a private temporary folder, at most VIDEO_SIZE.
 * - Tracing starts after the session's cookies are loaded and before the script (and the provider's login flow) runs,
 *   and stops before the worker reads the context's cookies back: neither cookie call is in the trace.
 * - `onFailure` and the job succeeded: tracing stops without saving, the video is deleted, nothing is stored.
 * - A context closed while tracing (timeout, cancel, crash, byte budget): the trace is saved first (bounded), and the
 *   job counts as failed.
 * - Kept files: the trace cleaned (trace-zip.ts: cookies, request bodies, stacks and secrets out), each file at most
 *   WORKER_MAX_RECORDING_BYTES (over it: not stored, said in execution.log), stored under the job's results prefix
 *   and listed in the result (`artifacts`, kinds `trace` and `video`). Storing one is best effort: a failure is
 *   logged and does not fail the job. The temporary folder is removed in every outcome, once the context closed.
 */
import { createReadStream } from 'node:fs';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { storeHashed } from './store-hashed.ts';
import type { BrowserContext } from 'playwright-core';
import type { BrowserPool, PreparedContext } from '../browser.ts';
import type { JobMessage, RecordMode, ResultArtifact } from '../../shared/schemas.ts';
import { boundWait } from './deadline.ts';
import type { ExecutionLog } from './execution-log.ts';
import type { EvidenceStore, JobArtifacts } from './helpers.ts';
import { cleanTrace } from './trace-zip.ts';

/** The largest video frame: the job page's default viewport. Playwright scales the page down into it. */
export const VIDEO_SIZE = { width: 1280, height: 720 } as const;
/** Longest saving the trace may take when the job ends (ms): the job's outcome is reported after it. */
const TRACE_STOP_MS = 15_000;
/** Longest storing one recording may take: a base, plus a second per MiB. */
const STORE_BASE_MS = 60_000;

/** What a recording needs of the job. */
export interface RecordingDeps {
  readonly browsers: Pick<BrowserPool, 'reserve'>;
  readonly maxBytes: number;
  readonly exec: ExecutionLog;
  readonly artifacts: JobArtifacts;
  readonly store: EvidenceStore;
  /** The job's redactor (its secrets and cookie values): applied to every string of the trace. */
  readonly redact: (text: string) => string;
}

const recordings = new WeakMap<BrowserContext, JobRecording>();

/** The recording of a job's context, if its job asked for one. */
export function recordingOf(context: BrowserContext): JobRecording | undefined {
  return recordings.get(context);
}

/**
 * The job's context: a prepared one (BrowserPool.reserve) when the job asks for no recording (or `allowed`, the live
 * feature flag, is false); else one opened for it
 * with `recordVideo`, whose recording `recordingOf(context)` returns. Without ffmpeg (Playwright's video encoder) the
 * job gets a warm context and a trace only, and execution.log says why.
 */
export async function reserveContext(job: JobMessage, allowed: boolean, deps: RecordingDeps): Promise<PreparedContext> {
  const mode: RecordMode = job.record ?? 'none';
  if (mode !== 'none' && !allowed) deps.exec.warn(`recording: the job asks for one (record: ${mode}), but recordings are switched off by the live configuration (features.recordings); none is made`);
  if (mode === 'none' || !allowed) return deps.browsers.reserve();
  const dir = await mkdtemp(join(tmpdir(), 'sri-record-'));
  let reserved: PreparedContext;
  let video = true;
  try {
    try {
      reserved = await deps.browsers.reserve({ recordVideo: { dir, size: VIDEO_SIZE } });
    } catch (e) {
      if (!/ffmpeg/i.test((e as Error).message)) throw e;
      video = false;
      deps.exec.warn('recording: no video — ffmpeg is not installed where Playwright looks for it (npx playwright install ffmpeg; docs/scripts.md "Recordings"); the trace is kept');
      reserved = await deps.browsers.reserve();
    }
  } catch (e) {
    await rm(dir, { recursive: true, force: true });
    throw e;
  }
  recordings.set(reserved.context, new JobRecording(mode, dir, video, reserved, deps));
  return reserved;
}

type TraceState = 'off' | 'tracing' | 'saved' | 'discarded';

export class JobRecording {
  private trace: TraceState = 'off';
  private failedRun = false;
  private stopping: Promise<void> | undefined;
  private readonly tracePath: string;

  constructor(
    readonly mode: Exclude<RecordMode, 'none'>, private readonly dir: string, private readonly video: boolean,
    private readonly reserved: PreparedContext, private readonly deps: RecordingDeps,
  ) {
    this.tracePath = join(dir, 'trace-raw.zip');
    const context = reserved.context;
    // Every way the job's context is closed (the job's end, a timeout, a cancel, a crash, the byte budget) saves a
    // trace still running first: a trace cannot be saved from a closed context, and those are the failures a
    // recording is for. Wrapping the instance's close catches the closes the pipeline makes in several places.
    const close = context.close.bind(context);
    context.close = async (options) => {
      if (this.trace === 'tracing') {
        this.failedRun = true;
        await this.stop();
      }
      return close(options);
    };
    // Once the context is closed its video is complete: store what is kept, then remove the folder. The pipeline
    // waits for `artifacts.storing` before it lists the job's evidence.
    context.once('close', () => {
      const finishing = this.finish();
      deps.artifacts.storing.add(finishing);
      void finishing.finally(() => deps.artifacts.storing.delete(finishing));
    });
  }

  private get keep(): boolean {
    return this.mode === 'always' || this.failedRun;
  }

  /** Starts tracing: screenshots and DOM snapshots, no sources. A failure is logged; the job runs without a trace. */
  async start(): Promise<void> {
    try {
      await this.reserved.context.tracing.start({ screenshots: true, snapshots: true, sources: false });
      this.trace = 'tracing';
      this.deps.exec.info(`recording: trace${this.video ? ' and video' : ''} (${this.mode === 'always' ? 'kept on every outcome' : 'kept if the job fails'})`);
    } catch (e) {
      this.deps.exec.warn(`recording: the trace could not start: ${this.deps.redact(firstLine(e))}`);
    }
  }

  /** The job failed (its script, or the session check before it): what is recorded is kept with `onFailure`. */
  failed(): void {
    this.failedRun = true;
  }

  /** Stops tracing: saved to the private folder when it is to be kept, else discarded. At most once. */
  stop(): Promise<void> {
    if (this.trace !== 'tracing') return this.stopping ?? Promise.resolve();
    this.trace = this.keep ? 'saved' : 'discarded';
    const tracing = this.reserved.context.tracing;
    this.stopping = boundWait(this.keep ? tracing.stop({ path: this.tracePath }) : tracing.stop(), TRACE_STOP_MS, 'saving the trace')
      .catch((e: unknown) => {
        if (this.trace === 'saved') this.deps.exec.warn(`recording: the trace could not be saved: ${this.deps.redact(firstLine(e))}`);
        this.trace = 'discarded';
      });
    return this.stopping;
  }

  /** After the context closed: stores what is kept, removes the folder. Never throws. */
  private async finish(): Promise<void> {
    try {
      await this.stopping;
      if (!this.keep) return;
      if (this.trace === 'saved') await this.storeTrace();
      if (this.video) await this.storeVideo();
    } catch (e) {
      this.deps.exec.warn(`recording: ${this.deps.redact(firstLine(e))}`);
    } finally {
      await rm(this.dir, { recursive: true, force: true }).catch(() => {});
    }
  }

  private overLimit(name: string, bytes: number): boolean {
    if (bytes <= this.deps.maxBytes) return false;
    this.deps.exec.warn(`recording: ${name} is ${bytes} bytes, over WORKER_MAX_RECORDING_BYTES (${this.deps.maxBytes}); it was not stored`);
    return true;
  }

  private async storeTrace(): Promise<void> {
    const size = (await stat(this.tracePath).catch(() => undefined))?.size;
    if (size === undefined) return;
    if (this.overLimit('trace.zip', size)) return;
    let cleaned: Buffer;
    try {
      cleaned = (await cleanTrace(await readFile(this.tracePath), this.deps.redact)).zip;
    } catch (e) {
      this.deps.exec.warn(`recording: the trace could not be cleaned of cookies and secrets, so it was not stored: ${firstLine(e)}`);
      return;
    }
    if (this.overLimit('trace.zip', cleaned.length)) return;
    await this.put('trace.zip', 'trace', Readable.from([cleaned]), cleaned.length, 'application/zip');
  }

  private async storeVideo(): Promise<void> {
    // The job's page: its video (popups have their own, not kept). Complete once the context is closed.
    const path = await this.reserved.page.video()?.path().catch(() => undefined);
    const size = path === undefined ? undefined : (await stat(path).catch(() => undefined))?.size;
    if (path === undefined || !size) {
      this.deps.exec.warn('recording: the page left no video');
      return;
    }
    if (this.overLimit('video.webm', size)) return;
    await this.put('video.webm', 'video', createReadStream(path), size, 'video/webm');
  }

  /** Streams `source` to the job's prefix, hashing it on the way, and lists it with the job's evidence. */
  private async put(name: string, kind: ResultArtifact['kind'], source: Readable, size: number, contentType: string): Promise<void> {
    const signal = AbortSignal.timeout(STORE_BASE_MS + Math.ceil(size / (1024 * 1024)) * 1000);
    try {
      const { uri, bytes, sha256 } = await storeHashed(source, (body, sig) => this.deps.store.put(name, body, contentType, sig), signal);
      this.deps.artifacts.recordings.push({ name, kind, uri, bytes, sha256, contentType });
      this.deps.exec.info(`recording: ${name} stored (${bytes} bytes)`);
    } catch (e) {
      this.deps.exec.warn(`recording: storing ${name} failed: ${firstLine(e)}`);
    }
  }

}

function firstLine(e: unknown): string {
  const m = (e as { message?: unknown } | null)?.message;
  return (typeof m === 'string' ? m : String(e)).split('\n')[0] ?? '';
}
