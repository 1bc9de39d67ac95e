// What the browser tests (run.mjs) and the browser benchmarks (bench.mjs) share: a real sirrd
// on 127.0.0.1, the real CLI as the people the browser talks to, reading a QR code off a
// screenshot, and linking a browser to an account the way a person does.
import { execFile, spawn } from 'node:child_process';
import { createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import jsQR from 'jsqr';

export function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.once('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

/**
 * Starts `opts.sirrd` in development mode on free ports with its own temporary data directory,
 * serving `opts.dist`; resolves once `/health` answers. `down()` stops it and `up()` starts it
 * again on the same ports and data (a server restart as clients see it).
 */
export async function startSirrd(opts) {
  const [port, admin] = [await freePort(), await freePort()];
  const data = mkdtempSync(join(tmpdir(), 'sirr-e2e-'));
  const logPath = join(data, 'sirrd.log');
  const log = createWriteStream(logPath);
  const base = `http://127.0.0.1:${port}`;
  let child = null;
  let exited = null;

  const up = async () => {
    exited = null;
    child = spawn(
      opts.sirrd,
      ['--dev', '--listen', `127.0.0.1:${port}`, '--admin-listen', `127.0.0.1:${admin}`,
        '--data', join(data, 'data'), '--web-dir', resolve(opts.dist)],
      { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, SIRR_LOG: 'info', NO_COLOR: '1' } },
    );
    child.stderr.pipe(log, { end: false });
    child.once('exit', (code) => (exited = code));
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (exited !== null) throw new Error(`sirrd exited with ${exited} before listening; log: ${logPath}`);
      try {
        if ((await fetch(`${base}/health`)).ok) return;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error(`sirrd did not answer /health in 30 s; log: ${logPath}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const down = async () => {
    if (exited === null) {
      const done = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await done;
    }
  };
  await up();
  return {
    base,
    logPath,
    /** sirrd's data directory (its database and files). */
    dataDir: join(data, 'data'),
    up,
    down,
    /** Stops sirrd; its data directory is removed unless `keep()` says to keep it (a failure). */
    stop: async (keep = () => process.exitCode === 1) => {
      await down();
      log.end();
      if (!keep()) rmSync(data, { recursive: true, force: true });
    },
  };
}

/** A runner of the CLI at `path`: `sirr(who, ...args)` runs it with home `homes/who` and
 * resolves with its stdout, or rejects with its stderr. */
export function cli(path, homes) {
  return (who, ...args) =>
    new Promise((ok, fail) => {
      execFile(path, ['--home', join(homes, who), ...args], { timeout: 300_000, maxBuffer: 64 << 20,
        env: { ...process.env, NO_COLOR: '1' } },
      (error, stdout, stderr) => {
        if (error) fail(new Error(`sirr ${args.join(' ')} (${who}): ${error.message}\n${stderr}`));
        else ok(stdout);
      });
    });
}

/** Decodes a PNG screenshot of a QR code: the page turns it into pixels, jsQR reads them. */
export async function readQrScreenshot(page, png) {
  const pixels = await page.evaluate(async (b64) => {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const bitmap = await createImageBitmap(new Blob([bytes], { type: 'image/png' }));
    const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
    const g = canvas.getContext('2d');
    g.drawImage(bitmap, 0, 0);
    const { data } = g.getImageData(0, 0, bitmap.width, bitmap.height);
    let s = '';
    for (let i = 0; i < data.length; i += 8192) s += String.fromCharCode(...data.subarray(i, i + 8192));
    return { width: bitmap.width, height: bitmap.height, data: btoa(s) };
  }, png.toString('base64'));
  const rgba = new Uint8ClampedArray(Buffer.from(pixels.data, 'base64'));
  return jsQR(rgba, pixels.width, pixels.height)?.data ?? null;
}

/**
 * Starts `sirr device link` for home `who` and resolves with the code it shows and a promise
 * of its exit code; the caller approves the code elsewhere.
 */
export function startCliLink(path, homes, who, server, name) {
  const link = spawn(path, ['--home', join(homes, who), 'device', 'link', '--server', server, '--name', name],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  link.stdout.on('data', (d) => (out += d));
  link.stderr.on('data', (d) => (out += d));
  const exited = new Promise((ok) => link.once('exit', ok));
  return new Promise((ok, fail) => {
    const deadline = Date.now() + 20_000;
    const poll = () => {
      const code = /sirr device approve (sirr-link:\S+)/.exec(out)?.[1];
      if (code) ok({ code, exited, output: () => out, kill: () => link.kill() });
      else if (Date.now() > deadline) {
        link.kill();
        fail(new Error(`no link code from the CLI: ${out}`));
      } else setTimeout(poll, 100);
    };
    poll();
  });
}

