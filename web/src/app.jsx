// app.jsx: the console's shell: login, then the tree (pool -> hosts ->
// VMs, templates, SRs, networks) with a search box on the left, the
// toolbar, the overview table of the selected container, and the tabs
// of the selected object; running tasks with progress bars at the
// bottom; errors as notes in plain words.
import { useEffect, useMemo, useRef, useState, useCallback } from 'preact/hooks';
import { Session, describeError } from './api.js';
import { Store } from './store.js';
import { Ctx, useCtx, useStoreVersion } from './ctx.js';
import { isVM, isTemplate, sortByName, vmStatus, statusClass, VM_OPS, offered, bytes } from './model.js';
import { useOverviewMetrics, Overview } from './overview.jsx';
import { Tabs } from './tabs.jsx';
import { Wizard } from './wizard.jsx';
import { runAsync, taskSubject } from './tasks.js';

function useTheme() {
  const [theme, setTheme] = useState(() => localStorage.getItem('xenia-theme') ||
    (matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light'));
  useEffect(() => {
    document.documentElement.dataset.theme = theme;
    localStorage.setItem('xenia-theme', theme);
  }, [theme]);
  return [theme, () => setTheme(theme === 'dark' ? 'light' : 'dark')];
}

const SAVED = 'xenia-session';

export function App() {
  const [session, setSession] = useState(null);
  const [resuming, setResuming] = useState(() => !!sessionStorage.getItem(SAVED));
  const [theme, toggleTheme] = useTheme();
  useEffect(() => {
    if (!resuming) return;
    const { ref, user } = JSON.parse(sessionStorage.getItem(SAVED));
    Session.resume(ref, user).then(setSession, () => sessionStorage.removeItem(SAVED))
      .finally(() => setResuming(false));
  }, []);
  const loggedIn = (s) => {
    sessionStorage.setItem(SAVED, JSON.stringify({ ref: s.ref, user: s.user }));
    setSession(s);
  };
  const loggedOut = () => {
    sessionStorage.removeItem(SAVED);
    setSession(null);
  };
  if (resuming) return <div class="loading" role="status">Loading…</div>;
  if (!session) return <Login onLogin={loggedIn} />;
  return <Console session={session} onLogout={loggedOut} theme={theme} toggleTheme={toggleTheme} />;
}

function Login({ onLogin }) {
  const [user, setUser] = useState('root');
  const [password, setPassword] = useState('');
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      onLogin(await Session.login(user, password));
    } catch (err) {
      setError(err.message);
      setBusy(false);
    }
  };
  return (
    <main class="login">
      <form onSubmit={submit} aria-label="Log in">
        <h1>Xenia</h1>
        <p class="muted">Log in with a XenAPI user of this host.</p>
        <label>User <input name="user" value={user} autocomplete="username" onInput={(e) => setUser(e.target.value)} autofocus /></label>
        <label>Password <input name="password" type="password" value={password} autocomplete="current-password" onInput={(e) => setPassword(e.target.value)} /></label>
        {error && <p class="error" role="alert">{error}</p>}
        <button type="submit" class="primary" disabled={busy}>{busy ? 'Logging in…' : 'Log in'}</button>
      </form>
    </main>
  );
}

