// Loads the client core (wasm) built from `sirr-client`, when this server ships it.
import type { CoreModule, SirrCore } from './core';
import { CoreError } from './core';

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
  let probe: Response;
  try {
    probe = await fetch(url, { method: 'HEAD', cache: 'no-store' });
  } catch {
    return { status: 'failed', error: new CoreError('offline', 'the server is unreachable') };
  }
  const type = probe.headers.get('content-type') ?? '';
  if (!probe.ok || !type.includes('javascript')) return { status: 'absent' };
  try {
    const mod = (await import(/* @vite-ignore */ url)) as Partial<CoreModule>;
    // A core that does not export `open` yet (crates/web while it is being built) is no core.
    if (typeof mod.open !== 'function' || typeof mod.default !== 'function') return { status: 'absent' };
    await mod.default();
    return { status: 'ready', core: await mod.open({ origin: location.origin }) };
  } catch (e) {
    const error = e instanceof CoreError ? e : new CoreError('internal', String(e));
    return { status: 'failed', error };
  }
}
