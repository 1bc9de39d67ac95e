// Benchmarks of the web client in Chromium against a real sirrd on 127.0.0.1, with native
// figures measured side by side in the same run.
//
//   node e2e/bench.mjs --sirrd PATH --sirr PATH --bench PATH/sirr-bench [--dist web/dist]
//                      [--runs 5] [--backlog 1000] [--history 10000] [--json FILE]
//
// Build first with `scripts/build-web` (the shipped core, release profile `web`) and release
// binaries (`cargo build --release --bins`). Prints one table row per figure: median and worst
// of --runs runs where a figure is repeated.
//
// - cold load: a fresh browser profile (no cache, no service worker, no IndexedDB) opens the
//   page; from navigation start to the link screen drawn by the core (wasm fetched, compiled,
//   store opened).
// - backlog: the browser is closed while a contact sends --backlog texts (sirr-bench fill); then
//   from navigation start until the last of them shows in the conversation list (connect,
//   receive, decrypt, store, render). The same backlog reaches a CLI device of the same account:
//   `sirr recv` timed from spawn to exit, for the native figure and the ratio.
// - history: with --history texts stored in the browser, from a click on the conversation to
//   its newest message drawn (after a reload each run, so nothing is in memory).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { execFile } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';
import { cli, startCliLink, startSirrd } from './lib.mjs';

const { values: opts } = parseArgs({
  options: {
    sirrd: { type: 'string' },
    sirr: { type: 'string' },
    bench: { type: 'string' },
    dist: { type: 'string', default: resolve(import.meta.dirname, '../dist') },
    chromium: { type: 'string', default: '/usr/bin/chromium' },
    runs: { type: 'string', default: '5' },
    backlog: { type: 'string', default: '1000' },
    history: { type: 'string', default: '10000' },
    json: { type: 'string' },
  },
});
if (!opts.sirrd || !opts.sirr || !opts.bench) {
  console.error('usage: node e2e/bench.mjs --sirrd PATH --sirr PATH --bench PATH [--runs N] [--backlog N] [--history N] [--json FILE]');
  process.exit(2);
}
const runs = Number(opts.runs);
const backlog = Number(opts.backlog);
const history = Number(opts.history);
const ALICE = '+15550000001';
const BOB = '+15550000002';
const LINK_TITLE = 'Link this browser to your account';

const server = await startSirrd(opts);
const homes = mkdtempSync(join(tmpdir(), 'sirr-bench-homes-'));
const sirr = cli(opts.sirr, homes);
const browser = await chromium.launch({ executablePath: opts.chromium, args: ['--no-sandbox'] });
const figures = [];

function fill(prefix, count) {
  return new Promise((ok, fail) => {
    execFile(opts.bench, ['fill', '--home', join(homes, 'bob'), '--to', ALICE, '--count', String(count), '--prefix', prefix],
      { timeout: 3_600_000 }, (e, stdout, stderr) => (e ? fail(new Error(`${e.message}\n${stderr}`)) : ok(stdout.trim())));
  });
}

function record(name, values, goalMs, note = '') {
  const sorted = [...values].sort((a, b) => a - b);
  const median = sorted[Math.floor((sorted.length - 1) / 2)];
  const worst = sorted.at(-1);
  figures.push({ name, runs: values.length, median_ms: median, worst_ms: worst, goal_ms: goalMs, values, note });
  const verdict = goalMs === undefined ? '' : worst <= goalMs ? 'met' : 'MISSED';
  console.log(`| ${name} | ${values.length} | ${median.toFixed(0)} | ${worst.toFixed(0)} | ${goalMs ?? '-'} | ${verdict} | ${note} |`);
}

/**
 * Milliseconds since the page's navigation started, once `predicate(arg)` (run in the page,
 * every animation frame) returns `performance.now()` instead of false.
 */
async function sinceNavigation(page, predicate, arg) {
  const handle = await page.waitForFunction(predicate, arg, { polling: 'raf', timeout: 3_600_000 });
  return handle.jsonValue();
}