function Console({ session, onLogout, theme, toggleTheme }) {
  const store = useMemo(() => new Store(session), [session]);
  const [selected, setSelected] = useState(null);
  const [notes, setNotes] = useState([]);
  const [wizard, setWizard] = useState(null);
  const [confirm, setConfirm] = useState(null);
  const [ended, setEnded] = useState(false);
  useStoreVersion(store);
  useEffect(() => {
    store.onSessionEnd = () => setEnded(true);
    store.run();
    return () => store.stop();
  }, [store]);

  const note = useCallback((err, title) => {
    const id = Math.random();
    const code = err && err.code;
    const text = err && err.code ? describeError(err.code, err.params) : String(err && err.message || err);
    setNotes((n) => [...n.slice(-4), { id, title, text, code, params: err && err.params }]);
    setTimeout(() => setNotes((n) => n.filter((x) => x.id !== id)), 15000);
  }, []);

  // Run an operation (an Async call about subject); errors become notes.
  const run = useCallback(async (title, subject, method, ...args) => {
    try {
      return await runAsync(session, store, subject, method, ...args);
    } catch (err) {
      note(err, title);
      return null;
    }
  }, [session, store, note]);

  const ask = (text) => new Promise((resolve) => setConfirm({ text, resolve }));

  const ctx = { session, store, selected, select: setSelected, note, run, ask,
    openWizard: (tpl) => setWizard({ template: tpl }) };

  if (!store.loaded) {
    return <div class="loading" role="status">{store.error ? describeError(store.error.code, store.error.params) : 'Loading…'}</div>;
  }
  const sel = selected && store.get(selected) ? selected : firstSelection(store);
  ctx.selected = sel;
  return (
    <Ctx.Provider value={ctx}>
      <div class="shell">
        <header class="top">
          <span class="brand">Xenia</span>
          <span class="muted">{poolName(store)}</span>
          <span class="spacer" />
          {store.error && <span class="warn" role="status">Reconnecting… {describeError(store.error.code, store.error.params)}</span>}
          <span class="muted" data-testid="whoami">{session.user}{session.can('VM.start') ? '' : ' (read-only)'}</span>
          <button onClick={toggleTheme} aria-label="Switch between light and dark theme">{theme === 'dark' ? '☀ Light' : '☾ Dark'}</button>
          <button onClick={() => { store.stop(); session.logout(); onLogout(); }}>Log out</button>
        </header>
        <Sidebar />
        <main class="main" aria-label="Selected object">
          <Toolbar sel={sel} />
          <Overview sel={sel} />
          <Tabs sel={sel} />
        </main>
        <TaskBar />
        <Notes notes={notes} dismiss={(id) => setNotes((n) => n.filter((x) => x.id !== id))} />
        {wizard && <Wizard template={wizard.template} close={() => setWizard(null)} />}
        {confirm && <Confirm text={confirm.text} done={(ok) => { confirm.resolve(ok); setConfirm(null); }} />}
        {ended && <div class="modal-bg"><div class="modal" role="alertdialog" aria-label="Session ended"><p>Your session has ended.</p><button class="primary" onClick={onLogout} autofocus>Log in again</button></div></div>}
      </div>
    </Ctx.Provider>
  );
}

function poolName(store) {
  const p = Object.values(store.all('pool'))[0];
  return p ? p.name_label || 'Pool' : '';
}

function firstSelection(store) {
  return Object.keys(store.all('pool'))[0] || Object.keys(store.all('host'))[0] || null;
}

// ---- the tree -------------------------------------------------------------

// The tree's rows, in order: [ref, depth, label, kind, extra].
function treeRows(store, filter) {
  const rows = [];
  const f = filter.trim().toLowerCase();
  const match = (r) => !f || (r.name_label || '').toLowerCase().includes(f) || (r.uuid || '').startsWith(f);
  const vms = sortByName(Object.entries(store.all('vm')));
  const pools = Object.entries(store.all('pool'));
  const hosts = sortByName(Object.entries(store.all('host')));
  for (const [pref, pool] of pools) rows.push([pref, 0, pool.name_label || 'Pool', 'pool']);
  const hostRefs = hosts.map(([ref]) => ref);
  const single = hosts.length === 1;
  for (const [href, host] of hosts) {
    rows.push([href, 1, host.name_label, 'host']);
    for (const [ref, vm] of vms)
      if (isVM(vm) && match(vm) && (vm.resident_on === href || (single && !hostRefs.includes(vm.resident_on))))
        rows.push([ref, 2, vm.name_label, 'vm', vm]);
  }
  if (!single)
    for (const [ref, vm] of vms)
      if (isVM(vm) && match(vm) && !hostRefs.includes(vm.resident_on)) rows.push([ref, 1, vm.name_label, 'vm', vm]);
  const group = (title, kind, list) => {
    const items = list.filter(([, r]) => match(r));
    if (!items.length) return;
    rows.push(['group:' + kind, 1, title, 'group']);
    for (const [ref, r] of items) rows.push([ref, 2, r.name_label || r.bridge || ref, kind, r]);
  };
  group('Templates', 'template', vms.filter(([, vm]) => isTemplate(vm)));
  group('Storage', 'sr', sortByName(Object.entries(store.all('sr'))));
  group('Networks', 'network', sortByName(Object.entries(store.all('network'))));
  return rows;
}

