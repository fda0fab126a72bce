#!/usr/bin/env node
// check.mjs: drive a Xenia host with Xen Orchestra's npm `xen-api` client
// (the version pinned in package.json), through the library's public API
// only, as XO does: connect, watch events into the object cache, install
// and boot a VM from the "Tiny Linux" template, see its power state change
// arrive through events, an Async call and its task result, XenAPI errors,
// clean up, disconnect.
//
//   node check.mjs [--transport auto|json-rpc|xml-rpc] URL USER PASSWORD
//
// URL, USER and PASSWORD may instead come from XENIA_URL, XENIA_USER
// (default root) and XENIA_PASSWORD. Prints one line per check
// ("ok - ..." or "not ok - ..."), then the XenAPI methods the library
// called; exits 0 only if every check passed. Every wait has a deadline,
// and the whole run has one (XENIA_CHECK_TIMEOUT seconds, default 240).

import { readFileSync } from 'node:fs'
import { createClient } from 'xen-api'

// ---- arguments ---------------------------------------------------------------

const argv = process.argv.slice(2)
let transport = 'auto'
const positional = []
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === '--transport') transport = argv[++i]
  else if (argv[i].startsWith('--transport=')) transport = argv[i].slice('--transport='.length)
  else positional.push(argv[i])
}
const url = positional[0] ?? process.env.XENIA_URL
const user = positional[1] ?? process.env.XENIA_USER ?? 'root'
const password = positional[2] ?? process.env.XENIA_PASSWORD
if (!url || password === undefined || !['auto', 'json-rpc', 'xml-rpc'].includes(transport)) {
  console.error('usage: node check.mjs [--transport auto|json-rpc|xml-rpc] URL USER PASSWORD')
  process.exit(2)
}

const TEMPLATE = 'Tiny Linux'
const WAIT = 60e3 // default bound for one wait, in ms
const TOTAL = Number(process.env.XENIA_CHECK_TIMEOUT ?? 240) * 1e3

// ---- reporting -----------------------------------------------------------------

let failures = 0
const say = line => process.stdout.write(line + '\n')
const describe = e => {
  if (e?.code !== undefined && Array.isArray(e.params)) {
    return `XapiError ${e.code}(${e.params.join(', ')})` + (e.call ? ` from ${e.call.method}` : '')
  }
  return String(e?.stack ?? e)
}

// Run one named check; a failure is reported and counted. A failed
// "required" check ends the run (the later ones depend on it).
async function check(name, fn, { required = false } = {}) {
  const t0 = Date.now()
  try {
    const detail = await fn()
    say(`ok - ${name}${detail ? ': ' + detail : ''} (${Date.now() - t0} ms)`)
    return true
  } catch (e) {
    failures++
    say(`not ok - ${name}: ${describe(e)}`)
    if (required) throw new Abort(name)
    return false
  }
}
class Abort extends Error {}

function assert(cond, what) {
  if (!cond) throw new Error('assertion failed: ' + what)
}

// Bound a promise by a deadline.
function within(ms, what, promise) {
  let timer
  return Promise.race([
    promise,
    new Promise((resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms)
    }),
  ]).finally(() => clearTimeout(timer))
}

// ---- the client --------------------------------------------------------------

const xapi = createClient({
  url,
  auth: { user, password },
  allowUnauthorized: true,
  transport,
})

// A log of the XenAPI methods the library sends (name -> count). This
// only observes: it wraps the library's single RPC entry point and passes
// everything through unchanged.
const methodLog = new Map()
{
  const inner = xapi._call
  if (typeof inner === 'function') {
    xapi._call = function (method, ...rest) {
      methodLog.set(method, (methodLog.get(method) ?? 0) + 1)
      return inner.call(this, method, ...rest)
    }
  }
}

// The library reports trouble in its event loop only through console.warn
// (and eventFetchingError): keep it, a correct server causes none.
const watchErrors = []
xapi.on('eventFetchingError', e => watchErrors.push(describe(e)))
const origWarn = console.warn
console.warn = (...args) => {
  watchErrors.push(args.map(a => (a instanceof Error ? describe(a) : String(a))).join(' '))
  origWarn(...args)
}

