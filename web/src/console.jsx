// console.jsx: the VM's consoles over websockets (GET /console?ref=...
// with the session): the serial console in xterm.js (scroll-back, copy
// and paste), and the VGA display in noVNC for VMs that have one. Both
// libraries load when a console is first opened.
import { useEffect, useRef, useState } from 'preact/hooks';
import { useCtx } from './ctx.js';

function consoleURL(session, ref, extra = '') {
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${proto}//${location.host}/console?ref=${encodeURIComponent(ref)}&session_id=${encodeURIComponent(session.ref)}${extra}`;
}

function consoleOf(store, vm, protocol) {
  return (vm.consoles || []).find((c) => store.get(c)?.protocol === protocol);
}

export function TextConsole({ vmRef }) {
  const { store, session, note } = useCtx();
  const vm = store.get(vmRef);
  const con = consoleOf(store, vm, 'vt100');
  const box = useRef(null);
  const term = useRef(null);
  const sock = useRef(null);
  const [state, setState] = useState('connecting');
  const allowed = session.can('VM.start'); // consoles need the vm-operator role, as xapi's
  useEffect(() => {
    if (!con || !allowed) return undefined;
    let closed = false, fit = null, ro = null;
    (async () => {
      const [{ Terminal }, { FitAddon }] = await Promise.all([import('@xterm/xterm'), import('@xterm/addon-fit'), import('@xterm/xterm/css/xterm.css')]);
      if (closed) return;
      const t = new Terminal({ scrollback: 10000, fontSize: 13, convertEol: false, cursorBlink: true,
        fontFamily: 'ui-monospace, "DejaVu Sans Mono", monospace', theme: termTheme() });
      fit = new FitAddon();
      t.loadAddon(fit);
      t.open(box.current);
      fit.fit();
      term.current = t;
      window.__xeniaTerm = t; // for the end-to-end tests
      // Ctrl+Shift+C / Ctrl+Shift+V copy and paste, as in terminal emulators
      t.attachCustomKeyEventHandler((e) => {
        if (e.type === 'keydown' && e.ctrlKey && e.shiftKey && e.code === 'KeyC') { copy(); return false; }
        if (e.type === 'keydown' && e.ctrlKey && e.shiftKey && e.code === 'KeyV') { paste(); return false; }
        return true;
      });
      const ws = new WebSocket(consoleURL(session, con, '&scrollback=65536'));
      ws.binaryType = 'arraybuffer';
      sock.current = ws;
      ws.onopen = () => setState('connected');
      ws.onmessage = (e) => t.write(new Uint8Array(e.data));
      ws.onclose = () => !closed && setState('closed');
      const enc = new TextEncoder();
      t.onData((d) => ws.readyState === 1 && ws.send(enc.encode(d)));
      t.onBinary((d) => ws.readyState === 1 && ws.send(Uint8Array.from(d, (c) => c.charCodeAt(0))));
      ro = new ResizeObserver(() => fit.fit());
      ro.observe(box.current);
      t.focus();
    })().catch((e) => note(e, 'Open the console'));
    return () => {
      closed = true;
      ro?.disconnect();
      sock.current?.close();
      term.current?.dispose();
      term.current = null;
    };
  }, [con, allowed]);
  const copy = () => {
    const s = term.current?.getSelection();
    if (s) navigator.clipboard?.writeText(s).catch(() => {});
  };
  const paste = async () => {
    try {
      const text = await navigator.clipboard.readText();
      if (sock.current?.readyState === 1) sock.current.send(new TextEncoder().encode(text));
    } catch (e) {
      note({ message: 'The browser did not allow reading the clipboard; use Ctrl+Shift+V or middle click.' }, 'Paste');
    }
  };
  if (!allowed) return <p class="muted">Your role does not include console access.</p>;
  if (!con) return <p class="muted">The console is available while the VM runs.</p>;
  return (
    <div class="console">
      <div class="row">
        <span class={'status ' + (state === 'connected' ? 'st-on' : 'st-off')} data-testid="console-state">{state}</span>
        <button class="small" onClick={copy} title="Copy the selection (Ctrl+Shift+C)">Copy</button>
        <button class="small" onClick={paste} title="Paste (Ctrl+Shift+V)">Paste</button>
        <span class="muted small">Scroll back with the mouse wheel or Shift+PgUp.</span>
      </div>
      <div class="term" ref={box} data-testid="terminal" />
    </div>
  );
}

function termTheme() {
  const dark = document.documentElement.dataset.theme === 'dark';
  return dark ? { background: '#111417', foreground: '#d8dee4' } : { background: '#1b1f23', foreground: '#e6e6e6' };
}

export function GraphicalConsole({ vmRef }) {
  const { store, session, note } = useCtx();
  const vm = store.get(vmRef);
  const con = consoleOf(store, vm, 'rfb');
  const box = useRef(null);
  const rfbRef = useRef(null);
  const [state, setState] = useState('connecting');
  const [name, setName] = useState('');
  const allowed = session.can('VM.start');
  useEffect(() => {
    if (!con || !allowed) return undefined;
    let closed = false;
    (async () => {
      const { default: RFB } = await import('@novnc/novnc');
      if (closed) return;
      const rfb = new RFB(box.current, consoleURL(session, con), { wsProtocols: ['binary'] });
      rfb.scaleViewport = true;
      rfb.background = 'transparent';
      rfb.addEventListener('connect', () => setState('connected'));
      rfb.addEventListener('disconnect', () => !closed && setState('closed'));
      rfb.addEventListener('desktopname', (e) => setName(e.detail.name));
      rfbRef.current = rfb;
      window.__xeniaRFB = rfb; // for the end-to-end tests
    })().catch((e) => note(e, 'Open the graphical console'));
    return () => {
      closed = true;
      rfbRef.current?.disconnect();
      rfbRef.current = null;
    };
  }, [con, allowed]);
  if (!allowed) return <p class="muted">Your role does not include console access.</p>;
  if (!con) return <p class="muted">The graphical console is available while the VM runs.</p>;
  return (
    <div class="console">
      <div class="row">
        <span class={'status ' + (state === 'connected' ? 'st-on' : 'st-off')} data-testid="vnc-state">{state}</span>
        <span class="muted">{name}</span>
        <button class="small" onClick={() => rfbRef.current?.sendCtrlAltDel()}>Ctrl+Alt+Del</button>
        <span class="muted small">Click the screen to type into the VM.</span>
      </div>
      <div class="vnc" ref={box} data-testid="vnc" />
    </div>
  );
}
