"""Disk images on the local SR: snapshots, clones, copies, chains and
their coalescing, without a guest (the host reads and writes the images
with qemu-io, so every check sees the bytes a guest would).

Patterns are written at fixed offsets; after every step every remaining
disk must read what it should and pass `qemu-img check`, and the SR must
hold no file that no record claims."""

import itertools
import os
import re
import subprocess

import xenia
from xenia import wait_for

D = None
SR = None
MiB = 1 << 20


def setup_module():
    global D, SR
    D = xenia.Daemon(name="stor").start()
    SR = D.xe("sr-list", "name-label=Local storage", "--minimal").strip()


def teardown_module():
    D.cleanup()


def vdi_create(name, size="64MiB"):
    return D.xe("vdi-create", "sr-uuid=" + SR, "name-label=" + name,
                "virtual-size=" + size).strip()


def vdi(uuid, param):
    return D.xe("vdi-param-get", "uuid=" + uuid, "param-name=" + param).strip()


def path(uuid):
    loc = vdi(uuid, "location")
    return os.path.join(D.sr_dir(), loc if "." in loc else loc + ".qcow2")


def qemu_io(uuid, cmd, ok=True):
    r = subprocess.run(["qemu-io", "-f", "qcow2", "-c", cmd, path(uuid)],
                       capture_output=True, text=True, timeout=60)
    text = r.stdout + r.stderr
    if ok:
        assert r.returncode == 0 and "error" not in text.lower() and \
            "fail" not in text.lower(), "qemu-io %s on %s: %s" % (cmd, uuid, text)
    return text


def write(uuid, byte, off=0):
    qemu_io(uuid, "write -P 0x%02x %d 1M" % (byte, off))


def reads(uuid, byte, off=0):
    """The disk reads byte over 1 MiB at off. The collector may move a
    VDI to another image file while a test reads it directly: a read
    during such a move is tried again."""
    for _ in range(5):
        before = vdi(uuid, "location")
        out = qemu_io(uuid, "read -P 0x%02x %d 1M" % (byte, off), ok=False)
        if vdi(uuid, "location") == before:
            return "Pattern verification failed" not in out and "read 1048576/1048576" in out
    raise AssertionError("VDI %s kept moving" % uuid)


def check_all():
    """Every VDI's image passes qemu-img check; every image file is claimed."""
    out = D.xe("vdi-list", "sr-uuid=" + SR, "params=uuid,location", "--minimal")
    recs = xenia.records(D.xe("vdi-list", "sr-uuid=" + SR, "params=uuid,location"),
                         "uuid", "location")
    claimed = set()
    for uuid, loc in recs:
        f = loc if "." in loc else loc + ".qcow2"
        claimed.add(f)
        if f.endswith(".qcow2"):
            r = subprocess.run(["qemu-img", "check", "-U", os.path.join(D.sr_dir(), f)],
                               capture_output=True, text=True, timeout=60)
            assert r.returncode == 0, "qemu-img check %s: %s%s" % (f, r.stdout, r.stderr)
    files = set(os.listdir(D.sr_dir()))
    assert files <= claimed | {f for f in files if not f.endswith((".qcow2", ".state"))}, \
        "unclaimed files in the SR: %s" % (files - claimed)
    return out


def idle_base_copies():
    """Base copies (hidden images) that fewer than two images are based
    on: the collector must merge (one) or remove (none) each of them."""
    recs = xenia.records(D.xe("vdi-list", "sr-uuid=" + SR, "params=uuid,location,managed,sm-config"),
                         "uuid", "location", "managed", "sm-config")
    children = {}
    for uuid, loc, managed, smc in recs:
        m = re.search(r"xenia-parent: ([0-9a-f-]+)", smc)
        if m:
            children[m.group(1)] = children.get(m.group(1), 0) + 1
    return [u for u, loc, managed, smc in recs
            if managed == "false" and children.get(loc, 0) < 2]


def settled():
    """The collector has merged or removed every base copy it can."""
    wait_for(lambda: idle_base_copies() == [], 30, 0.3, what="the base copies to be coalesced")
    wait_for(lambda: len(os.listdir(D.sr_dir())) == len(
        xenia.records(D.xe("vdi-list", "sr-uuid=" + SR, "params=uuid"), "uuid")),
        15, 0.3, what="the SR to hold exactly the claimed files")


