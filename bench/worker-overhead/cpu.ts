/**
 * CPU seconds spent by this process and everything it started — a measure of work that does not depend on how
 * loaded the (shared) machine is, unlike elapsed time. Sums, at any moment:
 *
 *   - this process: process.cpuUsage() (all its threads), minus what the meter's own sampling cost;
 *   - its children already reaped: cutime + cstime of /proc/self/stat;
 *   - its live descendants (Chromium's processes, redis-server, sandbox children…), found by walking the ppid tree
 *     of /proc/<pid>/stat: utime + stime + cutime + cstime of each (cutime: the descendants it reaped itself);
 *   - descendants that died without being reaped by a descendant (a bubblewrap sandbox's inner processes are
 *     orphaned when the outer one is killed, and init reaps them): the CPU they had at their last sample. The meter
 *     samples every `intervalMs` while running, so at most one interval of such a process's CPU is missed.
 *
 * Each part is kept per category (by the command name of the process, the Chromium tree by its browser's pid), so
 * a run's CPU can be split into "Chromium", "Node (this process: worker, proxy, S3, portal)", "sandbox children",
 * "redis-server".
 */
import { readdirSync, readFileSync } from 'node:fs';

const TICK_S = 1 / 100; // CLK_TCK is 100 on Linux (getconf CLK_TCK)

interface Proc { pid: number; ppid: number; comm: string; cpuS: number }

function readStat(pid: number | 'self'): Proc | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm is in parentheses and may hold spaces or parentheses: the fields after the last ')' are fixed.
    const close = text.lastIndexOf(')');
    const comm = text.slice(text.indexOf('(') + 1, close);
    const f = text.slice(close + 2).split(' ');
    // After comm: state(0) ppid(1) … utime(11) stime(12) cutime(13) cstime(14)
    const cpuS = (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) * TICK_S;
    return { pid: Number(text.slice(0, text.indexOf(' '))), ppid: Number(f[1]), comm, cpuS };
  } catch {
    return undefined;
  }
}

export type CpuSnapshot = Map<string, number>;

export class CpuMeter {
  /** The last sample of each live descendant, with the category it was counted in. */
  private live = new Map<number, Proc & { category: string }>();
  /** CPU of descendants that vanished without a descendant to reap them, per category. */
  private readonly orphaned = new Map<string, number>();
  /** CPU this process spent sampling (µs), left out of its own figure. */
  private ownCostUs = 0;
  private timer: NodeJS.Timeout | undefined;

  /** `labels`: a category for the process tree under a pid (e.g. the raw side's browser). */
  constructor(private readonly labels: Map<number, string> = new Map(), private readonly intervalMs = 200) {}

