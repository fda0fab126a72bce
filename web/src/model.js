// model.js: what the console derives from XenAPI records (pure
// functions): a VM's status word, its kind, sizes in words, the
// operations a VM offers.

// The transient status shown while an operation runs, as the seeds'
// console shows it, from the operation in current_operations.
const TRANSIENT = {
  start: 'Starting', start_on: 'Starting',
  clean_shutdown: 'Stopping', hard_shutdown: 'Stopping', shutdown: 'Stopping',
  clean_reboot: 'Rebooting', hard_reboot: 'Rebooting',
  suspend: 'Suspending', resume: 'Resuming', resume_on: 'Resuming',
  provision: 'Installing', import: 'Installing',
  clone: 'Cloning', copy: 'Cloning',
  snapshot: 'Snapshotting', checkpoint: 'Snapshotting', revert: 'Reverting',
  pool_migrate: 'Migrating', migrate_send: 'Migrating',
  pause: 'Pausing', unpause: 'Unpausing', destroy: 'Deleting',
};

const STEADY = { Running: 'On', Halted: 'Off', Paused: 'Paused', Suspended: 'Suspended' };

export function vmStatus(vm) {
  for (const op of Object.values(vm.current_operations || {})) {
    if (TRANSIENT[op]) return TRANSIENT[op];
  }
  return STEADY[vm.power_state] || vm.power_state || 'Unknown';
}

// CSS class of a status word
export function statusClass(s) {
  if (s === 'On') return 'st-on';
  if (s === 'Off') return 'st-off';
  if (s === 'Paused' || s === 'Suspended') return 'st-paused';
  return 'st-busy';
}

export const isVM = (vm) => !vm.is_a_template && !vm.is_a_snapshot && !vm.is_control_domain;
export const isTemplate = (vm) => vm.is_a_template && !vm.is_a_snapshot;

export function sortByName(list) {
  return list.sort((a, b) =>
    (a[1].name_label || '').localeCompare(b[1].name_label || '', undefined, { numeric: true }));
}

export function bytes(n) {
  n = Number(n) || 0;
  const u = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (n >= 100 || i === 0 ? Math.round(n) : Math.round(n * 10) / 10) + ' ' + u[i];
}

export function pct(x) {
  return Math.round(Math.max(0, Math.min(1, x)) * 100) + '%';
}

// The VM operations the toolbar offers: [label, method, args-builder,
// confirm?], shown when the API lists the operation in
// allowed_operations and the session's role may call it.
export const VM_OPS = [
  { id: 'start', label: 'Start', method: 'VM.start', args: (r) => [r, false, false], key: 's' },
  { id: 'clean_shutdown', label: 'Shut down', method: 'VM.clean_shutdown', args: (r) => [r] },
  { id: 'hard_shutdown', label: 'Force shutdown', method: 'VM.hard_shutdown', args: (r) => [r], confirm: 'Force the VM off? Unsaved data in the guest is lost.' },
  { id: 'clean_reboot', label: 'Reboot', method: 'VM.clean_reboot', args: (r) => [r] },
  { id: 'hard_reboot', label: 'Force reboot', method: 'VM.hard_reboot', args: (r) => [r], confirm: 'Force a reset of the VM?' },
  { id: 'suspend', label: 'Suspend', method: 'VM.suspend', args: (r) => [r] },
  { id: 'resume', label: 'Resume', method: 'VM.resume', args: (r) => [r, false, false] },
  { id: 'pause', label: 'Pause', method: 'VM.pause', args: (r) => [r] },
  { id: 'unpause', label: 'Unpause', method: 'VM.unpause', args: (r) => [r] },
];

export function offered(vm, session, op) {
  return (vm.allowed_operations || []).includes(op.id) && session.can(op.method);
}

// The VM's CPU, memory, disk and network figures from the latest RRD
// rows (see rrd.js), or from VM_metrics when there are none.
export function vmFigures(vm, metrics, rrd) {
  const f = { cpu: null, vcpus: vm.VCPUs_at_startup, memUsed: null, memTotal: null,
    disk: null, net: null };
  const m = metrics && metrics[vm.uuid];
  if (vm.power_state !== 'Running') return f;
  if (m) {
    f.cpu = m.cpu;
    f.memTotal = m.memory ?? null;
    if (m.memory != null && m.memory_internal_free != null)
      f.memUsed = m.memory - m.memory_internal_free * 1024;
    f.disk = m.disk;
    f.net = m.net;
  }
  if (f.memTotal == null && rrd && rrd.memory_actual) f.memTotal = Number(rrd.memory_actual);
  return f;
}