// ---- the object cache (filled by event.from only) -----------------------------

const byType = type => Object.values(xapi.objects.indexes.type?.[type] ?? {})
const cached = ref => xapi.getObjectByRef(ref, undefined)

// Wait until cond() (reading the cache) returns something truthy. The
// cache only changes when the library processes events, so this re-checks
// on each of its change notifications; nothing asks the server.
function untilCache(what, cond, ms = WAIT) {
  let test
  return within(
    ms,
    what,
    new Promise((resolve, reject) => {
      test = () => {
        let v
        try {
          v = cond()
        } catch (e) {
          reject(e)
          return
        }
        if (v) resolve(v)
      }
      xapi.objects.on('finish', test)
      test()
    })
  ).finally(() => xapi.objects.removeListener('finish', test))
}

// Every power state the cache has held for a VM, in order (from events).
const powerHistory = new Map()
function watchPower(ref) {
  powerHistory.set(ref, [])
  const note = () => {
    const vm = cached(ref)
    const h = powerHistory.get(ref)
    if (vm && h[h.length - 1] !== vm.power_state) h.push(vm.power_state)
  }
  xapi.objects.on('add', note)
  xapi.objects.on('update', note)
  note()
}

async function expectXapiError(code, promise) {
  try {
    await promise
  } catch (e) {
    assert(e instanceof Error, 'the rejection is an Error')
    assert(e.code === code, `code ${code}, got ${describe(e)}`)
    assert(Array.isArray(e.params), 'params is an array')
    return e
  }
  throw new Error(`expected ${code}, the call succeeded`)
}

// ---- the run -------------------------------------------------------------------

const created = [] // VM refs made here, newest last
let templateRef

async function destroyVm(ref) {
  const vm = cached(ref)
  const state = vm?.power_state ?? (await xapi.call('VM.get_power_state', ref))
  if (state !== 'Halted') await xapi.call('VM.hard_shutdown', ref)
  const vbds = await xapi.call('VM.get_VBDs', ref)
  const vdis = []
  for (const vbd of vbds) {
    const vdi = await xapi.call('VBD.get_VDI', vbd)
    if (vdi !== 'OpaqueRef:NULL' && (await xapi.call('VBD.get_type', vbd)) === 'Disk') vdis.push(vdi)
  }
  for (const vdi of vdis) await xapi.call('VDI.destroy', vdi)
  await xapi.call('VM.destroy', ref)
}

