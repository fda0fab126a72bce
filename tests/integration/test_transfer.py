"""Disk images in and out of VDIs: `xe vdi-import` / `xe vdi-export` and
xapi's PUT /import_raw_vdi and GET /export_raw_vdi (xenapi.md §2.3).

One daemon with an HTTPS listener for the module. Images are made with
known patterns and holes; round trips must give back the same bytes in
every format (raw, qcow2, vhd), the SR must stay thin, each transfer's
task must end with progress 1.0, and bad requests, disks in use, uploads
cut short and a daemon killed in the middle must leave every disk as it
was, every image clean (`qemu-img check`) and no temporary file."""

import http.client
import json
import os
import random
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.parse

import xenia
from xenia import wait_for

D = None
PORT = None
SR = None
TMP = None
MiB = 1 << 20


def setup_module():
    global D, PORT, SR, TMP
    PORT = xenia.free_port()
    D = xenia.Daemon(name="xfer", extra_args=["--listen", "127.0.0.1:%d" % PORT]).start()
    SR = D.xe("sr-list", "name-label=Local storage", "--minimal").strip()
    TMP = tempfile.mkdtemp(prefix="xenia-xfer-test-")


def teardown_module():
    D.cleanup()
    shutil.rmtree(TMP, ignore_errors=True)


# ---- helpers ----------------------------------------------------------------

def pattern(name, size, chunks, seed):
    """A sparse raw file of size bytes: chunks of (offset, length) filled
    with seeded random bytes, holes elsewhere."""
    path = os.path.join(TMP, name)
    rnd = random.Random(seed)
    with open(path, "wb") as f:
        f.truncate(size)
        for off, length in chunks:
            f.seek(off)
            f.write(rnd.randbytes(length))
    return path


def same(a, b):
    return subprocess.run(["cmp", "-s", a, b]).returncode == 0


def new_vdi(size, name="disk"):
    return D.xe("vdi-create", "sr-uuid=" + SR, "name-label=" + name,
                "virtual-size=%d" % size).strip()


def vdi_image(uuid):
    loc = D.xe("vdi-param-get", "uuid=" + uuid, "param-name=location").strip()
    return os.path.join(D.sr_dir(), loc + ".qcow2")


def img_info(path):
    out = subprocess.run(["qemu-img", "info", "-U", "--output=json", path],
                         capture_output=True, check=True).stdout
    return json.loads(out)


def img_check(path):
    return subprocess.run(["qemu-img", "check", "-U", path], capture_output=True).returncode


def qemu_img(*args):
    subprocess.run(["qemu-img"] + list(args), check=True, capture_output=True)


def password():
    with open(os.path.join(D.data_dir, "root-password")) as f:
        return f.read().strip()


def https():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return http.client.HTTPSConnection("127.0.0.1", PORT, context=ctx, timeout=60)


def unix():
    return xenia._UnixConnection(D.socket, 60)


def remote_session():
    c = https()
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "session.login_with_password",
                       "params": ["root", password(), "2.21", "test"]})
    c.request("POST", "/jsonrpc", body=body, headers={"Content-Type": "application/json"})
    s = json.loads(c.getresponse().read())["result"]
    c.close()
    return s


def url(route, **q):
    return route + "?" + urllib.parse.urlencode(q)


def task(ref):
    return D.api("task.get_record", ref)


def unclaimed_files():
    """Files in the SR that are no VDI's image."""
    claimed = set()
    for v in D.api("VDI.get_all_records").values():
        if v["location"]:
            claimed.add(v["location"] if "." in v["location"] else v["location"] + ".qcow2")
    return set(os.listdir(D.sr_dir())) - claimed


def assert_no_leftovers():
    """Every file in the SR is a VDI's image; nothing in DATA/transfer;
    no qemu-nbd of this daemon."""
    def clean():
        extra = unclaimed_files()
        transfer = os.listdir(os.path.join(D.data_dir, "transfer"))
        nbd = [p for p in os.listdir("/proc") if p.isdigit() and
               "qemu-nbd" in " ".join(xenia.cmdline(int(p)) or []) and
               D.data_dir in " ".join(xenia.cmdline(int(p)) or [])]
        return (extra, transfer, nbd) == (set(), [], []) or None
    wait_for(clean, 10, what="no temporary files or qemu-nbd left")
    for f in os.listdir(D.sr_dir()):
        assert img_check(os.path.join(D.sr_dir(), f)) == 0, "qemu-img check failed on " + f