function Sidebar() {
  const { store, selected, select } = useCtx();
  const [filter, setFilter] = useState('');
  const search = useRef(null);
  const rows = treeRows(store, filter);
  const selectable = rows.filter((r) => r[3] !== 'group');
  useEffect(() => {
    const onKey = (e) => {
      if (e.key === '/' && !/INPUT|TEXTAREA|SELECT/.test(document.activeElement.tagName) &&
          !document.activeElement.closest('.xterm, .vnc')) {
        e.preventDefault();
        search.current.focus();
      }
    };
    addEventListener('keydown', onKey);
    return () => removeEventListener('keydown', onKey);
  }, []);
  const onKey = (e) => {
    const i = selectable.findIndex((r) => r[0] === selected);
    let j = i;
    if (e.key === 'ArrowDown') j = Math.min(selectable.length - 1, i + 1);
    else if (e.key === 'ArrowUp') j = Math.max(0, i - 1);
    else if (e.key === 'Home') j = 0;
    else if (e.key === 'End') j = selectable.length - 1;
    else return;
    e.preventDefault();
    const ref = selectable[j][0];
    select(ref);
    document.getElementById('tree-' + ref)?.focus();
  };
  return (
    <nav class="side" aria-label="Objects">
      <input ref={search} class="search" type="search" placeholder="Search (/)" aria-label="Search objects by name" value={filter} onInput={(e) => setFilter(e.target.value)} />
      <ul class="tree" role="tree" onKeyDown={onKey} data-testid="tree">
        {rows.map(([ref, depth, label, kind, rec]) => kind === 'group'
          ? <li key={ref} class="group" style={{ paddingLeft: depth * 14 + 6 + 'px' }} role="presentation">{label}</li>
          : (
            <li key={ref} id={'tree-' + ref} role="treeitem" tabIndex={ref === selected ? 0 : -1}
              aria-selected={ref === selected} class={'node ' + kind + (ref === selected ? ' sel' : '')}
              style={{ paddingLeft: depth * 14 + 6 + 'px' }} onClick={() => select(ref)} data-ref={ref}>
              <span class={'icon i-' + kind + (kind === 'vm' ? ' ' + statusClass(vmStatus(rec)) : '')} aria-hidden="true" />
              {label}
              {kind === 'vm' && <span class="sr-only"> ({vmStatus(rec)})</span>}
            </li>
          ))}
      </ul>
    </nav>
  );
}

// ---- the toolbar ----------------------------------------------------------

function Toolbar({ sel }) {
  const { store, session, run, ask, openWizard, note, select } = useCtx();
  const rec = store.get(sel);
  const cls = store.classOf[sel];
  const buttons = [];
  if (session.can('VM.clone') && session.can('VM.provision'))
    buttons.push(<button key="new" class="primary" onClick={() => openWizard(cls === 'vm' && isTemplate(rec) ? sel : null)} data-action="new-vm">New VM…</button>);
  if (cls === 'vm' && isVM(rec)) {
    for (const op of VM_OPS) {
      if (!offered(rec, session, op)) continue;
      buttons.push(
        <button key={op.id} data-action={op.id} onClick={async () => {
          if (op.confirm && !(await ask(op.confirm))) return;
          run(op.label + ' ' + rec.name_label, sel, op.method, ...op.args(sel));
        }}>{op.label}</button>);
    }
    const can = (id, method) => (rec.allowed_operations || []).includes(id) && session.can(method);
    if (can('clone', 'VM.clone'))
      buttons.push(<button key="clone" data-action="clone" onClick={async () => {
        const ref = await run('Clone ' + rec.name_label, sel, 'VM.clone', sel, 'Clone of ' + rec.name_label);
        if (ref) select(ref);
      }}>Clone</button>);
    if (can('copy', 'VM.copy'))
      buttons.push(<button key="copy" data-action="copy" onClick={async () => {
        const sr = defaultSR(store);
        const ref = await run('Copy ' + rec.name_label, sel, 'VM.copy', sel, 'Copy of ' + rec.name_label, sr || 'OpaqueRef:NULL');
        if (ref) select(ref);
      }}>Copy</button>);
    if (rec.power_state === 'Halted' && session.can('VM.set_is_a_template'))
      buttons.push(<button key="tpl" data-action="to-template" onClick={async () => {
        if (!(await ask(`Convert ${rec.name_label} into a template? It can then no longer be started, only installed from.`))) return;
        session.call('VM.set_is_a_template', sel, true).catch((e) => note(e, 'Convert to template'));
      }}>Convert to template</button>);
    if (can('destroy', 'VM.destroy'))
      buttons.push(<button key="del" class="danger" data-action="delete" onClick={() => deleteVM(ctxOf(store, session, run, ask, note), sel)}>Delete</button>);
  }
  if (cls === 'vm' && isTemplate(rec) && !rec.is_default_template && session.can('VM.destroy'))
    buttons.push(<button key="deltpl" class="danger" data-action="delete" onClick={() => deleteVM(ctxOf(store, session, run, ask, note), sel)}>Delete template</button>);
  return <div class="toolbar" role="toolbar" aria-label="Actions">{buttons.length ? buttons : <span class="muted">No actions for this selection.</span>}</div>;
}