  start(): void {
    this.sample();
    this.timer = setInterval(() => this.sample(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** Pids of this process's direct children whose command name matches. */
  static children(comm: RegExp): number[] {
    return readdirSync('/proc').filter((n) => /^\d+$/.test(n)).map((n) => readStat(Number(n)))
      .filter((p): p is Proc => p !== undefined && p.ppid === process.pid && comm.test(p.comm)).map((p) => p.pid);
  }

  label(pid: number, category: string): void {
    this.labels.set(pid, category);
  }

  private readonly kinds = new Map<number, string>();
  /** `category|pid` of every descendant sampled: how many processes of each kind were started. */
  readonly pidsSeen = new Set<string>();

  /** Processes sampled so far, per category. */
  processCounts(): Map<string, number> {
    const out = new Map<string, number>();
    for (const k of this.pidsSeen) {
      const c = k.slice(0, k.lastIndexOf('|'));
      out.set(c, (out.get(c) ?? 0) + 1);
    }
    return out;
  }

  /** A Chromium process's type (`--type=renderer`…; none: the browser process), read once per pid. */
  private chromiumKind(pid: number): string {
    let kind = this.kinds.get(pid);
    if (kind === undefined) {
      let cmd = '';
      try { cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8'); } catch { /* gone */ }
      const type = /--type=([\w-]+)/.exec(cmd)?.[1];
      const sub = /--utility-sub-type=[\w-]+\.mojom\.(\w+)/.exec(cmd)?.[1];
      kind = type ? (sub ? `${type}:${sub}` : type) : 'browser';
      this.kinds.set(pid, kind);
    }
    return kind;
  }

  private category(p: Proc, parents: Map<number, Proc>): string {
    const kind = /chrom/i.test(p.comm) ? ` ${this.chromiumKind(p.pid)}` : '';
    for (let q: Proc | undefined = p; q && q.pid !== process.pid; q = parents.get(q.ppid)) {
      const l = this.labels.get(q.pid);
      if (l) return `${l}${kind}`;
    }
    if (kind) return `chromium${kind}`;
    if (p.comm === 'redis-server') return 'redis-server';
    if (['node', 'bwrap', 'prlimit'].includes(p.comm)) return 'sandbox children';
    return `other (${p.comm})`;
  }

  /** Walks /proc for the descendants of this process and updates what is known of them. */
  private sample(): void {
    const t = process.cpuUsage();
    const all = new Map<number, Proc>();
    for (const name of readdirSync('/proc')) {
      if (!/^\d+$/.test(name)) continue;
      const p = readStat(Number(name));
      if (p) all.set(p.pid, p);
    }
    const children = new Map<number, Proc[]>();
    for (const p of all.values()) children.set(p.ppid, [...(children.get(p.ppid) ?? []), p]);
    const next = new Map<number, Proc & { category: string }>();
    const walk = (pid: number) => {
      for (const c of children.get(pid) ?? []) {
        next.set(c.pid, { ...c, category: this.category(c, all) });
        walk(c.pid);
      }
    };
    walk(process.pid);
    for (const p of next.values()) this.pidsSeen.add(`${p.category}|${p.pid}`);
    // A descendant gone whose parent is gone too (or no longer ours) was reaped outside the tree: keep its CPU.
    for (const [pid, p] of this.live) {
      if (next.has(pid)) continue;
      const parentStillOurs = p.ppid === process.pid || next.has(p.ppid);
      if (!parentStillOurs) this.orphaned.set(p.category, (this.orphaned.get(p.category) ?? 0) + p.cpuS);
    }
    this.live = next;
    const d = process.cpuUsage(t);
    this.ownCostUs += d.user + d.system;
  }

  /** CPU seconds so far, per category (sampled now). */
  snapshot(): CpuSnapshot {
    this.sample();
    const out: CpuSnapshot = new Map();
    const add = (k: string, s: number) => out.set(k, (out.get(k) ?? 0) + s);
    const self = process.cpuUsage();
    add('node (this process: worker, proxy, S3, portal, playwright client)', (self.user + self.system - this.ownCostUs) / 1e6);
    const me = readStat('self');
    if (me) {
      // Children this process reaped: the sandbox children (prlimit → node), a closed browser.
      const f = readFileSync('/proc/self/stat', 'utf8');
      const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
      add('sandbox children', (Number(rest[13]) + Number(rest[14])) * TICK_S);
    }
    for (const p of this.live.values()) add(p.category, p.cpuS);
    for (const [k, s] of this.orphaned) add(k, s);
    return out;
  }
}

/** after − before, per category, and the total. */
export function cpuSpent(before: CpuSnapshot, after: CpuSnapshot): { total: number; parts: Map<string, number> } {
  const parts = new Map<string, number>();
  for (const [k, v] of after) parts.set(k, v - (before.get(k) ?? 0));
  for (const [k, v] of before) if (!after.has(k)) parts.set(k, -v);
  return { total: [...parts.values()].reduce((a, b) => a + b, 0), parts };
}

/**
 * The whole machine's busy CPU seconds so far (/proc/stat's first line: every state but idle and iowait), kernel
 * threads included: what the tree above cannot see, e.g. the kernel tearing down a sandbox's namespaces in a kworker.
 * It counts anything else running on the machine too, so it is only meaningful on a quiet one.
 */
export function machineBusySeconds(): number {
  const f = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal guest guest_nice (guest time is already inside user and nice)
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = f;
  return (user + nice + system + irq + softirq + steal) * TICK_S;
}