# ---- round trips --------------------------------------------------------------

def test_raw_round_trip_is_exact_and_thin():
    size = 1 << 30
    chunks = [(0, 4096), (5 * MiB + 17, 3 * MiB), (300 * MiB, 64 * 1024),
              (size - MiB, MiB)]
    src = pattern("thin.raw", size, chunks, 1)
    vdi = new_vdi(size)
    out = D.xe("vdi-import", "uuid=" + vdi, "filename=" + src, "--progress")
    assert "100%" in out.stderr, out.stderr
    info = img_info(vdi_image(vdi))
    assert info["virtual-size"] == size
    assert info["actual-size"] < 16 * MiB, "not thin: %d bytes used" % info["actual-size"]
    back = os.path.join(TMP, "thin.out")
    D.xe("vdi-export", "uuid=" + vdi, "filename=" + back)
    assert os.path.getsize(back) == size
    assert same(src, back), "raw export differs from the import"
    assert os.stat(back).st_blocks * 512 < 32 * MiB, "the export file is not sparse"
    assert img_check(vdi_image(vdi)) == 0
    os.unlink(back)


def test_qcow2_and_vhd_round_trips():
    size = 64 * MiB
    src = pattern("fmt.raw", size, [(0, MiB), (10 * MiB + 3, 2 * MiB), (size - 4096, 4096)], 2)
    q = os.path.join(TMP, "fmt.qcow2")
    v = os.path.join(TMP, "fmt.vhd")
    snap = os.path.join(TMP, "snap.qcow2")
    qemu_img("convert", "-f", "raw", "-O", "qcow2", src, q)
    qemu_img("convert", "-f", "raw", "-O", "vpc", "-o", "subformat=dynamic,force_size=on", src, v)
    # a qcow2 with an internal snapshot: converted, not used as it is
    qemu_img("convert", "-f", "raw", "-O", "qcow2", src, snap)
    qemu_img("snapshot", "-c", "s1", snap)
    vdi = new_vdi(2 * size)  # larger than the images: the rest reads as zeros
    want = os.path.join(TMP, "fmt.want")
    shutil.copyfile(src, want)
    with open(want, "r+b") as f:
        f.truncate(2 * size)
    for image, fmt in ((q, "qcow2"), (v, "vhd"), (snap, "qcow2")):
        D.xe("vdi-import", "uuid=" + vdi, "filename=" + image, "format=" + fmt)
        assert img_check(vdi_image(vdi)) == 0
        for out_fmt, qemu_fmt in (("raw", "raw"), ("qcow2", "qcow2"), ("vhd", "vpc")):
            out = os.path.join(TMP, "fmt.out." + out_fmt)
            D.xe("vdi-export", "uuid=" + vdi, "filename=" + out, "format=" + out_fmt)
            raw = out + ".raw"
            qemu_img("convert", "-f", qemu_fmt, "-O", "raw", out, raw)
            assert same(want, raw), "%s import, %s export: content differs" % (fmt, out_fmt)
            os.unlink(out)
            os.unlink(raw)
    assert_no_leftovers()