try {
  console.log('| figure | runs | median ms | worst ms | goal ms | goal | note |');
  console.log('|---|---|---|---|---|---|---|');

  // Cold load, each run in a fresh profile.
  const cold = [];
  for (let i = 0; i < runs; i++) {
    const context = await browser.newContext({ locale: 'en-US' });
    const page = await context.newPage();
    await page.goto(server.base + '/', { waitUntil: 'commit' });
    cold.push(await sinceNavigation(page, (t) => document.querySelector('h1')?.textContent === t && performance.now(), LINK_TITLE));
    await context.close();
  }
  record('cold load to the link screen', cold, 1000, 'fresh profile; wasm fetched and compiled');

  // Two people on the CLI; alice also has a second CLI device (the native receiver).
  await sirr('alice', 'register', '--server', server.base, '--phone', ALICE, '--code', '000000', '--name', 'phone');
  await sirr('bob', 'register', '--server', server.base, '--phone', BOB, '--code', '000000', '--name', 'phone');
  const laptop = await startCliLink(opts.sirr, homes, 'alice-laptop', server.base, 'laptop');
  await sirr('alice', 'device', 'approve', laptop.code);
  if ((await laptop.exited) !== 0) throw new Error(`linking the CLI laptop failed: ${laptop.output()}`);

  // The browser, linked the way a person links it.
  const context = await browser.newContext({ locale: 'en-US' });
  let page = await context.newPage();
  await page.goto(server.base + '/');
  await page.fill('#device-name', 'bench browser');
  await page.click('form button[type=submit]');
  const code = await (await page.waitForSelector('#link-code')).inputValue();
  await sirr('alice', 'device', 'approve', code);
  await page.locator('.messenger').waitFor({ timeout: 60_000 });
  await sirr('bob', 'send', ALICE, 'hello');
  await page.locator('button.conversation', { hasText: BOB }).waitFor({ timeout: 60_000 });
  await sirr('alice-laptop', 'recv', '--wait', '10');
  await page.close();

  // The backlog arrives while the browser is closed and the laptop is not receiving.
  console.error(`bench: ${await fill('backlog', backlog)}`);
  page = await context.newPage();
  await page.goto(server.base + '/', { waitUntil: 'commit' });
  const web = await sinceNavigation(page,
    (t) => [...document.querySelectorAll('.conv-last')].some((e) => e.textContent === t) && performance.now(),
    `backlog ${backlog}`);
  const started = performance.now();
  const out = await sirr('alice-laptop', 'recv', '--wait', '30');
  const native = performance.now() - started;
  if (!out.includes(`backlog ${backlog}`)) throw new Error(`the laptop did not get the whole backlog: ${out.slice(-200)}`);
  record(`${backlog} texts received, decrypted, stored and shown (browser)`, [web], 2000,
    'from navigation start, so it includes the page load');
  record(`${backlog} texts received, decrypted, stored and printed (native CLI)`, [native], undefined,
    `process start to exit (includes a 250 ms idle wait); browser/native = ${(web / native).toFixed(2)}`);

  // A long history: fill it up to --history, then open the conversation after a reload.
  const more = Math.max(0, history - backlog - 1);
  if (more > 0) {
    console.error(`bench: ${await fill('history', more)}`);
    await page.locator('.conv-last', { hasText: `history ${more}` }).waitFor({ timeout: 3_600_000 });
  }
  const last = more > 0 ? `history ${more}` : `backlog ${backlog}`;
  const open = [];
  for (let i = 0; i < runs; i++) {
    await page.reload({ waitUntil: 'load' });
    await page.locator('button.conversation', { hasText: BOB }).waitFor({ timeout: 60_000 });
    open.push(await page.evaluate(
      (text) =>
        new Promise((ok) => {
          const started = performance.now();
          document.querySelector('button.conversation')?.click();
          const check = () =>
            [...document.querySelectorAll('.chat article.message p.text')].some((e) => e.textContent === text)
              ? ok(performance.now() - started)
              : requestAnimationFrame(check);
          check();
        }),
      last,
    ));
  }
  record(`open a conversation of ${history} messages`, open, 300, 'click to newest message drawn, after a reload');
  await context.close();
} finally {
  await browser.close();
  await server.stop(() => false);
  rmSync(homes, { recursive: true, force: true });
}
if (opts.json) writeFileSync(opts.json, JSON.stringify({ figures }, null, 2));
