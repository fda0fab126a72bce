"""VM lifecycle with a real guest (xenapi.md §2.4).

One daemon (--shutdown-timeout 5) and one guest for the module, walked
through the states in order: start and console, pause, suspend/resume,
clean reboot, clean shutdown and the operations a halted VM refuses,
start paused, a guest that ignores the power button, hard shutdown,
actions-after-shutdown. Each test first brings the guest to the state it
needs (ensure_prompt), so a failure in one does not cascade."""

import os
import re
import secrets
import time

import xenia
from xenia import wait_for

D = None
VM = None
NAME = "life"
CON = None


def setup_module():
    global D, VM
    D = xenia.Daemon(shutdown_timeout=5, name="life").start()
    VM = D.install(NAME)


def teardown_module():
    if CON:
        CON.close()
    D.cleanup()


def con():
    """The console, reopened if the daemon closed it (QEMU restarted)."""
    global CON
    if CON is None or not CON.alive():
        if CON:
            CON.close()
        CON = D.console(VM)
    return CON


def ensure_prompt():
    """Bring the guest to Running with a shell prompt on the console."""
    state = D.power_state(VM)
    if state == "paused":
        D.xe("vm-unpause", "uuid=" + VM)
    elif state == "suspended":
        D.xe("vm-resume", "uuid=" + VM)
    elif state == "halted":
        D.xe("vm-start", "uuid=" + VM)
    c = con()
    c.wait_prompt()
    return c


def bad_power_state(cmd, expected, actual, *extra):
    """cmd must fail with VM_BAD_POWER_STATE [vm; expected; actual]."""
    out = D.xe(cmd, "uuid=" + VM, *extra, ok=False)
    assert out.error_code() == "VM_BAD_POWER_STATE", "%s: %s" % (cmd, out.stderr)
    want = "%s (%s), %s, %s" % (VM, NAME, expected, actual)
    assert out.error_params() == want, "%s: params %r, want %r" % (cmd, out.error_params(), want)


# What §2.4 allows in each state (a subset that must be there, and
# operations that must not be).
ALLOWED = {
    "halted": ({"start", "destroy", "clone", "copy", "export"},
               {"pause", "unpause", "suspend", "resume", "clean_shutdown", "clean_reboot",
                "hard_shutdown", "hard_reboot"}),
    "running": ({"clean_shutdown", "clean_reboot", "hard_shutdown", "hard_reboot", "pause",
                 "suspend"},
                {"start", "unpause", "resume", "destroy"}),
    "paused": ({"unpause", "hard_shutdown", "hard_reboot"},
               {"start", "pause", "suspend", "resume", "clean_shutdown", "clean_reboot",
                "destroy"}),
    "suspended": ({"resume", "hard_shutdown", "destroy"},
                  {"start", "pause", "unpause", "suspend", "clean_shutdown", "clean_reboot",
                   "hard_reboot"}),
}


def check_state(state):
    """power-state, allowed-operations and the QEMU all agree on state."""
    assert D.power_state(VM) == state
    ops = D.allowed_ops(VM)
    must, mustnot = ALLOWED[state]
    assert must <= ops, "%s: allowed-operations %s lacks %s" % (state, sorted(ops), must - ops)
    assert not ops & mustnot, "%s: allowed-operations has %s" % (state, ops & mustnot)
    assert D.vm_param(VM, "current-operations") == ""
    if state in ("running", "paused"):
        return D.qemu_pid(VM)
    wait_for(lambda: not D.qemu_pids(VM), 10, what="no QEMU for a %s VM" % state)
    return None


def counter(c, path):
    return int(c.run("cat " + path))


def start_counter(c, path):
    """A guest loop that writes an increasing count to path every second."""
    c.run("(i=0; while true; do i=$((i+1)); echo $i > %s; sleep 1; done) >/dev/null 2>&1 &"
          % path)
    return wait_for(lambda: counter(c, path) >= 1, 20, 0.3, what="the guest counter")


@xenia.time_limit(300)
def test_start_and_console():
    check_state("halted")
    D.xe("vm-start", "uuid=" + VM)
    check_state("running")
    c = con()
    c.wait_prompt()
    assert c.run("echo $((6*7))") == "42"
    assert "ID=tiny" in c.run("cat /etc/os-release")
    # a second console sees the same guest, and scrollback= replays the past
    with D.console(VM, scrollback=65536) as c2:
        c2.expect(re.escape(xenia.PROMPT), 10)
        tok = secrets.token_hex(4)
        assert c2.run("echo seen-$((1+1))-" + tok) == "seen-2-" + tok
    # the first console got that output too
    c.expect("seen-2-" + tok, 10)
    assert c.run("echo $((2+3))") == "5"