async function main() {
  const { version } = JSON.parse(readFileSync(new URL('./node_modules/xen-api/package.json', import.meta.url)))
  say(`# xen-api ${version} against ${url} (transport ${transport})`)

  await check(
    'connect and log in',
    async () => {
      await within(WAIT, 'connect()', xapi.connect())
      assert(xapi.status === 'connected', `status connected, got ${xapi.status}`)
      assert(typeof xapi.sessionId === 'string' && xapi.sessionId.startsWith('OpaqueRef:'), 'an OpaqueRef session')
      assert(xapi.pool?.$ref?.startsWith('OpaqueRef:'), 'the pool record is known')
      return `session ${xapi.sessionId.slice(0, 18)}..., pool ${xapi.pool.$ref}`
    },
    { required: true }
  )

  await check(
    'initial object fetch through the event watcher',
    async () => {
      await within(WAIT, 'objectsFetched', xapi.objectsFetched)
      const types = Object.keys(xapi.objects.indexes.type ?? {}).sort()
      for (const t of ['pool', 'host', 'host_metrics', 'VM', 'VM_metrics', 'SR', 'PBD', 'VDI', 'VBD']) {
        assert(types.includes(t), `type ${t} in the cache (have ${types.join(',')})`)
      }
      return `${xapi.objects.size} objects of types ${types.join(',')}`
    },
    { required: true }
  )

  await check('list hosts through the object cache', async () => {
    const hosts = byType('host')
    assert(hosts.length === 1, `one host, got ${hosts.length}`)
    const [h] = hosts
    assert(h.$ref === xapi.pool.master, 'the host is the pool master')
    assert(xapi.pool.$master === h, 'pool.$master resolves to the cached host')
    assert(typeof h.uuid === 'string' && h.$id === h.uuid, 'the host is indexed by uuid')
    assert(xapi.getObjectByUuid(h.uuid) === h, 'getObjectByUuid finds the host')
    const major = Number(h.API_version_major)
    assert(major >= 2, `API_version_major >= 2, got ${h.API_version_major}`)
    return `${h.name_label} (${h.uuid}), API ${h.API_version_major}.${h.API_version_minor}`
  })

  await check(
    'list VMs through the object cache',
    async () => {
      const vms = byType('VM')
      const dom0 = vms.filter(v => v.is_control_domain)
      assert(dom0.length === 1, `one control domain, got ${dom0.length}`)
      assert(dom0[0].$resident_on === byType('host')[0], 'dom0.$resident_on is the host')
      const tmpl = vms.filter(v => v.is_a_template && v.name_label === TEMPLATE)
      assert(tmpl.length === 1, `one "${TEMPLATE}" template, got ${tmpl.length}`)
      templateRef = tmpl[0].$ref
      const ints = typeof tmpl[0].memory_static_max
      if (transport === 'json-rpc' || transport === 'auto') {
        // JSON-RPC carries ints as numbers (XML-RPC as strings): this also
        // proves the auto transport settled on JSON-RPC
        assert(ints === 'number', `memory_static_max is a number over JSON-RPC, got ${ints}`)
      } else {
        assert(ints === 'string', `memory_static_max is a string over XML-RPC, got ${ints}`)
      }
      return `${vms.length} VMs (${vms.filter(v => v.is_a_template).length} templates), template ${templateRef}`
    },
    { required: true }
  )

  await check('barrier() round-trips a pool.other_config change through events', async () => {
    assert(typeof xapi.barrier === 'function', 'barrier exists')
    await within(WAIT, 'barrier()', xapi.barrier())
    const pool = await within(WAIT, 'barrier(poolRef)', xapi.barrier(xapi.pool.$ref))
    assert(pool === xapi.pool && pool.$type === 'pool', 'barrier(ref) returns the cached pool')
    // the barrier key is removed once seen; that removal is an event too
    await untilCache('the barrier keys to be gone', () =>
      Object.keys(xapi.pool.other_config).every(k => !k.startsWith('xo:barrier:'))
    )
  })

  let vm
  await check(
    `install a VM from "${TEMPLATE}" (VM.clone, VM.provision, VM.set_is_a_template)`,
    async () => {
      const name = `xen-api-check-${process.pid}`
      vm = await xapi.call('VM.clone', templateRef, name)
      assert(typeof vm === 'string' && vm.startsWith('OpaqueRef:'), `a VM ref, got ${vm}`)
      created.push(vm)
      watchPower(vm)
      await xapi.call('VM.provision', vm)
      await xapi.call('VM.set_is_a_template', vm, false)
      const rec = await untilCache('the installed VM in the cache, not a template', () => {
        const v = cached(vm)
        return v && !v.is_a_template && v.VBDs.length > 0 && v
      })
      assert(rec.name_label === name, `name_label ${name}`)
      assert(rec.power_state === 'Halted', `Halted, got ${rec.power_state}`)
      assert(rec.allowed_operations.includes('start'), `start allowed (${rec.allowed_operations})`)
      const disks = rec.$VBDs.filter(b => b && b.type === 'Disk')
      assert(disks.length >= 1, 'a Disk VBD in the cache')
      assert(disks.every(b => b.$VDI && b.$VDI.$type === 'VDI'), 'its VDI in the cache')
      return `${vm} (${rec.uuid}), ${disks.length} disk(s)`
    },
    { required: true }
  )

  await check('record helpers: set_name_description, update_other_config', async () => {
    const v = cached(vm)
    await v.set_name_description('made by check.mjs')
    await v.update_other_config('xenia-check', 'yes')
    await untilCache('the new description and other_config key', () => {
      const c = cached(vm)
      return c.name_description === 'made by check.mjs' && c.other_config['xenia-check'] === 'yes'
    })
    await cached(vm).update_other_config('xenia-check', null)
    await untilCache('the other_config key removed', () => !('xenia-check' in cached(vm).other_config))
  })

  await check(
    'VM.start; power_state Running arrives through events',
    async () => {
      await xapi.call('VM.start', vm, false, false)
      const rec = await untilCache('power_state Running in the cache', () => {
        const v = cached(vm)
        return v?.power_state === 'Running' && v
      })
      assert(rec.$resident_on === byType('host')[0], 'resident_on is the host')
      assert(rec.allowed_operations.includes('hard_shutdown'), 'hard_shutdown allowed while Running')
      return `history ${powerHistory.get(vm).join(' -> ')}`
    },
    { required: true }
  )

  await check('VM.hard_shutdown; power_state Halted arrives through events', async () => {
    await xapi.call('VM.hard_shutdown', vm)
    const rec = await untilCache('power_state Halted in the cache', () => {
      const v = cached(vm)
      return v?.power_state === 'Halted' && v
    })
    assert(rec.resident_on === 'OpaqueRef:NULL', `resident_on cleared, got ${rec.resident_on}`)
    const h = powerHistory.get(vm)
    assert(h.join(',') === 'Halted,Running,Halted', `history Halted,Running,Halted, got ${h}`)
    return `history ${h.join(' -> ')}`
  })

  await check('XenAPI errors become XapiError with code and params', async () => {
    const bad = 'OpaqueRef:00000000-dead-beef-0000-000000000000'
    const e1 = await expectXapiError('HANDLE_INVALID', xapi.call('VM.start', bad, false, false))
    assert(e1.params.includes(bad), `params name the bad ref: ${e1.params}`)
    assert(e1.params[0] === 'VM', `params[0] is the class: ${e1.params}`)
    const e2 = await expectXapiError('VM_BAD_POWER_STATE', xapi.call('VM.hard_shutdown', vm))
    assert(e2.params[0] === vm, `params[0] is the VM: ${e2.params}`)
    const e3 = await expectXapiError('MESSAGE_METHOD_UNKNOWN', xapi.call('VM.no_such_message', vm))
    assert(e3.params[0] === 'VM.no_such_message', `params[0] is the method: ${e3.params}`)
    const e4 = await expectXapiError('UUID_INVALID', xapi.call('VM.get_by_uuid', 'not-a-uuid'))
    return [e1, e2, e3, e4].map(e => e.message).join('; ')
  })

  let clone
  await check('callAsync("VM.clone"): the task result parsed from XML-RPC', async () => {
    const tasksSeen = new Set()
    const onAdd = items => {
      for (const o of Object.values(items)) if (o?.$type === 'task') tasksSeen.add(o.$ref)
    }
    xapi.objects.on('add', onAdd)
    try {
      clone = await within(WAIT, 'callAsync VM.clone', xapi.callAsync('VM.clone', vm, `xen-api-check-clone-${process.pid}`))
    } finally {
      xapi.objects.removeListener('add', onAdd)
    }
    assert(typeof clone === 'string' && clone.startsWith('OpaqueRef:'), `a VM ref, got ${JSON.stringify(clone)}`)
    created.push(clone)
    const rec = await untilCache('the clone in the cache', () => cached(clone))
    assert(rec.name_label === `xen-api-check-clone-${process.pid}`, `clone name ${rec.name_label}`)
    assert(rec.power_state === 'Halted', 'the clone is Halted')
    assert(tasksSeen.size >= 1, 'its task appeared in the cache through events')
    // the library destroys the task once settled; that arrives as a del event
    await untilCache('the finished task to leave the cache', () => [...tasksSeen].every(t => !cached(t)))
    return `${clone} via ${tasksSeen.size} task(s)`
  })

  await check('callAsync: a failing call rejects with the XapiError of its task', async () => {
    const e = await within(
      WAIT,
      'a failing callAsync',
      expectXapiError('VM_IS_TEMPLATE', xapi.callAsync('VM.start', templateRef, false, false))
    )
    assert(e.params[0] === templateRef, `params[0] is the template: ${e.params}`)
    const e2 = await within(WAIT, 'a failing callAsync', expectXapiError('VM_BAD_POWER_STATE', xapi.callAsync('VM.hard_shutdown', vm)))
    assert(e2.params[0] === vm, `params[0] is the VM: ${e2.params}`)
    return `${e.message}; ${e2.message}`
  })

  await check('callAsync of void calls (VDI.destroy, VM.destroy of the clone) resolves to ""', async () => {
    const disks = cached(clone).$VBDs.filter(b => b?.type === 'Disk' && b.VDI !== 'OpaqueRef:NULL')
    for (const vbd of disks) {
      const r = await within(WAIT, 'callAsync VDI.destroy', xapi.callAsync('VDI.destroy', vbd.VDI))
      assert(r === '', `VDI.destroy result "", got ${JSON.stringify(r)}`)
    }
    const r = await within(WAIT, 'callAsync VM.destroy', xapi.callAsync('VM.destroy', clone))
    assert(r === '', `VM.destroy result "", got ${JSON.stringify(r)}`)
    await untilCache('the destroyed clone and its disks to leave the cache', () =>
      !cached(clone) && disks.every(b => !cached(b.VDI) && !cached(b.$ref))
    )
    return `${disks.length} VDI(s) and the clone destroyed`
  })

  await check('destroy what was made; the VMs leave the cache', async () => {
    while (created.length) {
      const ref = created.pop()
      if (cached(ref)) await destroyVm(ref)
      await untilCache(`VM ${ref} to leave the cache`, () => !cached(ref))
    }
    const leftovers = byType('VM').filter(v => v.name_label.startsWith('xen-api-check-'))
    assert(leftovers.length === 0, `no VM named xen-api-check-* left, got ${leftovers.length}`)
  })

  await check('the event watcher reported no errors and its task count held', async () => {
    assert(xapi.watchEventsError === undefined, `watchEventsError: ${describe(xapi.watchEventsError)}`)
    assert(watchErrors.length === 0, `warnings: ${watchErrors.join(' | ')}`)
    assert(typeof xapi.lastEventFetchedTimestamp === 'number', 'an event.from returned')
    // after each event.from the library compares valid_ref_counts.task
    // with the tasks it caches and re-fetches them all on a mismatch; a
    // count of the wrong type (XML-RPC must tag these <i4>) or events
    // that disagree with the counts make it re-fetch after every batch
    const refetches = (methodLog.get('task.get_all_records') ?? 0) - 1
    assert(refetches <= 2, `task.get_all_records re-fetched ${refetches} times (at most 2)`)
  })

  await check('disconnect', async () => {
    await within(WAIT, 'disconnect()', xapi.disconnect())
    assert(xapi.status === 'disconnected', `status disconnected, got ${xapi.status}`)
  })
}

const deadline = setTimeout(() => {
  say(`not ok - the whole run: still not done after ${TOTAL / 1e3} s`)
  finish(1)
}, TOTAL)

let finishing = false
async function finish(code) {
  if (finishing) return
  finishing = true
  clearTimeout(deadline)
  const log = [...methodLog].map(([m, n]) => (n > 1 ? `${m} x${n}` : m))
  say(`# XenAPI methods called by the library: ${log.join(', ')}`)
  say(code === 0 ? `# all checks passed` : `# ${failures} check(s) failed`)
  process.exit(code)
}

try {
  await main()
} catch (e) {
  if (!(e instanceof Abort)) {
    failures++
    say(`not ok - unexpected: ${describe(e)}`)
  }
  // leave nothing behind on a failed run
  for (const ref of created.reverse()) {
    try {
      await within(WAIT, 'cleanup', destroyVm(ref))
    } catch (err) {
      if (err?.code !== 'HANDLE_INVALID') say(`# cleanup of ${ref}: ${describe(err)}`)
    }
  }
  await within(10e3, 'disconnect', xapi.disconnect()).catch(() => {})
}
finish(failures === 0 ? 0 : 1)
