// Sirr's service worker: makes the app shell (HTML, JS, CSS, wasm, icons, manifest) available
// offline and nothing else. API and WebSocket traffic, exports and every other response pass
// straight to the network and are never stored: message data lives only in the core's
// encrypted storage. The build (vite.config.ts) fills in the cache name (one per build) and
// the list of shell files.

const CACHE = __SIRR_CACHE__;
const SHELL = __SIRR_SHELL__;
const SHELL_PATHS = new Set(SHELL);

self.addEventListener('install', (event) => {
  event.waitUntil(
    caches
      .open(CACHE)
      .then((cache) => cache.addAll(SHELL))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((names) => Promise.all(names.filter((n) => n !== CACHE).map((n) => caches.delete(n))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener('fetch', (event) => {
  const request = event.request;
  if (request.method !== 'GET') return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  // A page navigation gets the shell's index.html; anything not in the shell goes to the network.
  const path = request.mode === 'navigate' ? '/' : url.pathname;
  if (!SHELL_PATHS.has(path)) return;
  event.respondWith(
    // Network first, so a new build shows as soon as the server has it; the cache when offline.
    fetch(request).catch(() =>
      caches.match(path, { cacheName: CACHE }).then((hit) => hit ?? Response.error()),
    ),
  );
});
