import { describe, expect, it } from 'vitest';
import { CoreError, type CoreEvent } from '../src/core';
import { adaptCore, takeTabLock, toCoreError, type RawCore } from '../src/wasmCore';

/** A RawCore whose every method answers `answer` (JSON text) or rejects with `reject`. */
function raw(answer: unknown, reject?: unknown): RawCore & { emit: (e: unknown) => void; calls: unknown[][] } {
  let listener: (e: string) => void = () => {};
  const calls: unknown[][] = [];
  const method = (...args: unknown[]) => {
    calls.push(args);
    // The wasm core rejects with plain `{code, message}` objects, which is what this mimics.
    // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors
    return reject === undefined ? Promise.resolve(JSON.stringify(answer)) : Promise.reject(reject);
  };
  return new Proxy({} as RawCore & { emit: (e: unknown) => void; calls: unknown[][] }, {
    get: (_, name) => {
      if (name === 'setListener') return (l: (e: string) => void) => (listener = l);
      if (name === 'emit') return (e: unknown) => listener(JSON.stringify(e));
      if (name === 'calls') return calls;
      if (name === 'connection') return () => 'connecting';
      return method;
    },
  });
}

describe('the wasm core adapter', () => {
  it('parses answers and passes arguments through', async () => {
    const r = raw([{ id: 'a1', kind: 'direct', title: '+15550000002', unread: 2, time: 5 }]);
    const core = adaptCore(r);
    const list = await core.conversations();
    expect(list[0]?.unread).toBe(2);
    await core.messages('c1', 50, 'm9');
    expect(r.calls.at(-1)).toEqual(['c1', 50, 'm9']);
    expect(core.connection()).toBe('connecting');
  });

  it('turns rejections into CoreErrors with their code and retry time', async () => {
    const core = adaptCore(raw(null, { code: 'rate_limited', message: 'slow down', retryAfterMs: 1500 }));
    const e = await core.send('c', 'hi').catch((x: unknown) => x);
    expect(e).toBeInstanceOf(CoreError);
    expect(e).toMatchObject({ code: 'rate_limited', message: 'slow down', retryAfterMs: 1500 });
    expect(toCoreError({ code: 'no such code' }).code).toBe('internal');
    expect(toCoreError(new Error('boom'))).toMatchObject({ code: 'internal', message: 'boom' });
  });

  it('says plainly what it does not do yet', async () => {
    const e = await adaptCore(raw(null)).unblock('+15550000002').catch((x: unknown) => x);
    expect(e).toMatchObject({ code: 'unsupported' });
  });

  it('fans events out to every listener until each unsubscribes, with link failures typed', () => {
    const r = raw(null);
    const core = adaptCore(r);
    const a: CoreEvent[] = [];
    const b: CoreEvent[] = [];
    const offA = core.onEvent((e) => a.push(e));
    core.onEvent((e) => b.push(e));
    r.emit({ kind: 'connection', state: 'connected' });
    offA();
    r.emit({ kind: 'linkFailed', error: { code: 'invalid_code', message: 'expired' } });
    expect(a).toHaveLength(1);
    expect(b).toHaveLength(2);
    const failed = b[1];
    expect(failed?.kind === 'linkFailed' && failed.error instanceof CoreError && failed.error.code).toBe('invalid_code');
  });

  it('refuses a second tab: the lock is held by the first', async () => {
    // An in-memory LockManager with the ifAvailable semantics of the Web Locks API.
    const held = new Set<string>();
    const locks = {
      request: (name: string, _opts: unknown, cb: (lock: unknown) => unknown) => {
        const free = !held.has(name);
        if (free) held.add(name);
        return Promise.resolve(cb(free ? { name } : null));
      },
    } as unknown as LockManager;
    await takeTabLock(locks);
    const second = await takeTabLock(locks).catch((x: unknown) => x);
    expect(second).toMatchObject({ code: 'locked' });
  });
});
