/**
 * A job's clock (src/execution-plane/job/deadline.ts JobClock): a hand-off pauses the job's time limit, and the
 * deadline moves by the time it waited; withDeadline and the sandbox runner's timer go by it.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { JobClock, withDeadline } from '../../src/execution-plane/job/deadline.ts';
import { isSriError, SriError } from '../../src/shared/errors.ts';

describe('JobClock', () => {
  it('moves the deadline by the length of each pause', () => {
    let now = 1000;
    const clock = new JobClock(5000, () => now);
    now = 3000;
    assert.equal(clock.remainingMs(), 3000);
    clock.pause();
    assert.equal(clock.paused(), true);
    now = 60_000;
    assert.equal(clock.remainingMs(), Infinity, 'no time passes while paused');
    assert.equal(clock.resume(), 57_000);
    assert.equal(clock.remainingMs(), 3000, 'the same 3 s left as before the pause');
    assert.equal(clock.resume(), 0, 'resuming a running clock changes nothing');
    now = 63_000;
    assert.equal(clock.remainingMs(), 0);
  });

  it('keeps a paused job alive past its limit under withDeadline, and stops one that is not paused', async () => {
    const paused = new JobClock(20);
    paused.pause();
    let stopped = false;
    const late = new Promise<string>((r) => setTimeout(() => r('finished'), 200));
    assert.equal(await withDeadline(late, 20, new AbortController().signal, async () => { stopped = true; }, paused), 'finished');
    assert.equal(stopped, false);

    const running = new JobClock(20);
    const never = new Promise<string>(() => {});
    await assert.rejects(withDeadline(never, 20, new AbortController().signal, async () => { stopped = true; }, running),
      (e: unknown) => isSriError(e) && e.code === 'EXECUTION_TIMEOUT');
    assert.equal(stopped, true, 'the context was closed');
  });

  it('stops the work when the work itself times out first (the sandbox runner\'s timer), before the caller hears it', async () => {
    // The sandbox runner arms its timer on the same clock before withDeadline does, so it reports EXECUTION_TIMEOUT
    // first: the context must close then too, or the failure path captures a page still loading (stages/browser.ts).
    let stopped = false;
    const runnerTimedOut = Promise.reject(new SriError('EXECUTION_TIMEOUT', 'Execution timed out after 20 ms'));
    await assert.rejects(withDeadline(runnerTimedOut, 60_000, new AbortController().signal, async () => { stopped = true; }, new JobClock(60_000)),
      (e: unknown) => {
        assert.equal(stopped, true, 'stop ran before the caller saw the rejection');
        return isSriError(e) && e.code === 'EXECUTION_TIMEOUT';
      });

    // Any other failure of the work is the script's own: its page stays open for the failure capture.
    let stoppedOther = false;
    await assert.rejects(withDeadline(Promise.reject(new Error('boom')), 60_000, new AbortController().signal, async () => { stoppedOther = true; }),
      /boom/);
    assert.equal(stoppedOther, false);
  });

  it('fires a timer armed during a pause once the clock runs again and its time is up', async () => {
    let now = 0;
    const clock = new JobClock(0, () => now);
    clock.pause();
    let fired = false;
    const timer = clock.timer(() => { fired = true; });
    assert.equal(fired, false, 'not while paused, though the limit was 0');
    now = 10;
    clock.resume();
    assert.equal(fired, true);
    timer.clear();
  });
});
