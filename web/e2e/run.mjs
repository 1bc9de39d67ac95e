// End-to-end tests of the web client in Chromium against a real sirrd on 127.0.0.1.
//
//   node e2e/run.mjs --sirrd PATH/TO/sirrd --sirr PATH/TO/sirr [--dist web/dist]
//                    [--chromium /usr/bin/chromium] [--screenshots DIR]
//
// Starts sirrd (development mode, its own temporary data directory, random free ports,
// --web-dir DIST), then runs each check below in order in one browser and prints one line per
// check and a closing "e2e: N passed, N failed"; exits 1 if any failed. The browser is the
// system Chromium (Playwright cannot download its own here). The people the web client talks
// to are the real CLI (`sirr`), each with its own home directory.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { AxeBuilder } from '@axe-core/playwright';
import { chromium } from 'playwright-core';
import { cli, readQrScreenshot, startCliLink, startSirrd } from './lib.mjs';

const { values: opts } = parseArgs({
  options: {
    sirrd: { type: 'string' },
    sirr: { type: 'string' },
    dist: { type: 'string', default: resolve(import.meta.dirname, '../dist') },
    chromium: { type: 'string', default: '/usr/bin/chromium' },
    // Also saves screenshots of the main screens there (docs/web/ holds the README's).
    screenshots: { type: 'string' },
  },
});
if (!opts.sirrd || !opts.sirr) {
  console.error('usage: node e2e/run.mjs --sirrd PATH --sirr PATH [--dist DIR] [--chromium PATH]');
  process.exit(2);
}

// The first screen of a browser not linked yet.
const EN_TITLE = 'Link this browser to your account';
const AR_TITLE = 'اربط هذا المتصفح بحسابك';
const MS_TITLE = 'Pautkan pelayar ini ke akaun anda';
const ALICE = '+15550000001';
const BOB = '+15550000002';

function assert(cond, message) {
  if (!cond) throw new Error(message);
}

const server = await startSirrd(opts);
const browser = await chromium.launch({ executablePath: opts.chromium, args: ['--no-sandbox'] });
const context = await browser.newContext({ locale: 'en-US' });
const page = await context.newPage();

// What every check relies on being true throughout: requests stay on this machine, the CSP is
// never violated, and the page throws nothing.
const offHost = [];
const violations = [];
const pageErrors = [];
context.on('request', (r) => {
  const url = new URL(r.url());
  if (url.protocol === 'data:' || url.protocol === 'blob:') return;
  if (url.hostname !== '127.0.0.1') offHost.push(r.url());
});
page.on('console', (m) => {
  if (/Content Security Policy|Content-Security-Policy/i.test(m.text())) violations.push(m.text());
});
page.on('pageerror', (e) => pageErrors.push(String(e)));
await context.addInitScript(() => {
  document.addEventListener('securitypolicyviolation', (e) => {
    (window.__cspViolations ??= []).push(`${e.violatedDirective} ${e.blockedURI}`);
  });
});

const h1 = () => page.locator('h1').first().textContent();
const html = () =>
  page.evaluate(() => ({
    lang: document.documentElement.lang,
    dir: document.documentElement.dir,
    bodyDirection: getComputedStyle(document.body).direction,
  }));

/** Presses Tab until the element matching `selector` has focus (at most 30 times). */
async function tabTo(selector) {
  for (let i = 0; i < 30; i++) {
    await page.keyboard.press('Tab');
    if (await page.evaluate((s) => document.activeElement?.matches(s) ?? false, selector)) return;
  }
  throw new Error(`Tab never reached ${selector}`);
}