def test_snapshot_clone_copy_keep_their_data():
    a = vdi_create("a")
    write(a, 0xa1)
    s = D.xe("vdi-snapshot", "uuid=" + a).strip()
    c = D.xe("vdi-clone", "uuid=" + a, "new-name-label=a-clone").strip()
    write(a, 0xa2)
    write(c, 0xc1, 2 * MiB)
    assert reads(s, 0xa1) and reads(a, 0xa2) and reads(c, 0xa1) and reads(c, 0xc1, 2 * MiB)
    assert vdi(s, "is-a-snapshot") == "true" and vdi(s, "snapshot-of") == a
    assert vdi(c, "name-label") == "a-clone"
    # a full copy stands alone: no backing file
    cp = D.xe("vdi-copy", "uuid=" + c, "sr-uuid=" + SR).strip()
    info = subprocess.run(["qemu-img", "info", "-U", path(cp)], capture_output=True,
                          text=True).stdout
    assert "backing file" not in info, info
    assert reads(cp, 0xa1) and reads(cp, 0xc1, 2 * MiB)
    check_all()
    for v in (s, c, cp, a):
        D.xe("vdi-destroy", "uuid=" + v)
    settled()
    check_all()


def test_snapshots_deleted_in_every_order():
    for order in itertools.permutations(range(3)):
        a = vdi_create("chain")
        snaps = []
        for k in range(3):
            write(a, 0x10 + k, k * MiB)
            snaps.append(D.xe("vdi-snapshot", "uuid=" + a).strip())
        write(a, 0x20, 0)     # overwrite after the last snapshot
        gone = set()
        for k in order:
            D.xe("vdi-destroy", "uuid=" + snaps[k])
            gone.add(k)
            settled()
            check_all()
            for j in range(3):
                if j in gone:
                    continue
                # snapshot j sees the writes up to j, not later ones
                for w in range(j + 1):
                    assert reads(snaps[j], 0x10 + w, w * MiB), (order, j, w)
            assert reads(a, 0x20, 0) and reads(a, 0x11, MiB) and reads(a, 0x12, 2 * MiB)
        D.xe("vdi-destroy", "uuid=" + a)
        settled()
    check_all()


def test_chain_depth_limit():
    v = vdi_create("deep", "16MiB")
    made = [v]
    err = None
    for _ in range(40):
        out = D.xe_run("vdi-clone", "uuid=" + made[-1])
        if out.rc != 0:
            err = out
            break
        made.append(out.strip())
    assert err is not None, "40 nested clones were allowed"
    assert err.error_code() == "SR_BACKEND_FAILURE_109", err.stderr
    assert "chain is too long" in err.stderr
    assert 20 <= len(made) <= 31, len(made)
    for u in reversed(made):
        D.xe("vdi-destroy", "uuid=" + u)
    settled()


def test_parent_of_a_clone_can_go_first():
    a = vdi_create("parent")
    write(a, 0x55)
    c = D.xe("vdi-clone", "uuid=" + a).strip()
    D.xe("vdi-destroy", "uuid=" + a)
    # the clone still reads its parent's data; the parent's image lives on
    # as a base copy until it can be merged
    assert reads(c, 0x55)
    settled()
    assert reads(c, 0x55)
    check_all()
    D.xe("vdi-destroy", "uuid=" + c)
    settled()


def test_unclaimed_files_go_at_start():
    a = vdi_create("keep")
    write(a, 0x77)
    stray = os.path.join(D.sr_dir(), "0123abcd-0000-4000-8000-000000000000.qcow2")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", stray, "1M"], check=True)
    D.restart()
    assert not os.path.exists(stray)
    assert reads(a, 0x77)
    D.xe("vdi-destroy", "uuid=" + a)
    settled()


def test_sr_sizes_are_true():
    def figures():
        D.xe("sr-update", "uuid=" + SR)
        p = xenia.param_list(D.xe("sr-param-list", "uuid=" + SR))
        return int(p["physical-size"]), int(p["physical-utilisation"]), \
            int(p["virtual-allocation"])
    size0, used0, virt0 = figures()
    a = vdi_create("big", "2GiB")
    write(a, 0x31, 0)
    qemu_io(a, "write -P 0x32 8M 16M")
    wait_for(lambda: figures()[2] >= virt0 + (2 << 30), 10, 0.2, what="virtual-allocation")
    wait_for(lambda: figures()[1] >= used0 + 16 * MiB, 10, 0.2, what="physical-utilisation")
    size, used, virt = figures()
    assert size > used > 0
    # the VDI's own figure: its image's allocated bytes
    vused = int(D.xe("vdi-param-get", "uuid=" + a, "param-name=physical-utilisation"))
    assert vused == os.stat(path(a)).st_blocks * 512, (vused, os.stat(path(a)).st_blocks)
    assert 17 * MiB <= vused < 24 * MiB, vused
    D.xe("vdi-destroy", "uuid=" + a)
    wait_for(lambda: figures()[2] == virt0, 10, 0.2, what="virtual-allocation to drop")


