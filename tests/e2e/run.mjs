#!/usr/bin/env node
// run.mjs: the web console's browser tests.
//
//   node tests/e2e/run.mjs [-k SUBSTRING] [FILE ...]
//
// Runs tests/e2e/test_*.mjs (or the given files). Each exports `tests`,
// a list of [name, async fn(ctx), {timeout}] run in order with one
// shared ctx (the steps of a story depend on each other: when one fails
// the rest of its file are reported as failed without running, but for
// those marked {independent: true}, which need only the setup), and
// optionally setup(ctx) / teardown(ctx). Prints the lines the other
// suites print:
//
//   PASS e2e.test_lifecycle.start (12.3s)
//   FAIL e2e.test_lifecycle.console: Error: ...
//
// and exits 1 if any failed. Each test saves a screenshot under
// build/test-artifacts/ (the tests do; a failing one gets one here).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { screenshot } from './harness.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const say = (s) => process.stdout.write(s + '\n');

function withTimeout(p, ms, what) {
  let timer;
  return Promise.race([p.finally(() => clearTimeout(timer)), new Promise((_, fail) => {
    timer = setTimeout(() => fail(new Error(`${what}: time limit of ${ms / 1000}s reached`)), ms);
  })]);
}

async function runFile(file, match, counts) {
  const mod = await import(pathToFileURL(file).href);
  const name = path.basename(file, '.mjs');
  const ctx = {};
  let broken = null;
  const t0 = Date.now();
  try {
    if (mod.setup) await withTimeout(mod.setup(ctx), 180000, name + '.setup');
  } catch (e) {
    broken = 'setup failed: ' + (e.stack || e);
  }
  for (const [tname, fn, opts = {}] of mod.tests) {
    const full = `e2e.${name}.${tname}`;
    if (match && !full.includes(match)) continue;
    if (broken && !opts.independent) {
      say(`FAIL ${full}: not run: ${broken.split('\n')[0]}`);
      counts.failed++;
      continue;
    }
    const t = Date.now();
    try {
      await withTimeout(fn(ctx), opts.timeout || 90000, full);
      say(`PASS ${full} (${((Date.now() - t) / 1000).toFixed(1)}s)`);
      counts.passed++;
    } catch (e) {
      say(`FAIL ${full}: ${String(e.message || e).split('\n')[0]}`);
      say(String(e.stack || e).split('\n').map((l) => '    ' + l).join('\n'));
      if (ctx.page) {
        say(`    page errors: ${JSON.stringify(ctx.page.errors || [])}`);
        await screenshot(ctx.page, `${name}-${tname}-FAILED`).catch(() => {});
      }
      if (ctx.daemon) say(ctx.daemon.logTail(20).split('\n').map((l) => '    | ' + l).join('\n'));
      counts.failed++;
      if (!opts.independent) broken = `${tname} failed`;
    }
  }
  try {
    if (mod.teardown) await withTimeout(mod.teardown(ctx), 120000, name + '.teardown');
  } catch (e) {
    say(`FAIL e2e.${name}.teardown: ${e.message}`);
    counts.failed++;
  }
  say(`# ${name}: ${((Date.now() - t0) / 1000).toFixed(0)}s`);
}

async function main() {
  const args = process.argv.slice(2);
  let match = null;
  const files = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '-k') match = args[++i];
    else files.push(path.resolve(args[i].endsWith('.mjs') ? args[i] : path.join(HERE, args[i] + '.mjs')));
  }
  if (!files.length)
    files.push(...fs.readdirSync(HERE).filter((f) => /^test_.*\.mjs$/.test(f)).sort().map((f) => path.join(HERE, f)));
  for (const bin of ['xeniad', 'xe', 'web/index.html'])
    if (!fs.existsSync(path.join(HERE, '..', '..', 'build', bin))) {
      say(`FAIL e2e: build/${bin} is not built (make)`);
      process.exit(1);
    }
  if (!fs.existsSync('/usr/bin/chromium')) {
    say('FAIL e2e: /usr/bin/chromium is missing (scripts/install-deps.sh --test)');
    process.exit(1);
  }
  const counts = { passed: 0, failed: 0 };
  const t0 = Date.now();
  for (const f of files) await runFile(f, match, counts);
  say(`e2e tests: ${counts.passed} passed, ${counts.failed} failed in ${((Date.now() - t0) / 1000).toFixed(0)}s`);
  process.exit(counts.failed ? 1 : 0);
}

main().catch((e) => {
  say(`FAIL e2e: ${e.stack || e}`);
  process.exit(1);
});
