"""The daemon going away and coming back, and QEMUs dying under it.

* SIGTERM and kill -9 of the daemon leave a running guest running (same
  QEMU, same guest state), and the restarted daemon manages it again.
* A QEMU killed with -9 is noticed at once: the VM halts
  (actions-after-crash=destroy) or runs again in a new QEMU (restart).
* kill -9 of the daemon in the middle of vm-install, vm-start and
  vm-suspend, at several delays: after a restart nothing is stuck in
  current-operations, power states match the QEMUs that run, no QEMU runs
  without a running VM, and the SR holds no image no VDI claims. All
  checked through xe (and /proc, the SR directory), never the database.
"""

import os
import secrets
import signal
import subprocess
import time

import xenia
from xenia import wait_for

D = None
VM = None
NAME = "survivor"


def setup_module():
    global D, VM
    D = xenia.Daemon(name="restart").start()
    VM = D.install(NAME)


def teardown_module():
    D.cleanup()


def running_at_prompt():
    """The module's guest, running, with a shell prompt; its console."""
    if D.power_state(VM) != "running":
        D.xe("vm-start", "uuid=" + VM)
    c = D.console(VM)
    c.wait_prompt()
    return c


def check_managed(pid):
    """The VM is recorded running on QEMU pid and can be paused and
    unpaused (the daemon talks to that QEMU again)."""
    assert D.power_state(VM) == "running"
    assert D.qemu_pids(VM) == [pid], "QEMUs %s, expected [%d]" % (D.qemu_pids(VM), pid)
    assert D.vm_param(VM, "current-operations") == ""
    assert {"clean_shutdown", "pause", "suspend"} <= D.allowed_ops(VM)
    D.xe("vm-pause", "uuid=" + VM)
    assert D.power_state(VM) == "paused"
    D.xe("vm-unpause", "uuid=" + VM)
    assert D.power_state(VM) == "running"


def survive(stop):
    with running_at_prompt() as c:
        token = secrets.token_hex(8)
        c.run("echo %s > /tmp/state" % token)
    pid = D.qemu_pid(VM)
    stop()
    assert not D.running()
    assert xenia.pid_alive(pid), "QEMU %d died with the daemon" % pid
    D.start()
    check_managed(pid)
    with D.console(VM) as c:
        assert c.run("cat /tmp/state") == token, "guest state lost"
        assert c.run("echo $((7*6))") == "42"


@xenia.time_limit(300)
def test_sigterm_leaves_vm_running():
    def stop():
        assert D.stop() == 0, "xeniad did not exit cleanly on SIGTERM:\n" + D.log_tail()
    survive(stop)


@xenia.time_limit(300)
def test_kill9_leaves_vm_running():
    survive(D.kill9)


def test_qemu_killed_destroy():
    if D.power_state(VM) != "running":
        D.xe("vm-start", "uuid=" + VM)
    D.xe("vm-param-set", "uuid=" + VM, "actions-after-crash=destroy")
    pid = D.qemu_pid(VM)
    t0 = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: D.power_state(VM) == "halted", 5, 0.05, what="the VM to be recorded halted")
    took = time.monotonic() - t0
    assert took < 3, "noticed the dead QEMU only after %.1fs" % took
    # and it stays halted, with no QEMU
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        assert D.power_state(VM) == "halted" and not D.qemu_pids(VM), "restarted despite destroy"
        time.sleep(0.1)
    assert "start" in D.allowed_ops(VM)
    assert D.vm_param(VM, "current-operations") == ""


@xenia.time_limit(300)
def test_qemu_killed_restart():
    D.xe("vm-param-set", "uuid=" + VM, "actions-after-crash=restart")
    if D.power_state(VM) != "running":
        D.xe("vm-start", "uuid=" + VM)
    pid = D.qemu_pid(VM)
    os.kill(pid, signal.SIGKILL)
    new = wait_for(lambda: D.power_state(VM) == "running"
                   and [p for p in D.qemu_pids(VM) if p != pid],
                   20, 0.05, what="the VM to run again in a new QEMU")
    assert len(new) == 1 and not xenia.pid_alive(pid)
    with D.console(VM) as c:
        c.wait_prompt()
        assert c.run("echo $((5*5))") == "25"


# ---- kill -9 in the middle of an operation -----------------------------------

# Kill points, as fractions of how long the operation takes here (measured
# first, so the kills land inside it whatever the machine's speed).
FRACTIONS = [0.0, 0.15, 0.3, 0.45, 0.6, 0.75, 0.9]


