"""Storage seen from real guests (issue 4): a VM with a data disk cloned
and both copies run at once, each writing its own data over the shared
original; a data disk grown while the guest runs; a file SR on a small
loop-mounted ext4 file system filled up by a guest (the VM pauses, as
QEMU's werror=enospc does, and goes on after space is freed and it is
unpaused), with copies and creations that cannot fit refused cleanly.

The guest finds each disk by its serial (the first 20 characters of the
VDI's uuid). What the guest writes is checked twice: read back in the
guest after dropping its page cache, and read from the host in the image
(converted to raw) once the VMs are halted. Every image is checked with
`qemu-img check`.

Formatting, mounting, unplugging and re-plugging a hot-plugged disk is
covered by test_hotplug.test_hotplug_write_unplug_replug (mke2fs, mount,
write, umount, vbd-unplug, vbd-plug, mount, read), so it is not repeated
here."""

import hashlib
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import time

import xenia
from xenia import wait_for

D = None
MiB = 1 << 20


def setup_module():
    global D
    D = xenia.Daemon(shutdown_timeout=10, name="sg").start()


def teardown_module():
    D.cleanup()


# ---- records and images ------------------------------------------------------

def local_sr(d):
    return d.xe("sr-list", "name-label=Local storage", "--minimal").strip()


def disk_of(d, vm, device):
    """The VDI behind a VM's userdevice."""
    vbd = d.xe("vbd-list", "vm-uuid=" + vm, "userdevice=%s" % device, "--minimal").strip()
    assert xenia.UUID_RE.match(vbd), "VM %s has no VBD %s: %r" % (vm, device, vbd)
    return d.xe("vbd-param-get", "uuid=" + vbd, "param-name=vdi-uuid").strip()


def vdi_param(d, vdi, name):
    return d.xe("vdi-param-get", "uuid=" + vdi, "param-name=" + name).strip()


def sr_path(d, sr):
    """The directory of a file SR (its PBD's device-config:path)."""
    pbd = d.xe("pbd-list", "sr-uuid=" + sr, "--minimal").strip()
    return d.xe("pbd-param-get", "uuid=" + pbd, "param-name=device-config",
                "param-key=path").strip()


def image(d, vdi):
    loc = vdi_param(d, vdi, "location")
    return os.path.join(sr_path(d, vdi_param(d, vdi, "sr-uuid")),
                        loc if "." in loc else loc + ".qcow2")


