"""kill -9 of the daemon in the middle of storage operations (issue 4):
a snapshot of a running VM killed between its commit and the QMP switch,
a clone killed after its images exist but before any record, a coalesce
killed after the images merged but before the records say so (offline,
qemu-img commit) and while QEMU streams (online), and an import killed
mid-upload. The daemon dies at a named point (XENIA_FAULT, xn_fault_point:
SIGKILL, as a crash) or by our own SIGKILL. After a restart, every image
in the SR passes `qemu-img check`, every file is some VDI's image (no
garbage), the data of every disk is what was written, and no helper
process is left behind."""

import os
import subprocess
import urllib.parse

import xenia
from xenia import wait_for

D = None
MiB = 1 << 20


def setup_module():
    global D
    D = xenia.Daemon(shutdown_timeout=5, name="faults").start()


def teardown_module():
    D.cleanup()


# ---- helpers -------------------------------------------------------------------

def crash_at(point, *xe_args):
    """Restart the daemon armed to die at point, run xe_args, and wait for
    the daemon to die there (SIGKILL); then start it again, unarmed."""
    D.stop()
    D.env["XENIA_FAULT"] = point
    try:
        D.start()
        D.xe_run(*xe_args)
        D.proc.wait(60)
    finally:
        del D.env["XENIA_FAULT"]
    assert D.proc.returncode == -9, "the daemon did not die at %s: %s\n%s" % (
        point, D.proc.returncode, D.log_tail())
    assert ("fault point %s" % point) in D.log_text()
    D.start()


def image(vdi):
    loc = D.xe("vdi-param-get", "uuid=" + vdi, "param-name=location").strip()
    return os.path.join(D.sr_dir(), loc + ".qcow2")


def reads(vdi, byte, offset, length=64 * 1024):
    """Whether the VDI's image (with its chain) holds byte over the range."""
    r = subprocess.run(["qemu-io", "-r", "-U", "-f", "qcow2", "-c",
                        "read -P 0x%02x %d %d" % (byte, offset, length), image(vdi)],
                       capture_output=True, text=True, timeout=60)
    return r.returncode == 0 and "verification failed" not in r.stdout + r.stderr


def write(vdi, byte, offset, length=64 * 1024):
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x%02x %d %d" % (byte, offset, length),
                    image(vdi)], check=True, capture_output=True, timeout=60)


def unclaimed():
    claimed = set()
    for v in D.api("VDI.get_all_records").values():
        loc = v["location"]
        if loc:
            claimed.add(loc if "." in loc else loc + ".qcow2")
    return set(os.listdir(D.sr_dir())) - claimed


def helpers_left():
    """qemu-img / qemu-nbd processes working on this daemon's files."""
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        argv = xenia.cmdline(int(p)) or []
        if argv and os.path.basename(argv[0]) in ("qemu-img", "qemu-nbd") and \
                D.data_dir in " ".join(argv):
            out.append(" ".join(argv))
    return out


def assert_sr_sound():
    """No garbage (once the collector ran), no helper left, every image
    passes qemu-img check."""
    wait_for(lambda: unclaimed() == set() and helpers_left() == [], 30, 0.3,
             what="no unclaimed files and no helper processes (%s, %s)"
             % (unclaimed(), helpers_left()))
    for f in os.listdir(D.sr_dir()):
        if f.endswith(".qcow2"):
            r = subprocess.run(["qemu-img", "check", "-U", os.path.join(D.sr_dir(), f)],
                               capture_output=True, text=True, timeout=60)
            assert r.returncode == 0, "qemu-img check %s: %s" % (f, r.stdout + r.stderr)


def vm_with_data_disk(name):
    vm = D.install(name)
    vdi = D.xe("vdi-create", "sr-uuid=" + D.xe("sr-list", "name-label=Local storage",
                                                 "--minimal").strip(),
               "name-label=" + name + "-data", "virtual-size=16MiB").strip()
    D.xe("vbd-create", "vm-uuid=" + vm, "vdi-uuid=" + vdi, "device=1")
    return vm, vdi


def data_disk_of(vm):
    """The 16 MiB data disk of vm (or of a snapshot or clone of it)."""
    vdis = [v for v in D.xe("vbd-list", "vm-uuid=" + vm, "params=vdi-uuid",
                            "--minimal").strip().split(",")
            if v and D.xe("vdi-param-get", "uuid=" + v, "param-name=virtual-size").strip()
            == str(16 * MiB)]
    assert len(vdis) == 1, vdis
    return vdis[0]


