// store.js: the console's copy of the host's objects, kept current by
// event.from. The first call (token "") returns every object of the
// subscribed classes; each later call waits (long poll, up to 30 s) for
// the commits after its token. There is no polling: the page redraws
// when an event batch arrives.

const CLASSES = [
  'pool', 'host', 'host_metrics', 'vm', 'vm_metrics', 'vm_guest_metrics', 'sr', 'vdi', 'vbd',
  'vif', 'network', 'pif', 'task', 'console', 'message', 'pbd',
];

export class Store {
  constructor(session) {
    this.session = session;
    this.objects = {}; // class -> ref -> record
    this.classOf = {}; // ref -> class
    this.version = 0;
    this.loaded = false;
    this.listeners = new Set();
    this.stopped = false;
    this.error = null;
    this.onSessionEnd = null;
    for (const c of CLASSES) this.objects[c] = {};
  }

  get(ref) {
    const c = this.classOf[ref];
    return c ? this.objects[c][ref] : undefined;
  }

  all(cls) {
    return this.objects[cls] || {};
  }

  subscribe(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  notify() {
    this.version++;
    for (const fn of this.listeners) fn(this.version);
  }

  apply(events) {
    for (const e of events) {
      const cls = e.class.toLowerCase();
      if (!this.objects[cls]) this.objects[cls] = {};
      if (e.operation === 'del') {
        delete this.objects[cls][e.ref];
        delete this.classOf[e.ref];
      } else if (e.snapshot) {
        this.objects[cls][e.ref] = e.snapshot;
        this.classOf[e.ref] = cls;
      }
    }
  }

  // Runs until stop(): one event.from after another.
  async run() {
    let classes = CLASSES.slice();
    let token = '';
    let failures = 0;
    while (!this.stopped) {
      try {
        const r = await this.session.call('event.from', classes, token, token ? 30.0 : 0.0);
        if (this.stopped) return;
        if (!token) {
          for (const c of CLASSES) this.objects[c] = {};
          this.classOf = {};
        }
        this.apply(r.events);
        token = r.token;
        failures = 0;
        this.loaded = true;
        this.error = null;
        this.notify();
      } catch (e) {
        if (this.stopped) return;
        if (e.code === 'SESSION_INVALID') {
          this.stopped = true;
          if (this.onSessionEnd) this.onSessionEnd();
          return;
        }
        if (e.code === 'EVENT_SUBSCRIPTION_PARSE_FAILURE') {
          // a server without one of these classes: go on without it
          classes = classes.filter((c) => c !== String(e.params[0]).toLowerCase());
          continue;
        }
        if (e.code === 'EVENTS_LOST' || e.code === 'EVENT_FROM_TOKEN_PARSE_FAILURE') token = '';
        this.error = e;
        this.notify();
        failures++;
        // back off while the host is unreachable (bounded: 1 s .. 10 s)
        await new Promise((ok) => setTimeout(ok, Math.min(10000, 1000 * failures)));
      }
    }
  }

  stop() {
    this.stopped = true;
  }
}
