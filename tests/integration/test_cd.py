"""CD drives (xenapi.md §VBD insert/eject, §4.4 vm-cd-*): ISO images from
an ISO SR (sr-create type=iso, sr-scan), a CD drive added to a halted VM,
media ejected and inserted on the halted and on the running VM, the guest
reading each medium from /dev/sr0, and xapi's errors (VBD_NOT_EMPTY,
VBD_IS_EMPTY, VBD_NOT_REMOVABLE_MEDIA, no hot-plug of CD drives).

The ISOs are made here with genisoimage; each has its own volume id,
which the guest reads straight off the device (bytes 40.. of sector 16),
and a file the guest reads after mounting it."""

import os
import subprocess

import xenia
from xenia import wait_for

D = None
VM = None
NAME = "cdvm"
CON = None
ISO_DIR = None


def make_iso(name, volid, text):
    src = os.path.join(ISO_DIR, "src-" + volid)
    os.makedirs(src)
    with open(os.path.join(src, "mark.txt"), "w") as f:
        f.write(text + "\n")
    subprocess.check_call(["genisoimage", "-quiet", "-V", volid, "-o",
                           os.path.join(ISO_DIR, name), src])


def setup_module():
    global D, VM, ISO_DIR
    D = xenia.Daemon(name="cd").start()
    ISO_DIR = os.path.join(D.data_dir, "isos")
    os.makedirs(ISO_DIR)
    make_iso("alpha.iso", "XNALPHA", "alpha-mark")
    make_iso("beta.iso", "XNBETA", "beta-mark")
    VM = D.install(NAME)


def teardown_module():
    if CON:
        CON.close()
    D.cleanup()


def fails(code, *args):
    out = D.xe(*args, ok=False)
    assert out.error_code() == code, "%s: %s" % (" ".join(args), out.stderr)
    return out


def the_cd():
    return D.xe("vbd-list", "vm-uuid=" + VM, "type=CD", "--minimal").strip()


def volume_id(c):
    """The volume id of the medium in /dev/sr0, or 'NONE' if unreadable."""
    return c.run("v=$(dd if=/dev/sr0 bs=1 skip=32808 count=8 2>/dev/null); "
                 "echo ${v:-NONE}").strip()


def test_iso_sr_lists_images():
    sr = D.xe("sr-create", "type=iso", "name-label=ISOs", "content-type=iso",
              "device-config:location=" + ISO_DIR).strip()
    assert xenia.UUID_RE.match(sr), sr
    D.xe("sr-scan", "uuid=" + sr)
    names = D.xe("vdi-list", "sr-uuid=" + sr, "params=name-label", "--minimal").strip()
    assert sorted(names.split(",")) == ["alpha.iso", "beta.iso"], names


def test_cd_on_halted_vm():
    D.xe("vm-cd-add", "vm=" + NAME, "cd-name=alpha.iso", "device=3")
    cd = the_cd()
    assert xenia.UUID_RE.match(cd), cd
    listing = D.xe("vm-cd-list", "vm=" + NAME)
    assert "CD 0 VBD:" in listing and "alpha.iso" in listing, listing
    fails("VBD_NOT_EMPTY", "vm-cd-insert", "vm=" + NAME, "cd-name=beta.iso")
    # halted: eject and insert change the records
    D.xe("vm-cd-eject", "vm=" + NAME)
    assert D.xe("vbd-param-get", "uuid=" + cd, "param-name=empty").strip() == "true"
    fails("VBD_IS_EMPTY", "vbd-eject", "uuid=" + cd)
    root = D.xe("vbd-list", "vm-uuid=" + VM, "type=Disk", "--minimal").strip()
    fails("VBD_NOT_REMOVABLE_MEDIA", "vbd-eject", "uuid=" + root)


@xenia.time_limit(150)
def test_media_change_seen_by_running_guest():
    global CON
    cd = the_cd()
    D.xe("vm-start", "uuid=" + VM)
    # the empty drive is there, and attached
    assert D.xe("vbd-param-get", "uuid=" + cd, "param-name=currently-attached").strip() == "true"
    CON = D.console(VM)
    c = CON
    c.wait_prompt()
    assert c.run("[ -b /dev/sr0 ] && echo yes") == "yes"
    assert volume_id(c) == "NONE"
    D.xe("vm-cd-insert", "vm=" + NAME, "cd-name=alpha.iso")
    wait_for(lambda: volume_id(c) == "XNALPHA", 15, 0.5, what="the guest to read alpha")
    c.run("mkdir -p /mnt/cd")
    assert c.run("mount -t iso9660 -o ro /dev/sr0 /mnt/cd && cat /mnt/cd/mark.txt; "
                 "umount /mnt/cd") == "alpha-mark"
    fails("VBD_NOT_EMPTY", "vm-cd-insert", "vm=" + NAME, "cd-name=beta.iso")
    D.xe("vm-cd-eject", "vm=" + NAME)
    wait_for(lambda: volume_id(c) == "NONE", 15, 0.5, what="the medium to go")
    assert D.xe("vbd-param-get", "uuid=" + cd, "param-name=empty").strip() == "true"
    D.xe("vm-cd-insert", "vm=" + NAME, "cd-name=beta.iso")
    wait_for(lambda: volume_id(c) == "XNBETA", 15, 0.5, what="the guest to read beta")
    # CD drives cannot be hot-plugged: vm-cd-add fails and leaves no VBD
    # behind, as does vbd-plug of a CD drive
    out = D.xe("vm-cd-add", "vm=" + NAME, "cd-name=alpha.iso", "device=4", ok=False)
    assert out.error_code() == "OPERATION_NOT_ALLOWED", out.stderr
    assert D.xe("vbd-list", "vm-uuid=" + VM, "userdevice=4", "--minimal").strip() == ""
    fails("OPERATION_NOT_ALLOWED", "vbd-unplug", "uuid=" + cd)


def test_cd_remove_after_shutdown():
    cd = the_cd()
    D.xe("vm-shutdown", "uuid=" + VM, "--force")
    assert D.xe("vbd-param-get", "uuid=" + cd, "param-name=currently-attached").strip() == "false"
    # the medium inserted while it ran is in the records
    assert "beta.iso" in D.xe("vm-cd-list", "vm=" + NAME)
    D.xe("vm-cd-remove", "vm=" + NAME, "cd-name=beta.iso")
    assert the_cd() == ""
    assert "beta.iso" in D.xe("vdi-list", "params=name-label")  # the ISO stays
