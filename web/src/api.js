// api.js: the XenAPI over JSON-RPC (POST /jsonrpc), as any XenAPI client
// speaks it. Everything the console shows and does goes through here,
// through event.from (store.js), /rrd_updates (rrd.js) and the console
// websockets (GET /console).

export class XenAPIError extends Error {
  constructor(code, params) {
    super(describeError(code, params));
    this.code = code;
    this.params = params || [];
  }
}

let nextId = 1;

// One JSON-RPC 2.0 call; the result, or a thrown XenAPIError.
export async function rpc(method, params) {
  let res;
  try {
    res = await fetch('/jsonrpc', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', method, params, id: nextId++ }),
    });
  } catch (e) {
    throw new XenAPIError('CONNECTION_LOST', [String(e.message || e)]);
  }
  if (!res.ok) throw new XenAPIError('HTTP_' + res.status, [await res.text()]);
  const body = await res.json();
  if (body.error) {
    const e = body.error;
    if (Array.isArray(e)) throw new XenAPIError(e[0], e.slice(1));
    throw new XenAPIError(e.message, e.data || []);
  }
  return body.result;
}

// A logged-in session: call('VM.start', ref, false, false) adds the
// session as the first parameter.
export class Session {
  constructor(ref, user) {
    this.ref = ref;
    this.user = user;
    this.permissions = new Set();
  }

  static async login(user, password) {
    const ref = await rpc('session.login_with_password', [user, password, '2.21', 'xenia-web']);
    return Session.resume(ref, user);
  }

  // A session made earlier (kept in this tab's sessionStorage, so a
  // reload needs no new login); fails if it has expired.
  static async resume(ref, user) {
    const s = new Session(ref, user);
    const perms = await s.call('session.get_rbac_permissions', ref);
    s.permissions = new Set(perms.map((p) => p.toLowerCase()));
    return s;
  }

  call(method, ...params) {
    return rpc(method, [this.ref, ...params]);
  }

  // Async.<method>: returns the task's ref at once.
  async(method, ...params) {
    return rpc('Async.' + method, [this.ref, ...params]);
  }

  // Whether the session's role may call a message ("VM.start").
  can(method) {
    return this.permissions.has(method.toLowerCase());
  }

  logout() {
    return this.call('session.logout').catch(() => {});
  }
}

// XenAPI errors in plain words; the code and parameters stay available
// (shown in small print under the sentence).
const WORDS = {
  SESSION_AUTHENTICATION_FAILED: () => 'The user name or password is wrong.',
  SESSION_INVALID: () => 'Your session has ended. Log in again.',
  RBAC_PERMISSION_DENIED: (p) =>
    `Your role does not allow this${p[0] ? ` (${p[0]})` : ''}.`,
  VM_BAD_POWER_STATE: (p) =>
    `The VM is ${(p[2] || '').toLowerCase() || 'in another state'}; this needs it ${(p[1] || '').toLowerCase()}.`,
  OPERATION_NOT_ALLOWED: (p) => `This is not allowed now${p[0] ? ': ' + p[0] : ''}.`,
  OTHER_OPERATION_IN_PROGRESS: () => 'Another operation on this object is still running. Wait for it to finish.',
  HANDLE_INVALID: (p) => `The ${p[0] || 'object'} no longer exists.`,
  VM_IS_TEMPLATE: () => 'This is a template: install a VM from it first.',
  VM_REQUIRES_SR: () => 'The VM needs a storage repository that is not available.',
  SR_FULL: () => 'The storage repository is full.',
  VDI_IN_USE: () => 'The disk is in use by another operation or VM.',
  VDI_IS_A_PHYSICAL_DEVICE: () => 'That disk is a physical device.',
  VBD_NOT_EMPTY: () => 'The CD drive already holds a disc: eject it first.',
  VBD_IS_EMPTY: () => 'The CD drive is empty.',
  VBD_NOT_REMOVABLE_MEDIA: () => 'Only a CD drive can take a disc.',
  DEVICE_ALREADY_ATTACHED: () => 'The device is already attached.',
  DEVICE_ALREADY_DETACHED: () => 'The device is already detached.',
  INVALID_VALUE: (p) => `"${p[1] ?? ''}" is not a valid value for ${p[0] || 'this field'}.`,
  FIELD_TYPE_ERROR: (p) => `The value of ${p[0] || 'a field'} has the wrong type.`,
  MESSAGE_PARAMETER_COUNT_MISMATCH: () => 'The server expected different parameters (client and server versions differ?).',
  MESSAGE_METHOD_UNKNOWN: (p) => `The server does not know the call ${p[0] || ''}.`,
  HOST_NOT_ENOUGH_FREE_MEMORY: () => 'The host does not have enough free memory to start this VM.',
  VM_DUPLICATE_VBD_DEVICE: () => 'Another disk of the VM already uses that device number.',
  MAP_DUPLICATE_KEY: (p) => `The key ${p[2] || ''} is already set.`,
  TASK_CANCELLED: () => 'The task was cancelled.',
  VM_SHUTDOWN_TIMEOUT: () => 'The guest did not shut down in time. Try a forced shutdown.',
  VM_MISSING_PV_DRIVERS: () => 'The guest has no tools running to do this cleanly.',
  VALUE_NOT_SUPPORTED: (p) => `${p[2] || 'That value is not supported.'}`,
  CONNECTION_LOST: () => 'The connection to the host was lost.',
  INTERNAL_ERROR: (p) => `The host failed: ${p[0] || 'internal error'}.`,
};

export function describeError(code, params) {
  const f = WORDS[code];
  const p = params || [];
  if (f) return f(p);
  const words = String(code || 'error').toLowerCase().replace(/_/g, ' ');
  return words.charAt(0).toUpperCase() + words.slice(1) + (p.length ? ': ' + p.join(', ') : '.');
}
