// wizard.jsx: installing a VM from a template, as `xe vm-install` does
// it over the API: VM.clone of the template, VM.provision (its disks),
// is_a_template false; then the choices: vCPUs, memory, the size of the
// template's disks (they only grow: VDI.resize), a network interface, a
// CD drive with an ISO, and an optional start. Each step's progress
// shows; a failure names the step and the XenAPI error in plain words.
import { useState } from 'preact/hooks';
import { useCtx } from './ctx.js';
import { isTemplate, sortByName, bytes } from './model.js';
import { describeError } from './api.js';
import { runAsync } from './tasks.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

function templateDisks(store, tpl) {
  return (tpl.VBDs || []).map((b) => store.get(b)).filter((b) => b && b.type === 'Disk' && store.get(b.VDI))
    .map((b) => ({ userdevice: b.userdevice, size: Number(store.get(b.VDI).virtual_size) }));
}

export function Wizard({ template, close }) {
  const { store, session, select } = useCtx();
  const templates = sortByName(Object.entries(store.all('vm')).filter(([, v]) => isTemplate(v)));
  const nets = Object.entries(store.all('network'));
  const isos = Object.entries(store.all('vdi')).filter(([, v]) => store.get(v.SR)?.content_type === 'iso');
  const initial = (ref) => {
    const t = store.get(ref);
    const disks = t ? templateDisks(store, t) : [];
    return {
      tpl: ref || '', name: '', desc: '', vcpus: t ? Number(t.VCPUs_at_startup) : 1,
      mem: t ? Math.round(Number(t.memory_static_max) / MiB) : 256,
      disk: disks.length ? +(disks[0].size / GiB).toFixed(2) : 0, minDisk: disks.length ? disks[0].size : 0,
      net: nets[0]?.[0] || '', iso: '', start: true,
    };
  };
  const [f, setF] = useState(() => initial(template || templates[0]?.[0]));
  const [steps, setSteps] = useState([]);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const set = (k) => (e) => setF({ ...f, [k]: e.target.type === 'checkbox' ? e.target.checked : e.target.value });

  const step = (label) => setSteps((s) => [...s.map((x) => ({ ...x, done: true })), { label, done: false }]);

  const install = async (e) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    setSteps([]);
    let vm = null;
    try {
      step('Cloning the template');
      vm = await runAsync(session, store, f.tpl, 'VM.clone', f.tpl, f.name);
      if (f.desc) await session.call('VM.set_name_description', vm, f.desc);
      step('Creating the disks');
      await runAsync(session, store, vm, 'VM.provision', vm);
      await session.call('VM.set_is_a_template', vm, false);
      step('Setting vCPUs and memory');
      const vcpus = Number(f.vcpus);
      const rec = await session.call('VM.get_record', vm);
      if (vcpus > Number(rec.VCPUs_max)) await session.call('VM.set_VCPUs_max', vm, vcpus);
      await session.call('VM.set_VCPUs_at_startup', vm, vcpus);
      if (vcpus < Number(rec.VCPUs_max)) await session.call('VM.set_VCPUs_max', vm, vcpus);
      const mem = Number(f.mem) * MiB;
      if (mem !== Number(rec.memory_static_max))
        await session.call('VM.set_memory_limits', vm, String(Math.min(mem, Number(rec.memory_static_min))), String(mem), String(mem), String(mem));
      const want = Math.round(Number(f.disk) * GiB);
      if (want > f.minDisk) {
        step('Growing the disk');
        const first = await firstDisk(session, rec);
        if (first) await runAsync(session, store, vm, 'VDI.resize', first, String(want));
      }
      if (f.net) {
        step('Adding the network interface');
        const have = await Promise.all((rec.VIFs || []).map((v) => session.call('VIF.get_device', v)));
        if (!have.includes('0'))
          await session.call('VIF.create', { device: '0', network: f.net, VM: vm, MAC: '', MTU: '1500', other_config: {}, qos_algorithm_type: '', qos_algorithm_params: {} });
      }
      if (f.iso) {
        step('Inserting the ISO');
        await insertISO(session, vm, f.iso);
      }
      if (f.start) {
        step('Starting');
        select(vm);
        close();
        runAsync(session, store, vm, 'VM.start', vm, false, false).catch(() => {});
        return;
      }
      select(vm);
      close();
    } catch (err) {
      setError({ text: describeError(err.code, err.params), code: err.code, params: err.params });
      setBusy(false);
      if (vm) select(vm);
    }
  };
  const tpl = store.get(f.tpl);
  return (
    <div class="modal-bg" onKeyDown={(e) => e.key === 'Escape' && !busy && close()}>
      <form class="modal wizard" role="dialog" aria-modal="true" aria-label="New VM" onSubmit={install} data-testid="wizard">
        <h2>New VM</h2>
        <label class="field"><span>Template</span>
          <select name="template" value={f.tpl} onChange={(e) => setF({ ...initial(e.target.value), name: f.name })} required autofocus>
            {templates.map(([r, t]) => <option key={r} value={r}>{t.name_label}</option>)}
          </select></label>
        {tpl && <p class="muted small">{tpl.name_description}</p>}
        <label class="field"><span>Name</span><input name="name" value={f.name} onInput={set('name')} required /></label>
        <label class="field"><span>Description</span><input name="description" value={f.desc} onInput={set('desc')} /></label>
        <div class="cols">
          <label class="field"><span>vCPUs</span><input name="vcpus" type="number" min="1" max="64" value={f.vcpus} onInput={set('vcpus')} required /></label>
          <label class="field"><span>Memory (MB)</span><input name="memory" type="number" min="16" step="16" value={f.mem} onInput={set('mem')} required /></label>
        </div>
        {f.minDisk > 0 && <label class="field"><span>Disk size (GB)</span>
          <input name="disk" type="number" step="0.01" min={(f.minDisk / GiB).toFixed(2)} value={f.disk} onInput={set('disk')} />
          <small class="muted">the template's disk is {bytes(f.minDisk)}; it can only grow</small></label>}
        <label class="field"><span>Network</span>
          <select name="network" value={f.net} onChange={set('net')}>
            <option value="">No network</option>
            {nets.map(([r, n]) => <option key={r} value={r}>{n.name_label}{n.bridge ? ` (${n.bridge})` : ''}</option>)}
          </select></label>
        <label class="field"><span>CD (ISO)</span>
          <select name="iso" value={f.iso} onChange={set('iso')}>
            <option value="">No CD</option>
            {isos.map(([r, v]) => <option key={r} value={r}>{v.name_label}</option>)}
          </select></label>
        <label class="check"><input type="checkbox" name="start" checked={f.start} onChange={set('start')} /> Start the VM after installing it</label>
        {steps.length > 0 && <ol class="steps" aria-live="polite">{steps.map((s, i) => <li key={i} class={s.done ? 'done' : ''}>{s.label}{s.done ? ' ✓' : '…'}</li>)}</ol>}
        {error && <p class="error" role="alert">{error.text} <small class="muted">{error.code} {(error.params || []).join(' ')}</small></p>}
        <div class="buttons">
          <button type="button" onClick={close} disabled={busy}>Cancel</button>
          <button type="submit" class="primary" disabled={busy || !f.tpl} data-action="install">Install</button>
        </div>
      </form>
    </div>
  );
}

async function firstDisk(session, rec) {
  let best = null;
  for (const b of rec.VBDs || []) {
    const vbd = await session.call('VBD.get_record', b);
    if (vbd.type === 'Disk' && (!best || Number(vbd.userdevice) < Number(best.userdevice))) best = vbd;
  }
  return best ? best.VDI : null;
}

// Into the VM's CD drive, or a new one (the next free device).
async function insertISO(session, vm, iso) {
  const rec = await session.call('VM.get_record', vm);
  const vbds = await Promise.all((rec.VBDs || []).map(async (b) => [b, await session.call('VBD.get_record', b)]));
  const cd = vbds.find(([, b]) => b.type === 'CD');
  if (cd) {
    if (!cd[1].empty) await session.call('VBD.eject', cd[0]);
    await session.call('VBD.insert', cd[0], iso);
    return;
  }
  const used = new Set(vbds.map(([, b]) => b.userdevice));
  let dev = 1;
  while (used.has(String(dev))) dev++;
  await session.call('VBD.create', { VM: vm, VDI: iso, userdevice: String(dev), bootable: false, mode: 'RO', type: 'CD', empty: false, unpluggable: true, other_config: {}, qos_algorithm_type: '', qos_algorithm_params: {} });
}