def timed(d, *args):
    t0 = time.monotonic()
    d.xe(*args)
    return time.monotonic() - t0


def inconsistencies(d):
    """What is wrong between the records, the QEMUs and the SR; [] if
    nothing."""
    bad = []
    recs = xenia.records(
        d.xe("vm-list", "is-control-domain=false", "params=uuid,power-state,current-operations")
        + "\n" + d.xe("template-list", "params=uuid,current-operations"),
        "uuid", "power-state", "current-operations")
    states = {}
    for uuid, state, ops in recs:
        if ops:
            bad.append("VM %s stuck with current-operations %s" % (uuid, ops))
        if state:
            states[uuid] = state
    for uuid, state in states.items():
        pids = d.qemu_pids(uuid)
        if state in ("running", "paused") and len(pids) != 1:
            bad.append("VM %s is %s but has QEMUs %s" % (uuid, state, pids))
        if state in ("halted", "suspended") and pids:
            bad.append("VM %s is %s but QEMU %s runs" % (uuid, state, pids))
    for pid in d.qemu_pids():
        argv = xenia.cmdline(pid) or []
        owner = argv[argv.index("-uuid") + 1] if "-uuid" in argv else None
        if states.get(owner) not in ("running", "paused"):
            bad.append("QEMU %d runs for %s, which is %s" % (pid, owner, states.get(owner)))
    vdis = set(v for v in d.xe("vdi-list", "params=uuid", "--minimal").strip().split(",") if v)
    files = os.listdir(d.sr_dir())
    stems = set(f.split(".")[0] for f in files)
    for f in files:
        if f.split(".")[0] not in vdis:
            bad.append("SR file %s claimed by no VDI" % f)
    for v in vdis - stems:
        bad.append("VDI %s has no file in the SR" % v)
    for uuid, state in states.items():
        if state == "suspended":
            img = d.vm_param(uuid, "suspend-VDI-uuid")
            if img not in vdis:
                bad.append("suspended VM %s has no suspend image (%s)" % (uuid, img))
    pending = [t for t, s in xenia.records(d.xe("task-list", "params=uuid,status"), "uuid", "status")
               if s == "pending"]
    if pending:
        bad.append("tasks still pending: %s" % pending)
    return bad


def check_consistent(d, what):
    last = []

    def ok():
        last[:] = inconsistencies(d)
        return not last
    try:
        wait_for(ok, 10, 0.2, what="a consistent state")
    except xenia.WaitTimeout:
        raise AssertionError("after kill -9 %s: %s" % (what, "; ".join(last)))


def kill_during(d, delay, *args):
    """Run xe args, kill -9 the daemon after delay seconds, restart it.
    True if xe had not finished when the daemon died."""
    p = xenia.popen([xenia.XE] + list(args), env=d.env, stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE)
    time.sleep(delay)
    unfinished = p.poll() is None
    d.kill9()
    out, err = p.communicate(timeout=60)
    kill_during.last = (p.returncode, out.decode(errors="replace"), err.decode(errors="replace"))
    d.start()
    return unfinished


def assert_hit(hits, what):
    # a kill after the operation ended tests nothing: most must land inside
    assert hits >= 2, "only %d of %d kills interrupted %s" % (hits, len(FRACTIONS), what)


@xenia.time_limit(240)
def test_kill9_during_install():
    with xenia.Daemon(name="k9install") as d:
        d.start()
        took = min(timed(d, "vm-install", "new-name-label=m%d" % i, "template=" + xenia.TEMPLATE)
                   for i in range(2))
        hits = 0
        for i, f in enumerate(FRACTIONS):
            hits += kill_during(d, took * f, "vm-install", "new-name-label=k9-%d" % i,
                                "template=" + xenia.TEMPLATE)
            check_consistent(d, "during vm-install after %.3fs" % (took * f))
        assert_hit(hits, "vm-install (%.3fs)" % took)
        # the template and the daemon still work
        uuid = d.install("after")
        assert d.power_state(uuid) == "halted"
        d.xe("vm-uninstall", "uuid=" + uuid, "--force")
        check_consistent(d, "(none: final uninstall)")


