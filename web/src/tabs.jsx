// tabs.jsx: the lower pane: the selected object's tabs. A VM has
// General, Console, Graphical console (when it has VGA: an rfb console),
// Performance, Storage, Network, Snapshots and Tasks; a host and the
// pool General, Performance and Tasks; an SR its disks.
import { useEffect, useState } from 'preact/hooks';
import { useCtx } from './ctx.js';
import { isVM, isTemplate, bytes, vmStatus } from './model.js';
import { Perf } from './perf.jsx';
import { TextConsole, GraphicalConsole } from './console.jsx';
import { TaskRow, deleteVM } from './app.jsx';
import { taskSubject } from './tasks.js';

function tabsFor(store, sel) {
  const cls = store.classOf[sel];
  const rec = store.get(sel);
  if (cls === 'vm' && isVM(rec)) {
    const consoles = (rec.consoles || []).map((c) => store.get(c)).filter(Boolean);
    const t = [['general', 'General'], ['console', 'Console']];
    const hvm = !rec.PV_kernel;
    if (hvm || consoles.some((c) => c.protocol === 'rfb')) t.push(['vnc', 'Graphical console']);
    t.push(['perf', 'Performance'], ['storage', 'Storage'], ['network', 'Network'], ['snapshots', 'Snapshots'], ['tasks', 'Tasks']);
    return t;
  }
  if (cls === 'vm') return [['general', 'General'], ['storage', 'Storage'], ['network', 'Network']];
  if (cls === 'host' || cls === 'pool') return [['general', 'General'], ['perf', 'Performance'], ['tasks', 'Tasks']];
  if (cls === 'sr') return [['general', 'General'], ['disks', 'Disks']];
  return [['general', 'General']];
}

export function Tabs({ sel }) {
  const { store } = useCtx();
  const [tab, setTab] = useState('general');
  const tabs = tabsFor(store, sel);
  const cur = tabs.find((t) => t[0] === tab) ? tab : 'general';
  const onKey = (e) => {
    const i = tabs.findIndex((t) => t[0] === cur);
    let j = i;
    if (e.key === 'ArrowRight') j = (i + 1) % tabs.length;
    else if (e.key === 'ArrowLeft') j = (i + tabs.length - 1) % tabs.length;
    else return;
    e.preventDefault();
    setTab(tabs[j][0]);
    document.getElementById('tab-' + tabs[j][0])?.focus();
  };
  if (!store.get(sel)) return null;
  return (
    <section class="tabs">
      <div role="tablist" aria-label="Details" onKeyDown={onKey}>
        {tabs.map(([id, label]) => (
          <button role="tab" id={'tab-' + id} key={id} aria-selected={id === cur} tabIndex={id === cur ? 0 : -1}
            aria-controls="tabpanel" onClick={() => setTab(id)}>{label}</button>
        ))}
      </div>
      <div role="tabpanel" id="tabpanel" class="panel" aria-labelledby={'tab-' + cur}>
        <Panel key={sel + cur} tab={cur} sel={sel} />
      </div>
    </section>
  );
}

function Panel({ tab, sel }) {
  switch (tab) {
    case 'console': return <TextConsole vmRef={sel} />;
    case 'vnc': return <GraphicalConsole vmRef={sel} />;
    case 'perf': return <Perf sel={sel} />;
    case 'storage': return <Storage vmRef={sel} />;
    case 'network': return <Network vmRef={sel} />;
    case 'snapshots': return <Snapshots vmRef={sel} />;
    case 'tasks': return <TasksTab sel={sel} />;
    case 'disks': return <SRDisks srRef={sel} />;
    default: return <General sel={sel} />;
  }
}

// ---- General ----------------------------------------------------------------

const MiB = 1024 * 1024;

function Field({ label, children }) {
  return <label class="field"><span>{label}</span>{children}</label>;
}

