"""Disks on running and halted VMs (xenapi.md §VBD, §4.4): vbd-plug and
vbd-unplug hot-plug a disk the guest sees at once, vm-disk-add/-remove
/-list, read-only disks, currently-attached following the machine, and
xapi's errors (VM_BAD_POWER_STATE, DEVICE_ALREADY_ATTACHED/DETACHED,
OPERATION_NOT_ALLOWED for destroying an attached VBD, VDI_IN_USE).

One daemon and one Tiny Linux guest for the module; the guest finds each
disk by its serial (the first 20 characters of the VDI's uuid)."""

import xenia
from xenia import wait_for

D = None
VM = None
NAME = "hp"
CON = None


def setup_module():
    global D, VM
    D = xenia.Daemon(name="hp").start()
    VM = D.install(NAME)


def teardown_module():
    if CON:
        CON.close()
    D.cleanup()


def prompt():
    global CON
    if D.power_state(VM) == "halted":
        D.xe("vm-start", "uuid=" + VM)
    if CON is None or not CON.alive():
        CON = D.console(VM)
    CON.wait_prompt()
    return CON


def sr():
    return D.xe("sr-list", "name-label=Local storage", "--minimal").strip()


def new_vdi(name, size="64MiB"):
    vdi = D.xe("vdi-create", "sr-uuid=" + sr(), "name-label=" + name,
               "virtual-size=" + size).strip()
    assert xenia.UUID_RE.match(vdi), vdi
    return vdi


def vbd_param(vbd, name):
    return D.xe("vbd-param-get", "uuid=" + vbd, "param-name=" + name).strip()


def guest_dev(c, vdi):
    """The guest's block device (vdb, ...) whose serial is the VDI's, or ''."""
    return c.run("for d in /sys/block/vd*; do [ \"$(cat $d/serial 2>/dev/null)\" = %s ] "
                 "&& echo ${d##*/}; done" % vdi[:20])


def fails(code, *args):
    out = D.xe(*args, ok=False)
    assert out.error_code() == code, "%s: %s" % (" ".join(args), out.stderr)
    return out


def test_halted_vm_plug_refused_records_change():
    assert D.power_state(VM) == "halted"
    vdi = new_vdi("cold")
    vbd = D.xe("vbd-create", "vm-uuid=" + VM, "vdi-uuid=" + vdi, "device=3").strip()
    assert vbd_param(vbd, "currently-attached") == "false"
    out = fails("VM_BAD_POWER_STATE", "vbd-plug", "uuid=" + vbd)
    assert out.error_params() == "%s (%s), running, halted" % (VM, NAME), out.error_params()
    fails("VM_BAD_POWER_STATE", "vbd-unplug", "uuid=" + vbd)
    D.xe("vbd-destroy", "uuid=" + vbd)
    assert vbd not in D.xe("vbd-list", "--minimal")
    D.xe("vdi-destroy", "uuid=" + vdi)


