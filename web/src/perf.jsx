// perf.jsx: the Performance tab: CPU, memory, disk and network graphs
// (uPlot) of a VM or host from /rrd_updates, over the last 15 minutes
// (the default: the 5-second archive), 2 hours (1 minute), a week (1
// hour) or a year (1 day). The open window is read again every step.
import { useEffect, useRef, useState } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { useCtx } from './ctx.js';
import { fetchUpdates, mergeTables, columnsOf, rowSum } from './rrd.js';

// [id, label, span (s), interval (s), fine span]: the 15-minute view
// reaches past the 5-s archive (10 minutes, as xapi keeps it), so it is
// the 1-minute archive for its first 5 minutes and 5-s points after.
const RANGES = [
  ['15m', '15 minutes', 900, 60, 600],
  ['2h', '2 hours', 7200, 60],
  ['1w', 'A week', 7 * 86400, 3600],
  ['1y', 'A year', 365 * 86400, 86400],
];

// canvas strokes need real colours, not var(): read the theme's
const cssVar = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim() || '#888';

const COLORS = ['#2f7ed8', '#e4572e', '#17a398', '#a05195', '#f2a541', '#5d6d7e'];

// The graphs of one owner: [title, unit, [[label, columns, scale]]].
function graphsFor(table, uuid, isHost) {
  const series = (re, label, scale = 1) => {
    const idx = columnsOf(table, uuid, re);
    return idx.map((i) => [label(table.columns[i].name), [i], scale]);
  };
  const cpu = series(/^cpu\d+$/, (n) => n.replace('cpu', 'CPU '), 100);
  const mem = isHost
    ? [['Used', [columnsOf(table, uuid, /^memory_total_kib$/)[0], columnsOf(table, uuid, /^memory_free_kib$/)[0]], 'used-kib']]
    : [...series(/^memory$/, () => 'Total', 1 / 1048576), ...series(/^memory_internal_free$/, () => 'Free in guest', 1 / 1024)];
  const disk = series(isHost ? /^(read|write)_[0-9a-f]{8}$/ : /^vbd_.*_(read|write)$/, (n) => n.replace(/^vbd_/, '').replace(/_/g, ' '), 1 / 1024);
  const net = series(isHost ? /^pif_.*_(rx|tx)$/ : /^vif_.*_(rx|tx)$/, (n) => n.replace(/^(vif|pif)_/, '').replace(/_/g, ' '), 1 / 1024);
  return [['cpu', 'CPU usage', '%', cpu], ['memory', 'Memory', 'MB', mem], ['disk', 'Disk', 'KB/s', disk], ['network', 'Network', 'KB/s', net]];
}

// uPlot data (x and one array per series) of a graph.
function dataOf(table, spec) {
  const xs = table.rows.map((r) => r.t);
  const ys = spec.map(([, idx, scale]) => table.rows.map((r) => {
    if (scale === 'used-kib') {
      const [t, f] = idx.map((i) => r.v[i]);
      return Number.isFinite(t) && Number.isFinite(f) ? (t - f) / 1024 : null;
    }
    const v = rowSum(r, idx);
    return v == null ? null : v * scale;
  }));
  return [xs, ...ys];
}

function Graph({ id, title, unit, spec, table, from, to }) {
  const box = useRef(null);
  const plot = useRef(null);
  const data = dataOf(table, spec);
  const points = data.slice(1).reduce((n, s) => n + s.filter((v) => v != null).length, 0);
  const key = spec.map((s) => s[0]).join('|');
  useEffect(() => {
    if (!spec.length) return undefined;
    const opts = {
      width: Math.max(300, box.current.clientWidth), height: 160,
      scales: { x: { time: true, range: () => [from, to] }, y: { range: (u, lo, hi) => [0, Math.max(hi || 0, unit === '%' ? 100 : 1)] } },
      axes: [{ stroke: cssVar('--fg2'), grid: { stroke: cssVar('--grid') } }, { stroke: cssVar('--fg2'), grid: { stroke: cssVar('--grid') }, size: 60, label: unit }],
      series: [{}, ...spec.map(([label], i) => ({ label, stroke: COLORS[i % COLORS.length], width: 1.5, spanGaps: false, points: { size: 3 } }))],
      legend: { live: true },
    };
    plot.current = new uPlot(opts, data, box.current);
    const ro = new ResizeObserver(() => plot.current?.setSize({ width: Math.max(300, box.current.clientWidth), height: 160 }));
    ro.observe(box.current);
    return () => { ro.disconnect(); plot.current?.destroy(); plot.current = null; };
  }, [key]);
  useEffect(() => {
    if (plot.current) {
      plot.current.setData(data, false);
      plot.current.setScale('x', { min: from, max: to });
    }
  });
  return (
    <figure class="graph" data-testid={'graph-' + id} data-points={points}>
      <figcaption>{title} <span class="muted">({unit})</span></figcaption>
      {spec.length ? <div ref={box} /> : <p class="muted">No data sources.</p>}
    </figure>
  );
}

export function Perf({ sel }) {
  const { store, session } = useCtx();
  const rec = store.get(sel);
  const cls = store.classOf[sel];
  const isHost = cls === 'host' || cls === 'pool';
  const owner = cls === 'pool' ? store.get(rec.master) : rec;
  const [range, setRange] = useState('15m');
  const [table, setTable] = useState(null);
  const [error, setError] = useState(null);
  const [, span, interval, fine] = RANGES.find((r) => r[0] === range).slice(1);
  const [now, setNow] = useState(Math.floor(Date.now() / 1000));
  useEffect(() => {
    let stop = false, timer = null;
    const tick = async () => {
      const t = Math.floor(Date.now() / 1000);
      try {
        const ask = { host: isHost, vm: isHost ? 'none' : owner.uuid };
        let tab = await fetchUpdates(session, { ...ask, start: t - span, interval });
        if (fine) tab = mergeTables(tab, await fetchUpdates(session, { ...ask, start: t - fine, interval: 5 }));
        if (!stop) { setTable(tab); setNow(tab.end || t); setError(null); }
      } catch (e) {
        if (!stop) setError(e.message);
      }
      if (!stop) timer = setTimeout(tick, (fine ? 5 : Math.max(5, interval)) * 1000);
    };
    tick();
    return () => { stop = true; clearTimeout(timer); };
  }, [sel, range]);
  return (
    <div class="perf">
      <div class="row" role="radiogroup" aria-label="Time range">
        {RANGES.map(([id, label]) => (
          <button key={id} role="radio" aria-checked={range === id} class={range === id ? 'on' : ''} onClick={() => setRange(id)}>{label}</button>
        ))}
        {error && <span class="muted">Performance data is not available: {error}</span>}
      </div>
      {table && owner && (
        <div class="graphs">
          {graphsFor(table, owner.uuid, isHost).map(([id, title, unit, spec]) => (
            <Graph key={id + range} id={id} title={title} unit={unit} spec={spec} table={table} from={now - span} to={now} />
          ))}
        </div>
      )}
    </div>
  );
}