function General({ sel }) {
  const { store } = useCtx();
  const cls = store.classOf[sel];
  if (cls === 'vm') return <VMGeneral vmRef={sel} />;
  const r = store.get(sel);
  const rows = [['Name', r.name_label], ['Description', r.name_description], ['UUID', r.uuid]];
  if (cls === 'host') {
    const m = store.get(r.metrics);
    rows.push(['Address', r.address], ['Software', Object.entries(r.software_version || {}).map(([k, v]) => `${k} ${v}`).join(', ')],
      ['CPUs', (r.host_CPUs || []).length || r.cpu_info?.cpu_count], ['Memory', m ? `${bytes(m.memory_total - m.memory_free)} used of ${bytes(m.memory_total)}` : '—'],
      ['Enabled', r.enabled ? 'yes' : 'no']);
  } else if (cls === 'sr') {
    const used = Number(r.physical_utilisation), size = Number(r.physical_size);
    rows.push(['Type', r.type], ['Content', r.content_type || 'disks'], ['Shared', r.shared ? 'yes' : 'no'],
      ['Usage', size ? <span class="meter-cell"><span class="meter"><span style={{ width: Math.round(100 * used / size) + '%' }} /></span>{bytes(used)} of {bytes(size)}</span> : bytes(used)]);
  } else if (cls === 'network') {
    rows.push(['Bridge', r.bridge], ['MTU', r.MTU], ['VIFs', (r.VIFs || []).length], ['PIFs', (r.PIFs || []).map((p) => store.get(p)?.device).join(', ') || 'none (private)']);
  } else if (cls === 'pool') {
    rows.push(['Master', store.get(r.master)?.name_label], ['Default SR', store.get(r.default_SR)?.name_label || '—'],
      ['VMs', Object.values(store.all('vm')).filter(isVM).length], ['Hosts', Object.keys(store.all('host')).length]);
  }
  return <table class="props"><tbody>{rows.map(([k, v]) => <tr key={k}><th>{k}</th><td>{v ?? '—'}</td></tr>)}</tbody></table>;
}