def host_read(path, ranges):
    """The bytes of a (halted) disk image at each (offset, length), read
    through its whole backing chain: the image converted to raw."""
    tmp = tempfile.mkdtemp(prefix="xenia-sg-raw-", dir="/tmp")
    try:
        raw = os.path.join(tmp, "disk.raw")
        r = subprocess.run(["qemu-img", "convert", "-O", "raw", path, raw],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, "qemu-img convert %s: %s%s" % (path, r.stdout, r.stderr)
        out = []
        with open(raw, "rb") as f:
            for off, n in ranges:
                f.seek(off)
                out.append(f.read(n))
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def virtual_size(path):
    r = subprocess.run(["qemu-img", "info", "--output=json", path], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    return int(re.search(r'"virtual-size":\s*(\d+)', r.stdout).group(1))


def check_images(directory):
    """`qemu-img check` passes on every image in an SR directory; returns
    how many were checked."""
    n = 0
    for f in sorted(os.listdir(directory)):
        if not f.endswith(".qcow2"):
            continue
        r = subprocess.run(["qemu-img", "check", os.path.join(directory, f)],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, "qemu-img check %s: exit %d\n%s%s" % (
            f, r.returncode, r.stdout, r.stderr)
        n += 1
    return n


# ---- the guest -----------------------------------------------------------------

def guest_dev(c, vdi):
    """The guest's block device (vdb, ...) whose serial is the VDI's, or ''."""
    return c.run("for d in /sys/block/vd*; do [ \"$(cat $d/serial 2>/dev/null)\" = %s ] "
                 "&& echo ${d##*/}; done" % vdi[:20])


def find_dev(c, vdi):
    return wait_for(lambda: guest_dev(c, vdi), 15, 0.3,
                    what="the guest to see disk %s" % vdi)


def gwrite(c, dev, off, text):
    """Write text at byte offset off of the guest's disk, flushed to it."""
    out = c.run("printf %%s '%s' | dd of=/dev/%s bs=4096 oflag=seek_bytes seek=%d "
                "conv=notrunc,fsync 2>&1; echo rc=$?" % (text, dev, off))
    assert out.endswith("rc=0"), "guest write at %d on %s: %s" % (off, dev, out)


def gread(c, dev, off, n):
    """n bytes at offset off of the guest's disk, read from the disk (the
    page cache dropped first)."""
    out = c.run("echo 3 > /proc/sys/vm/drop_caches; dd if=/dev/%s bs=%d iflag=skip_bytes "
                "skip=%d count=1 2>/dev/null | od -An -v -tx1 | tr -d ' \\n'" % (dev, n, off))
    return bytes.fromhex(out)


def gmd5(c, dev, mib=1):
    """md5 of the first mib MiB of the guest's disk, read from the disk."""
    out = c.run("echo 3 > /proc/sys/vm/drop_caches; dd if=/dev/%s bs=64k count=%d "
                "2>/dev/null | md5sum" % (dev, 16 * mib))
    return out.split()[0]


def write_random(c, dev, mib=1):
    """mib MiB of random data at the start of the disk; returns its md5."""
    out = c.run("dd if=/dev/urandom of=/tmp/pat bs=64k count=%d 2>/dev/null && "
                "dd if=/tmp/pat of=/dev/%s bs=64k conv=fsync 2>/dev/null && md5sum /tmp/pat"
                % (16 * mib, dev), timeout=60)
    md5 = out.split()[0] if out else ""
    assert re.match(r"^[0-9a-f]{32}$", md5), out
    return md5


def launch(c, cmd):
    """Type a command that may run long (or stall); collect() its output."""
    tok = secrets.token_hex(4)
    m = c.mark()
    c.send("echo B-$((6*7))-%s; %s; echo E-$((6*7))-%s\n" % (tok, cmd, tok))
    return tok, m


def finished(c, job):
    with c.cond:
        return (b"E-42-" + job[0].encode()) in c.buf[job[1]:]


def collect(c, job, timeout):
    tok, m = job
    b = c.expect(b"B-42-" + tok.encode() + b"\r?\n", timeout, start=m)
    e = c.expect(b"E-42-" + tok.encode(), timeout, start=b.end())
    with c.cond:
        out = bytes(c.buf[b.end():e.start()])
    return out.decode(errors="replace").replace("\r", "").rstrip("\n")


def boot(d, vm):
    if d.power_state(vm) == "halted":
        d.xe("vm-start", "uuid=" + vm, timeout=60)
    c = d.console(vm)
    c.wait_prompt()
    return c


# ---- 1. a clone and its original running at once ------------------------------

@xenia.time_limit(240)
def test_clone_boot_both():
    vm = D.install("orig")
    D.xe("vm-disk-add", "vm=orig", "disk-size=64MiB", "device=1")
    data = disk_of(D, vm, 1)
    cons = []
    try:
        c = boot(D, vm)
        cons.append(c)
        dev = find_dev(c, data)
        md5 = write_random(c, dev)
        c.close()
        D.xe("vm-shutdown", "uuid=" + vm, timeout=60)
        assert D.power_state(vm) == "halted"

        clone = D.xe("vm-clone", "uuid=" + vm, "new-name-label=clone").strip()
        assert xenia.UUID_RE.match(clone), clone
        cdata = disk_of(D, clone, 1)
        assert cdata != data
        assert disk_of(D, clone, 0) != disk_of(D, vm, 0)

        # both at once, each on its own QEMU
        D.xe("vm-start", "uuid=" + vm, timeout=60)
        D.xe("vm-start", "uuid=" + clone, timeout=60)
        assert D.power_state(vm) == D.power_state(clone) == "running"
        assert D.qemu_pid(vm) != D.qemu_pid(clone)
        co, cc = D.console(vm), D.console(clone)
        cons += [co, cc]
        co.wait_prompt()
        cc.wait_prompt()
        odev, cdev = find_dev(co, data), find_dev(cc, cdata)
        marks = {vm: ("ORIGINAL-WROTE-" + secrets.token_hex(6), 2 * MiB),
                 clone: ("CLONE-WROTE-" + secrets.token_hex(6), 3 * MiB)}
        gwrite(co, odev, marks[vm][1], marks[vm][0])
        gwrite(cc, cdev, marks[clone][1], marks[clone][0])
        for con, dv, me, other in ((co, odev, vm, clone), (cc, cdev, clone, vm)):
            text, off = marks[me]
            assert gread(con, dv, off, len(text)) == text.encode(), me
            otext, ooff = marks[other]
            assert gread(con, dv, ooff, len(otext)) == bytes(len(otext)), \
                "VM %s sees the other VM's write" % me
            assert gmd5(con, dv) == md5, "VM %s lost the original pattern" % me
        for con in (co, cc):
            con.close()
        D.xe("vm-shutdown", "uuid=" + vm, timeout=60)
        D.xe("vm-shutdown", "uuid=" + clone, timeout=60)

        # from the host: each image (through its chain) holds the original
        # pattern and its own marker, not the other's
        for me, other, disk in ((vm, clone, data), (clone, vm, cdata)):
            text, off = marks[me]
            otext, ooff = marks[other]
            first, mine, theirs = host_read(image(D, disk), [(0, MiB), (off, len(text)),
                                                            (ooff, len(otext))])
            assert hashlib.md5(first).hexdigest() == md5, "%s: original pattern" % me
            assert mine == text.encode(), "%s: own marker: %r" % (me, mine)
            assert theirs == bytes(len(otext)), "%s: the other's marker: %r" % (me, theirs)
        assert check_images(D.sr_dir()) >= 4
        D.xe("vm-uninstall", "uuid=" + clone, "--force")
    finally:
        for con in cons:
            con.close()
    D.xe("vm-uninstall", "uuid=" + vm, "--force")


# ---- 2. growing a disk under a running guest ------------------------------------

@xenia.time_limit(150)
def test_resize_online():
    vm = D.install("grow")
    D.xe("vm-disk-add", "vm=grow", "disk-size=64MiB", "device=1")
    data = disk_of(D, vm, 1)
    c = None
    try:
        c = boot(D, vm)
        dev = find_dev(c, data)
        assert c.run("cat /sys/block/%s/size" % dev) == "131072"
        md5 = write_random(c, dev)
        tail = "TAIL-OF-64M-" + secrets.token_hex(4)
        gwrite(c, dev, 64 * MiB - 512, tail)
        c.run("echo not-rebooted > /tmp/alive")   # tmpfs: gone if the guest reboots

        D.xe("vdi-resize", "uuid=" + data, "disk-size=128MiB", timeout=60)
        assert vdi_param(D, data, "virtual-size") == str(128 * MiB)
        wait_for(lambda: c.run("cat /sys/block/%s/size" % dev) == "262144", 15, 0.3,
                 what="the guest to see 262144 sectors")
        assert c.run("blockdev --getsize64 /dev/%s" % dev) == str(128 * MiB)
        assert c.run("cat /tmp/alive") == "not-rebooted"
        assert D.power_state(vm) == "running"
        # the old data is intact, the new space is usable
        assert gmd5(c, dev) == md5
        assert gread(c, dev, 64 * MiB - 512, len(tail)) == tail.encode()
        grown = "IN-THE-NEW-SPACE-" + secrets.token_hex(4)
        gwrite(c, dev, 127 * MiB, grown)
        assert gread(c, dev, 127 * MiB, len(grown)) == grown.encode()

        # shrinking is refused cleanly and changes nothing
        out = D.xe("vdi-resize", "uuid=" + data, "disk-size=64MiB", ok=False)
        assert out.error_code() not in (None, "INTERNAL_ERROR"), out.stderr
        assert vdi_param(D, data, "virtual-size") == str(128 * MiB)
        assert c.run("cat /sys/block/%s/size" % dev) == "262144"
        c.close()
        c = None
        D.xe("vm-shutdown", "uuid=" + vm, timeout=60)

        path = image(D, data)
        assert virtual_size(path) == 128 * MiB
        first, t, g = host_read(path, [(0, MiB), (64 * MiB - 512, len(tail)),
                                       (127 * MiB, len(grown))])
        assert hashlib.md5(first).hexdigest() == md5
        assert t == tail.encode() and g == grown.encode(), (t, g)
        check_images(D.sr_dir())
        # and after a cold boot the guest still sees 128 MiB
        c = boot(D, vm)
        dev = find_dev(c, data)
        assert c.run("cat /sys/block/%s/size" % dev) == "262144"
        assert gread(c, dev, 127 * MiB, len(grown)) == grown.encode()
    finally:
        if c:
            c.close()
    D.xe("vm-uninstall", "uuid=" + vm, "--force")


# ---- 3. a guest fills a small SR ---------------------------------------------------

def sh(*argv, timeout=60):
    r = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, "%s: exit %d\n%s%s" % (" ".join(argv), r.returncode, r.stdout,
                                                     r.stderr)
    return r.stdout


def free_bytes(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def fill_file(path, size):
    chunk = b"\xb7" * MiB
    with open(path, "wb") as f:
        for _ in range(size // MiB):
            f.write(chunk)
        f.flush()
        os.fsync(f.fileno())


def clean_failure(out, what):
    """A failed xe command ended with a XenAPI error a user can act on:
    SR_FULL, not a backend failure carrying qemu-img's words nor an
    internal error."""
    assert out.error_code() == "SR_FULL", "%s: want SR_FULL, got %s\n%s" % (
        what, out.error_code(), out.stderr)


@xenia.time_limit(240)
def test_fill_sr():
    tmp = tempfile.mkdtemp(prefix="xenia-sg-fill-", dir="/tmp")
    img, mnt = os.path.join(tmp, "fs.img"), os.path.join(tmp, "mnt")
    os.mkdir(mnt)
    loop = None
    mounted = False
    F = None
    c = None
    problems = []
    try:
        with open(img, "wb") as f:
            f.truncate(64 * MiB)
        sh("mkfs.ext4", "-q", "-F", "-m", "0", img)
        loop = sh("losetup", "-f", "--show", img).strip()
        sh("mount", loop, mnt)
        mounted = True
        srdir = os.path.join(mnt, "sr")
        ballast = os.path.join(mnt, "ballast")
        fill_file(ballast, 16 * MiB)   # freed later, outside the SR directory

        F = xenia.Daemon(shutdown_timeout=10, name="fill").start()
        sr = F.xe("sr-create", "type=file", "name-label=small",
                  "device-config:path=" + srdir).strip()
        assert xenia.UUID_RE.match(sr), sr
        assert sr_path(F, sr) == srdir
        # a file SR shares its file system: it can grow to what is free
        size = int(F.xe("sr-param-get", "uuid=" + sr, "param-name=physical-size").strip())
        assert abs(size - free_bytes(mnt)) < MiB, (size, free_bytes(mnt))

        # a full copy that cannot fit: refused, nothing left behind
        src = F.xe("vdi-create", "sr-uuid=" + local_sr(F), "name-label=big-src",
                   "virtual-size=64MiB").strip()
        sh("qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 0 56M", image(F, src))
        F.xe("sr-scan", "uuid=" + local_sr(F))
        out = F.xe("vdi-copy", "uuid=" + src, "sr-uuid=" + sr, ok=False, timeout=120)
        clean_failure(out, "vdi-copy of 56 MiB of data into %d MiB free"
                      % (free_bytes(mnt) // MiB))
        assert F.xe("vdi-list", "sr-uuid=" + sr, "--minimal").strip() == ""
        assert [f for f in os.listdir(srdir) if f.endswith(".qcow2")] == [], os.listdir(srdir)

        # a thin disk larger than the whole SR: allowed (nothing is allocated)
        vm = F.install("filler")
        F.xe("vm-disk-add", "vm=filler", "disk-size=256MiB", "device=1", "sr-uuid=" + sr)
        data = disk_of(F, vm, 1)
        assert vdi_param(F, data, "sr-uuid") == sr
        c = boot(F, vm)
        dev = find_dev(c, data)
        md5 = write_random(c, dev)

        # write more than fits: QEMU stops the VM (werror=enospc), the
        # record says paused; nothing is lost
        free = free_bytes(mnt)
        count = free // MiB + 6
        assert count * MiB < free + 16 * MiB - 4 * MiB
        job = launch(c, "dd if=/dev/zero of=/dev/%s bs=1M seek=1 count=%d conv=fsync "
                        "2>&1; echo rc=$?" % (dev, count))
        state = wait_for(lambda: "finished" if finished(c, job)
                         else F.power_state(vm) if F.power_state(vm) == "paused" else None,
                         120, 0.5, what="the guest to fill the SR")
        assert state == "paused", "the guest wrote %d MiB into %d MiB free and the VM was " \
            "not paused: %s" % (count, free // MiB, collect(c, job, 5))
        assert free_bytes(mnt) < 1 * MiB, free_bytes(mnt)
        assert xenia.qemu_pids(F.data_dir + "/", vm), "the VM's QEMU is gone"
        # allowed-operations follow the power state (checked at the end, so
        # that the rest of the scenario still runs if they do not)
        ops = F.allowed_ops(vm)
        if "unpause" not in ops or "pause" in ops:
            problems.append("VM paused by a full disk: allowed-operations %s (want unpause, "
                            "not pause)" % sorted(ops))

        # while the SR is full: a new disk is refused with SR_FULL or, being
        # thin, made; a copy is refused with SR_FULL; nothing stays behind
        before = set(os.listdir(srdir))
        out = F.xe_run("vdi-create", "sr-uuid=" + sr, "name-label=one-more",
                       "virtual-size=1GiB")
        if out.rc == 0:
            F.xe("vdi-destroy", "uuid=" + out.strip())
        else:
            clean_failure(out, "vdi-create on a full SR")
        out = F.xe("vdi-copy", "uuid=" + data, "sr-uuid=" + sr, ok=False, timeout=120)
        clean_failure(out, "vdi-copy into a full SR")
        wait_for(lambda: set(os.listdir(srdir)) == before, 10, 0.2,
                 what="the failed operations' files to go")
        assert F.xe("vdi-list", "sr-uuid=" + sr, "--minimal").strip() == data

        # space freed, VM unpaused: the write completes
        os.remove(ballast)
        os.sync()
        wait_for(lambda: free_bytes(mnt) > 10 * MiB, 20, 0.2, what="the ballast's space")
        F.xe("vm-unpause", "uuid=" + vm)
        assert F.power_state(vm) == "running"
        out = collect(c, job, 120)
        assert out.endswith("rc=0"), "dd after unpause: %s" % out
        assert F.power_state(vm) == "running"
        assert gmd5(c, dev) == md5, "the data written before the fill changed"
        c.close()
        c = None
        F.xe("vm-shutdown", "uuid=" + vm, timeout=60)

        path = image(F, data)
        assert check_images(srdir) == 1
        first, tail = host_read(path, [(0, MiB), ((count + 1) * MiB - 4096, 4096)])
        assert hashlib.md5(first).hexdigest() == md5
        assert tail == bytes(4096)
        assert os.stat(path).st_blocks * 512 >= (count + 1) * MiB, "the fill is not in the image"
        F.xe("vdi-destroy", "uuid=" + src)
        assert not problems, "; ".join(problems)
    finally:
        if c:
            c.close()
        if F:
            F.cleanup()   # no QEMU keeps a file of the mount open after this
        if mounted:
            for _ in range(50):
                if subprocess.run(["umount", mnt], capture_output=True).returncode == 0:
                    break
                time.sleep(0.2)
            else:
                subprocess.run(["umount", "-l", mnt], capture_output=True)
        if loop:
            subprocess.run(["losetup", "-d", loop], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
