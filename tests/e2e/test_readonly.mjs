// test_readonly.mjs: a read-only user sees the host but is offered no
// write action (no New VM, no power operations, no deletion, no editable
// fields, no console), and the API refuses the same calls made with the
// page's own session anyway (RBAC_PERMISSION_DENIED), changing nothing.
import { Daemon, launchBrowser, newPage, login, screenshot, waitFor, treeItem, assert } from './harness.mjs';

export async function setup(ctx) {
  ctx.daemon = await new Daemon('ro').start();
  await ctx.daemon.xe('user-add', 'user-name=viewer', 'password=look-only', 'role=read-only');
  ctx.vm = await ctx.daemon.api('VM.get_by_uuid',
    await ctx.daemon.xe('vm-install', 'template=Tiny Linux', 'new-name-label=ro-target'));
  ctx.browser = await launchBrowser();
  ctx.page = await newPage(ctx.browser);
}

export async function teardown(ctx) {
  await ctx.browser?.close();
  await ctx.daemon?.cleanup();
}

const WRITE_ACTIONS = ['new-vm', 'start', 'clean_shutdown', 'hard_shutdown', 'clone', 'copy', 'to-template',
  'delete', 'apply', 'add-disk', 'snapshot', 'revert', 'insert-iso', 'eject'];

async function visibleWriteActions(page) {
  const found = [];
  for (const a of WRITE_ACTIONS)
    if (await page.locator(`[data-action="${a}"]`).count()) found.push(a);
  return found;
}

export const tests = [
  ['sees_no_write_actions', async ({ page, daemon }) => {
    await login(page, daemon, 'viewer', 'look-only');
    assert((await page.textContent('[data-testid=whoami]')).includes('read-only'), 'shown as read-only');
    await treeItem(page, 'ro-target').click();
    await page.waitForSelector('[data-testid=overview] tr.sel');
    assert((await visibleWriteActions(page)).length === 0, 'toolbar: ' + (await visibleWriteActions(page)));
    assert(await page.locator('input[name=name_label]').getAttribute('readonly') !== null, 'the name is read-only');
    for (const t of ['Storage', 'Network', 'Snapshots', 'Console']) {
      await page.getByRole('tab', { name: t, exact: true }).click();
      await page.waitForTimeout(200);
      assert((await visibleWriteActions(page)).length === 0, `${t} tab offers: ${await visibleWriteActions(page)}`);
    }
    assert((await page.textContent('[role=tabpanel]')).includes('does not include console access'), 'no console for read-only');
    assert(await page.locator('text=Add interface').count() === 0, 'no Add interface');
    await treeItem(page, 'Tiny Linux').click();
    assert((await visibleWriteActions(page)).length === 0, 'template: ' + (await visibleWriteActions(page)));
    await screenshot(page, 'read-only');
  }],

  ['api_refuses_anyway', async ({ page, daemon, vm }) => {
    // the page's own session, straight to the API
    const codes = await page.evaluate(async (vm) => {
      const { ref } = JSON.parse(sessionStorage.getItem('xenia-session'));
      const call = async (method, ...params) => {
        const r = await fetch('/jsonrpc', { method: 'POST', headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params: [ref, ...params] }) });
        const b = await r.json();
        return b.error ? b.error.message : 'allowed';
      };
      return [await call('VM.start', vm, false, false), await call('VM.destroy', vm),
        await call('VM.set_name_label', vm, 'renamed'), await call('VM.clone', vm, 'sneaky')];
    }, vm);
    assert(codes.every((c) => c === 'RBAC_PERMISSION_DENIED'), 'refused: ' + JSON.stringify(codes));
    // and the console endpoint refuses the session (403), so a websocket
    // to it never opens
    const [status, opened] = await page.evaluate(async () => {
      const { ref } = JSON.parse(sessionStorage.getItem('xenia-session'));
      const status = (await fetch(`/console?uuid=none&session_id=${ref}`)).status;
      const opened = await new Promise((done) => {
        const ws = new WebSocket(`wss://${location.host}/console?uuid=none&session_id=${ref}`);
        ws.onopen = () => done(true);
        ws.onerror = ws.onclose = () => done(false);
      });
      return [status, opened];
    });
    assert(status === 403 && !opened, `console refused: ${status}, opened ${opened}`);
    assert((await daemon.api('VM.get_power_state', vm)) === 'Halted', 'still halted');
    assert((await daemon.api('VM.get_name_label', vm)) === 'ro-target', 'name unchanged');
    assert((await daemon.api('VM.get_by_name_label', 'sneaky')).length === 0, 'no clone made');
  }],
];