def script_console(tok, linger=1):
    """`echo cmd | xe console linger=N`, as a script uses it: (output, seconds)."""
    t0 = time.monotonic()
    out = D.xe("console", "uuid=" + VM, "linger=%s" % linger, timeout=20,
               input=("echo M-$((6*7))-%s\n" % tok).encode())
    return out, time.monotonic() - t0


def test_console_from_a_script():
    c = ensure_prompt()
    tok = secrets.token_hex(4)
    out, took = script_console(tok)
    assert "M-42-" + tok in out, out
    assert took < 8, "xe console took %.1fs with linger=1" % took
    # a guest that never stops printing: stdin ends, linger=1 s, exit
    # the pid goes to a file: the chatter may interleave with any output
    c.run("(while true; do echo chatter; sleep 0.2; done) & echo $! > /tmp/chatter.pid")
    try:
        tok = secrets.token_hex(4)
        out, took = script_console(tok)
        assert "M-42-" + tok in out, out
        assert took < 8, "xe console ran %.1fs after its input ended (linger=1)" % took
    finally:
        c.run("kill $(cat /tmp/chatter.pid)")


@xenia.time_limit(300)
def test_pause_unpause():
    c = ensure_prompt()
    pid = check_state("running")
    start_counter(c, "/tmp/cp")
    t0 = time.monotonic()
    c1 = counter(c, "/tmp/cp")
    D.xe("vm-pause", "uuid=" + VM)
    t_paused = time.monotonic()
    assert check_state("paused") == pid
    bad_power_state("vm-pause", "running", "paused")
    bad_power_state("vm-suspend", "running", "paused")
    bad_power_state("vm-start", "halted", "paused")
    # the paused guest's clock stands still: 4 s of wall time...
    time.sleep(max(0, 4 - (time.monotonic() - t_paused)))
    t_unpause = time.monotonic()
    D.xe("vm-unpause", "uuid=" + VM)
    assert check_state("running") == pid
    c2 = counter(c, "/tmp/cp")
    t1 = time.monotonic()
    # ...are not counted: only the time the guest ran between the reads
    ran = (t1 - t0) - (t_unpause - t_paused)
    assert c1 <= c2 <= c1 + ran + 1.5, \
        "counter went %d -> %d over %.1fs of which the guest ran %.1fs" % (c1, c2, t1 - t0, ran)
    # and it runs again
    wait_for(lambda: counter(c, "/tmp/cp") > c2, 15, 0.5, what="the counter to advance")


@xenia.time_limit(300)
def test_suspend_resume_keeps_guest_state():
    c = ensure_prompt()
    pid = check_state("running")
    start_counter(c, "/tmp/cs")
    keep = secrets.token_hex(8)
    c.run("echo %s > /tmp/keep" % keep)
    t0 = time.monotonic()
    c1 = counter(c, "/tmp/cs")
    D.xe("vm-suspend", "uuid=" + VM)
    t_susp = time.monotonic()
    check_state("suspended")
    assert not xenia.pid_alive(pid), "QEMU %d still runs for a suspended VM" % pid
    image = D.vm_param(VM, "suspend-VDI-uuid")
    assert xenia.UUID_RE.match(image), "suspend-VDI-uuid is %r" % image
    assert [f for f in os.listdir(D.sr_dir()) if f.startswith(image)], \
        "no suspend image file for VDI %s" % image
    bad_power_state("vm-start", "halted", "suspended")
    bad_power_state("vm-pause", "running", "suspended")
    bad_power_state("vm-unpause", "paused", "suspended")
    time.sleep(max(0, 3 - (time.monotonic() - t_susp)))
    t_resume = time.monotonic()
    D.xe("vm-resume", "uuid=" + VM)
    new_pid = check_state("running")
    assert new_pid != pid
    assert image not in D.xe("vdi-list", "--minimal"), "suspend image VDI kept after resume"
    c = con()
    c2 = counter(c, "/tmp/cs")
    t1 = time.monotonic()
    ran = (t1 - t0) - (t_resume - t_susp)
    assert c1 <= c2 <= c1 + ran + 1.5, \
        "counter went %d -> %d (reset or ran while suspended; guest ran %.1fs)" % (c1, c2, ran)
    assert c.run("cat /tmp/keep") == keep
    wait_for(lambda: counter(c, "/tmp/cs") > c2, 15, 0.5, what="the counter to advance")
    # no suspend image left behind in the SR
    assert not [f for f in os.listdir(D.sr_dir()) if f.startswith(image)]


@xenia.time_limit(300)
def test_clean_reboot():
    c = ensure_prompt()
    c.run("echo x > /tmp/before-reboot")
    D.xe("vm-reboot", "uuid=" + VM)
    check_state("running")
    c = con()
    c.wait_prompt()
    # /tmp is a tmpfs: a file from before the reboot is gone
    assert c.run("[ -e /tmp/before-reboot ] && echo kept || echo gone") == "gone"
    assert D.power_state(VM) == "running"


