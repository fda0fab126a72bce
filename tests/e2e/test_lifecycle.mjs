// test_lifecycle.mjs: an administrator's day with one VM, all through
// the web console in a real browser, against a real xeniad and real
// QEMU guests: log in; install a VM from "Tiny Linux" with the wizard;
// start it and watch Starting -> On arrive by events; type into its
// serial console; see CPU and network graphs draw; snapshot, change,
// revert; add a CD drive and insert an ISO the guest then reads; start
// again and find the snapshot's state; shut down; delete. Then a VM
// booted by firmware shows its VGA screen in the graphical console.
// Each step checks the result through the API too, and saves a
// screenshot under build/test-artifacts/.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Daemon, launchBrowser, newPage, login, screenshot, waitFor, treeItem, assert } from './harness.mjs';

const NAME = 'web-e2e-1';
const GiB = 1024 ** 3;

export async function setup(ctx) {
  ctx.daemon = await new Daemon('life').start();
  const iso = path.join(ctx.daemon.dataDir, 'isos');
  fs.mkdirSync(path.join(iso, 'src'), { recursive: true });
  fs.writeFileSync(path.join(iso, 'src', 'mark.txt'), 'web-iso-mark\n');
  execFileSync('genisoimage', ['-quiet', '-V', 'XNWEBISO', '-o', path.join(iso, 'tools.iso'), path.join(iso, 'src')]);
  const sr = await ctx.daemon.xe('sr-create', 'type=iso', 'name-label=ISOs', 'content-type=iso', `device-config:location=${iso}`);
  await ctx.daemon.xe('sr-scan', `uuid=${sr}`);
  ctx.browser = await launchBrowser();
  ctx.page = await newPage(ctx.browser);
}

export async function teardown(ctx) {
  await ctx.browser?.close();
  await ctx.daemon?.cleanup();
}

// ---- helpers ------------------------------------------------------------------

const row = (page, name) => page.locator('[data-testid=overview] tbody tr', { hasText: name }).first();
const statusOf = async (page, name) => (await row(page, name).locator('[data-testid=status]').textContent()).trim();

async function tab(page, label) {
  await page.getByRole('tab', { name: label, exact: true }).click();
}

async function select(page, name) {
  await treeItem(page, name).click();
}

// The terminal's text, wrapped lines joined.
function termText(page) {
  return page.evaluate(() => {
    const t = window.__xeniaTerm;
    if (!t) return '';
    const b = t.buffer.active;
    let s = '';
    for (let i = 0; i < b.length; i++) {
      const line = b.getLine(i);
      if (i > 0 && !line.isWrapped) s += '\n';
      s += line.translateToString(true);
    }
    return s;
  });
}

// Press Enter until the shell prompt answers (keys typed while the guest
// boots are lost).
async function waitPrompt(page, timeout = 120000) {
  await page.click('[data-testid=terminal]');
  const deadline = Date.now() + timeout;
  for (;;) {
    const before = (await termText(page)).split('root@tiny:/# ').length;
    await page.keyboard.press('Enter');
    try {
      await waitFor(async () => (await termText(page)).split('root@tiny:/# ').length > before, { timeout: 3000, interval: 200 });
      return;
    } catch (e) {
      if (Date.now() > deadline) throw new Error('no shell prompt in the console: ' + (await termText(page)).slice(-400));
    }
  }
}

// Type a command into the console; what it printed, framed by markers
// the shell computes (so the echo of the typed line never matches).
let seq = 0;
async function run(page, cmd, timeout = 30000) {
  const tok = `t${++seq}${Date.now() % 10000}`;
  await page.click('[data-testid=terminal]');
  await page.keyboard.type(`echo B-$((6*7))-${tok}; ${cmd}; echo E-$((6*7))-${tok}`);
  await page.keyboard.press('Enter');
  const re = new RegExp(`B-42-${tok}\\r?\\n([\\s\\S]*?)\\n?E-42-${tok}`);
  const m = await waitFor(async () => re.exec(await termText(page)), { timeout, what: `output of "${cmd}"` });
  return m[1].trim();
}

