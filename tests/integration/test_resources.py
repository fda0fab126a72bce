"""Resource control of running VMs: the credit scheduler's VCPUs-params
(weight, cap, mask) on cgroups and vCPU thread affinity, and the memory
balloon (xenapi.md §VM: VCPUs_params, set_memory_dynamic_range).

Two Tiny Linux guests for the module: "res-a" (256 MiB static-max, for
the cap and the balloon) and "res-b". CPU shares are measured from /proc:
the QEMU process's CPU time (utime + stime, every thread) for a cap, the
vCPU threads' ("CPU 0/TCG") for weights, over windows of several seconds,
while the guest spins in a shell loop. The cgroup files are read where
the host mounts the cpu controller (v1 here: /sys/fs/cgroup/cpu/xenia/
<vm uuid>).

Other tests may run on this machine at the same time, so the checks are
the issue's tolerances (cap 50 -> 50 % +- 10; weights 512:256 on one CPU
-> 2:1 +- 20 %) over long windows, and the CPU-time ones are backed by
the kernel's own counters (the group's quota, nr_throttled). With the cap
removed the guest must use well over half a CPU. The lower bounds (at
least 40 % under the cap, over 62 % without) and "throttled under the
cap" are checked when the host left at least 0.3 CPU idle meanwhile: on a
host kept busy by other work a guest gets less whatever its cap, and
then the quota files and nr_throttled are the proof."""

import os
import signal
import time

import xenia
from xenia import wait_for

D = None
A = B = None
CON = {}
TICK = os.sysconf("SC_CLK_TCK")
MiB = 1 << 20


def setup_module():
    global D, A, B
    D = xenia.Daemon(name="res").start()
    A = D.install("res-a")
    B = D.install("res-b")
    D.xe("vm-memory-limits-set", "uuid=" + A, "static-min=64MiB", "static-max=256MiB",
         "dynamic-min=256MiB", "dynamic-max=256MiB")


def teardown_module():
    for c in CON.values():
        c.close()
    D.cleanup()


# ---- helpers ------------------------------------------------------------------

def cpu_hierarchy():
    """(version, mount point) of the cgroup hierarchy with the cpu controller."""
    v2 = None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, post = line.split(" - ", 1)
            fstype, _src, opts = post.split()[:3]
            mnt = pre.split()[4]
            if fstype == "cgroup" and "cpu" in opts.split(","):
                return 1, mnt
            if fstype == "cgroup2":
                v2 = mnt
    return 2, v2


def group(vm):
    return os.path.join(cpu_hierarchy()[1], "xenia", vm)


def read(path):
    with open(path) as f:
        return f.read().strip()


def quota(vm):
    """The group's CPU quota per 100 ms period in us, -1 for none."""
    version, _ = cpu_hierarchy()
    if version == 1:
        assert read(os.path.join(group(vm), "cpu.cfs_period_us")) == "100000"
        return int(read(os.path.join(group(vm), "cpu.cfs_quota_us")))
    q, period = read(os.path.join(group(vm), "cpu.max")).split()
    assert period == "100000"
    return -1 if q == "max" else int(q)


def weight_file(vm):
    """cpu.shares (v1, 1024 for weight 256) or cpu.weight (v2, 100)."""
    version, _ = cpu_hierarchy()
    return int(read(os.path.join(group(vm), "cpu.shares" if version == 1 else "cpu.weight")))


def throttled(vm):
    """How many periods the group was throttled in (its cpu.stat)."""
    for line in read(os.path.join(group(vm), "cpu.stat")).splitlines():
        k, v = line.split()
        if k in ("nr_throttled",):
            return int(v)
    raise AssertionError("no nr_throttled in cpu.stat of %s" % vm)


def procs(vm):
    return sorted(int(p) for p in read(os.path.join(group(vm), "cgroup.procs")).split())


def ticks(path):
    """utime + stime of a /proc/.../stat file."""
    fields = read(path).rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def vcpu_tids(pid):
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        comm = read("/proc/%d/task/%s/comm" % (pid, tid))
        if comm.startswith("CPU ") and comm.endswith(("/TCG", "/KVM")):
            out[int(comm[4:].split("/")[0])] = int(tid)
    return out