def test_round_trips_on_an_nfs_sr():
    """The same through an NFS SR: images are URLs (qemu-nbd and qemu-img
    open nfs://), uploads are spooled locally, the old image goes."""
    from nfs_server import NfsServer
    nfs = NfsServer().start()
    try:
        sr = D.xe("sr-create", "type=nfs", "name-label=nfs", "device-config:server=" + nfs.host,
                  "device-config:serverpath=" + nfs.export).strip()
        size = 16 * MiB
        src = pattern("nfs.raw", size, [(MiB + 5, 3 * MiB)], 10)
        q = os.path.join(TMP, "nfs.qcow2")
        qemu_img("convert", "-f", "raw", "-O", "qcow2", src, q)
        vdi = D.xe("vdi-create", "sr-uuid=" + sr, "name-label=n", "virtual-size=%d" % size).strip()
        for image, fmt, out_fmt in ((src, "raw", "raw"), (q, "qcow2", "vhd")):
            D.xe("vdi-import", "uuid=" + vdi, "filename=" + image, "format=" + fmt)
            out = os.path.join(TMP, "nfs.out")
            D.xe("vdi-export", "uuid=" + vdi, "filename=" + out, "format=" + out_fmt)
            raw = out + ".raw"
            qemu_img("convert", "-f", "vpc" if out_fmt == "vhd" else "raw", "-O", "raw", out, raw)
            assert same(src, raw), "%s import, %s export on NFS: content differs" % (fmt, out_fmt)
            os.unlink(out)
            os.unlink(raw)
        loc = D.xe("vdi-param-get", "uuid=" + vdi, "param-name=location").strip()
        wait_for(lambda: os.listdir(os.path.join(nfs.export, sr)) == [loc + ".qcow2"], 10,
                 what="only the VDI's image on the export")
        D.xe("vdi-destroy", "uuid=" + vdi)
        for pbd in D.xe("pbd-list", "sr-uuid=" + sr, "--minimal").strip().split(","):
            D.xe("pbd-unplug", "uuid=" + pbd)
        D.xe("sr-forget", "uuid=" + sr)
    finally:
        nfs.cleanup()


# ---- HTTP, sessions, tasks ------------------------------------------------------

