"""The PV bootloader (PV-bootloader=pygrub): the kernel, initrd and
command line come from the boot menu on the guest's own disk, read
without mounting it, so a guest that changes its menu boots the change.

The disk is the Tiny Linux disk with a /boot written into its ext4 root
partition by `debugfs -w` (no mount): the template's kernel and initrd
under new names, a symlink to the kernel, and an extlinux.conf whose
command line carries a marker the guest then shows in /proc/cmdline."""

import json
import os
import shutil
import subprocess
import tempfile

import xenia

D = None
TMP = None
IMAGES = os.path.join(xenia.BUILD, "images", "tiny-linux")

EXTLINUX = """# written by the test
DEFAULT first
LABEL first
  KERNEL /boot/vmlinuz
  INITRD /boot/initrd-a.img
  APPEND console=ttyS0 root=/dev/vda2 quiet xenia_marker=1
"""


def setup_module():
    global D, TMP
    TMP = tempfile.mkdtemp(prefix="xenia-pvboot-")
    D = xenia.Daemon(name="pvboot").start()


def teardown_module():
    D.cleanup()
    shutil.rmtree(TMP, ignore_errors=True)


def debugfs(image, offset, commands):
    script = os.path.join(TMP, "debugfs.cmd")
    with open(script, "w") as f:
        f.write("\n".join(commands) + "\n")
    r = subprocess.run(["debugfs", "-w", "-f", script, "%s?offset=%d" % (image, offset)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "rror" not in r.stderr.replace("debugfs 1.", ""), r.stderr


def disk_with_boot(name, menu):
    """A raw copy of the template's disk with /boot (kernel, initrd,
    menu) in its root partition, written without mounting it."""
    raw = os.path.join(TMP, name + ".raw")
    subprocess.run(["qemu-img", "convert", "-O", "raw", os.path.join(IMAGES, "disk.qcow2"), raw],
                   check=True, timeout=300)
    parts = json.loads(subprocess.run(["sfdisk", "-J", raw], check=True, capture_output=True,
                                      text=True).stdout)["partitiontable"]["partitions"]
    root = [p for p in parts if p["type"] == "83"][0]
    cfg = os.path.join(TMP, name + ".conf")
    with open(cfg, "w") as f:
        f.write(menu)
    debugfs(raw, root["start"] * 512, [
        "mkdir /boot", "mkdir /boot/extlinux",
        "write %s /boot/vmlinuz-6.1-a" % os.path.join(IMAGES, "vmlinuz"),
        "symlink /boot/vmlinuz vmlinuz-6.1-a",
        "write %s /boot/initrd-a.img" % os.path.join(IMAGES, "initrd.img"),
        "write %s /boot/extlinux/extlinux.conf" % cfg,
    ])
    return raw, root["start"] * 512


def vm_on_disk(name, raw):
    """A Tiny Linux VM whose only disk is raw (imported into a new VDI),
    booting through the bootloader."""
    vm = D.install(name)
    for vbd in D.xe("vbd-list", "vm-uuid=" + vm, "--minimal").strip().split(","):
        D.xe("vbd-destroy", "uuid=" + vbd)
    sr = D.xe("sr-list", "name-label=Local storage", "--minimal").strip()
    vdi = D.xe("vdi-create", "sr-uuid=" + sr, "name-label=" + name, "virtual-size=1GiB").strip()
    D.xe("vdi-import", "uuid=" + vdi, "filename=" + raw, "format=raw", timeout=600)
    D.xe("vbd-create", "vm-uuid=" + vm, "vdi-uuid=" + vdi, "device=0", "bootable=true")
    # the template's host kernel and command line are not used any more
    D.xe("vm-param-set", "uuid=" + vm, "PV-bootloader=pygrub", "PV-args=")
    return vm


def boot_cmdline(vm):
    """Start vm, check QEMU got the bootloader's files (gone from the run
    directory once loaded), and return the guest's /proc/cmdline."""
    D.xe("vm-start", "uuid=" + vm, timeout=300)
    argv = xenia.cmdline(D.qemu_pid(vm))
    kernel = argv[argv.index("-kernel") + 1]
    assert kernel.startswith(os.path.join(D.data_dir, "run", vm) + "/"), argv
    assert "-initrd" in argv, argv
    xenia.wait_for(lambda: not os.path.exists(kernel), 30, what="the kernel copy to go")
    c = D.console(vm)
    try:
        c.wait_prompt(timeout=150)
        return c, c.run("cat /proc/cmdline")
    except BaseException:
        c.close()
        raise


def halt(vm):
    D.xe("vm-shutdown", "uuid=" + vm, "--force")
    assert D.power_state(vm) == "halted"
    assert not os.path.exists(os.path.join(D.data_dir, "run", vm))


@xenia.time_limit(600)
def test_boots_the_guests_menu_and_follows_its_upgrade():
    vm = vm_on_disk("pvboot", disk_with_boot("pvboot", EXTLINUX)[0])
    c, line = boot_cmdline(vm)
    try:
        assert "xenia_marker=1" in line.split(), line
        # the guest "upgrades": a second entry, made the default, and its
        # data on disk before the VM stops
        c.run("printf 'DEFAULT second\\nLABEL first\\n KERNEL /boot/vmlinuz\\n"
              " INITRD /boot/initrd-a.img\\n APPEND console=ttyS0 root=/dev/vda2 xenia_marker=1\\n"
              "LABEL second\\n LINUX ../vmlinuz-6.1-a\\n"
              " APPEND initrd=/boot/initrd-a.img console=ttyS0 root=/dev/vda2 xenia_marker=2\\n'"
              " > /boot/extlinux/extlinux.conf.new && "
              "mv /boot/extlinux/extlinux.conf.new /boot/extlinux/extlinux.conf && sync")
        c.run("mount -o remount,ro / ; sync")
    finally:
        c.close()
    halt(vm)

    c, line = boot_cmdline(vm)
    try:
        assert "xenia_marker=2" in line.split() and "xenia_marker=1" not in line.split(), line
        # an entry chosen by PV-bootloader-args, PV-args appended
        c.run("printf 'DEFAULT first\\nLABEL first\\n KERNEL /boot/missing\\n' "
              "> /boot/extlinux/x.new && sync")
    finally:
        c.close()
    halt(vm)
    D.xe("vm-param-set", "uuid=" + vm, "PV-bootloader-args=--entry=first --args=xenia_extra=7",
         "PV-args=xenia_pv_args=3")
    c, line = boot_cmdline(vm)
    try:
        words = line.split()
        assert "xenia_marker=1" in words and "xenia_extra=7" in words, line
        assert "xenia_pv_args=3" in words, line
        # now a menu naming a kernel that is not there
        c.run("mv /boot/extlinux/x.new /boot/extlinux/extlinux.conf && sync")
        c.run("mount -o remount,ro / ; sync")
    finally:
        c.close()
    halt(vm)
    D.xe("vm-param-set", "uuid=" + vm, "PV-bootloader-args=")
    r = D.xe("vm-start", "uuid=" + vm, ok=False, timeout=300)
    assert r.error_code() == "BOOTLOADER_FAILED", r.stderr
    assert "/boot/missing" in r.stderr, r.stderr
    assert D.power_state(vm) == "halted"
    assert not os.path.exists(os.path.join(D.data_dir, "run", vm))


@xenia.time_limit(300)
def test_disk_without_menu_and_unknown_bootloader_are_refused():
    vm = D.install("pvboot-none")
    # the template's own disk: no /boot on its ext4, nothing to boot
    D.xe("vm-param-set", "uuid=" + vm, "PV-bootloader=pygrub")
    r = D.xe("vm-start", "uuid=" + vm, ok=False, timeout=300)
    assert r.error_code() == "BOOTLOADER_FAILED", r.stderr
    assert "no boot menu" in r.stderr, r.stderr
    assert D.power_state(vm) == "halted"
    assert not D.qemu_pids(vm)
    assert not os.path.exists(os.path.join(D.data_dir, "run", vm))
    D.xe("vm-param-set", "uuid=" + vm, "PV-bootloader=lilo")
    r = D.xe("vm-start", "uuid=" + vm, ok=False)
    assert r.error_code() == "UNKNOWN_BOOTLOADER", r.stderr
    assert D.power_state(vm) == "halted"
    # a bad bootloader argument is refused before anything is read
    D.xe("vm-param-set", "uuid=" + vm, "PV-bootloader=pygrub", "PV-bootloader-args=--entry")
    r = D.xe("vm-start", "uuid=" + vm, ok=False)
    assert r.error_code() == "BOOTLOADER_FAILED" and "--entry" in r.stderr, r.stderr
    assert D.power_state(vm) == "halted"


@xenia.time_limit(300)
def test_damaged_file_system_is_refused_cleanly():
    raw, offset = disk_with_boot("damaged", EXTLINUX)
    # the superblock keeps its magic number but says blocks are 2^74 bytes
    with open(raw, "r+b") as f:
        f.seek(offset + 1024 + 24)  # s_log_block_size
        f.write(b"\x40\x00\x00\x00")
    vm = vm_on_disk("pvboot-damaged", raw)
    r = D.xe("vm-start", "uuid=" + vm, ok=False, timeout=300)
    assert r.error_code() == "BOOTLOADER_FAILED", r.stderr
    assert "no boot menu" in r.stderr and "0 ext2/3/4" in r.stderr, r.stderr
    assert D.power_state(vm) == "halted"
    assert not D.qemu_pids(vm)
    assert not os.path.exists(os.path.join(D.data_dir, "run", vm))
    assert D.running()
    assert "cannot open the file system of partition 2" in D.log_text()