def host_idle_ticks():
    """Idle time of all the host's CPUs (the "cpu" line of /proc/stat)."""
    with open("/proc/stat") as f:
        fields = f.readline().split()
    return int(fields[4]) + int(fields[5])


def cpu_share(paths, seconds, idle=None):
    """CPU time per second of wall time (1.0 = one CPU) of each stat file;
    idle (a list) gets how many CPUs the host left idle meanwhile."""
    t0, before, i0 = time.monotonic(), [ticks(p) for p in paths], host_idle_ticks()
    time.sleep(seconds)
    t1, after, i1 = time.monotonic(), [ticks(p) for p in paths], host_idle_ticks()
    if idle is not None:
        idle.append((i1 - i0) / TICK / (t1 - t0))
    return [(b - a) / TICK / (t1 - t0) for a, b in zip(before, after)]


def console(vm):
    if vm not in CON or not CON[vm].alive():
        CON[vm] = D.console(vm)
    CON[vm].wait_prompt()
    return CON[vm]


def spin(vm):
    """A shell loop spinning one vCPU of the guest (until unspin)."""
    c = console(vm)
    c.run("while :; do :; done &")
    c.run("SPIN=$!")


def unspin(vm):
    console(vm).run("kill $SPIN")


def params(vm):
    return D.vm_param(vm, "VCPUs-params")


def refused(code, *args):
    out = D.xe(*args, ok=False)
    assert out.error_code() == code, "%s: %s" % (" ".join(args), out.stderr)
    return out


def host_cpus():
    return sorted(os.sched_getaffinity(0))


BAD = [
    ("weight", "0"), ("weight", "65536"), ("weight", "heavy"), ("weight", "-5"),
    ("cap", "-1"), ("cap", "101"), ("cap", "50%"), ("cap", ""),
    ("mask", "0,,1"), ("mask", "a"), ("mask", "-1"), ("mask", "99999"),
]


def refuse_bad_values(vm):
    """Every bad value is refused (INVALID_VALUE naming it) and
    VCPUs-params stays as it was, through xe and the API."""
    before = params(vm)
    bad = BAD + [("mask", "0,%d" % (host_cpus()[-1] + 1))]
    for key, value in bad:
        out = refused("INVALID_VALUE", "vm-param-set", "uuid=" + vm,
                      "VCPUs-params:%s=%s" % (key, value))
        assert out.error_params() == "VCPUs_params:%s, %s" % (key, value), out.error_params()
        assert params(vm) == before, "%s=%s changed VCPUs-params to %r" % (key, value,
                                                                           params(vm))
    ref = D.api("VM.get_by_uuid", vm)
    for key, value in bad[:3]:
        try:
            D.api("VM.set_VCPUs_params", ref, {key: value})
            raise AssertionError("VM.set_VCPUs_params %s=%s accepted" % (key, value))
        except xenia.ApiError as e:
            assert e.code == "INVALID_VALUE", e
    assert params(vm) == before


# ---- tests ----------------------------------------------------------------------

def test_bad_values_on_halted_vm():
    assert D.power_state(A) == "halted"
    D.xe("vm-param-set", "uuid=" + A, "VCPUs-params:weight=300")
    refuse_bad_values(A)
    assert params(A) == "weight: 300"
    # cap may reach 100 per vCPU
    D.xe("vm-param-set", "uuid=" + A, "VCPUs-params:cap=100")
    D.xe("vm-param-remove", "uuid=" + A, "param-name=VCPUs-params", "param-key=cap")
    D.xe("vm-param-remove", "uuid=" + A, "param-name=VCPUs-params", "param-key=weight")
    # add_to_VCPUs_params_live needs a running VM
    try:
        D.api("VM.add_to_VCPUs_params_live", D.api("VM.get_by_uuid", A), "cap", "50")
        raise AssertionError("add_to_VCPUs_params_live on a halted VM accepted")
    except xenia.ApiError as e:
        assert e.code == "VM_BAD_POWER_STATE", e
    # memory: a target beyond the static limits, and no hot-add
    refused("MEMORY_CONSTRAINT_VIOLATION", "vm-memory-target-set", "uuid=" + A,
            "target=300MiB")
    refused("MEMORY_CONSTRAINT_VIOLATION", "vm-memory-target-set", "uuid=" + A,
            "target=32MiB")
    assert int(D.vm_param(A, "memory-dynamic-max")) == 256 * MiB
    assert int(D.vm_param(A, "memory-dynamic-min")) == 256 * MiB