def test_vm_copy_has_full_independent_disks():
    vm = D.install("to-copy")
    disk = D.xe("vbd-list", "vm-uuid=" + vm, "type=Disk", "params=vdi-uuid", "--minimal").strip()
    copy = D.xe("vm-copy", "vm=" + vm, "new-name-label=copied", "sr-uuid=" + SR).strip()
    cdisk = D.xe("vbd-list", "vm-uuid=" + copy, "type=Disk", "params=vdi-uuid",
                 "--minimal").strip()
    assert cdisk and cdisk != disk
    info = subprocess.run(["qemu-img", "info", "-U", path(cdisk)], capture_output=True,
                          text=True).stdout
    assert "backing file" not in info, info
    r = subprocess.run(["qemu-img", "compare", "-U", path(disk), path(cdisk)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    for v in (copy, vm):
        D.xe("vm-uninstall", "uuid=" + v, "--force")
    settled()
    check_all()


def test_templates_provision_their_own_disks():
    """A user template with other_config:disks (xapi's provisioning XML):
    vm-install makes its disks on the SR given, thin, and the VM boots
    with them; a VM turns into a template and back."""
    vm = D.install("to-template")
    D.xe("vm-param-set", "uuid=" + vm, "is-a-template=true")
    assert D.xe("template-list", "uuid=" + vm, "--minimal").strip() == vm
    try:
        D.api("VM.start", D.api("VM.get_by_uuid", vm), False, False)
        raise AssertionError("a template started")
    except xenia.ApiError as e:
        assert e.code == "VM_IS_TEMPLATE", e
    spec = ('<provision><disk device="1" size="%d" sr="" bootable="false" type="user"/>'
            '<disk device="2" size="%d" sr="%s" bootable="false" type="user"/></provision>'
            % (32 << 20, 1 << 40, SR))
    D.xe("template-param-set", "uuid=" + vm, "other-config:disks=" + spec)
    new = D.xe("vm-install", "template=" + vm, "new-name-label=provisioned",
               "sr-uuid=" + SR).strip()
    assert xenia.UUID_RE.match(new), new
    sizes = {}
    for vbd in D.xe("vbd-list", "vm-uuid=" + new, "type=Disk", "--minimal").strip().split(","):
        dev = D.xe("vbd-param-get", "uuid=" + vbd, "param-name=userdevice").strip()
        vdi = D.xe("vbd-param-get", "uuid=" + vbd, "param-name=vdi-uuid").strip()
        sizes[dev] = int(D.xe("vdi-param-get", "uuid=" + vdi, "param-name=virtual-size"))
        assert D.xe("vdi-param-get", "uuid=" + vdi, "param-name=sr-uuid").strip() == SR
        assert os.stat(path(vdi)).st_blocks * 512 < 2 << 20, "not thin"
    assert sizes["1"] == 32 << 20 and sizes["2"] == 1 << 40, sizes
    # provisioned once: the key is gone from the VM, kept on the template
    assert "disks" not in D.xe("vm-param-get", "uuid=" + new, "param-name=other-config")
    assert "disks" in D.xe("template-param-get", "uuid=" + vm, "param-name=other-config")
    D.xe("vm-start", "uuid=" + new)
    c = D.console(new)
    try:
        c.wait_prompt()
        assert c.run("cat /sys/block/vdb/size") == str((32 << 20) // 512)
    finally:
        c.close()
    D.xe("vm-shutdown", "uuid=" + new, "--force")
    D.xe("vm-uninstall", "uuid=" + new, "--force")
    # bad specs change nothing
    for bad, code in (('<provision><disk device="3" size="1" sr="%s"/></provision>'
                       % "00000000-0000-0000-0000-000000000000", "UUID_INVALID"),
                      ('<provision><disk device="3" size="lots" sr=""/></provision>',
                       "INVALID_VALUE"),
                      ('<provision><disk device="0" size="1024" sr=""/></provision>',
                       "DEVICE_ALREADY_EXISTS"),
                      ('<provision><disk device="16" size="1024" sr=""/></provision>',
                       "INVALID_VALUE"),
                      ("<provision><disk", "INVALID_VALUE")):
        other = D.xe("vm-install", "template=" + vm, "new-name-label=bad").strip()
        D.xe("vm-param-set", "uuid=" + other, "other-config:disks=" + bad)
        vdis = D.xe("vdi-list", "--minimal")
        try:
            D.api("VM.provision", D.api("VM.get_by_uuid", other))
            raise AssertionError("VM.provision took %s" % bad)
        except xenia.ApiError as e:
            assert e.code == code, (bad, e.code, e.params)
        assert D.xe("vdi-list", "--minimal") == vdis, "a failed provision left a disk"
        D.xe("vm-uninstall", "uuid=" + other, "--force")
    # and back from a template to a VM
    D.xe("template-param-set", "uuid=" + vm, "is-a-template=false")
    assert D.xe("vm-list", "uuid=" + vm, "--minimal").strip() == vm
    D.xe("vm-start", "uuid=" + vm)
    D.xe("vm-shutdown", "uuid=" + vm, "--force")
    D.xe("vm-uninstall", "uuid=" + vm, "--force")
    settled()
    check_all()