@xenia.time_limit(300)
def test_shutdown_start_paused_and_bad_power_states():
    ensure_prompt()
    D.xe("vm-shutdown", "uuid=" + VM)
    check_state("halted")
    bad_power_state("vm-pause", "running", "halted")
    bad_power_state("vm-unpause", "paused", "halted")
    bad_power_state("vm-suspend", "running", "halted")
    bad_power_state("vm-resume", "suspended", "halted")
    bad_power_state("vm-shutdown", "running", "halted")
    bad_power_state("vm-reboot", "running", "halted")
    # start paused
    D.xe("vm-start", "uuid=" + VM, "paused=true")
    pid = check_state("paused")
    bad_power_state("vm-start", "halted", "paused")
    D.xe("vm-unpause", "uuid=" + VM)
    assert check_state("running") == pid
    bad_power_state("vm-start", "halted", "running")
    bad_power_state("vm-resume", "suspended", "running")
    # the second start changed nothing
    assert D.qemu_pids(VM) == [pid]
    c = con()
    c.wait_prompt()
    assert c.run("echo $((3*3))") == "9"


@xenia.time_limit(300)
def test_shutdown_timeout_then_force():
    c = ensure_prompt()
    # a guest that ignores the power button and runs no guest agent (its
    # agent is stopped once it is up, else it would shut the guest down)
    wait_for(lambda: D.vm_param(VM, "live") == "true", 60, 0.5,
             what="the guest agent to answer")
    c.run("kill $(cat /run/acpid.pid); /etc/init.d/qemu-ga stop")
    wait_for(lambda: c.run("pidof acpid qemu-ga || echo none") == "none", 10, 0.5,
             what="acpid and qemu-ga to be gone in the guest")
    pid = D.qemu_pid(VM)
    t0 = time.monotonic()
    out = D.xe("vm-shutdown", "uuid=" + VM, ok=False, timeout=90)
    took = time.monotonic() - t0
    assert out.error_code() == "VM_SHUTDOWN_TIMEOUT", out.stderr
    assert VM in out.error_params(), out.stderr
    assert 4.5 <= took <= 60, "VM_SHUTDOWN_TIMEOUT after %.1fs with --shutdown-timeout 5" % took
    # the VM keeps running, and nothing is left in current-operations
    assert check_state("running") == pid
    c = con()
    assert c.run("echo still-$((1+1))") == "still-2"
    # hard shutdown does not need the guest
    D.xe("vm-shutdown", "uuid=" + VM, "--force", timeout=60)
    check_state("halted")
    assert not xenia.pid_alive(pid)


@xenia.time_limit(300)
def test_actions_after_shutdown():
    D.xe("vm-param-set", "uuid=" + VM, "actions-after-shutdown=restart")
    assert D.vm_param(VM, "actions-after-shutdown") == "restart"
    c = ensure_prompt()
    c.run("echo x > /tmp/before-poweroff")
    pid = D.qemu_pid(VM)
    c.send("poweroff\n")
    # the guest powers off, and the VM comes back by itself
    new = wait_for(lambda: [p for p in D.qemu_pids(VM) if p != pid]
                   and D.power_state(VM) == "running" and D.qemu_pids(VM),
                   60, 0.2, what="the VM to restart after poweroff")
    assert pid not in new and len(new) == 1, new
    c = con()
    c.wait_prompt()
    assert c.run("[ -e /tmp/before-poweroff ] && echo kept || echo gone") == "gone"
    # with destroy (the default), poweroff leaves it halted
    D.xe("vm-param-set", "uuid=" + VM, "actions-after-shutdown=destroy")
    c.send("poweroff\n")
    wait_for(lambda: D.power_state(VM) == "halted" and not D.qemu_pids(VM), 60, 0.2,
             what="the VM to halt after poweroff")
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        assert D.power_state(VM) == "halted" and not D.qemu_pids(VM), "it restarted anyway"
        time.sleep(0.2)
    check_state("halted")


@xenia.slow
@xenia.time_limit(600)
def test_suspend_resume_cycles():
    """Several suspend/resume cycles in a row keep the guest's state."""
    c = ensure_prompt()
    start_counter(c, "/tmp/cycles")
    keep = secrets.token_hex(8)
    c.run("echo %s > /tmp/keep-cycles" % keep)
    last = counter(c, "/tmp/cycles")
    for _ in range(5):
        D.xe("vm-suspend", "uuid=" + VM)
        check_state("suspended")
        D.xe("vm-resume", "uuid=" + VM)
        check_state("running")
        c = con()
        now = wait_for(lambda: counter(c, "/tmp/cycles") > last, 15, 0.3,
                       what="the counter to go on after resume")
        assert c.run("cat /tmp/keep-cycles") == keep
        last = now
    assert not [f for f in os.listdir(D.sr_dir()) if f.endswith(".state")]