def test_cap_live():
    """cap=50 set on a running VM holds a spinning guest at half a CPU;
    removing it live gives the CPU back."""
    D.xe("vm-start", "uuid=" + A)
    pid = D.qemu_pid(A)
    assert procs(A) == [pid], "cgroup %s holds %s, QEMU is %d" % (group(A), procs(A), pid)
    assert quota(A) == -1 and weight_file(A) in (1024, 100)
    spin(A)
    D.xe("vm-param-set", "uuid=" + A, "VCPUs-params:cap=50")
    assert quota(A) == 50000
    n0, idle = throttled(A), []
    share = cpu_share(["/proc/%d/stat" % pid], 8, idle)[0]
    why = "capped at 50, QEMU used %.0f%% of a CPU (%.1f CPUs idle)" % (share * 100, idle[0])
    assert share <= 0.60, why
    # down to the cap, and the cap (not other work) held it there, when
    # the host had room to give it more
    if idle[0] >= 0.3:
        assert share >= 0.40, why
        assert throttled(A) > n0 + 20, "hardly throttled: " + why
    # the metrics read it too: the vCPU's latest 5-s value in
    # VM.query_data_source, once every sample it is made of was taken
    # under the cap (a sample covers the 5 s before it, and the archive's
    # aligned slot can straddle two samples: 10 s more make sure)
    time.sleep(10)
    ref = D.api("VM.get_by_uuid", A)
    cpu0 = D.api("VM.query_data_source", ref, "cpu0")
    assert cpu0 <= 0.60, "capped at 50, query_data_source cpu0 = %.2f" % cpu0
    if idle[0] >= 0.3:
        assert cpu0 >= 0.40, "capped at 50, query_data_source cpu0 = %.2f (%s)" % (cpu0, why)
    D.xe("vm-param-remove", "uuid=" + A, "param-name=VCPUs-params", "param-key=cap")
    assert quota(A) == -1
    n0, idle = throttled(A), []
    share = cpu_share(["/proc/%d/stat" % pid], 6, idle)[0]
    assert throttled(A) == n0, "throttled with no cap"
    # Well above what the cap allowed, unless other work kept every CPU
    # of the host busy (then the kernel's counters above are the proof).
    if idle[0] >= 0.3:
        assert share >= 0.62, "cap removed, QEMU used only %.0f%% with %.1f CPUs idle" % (
            share * 100, idle[0])
    # the API's live message does the same, and VM_metrics shows it
    ref = D.api("VM.get_by_uuid", A)
    D.api("VM.add_to_VCPUs_params_live", ref, "cap", "30")
    assert quota(A) == 30000 and params(A) == "cap: 30"
    metrics = D.api("VM.get_metrics", ref)
    assert D.api("VM_metrics.get_VCPUs_params", metrics) == {"cap": "30"}
    D.api("VM.remove_from_VCPUs_params", ref, "cap")
    assert quota(A) == -1
    unspin(A)


