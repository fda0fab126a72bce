"""Whole VMs in and out as XVA archives: `xe vm-export`, `xe vm-import`
and xapi's GET /export, PUT /import (xenapi.md §5).

One daemon for the module. Guests write a marker to their disk through
the serial console before an export and must find it after the import
boots; disks must come back with identical contents, also after two
round trips; an archive made here from the format description (Python's
tarfile and hashlib, not Xenia's writer) must import and boot; and bad
archives (truncated, a checksum mismatch, a 10 TB disk, members with
`..` or links) must be refused with a clear XenAPI error, leaving no VM,
no VDI and no file behind."""

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import urllib.parse

import xenia
from xenia import wait_for

D = None
SR = None
TMP = None
MiB = 1 << 20


def setup_module():
    global D, SR, TMP
    D = xenia.Daemon(name="xva").start()
    SR = D.xe("sr-list", "name-label=Local storage", "--minimal").strip()
    TMP = tempfile.mkdtemp(prefix="xenia-xva-test-")


def teardown_module():
    D.cleanup()
    shutil.rmtree(TMP, ignore_errors=True)


# ---- helpers ----------------------------------------------------------------

def path(name):
    return os.path.join(TMP, name)


def boot_and_run(uuid, cmd, timeout=120):
    """Start the VM, run cmd at its root shell, return the output."""
    D.xe("vm-start", "uuid=" + uuid)
    with D.console(uuid) as c:
        c.wait_prompt(timeout=timeout)
        return c.run(cmd, timeout=60)


def write_marker(uuid, text):
    """Boot the VM, write text to /root/marker on its disk, sync."""
    out = boot_and_run(uuid, "echo %s > /root/marker; sync; cat /root/marker" % text)
    assert out == text, out


def halt(uuid):
    D.xe("vm-shutdown", "uuid=" + uuid, "--force")
    wait_for(lambda: D.power_state(uuid) == "halted", 60, what="VM halted")


def disk_images(vm):
    """The image files of the VM's disks, by userdevice."""
    out = {}
    for vbd in D.xe("vbd-list", "vm-uuid=" + vm, "type=Disk", "params=uuid",
                    "--minimal").strip().split(","):
        if not vbd:
            continue
        dev = D.xe("vbd-param-get", "uuid=" + vbd, "param-name=userdevice").strip()
        vdi = D.xe("vbd-param-get", "uuid=" + vbd, "param-name=vdi-uuid").strip()
        loc = D.xe("vdi-param-get", "uuid=" + vdi, "param-name=location").strip()
        out[dev] = os.path.join(D.sr_dir(), loc + ".qcow2")
    return out


