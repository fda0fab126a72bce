// rrd.js: performance data from GET /rrd_updates, xapi's interface for
// graphs. The answer is rrdtool's "xport" XML:
//
//   <xport><meta><start/><step/><end/><rows/><columns/>
//     <legend><entry>AVERAGE:vm:<uuid>:cpu0</entry>...</legend></meta>
//   <data><row><t>1700000000</t><v>0.05</v>...</row>...</data></xport>
//
// Data source names are xapi's: a VM's cpu<N> (fraction of one vCPU),
// memory (bytes), memory_internal_free (KiB), vif_<dev>_rx/tx and
// vbd_<dev>_read/write (bytes/s); a host's cpu<N>, cpu_avg,
// memory_total_kib, memory_free_kib, pif_<dev>_rx/tx.

export async function fetchUpdates(session, { start, interval, host = true, vm = null, cf = 'AVERAGE' }) {
  const q = new URLSearchParams({ session_id: session.ref, start: String(start), cf });
  if (interval) q.set('interval', String(interval));
  if (host) q.set('host', 'true');
  if (vm) q.set('vm_uuid', vm);
  const res = await fetch('/rrd_updates?' + q.toString());
  if (!res.ok) throw new Error(`/rrd_updates answered ${res.status}`);
  return parseXport(await res.text());
}

// The xport document as { start, step, end, columns: [{cf, owner, uuid,
// name}], rows: [{t, v: [numbers]}] } with rows oldest first.
export function parseXport(text) {
  const doc = new DOMParser().parseFromString(text, 'application/xml');
  if (doc.getElementsByTagName('parsererror').length) throw new Error('bad /rrd_updates document');
  const num = (tag) => Number(doc.getElementsByTagName(tag)[0]?.textContent);
  const columns = [...doc.querySelectorAll('legend > entry')].map((e) => {
    const [cf, owner, uuid, ...rest] = e.textContent.split(':');
    return { cf, owner, uuid, name: rest.join(':') };
  });
  const rows = [...doc.querySelectorAll('data > row')].map((r) => ({
    t: Number(r.getElementsByTagName('t')[0].textContent),
    v: [...r.getElementsByTagName('v')].map((v) => Number(v.textContent)),
  }));
  rows.sort((a, b) => a.t - b.t);
  return { start: num('start'), step: num('step'), end: num('end'), columns, rows };
}

// coarse's rows older than fine's first row, then fine's rows: one table
// (fine alone when the two do not have the same columns).
export function mergeTables(coarse, fine) {
  const same = coarse.columns.length === fine.columns.length &&
    coarse.columns.every((c, i) => c.name === fine.columns[i].name && c.uuid === fine.columns[i].uuid);
  if (!same || !fine.rows.length) return same ? coarse : fine;
  const first = fine.rows[0].t;
  return { ...fine, start: coarse.start, rows: coarse.rows.filter((r) => r.t < first).concat(fine.rows) };
}

// Columns of one owner (uuid) whose name matches re: their indexes.
export function columnsOf(table, uuid, re) {
  const out = [];
  table.columns.forEach((c, i) => { if (c.uuid === uuid && re.test(c.name)) out.push(i); });
  return out;
}

const finite = (x) => Number.isFinite(x);

// Sum of several columns in one row (NaN columns skipped); null if none.
export function rowSum(row, idx) {
  let s = 0, any = false;
  for (const i of idx) if (finite(row.v[i])) { s += row.v[i]; any = true; }
  return any ? s : null;
}

// Per owner: the latest CPU fraction, memory figures, and disk and
// network rates (bytes/s) as the average and maximum over the rows.
export function summarize(table) {
  const owners = {};
  for (const c of table.columns) owners[c.uuid] = owners[c.uuid] || c.owner;
  const out = {};
  for (const [uuid, owner] of Object.entries(owners)) {
    const cpus = columnsOf(table, uuid, /^cpu\d+$/);
    const disk = columnsOf(table, uuid, owner === 'host' ? /^(vbd_.*_(read|write)|(read|write)_[0-9a-f]{8})$/ : /^vbd_.*_(read|write)$/);
    const net = columnsOf(table, uuid, owner === 'host' ? /^pif_.*_(rx|tx)$/ : /^vif_.*_(rx|tx)$/);
    const pick = (name) => columnsOf(table, uuid, new RegExp('^' + name + '$'));
    const rows = table.rows;
    const last = [...rows].reverse().find((r) => cpus.some((i) => finite(r.v[i])));
    const s = { cpu: null, ncpus: cpus.length };
    if (last) s.cpu = rowSum(last, cpus) / cpus.length;
    const lastOf = (idx) => {
      for (let k = rows.length - 1; k >= 0; k--) {
        const v = rowSum(rows[k], idx);
        if (v != null) return v;
      }
      return null;
    };
    if (owner === 'host') {
      const total = lastOf(pick('memory_total_kib')), free = lastOf(pick('memory_free_kib'));
      if (total != null) { s.memTotal = total * 1024; if (free != null) s.memUsed = (total - free) * 1024; }
    } else {
      s.memory = lastOf(pick('memory'));
      s.memory_internal_free = lastOf(pick('memory_internal_free'));
    }
    s.disk = rates(rows, disk);
    s.net = rates(rows, net);
    out[uuid] = s;
  }
  return out;
}

function rates(rows, idx) {
  if (!idx.length) return null;
  const vals = rows.map((r) => rowSum(r, idx)).filter((v) => v != null);
  if (!vals.length) return null;
  return { avg: vals.reduce((a, b) => a + b, 0) / vals.length, max: Math.max(...vals), n: idx.length };
}