function VMGeneral({ vmRef }) {
  const { store, session, note } = useCtx();
  const vm = store.get(vmRef);
  const halted = vm.power_state === 'Halted';
  const init = () => ({
    name: vm.name_label, desc: vm.name_description, vcpus: Number(vm.VCPUs_at_startup),
    mem: Math.round(Number(vm.memory_static_max) / MiB), args: vm.PV_args || '',
    order: vm.HVM_boot_params?.order || 'cd', auto: vm.other_config?.auto_poweron === 'true',
    ha: vm.ha_restart_priority || '',
  });
  const [f, setF] = useState(init);
  const [busy, setBusy] = useState(false);
  useEffect(() => setF(init()), [vmRef]);
  const set = (k) => (e) => setF({ ...f, [k]: e.target.type === 'checkbox' ? e.target.checked : e.target.value });
  const editable = (m) => session.can(m);
  const apply = async (e) => {
    e.preventDefault();
    setBusy(true);
    const steps = [];
    if (f.name !== vm.name_label) steps.push(['VM.set_name_label', f.name]);
    if (f.desc !== vm.name_description) steps.push(['VM.set_name_description', f.desc]);
    if (halted && Number(f.vcpus) !== Number(vm.VCPUs_at_startup)) {
      if (Number(f.vcpus) > Number(vm.VCPUs_max)) steps.push(['VM.set_VCPUs_max', Number(f.vcpus)], ['VM.set_VCPUs_at_startup', Number(f.vcpus)]);
      else steps.push(['VM.set_VCPUs_at_startup', Number(f.vcpus)], ['VM.set_VCPUs_max', Number(f.vcpus)]);
    }
    const mem = Number(f.mem) * MiB;
    if (halted && mem !== Number(vm.memory_static_max))
      steps.push(['VM.set_memory_limits', Math.min(mem, Number(vm.memory_static_min)), mem, mem, mem]);
    if (vm.PV_kernel && f.args !== vm.PV_args) steps.push(['VM.set_PV_args', f.args]);
    if (!vm.PV_kernel && f.order !== (vm.HVM_boot_params?.order || 'cd')) steps.push(['VM.set_HVM_boot_params', { ...(vm.HVM_boot_params || {}), order: f.order }]);
    if (f.auto !== (vm.other_config?.auto_poweron === 'true')) {
      steps.push(['VM.remove_from_other_config', 'auto_poweron']);
      if (f.auto) steps.push(['VM.add_to_other_config', 'auto_poweron', 'true']);
    }
    if ('ha_restart_priority' in vm && f.ha !== vm.ha_restart_priority) steps.push(['VM.set_ha_restart_priority', f.ha]);
    for (const [m, ...args] of steps) {
      try {
        await session.call(m, vmRef, ...args);
      } catch (err) {
        note(err, 'Change ' + m.replace('VM.set_', '').replace(/_/g, ' '));
        break;
      }
    }
    setBusy(false);
  };
  const ro = !editable('VM.set_name_label');
  return (
    <form class="general" onSubmit={apply} aria-label="VM properties">
      <div class="cols">
        <div>
          <Field label="Name"><input name="name_label" value={f.name} onInput={set('name')} readOnly={ro} required /></Field>
          <Field label="Description"><input value={f.desc} onInput={set('desc')} readOnly={ro} /></Field>
          <Field label="vCPUs"><input type="number" min="1" max="64" value={f.vcpus} onInput={set('vcpus')} readOnly={ro || !halted} /></Field>
          <Field label="Memory (MB)"><input type="number" min="16" step="16" value={f.mem} onInput={set('mem')} readOnly={ro || !halted || !editable('VM.set_memory_limits')} /></Field>
          {vm.PV_kernel
            ? <Field label="Boot parameters"><input value={f.args} onInput={set('args')} readOnly={ro} /></Field>
            : <Field label="Boot order"><select value={f.order} onChange={set('order')} disabled={ro}><option value="cd">Disk, then CD</option><option value="dc">CD, then disk</option><option value="c">Disk only</option><option value="d">CD only</option></select></Field>}
          <Field label="Start with the host"><input type="checkbox" checked={f.auto} onChange={set('auto')} disabled={ro} /></Field>
          {'ha_restart_priority' in vm && <Field label="HA restart priority"><select value={f.ha} onChange={set('ha')} disabled={!editable('VM.set_ha_restart_priority')}><option value="">Do not restart</option><option value="restart">Restart</option><option value="best-effort">Best effort</option></select></Field>}
          {!halted && <p class="muted small">vCPUs and memory can be changed while the VM is off.</p>}
          {!ro && <button type="submit" class="primary" disabled={busy} data-action="apply">Apply</button>}
        </div>
        <table class="props"><tbody>
          <tr><th>Status</th><td>{vmStatus(vm)}</td></tr>
          <tr><th>UUID</th><td>{vm.uuid}</td></tr>
          <tr><th>Boot</th><td>{vm.PV_kernel ? 'kernel (paravirtual)' : 'firmware (HVM, VGA)'}</td></tr>
          <tr><th>Operating system</th><td>{osName(store, vm)}</td></tr>
          <tr><th>Guest tools</th><td>{toolsText(store, vm)}</td></tr>
          {isTemplate(vm) && <tr><th>Template</th><td>{vm.is_default_template ? 'built in' : 'custom'}</td></tr>}
        </tbody></table>
      </div>
    </form>
  );
}

function osName(store, vm) {
  const gm = store.get(vm.guest_metrics);
  const os = gm?.os_version || {};
  return os.name || os.distro || '—';
}

function toolsText(store, vm) {
  const gm = store.get(vm.guest_metrics);
  if (!gm) return vm.power_state === 'Running' ? 'not detected' : '—';
  return gm.PV_drivers_detected === false ? 'not detected' : gm.live === false ? 'not responding' : 'running';
}

// ---- Storage ----------------------------------------------------------------

function isoVDIs(store) {
  return Object.entries(store.all('vdi')).filter(([, v]) => store.get(v.SR)?.content_type === 'iso')
    .sort((a, b) => a[1].name_label.localeCompare(b[1].name_label));
}