def same_disks(a, b):
    """Whether two VMs' disks hold the same bytes (qemu-img compare)."""
    ia, ib = disk_images(a), disk_images(b)
    assert ia.keys() == ib.keys() and ia, (ia, ib)
    for dev in ia:
        r = subprocess.run(["qemu-img", "compare", "-U", ia[dev], ib[dev]],
                           capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            return False
    return True


def state():
    """What an import that fails must leave as it was: VMs, VDIs, SR files."""
    vms = set(D.api("VM.get_all"))
    vdis = set(D.api("VDI.get_all"))
    files = set(os.listdir(D.sr_dir()))
    return vms, vdis, files


def qemu_nbds():
    """qemu-nbd processes serving images of this daemon's data dir."""
    return [p for p in os.listdir("/proc") if p.isdigit() and
            "qemu-nbd" in " ".join(xenia.cmdline(int(p)) or []) and
            D.data_dir in " ".join(xenia.cmdline(int(p)) or [])]


def assert_unchanged(before):
    # removals of a failed import's images run in the background
    wait_for(lambda: state() == before, 20, what="the SR and the VM list as before")
    wait_for(lambda: not qemu_nbds(), 20, what="no qemu-nbd left")
    assert not os.listdir(os.path.join(D.data_dir, "transfer"))


def refused(archive, code, words=None, *extra):
    """vm-import of archive fails with code (and words in its parameters),
    and changes nothing."""
    before = state()
    out = D.xe("vm-import", "filename=" + archive, *extra, ok=False, timeout=300)
    assert out.error_code() == code, out.stderr
    if words:
        assert words in (out.error_params() or ""), out.stderr
    assert_unchanged(before)
    return out


def members(archive):
    with tarfile.open(archive) as t:
        return [(m.name, m.size) for m in t.getmembers()]


def nonzero(data):
    return data.count(0) != len(data)


def sha1(data):
    return hashlib.sha1(data).hexdigest()


# ---- export and import of real guests -----------------------------------------

def test_halted_vm_round_trips_twice_and_boots_with_its_data():
    vm = D.install("xva-src")
    write_marker(vm, "halted-42")
    halt(vm)
    a = path("a.xva")
    D.xe("vm-export", "vm=" + vm, "filename=" + a)
    names = [n for n, _ in members(a)]
    assert names[0] == "ova.xml"
    assert names[1:3] == ["Ref:2/00000000", "Ref:2/00000000.checksum"], names[:4]
    # every chunk is 1 MiB (the last may be shorter) and has its SHA-1
    with tarfile.open(a) as t:
        chunks = [m for m in t.getmembers() if re.match(r"^Ref:\d+/\d{8}$", m.name)]
        for m in chunks[:20]:
            data = t.extractfile(m).read()
            assert len(data) == MiB
            assert t.extractfile(m.name + ".checksum").read().decode() == sha1(data)
    # zero chunks are left out: the disk is 1 GiB, the data a few MiB
    size = int(D.xe("vdi-list", "name-label=Tiny Linux disk", "is-a-snapshot=false",
                    "params=virtual-size", "--minimal").split(",")[0])
    assert len(chunks) < size // MiB // 4, len(chunks)
    b = D.xe("vm-import", "filename=" + a, "sr-uuid=" + SR).strip()
    assert xenia.UUID_RE.match(b) and b != vm
    assert D.vm_param(b, "name-label") == "xva-src"
    assert same_disks(vm, b)
    # twice: export the import, import again, the same bytes
    a2 = path("a2.xva")
    D.xe("vm-export", "vm=" + b, "filename=" + a2)
    c = D.xe("vm-import", "filename=" + a2).strip()
    assert same_disks(vm, c)
    with tarfile.open(a) as t1, tarfile.open(a2) as t2:
        d1 = [(m.name, t1.extractfile(m).read()) for m in t1.getmembers() if m.name != "ova.xml"]
        d2 = [(m.name, t2.extractfile(m).read()) for m in t2.getmembers() if m.name != "ova.xml"]
        assert d1 == d2, "the disk chunks differ between the two exports"
    assert boot_and_run(c, "cat /root/marker") == "halted-42"
    halt(c)
    for u in (b, c):
        D.xe("vm-uninstall", "uuid=" + u, "--force")
    D.xe("vm-uninstall", "uuid=" + vm, "--force")


def test_running_vm_snapshot_exports_and_imports_as_a_template():
    vm = D.install("xva-live")
    write_marker(vm, "snap-7")        # the VM keeps running
    snap = D.xe("vm-snapshot", "vm=" + vm, "new-name-label=live-snap").strip()
    with D.console(vm) as c:          # written after the snapshot: not in it
        c.wait_prompt()
        c.run("echo later > /root/marker; sync")
    a = path("snap.xva")
    D.xe("vm-export", "vm=" + snap, "filename=" + a, "compress=true")
    with open(a, "rb") as f:
        assert f.read(2) == b"\x1f\x8b", "compress=true writes gzip"
    assert D.power_state(vm) == "running"
    t = D.xe("vm-import", "filename=" + a).strip()
    assert D.vm_param(t, "is-a-template") == "true"
    assert D.vm_param(t, "is-a-snapshot") == "false"
    new = D.install("from-snap", template=t)
    assert boot_and_run(new, "cat /root/marker") == "snap-7"
    halt(new)
    halt(vm)
    # the export task ended with its progress complete
    tasks = [r for r in D.api("task.get_all_records").values() if r["name_label"] == "export"]
    assert tasks and all(r["status"] == "success" and r["progress"] == 1.0 for r in tasks)
    for u in (new, vm):
        D.xe("vm-uninstall", "uuid=" + u, "--force")
    D.xe("snapshot-uninstall", "uuid=" + snap, "--force")
    D.xe("vm-param-set", "uuid=" + t, "is-a-template=false")
    D.xe("vm-uninstall", "uuid=" + t, "--force")


def test_preserve_keeps_uuids_and_macs():
    vm = D.install("xva-keep")
    net = D.xe("network-create", "name-label=xva-net").strip()
    vif = D.xe("vif-create", "vm-uuid=" + vm, "network-uuid=" + net, "device=0").strip()
    mac = D.xe("vif-param-get", "uuid=" + vif, "param-name=MAC").strip()
    a = path("keep.xva")
    D.xe("vm-export", "vm=" + vm, "filename=" + a)
    # without preserve: a new uuid and a new MAC, on the same network (by name)
    other = D.xe("vm-import", "filename=" + a).strip()
    assert other != vm
    ovif = D.xe("vif-list", "vm-uuid=" + other, "--minimal").strip()
    assert D.xe("vif-param-get", "uuid=" + ovif, "param-name=MAC").strip() != mac
    assert D.xe("vif-param-get", "uuid=" + ovif, "param-name=network-uuid").strip() == net
    # preserve while the VM exists: refused, nothing made
    refused(a, "IMPORT_ERROR_GENERIC", vm, "preserve=true")
    D.xe("vm-uninstall", "uuid=" + vm, "--force")
    same = D.xe("vm-import", "filename=" + a, "preserve=true").strip()
    assert same == vm
    svif = D.xe("vif-list", "vm-uuid=" + same, "--minimal").strip()
    assert D.xe("vif-param-get", "uuid=" + svif, "param-name=MAC").strip() == mac
    for u in (same, other):
        D.xe("vm-uninstall", "uuid=" + u, "--force")


def test_metadata_export_brings_back_a_vm_whose_disks_stayed():
    vm = D.install("xva-meta")
    disk = D.xe("vbd-list", "vm-uuid=" + vm, "params=vdi-uuid", "--minimal").strip()
    a = path("meta.xva")
    D.xe("vm-export", "vm=" + vm, "filename=" + a, "--metadata")
    assert [n for n, _ in members(a)] == ["ova.xml"]
    D.xe("vm-destroy", "uuid=" + vm)            # the record goes, the disk stays
    back = D.xe("vm-import", "filename=" + a, "--metadata", "preserve=true").strip()
    assert back == vm
    assert D.xe("vbd-list", "vm-uuid=" + back, "params=vdi-uuid", "--minimal").strip() == disk
    # a metadata import whose disk is gone is refused
    D.xe("vm-uninstall", "uuid=" + back, "--force")
    refused(a, "VDI_MISSING", None, "--metadata")


def test_exporting_a_running_vm_is_refused():
    vm = D.install("xva-run")
    D.xe("vm-start", "uuid=" + vm)
    out = D.xe("vm-export", "vm=" + vm, "filename=" + path("no.xva"), ok=False)
    assert out.error_code() == "VM_BAD_POWER_STATE", out.stderr
    assert not os.path.exists(path("no.xva"))
    D.xe("vm-uninstall", "uuid=" + vm, "--force")


# ---- an archive from another writer -----------------------------------------------

def xmlrpc(v):
    """An XML-RPC value as xapi writes them (ints as bare text)."""
    if isinstance(v, bool):
        return "<value><boolean>%d</boolean></value>" % v
    if isinstance(v, int):
        return "<value>%d</value>" % v
    if isinstance(v, str):
        return "<value>%s</value>" % v.replace("&", "&amp;").replace("<", "&lt;")
    if isinstance(v, list):
        return "<value><array><data>%s</data></array></value>" % "".join(map(xmlrpc, v))
    return "<value><struct>%s</struct></value>" % "".join(
        "<member><name>%s</name>%s</member>" % (k, xmlrpc(x)) for k, x in v.items())


def ova_xml(disk_size, vsn=2):
    objects = [
        {"class": "VM", "id": "Ref:0", "snapshot": {
            "uuid": "0c0ffee0-0000-4000-8000-000000000001", "name_label": "foreign",
            "name_description": "written by the test", "power_state": "Running",
            "is_a_template": False, "memory_static_max": 128 * MiB,
            "memory_dynamic_max": 128 * MiB, "memory_dynamic_min": 128 * MiB,
            "memory_static_min": 64 * MiB, "VCPUs_max": 1, "VCPUs_at_startup": 1,
            "HVM_boot_policy": "BIOS order", "HVM_boot_params": {"order": "c"},
            "domain_type": "hvm", "PV_kernel": "", "platform": {},
            "other_config": {"mac_seed": "x"}, "VBDs": ["Ref:1"], "VIFs": [],
            "resident_on": "Ref:99", "unknown_field": "ignored"}},
        {"class": "VBD", "id": "Ref:1", "snapshot": {
            "VM": "Ref:0", "VDI": "Ref:2", "device": "xvda", "userdevice": "0",
            "bootable": True, "mode": "RW", "type": "Disk", "empty": False,
            "unpluggable": False}},
        {"class": "VDI", "id": "Ref:2", "snapshot": {
            "uuid": "0c0ffee0-0000-4000-8000-000000000002", "name_label": "foreign disk",
            "virtual_size": disk_size, "type": "user", "SR": "Ref:3", "VBDs": ["Ref:1"],
            "sharable": False, "read_only": False}},
        {"class": "SR", "id": "Ref:3", "snapshot": {"name_label": "elsewhere", "type": "ext",
                                                     "VDIs": ["Ref:2"]}},
    ]
    return xmlrpc({"version": {"hostname": "other", "date": "2020-01-01",
                               "product_version": "8.2.1", "product_brand": "XCP-ng",
                               "build_number": "release", "xapi_major": 1, "xapi_minor": 20,
                               "export_vsn": vsn},
                   "objects": objects}).encode()


def add(t, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    t.addfile(info, io.BytesIO(data))


def foreign_xva(out, raw, keepalive=True, corrupt=None, cut=None, extra=None, size=None):
    """An XVA of the raw disk image, from the format description: ova.xml
    first; 1 MiB chunks, zero ones left out but for the first and last,
    each with its SHA-1 .checksum; one zero-length keep-alive member
    (with the next chunk at the same offset); extra members at the end."""
    disk_size = size or os.path.getsize(raw)
    nchunks = (os.path.getsize(raw) + MiB - 1) // MiB
    stored = data_chunks(raw)
    with open(raw, "rb") as f, tarfile.open(out, "w", format=tarfile.USTAR_FORMAT) as t:
        add(t, "ova.xml", ova_xml(disk_size))
        number, kept = 0, False
        for k in range(nchunks):
            last = k == nchunks - 1
            f.seek(k * MiB)
            data = f.read(MiB) if k in stored or k == 0 or last else bytes(MiB)
            if keepalive and not kept and k > 2 and not nonzero(data):
                add(t, "Ref:2/%08d" % number, b"")
                add(t, "Ref:2/%08d.checksum" % number, sha1(b"").encode())
                number += 1
                kept = True
            if k == 0 or last or nonzero(data):
                body = data
                if corrupt == k:
                    body = bytes([data[0] ^ 1]) + data[1:]
                add(t, "Ref:2/%08d" % number, body)
                add(t, "Ref:2/%08d.checksum" % number, sha1(data).encode())
            number += 1
        for name, data, kind in extra or []:
            info = tarfile.TarInfo(name)
            info.type = kind
            if kind == tarfile.SYMTYPE:
                info.linkname = data
                t.addfile(info)
            else:
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
    if cut:
        with open(out, "r+b") as f:
            f.truncate(cut)
    return out


def data_chunks(raw):
    """The 1 MiB chunks of a sparse file that hold data (the file system
    knows its holes: reading 1 GiB of zeros would make the test slow)."""
    chunks = set()
    with open(raw, "rb") as f:
        fd, end, off = f.fileno(), os.path.getsize(raw), 0
        while off < end:
            try:
                start = os.lseek(fd, off, os.SEEK_DATA)
            except OSError:
                break
            stop = os.lseek(fd, start, os.SEEK_HOLE)
            chunks.update(range(start // MiB, (stop + MiB - 1) // MiB))
            off = stop
    return chunks


def tiny_raw():
    raw = path("tiny.raw")
    if not os.path.exists(raw):
        src = os.path.join(xenia.BUILD, "images", "tiny-linux", "disk.qcow2")
        subprocess.run(["qemu-img", "convert", "-O", "raw", src, raw], check=True,
                       capture_output=True, timeout=120)
    return raw


def test_an_archive_from_another_writer_imports_and_boots():
    a = foreign_xva(path("foreign.xva"), tiny_raw())
    names = [n for n, _ in members(a)]
    keepalive = [n for n, size in members(a) if size == 0 and re.match(r"^Ref:2/\d{8}$", n)]
    assert len(keepalive) == 1, keepalive
    vm = D.xe("vm-import", "filename=" + a).strip()
    assert D.vm_param(vm, "name-label") == "foreign"
    assert vm != "0c0ffee0-0000-4000-8000-000000000001"
    assert D.power_state(vm) == "halted"
    (image,) = disk_images(vm).values()
    r = subprocess.run(["qemu-img", "compare", "-U", "-f", "raw", tiny_raw(), image],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert len(names) > 4
    assert boot_and_run(vm, "cat /proc/cmdline >/dev/null; echo booted") == "booted"
    halt(vm)
    D.xe("vm-uninstall", "uuid=" + vm, "--force")


# ---- bad archives ---------------------------------------------------------------

def test_truncated_archive_is_refused_and_leaves_nothing():
    good = foreign_xva(path("whole.xva"), tiny_raw())
    size = os.path.getsize(good)
    for cut in (size // 2 + 100, 1024 + 300):
        a = shutil.copy(good, path("cut.xva"))
        with open(a, "r+b") as f:
            f.truncate(cut)
        refused(a, "IMPORT_ERROR_GENERIC", "truncated")


def test_checksum_mismatch_is_refused():
    a = foreign_xva(path("corrupt.xva"), tiny_raw(), corrupt=1)
    refused(a, "IMPORT_ERROR_GENERIC", "checksum mismatch in 'Ref:2/00000001'")


def test_huge_declared_disk_is_refused_before_anything_is_written():
    small = path("small.raw")
    with open(small, "wb") as f:
        f.write(b"\1" * MiB)
    a = foreign_xva(path("huge.xva"), small, keepalive=False, size=10 * 10 ** 12)
    before = set(os.listdir(D.sr_dir()))
    out = refused(a, "SR_FULL")
    assert "10000000000000" in out.error_params(), out.stderr
    assert set(os.listdir(D.sr_dir())) == before


def test_members_with_dotdot_or_links_are_refused():
    raw = tiny_raw()
    for extra, words in [
        ([("../../etc/evil", b"x", tarfile.REGTYPE)], "../../etc/evil"),
        ([("Ref:2/../../x", b"x", tarfile.REGTYPE)], "Ref:2/../../x"),
        ([("link", "/etc/passwd", tarfile.SYMTYPE)], "link"),
    ]:
        a = foreign_xva(path("extra.xva"), raw, extra=extra)
        refused(a, "IMPORT_ERROR_GENERIC", words)
    # a member with .. in place of a chunk
    bad = path("dotdot.xva")
    with tarfile.open(bad, "w", format=tarfile.USTAR_FORMAT) as t:
        add(t, "ova.xml", ova_xml(4 * MiB))
        add(t, "Ref:2/../00000000", b"\0" * MiB)
    refused(bad, "IMPORT_ERROR_GENERIC", "Ref:2/../00000000")
    assert not os.path.exists("/etc/evil")


def test_unknown_format_version_and_non_xva_are_refused():
    bad = path("v9.xva")
    with tarfile.open(bad, "w", format=tarfile.USTAR_FORMAT) as t:
        add(t, "ova.xml", ova_xml(MiB, vsn=9))
    refused(bad, "IMPORT_INCOMPATIBLE_VERSION")
    junk = path("junk.xva")
    with open(junk, "wb") as f:
        f.write(os.urandom(100000))
    refused(junk, "IMPORT_ERROR_GENERIC", "damaged")


def test_http_import_without_sr_and_bad_session_are_refused():
    # PUT /import straight over the socket with a made-up session
    c = xenia._UnixConnection(D.socket, 60)
    c.request("PUT", "/import?" + urllib.parse.urlencode({"session_id": "OpaqueRef:nope"}),
              body=b"x" * 10, headers={"Content-Length": "10"})
    r = c.getresponse()
    body = json.loads(r.read())
    c.close()
    assert r.status == 403 and body[0] == "SESSION_INVALID", body


def test_daemon_killed_mid_import_leaves_nothing_after_restart():
    good = foreign_xva(path("slow.xva"), tiny_raw())
    with open(good, "rb") as f:
        data = f.read()
    before = state()
    c = xenia._UnixConnection(D.socket, 60)
    c.putrequest("PUT", "/import?" + urllib.parse.urlencode({"session_id": D.session}))
    c.putheader("Content-Length", str(len(data)))
    c.endheaders()
    c.send(data[:len(data) // 2])   # half the archive: its disk is being written
    new = lambda: set(os.listdir(D.sr_dir())) - before[2]
    wait_for(new, 30, what="the import's new image in the SR")
    D.kill9()
    c.close()
    D.start()
    D.login()
    assert_unchanged(before)