const ctxOf = (store, session, run, ask, note) => ({ store, session, run, ask, note });

export function defaultSR(store) {
  const pool = Object.values(store.all('pool'))[0];
  if (pool && store.get(pool.default_SR)) return pool.default_SR;
  const sr = Object.entries(store.all('sr')).find(([, s]) => s.content_type !== 'iso');
  return sr ? sr[0] : null;
}

// The VM (or snapshot, or template) and its own disks: not CDs, not
// disks another VM still uses.
export async function deleteVM({ store, session, run, ask, note }, ref) {
  const vm = store.get(ref);
  const disks = (vm.VBDs || []).map((b) => store.get(b)).filter((b) => b && b.type === 'Disk' && store.get(b.VDI))
    .map((b) => b.VDI).filter((vdi) => (store.get(vdi).VBDs || []).every((b) => store.get(b)?.VM === ref));
  const what = vm.is_a_snapshot ? 'snapshot' : vm.is_a_template ? 'template' : 'VM';
  if (!(await ask(`Delete the ${what} ${vm.name_label}${disks.length ? ` and its ${disks.length} disk(s)` : ''}? This cannot be undone.`))) return false;
  if ((await run('Delete ' + vm.name_label, ref, 'VM.destroy', ref)) === null) return false;
  for (const vdi of disks) {
    try {
      await session.call('VDI.destroy', vdi);
    } catch (e) {
      if (e.code !== 'HANDLE_INVALID') note(e, 'Delete disk');
    }
  }
  return true;
}

// ---- tasks, notes, confirmations -------------------------------------------

function TaskBar() {
  const { store, session, note } = useCtx();
  const tasks = Object.entries(store.all('task')).filter(([, t]) => t.status === 'pending' || t.status === 'cancelling');
  if (!tasks.length) return <footer class="tasks" aria-label="Tasks"><span class="muted">No tasks running.</span></footer>;
  return (
    <footer class="tasks" aria-label="Tasks" aria-live="polite">
      {tasks.map(([ref, t]) => <TaskRow key={ref} tref={ref} t={t} session={session} note={note} store={store} />)}
    </footer>
  );
}

export function TaskRow({ tref, t, session, note, store }) {
  const subject = store.get(taskSubject.get(tref));
  const canCancel = (t.allowed_operations || []).includes('cancel') && session.can('task.cancel') && t.status === 'pending';
  return (
    <div class="task" data-testid="task">
      <span class="tname">{t.name_label}{subject ? ' · ' + subject.name_label : ''}</span>
      <progress max="1" value={t.progress || 0} aria-label={`${t.name_label} progress`} />
      <span class="muted">{Math.round((t.progress || 0) * 100)}%</span>
      {t.status === 'cancelling' && <span class="muted">cancelling…</span>}
      {canCancel && <button class="small" onClick={() => session.call('task.cancel', tref).catch((e) => note(e, 'Cancel'))}>Cancel</button>}
    </div>
  );
}

function Notes({ notes, dismiss }) {
  return (
    <div class="notes" role="alert" aria-live="assertive">
      {notes.map((n) => (
        <div class="note" key={n.id} data-testid="error-note">
          <button class="x" aria-label="Dismiss" onClick={() => dismiss(n.id)}>×</button>
          {n.title && <b>{n.title} failed</b>}
          <div>{n.text}</div>
          {n.code && <small class="muted">{n.code}{n.params && n.params.length ? ' ' + n.params.join(' ') : ''}</small>}
        </div>
      ))}
    </div>
  );
}

function Confirm({ text, done }) {
  return (
    <div class="modal-bg" onKeyDown={(e) => e.key === 'Escape' && done(false)}>
      <div class="modal" role="dialog" aria-modal="true" aria-label="Confirm">
        <p>{text}</p>
        <div class="buttons">
          <button onClick={() => done(false)}>Cancel</button>
          <button class="primary" data-action="confirm" onClick={() => done(true)} autofocus>OK</button>
        </div>
      </div>
    </div>
  );
}

export { bytes };
