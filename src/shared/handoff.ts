/**
 * The hand-off contract (docs/dashboard.md "Hand-off", docs/redis-keys.md): a job that waits for a person —
 * status `waiting_for_user` — keeps its browser open while the worker streams the page's screencast into Redis and
 * replays the person's input from Redis. The worker talks only to Redis; the API relays both ways. Three keys per job:
 *   - `sri:job:{jobId}:handoff` (string, TTL): the waiting state as JSON (HandoffState), written by the worker when
 *     the wait starts and deleted when it ends. The API serves the live view and takes input only while it exists.
 *   - `sri:job:{jobId}:live:frames` (stream, `MAXLEN` FRAMES_MAXLEN, TTL): one entry per screencast frame, fields of
 *     FrameFields; viewers read the newest.
 *   - `sri:job:{jobId}:live:input` (list, TTL): input events as JSON (HandoffInput), pushed by the API (RPUSH), taken
 *     in order by the worker (BLPOP); `done` and `giveUp` travel the same way, so they come after the input before them.
 * Both planes validate what they read with the schemas here.
 */
import { z } from 'zod';

/** Frames kept per job (exact MAXLEN: `~` would keep a whole radix node, ~100 frames): a viewer needs the newest. */
export const FRAMES_MAXLEN = 8;
/** Input events kept per job at most (the API refuses more): a person's clicks, not a flood. */
export const INPUT_MAXLEN = 500;
/** Seconds the live keys outlive their last write when the worker cannot remove them (it died). */
export const LIVE_KEYS_TTL_SECONDS = 120;
/** Longest hand-off a step or helper may ask for (ms); WORKER_HANDOFF_MAX_MS may lower it. */
export const HANDOFF_MAX_TIMEOUT_MS = 24 * 3600 * 1000;
/** A hand-off that names no timeout waits this long (ms), bounded by WORKER_HANDOFF_MAX_MS. */
export const HANDOFF_DEFAULT_TIMEOUT_MS = 5 * 60 * 1000;

/** Why the job waits, as the step or the worker said it: shown to the person. */
export const HandoffReason = z.string().min(1).max(500);

/** What the API reads while a job waits (keys.jobHandoff). */
export const HandoffState = z.object({
  jobId: z.string(),
  orgId: z.string(),
  reason: HandoffReason,
  /** `script` (step or helper), `captcha` / `otp` (the worker's detector, requestHandoff). */
  source: z.enum(['script', 'captcha', 'otp']),
  startedAt: z.number().int(),
  /** Epoch ms: no answer by then fails the job with HANDOFF_TIMEOUT. */
  expiresAt: z.number().int(),
  attempt: z.number().int(),
  workerId: z.string(),
  /** The page's viewport in CSS pixels: input coordinates are in this space. */
  viewport: z.object({ width: z.number().int().positive(), height: z.number().int().positive() }),
});
export type HandoffState = z.infer<typeof HandoffState>;

const Coord = z.number().finite().min(0).max(100_000);
/**
 * Playwright key names (`Enter`, `Tab`, `ArrowLeft`, `Control+a`, `a`): letters, digits and `+`, or one printable
 * character. Anything else is refused before it reaches the worker.
 */
const KeyName = z.string().min(1).max(40).regex(/^(?:[A-Za-z0-9]+(?:\+[A-Za-z0-9]+)*|[^\p{Cc}])$/u, 'must be a key name such as Enter, Tab, ArrowDown, Control+a or one character');

/** One input event from the person (POST /api/jobs/{id}/live/input), coordinates in the page's CSS pixels. */
export const HandoffInput = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('click'), x: Coord, y: Coord, button: z.enum(['left', 'right', 'middle']).optional(), clickCount: z.number().int().min(1).max(3).optional() }),
  z.strictObject({ type: z.literal('type'), text: z.string().min(1).max(1000) }),
  z.strictObject({ type: z.literal('key'), key: KeyName }),
  z.strictObject({ type: z.literal('scroll'), x: Coord, y: Coord, deltaX: z.number().finite().min(-10_000).max(10_000), deltaY: z.number().finite().min(-10_000).max(10_000) }),
]);
export type HandoffInput = z.infer<typeof HandoffInput>;

/** The person's answer (POST /api/jobs/{id}/handoff). */
export const HandoffAnswer = z.enum(['done', 'giveUp']);
export type HandoffAnswer = z.infer<typeof HandoffAnswer>;

/** What travels on the input list: an input event, or the answer that ends the wait. */
export const InputListEntry = z.union([HandoffInput, z.strictObject({ type: z.literal('answer'), answer: HandoffAnswer })]);
export type InputListEntry = z.infer<typeof InputListEntry>;

/**
 * The fields of one frame entry: the JPEG as base64, the page viewport it shows (CSS pixels: what input coordinates
 * are in), and when Chromium painted it (epoch ms).
 */
export interface FrameFields { data: string; viewportWidth: number; viewportHeight: number; at: number }

/** A frame entry's flat field list (`[field, value, …]`) as FrameFields; undefined when it is not one. */
export function parseFrameEntry(fields: readonly string[]): FrameFields | undefined {
  const m = new Map<string, string>();
  for (let i = 0; i + 1 < fields.length; i += 2) m.set(fields[i]!, fields[i + 1]!);
  const data = m.get('data');
  const nums = ['viewportWidth', 'viewportHeight', 'at'].map((k) => Number(m.get(k)));
  if (!data || nums.some((n) => !Number.isFinite(n))) return undefined;
  const [viewportWidth, viewportHeight, at] = nums as [number, number, number];
  return { data, viewportWidth, viewportHeight, at };
}