function nextDevice(store, vm) {
  const used = new Set([...(vm.VBDs || []).map((b) => store.get(b)?.userdevice),
    ...(vm.VIFs || []).map(() => null)]);
  for (let i = 0; i < 16; i++) if (!used.has(String(i))) return String(i);
  return null;
}

function Storage({ vmRef }) {
  const { store, session, note, run, ask } = useCtx();
  const vm = store.get(vmRef);
  const [adding, setAdding] = useState(null);
  const running = vm.power_state === 'Running';
  const vbds = (vm.VBDs || []).map((r) => [r, store.get(r)]).filter(([, b]) => b)
    .sort((a, b) => Number(a[1].userdevice) - Number(b[1].userdevice));
  const call = (title, m, ...a) => session.call(m, ...a).catch((e) => { note(e, title); throw e; });
  const resize = async (vdi) => {
    const cur = Number(store.get(vdi).virtual_size);
    const v = prompt('New size in GB (disks only grow):', (cur / 1024 ** 3).toFixed(1));
    if (!v) return;
    const size = Math.round(Number(v) * 1024 ** 3);
    if (!(size > cur)) { note({ code: 'INVALID_VALUE', params: ['size', v] }, 'Resize'); return; }
    run('Resize disk', vmRef, 'VDI.resize', vdi, String(size));
  };
  const detach = async (ref, b) => {
    if (!(await ask(`Detach disk ${b.userdevice} from ${vm.name_label}? The disk itself is kept.`))) return;
    try {
      if (b.currently_attached && running) await call('Unplug', 'VBD.unplug', ref);
      await call('Detach', 'VBD.destroy', ref);
    } catch { /* noted */ }
  };
  const write = session.can('VBD.create');
  return (
    <div>
      <table class="grid" data-testid="vbds">
        <thead><tr><th>Device</th><th>Type</th><th>Disk</th><th>Size</th><th>SR</th><th>Mode</th><th>Attached</th><th /></tr></thead>
        <tbody>
          {vbds.map(([ref, b]) => {
            const vdi = store.get(b.VDI);
            return (
              <tr key={ref} data-type={b.type}>
                <td>{b.userdevice}</td><td>{b.type === 'CD' ? 'CD drive' : 'Disk'}</td>
                <td data-testid="vbd-disk">{vdi ? vdi.name_label : b.empty ? <span class="muted">empty</span> : '—'}</td>
                <td>{vdi && b.type !== 'CD' ? bytes(vdi.virtual_size) : ''}</td>
                <td>{vdi ? store.get(vdi.SR)?.name_label : ''}</td><td>{b.mode}</td><td>{b.currently_attached ? 'yes' : 'no'}</td>
                <td class="actions">
                  {b.type === 'CD' && session.can('VBD.insert') && <CDControl vbdRef={ref} vbd={b} />}
                  {b.type === 'Disk' && vdi && session.can('VDI.resize') && <button class="small" onClick={() => resize(b.VDI)}>Resize</button>}
                  {b.type === 'Disk' && write && <button class="small" onClick={() => detach(ref, b)}>Detach</button>}
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
      {write && isVM(vm) && (
        <div class="row">
          <button onClick={() => setAdding('new')} data-action="add-disk">Add disk…</button>
          <button onClick={() => setAdding('attach')}>Attach disk…</button>
          {!vbds.some(([, b]) => b.type === 'CD') && vm.power_state === 'Halted' && <button onClick={async () => {
            const dev = nextDevice(store, vm);
            try {
              await call('Add CD drive', 'VBD.create', { VM: vmRef, VDI: 'OpaqueRef:NULL', userdevice: dev, bootable: false, mode: 'RO', type: 'CD', empty: true, unpluggable: true, other_config: {}, qos_algorithm_type: '', qos_algorithm_params: {} });
            } catch { /* noted */ }
          }}>Add CD drive</button>}
        </div>
      )}
      {adding && <AddDisk vmRef={vmRef} mode={adding} close={() => setAdding(null)} />}
    </div>
  );
}

function CDControl({ vbdRef, vbd }) {
  const { store, run } = useCtx();
  const isos = isoVDIs(store);
  if (!vbd.empty)
    return <button class="small" data-action="eject" onClick={() => run('Eject', vbd.VM, 'VBD.eject', vbdRef)}>Eject</button>;
  return (
    <select aria-label="Insert an ISO" data-action="insert-iso" value="" onChange={(e) => e.target.value && run('Insert ' + store.get(e.target.value).name_label, vbd.VM, 'VBD.insert', vbdRef, e.target.value)}>
      <option value="">Insert ISO…</option>
      {isos.map(([ref, v]) => <option key={ref} value={ref}>{v.name_label}</option>)}
    </select>
  );
}

function AddDisk({ vmRef, mode, close }) {
  const { store, session, note } = useCtx();
  const vm = store.get(vmRef);
  const srs = Object.entries(store.all('sr')).filter(([, s]) => s.content_type !== 'iso');
  const free = Object.entries(store.all('vdi')).filter(([, v]) => !v.is_a_snapshot && !(v.VBDs || []).length && store.get(v.SR)?.content_type !== 'iso' && !v.read_only);
  const [f, setF] = useState({ name: vm.name_label + ' disk', size: 1, sr: srs[0]?.[0] || '', vdi: free[0]?.[0] || '' });
  const [busy, setBusy] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    try {
      let vdi = f.vdi;
      if (mode === 'new')
        vdi = await session.call('VDI.create', { name_label: f.name, name_description: '', SR: f.sr, virtual_size: String(Math.round(Number(f.size) * 1024 ** 3)), type: 'user', sharable: false, read_only: false, other_config: {} });
      const vbd = await session.call('VBD.create', { VM: vmRef, VDI: vdi, userdevice: nextDevice(store, vm), bootable: false, mode: 'RW', type: 'Disk', empty: false, unpluggable: true, other_config: {}, qos_algorithm_type: '', qos_algorithm_params: {} });
      if (vm.power_state === 'Running') await session.call('VBD.plug', vbd);
      close();
    } catch (err) {
      note(err, mode === 'new' ? 'Add disk' : 'Attach disk');
      setBusy(false);
    }
  };
  return (
    <form class="inline-form" onSubmit={submit} aria-label={mode === 'new' ? 'Add a new disk' : 'Attach a disk'}>
      {mode === 'new' ? <>
        <Field label="Name"><input value={f.name} onInput={(e) => setF({ ...f, name: e.target.value })} required /></Field>
        <Field label="Size (GB)"><input type="number" min="0.01" step="0.01" value={f.size} onInput={(e) => setF({ ...f, size: e.target.value })} required /></Field>
        <Field label="SR"><select value={f.sr} onChange={(e) => setF({ ...f, sr: e.target.value })}>{srs.map(([r, s]) => <option key={r} value={r}>{s.name_label}</option>)}</select></Field>
      </> : <Field label="Disk"><select value={f.vdi} onChange={(e) => setF({ ...f, vdi: e.target.value })} required>{free.map(([r, v]) => <option key={r} value={r}>{v.name_label} ({bytes(v.virtual_size)})</option>)}</select></Field>}
      <button type="submit" class="primary" disabled={busy}>{mode === 'new' ? 'Add' : 'Attach'}</button>
      <button type="button" onClick={close}>Cancel</button>
    </form>
  );
}

function SRDisks({ srRef }) {
  const { store } = useCtx();
  const sr = store.get(srRef);
  const vdis = (sr.VDIs || []).map((r) => [r, store.get(r)]).filter(([, v]) => v).sort((a, b) => a[1].name_label.localeCompare(b[1].name_label));
  return (
    <table class="grid"><thead><tr><th>Name</th><th>Size</th><th>Used</th><th>Used by</th></tr></thead>
      <tbody>{vdis.map(([r, v]) => <tr key={r}><td>{v.name_label}</td><td>{bytes(v.virtual_size)}</td><td>{bytes(v.physical_utilisation)}</td>
        <td>{(v.VBDs || []).map((b) => store.get(store.get(b)?.VM)?.name_label).filter(Boolean).join(', ')}</td></tr>)}</tbody></table>
  );
}

// ---- Network ----------------------------------------------------------------

function Network({ vmRef }) {
  const { store, session, note, ask } = useCtx();
  const vm = store.get(vmRef);
  const gm = store.get(vm.guest_metrics);
  const nets = Object.entries(store.all('network'));
  const [net, setNet] = useState(nets[0]?.[0] || '');
  const vifs = (vm.VIFs || []).map((r) => [r, store.get(r)]).filter(([, v]) => v).sort((a, b) => Number(a[1].device) - Number(b[1].device));
  const ips = (dev) => Object.entries(gm?.networks || {}).filter(([k]) => k.startsWith(dev + '/')).map(([, v]) => v).join(', ');
  const add = async () => {
    const used = new Set(vifs.map(([, v]) => v.device));
    let dev = 0;
    while (used.has(String(dev))) dev++;
    try {
      const vif = await session.call('VIF.create', { device: String(dev), network: net, VM: vmRef, MAC: '', MTU: '1500', other_config: {}, qos_algorithm_type: '', qos_algorithm_params: {} });
      if (vm.power_state === 'Running') await session.call('VIF.plug', vif);
    } catch (e) { note(e, 'Add network interface'); }
  };
  const remove = async (ref, v) => {
    if (!(await ask(`Remove interface ${v.device} (${v.MAC}) from ${vm.name_label}?`))) return;
    try {
      if (v.currently_attached && vm.power_state === 'Running') await session.call('VIF.unplug', ref);
      await session.call('VIF.destroy', ref);
    } catch (e) { note(e, 'Remove network interface'); }
  };
  const write = session.can('VIF.create');
  return (
    <div>
      <table class="grid" data-testid="vifs">
        <thead><tr><th>Device</th><th>MAC</th><th>Network</th><th>IP addresses</th><th>Attached</th><th /></tr></thead>
        <tbody>{vifs.map(([ref, v]) => (
          <tr key={ref}><td>eth{v.device}</td><td>{v.MAC}</td><td>{store.get(v.network)?.name_label}</td>
            <td>{ips(v.device) || <span class="muted">{gm ? 'none reported' : 'no guest agent'}</span>}</td>
            <td>{v.currently_attached ? 'yes' : 'no'}</td>
            <td>{write && <button class="small" onClick={() => remove(ref, v)}>Remove</button>}</td></tr>
        ))}</tbody>
      </table>
      {write && isVM(vm) && (
        <div class="row">
          <select aria-label="Network for the new interface" value={net} onChange={(e) => setNet(e.target.value)}>
            {nets.map(([r, n]) => <option key={r} value={r}>{n.name_label}{n.bridge ? ` (${n.bridge})` : ''}</option>)}
          </select>
          <button onClick={add}>Add interface</button>
        </div>
      )}
    </div>
  );
}

// ---- Snapshots --------------------------------------------------------------

function Snapshots({ vmRef }) {
  const { store, session, run, ask, note } = useCtx();
  const vm = store.get(vmRef);
  const snaps = (vm.snapshots || []).map((r) => [r, store.get(r)]).filter(([, s]) => s)
    .sort((a, b) => String(a[1].snapshot_time).localeCompare(String(b[1].snapshot_time)));
  const [name, setName] = useState('');
  const can = (id, m) => (vm.allowed_operations || []).includes(id) && session.can(m);
  const take = (method) => (e) => {
    e.preventDefault();
    const n = name || `${vm.name_label} ${new Date().toLocaleString()}`;
    setName('');
    run(method === 'VM.checkpoint' ? 'Checkpoint' : 'Snapshot', vmRef, method, vmRef, n, ...(method === 'VM.snapshot' ? [[]] : []));
  };
  // children by parent, so the list reads as a tree
  const byParent = {};
  for (const [r, s] of snaps) {
    const p = s.parent && store.get(s.parent)?.is_a_snapshot ? s.parent : 'root';
    (byParent[p] = byParent[p] || []).push([r, s]);
  }
  const revert = async (r, s) => {
    if (!(await ask(`Revert ${vm.name_label} to "${s.name_label}"? Its current state is lost.`))) return;
    run('Revert', vmRef, 'VM.revert', r);
  };
  const rows = [];
  const walk = (p, depth) => (byParent[p] || []).forEach(([r, s]) => { rows.push([r, s, depth]); walk(r, depth + 1); });
  walk('root', 0);
  return (
    <div>
      {(can('snapshot', 'VM.snapshot') || can('checkpoint', 'VM.checkpoint')) && (
        <form class="row" onSubmit={take('VM.snapshot')}>
          <input aria-label="Snapshot name" placeholder="Snapshot name" value={name} onInput={(e) => setName(e.target.value)} />
          {can('snapshot', 'VM.snapshot') && <button type="submit" data-action="snapshot">Take snapshot</button>}
          {can('checkpoint', 'VM.checkpoint') && <button type="button" onClick={take('VM.checkpoint')}>Checkpoint (with memory)</button>}
        </form>
      )}
      {!rows.length && <p class="muted">No snapshots.</p>}
      <ul class="snaps" role="tree" aria-label="Snapshots" data-testid="snapshots">
        {rows.map(([r, s, d]) => (
          <li key={r} role="treeitem" style={{ paddingLeft: d * 18 + 'px' }} data-name={s.name_label}>
            <span class={'icon ' + (s.power_state === 'Suspended' ? 'i-checkpoint' : 'i-snapshot')} aria-hidden="true" />
            <b>{s.name_label}</b> <span class="muted">{fmtTime(s.snapshot_time)}{s.power_state === 'Suspended' ? ' · with memory' : ''}</span>
            {session.can('VM.revert') && <button class="small" data-action="revert" onClick={() => revert(r, s)}>Revert</button>}
            {session.can('VM.destroy') && <button class="small" onClick={() => deleteVM({ store, session, run, ask, note }, r)}>Delete</button>}
          </li>
        ))}
      </ul>
    </div>
  );
}

function fmtTime(t) {
  // xapi's datetimes: 20261121T10:00:00Z
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2}:\d{2}:\d{2})/.exec(String(t || ''));
  return m ? new Date(`${m[1]}-${m[2]}-${m[3]}T${m[4]}Z`).toLocaleString() : String(t || '');
}

// ---- Tasks and messages ---------------------------------------------------------

function TasksTab({ sel }) {
  const { store, session, note } = useCtx();
  const rec = store.get(sel);
  const mine = new Set(Object.keys(rec.current_operations || {}));
  const tasks = Object.entries(store.all('task'))
    .filter(([r]) => mine.has(r) || taskSubject.get(r) === sel || store.classOf[sel] !== 'vm')
    .sort((a, b) => String(b[1].created).localeCompare(String(a[1].created)));
  const msgs = Object.entries(store.all('message')).filter(([, m]) => m.obj_uuid === rec.uuid || store.classOf[sel] === 'pool')
    .sort((a, b) => String(b[1].timestamp).localeCompare(String(a[1].timestamp)));
  return (
    <div class="cols">
      <div>
        <h3>Tasks</h3>
        {!tasks.length && <p class="muted">No tasks.</p>}
        {tasks.map(([r, t]) => t.status === 'pending' || t.status === 'cancelling'
          ? <TaskRow key={r} tref={r} t={t} session={session} note={note} store={store} />
          : <div class="task" key={r}><span class="tname">{t.name_label}</span><span class={'status ' + (t.status === 'success' ? 'st-on' : 'st-off')}>{t.status}</span><span class="muted">{fmtTime(t.finished)}</span>{t.error_info?.length ? <small class="muted">{t.error_info.join(' ')}</small> : null}</div>)}
      </div>
      <div>
        <h3>Messages</h3>
        {!msgs.length && <p class="muted">No messages.</p>}
        {msgs.map(([r, m]) => <div class="task" key={r}><b>{m.name}</b><span>{m.body}</span><span class="muted">{fmtTime(m.timestamp)}</span></div>)}
      </div>
    </div>
  );
}