def guest_fill(c, char, offset_mib):
    """Write 64 KiB of char to the guest's /dev/vdb at offset_mib, and
    flush it (fsync of a block device sends the disk a FLUSH; sync(2)
    alone writes the pages but flushes no disk cache, so a QEMU killed
    after it may lose them, as a real disk losing power would)."""
    c.run("dd if=/dev/zero bs=65536 count=1 2>/dev/null | tr '\\000' %s"
          " | dd of=/dev/vdb bs=65536 seek=%d conv=fsync 2>/dev/null; echo ok"
          % (char, offset_mib * 16), timeout=60)


def no_base_copies():
    return D.xe("vdi-list", "managed=false", "--minimal").strip() == ""


# ---- the tests -----------------------------------------------------------------------

@xenia.time_limit(240)
def test_snapshot_killed_between_commit_and_switch():
    vm, data = vm_with_data_disk("snapkill")
    D.xe("vm-start", "uuid=" + vm)
    c = D.console(vm)
    c.wait_prompt()
    guest_fill(c, "A", 1)
    c.close()
    # the snapshot's records are committed; QEMU still writes the old image
    crash_at("fork-before-switch", "vm-snapshot", "vm=" + vm, "new-name-label=kill")
    assert D.power_state(vm) == "running"
    wait_for(lambda: "switching it to" in D.log_text(), 20, what="the disk switched")
    snap = D.xe("snapshot-list", "snapshot-of=" + vm, "--minimal").strip()
    assert xenia.UUID_RE.match(snap), snap
    c = D.console(vm)
    try:
        # the guest goes on (the snapshot had paused it) and writes anew
        assert c.run("echo $((6*7))") == "42"
        guest_fill(c, "B", 1)
    finally:
        c.close()
    D.xe("vm-shutdown", "uuid=" + vm, "--force")
    # the snapshot has what was there before it, the disk what came after
    assert reads(data_disk_of(snap), 0x41, MiB), "the snapshot lost its data"
    assert reads(data, 0x42, MiB), "the VM's disk lost what the guest wrote after the crash"
    assert_sr_sound()
    D.xe("snapshot-uninstall", "uuid=" + snap, "--force")
    D.xe("vm-uninstall", "uuid=" + vm, "--force")
    wait_for(no_base_copies, 60, 0.5, what="base copies merged")
    assert_sr_sound()


def test_clone_killed_before_its_records():
    vm, data = vm_with_data_disk("clonekill")
    write(data, 0x43, 2 * MiB)
    before = set(D.vms())
    crash_at("fork-images-made", "vm-clone", "uuid=" + vm, "new-name-label=never")
    assert set(D.vms()) == before, "a half-made clone shows"
    assert reads(data, 0x43, 2 * MiB)
    assert_sr_sound()
    # and a clone works after all
    clone = D.xe("vm-clone", "uuid=" + vm, "new-name-label=after").strip()
    assert reads(data_disk_of(clone), 0x43, 2 * MiB)
    D.xe("vm-uninstall", "uuid=" + clone, "--force")
    D.xe("vm-uninstall", "uuid=" + vm, "--force")
    wait_for(no_base_copies, 60, 0.5, what="base copies merged")
    assert_sr_sound()


def test_offline_coalesce_killed_before_its_records():
    vm, data = vm_with_data_disk("mergekill")
    write(data, 0x44, 3 * MiB)
    snap = D.xe("vm-snapshot", "vm=" + vm, "new-name-label=s").strip()
    write(data, 0x45, 4 * MiB)   # after the snapshot: in the leaf only
    # the collector merges the base copy into the leaf (qemu-img commit)
    # and dies before the records follow
    crash_at("merge-before-commit", "snapshot-uninstall", "uuid=" + snap, "--force")
    assert reads(data, 0x44, 3 * MiB) and reads(data, 0x45, 4 * MiB)
    wait_for(no_base_copies, 60, 0.5, what="the merge done again after the restart")
    assert reads(data, 0x44, 3 * MiB) and reads(data, 0x45, 4 * MiB)
    assert_sr_sound()
    D.xe("vm-uninstall", "uuid=" + vm, "--force")
    assert_sr_sound()