@xenia.time_limit(150)
def test_hotplug_write_unplug_replug():
    c = prompt()
    # at start, the disks in the machine are attached
    root = D.xe("vbd-list", "vm-uuid=" + VM, "--minimal").strip()
    assert vbd_param(root, "currently-attached") == "true"
    D.xe("vm-disk-add", "vm=" + NAME, "disk-size=64MiB", "device=1")
    vbd = D.xe("vbd-list", "vm-uuid=" + VM, "userdevice=1", "--minimal").strip()
    vdi = vbd_param(vbd, "vdi-uuid")
    assert vbd_param(vbd, "currently-attached") == "true"
    listing = D.xe("vm-disk-list", "vm=" + NAME)
    assert "Disk 1 VBD:" in listing and vdi in listing and "Created by xe" in listing, listing
    dev = wait_for(lambda: guest_dev(c, vdi), 10, 0.3, what="the guest to see the new disk")
    assert c.run("cat /sys/block/%s/size" % dev) == "131072"
    # a file system on it, written and read back
    assert c.run("mke2fs -q /dev/%s >/dev/null 2>&1; echo $?" % dev) == "0"
    c.run("mkdir -p /mnt/d && mount /dev/%s /mnt/d && echo hotplug-data > /mnt/d/f && sync"
          % dev)
    assert c.run("cat /mnt/d/f") == "hotplug-data"
    # xapi's refusals while it is attached
    fails("DEVICE_ALREADY_ATTACHED", "vbd-plug", "uuid=" + vbd)
    out = fails("OPERATION_NOT_ALLOWED", "vbd-destroy", "uuid=" + vbd)
    assert "still attached" in out.stderr, out.stderr
    fails("VDI_IN_USE", "vdi-destroy", "uuid=" + vdi)
    c.run("umount /mnt/d")
    # unplug: gone from the guest, detached in the records
    D.xe("vbd-unplug", "uuid=" + vbd, timeout=60)
    assert vbd_param(vbd, "currently-attached") == "false"
    wait_for(lambda: guest_dev(c, vdi) == "", 10, 0.3, what="the disk to leave the guest")
    fails("DEVICE_ALREADY_DETACHED", "vbd-unplug", "uuid=" + vbd)
    # plugged again: the data is there
    D.xe("vbd-plug", "uuid=" + vbd)
    dev = wait_for(lambda: guest_dev(c, vdi), 10, 0.3, what="the disk to come back")
    assert c.run("mount /dev/%s /mnt/d && cat /mnt/d/f; umount /mnt/d" % dev) == "hotplug-data"
    # vm-disk-remove unplugs, then destroys the VBD and the disk
    D.xe("vm-disk-remove", "vm=" + NAME, "device=1", timeout=60)
    wait_for(lambda: guest_dev(c, vdi) == "", 10, 0.3, what="the removed disk to leave")
    assert vdi not in D.xe("vdi-list", "--minimal")
    assert vbd not in D.xe("vbd-list", "--minimal")


@xenia.time_limit(120)
def test_read_only_disk_and_vdi_in_use():
    c = prompt()
    vdi = new_vdi("ro", "16MiB")
    vbd = D.xe("vbd-create", "vm-uuid=" + VM, "vdi-uuid=" + vdi, "device=2", "mode=RO").strip()
    assert vbd_param(vbd, "currently-attached") == "false"  # created, not plugged
    D.xe("vbd-plug", "uuid=" + vbd)
    dev = wait_for(lambda: guest_dev(c, vdi), 10, 0.3, what="the read-only disk")
    assert c.run("blockdev --getro /dev/%s" % dev) == "1"
    out = c.run("dd if=/dev/zero of=/dev/%s bs=4096 count=1 conv=fsync 2>&1; echo rc=$?" % dev)
    assert not out.endswith("rc=0"), out
    # a disk written by this VM cannot go to another running one: a
    # second VM using the root disk's VDI is refused at start
    root_vdi = vbd_param(D.xe("vbd-list", "vm-uuid=" + VM, "userdevice=0", "--minimal").strip(),
                         "vdi-uuid")
    other = D.install("other")
    D.xe("vbd-create", "vm-uuid=" + other, "vdi-uuid=" + root_vdi, "device=1")
    fails("VDI_IN_USE", "vm-start", "uuid=" + other)
    assert D.power_state(other) == "halted"
    D.xe("vbd-unplug", "uuid=" + vbd, timeout=60)
    D.xe("vbd-destroy", "uuid=" + vbd)


@xenia.time_limit(150)
def test_shutdown_detaches_start_attaches():
    prompt()
    vbds = D.xe("vbd-list", "vm-uuid=" + VM, "--minimal").strip().split(",")
    assert all(vbd_param(v, "currently-attached") == "true" for v in vbds)
    D.xe("vm-shutdown", "uuid=" + VM, "--force")
    assert all(vbd_param(v, "currently-attached") == "false" for v in vbds)
    D.xe("vm-start", "uuid=" + VM)
    assert all(vbd_param(v, "currently-attached") == "true" for v in vbds)
    D.xe("vm-shutdown", "uuid=" + VM, "--force")
