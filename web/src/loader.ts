// Loads the client core (wasm) built from `sirr-client`, when this server ships it.
import type { CoreModule, SirrCore } from './core';
import { CoreError } from './core';
import { adaptCore, takeTabLock, toCoreError } from './wasmCore';

/** Where sirrd serves the core's wasm-bindgen module (from `web/dist/pkg/`). */
export const CORE_MODULE_URL = '/pkg/sirr_web.js';

export type LoadResult =
  | { status: 'ready'; core: SirrCore }
  /** The server was built without the core: say so; never fall back to anything pretend. */
  | { status: 'absent' }
  | { status: 'failed'; error: CoreError };

/**
 * Asks for the module first (a HEAD request), so a server without the core is told apart from
 * a core that failed to start.
 */
export async function loadCore(url: string = CORE_MODULE_URL): Promise<LoadResult> {
  let probe: Response | null = null;
  try {
    probe = await fetch(url, { method: 'HEAD', cache: 'no-store' });
  } catch {
    // Offline: the service worker may still hold the core (it caches the app shell), and the
    // history is on this device; only a core that does not load either is an error.
  }
  if (probe) {
    const type = probe.headers.get('content-type') ?? '';
    if (!probe.ok || !type.includes('javascript')) return { status: 'absent' };
  }
  try {
    const mod = (await import(/* @vite-ignore */ url)) as Partial<CoreModule>;
    if (typeof mod.openCore !== 'function' || typeof mod.default !== 'function') return { status: 'absent' };
    await takeTabLock();
    await mod.default();
    return { status: 'ready', core: adaptCore(await mod.openCore(location.origin)) };
  } catch (e) {
    if (!probe) return { status: 'failed', error: new CoreError('offline', 'the server is unreachable') };
    return { status: 'failed', error: toCoreError(e) };
  }
}
