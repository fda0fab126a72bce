"""NFS storage repositories (sr_nfs.c) against a real NFS server:
nfs-ganesha on 127.0.0.1 (nfs_server.py), one for the module, with one
daemon. An "nfs" SR made with xapi's device-config (server, serverpath),
its sizes, its errors (a bad device-config or a server that is down
leaves no SR and no PBD behind), thin VDIs on the export, a guest
writing to a disk on it while the toolstack's lock file marks the disk
in use, a VM copied onto it that boots from it, a linked clone of that
VM (an overlay whose backing file is named by its nfs:// URL), and an ISO
library on NFS (device-config:location=server:/path).

The exported directory is read locally to check what the server holds
(never written locally: ganesha caches metadata)."""

import json
import os
import subprocess
import time

import xenia
from nfs_server import NfsServer
from xenia import wait_for

D = None
NFS = None
SR = None          # the nfs SR most tests use
ISOS = ["debian-12.iso", "TOOLS.ISO", "floppy.img"]


def setup_module():
    global D, NFS
    NFS = NfsServer()
    # an ISO library's content, in place before the server starts
    os.mkdir(NFS.path("isos"), 0o755)
    for name in ISOS + ["README.txt"]:
        with open(NFS.path("isos", name), "wb") as f:
            f.write(b"\0" * 4096)
    NFS.start()
    D = xenia.Daemon(shutdown_timeout=5, name="nfs").start()


def teardown_module():
    try:
        if D:
            D.cleanup()
    finally:
        if NFS:
            NFS.cleanup()


def counts():
    """How many SRs and PBDs the daemon has."""
    srs = [x for x in D.xe("sr-list", "--minimal").strip().split(",") if x]
    pbds = [x for x in D.xe("pbd-list", "--minimal").strip().split(",") if x]
    return len(srs), len(pbds)


def nfs_sr():
    """The module's nfs SR, made by the first test that needs it."""
    global SR
    if SR is None:
        SR = D.xe("sr-create", "type=nfs", "name-label=nfs-sr", "shared=true",
                  "device-config:server=" + NFS.host,
                  "device-config:serverpath=" + NFS.export).strip()
        assert xenia.UUID_RE.match(SR), "sr-create printed %r" % SR
    return SR


def sr_param(uuid, name):
    return D.xe("sr-param-get", "uuid=" + uuid, "param-name=" + name).strip()


def image_info(path):
    return json.loads(subprocess.check_output(["qemu-img", "info", "-U", "--output=json",
                                               path], timeout=30))