@xenia.time_limit(240)
def test_kill9_during_start():
    with xenia.Daemon(name="k9start") as d:
        d.start()
        vm = d.install("k9")
        took = timed(d, "vm-start", "uuid=" + vm)
        hits = 0
        for f in FRACTIONS:
            if d.power_state(vm) != "halted":
                d.xe("vm-shutdown", "uuid=" + vm, "--force")
            hits += kill_during(d, took * f, "vm-start", "uuid=" + vm)
            check_consistent(d, "during vm-start after %.3fs" % (took * f))
        assert_hit(hits, "vm-start (%.3fs)" % took)
        # whatever happened, the VM can be stopped and started again
        if d.power_state(vm) != "halted":
            d.xe("vm-shutdown", "uuid=" + vm, "--force")
        d.xe("vm-start", "uuid=" + vm)
        check_consistent(d, "(none: final start)")


def guest_ticks(d, vm):
    """The guest's ticker (see below) prints on the console: it runs."""
    with d.console(vm) as c:
        c.expect("tick-2", 15)


@xenia.time_limit(300)
def test_kill9_during_suspend_and_resume():
    with xenia.Daemon(name="k9susp") as d:
        d.start()
        vm = d.install("k9")
        d.xe("vm-start", "uuid=" + vm)
        with d.console(vm) as c:
            c.wait_prompt()
            c.run("(while true; do echo tick-$((1+1)); sleep 0.5; done) &")
        took_suspend = timed(d, "vm-suspend", "uuid=" + vm)
        took_resume = timed(d, "vm-resume", "uuid=" + vm)
        guest_ticks(d, vm)
        hits = {"vm-suspend": 0, "vm-resume": 0}
        for f in FRACTIONS:
            for op, took in (("vm-suspend", took_suspend), ("vm-resume", took_resume)):
                state = d.power_state(vm)
                want = "running" if op == "vm-suspend" else "suspended"
                if state != want:
                    d.xe("vm-resume" if want == "running" else "vm-suspend", "uuid=" + vm)
                hits[op] += kill_during(d, took * f, op, "uuid=" + vm)
                what = "during %s after %.3fs" % (op, took * f)
                check_consistent(d, what)
                # never lost: either still suspended or running the same guest
                state = d.power_state(vm)
                assert state in ("running", "suspended"), "%s: the VM is %s" % (what, state)
                if state == "running":
                    guest_ticks(d, vm)
        assert_hit(hits["vm-suspend"], "vm-suspend (%.3fs)" % took_suspend)
        assert_hit(hits["vm-resume"], "vm-resume (%.3fs)" % took_resume)
        # and it still suspends and resumes
        if d.power_state(vm) == "suspended":
            d.xe("vm-resume", "uuid=" + vm)
        d.xe("vm-suspend", "uuid=" + vm)
        d.xe("vm-resume", "uuid=" + vm)
        guest_ticks(d, vm)
        check_consistent(d, "(none: final suspend/resume)")


@xenia.slow
@xenia.time_limit(900)
def test_kill9_dense_sweep():
    """Many more kill points through start, suspend and resume."""
    points = [i * 0.04 for i in range(31)]  # 0 .. 1.2 x the operation's time
    with xenia.Daemon(name="k9sweep") as d:
        d.start()
        vm = d.install("sweep")
        took = {"vm-start": timed(d, "vm-start", "uuid=" + vm),
                "vm-suspend": timed(d, "vm-suspend", "uuid=" + vm),
                "vm-resume": timed(d, "vm-resume", "uuid=" + vm)}
        need = {"vm-start": "halted", "vm-suspend": "running", "vm-resume": "suspended"}
        for op in ("vm-start", "vm-suspend", "vm-resume"):
            for f in points:
                state = d.power_state(vm)
                if state != need[op]:
                    if state in ("running", "paused") and need[op] == "halted":
                        d.xe("vm-shutdown", "uuid=" + vm, "--force")
                    elif state == "halted":
                        d.xe("vm-start", "uuid=" + vm)
                        if need[op] == "suspended":
                            d.xe("vm-suspend", "uuid=" + vm)
                    elif state == "suspended":
                        d.xe("vm-resume", "uuid=" + vm)
                    elif state == "running" and need[op] == "suspended":
                        d.xe("vm-suspend", "uuid=" + vm)
                assert d.power_state(vm) == need[op]
                kill_during(d, took[op] * f, op, "uuid=" + vm)
                check_consistent(d, "during %s after %.3fs" % (op, took[op] * f))
        # still fully manageable
        if d.power_state(vm) == "suspended":
            d.xe("vm-resume", "uuid=" + vm)
        if d.power_state(vm) == "halted":
            d.xe("vm-start", "uuid=" + vm)
        d.xe("vm-suspend", "uuid=" + vm)
        d.xe("vm-resume", "uuid=" + vm)
        d.xe("vm-shutdown", "uuid=" + vm, "--force")
        check_consistent(d, "(none: final operations)")