def test_weights_pinned_to_one_cpu():
    """Both guests spinning, both pinned to host CPU 0 (mask), weights 512
    and 256: their vCPUs share that CPU 2:1."""
    D.xe("vm-start", "uuid=" + B)
    pa, pb = D.qemu_pid(A), D.qemu_pid(B)
    spin(A)
    spin(B)
    D.xe("vm-param-set", "uuid=" + A, "VCPUs-params:mask=0", "VCPUs-params:weight=512")
    D.xe("vm-param-set", "uuid=" + B, "VCPUs-params:mask=0", "VCPUs-params:weight=256")
    version = cpu_hierarchy()[0]
    assert weight_file(A) == (2048 if version == 1 else 200)
    assert weight_file(B) == (1024 if version == 1 else 100)
    ta, tb = vcpu_tids(pa), vcpu_tids(pb)
    assert list(ta) == [0] and list(tb) == [0], (ta, tb)
    for tid in (ta[0], tb[0]):
        assert os.sched_getaffinity(tid) == {0}, os.sched_getaffinity(tid)
    # QEMU's other threads are not pinned
    others = [int(t) for t in os.listdir("/proc/%d/task" % pa) if int(t) != ta[0]]
    assert os.sched_getaffinity(others[0]) == set(host_cpus())
    time.sleep(1)
    sa, sb = cpu_share(["/proc/%d/task/%d/stat" % (pa, ta[0]),
                        "/proc/%d/task/%d/stat" % (pb, tb[0])], 10)
    assert sb > 0.02, "the weight-256 vCPU got %.1f%%" % (sb * 100)
    ratio = sa / sb
    assert 1.6 <= ratio <= 2.4, "weights 512:256 gave %.0f%%:%.0f%% (%.2f:1)" % (
        sa * 100, sb * 100, ratio)
    unspin(A)
    unspin(B)


def test_bad_values_on_running_vm():
    """Refused changes leave the running VM's cgroup and pinning alone."""
    assert D.power_state(A) == "running"
    q, w = quota(A), weight_file(A)
    refuse_bad_values(A)
    assert (quota(A), weight_file(A)) == (q, w)
    assert os.sched_getaffinity(vcpu_tids(D.qemu_pid(A))[0]) == {0}
    # a role below vm-admin may not change them
    D.xe("user-add", "user-name=op", "password=op-pw", "role=vm-operator")
    r = D.call("session.login_with_password", ["op", "op-pw", "2.21", "t"])
    session, ref = r["result"], D.api("VM.get_by_uuid", A)
    for method, args in (("VM.add_to_VCPUs_params", ["cap", "10"]),
                         ("VM.set_VCPUs_params", [{"cap": "10"}]),
                         ("VM.remove_from_VCPUs_params", ["mask"]),
                         ("VM.add_to_VCPUs_params_live", ["cap", "10"])):
        e = D.call(method, [session, ref] + args).get("error")
        assert e and e["message"] == "RBAC_PERMISSION_DENIED", (method, e)
    assert (quota(A), weight_file(A)) == (q, w)
    assert os.sched_getaffinity(vcpu_tids(D.qemu_pid(A))[0]) == {0}
    # a mask removed live frees the vCPU again
    D.xe("vm-param-remove", "uuid=" + A, "param-name=VCPUs-params", "param-key=mask")
    assert os.sched_getaffinity(vcpu_tids(D.qemu_pid(A))[0]) == set(host_cpus())


def meminfo(c, key="MemTotal"):
    line = c.run("grep '^%s:' /proc/meminfo" % key)
    return int(line.split()[1])  # kB


