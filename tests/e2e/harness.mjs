// harness.mjs: what the browser tests share: a real xeniad on a
// temporary data dir serving HTTPS on a free loopback port (the built
// console from build/web), Debian's chromium driven by playwright-core,
// XenAPI calls from the test itself (JSON-RPC over the daemon's Unix
// socket, as root) to check what the page did, and bounded waits.
// Nothing here loops for ever; cleanup hard-stops the daemon's VMs,
// stops it, kills any QEMU whose command line names its data dir, and
// removes the dir.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BUILD = path.join(ROOT, 'build');
export const ARTIFACTS = path.join(BUILD, 'test-artifacts');
const XENIAD = path.join(BUILD, 'xeniad');
const XE = path.join(BUILD, 'xe');

export const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

// Poll cond() until truthy; its value. Throws naming `what` at timeout.
export async function waitFor(cond, { timeout = 30000, interval = 200, what = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      const v = await cond();
      if (v) return v;
      last = JSON.stringify(v);
    } catch (e) {
      last = String(e.message || e);
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout / 1000}s waiting for ${what} (last: ${last})`);
    await sleep(interval);
  }
}

function freePort() {
  return new Promise((ok, fail) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
    s.on('error', fail);
  });
}

export class Daemon {
  constructor(name) {
    this.dataDir = fs.mkdtempSync(path.join('/tmp', `xenia-e2e-${name}-`));
    this.socket = path.join(this.dataDir, 'xapi.sock');
    this.log = path.join(this.dataDir, 'xeniad.log');
    this.session = null;
  }

  async start() {
    this.port = await freePort();
    this.url = `https://127.0.0.1:${this.port}`;
    const out = fs.openSync(this.log, 'a');
    this.proc = spawn(XENIAD, ['--data-dir', this.dataDir, '--socket', this.socket,
      '--listen', `127.0.0.1:${this.port}`], { stdio: ['ignore', out, out] });
    fs.closeSync(out);
    this.exited = null;
    this.proc.on('exit', (code) => { this.exited = code; });
    await waitFor(async () => {
      if (this.exited !== null) throw new Error(`xeniad exited ${this.exited}:\n${this.logTail()}`);
      this.session = await this.rpc('session.login_with_password', ['root', '', '2.21', 'xenia-e2e']);
      return true;
    }, { timeout: 60000, what: 'xeniad to answer' });
    this.password = fs.readFileSync(path.join(this.dataDir, 'root-password'), 'utf8').trim();
    return this;
  }

  logTail(n = 30) {
    try {
      return fs.readFileSync(this.log, 'utf8').split('\n').slice(-n).join('\n');
    } catch {
      return '';
    }
  }

  // A raw JSON-RPC call over the Unix socket (local: root).
  rpc(method, params, timeout = 120000) {
    const body = JSON.stringify({ jsonrpc: '2.0', method, params, id: 1 });
    return new Promise((ok, fail) => {
      const req = http.request({ socketPath: this.socket, path: '/jsonrpc', method: 'POST', timeout,
        headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) } }, (res) => {
        let data = '';
        res.on('data', (c) => { data += c; });
        res.on('end', () => {
          try {
            const r = JSON.parse(data);
            if (r.error) {
              const e = new Error(`${method}: ${r.error.message} ${JSON.stringify(r.error.data)}`);
              e.code = r.error.message;
              e.params = r.error.data;
              fail(e);
            } else ok(r.result);
          } catch (e) {
            fail(new Error(`${method}: HTTP ${res.statusCode}: ${data.slice(0, 300)}`));
          }
        });
      });
      req.on('timeout', () => req.destroy(new Error(`${method}: no answer in ${timeout} ms`)));
      req.on('error', fail);
      req.end(body);
    });
  }

  api(method, ...params) {
    return this.rpc(method, [this.session, ...params]);
  }

  // xe, for what is simplest said with it.
  xe(...args) {
    return new Promise((ok, fail) => {
      const p = spawn(XE, args, { env: { ...process.env, XENIA_SOCKET: this.socket, HOME: this.dataDir } });
      let out = '', err = '';
      p.stdout.on('data', (c) => { out += c; });
      p.stderr.on('data', (c) => { err += c; });
      const timer = setTimeout(() => p.kill('SIGKILL'), 120000);
      p.on('exit', (code) => {
        clearTimeout(timer);
        if (code === 0) ok(out.trim());
        else fail(new Error(`xe ${args.join(' ')}: exit ${code}: ${err.trim()}`));
      });
    });
  }

  async vmByName(name) {
    const refs = await this.api('VM.get_by_name_label', name);
    return refs.length === 1 ? refs[0] : null;
  }

  async cleanup() {
    try {
      if (this.exited === null && this.session) {
        const vms = await this.api('VM.get_all_records');
        for (const [ref, vm] of Object.entries(vms)) {
          if (!vm.is_control_domain && !vm.is_a_template && vm.power_state !== 'Halted')
            await this.api('VM.hard_shutdown', ref).catch(() => {});
        }
      }
    } catch { /* the daemon may be gone */ }
    if (this.proc && this.exited === null) {
      this.proc.kill('SIGTERM');
      await waitFor(() => this.exited !== null, { timeout: 20000, what: 'xeniad to stop' })
        .catch(() => this.proc.kill('SIGKILL'));
    }
    killQemus(this.dataDir + '/');
    if (!process.env.XENIA_TEST_KEEP) fs.rmSync(this.dataDir, { recursive: true, force: true });
  }
}

// SIGKILL every QEMU whose command line names needle (our data dir).
function killQemus(needle) {
  for (const pid of fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const argv = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      if (argv[0] && path.basename(argv[0]).includes('qemu') && argv.join(' ').includes(needle))
        process.kill(Number(pid), 'SIGKILL');
    } catch { /* gone */ }
  }
}

// Debian's chromium, headless, with no network of its own (this
// machine's network is closed). playwright gives every launch a fresh
// temporary profile (its own --user-data-dir), removed at close.
export async function launchBrowser() {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--no-first-run', '--disable-quic'],
  });
}

export async function newPage(browser) {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(String(e)));
  return page;
}

export async function screenshot(page, name) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const file = path.join(ARTIFACTS, `e2e-${name}.png`);
  await page.screenshot({ path: file });
  return file;
}

export async function login(page, d, user = 'root', password = d.password) {
  await page.goto(d.url + '/');
  await page.fill('input[name=user]', user);
  await page.fill('input[name=password]', password);
  await page.click('button[type=submit]');
  await page.waitForSelector('[data-testid=tree]', { timeout: 30000 });
}

// The tree item or overview row of an object, by its name.
export const treeItem = (page, name) => page.locator('[data-testid=tree] [role=treeitem]', { hasText: name }).first();

export function assert(cond, msg) {
  if (!cond) throw new Error('assertion failed: ' + msg);
}
