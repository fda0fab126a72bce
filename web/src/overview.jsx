// overview.jsx: the upper pane's table, as in the seeds' console and
// XenCenter's pool overview: Name, Status, CPU usage ("13% of 8 CPUs"),
// Used memory ("96% of 16 GB"), Disks and Network (average / maximum
// KB/s over the last five minutes), and a warning mark on running VMs
// without guest tools. Figures come from /rrd_updates, read again every
// step (5 s), as XenCenter does; the rows themselves follow events.
import { useEffect, useState } from 'preact/hooks';
import { useCtx } from './ctx.js';
import { fetchUpdates, summarize } from './rrd.js';
import { isVM, vmStatus, statusClass, sortByName, bytes, pct } from './model.js';

const WINDOW = 300;

export function useOverviewMetrics(session) {
  const [figures, setFigures] = useState({});
  const [available, setAvailable] = useState(true);
  useEffect(() => {
    let stop = false, timer = null, skew = 0;
    const tick = async () => {
      let next = 5000;
      try {
        const now = Math.floor(Date.now() / 1000) + skew;
        const t = await fetchUpdates(session, { start: now - WINDOW, interval: 5, host: true });
        if (t.end && Math.abs(t.end - now) > 60) skew += t.end - now;
        if (!stop) { setFigures(summarize(t)); setAvailable(true); }
      } catch (e) {
        if (!stop) setAvailable(false);
        next = 30000;
      }
      if (!stop) timer = setTimeout(tick, next);
    };
    tick();
    return () => { stop = true; clearTimeout(timer); };
  }, [session]);
  return [figures, available];
}

function Meter({ value, label, testid }) {
  if (value == null) return <span class="muted">—</span>;
  return (
    <span class="meter-cell" data-testid={testid}>
      <span class="meter" role="meter" aria-valuemin="0" aria-valuemax="100" aria-valuenow={Math.round(value * 100)} aria-label={label}>
        <span style={{ width: pct(value) }} />
      </span>
      <span>{label}</span>
    </span>
  );
}

const kbs = (r) => (r == null ? <span class="muted">—</span> :
  <span>{(r.avg / 1024).toFixed(1)} / {(r.max / 1024).toFixed(1)}</span>);

function noTools(store, vm) {
  if (vm.power_state !== 'Running') return false;
  const gm = store.get(vm.guest_metrics);
  return !gm || gm.PV_drivers_detected === false || gm.live === false;
}

function vmRow(store, ref, vm, fig) {
  const status = vmStatus(vm);
  const m = store.get(vm.metrics);
  const vcpus = (m && Number(m.VCPUs_number)) || Number(vm.VCPUs_at_startup) || 1;
  const memTotal = fig?.memory ?? (vm.power_state === 'Running' ? Number(m?.memory_actual || vm.memory_static_max) : null);
  let memUsed = null;
  if (fig && fig.memory != null && fig.memory_internal_free != null) memUsed = fig.memory - fig.memory_internal_free * 1024;
  const nvbd = (vm.VBDs || []).filter((b) => store.get(b)?.type === 'Disk').length;
  return {
    ref, name: vm.name_label, kind: 'vm', status, warn: noTools(store, vm),
    cpu: vm.power_state === 'Running' && fig && fig.cpu != null ? fig.cpu : null,
    cpuText: (c) => `${pct(c)} of ${vcpus} CPU${vcpus === 1 ? '' : 's'}`,
    memFrac: memUsed != null && memTotal ? memUsed / memTotal : null,
    memText: memUsed != null ? `${pct(memUsed / memTotal)} of ${bytes(memTotal)}` : memTotal ? bytes(memTotal) : null,
    disk: fig?.disk, net: fig?.net, ndisks: nvbd,
  };
}

function hostRow(store, ref, host, fig) {
  const hm = store.get(host.metrics);
  const ncpu = (host.host_CPUs || []).length || Number(host.cpu_info?.cpu_count) || fig?.ncpus || 0;
  const total = fig?.memTotal ?? (hm ? Number(hm.memory_total) : null);
  const used = fig?.memUsed ?? (hm ? Number(hm.memory_total) - Number(hm.memory_free) : null);
  return {
    ref, name: host.name_label, kind: 'host', status: host.enabled === false ? 'Disabled' : 'On',
    cpu: fig?.cpu ?? null, cpuText: (c) => `${pct(c)} of ${ncpu} CPUs`,
    memFrac: total ? used / total : null, memText: total ? `${pct(used / total)} of ${bytes(total)}` : null,
    disk: fig?.disk, net: fig?.net,
  };
}