def test_balloon_moves_guest_memory():
    """vm-memory-target-set on a running VM: the guest's MemTotal drops by
    what the balloon took, and comes back."""
    c = console(A)
    total = meminfo(c)
    D.xe("vm-memory-target-set", "uuid=" + A, "target=192MiB")
    assert D.vm_param(A, "memory-dynamic-max") == str(192 * MiB)
    assert D.vm_param(A, "memory-target") == str(192 * MiB)
    wait_for(lambda: abs(total - meminfo(c) - 65536) <= 1024, 60, 0.5,
             "the guest's MemTotal to drop by 64 MiB from %d kB" % total)
    wait_for(lambda: D.vm_param(A, "memory-actual") == str(192 * MiB), 30, 0.5,
             "memory-actual to reach 192 MiB")
    D.xe("vm-memory-dynamic-range-set", "uuid=" + A, "min=128MiB", "max=256MiB")
    wait_for(lambda: abs(total - meminfo(c)) <= 1024, 60, 0.5,
             "the guest's MemTotal to come back to %d kB" % total)
    wait_for(lambda: D.vm_param(A, "memory-actual") == str(256 * MiB), 30, 0.5,
             "memory-actual to reach 256 MiB")
    # the deprecated set_memory_target_live moves the target within the range
    ref = D.api("VM.get_by_uuid", A)
    D.api("VM.set_memory_target_live", ref, str(224 * MiB))
    assert D.vm_param(A, "memory-target") == str(224 * MiB)
    assert D.vm_param(A, "memory-dynamic-max") == str(256 * MiB)
    wait_for(lambda: abs(total - meminfo(c) - 32768) <= 1024, 60, 0.5,
             "the guest's MemTotal to drop by 32 MiB")
    try:
        D.api("VM.set_memory_target_live", ref, str(100 * MiB))
        raise AssertionError("a target below dynamic-min accepted")
    except xenia.ApiError as e:
        assert e.code == "MEMORY_CONSTRAINT_VIOLATION", e
    D.api("VM.set_memory_target_live", ref, str(256 * MiB))
    wait_for(lambda: abs(total - meminfo(c)) <= 1024, 60, 0.5, "MemTotal back again")
    # static limits stay put while it runs; nothing changes
    refused("VM_BAD_POWER_STATE", "vm-memory-static-range-set", "uuid=" + A, "min=64MiB",
            "max=512MiB")
    refused("MEMORY_CONSTRAINT_VIOLATION", "vm-memory-target-set", "uuid=" + A,
            "target=300MiB")
    assert D.vm_param(A, "memory-static-max") == str(256 * MiB)
    assert D.vm_param(A, "memory-dynamic-max") == str(256 * MiB)
    assert abs(total - meminfo(c)) <= 1024


def test_kill9_restart_keeps_running_groups_drops_dead_ones():
    """kill -9 of the daemon: the running VM keeps its group, and its
    settings come back from the record even if someone changed the files;
    the group of a VM whose QEMU died meanwhile is removed."""
    last = host_cpus()[-1]
    D.xe("vm-param-set", "uuid=" + A, "VCPUs-params:cap=80", "VCPUs-params:mask=%d" % last)
    pa, pb = D.qemu_pid(A), D.qemu_pid(B)
    assert os.path.isdir(group(B))
    for c in CON.values():
        c.close()
    CON.clear()
    D.kill9()
    with open(os.path.join(group(A), "cpu.cfs_quota_us" if cpu_hierarchy()[0] == 1
                           else "cpu.max"), "w") as f:
        f.write("20000" if cpu_hierarchy()[0] == 1 else "20000 100000")
    os.sched_setaffinity(vcpu_tids(pa)[0], {0})
    os.kill(pb, signal.SIGKILL)
    wait_for(lambda: not xenia.pid_alive(pb), 10, what="B's QEMU to die")
    D.start()
    assert D.qemu_pids(A) == [pa] and D.power_state(A) == "running"
    wait_for(lambda: D.power_state(B) == "halted", 30, what="B recorded halted")
    wait_for(lambda: not os.path.exists(group(B)), 15, what="B's cgroup to go")
    wait_for(lambda: quota(A) == 80000, 15, what="A's cap re-applied")
    assert procs(A) == [pa]
    assert os.sched_getaffinity(vcpu_tids(pa)[0]) == {last}


def test_start_applies_recorded_settings_and_stop_removes_group():
    """A halted VM's recorded VCPUs-params apply when it starts; its group
    goes when it stops."""
    D.xe("vm-param-set", "uuid=" + B, "VCPUs-params:cap=40", "VCPUs-params:weight=128")
    D.xe("vm-start", "uuid=" + B)
    pb = D.qemu_pid(B)
    assert procs(B) == [pb]
    assert quota(B) == 40000
    assert weight_file(B) == (512 if cpu_hierarchy()[0] == 1 else 50)
    assert os.sched_getaffinity(vcpu_tids(pb)[0]) == {0}  # mask=0 from before
    for vm in (A, B):
        D.xe("vm-shutdown", "uuid=" + vm, "--force")
        wait_for(lambda: not os.path.exists(group(vm)), 15, what="the cgroup of %s to go" % vm)