def test_sr_create():
    uuid = nfs_sr()
    assert uuid in D.xe("sr-list", "type=nfs", "--minimal")
    params = xenia.param_list(D.xe("sr-param-list", "uuid=" + uuid))
    assert params["name-label"] == "nfs-sr", params
    assert params["type"] == "nfs", params
    assert params["shared"] == "true", params
    assert params["content-type"] == "user", params
    # xapi's layout: the SR's files in <serverpath>/<sr-uuid>/
    assert os.path.isdir(NFS.path(uuid)), os.listdir(NFS.export)
    # its PBD keeps the device-config and is attached
    pbd = D.xe("pbd-list", "sr-uuid=" + uuid, "--minimal").strip()
    assert xenia.UUID_RE.match(pbd), pbd
    dc = D.xe("pbd-param-get", "uuid=" + pbd, "param-name=device-config")
    assert "server: " + NFS.host in dc and "serverpath: " + NFS.export in dc, dc
    assert D.xe("pbd-param-get", "uuid=" + pbd,
                "param-name=currently-attached").strip() == "true"
    # the sizes are the server's file system's (the export is on this
    # machine's disk, so statvfs here sees the same one)
    st = os.statvfs(NFS.export)
    total = st.f_blocks * st.f_frsize
    size = int(wait_for(lambda: (lambda v: v if v not in ("", "0", "-1") else None)(
        sr_param(uuid, "physical-size")), 20, what="the SR's physical-size"))
    assert size == total, "physical-size %d, statvfs says %d" % (size, total)
    used = int(sr_param(uuid, "physical-utilisation"))
    st = os.statvfs(NFS.export)
    now_used = (st.f_blocks - st.f_bavail) * st.f_frsize
    # the disk is shared with everything else on this machine: allow drift
    assert abs(used - now_used) < max(256 << 20, total // 100), (used, now_used)


def test_bad_device_config_leaves_nothing():
    before = counts()
    cases = [
        (["device-config:serverpath=" + NFS.export], "SR_BACKEND_FAILURE_102", "server"),
        (["device-config:server=" + NFS.host], "SR_BACKEND_FAILURE_101", "serverpath"),
        (["device-config:server=" + NFS.host, "device-config:serverpath=relative/path"],
         "SR_BACKEND_FAILURE_103", "serverpath"),
        (["device-config:server=" + NFS.host, "device-config:serverpath=" + NFS.export,
          "device-config:nfsversion=4"], "SR_BACKEND_FAILURE_72", "NFSv3"),
        # not exported: the server refuses the mount
        (["device-config:server=" + NFS.host, "device-config:serverpath=/not/exported"],
         "SR_BACKEND_FAILURE_73", "/not/exported"),
        (["device-config:server=no-such-host.invalid",
          "device-config:serverpath=" + NFS.export], "SR_BACKEND_FAILURE_140",
         "no-such-host.invalid"),
    ]
    for args, code, text in cases:
        out = D.xe("sr-create", "type=nfs", "name-label=bad", "shared=true", *args, ok=False)
        assert out.error_code() == code, "%s: %s" % (args, out.stderr)
        assert text in out.stderr, "%s: %s" % (args, out.stderr)
    assert counts() == before, "a failed sr-create left records: %s -> %s" % (before, counts())
    assert "bad" not in D.xe("sr-list", "params=name-label")


@xenia.time_limit(90)
def test_server_down():
    nfs_sr()
    before = counts()
    NFS.stop()
    try:
        t = time.monotonic()
        out = D.xe("sr-create", "type=nfs", "name-label=down", "shared=true",
                   "device-config:server=" + NFS.host,
                   "device-config:serverpath=" + NFS.export, ok=False, timeout=60)
        took = time.monotonic() - t
        assert out.error_code() in ("SR_BACKEND_FAILURE_73", "SR_BACKEND_FAILURE_108"), \
            out.stderr
        assert NFS.host in out.stderr, out.stderr
        assert took < 30, "sr-create took %.1fs against a server that is down" % took
        assert counts() == before
    finally:
        NFS.start()
    # the existing SR works again once the server is back
    vdi = D.xe("vdi-create", "sr-uuid=" + SR, "name-label=after-restart",
               "virtual-size=16MiB").strip()
    D.xe("vdi-destroy", "uuid=" + vdi)


def test_vdi_create_is_thin_qcow2_on_the_export():
    sr = nfs_sr()
    vdi = D.xe("vdi-create", "sr-uuid=" + sr, "name-label=thin", "virtual-size=1GiB").strip()
    assert xenia.UUID_RE.match(vdi), vdi
    loc = D.xe("vdi-param-get", "uuid=" + vdi, "param-name=location").strip()
    path = NFS.path(sr, loc + ".qcow2")
    assert os.path.isfile(path), os.listdir(NFS.path(sr))
    info = image_info(path)
    assert info["format"] == "qcow2", info
    assert info["virtual-size"] == 1 << 30, info
    assert info["actual-size"] < 16 << 20, "not thin: %s" % info
    assert "backing-filename" not in info, info
    # sr-scan keeps it and adds nothing for it; sizes follow
    D.xe("sr-scan", "uuid=" + sr)
    assert vdi in D.xe("vdi-list", "sr-uuid=" + sr, "--minimal")
    D.xe("vdi-destroy", "uuid=" + vdi)
    wait_for(lambda: not os.path.exists(path), 20, what="%s removed" % path)
    assert vdi not in D.xe("vdi-list", "--minimal")


def lock_path(sr, vdi):
    """The toolstack's lock on a VDI: named after the VDI, not its image
    (which a snapshot replaces)."""
    return NFS.path(sr, vdi + ".lock")


@xenia.time_limit(240)
def test_guest_writes_to_a_disk_on_nfs():
    sr = nfs_sr()
    vm = D.install("nfs-disk")
    vdi = D.xe("vdi-create", "sr-uuid=" + sr, "name-label=nfs-data",
               "virtual-size=64MiB").strip()
    D.xe("vbd-create", "vm-uuid=" + vm, "vdi-uuid=" + vdi, "device=1")
    lock = lock_path(sr, vdi)
    assert not os.path.exists(lock)
    D.xe("vm-start", "uuid=" + vm)
    c = D.console(vm)
    try:
        c.wait_prompt(timeout=120)
        assert c.run("cat /sys/block/vdb/size") == str((64 << 20) // 512)
        # 1 MiB of 'Z' (0x5a) at 1 MiB, through the guest's page cache
        c.run("dd if=/dev/zero bs=65536 count=16 2>/dev/null | tr '\\000' Z"
              " | dd of=/dev/vdb bs=65536 seek=16 2>/dev/null; sync; echo done", timeout=60)
        assert c.run("dd if=/dev/vdb bs=65536 skip=16 count=1 2>/dev/null | head -c 8") \
            == "ZZZZZZZZ"
        # the toolstack's lock, held while the VM runs, names its owner
        assert os.path.isfile(lock), "no lock file %s while the VM runs" % lock
        owner = open(lock).read()
        assert vm in owner, "lock file %s holds %r, not the VM %s" % (lock, owner, vm)
    finally:
        c.close()
    D.xe("vm-shutdown", "uuid=" + vm)
    assert D.power_state(vm) == "halted"
    wait_for(lambda: not os.path.exists(lock), 20, what="lock file %s removed" % lock)
    # the bytes are on the server
    loc = D.xe("vdi-param-get", "uuid=" + vdi, "param-name=location").strip()
    out = subprocess.run(["qemu-io", "-r", "-f", "qcow2", "-c", "read -P 0x5a 1M 1M",
                          "-c", "read -P 0 0 1M", NFS.url(sr + "/" + loc + ".qcow2")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "verification failed" not in out.stdout, \
        out.stdout + out.stderr
    D.xe("vm-uninstall", "uuid=" + vm, "--force")
    assert vdi not in D.xe("vdi-list", "--minimal")


def foreign_lock(sr, vdi, owner):
    """A lock as another host would take it: written over NFS."""
    tmp = os.path.join(D.data_dir, "foreign.lock")
    with open(tmp, "w") as f:
        f.write(owner + "\n")
    subprocess.run(["nfs-cp", tmp, NFS.url(sr + "/" + vdi + ".lock")], check=True,
                   capture_output=True, timeout=30)


@xenia.time_limit(240)
def test_the_lock_keeps_a_disk_to_one_vm_across_hosts():
    sr = nfs_sr()
    vm = D.install("nfs-lock")
    vdi = D.xe("vdi-create", "sr-uuid=" + sr, "name-label=locked",
               "virtual-size=16MiB").strip()
    vbd = D.xe("vbd-create", "vm-uuid=" + vm, "vdi-uuid=" + vdi, "device=1").strip()
    lock = lock_path(sr, vdi)
    # another host has the disk: the VM does not start, nothing runs
    foreign_lock(sr, vdi, "other-host/other-vm")
    out = D.xe("vm-start", "uuid=" + vm, ok=False)
    assert out.error_code() == "VDI_IN_USE", out.stderr
    assert "other-host/other-vm" in out.stderr, out.stderr
    assert D.power_state(vm) == "halted"
    assert D.qemu_pids(vm) == []
    assert open(lock).read().strip() == "other-host/other-vm", "a foreign lock was touched"
    # nor can the disk be destroyed under the other host
    out = D.xe("vdi-destroy", "uuid=" + vdi, ok=False)
    assert out.error_code() == "VDI_IN_USE", out.stderr
    assert vdi in D.xe("vdi-list", "--minimal")
    NFS.remove(sr + "/" + vdi + ".lock")
    # ours while running, through a daemon restart, hot-unplug and plug
    D.xe("vm-start", "uuid=" + vm)
    wait_for(lambda: os.path.exists(lock), 10, what="the lock")
    assert vm in open(lock).read()
    D.restart()
    assert D.power_state(vm) == "running"
    assert os.path.exists(lock)
    c = D.console(vm)
    try:
        c.wait_prompt(timeout=120)
        D.xe("vbd-unplug", "uuid=" + vbd)
        wait_for(lambda: not os.path.exists(lock), 20, what="the lock released by unplug")
        D.xe("vbd-plug", "uuid=" + vbd)
        wait_for(lambda: os.path.exists(lock), 20, what="the lock taken by plug")
        assert vm in open(lock).read()
    finally:
        c.close()
    # QEMU killed: the daemon releases the lock as it records the VM halted
    D.xe("vm-param-set", "uuid=" + vm, "actions-after-crash=destroy")
    xenia.kill_pids([D.qemu_pid(vm)])
    wait_for(lambda: D.power_state(vm) == "halted", 30, what="the VM halted")
    wait_for(lambda: not os.path.exists(lock), 20, what="the lock released after a crash")
    D.xe("vm-uninstall", "uuid=" + vm, "--force")
    assert vdi not in D.xe("vdi-list", "--minimal")
    wait_for(lambda: not os.path.exists(lock), 10, what="the destroy's own lock gone")


@xenia.time_limit(300)
def test_vm_copied_to_nfs_boots_and_so_does_its_linked_clone():
    sr = nfs_sr()
    src = D.install("nfs-src")
    vm = D.xe("vm-copy", "uuid=" + src, "new-name-label=nfs-boot", "sr-uuid=" + sr).strip()
    assert xenia.UUID_RE.match(vm), vm
    D.xe("vm-uninstall", "uuid=" + src, "--force")
    vdi = D.xe("vbd-list", "vm-uuid=" + vm, "params=vdi-uuid", "--minimal").strip()
    assert D.xe("vdi-param-get", "uuid=" + vdi, "param-name=sr-uuid").strip() == sr
    loc = D.xe("vdi-param-get", "uuid=" + vdi, "param-name=location").strip()
    assert os.path.isfile(NFS.path(sr, loc + ".qcow2"))
    for uuid in (vm, None):
        if uuid is None:
            # a linked clone: an overlay on the export whose backing file
            # is named by its nfs:// URL (QEMU cannot resolve a relative
            # name over nfs://: it would look under the overlay's path)
            uuid = D.xe("vm-clone", "uuid=" + vm, "new-name-label=nfs-clone").strip()
            cvdi = D.xe("vbd-list", "vm-uuid=" + uuid, "params=vdi-uuid",
                        "--minimal").strip()
            cloc = D.xe("vdi-param-get", "uuid=" + cvdi, "param-name=location").strip()
            info = image_info(NFS.path(sr, cloc + ".qcow2"))
            backing = info.get("backing-filename", "")
            assert backing.startswith("nfs://") and backing.endswith(".qcow2"), info
            assert NFS.export in backing, info
        D.xe("vm-start", "uuid=" + uuid)
        # QEMU opens the disk with its own nfs driver, not a local path
        argv = " ".join(xenia.cmdline(D.qemu_pid(uuid)) or [])
        assert '"driver":"nfs"' in argv and NFS.export in argv, argv
        c = D.console(uuid)
        try:
            c.wait_prompt(timeout=150)
            assert c.run("echo $((6*7))") == "42"
        finally:
            c.close()
        D.xe("vm-shutdown", "uuid=" + uuid, "--force")
        wait_for(lambda: D.power_state(uuid) == "halted", 30, what="VM %s halted" % uuid)
    D.xe("vm-uninstall", "uuid=" + uuid, "--force")
    D.xe("vm-uninstall", "uuid=" + vm, "--force")


def test_iso_library_on_nfs():
    before = counts()
    bad = D.xe("sr-create", "type=iso", "content-type=iso", "name-label=bad-isos",
               "device-config:location=" + NFS.host + ":/not/exported", ok=False)
    assert bad.error_code() == "SR_BACKEND_FAILURE_222", bad.stderr
    assert counts() == before
    sr = D.xe("sr-create", "type=iso", "content-type=iso", "name-label=nfs-isos",
              "shared=true",
              "device-config:location=%s:%s" % (NFS.host, NFS.path("isos"))).strip()
    assert xenia.UUID_RE.match(sr), sr
    D.xe("sr-scan", "uuid=" + sr)
    names = D.xe("vdi-list", "sr-uuid=" + sr, "params=name-label", "--minimal").strip()
    got = sorted(x for x in names.split(",") if x)
    assert got == sorted(ISOS), "ISO SR lists %s, the export holds %s" % (got, ISOS)
    # nothing was written to the library
    assert sorted(os.listdir(NFS.path("isos"))) == sorted(ISOS + ["README.txt"])
    # as in xapi: unplug, then forget; the library's files stay
    pbd = D.xe("pbd-list", "sr-uuid=" + sr, "--minimal").strip()
    D.xe("pbd-unplug", "uuid=" + pbd)
    D.xe("sr-forget", "uuid=" + sr)
    assert sr not in D.xe("sr-list", "--minimal")
    assert sorted(os.listdir(NFS.path("isos"))) == sorted(ISOS + ["README.txt"])