def test_http_put_and_get_over_https_with_task_progress():
    size = 48 * MiB
    src = pattern("http.raw", size, [(i * 3 * MiB, MiB) for i in range(16)], 3)
    vdi = new_vdi(size)
    session = remote_session()
    with open(src, "rb") as f:
        data = f.read()
    c = https()
    c.putrequest("PUT", url("/import_raw_vdi", session_id=session, vdi=vdi, format="raw"))
    c.putheader("Content-Length", str(size))
    c.endheaders()
    # half the body, then watch the task move while the rest waits
    c.send(data[:size // 2])
    seen = []

    def midway():
        recs = D.api("task.get_all_records_where", 'field "name_label" = "import_raw_vdi"')
        for r in recs.values():
            if r["status"] == "pending":
                seen.append(float(r["progress"]))
                return 0 < float(r["progress"]) < 1
        return False
    wait_for(midway, 10, what="an intermediate progress on the import task")
    c.send(data[size // 2:])
    r = c.getresponse()
    body = r.read()
    assert r.status == 200, (r.status, body)
    ref = r.getheader("task-id")
    rec = task(ref)
    assert rec["status"] == "success" and float(rec["progress"]) == 1.0, rec
    c.close()
    c = https()
    c.request("GET", url("/export_raw_vdi", session_id=session, vdi=vdi))
    r = c.getresponse()
    assert r.status == 200 and int(r.getheader("Content-Length")) == size
    got = r.read()
    c.close()
    assert got == data, "the HTTPS export differs from the import"
    rec = task(r.getheader("task-id"))
    assert rec["status"] == "success" and float(rec["progress"]) == 1.0, rec


def test_chunked_upload_on_the_local_socket():
    size = 8 * MiB
    src = pattern("chunked.raw", size, [(MiB, 2 * MiB)], 4)
    vdi = new_vdi(size)
    with open(src, "rb") as f:
        data = f.read()
    c = unix()  # local: root without a session_id, as xapi's socket
    c.request("PUT", url("/import_raw_vdi", vdi=vdi, format="raw"),
              body=(data[i:i + 300000] for i in range(0, size, 300000)),
              encode_chunked=True, headers={"Transfer-Encoding": "chunked"})
    r = c.getresponse()
    assert r.status == 200, (r.status, r.read())
    r.read()
    c.close()
    back = os.path.join(TMP, "chunked.out")
    D.xe("vdi-export", "uuid=" + vdi, "filename=" + back)
    assert same(src, back)


def test_export_to_a_client_that_goes_away():
    vdi = new_vdi(256 * MiB, "dropped")
    f = pattern("dropped.raw", 256 * MiB, [(i * 8 * MiB, MiB) for i in range(32)], 8)
    D.xe("vdi-import", "uuid=" + vdi, "filename=" + f)
    for fmt in ("raw", "qcow2"):
        c = unix()
        c.request("GET", url("/export_raw_vdi", vdi=vdi, format=fmt))
        r = c.getresponse()
        assert r.status == 200
        ref = r.getheader("task-id")
        r.read(MiB)
        r.close()  # a reader that stops after 1 MiB
        c.close()
        wait_for(lambda: task(ref)["status"] != "pending", 30, what="the export to fail")
        assert task(ref)["status"] == "failure", task(ref)
    assert_no_leftovers()


def http_error(method, route, body=None, conn=None, **q):
    c = conn or unix()
    c.request(method, url(route, **q), body=body)
    r = c.getresponse()
    text = r.read()
    c.close()
    return r.status, json.loads(text) if text.startswith(b"[") else text


def test_bad_requests_are_refused_with_xenapi_errors():
    vdi = new_vdi(4 * MiB, "small")
    before = vdi_image(vdi)
    st, e = http_error("GET", "/export_raw_vdi", vdi="0bad0000-0000-0000-0000-000000000000")
    assert st == 404 and e[0] == "UUID_INVALID", (st, e)
    st, e = http_error("GET", "/export_raw_vdi", vdi=vdi, format="tar")
    assert st == 400 and e == ["INVALID_VALUE", "format", "tar"], (st, e)
    st, e = http_error("PUT", "/import_raw_vdi", body=b"x" * (5 * MiB), vdi=vdi)
    assert st == 400 and e[0] == "VDI_TOO_SMALL", (st, e)
    big = os.path.join(TMP, "big.qcow2")
    qemu_img("create", "-f", "qcow2", big, "8M")
    r = D.xe("vdi-import", "uuid=" + vdi, "filename=" + big, "format=qcow2", ok=False)
    assert r.error_code() == "VDI_TOO_SMALL", r.stderr
    st, e = http_error("GET", "/export_raw_vdi", conn=https(), vdi=vdi)
    assert st == 403 and e[0] == "SESSION_INVALID", (st, e)
    D.xe("user-add", "user-name=reader", "password=pw", "role=read-only")
    c = https()
    c.request("POST", "/jsonrpc", body=json.dumps(
        {"jsonrpc": "2.0", "id": 1, "method": "session.login_with_password",
         "params": ["reader", "pw", "2.21", "test"]}))
    ro = json.loads(c.getresponse().read())["result"]
    c.close()
    st, e = http_error("GET", "/export_raw_vdi", conn=https(), vdi=vdi, session_id=ro)
    assert st == 403 and e[0] == "RBAC_PERMISSION_DENIED", (st, e)
    assert vdi_image(vdi) == before
    assert_no_leftovers()


def test_disks_of_running_vms_are_refused():
    vm = D.install("busy")
    D.xe("vm-start", "uuid=" + vm)
    try:
        vbd = D.xe("vbd-list", "vm-uuid=" + vm, "userdevice=0", "params=vdi-uuid",
                   "--minimal").strip()
        f = pattern("busy.raw", MiB, [(0, 4096)], 5)
        r = D.xe("vdi-import", "uuid=" + vbd, "filename=" + f, ok=False)
        assert r.error_code() == "VDI_IN_USE", r.stderr
        r = D.xe("vdi-export", "uuid=" + vbd, "filename=" + os.path.join(TMP, "busy.out"),
                 ok=False)
        assert r.error_code() == "VDI_IN_USE", r.stderr
        assert not os.path.exists(os.path.join(TMP, "busy.out"))
        # the template's disk: the VM's disk is an overlay of it
        tmpl = D.xe("vdi-param-get", "uuid=" + vbd, "param-name=sm-config",
                    "param-key=vhd-parent").strip()
        r = D.xe("vdi-import", "uuid=" + tmpl, "filename=" + f, ok=False)
        assert r.error_code() in ("VDI_IN_USE", "VDI_READONLY"), r.stderr
    finally:
        D.xe("vm-shutdown", "uuid=" + vm, "--force")
        D.xe("vm-uninstall", "uuid=" + vm, "--force")


# ---- interrupted imports ------------------------------------------------------

def known_disk(name, seed):
    size = 32 * MiB
    src = pattern(name + ".raw", size, [(0, MiB), (20 * MiB, MiB)], seed)
    vdi = new_vdi(size, name)
    D.xe("vdi-import", "uuid=" + vdi, "filename=" + src)
    return vdi, src, size


def start_upload(vdi, size, fmt, first):
    """A PUT whose body stops after `first` bytes (the socket stays open).
    Returns the socket and the task named by the 100 Continue."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(D.socket)
    s.sendall(("PUT %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
               "Expect: 100-continue\r\n\r\n"
               % (url("/import_raw_vdi", vdi=vdi, format=fmt), size)).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        assert chunk, "no 100 Continue: %r" % head
        head += chunk
    assert head.startswith(b"HTTP/1.1 100"), head
    ref = [l.split(b":", 1)[1].strip().decode() for l in head.split(b"\r\n")
           if l.lower().startswith(b"task-id:")][0]
    s.sendall(random.Random(9).randbytes(first))
    wait_for(lambda: float(task(ref)["progress"]) > 0, 10, what="the upload to be under way")
    return s, ref


def assert_unchanged(vdi, image, src, why):
    """The VDI still has its image, and its content is src's."""
    assert vdi_image(vdi) == image, why + ": the VDI moved to another image"
    back = os.path.join(TMP, "unchanged.out")
    D.xe("vdi-export", "uuid=" + vdi, "filename=" + back)
    assert same(src, back), why + ": the disk's content changed"


def test_truncated_upload_changes_nothing():
    vdi, src, size = known_disk("trunc", 6)
    image = vdi_image(vdi)
    for fmt in ("raw", "qcow2"):
        s, ref = start_upload(vdi, size, fmt, 5 * MiB)
        assert unclaimed_files(), "no temporary image while importing"
        s.close()
        wait_for(lambda: task(ref)["status"] != "pending", 10, what="the import to fail")
        rec = task(ref)
        assert rec["status"] == "failure" and rec["error_info"][0] == "IMPORT_ERROR_GENERIC", rec
        assert_unchanged(vdi, image, src, "a cut-short %s upload" % fmt)
    assert_no_leftovers()


def test_kill9_during_imports():
    vdi, src, size = known_disk("killed", 7)
    image = vdi_image(vdi)
    for fmt in ("raw", "qcow2"):
        s, _ = start_upload(vdi, size, fmt, 6 * MiB)
        assert unclaimed_files(), "no temporary image while importing"
        D.kill9()
        s.close()
        D.start()
        assert_unchanged(vdi, image, src, "a %s import killed half-way" % fmt)
        assert_no_leftovers()


def test_xe_on_the_host_works_in_place_and_streams_when_asked():
    """On the local socket xe hands the daemon its file's path (qemu-img
    reads or writes it in place, under a task xe made first); over the
    network path= is refused; XE_STREAM=1 makes xe stream anyway."""
    size = 16 * MiB
    src = pattern("inplace.raw", size, [(MiB, MiB), (9 * MiB, 2 * MiB)], 7)
    vdi = new_vdi(size)
    D.xe("vdi-import", "uuid=" + vdi, "filename=" + src)
    tasks = D.api("task.get_all_records_where", 'field "name_label" = "vdi-import"')
    assert [t for t in tasks.values() if t["name_description"] == src
            and t["status"] == "success"], tasks
    back = os.path.join(TMP, "inplace.out")
    D.xe("vdi-export", "uuid=" + vdi, "filename=" + back)
    assert same(src, back)
    os.unlink(back)
    st, e = http_error("GET", "/export_raw_vdi", conn=https(), vdi=vdi,
                       session_id=remote_session(), path=back)
    assert st == 403 and e[0] == "PERMISSION_DENIED", (st, e)
    assert not os.path.exists(back)
    st, e = http_error("PUT", "/import_raw_vdi", vdi=vdi, path="relative/file")
    assert st == 400 and e[0] == "INVALID_VALUE", (st, e)
    D.env["XE_STREAM"] = "1"
    try:
        test_raw_round_trip_is_exact_and_thin()
        test_qcow2_and_vhd_round_trips()
    finally:
        del D.env["XE_STREAM"]
    assert_no_leftovers()