async function axe(label) {
  const result = await new AxeBuilder({ page }).analyze();
  const bad = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  assert(
    bad.length === 0,
    `${label}: axe found ${bad.map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`).join('; ')}`,
  );
  assert(result.passes.length > 0, `${label}: axe checked nothing`);
}

const homes = mkdtempSync(join(tmpdir(), 'sirr-e2e-homes-'));
const sirr = cli(opts.sirr, homes);
const readQr = (png) => readQrScreenshot(page, png);
const shot = async (name) => {
  if (opts.screenshots) await page.screenshot({ path: join(opts.screenshots, `${name}.png`) });
};

const checks = [
  ['the page loads with the security headers', async () => {
    const response = await page.goto(server.base + '/', { waitUntil: 'load' });
    assert(response?.status() === 200, `GET / gave ${response?.status()}`);
    const h = response.headers();
    const csp = h['content-security-policy'] ?? '';
    for (const d of ["default-src 'none'", "script-src 'self' 'wasm-unsafe-eval'", "style-src 'self'",
      "connect-src 'self'", "frame-ancestors 'none'", "base-uri 'none'"]) {
      assert(csp.includes(d), `CSP lacks ${d}: ${csp}`);
    }
    assert(!csp.includes('unsafe-inline'), 'CSP allows inline code');
    assert(h['x-content-type-options'] === 'nosniff', 'no nosniff');
    assert(h['referrer-policy'] === 'no-referrer', 'no Referrer-Policy');
    assert(h['cache-control'] === 'no-cache', `index.html Cache-Control: ${h['cache-control']}`);
  }],
  ['the core opens: a browser not linked yet is asked to link, in English', async () => {
    await page.waitForFunction((t) => document.querySelector('h1')?.textContent === t, EN_TITLE);
    const d = await html();
    assert(d.lang === 'en' && d.dir === 'ltr' && d.bodyDirection === 'ltr', JSON.stringify(d));
    const probe = await fetch(server.base + '/pkg/sirr_web.js', { method: 'HEAD' });
    assert(probe.status === 200, `/pkg/sirr_web.js gave ${probe.status} (run scripts/build-wasm --contract)`);
    assert((probe.headers.get('content-type') ?? '').includes('javascript'), 'sirr_web.js is not JavaScript');
  }],
  ['the store contract passes over IndexedDB in Chromium, and values are sealed at rest', async () => {
    const panics = [];
    const onConsole = (m) => { if (m.text().startsWith('panic:')) panics.push(m.text()); };
    page.on('console', onConsole);
    let r;
    try {
      r = await page.evaluate(async () => {
        const mod = await import('/pkg/sirr_web.js');
        await mod.default();
        if (typeof mod.runStoreContract !== 'function') return { error: 'built without --contract' };
        const name = 'sirr-contract-' + crypto.randomUUID();
        const started = performance.now();
        // A panic traps the wasm and leaves the promise pending; its hook sets sirrPanic.
        const deadline = Date.now() + 60_000;
        const watch = new Promise((_, no) => {
          const tick = () => {
            if (globalThis.sirrPanic) no(new Error(globalThis.sirrPanic));
            else if (Date.now() > deadline) no(new Error('no answer in 60 s'));
            else setTimeout(tick, 20);
          };
          tick();
        });
        const sentinel = await Promise.race([mod.runStoreContract(name), watch]);
        const ms = Math.round(performance.now() - started);
        const req = (q) => new Promise((ok, no) => { q.onsuccess = () => ok(q.result); q.onerror = () => no(q.error); });
        const db = await req(indexedDB.open(name));
        const stores = Array.from(db.objectStoreNames);
        const tx = db.transaction(['kv', '_meta']);
        const values = await req(tx.objectStore('kv').getAll());
        const raw = await req(tx.objectStore('kv').get(new TextEncoder().encode('sentinel')));
        const meta = await req(tx.objectStore('_meta').get('data-key'));
        // Sealed values are bound to their table and key: moved, or with a bit flipped, they
        // do not open.
        const key = (t) => new TextEncoder().encode(t);
        const flipped = new Uint8Array(raw);
        flipped[flipped.length - 1] ^= 1;
        const w = db.transaction(['kv', 'sealed'], 'readwrite');
        w.objectStore('kv').put(raw, key('moved'));
        w.objectStore('sealed').put(raw, key('sentinel'));
        w.objectStore('kv').put(flipped, key('flipped'));
        await new Promise((ok, no) => { w.oncomplete = ok; w.onabort = () => no(w.error); });
        db.close();
        const refused = async (table, k) => {
          try {
            return `opened: ${await mod.readValue(name, table, k)}`;
          } catch (e) {
            return String(e);
          }
        };
        const tampered = [await refused('kv', 'moved'), await refused('sealed', 'sentinel'),
          await refused('kv', 'flipped')];
        const intact = await mod.readValue(name, 'kv', 'sentinel');
        await req(indexedDB.deleteDatabase(name));
        const needle = new TextEncoder().encode('plaintext sentinel');
        const holds = (hay) => {
          const b = new Uint8Array(hay.buffer ?? hay);
          outer: for (let i = 0; i + needle.length <= b.length; i++) {
            for (let j = 0; j < needle.length; j++) if (b[i + j] !== needle[j]) continue outer;
            return true;
          }
          return false;
        };
        const wrapping = meta?.wrapping;
        return {
          sentinel, ms, stores, tampered, intact,
          rawIsBytes: raw instanceof Uint8Array || raw instanceof ArrayBuffer,
          rawLength: raw?.byteLength, plaintextFound: values.some(holds), valueCount: values.length,
          key: wrapping instanceof CryptoKey
            ? { extractable: wrapping.extractable, algorithm: wrapping.algorithm.name, usages: wrapping.usages }
            : String(wrapping),
          wrappedHoldsNoKey: meta?.wrapped?.byteLength,
        };
      });
    } catch (e) {
      const message = e instanceof Error ? e.message : String(e);
      const more = panics.filter((p) => !message.includes(p));
      throw new Error(`${message}${more.length ? `; ${more.join('; ')}` : ''}`, { cause: e });
    } finally {
      page.off('console', onConsole);
    }
    assert(!r.error, r.error);
    assert(panics.length === 0, panics.join('; '));
    assert(r.sentinel.includes('plaintext sentinel'), `runStoreContract gave ${r.sentinel}`);
    assert(r.stores.includes('_meta') && r.stores.includes('messages') && r.stores.length === 19, `stores: ${r.stores}`);
    assert(r.rawIsBytes && r.rawLength === r.sentinel.length + 12 + 16, `sealed sentinel: ${r.rawLength} bytes`);
    assert(!r.plaintextFound && r.valueCount > 0, `plaintext found in IndexedDB (${r.valueCount} values)`);
    assert(typeof r.key === 'object' && r.key.extractable === false && r.key.algorithm === 'AES-GCM',
      `wrapping key: ${JSON.stringify(r.key)}`);
    assert(r.intact === r.sentinel, `the sentinel read back as ${r.intact}`);
    assert(r.tampered.every((t) => t.includes('corrupt')), `tampered values: ${r.tampered.join(' | ')}`);
    assert(r.wrappedHoldsNoKey === 12 + 32 + 16, `wrapped data key: ${r.wrappedHoldsNoKey} bytes`);
    console.log(`     (the contract suite, memory and IndexedDB, ran in ${r.ms} ms)`);
  }],
  ['the core reaches sirrd over the browser WebSocket: Ping is answered with Pong', async () => {
    const r = await page.evaluate(async () => {
      const mod = await import('/pkg/sirr_web.js');
      await mod.default();
      if (typeof mod.pingServer !== 'function') return 'built without --contract';
      try {
        return await mod.pingServer(location.origin);
      } catch (e) {
        return `pingServer failed: ${e}`;
      }
    });
    assert(r === 'Pong', r);
  }],
  ['the browser WebSocket fails cleanly, and at once, when the server refuses it', async () => {
    const started = Date.now();
    const r = await page.evaluate(async () => {
      const mod = await import('/pkg/sirr_web.js');
      await mod.default();
      try {
        // Same origin (the CSP allows only that), a path with no WebSocket: sirrd answers 404.
        return `connected: ${await mod.pingServer(location.origin + '/no-such-path')}`;
      } catch (e) {
        return String(e);
      }
    });
    assert(/cannot connect to ws:.*no-such-path.*1006/.test(r), r);
    assert(Date.now() - started < 5000, `took ${Date.now() - started} ms`);
  }],
  ['axe finds no serious or critical violation (English)', () => axe('en')],
  ['the language switcher works from the keyboard: Arabic is right to left', async () => {
    await tabTo('button[data-lang=ar]');
    await page.keyboard.press('Enter');
    await page.waitForFunction((t) => document.querySelector('h1')?.textContent === t, AR_TITLE);
    const d = await html();
    assert(d.lang === 'ar' && d.dir === 'rtl', JSON.stringify(d));
    assert(d.bodyDirection === 'rtl', `computed body direction ${d.bodyDirection}`);
    assert((await page.getAttribute('button[data-lang=ar]', 'aria-pressed')) === 'true', 'not pressed');
    // Focus stays visible on the switcher (an outline is drawn).
    const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
    assert(outline !== 'none', 'no visible focus');
  }],
  ['the choice is remembered across a reload', async () => {
    await page.reload({ waitUntil: 'load' });
    await page.waitForFunction((t) => document.querySelector('h1')?.textContent === t, AR_TITLE);
    assert((await html()).dir === 'rtl', 'not rtl after reload');
  }],
  ['axe finds no serious or critical violation (Arabic)', async () => {
    await axe('ar');
    await shot('link-ar');
  }],
  ['Malay is chosen with Space', async () => {
    await tabTo('button[data-lang=ms]');
    await page.keyboard.press('Space');
    await page.waitForFunction(() => document.documentElement.lang === 'ms');
    assert((await h1()) === MS_TITLE, `h1 is ${await h1()}`);
    assert((await html()).dir === 'ltr', 'Malay is not ltr');
  }],
  ['the manifest is served with its content type and its icons exist', async () => {
    const r = await page.request.get(server.base + '/manifest.webmanifest');
    assert(r.status() === 200, `manifest: ${r.status()}`);
    assert(r.headers()['content-type'] === 'application/manifest+json', `type ${r.headers()['content-type']}`);
    const m = await r.json();
    assert(m.name === 'Sirr' && m.display === 'standalone' && m.start_url === '/', JSON.stringify(m));
    for (const icon of m.icons) {
      const i = await page.request.get(server.base + icon.src);
      assert(i.status() === 200 && i.headers()['content-type'] === icon.type, `${icon.src}: ${i.status()} ${i.headers()['content-type']}`);
    }
    const linked = await page.getAttribute('link[rel=manifest]', 'href');
    assert(linked === '/manifest.webmanifest', `link rel=manifest is ${linked}`);
  }],
  ['the service worker registers and caches the app shell only', async () => {
    const sw = await page.evaluate(async () => {
      const reg = await navigator.serviceWorker.ready;
      const names = await caches.keys();
      const urls = [];
      for (const n of names) for (const k of await (await caches.open(n)).keys()) urls.push(new URL(k.url).pathname);
      return { script: reg.active?.scriptURL, names, urls };
    });
    assert(sw.script === server.base + '/sw.js', `active worker: ${sw.script}`);
    assert(sw.names.length === 1 && sw.names[0].startsWith('sirr-shell-'), `caches: ${sw.names}`);
    assert(sw.urls.includes('/') && sw.urls.some((u) => u.endsWith('.js')), `cached: ${sw.urls}`);
    const allowed = /^\/($|assets\/|icons\/|pkg\/|manifest\.webmanifest$|sw\.js$)/;
    const other = sw.urls.filter((u) => !allowed.test(u));
    assert(other.length === 0, `cached outside the shell: ${other}`);
    const r = await page.request.get(server.base + '/sw.js');
    assert(r.headers()['cache-control'] === 'no-cache', `sw.js Cache-Control: ${r.headers()['cache-control']}`);
  }],
  ['back to English from the keyboard', async () => {
    await tabTo('button[data-lang=en]');
    await page.keyboard.press('Enter');
    await page.waitForFunction((t) => document.querySelector('h1')?.textContent === t, EN_TITLE);
  }],
  ['two people register with the CLI and talk before the browser is linked', async () => {
    await sirr('alice', 'register', '--server', server.base, '--phone', ALICE, '--code', '000000', '--name', 'phone');
    await sirr('bob', 'register', '--server', server.base, '--phone', BOB, '--code', '000000', '--name', 'phone');
    await sirr('alice', 'send', BOB, 'before the link');
    const got = await sirr('bob', 'recv', '--wait', '10');
    assert(got.includes('before the link'), `bob got: ${got}`);
  }],
  ['linking: the QR code read off a screenshot is the code shown, and the CLI approves it', async () => {
    await page.fill('#device-name', 'e2e browser');
    await page.click('form button[type=submit]');
    const img = page.locator('img.qr');
    await img.waitFor();
    const shown = await page.inputValue('#link-code');
    assert(/^sirr-link:[A-Za-z0-9_-]{100,}$/.test(shown), `link code: ${shown}`);
    const read = await readQr(await img.screenshot());
    assert(read === shown, `the QR code reads ${read}, the page shows ${shown}`);
    await axe('link code');
    await shot('link-code');
    await sirr('alice', 'device', 'approve', read);
    await page.locator('.messenger').waitFor({ timeout: 30_000 });
    const devices = await sirr('alice', 'devices');
    assert(devices.includes('e2e browser'), `alice's devices: ${devices}`);
  }],
  ['a message from the CLI reaches the web chat the browser was added to', async () => {
    await sirr('bob', 'send', ALICE, 'hello web');
    const row = page.locator('button.conversation', { hasText: BOB });
    await row.waitFor({ timeout: 20_000 });
    await row.click();
    await page.locator('.chat article.message.in', { hasText: 'hello web' }).waitFor({ timeout: 20_000 });
    await axe('chat');
  }],
  ['the web replies with Enter; bob and alice\'s phone both get it', async () => {
    await page.fill('#composer', 'hello from the browser');
    await page.press('#composer', 'Enter');
    const mine = page.locator('.chat article.message.out', { hasText: 'hello from the browser' });
    await mine.waitFor({ timeout: 20_000 });
    assert((await mine.locator('[data-state]').getAttribute('data-state')) === 'sent', 'not marked sent');
    assert((await page.inputValue('#composer')) === '', 'the composer was not cleared');
    const bob = await sirr('bob', 'recv', '--wait', '10');
    assert(bob.includes('hello from the browser'), `bob got: ${bob}`);
    const alice = await sirr('alice', 'recv', '--wait', '10');
    assert(alice.includes('hello from the browser'), `alice's phone got: ${alice}`);
  }],
  ['the safety number the browser shows is the one alice\'s phone shows, and its QR code reads the same', async () => {
    await page.click('.chat-details summary');
    await page.click('.chat-details button');
    const shown = page.locator('[data-testid=safety-number]');
    await shown.waitFor({ timeout: 20_000 });
    const digits = (await shown.textContent()).trim();
    assert(/^\d{5}( \d{5}){11}$/.test(digits), `safety number: ${digits}`);
    const phone = (await sirr('alice', 'safety', BOB)).trim();
    assert(phone === digits, `alice's phone shows ${phone}, the browser ${digits}`);
    const read = await readQr(await page.locator('.chat-details img.qr').screenshot());
    assert(read === digits.replace(/ /g, ''), `the QR code reads ${read}`);
    await axe('safety number');
    // Disappearing messages for both sides, then off again.
    await page.selectOption('#timer', '86400');
    const on = await sirr('bob', 'recv', '--wait', '10');
    assert(on.includes('messages now disappear 86400 s after they arrive'), `bob got: ${on}`);
    await page.waitForFunction(() => document.querySelector('#timer')?.value === '86400', undefined, { timeout: 10_000 });
    await page.selectOption('#timer', '0');
    const off = await sirr('bob', 'recv', '--wait', '10');
    assert(off.includes('disappearing messages are off'), `bob got: ${off}`);
    await page.click('.chat-details summary');
  }],
  ['read receipts, with both accounts\' consent: bob reading a browser message shows it read', async () => {
    await sirr('alice', 'consent', 'set', 'read-receipts', 'on');
    await sirr('bob', 'consent', 'set', 'read-receipts', 'on');
    await page.fill('#composer', 'please read this');
    await page.press('#composer', 'Enter');
    const state = () =>
      page.evaluate(() => [...document.querySelectorAll('.chat article.message.out')]
        .find((e) => e.textContent.includes('please read this'))?.querySelector('[data-state]')?.getAttribute('data-state'));
    const until = async (want) => {
      const deadline = Date.now() + 20_000;
      while ((await state()) !== want) {
        assert(Date.now() < deadline, `never shown ${want} (state ${await state()})`);
        await new Promise((r) => setTimeout(r, 100));
      }
    };
    await until('sent');
    const bob = await sirr('bob', 'recv', '--wait', '10');
    assert(bob.includes('please read this'), `bob got: ${bob}`);
    await until('read');
  }],
  ['an Arabic message is laid out right to left inside the English interface', async () => {
    await sirr('bob', 'send', ALICE, 'مرحبا من بوب');
    const text = page.locator('.chat article.message.in p.text', { hasText: 'مرحبا من بوب' });
    await text.waitFor({ timeout: 20_000 });
    const dir = await text.evaluate((e) => getComputedStyle(e).direction);
    assert(dir === 'rtl', `computed direction ${dir}`);
    assert((await html()).dir === 'ltr', 'the page itself turned rtl');
    await shot('chat');
  }],
  ['a reload keeps the history on this device', async () => {
    await page.reload({ waitUntil: 'load' });
    const row = page.locator('button.conversation', { hasText: BOB });
    await row.waitFor({ timeout: 20_000 });
    await row.click();
    for (const t of ['hello web', 'hello from the browser', 'مرحبا من بوب']) {
      await page.locator('.chat article.message', { hasText: t }).waitFor({ timeout: 10_000 });
    }
  }],
  ['offline, the app and its history still open from this device', async () => {
    await context.setOffline(true);
    try {
      await page.reload({ waitUntil: 'load' });
      await page.locator('[data-testid=banner]').waitFor({ timeout: 20_000 });
      await page.locator('button.conversation', { hasText: BOB }).click({ timeout: 20_000 });
      await page.locator('.chat article.message', { hasText: 'hello from the browser' }).waitFor({ timeout: 10_000 });
    } finally {
      await context.setOffline(false);
    }
    await page.locator('[data-testid=banner]').waitFor({ state: 'detached', timeout: 30_000 });
  }],
  ['written while the server is down, a text waits, then arrives once when it is back', async () => {
    await server.down();
    await page.locator('[data-testid=banner]').waitFor({ timeout: 20_000 });
    await page.fill('#composer', 'written while the server was down');
    await page.press('#composer', 'Enter');
    const mine = page.locator('.chat article.message.out', { hasText: 'written while the server was down' });
    await mine.waitFor({ timeout: 20_000 });
    assert((await mine.locator('[data-state]').getAttribute('data-state')) === 'sending', 'not shown as waiting');
    await server.up();
    await page.waitForFunction(() =>
      [...document.querySelectorAll('.chat article.message.out')].find((e) => e.textContent.includes('written while'))
        ?.querySelector('[data-state]')?.getAttribute('data-state') === 'sent', undefined, { timeout: 30_000 });
    assert(await page.locator('[data-testid=banner]').count() === 0, 'still shown as disconnected');
    const bob = await sirr('bob', 'recv', '--wait', '10');
    const copies = bob.split('written while the server was down').length - 1;
    assert(copies === 1, `bob got it ${copies} times: ${bob}`);
  }],
  ['a second tab is told the core is open elsewhere', async () => {
    const second = await context.newPage();
    try {
      await second.goto(server.base + '/', { waitUntil: 'load' });
      const alert = second.locator('[data-error=locked]');
      await alert.waitFor({ timeout: 20_000 });
      assert((await alert.textContent()) === 'Sirr is already open in another tab', await alert.textContent());
    } finally {
      await second.close();
    }
  }],
  ['a group made on the CLI: the browser is in it, reads it and writes to it', async () => {
    await sirr('alice', 'group', 'create', 'friends', BOB);
    // Bob's device joins (the Welcome is queued for it); no text arrives, so this waits it out.
    await sirr('bob', 'recv', '--wait', '3');
    await sirr('bob', 'group', 'send', 'friends', 'hello friends');
    const row = page.locator('button.conversation', { hasText: 'friends' });
    await row.waitFor({ timeout: 20_000 });
    await row.click();
    await page.locator('.chat article.message.in', { hasText: 'hello friends' }).waitFor({ timeout: 20_000 });
    await page.fill('#composer', 'the browser writes to the group');
    await page.press('#composer', 'Enter');
    await page.locator('.chat article.message.out', { hasText: 'the browser writes' }).waitFor({ timeout: 20_000 });
    const bob = await sirr('bob', 'recv', '--wait', '10');
    assert(bob.includes('the browser writes to the group'), `bob got: ${bob}`);
    await shot('group');
  }],
  ['a group made in the browser: bob writes to it, then the browser removes him', async () => {
    await page.click('.new-group summary');
    await page.fill('#new-group-name', 'from the web');
    await page.fill('#new-group-members', BOB);
    await page.click('.new-group button[type=submit]');
    await page.locator('.chat h2', { hasText: 'from the web' }).waitFor({ timeout: 30_000 });
    await sirr('bob', 'recv', '--wait', '3');
    await sirr('bob', 'group', 'send', 'from the web', 'bob in the web group');
    await page.locator('.chat article.message.in', { hasText: 'bob in the web group' }).waitFor({ timeout: 20_000 });
    await page.click('.chat-details summary');
    await page.locator('ul.members', { hasText: BOB }).waitFor({ timeout: 10_000 });
    await page.click(`ul.members button:has-text("${BOB}")`);
    await page.waitForFunction((b) => !document.querySelector('ul.members')?.textContent.includes(b), BOB, { timeout: 20_000 });
    const bob = await sirr('bob', 'recv', '--wait', '5');
    assert(/removed/.test(bob), `bob was not told he was removed: ${bob}`);
    await page.click('.chat-details summary');
  }],
  ['the browser approves a new CLI device of the account from its settings', async () => {
    const link = await startCliLink(opts.sirr, homes, 'alice-laptop', server.base, 'laptop');
    try {
      await page.click('nav.tabs button:nth-child(2)');
      await page.fill('#approve-code', link.code);
      await page.click('#approve-code ~ button[type=submit]');
      const status = await Promise.race([link.exited, new Promise((r) => setTimeout(() => r('timeout'), 60_000))]);
      assert(status === 0, `sirr device link ended with ${status}: ${link.output()}`);
      await page.locator('ul.devices', { hasText: 'laptop' }).waitFor({ timeout: 20_000 });
      await axe('settings');
      await shot('settings');
    } finally {
      link.kill();
    }
    await sirr('bob', 'send', ALICE, 'to every device of alice');
    const laptop = await sirr('alice-laptop', 'recv', '--wait', '10');
    assert(laptop.includes('to every device of alice'), `the new laptop got: ${laptop}`);
    await page.click('nav.tabs button:nth-child(1)');
  }],
  ['in the Arabic interface the whole app is right to left, and so is an Arabic message', async () => {
    await page.click('nav.tabs button:nth-child(2)');
    await page.click('button[data-lang=ar]');
    await page.waitForFunction(() => document.documentElement.dir === 'rtl');
    await page.click('nav.tabs button:nth-child(1)');
    const row = page.locator('button.conversation', { hasText: BOB });
    await row.click();
    const text = page.locator('.chat article.message.in p.text', { hasText: 'مرحبا من بوب' });
    await text.waitFor({ timeout: 10_000 });
    assert((await text.evaluate((e) => getComputedStyle(e).direction)) === 'rtl', 'the Arabic message is not rtl');
    const d = await html();
    assert(d.lang === 'ar' && d.bodyDirection === 'rtl', JSON.stringify(d));
    // Phone numbers stay left to right inside the right-to-left page.
    const phone = await page.locator('button.conversation bdi', { hasText: BOB }).first().evaluate((e) => getComputedStyle(e).direction);
    assert(phone === 'ltr', `a phone number is laid out ${phone}`);
    const title = await page.locator('.chat h2 bdi').evaluate((e) => getComputedStyle(e).direction);
    assert(title === 'ltr', `the chat's title number is laid out ${title}`);
    await axe('chat (Arabic)');
    await shot('chat-ar');
    await page.click('nav.tabs button:nth-child(2)');
    await page.click('button[data-lang=en]');
    await page.waitForFunction(() => document.documentElement.dir === 'ltr');
    await page.click('nav.tabs button:nth-child(1)');
  }],
  ['a canary typed in the browser never reaches the server in the clear (its files and its log)', async () => {
    const canary = `canary-${randomBytes(12).toString('hex')}`;
    await page.locator('button.conversation', { hasText: BOB }).click();
    await page.fill('#composer', canary);
    await page.press('#composer', 'Enter');
    const bob = await sirr('bob', 'recv', '--wait', '10');
    assert(bob.includes(canary), `bob did not get the canary: ${bob}`);
    const needles = [canary, Buffer.from(canary).toString('hex'), Buffer.from(canary).toString('base64').slice(0, 20)];
    const files = [];
    const walk = (dir) => {
      for (const e of readdirSync(dir, { withFileTypes: true })) {
        const p = join(dir, e.name);
        if (e.isDirectory()) walk(p);
        else files.push(p);
      }
    };
    walk(server.dataDir);
    files.push(server.logPath);
    assert(files.length > 1, `nothing to search: ${files}`);
    for (const f of files) {
      const bytes = readFileSync(f);
      for (const n of needles) assert(!bytes.includes(Buffer.from(n)), `${f} holds the canary (${n})`);
    }
    // The search finds the canary where it is: in a file that holds it.
    const control = join(homes, 'canary-control');
    writeFileSync(control, `before ${canary} after`);
    assert(readFileSync(control).includes(Buffer.from(needles[0])), 'the search does not find a canary that is there');
    assert(files.some((f) => f.endsWith('.db') || f.includes('sqlite')) , `no database among ${files}`);
  }],
  ['no CSP violation, no page error, no request off 127.0.0.1', async () => {
    const reported = await page.evaluate(() => window.__cspViolations ?? []);
    assert(reported.length === 0 && violations.length === 0, `CSP violations: ${[...reported, ...violations]}`);
    assert(pageErrors.length === 0, `page errors: ${pageErrors}`);
    assert(offHost.length === 0, `requests off this machine: ${offHost}`);
  }],
];

let passed = 0;
let failed = 0;
try {
  for (const [name, check] of checks) {
    const started = Date.now();
    try {
      await check();
      passed++;
      console.log(`ok   ${name} (${Date.now() - started} ms)`);
    } catch (e) {
      failed++;
      console.log(`FAIL ${name}\n     ${e instanceof Error ? e.message : e}`);
    }
  }
} finally {
  await browser.close();
  if (failed) {
    process.exitCode = 1;
    console.log(`sirrd's log: ${server.logPath}`);
  }
  await server.stop();
  if (!failed) rmSync(homes, { recursive: true, force: true });
}
console.log(`e2e: ${passed} passed, ${failed} failed`);