// The rows for the selection: a pool shows itself, its hosts and every
// VM; a host its VMs; a VM the VMs of its host.
function rowsFor(store, sel, figures) {
  const cls = store.classOf[sel];
  const hosts = sortByName(Object.entries(store.all('host')));
  const vms = sortByName(Object.entries(store.all('vm'))).filter(([, vm]) => isVM(vm));
  let hostFilter = null;
  const rows = [];
  if (cls === 'pool') {
    for (const [ref, h] of hosts) rows.push(hostRow(store, ref, h, figures[h.uuid]));
  } else if (cls === 'host') {
    hostFilter = sel;
    rows.push(hostRow(store, sel, store.get(sel), figures[store.get(sel).uuid]));
  } else if (cls === 'vm' && isVM(store.get(sel))) {
    hostFilter = store.get(sel).resident_on;
  } else return null;
  const single = hosts.length === 1;
  for (const [ref, vm] of vms) {
    if (hostFilter && vm.resident_on !== hostFilter && !(single && vm.power_state !== 'Running')) continue;
    rows.push(vmRow(store, ref, vm, figures[vm.uuid]));
  }
  return rows;
}

export function Overview({ sel }) {
  const { store, session, select } = useCtx();
  const [figures, available] = useOverviewMetrics(session);
  const [sort, setSort] = useState(['name', 1]);
  const rows = rowsFor(store, sel, figures);
  if (!rows) return null;
  const key = { name: (r) => r.name || '', status: (r) => r.status, cpu: (r) => r.cpu ?? -1, mem: (r) => r.memFrac ?? -1 }[sort[0]];
  const fixed = rows.filter((r) => r.kind === 'host');
  const vms = rows.filter((r) => r.kind === 'vm').sort((a, b) => {
    const x = key(a), y = key(b);
    return (typeof x === 'string' ? x.localeCompare(y, undefined, { numeric: true }) : x - y) * sort[1];
  });
  const th = (id, label) => (
    <th aria-sort={sort[0] === id ? (sort[1] > 0 ? 'ascending' : 'descending') : 'none'}>
      <button class="th" onClick={() => setSort([id, sort[0] === id ? -sort[1] : 1])}>{label}{sort[0] === id ? (sort[1] > 0 ? ' ▲' : ' ▼') : ''}</button>
    </th>
  );
  return (
    <section class="overview" aria-label="Overview">
      <table class="grid" data-testid="overview">
        <thead><tr>{th('name', 'Name')}{th('status', 'Status')}{th('cpu', 'CPU usage')}{th('mem', 'Used memory')}<th>Disks (avg / max KB/s)</th><th>Network (avg / max KB/s)</th></tr></thead>
        <tbody>
          {[...fixed, ...vms].map((r) => (
            <tr key={r.ref} class={(r.ref === sel ? 'sel ' : '') + r.kind} onClick={() => select(r.ref)} data-ref={r.ref}>
              <td>
                <button class="link" onClick={(e) => { e.stopPropagation(); select(r.ref); }}>{r.name}</button>
                {r.warn && <span class="warnmark" title="No guest tools: the guest agent is not running" aria-label="No guest tools" data-testid="no-tools">!</span>}
              </td>
              <td><span class={'status ' + statusClass(r.status)} data-testid="status">{r.status}</span></td>
              <td><Meter value={r.cpu} label={r.cpu != null ? r.cpuText(r.cpu) : ''} testid="cpu" /></td>
              <td>{r.memFrac != null ? <Meter value={r.memFrac} label={r.memText} /> : r.memText ? <span>{r.memText}</span> : <span class="muted">—</span>}</td>
              <td>{kbs(r.disk)}{r.ndisks != null && <span class="muted"> · {r.ndisks} disk{r.ndisks === 1 ? '' : 's'}</span>}</td>
              <td>{kbs(r.net)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {!available && <p class="muted small">Performance figures are not available (this host serves no /rrd_updates).</p>}
    </section>
  );
}
