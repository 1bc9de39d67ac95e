/// <reference types="vitest/config" />
// Build of the web client: Preact through oxc's JSX transform (no Babel), hashed assets under
// /assets/, and the service worker written last so it can name every file of the app shell.
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { defineConfig, type Plugin } from 'vite';

/** What the service worker may cache: the app shell, never data. */
const SHELL_FILE = /\.(html|js|css|wasm|svg|png|webmanifest)$/;

function listFiles(dir: string): string[] {
  let out: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    out = statSync(path).isDirectory() ? out.concat(listFiles(path)) : out.concat(path);
  }
  return out;
}

/**
 * Emits `sw.js` from `src/sw.js`, with the list of shell files and a cache name derived from
 * their contents: every build that changes a byte of the shell gets a new cache, and the old
 * one is deleted when the new worker activates.
 */
function serviceWorker(): Plugin {
  let publicDir = '';
  return {
    name: 'sirr-service-worker',
    apply: 'build',
    // After vite's HTML plugin, so index.html is in the bundle to hash.
    enforce: 'post',
    configResolved(config) {
      publicDir = config.publicDir;
    },
    generateBundle(_options, bundle) {
      const hash = createHash('sha256');
      const files: string[] = [];
      for (const [name, item] of Object.entries(bundle).sort(([a], [b]) => a.localeCompare(b))) {
        if (!SHELL_FILE.test(name)) continue;
        files.push(name === 'index.html' ? '/' : '/' + name);
        hash.update(name);
        hash.update(item.type === 'chunk' ? item.code : item.source);
      }
      for (const path of listFiles(publicDir).sort()) {
        const name = relative(publicDir, path).split('\\').join('/');
        if (!SHELL_FILE.test(name)) continue;
        files.push('/' + name);
        hash.update(name);
        hash.update(readFileSync(path));
      }
      const template = readFileSync(new URL('./src/sw.js', import.meta.url), 'utf8');
      const source = template
        .replace('__SIRR_CACHE__', JSON.stringify('sirr-shell-' + hash.digest('hex').slice(0, 16)))
        .replace('__SIRR_SHELL__', JSON.stringify(files));
      this.emitFile({ type: 'asset', fileName: 'sw.js', source });
    },
  };
}

export default defineConfig({
  plugins: [serviceWorker()],
  oxc: {
    jsx: { runtime: 'automatic', importSource: 'preact' },
  },
  build: {
    target: 'es2022',
    // One small bundle; no inline scripts or styles (the CSP forbids them).
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
  },
  test: {
    environment: 'happy-dom',
    include: ['test/**/*.test.{ts,tsx}'],
  },
});