@xenia.time_limit(240)
def test_online_coalesce_killed_while_qemu_streams():
    vm, data = vm_with_data_disk("streamkill")
    write(data, 0x46, 5 * MiB)
    D.xe("vm-start", "uuid=" + vm)
    c = D.console(vm)
    c.wait_prompt()
    snap = D.xe("vm-snapshot", "vm=" + vm, "new-name-label=s").strip()
    guest_fill(c, "G", 6)
    c.close()
    # QEMU streams the base copy into the running disk; the daemon dies
    # as soon as the job started, the job goes on without it
    crash_at("stream-started", "snapshot-uninstall", "uuid=" + snap, "--force")
    assert D.power_state(vm) == "running"
    wait_for(no_base_copies, 60, 0.5, what="the merge finished after the restart")
    c = D.console(vm)
    try:
        guest_fill(c, "H", 7)
    finally:
        c.close()
    D.xe("vm-shutdown", "uuid=" + vm, "--force")
    for byte, mib in ((0x46, 5), (0x47, 6), (0x48, 7)):
        assert reads(data, byte, mib * MiB), "byte 0x%02x at %d MiB lost" % (byte, mib)
    assert_sr_sound()
    D.xe("vm-uninstall", "uuid=" + vm, "--force")
    assert_sr_sound()


def test_import_killed_mid_upload():
    sr = D.xe("sr-list", "name-label=Local storage", "--minimal").strip()
    vdi = D.xe("vdi-create", "sr-uuid=" + sr, "name-label=imp", "virtual-size=64MiB").strip()
    write(vdi, 0x49, 0)
    c = xenia._UnixConnection(D.socket, 60)
    ref = D.api("VDI.get_by_uuid", vdi)
    c.putrequest("PUT", "/import_raw_vdi?" + urllib.parse.urlencode(
        {"vdi": ref, "format": "raw"}))
    c.putheader("Content-Length", str(64 * MiB))
    c.endheaders()
    chunk = b"\x4a" * MiB
    for _ in range(16):
        c.send(chunk)
    # a quarter in, the transfer under way: the daemon dies
    def under_way():
        tasks = D.api("task.get_all_records_where", 'field "name_label" = "import_raw_vdi"')
        return any(t["status"] == "pending" and t["progress"] > 0 for t in tasks.values())
    wait_for(under_way, 20, 0.1, what="the import under way")
    D.kill9()
    c.close()
    D.start()
    assert_sr_sound()
    # the disk is whole: a qcow2 image of the size it had, usable again
    info = subprocess.run(["qemu-img", "info", "-U", "--output=json", image(vdi)],
                          capture_output=True, text=True, timeout=60, check=True).stdout
    assert '"virtual-size": %d' % (64 * MiB) in info, info
    f = os.path.join(D.data_dir, "again.raw")
    with open(f, "wb") as out:
        out.write(b"\x4b" * (64 * MiB))
    D.xe("vdi-import", "uuid=" + vdi, "filename=" + f)
    assert reads(vdi, 0x4b, 0, 64 * MiB)
    assert not os.listdir(os.path.join(D.data_dir, "transfer"))
    D.xe("vdi-destroy", "uuid=" + vdi)
    assert_sr_sound()


@xenia.time_limit(240)
def test_online_coalesce_whose_qemu_is_killed():
    vm, data = vm_with_data_disk("qemukill")
    write(data, 0x4c, 5 * MiB)
    D.xe("vm-param-set", "uuid=" + vm, "actions-after-crash=destroy")
    D.xe("vm-start", "uuid=" + vm)
    c = D.console(vm)
    c.wait_prompt()
    snap = D.xe("vm-snapshot", "vm=" + vm, "new-name-label=s").strip()
    guest_fill(c, "M", 6)
    c.close()
    # the daemon kills the VM's QEMU as soon as the stream job started
    D.stop()
    D.env["XENIA_FAULT"] = "stream-started-kill-qemu"
    try:
        D.start()
        D.xe("snapshot-uninstall", "uuid=" + snap, "--force")
        wait_for(lambda: D.power_state(vm) == "halted", 30, what="the VM halted")
        assert "stream-started-kill-qemu: killing QEMU" in D.log_text()
    finally:
        D.stop()
        del D.env["XENIA_FAULT"]
        D.start()
    # the merge is done offline now, nothing lost
    wait_for(no_base_copies, 60, 0.5, what="the merge finished offline")
    assert reads(data, 0x4c, 5 * MiB), "what was there before the snapshot is lost"
    assert reads(data, 0x4d, 6 * MiB), "what the guest wrote after the snapshot is lost"
    assert_sr_sound()
    D.xe("vm-start", "uuid=" + vm)
    c = D.console(vm)
    try:
        c.wait_prompt()
    finally:
        c.close()
    D.xe("vm-shutdown", "uuid=" + vm, "--force")
    D.xe("vm-uninstall", "uuid=" + vm, "--force")
    assert_sr_sound()
