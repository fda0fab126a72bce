"""Snapshots of a real guest: a disk snapshot taken while it runs and
reverted after the guest overwrote its data; a checkpoint (disks and
memory) reverted, the guest's counter going on from the checkpoint."""

import os
import subprocess
import time

import xenia
from xenia import wait_for

D = None
VM = None


def setup_module():
    global D, VM
    D = xenia.Daemon(shutdown_timeout=10, name="snap").start()
    VM = D.install("snap")


def teardown_module():
    D.cleanup()


def prompt():
    if D.power_state(VM) == "halted":
        D.xe("vm-start", "uuid=" + VM)
    c = D.console(VM)
    c.wait_prompt()
    return c


def test_snapshot_of_a_running_guest_reverts_its_disk():
    c = prompt()
    c.run("echo PATTERN-ONE > /root/p; sync")
    snap = D.xe("vm-snapshot", "vm=" + VM, "new-name-label=before").strip()
    assert D.xe("snapshot-list", "uuid=" + snap, "params=is-a-snapshot", "--minimal").strip() \
        == "true"
    c.run("echo PATTERN-TWO > /root/p; sync")
    assert c.run("cat /root/p").strip() == "PATTERN-TWO"
    c.close()
    D.xe("vm-shutdown", "uuid=" + VM, "--force")
    D.xe("snapshot-revert", "snapshot-uuid=" + snap)
    c = prompt()
    assert c.run("cat /root/p").strip() == "PATTERN-ONE"
    c.close()
    D.xe("vm-shutdown", "uuid=" + VM, "--force")
    D.xe("snapshot-uninstall", "uuid=" + snap, "--force")


def counter(c):
    return int(c.run("cat /tmp/n"))


def test_checkpoint_revert_resumes_the_guest_where_it_was():
    c = prompt()
    c.run("(i=0; while true; do i=$((i+1)); echo $i > /tmp/n; sleep 1; done) >/dev/null 2>&1 &")
    wait_for(lambda: counter(c) >= 2, 20, 0.3, what="the counter")
    t0 = time.monotonic()
    ck = D.xe("vm-checkpoint", "vm=" + VM, "new-name-label=ck").strip()
    took = time.monotonic() - t0
    at = counter(c)
    wait_for(lambda: counter(c) >= at + 4, 30, 0.5, what="the counter to advance")
    later = counter(c)
    c.close()
    D.xe("snapshot-revert", "snapshot-uuid=" + ck)
    assert D.power_state(VM) == "running"
    c = D.console(VM)
    now = counter(c)
    assert at - 1 <= now < later, "counter %d after revert; %d at the checkpoint, %d before" % (
        now, at, later)
    wait_for(lambda: counter(c) > now, 15, 0.5, what="the counter to go on")
    c.close()
    assert took < 10, took
    D.xe("vm-shutdown", "uuid=" + VM, "--force")
    D.xe("snapshot-uninstall", "uuid=" + ck, "--force")


def test_snapshot_deleted_while_the_guest_runs_is_merged_online():
    c = prompt()
    c.run("echo BEFORE > /root/q; sync")
    disk = D.xe("vbd-list", "vm-uuid=" + VM, "type=Disk", "params=vdi-uuid", "--minimal").strip()
    parent0 = D.xe("vdi-param-get", "uuid=" + disk, "param-name=sm-config",
                   "param-key=xenia-parent").strip()
    snap = D.xe("vm-snapshot", "vm=" + VM, "new-name-label=gone-soon").strip()
    # the running disk moved onto a new image above a base copy
    assert D.xe("vdi-list", "managed=false", "--minimal").strip() != ""
    c.run("echo AFTER > /root/q2; sync")
    D.xe("snapshot-uninstall", "uuid=" + snap, "--force")
    # the base copy is streamed into the running disk (QMP block-stream),
    # which then sits on the template's image again
    wait_for(lambda: D.xe("vdi-list", "managed=false", "--minimal").strip() == "", 60, 0.5,
             what="the base copy to be merged into the running disk")
    assert D.xe("vdi-param-get", "uuid=" + disk, "param-name=sm-config",
                "param-key=xenia-parent").strip() == parent0
    assert c.run("cat /root/q /root/q2").split() == ["BEFORE", "AFTER"]
    # QEMU let go of the merged image: its space is free, not held by an
    # open descriptor of a deleted file
    pid = D.qemu_pid(VM)
    held = [os.readlink("/proc/%d/fd/%s" % (pid, fd)) for fd in os.listdir("/proc/%d/fd" % pid)]
    assert not [f for f in held if f.endswith(" (deleted)") and D.sr_dir() in f], held
    loc = D.xe("vdi-param-get", "uuid=" + disk, "param-name=location").strip()
    r = subprocess.run(["qemu-img", "check", "-U", os.path.join(D.sr_dir(), loc + ".qcow2")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    c.close()
    D.xe("vm-shutdown", "uuid=" + VM, "--force")
    c = prompt()
    assert c.run("cat /root/q /root/q2").split() == ["BEFORE", "AFTER"]
    c.close()
    D.xe("vm-shutdown", "uuid=" + VM, "--force")