// Statuses the VM's overview row shows, recorded in the page as they
// change (a MutationObserver), so short-lived ones are not missed.
async function recordStatuses(page, name) {
  await page.evaluate((name) => {
    window.__statuses = [];
    const seen = () => {
      const r = [...document.querySelectorAll('[data-testid=overview] tbody tr')].find((tr) => tr.textContent.includes(name));
      const s = r?.querySelector('[data-testid=status]')?.textContent;
      if (s && window.__statuses[window.__statuses.length - 1] !== s) window.__statuses.push(s);
    };
    seen();
    window.__observer?.disconnect();
    window.__observer = new MutationObserver(seen);
    window.__observer.observe(document.body, { subtree: true, childList: true, characterData: true });
  }, name);
}

const statuses = (page) => page.evaluate(() => window.__statuses);

async function vmRec(d) {
  const ref = await d.vmByName(NAME);
  return ref ? [ref, await d.api('VM.get_record', ref)] : [null, null];
}

async function clickConfirm(page) {
  await page.click('[data-action=confirm]');
}

// ---- the story -----------------------------------------------------------------

export const tests = [
  ['login', async ({ page, daemon }) => {
    await login(page, daemon);
    await page.waitForSelector('text=Tiny Linux');
    assert((await page.textContent('[data-testid=whoami]')).includes('root'), 'logged in as root');
    await screenshot(page, 'login');
  }],

  ['install_with_wizard', async ({ page, daemon }) => {
    const tpl = await daemon.vmByName('Tiny Linux');
    const tvbd = (await daemon.api('VM.get_VBDs', tpl))[0];
    const tsize = Number(await daemon.api('VDI.get_virtual_size', await daemon.api('VBD.get_VDI', tvbd)));
    const want = Math.ceil((tsize + 0.5 * GiB) / (0.01 * GiB)) * 0.01; // GB, half a GiB more
    await page.click('[data-action=new-vm]');
    await page.selectOption('[data-testid=wizard] select[name=template]', { label: 'Tiny Linux' });
    await page.fill('[data-testid=wizard] input[name=name]', NAME);
    await page.fill('[data-testid=wizard] input[name=vcpus]', '1');
    await page.fill('[data-testid=wizard] input[name=memory]', '192');
    await page.fill('[data-testid=wizard] input[name=disk]', want.toFixed(2));
    await page.selectOption('[data-testid=wizard] select[name=network]', { index: 1 });
    await page.uncheck('[data-testid=wizard] input[name=start]');
    await screenshot(page, 'wizard');
    await page.click('[data-action=install]');
    await page.waitForSelector('[data-testid=wizard]', { state: 'detached', timeout: 60000 });
    await waitFor(async () => (await statusOf(page, NAME)) === 'Off', { what: 'the new VM Off in the overview' });
    const [ref, vm] = await vmRec(daemon);
    assert(ref && !vm.is_a_template && vm.power_state === 'Halted', 'a halted VM named ' + NAME);
    assert(Number(vm.memory_static_max) === 192 * 1024 * 1024, 'memory 192 MiB: ' + vm.memory_static_max);
    assert(vm.VIFs.length === 1, 'one VIF');
    const vdi = await daemon.api('VBD.get_VDI', vm.VBDs[0]);
    const size = Number(await daemon.api('VDI.get_virtual_size', vdi));
    assert(size >= Math.round(want * GiB) - 1024 * 1024 && size > tsize, `disk grown to ${want} GB: ${size}`);
    await screenshot(page, 'installed');
  }, { timeout: 120000 }],

  ['start_shows_starting_then_on', async ({ page, daemon }) => {
    await select(page, NAME);
    await recordStatuses(page, NAME);
    await page.click('[data-action=start]');
    await waitFor(async () => (await statusOf(page, NAME)) === 'On', { timeout: 60000, what: 'status On' });
    const seen = await statuses(page);
    assert(seen.indexOf('Starting') >= 0 && seen.indexOf('Starting') < seen.lastIndexOf('On'),
      'Starting then On seen through events: ' + JSON.stringify(seen));
    const [, vm] = await vmRec(daemon);
    assert(vm.power_state === 'Running', 'running in the API');
    await screenshot(page, 'started');
  }, { timeout: 90000 }],

  ['console_runs_a_command', async ({ page }) => {
    await tab(page, 'Console');
    await waitFor(async () => (await page.textContent('[data-testid=console-state]')) === 'connected', { what: 'console connected' });
    await waitPrompt(page);
    assert((await run(page, 'echo $((6*7))-web')) === '42-web', 'the guest computed 42');
    await run(page, 'echo before > /root/marker; sync');
    await screenshot(page, 'console');
  }, { timeout: 180000 }],

  // Needs GET /rrd_updates, which the metrics work (issue 6, branch
  // i6-metrics) adds; until that is merged this step fails waiting for
  // the graphs. On a local merge of i6-metrics it passed (2026-11-21).
  ['graphs_draw_cpu_and_network_points', async ({ page }) => {
    // some network traffic for the graph: the guest pings its gateway
    await run(page, '(ping -c 20 -i 0.5 $(ip route | awk "/default/ {print \\$3}") >/dev/null 2>&1 &)');
    await tab(page, 'Performance');
    const points = async (id) => Number(await page.getAttribute(`[data-testid=graph-${id}]`, 'data-points'));
    await waitFor(async () => (await points('cpu')) >= 2 && (await points('network')) >= 2,
      { timeout: 60000, interval: 1000, what: 'CPU and network graphs with points (needs /rrd_updates)' });
    assert(await page.locator('[data-testid=graph-cpu] canvas').count() > 0, 'the CPU graph is drawn');
    await screenshot(page, 'graphs');
  }, { timeout: 90000, independent: true }],

  ['snapshot_then_revert', async ({ page, daemon }) => {
    await tab(page, 'Snapshots');
    await page.fill('input[aria-label="Snapshot name"]', 'snap1');
    await page.click('[data-action=snapshot]');
    await page.waitForSelector('[data-testid=snapshots] li[data-name=snap1]', { timeout: 60000 });
    const [ref, vm] = await vmRec(daemon);
    assert(vm.snapshots.length === 1, 'one snapshot in the API');
    await tab(page, 'Console');
    await waitFor(async () => (await page.textContent('[data-testid=console-state]')) === 'connected', { what: 'console connected' });
    await run(page, 'echo after > /root/marker; sync');
    await tab(page, 'Snapshots');
    await screenshot(page, 'snapshot');
    await page.click('[data-testid=snapshots] li[data-name=snap1] [data-action=revert]');
    await clickConfirm(page);
    await waitFor(async () => (await statusOf(page, NAME)) === 'Off', { timeout: 90000, what: 'Off after the revert' });
    assert((await daemon.api('VM.get_power_state', ref)) === 'Halted', 'halted after reverting to a disk snapshot');
  }, { timeout: 150000 }],

  ['insert_iso', async ({ page, daemon }) => {
    await tab(page, 'Storage');
    await page.click('text=Add CD drive');
    const select = page.locator('[data-action=insert-iso]');
    await select.waitFor({ timeout: 30000 });
    await select.selectOption({ label: 'tools.iso' });
    await waitFor(async () => (await page.textContent('[data-testid=vbds] tr[data-type=CD] [data-testid=vbd-disk]')).includes('tools.iso'),
      { what: 'tools.iso in the CD drive' });
    const [, vm] = await vmRec(daemon);
    const cds = [];
    for (const b of vm.VBDs) {
      const r = await daemon.api('VBD.get_record', b);
      if (r.type === 'CD') cds.push(r);
    }
    assert(cds.length === 1 && !cds[0].empty, 'one CD drive with a medium');
    assert((await daemon.api('VDI.get_name_label', cds[0].VDI)) === 'tools.iso', 'the medium is tools.iso');
    await screenshot(page, 'iso');
  }, { timeout: 90000 }],

  ['restart_finds_snapshot_state_and_iso', async ({ page }) => {
    await page.click('[data-action=start]');
    await waitFor(async () => (await statusOf(page, NAME)) === 'On', { timeout: 60000, what: 'On again' });
    await tab(page, 'Console');
    await waitFor(async () => (await page.textContent('[data-testid=console-state]')) === 'connected', { what: 'console connected' });
    await waitPrompt(page);
    assert((await run(page, 'cat /root/marker')) === 'before', 'the file as it was at the snapshot');
    const vol = await run(page, 'v=$(dd if=/dev/sr0 bs=1 skip=32808 count=8 2>/dev/null); echo ${v:-NONE}');
    assert(vol === 'XNWEBISO', 'the guest reads the inserted ISO: ' + vol);
    await screenshot(page, 'restarted');
  }, { timeout: 180000 }],

  ['shut_down', async ({ page, daemon }) => {
    await recordStatuses(page, NAME);
    await page.click('[data-action=clean_shutdown]');
    await waitFor(async () => (await statusOf(page, NAME)) === 'Off', { timeout: 90000, what: 'Off after shutdown' });
    assert((await statuses(page)).includes('Stopping'), 'Stopping shown: ' + JSON.stringify(await statuses(page)));
    const [, vm] = await vmRec(daemon);
    assert(vm.power_state === 'Halted', 'halted in the API');
    await screenshot(page, 'shut-down');
  }, { timeout: 120000 }],

  ['delete', async ({ page, daemon }) => {
    const [ref, vm] = await vmRec(daemon);
    let disk = null;
    for (const b of vm.VBDs)
      if ((await daemon.api('VBD.get_type', b)) === 'Disk') disk = await daemon.api('VBD.get_VDI', b);
    assert(disk, 'the VM has a disk');
    await page.click('[data-action=delete]');
    await clickConfirm(page);
    await waitFor(async () => (await page.locator('[data-testid=tree] [role=treeitem]', { hasText: NAME }).count()) === 0,
      { timeout: 60000, what: 'the VM gone from the tree' });
    assert((await daemon.api('VM.get_by_name_label', NAME)).length === 0, 'no VM of that name in the API');
    await waitFor(async () => !(await daemon.api('VDI.get_all')).includes(disk), { what: 'its disk destroyed' });
    assert(!(await daemon.api('VM.get_all')).includes(ref), 'gone');
    await screenshot(page, 'deleted');
  }],

  ['graphical_console_shows_vga', async ({ page, daemon }) => {
    // Tiny Linux booted by its firmware (SeaBIOS, then syslinux from its
    // disk) instead of its kernel: a VM with VGA
    const uuid = await daemon.xe('vm-install', 'template=Tiny Linux', 'new-name-label=web-hvm');
    const ref = await daemon.api('VM.get_by_uuid', uuid);
    await daemon.api('VM.set_PV_kernel', ref, '');
    await daemon.api('VM.set_HVM_boot_policy', ref, 'BIOS order');
    await daemon.api('VM.set_HVM_boot_params', ref, { order: 'c' });
    await daemon.api('VM.start', ref, false, false);
    await select(page, 'web-hvm');
    await tab(page, 'Graphical console');
    await waitFor(async () => (await page.textContent('[data-testid=vnc-state]')) === 'connected', { timeout: 30000, what: 'VNC connected' });
    // the screen shows text: more than one colour on the canvas
    await waitFor(() => page.evaluate(() => {
      const c = document.querySelector('[data-testid=vnc] canvas');
      if (!c || !c.width) return false;
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      const colours = new Set();
      for (let i = 0; i < d.length && colours.size < 3; i += 4 * 7) colours.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
      return colours.size > 1;
    }), { timeout: 60000, interval: 500, what: 'the VGA screen drawn' });
    await screenshot(page, 'vnc');
    await daemon.api('VM.hard_shutdown', ref);
  }, { timeout: 120000, independent: true }],
];
