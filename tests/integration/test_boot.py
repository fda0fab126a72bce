"""Boot paths: BIOS boot from the VM's own disk (HVM-boot-policy
"BIOS order", the disk's syslinux boot loader), and the engine the host
record reports."""

import json
import os
import subprocess

import xenia

D = None


def setup_module():
    global D
    D = xenia.Daemon(name="boot").start()


def teardown_module():
    D.cleanup()


@xenia.time_limit(180)
def test_bios_boot_from_disk():
    vm = D.install("bios")
    # No kernel from the host: SeaBIOS boots the disk (order c, then d).
    D.xe("vm-param-set", "uuid=" + vm, "PV-kernel=", "PV-ramdisk=", "PV-args=",
         "HVM-boot-policy=BIOS order", "HVM-boot-params:order=cd")
    assert D.vm_param(vm, "HVM-boot-policy") == "BIOS order"
    D.xe("vm-start", "uuid=" + vm)
    pid = D.qemu_pid(vm)
    argv = xenia.cmdline(pid)
    assert "-kernel" not in argv, argv
    assert "-boot" in argv and "order=cd" in argv, argv
    c = D.console(vm)
    try:
        c.wait_prompt(timeout=90)
        # the root file system came from the disk the BIOS booted
        assert c.run("cat /proc/cmdline").find("root=/dev/vda2") >= 0
        assert c.run("echo $((6*7))") == "42"
    finally:
        c.close()
    D.xe("vm-shutdown", "uuid=" + vm, "--force")
    assert D.power_state(vm) == "halted"


def test_engine_is_tcg_without_hardware_virtualization():
    flags = open("/proc/cpuinfo").read()
    hw = " vmx" in flags or " svm" in flags
    host = D.xe("host-list", "--minimal").strip()
    sv = D.xe("host-param-get", "uuid=" + host, "param-name=software-version")
    assert ("engine: kvm" if hw else "engine: tcg") in sv, sv


@xenia.time_limit(180)
def test_added_disk_is_seen_by_the_guest():
    vm = D.install("disks")
    sr = D.xe("sr-list", "name-label=Local storage", "--minimal").strip()
    vdi = D.xe("vdi-create", "sr-uuid=" + sr, "name-label=data", "virtual-size=64MiB").strip()
    assert xenia.UUID_RE.match(vdi), vdi
    assert D.xe("vdi-param-get", "uuid=" + vdi, "param-name=virtual-size").strip() == str(64 << 20)
    vm_uuid = vm
    bad = D.xe("vbd-create", "vm-uuid=" + vm_uuid, "vdi-uuid=" + vdi, "device=0", ok=False)
    assert bad.error_code() == "DEVICE_ALREADY_EXISTS", bad.stderr
    bad = D.xe("vbd-create", "vm-uuid=" + vm_uuid, "vdi-uuid=" + vdi, "device=x", ok=False)
    assert bad.error_code() == "INVALID_VALUE", bad.stderr
    vbd = D.xe("vbd-create", "vm-uuid=" + vm_uuid, "vdi-uuid=" + vdi, "device=1").strip()
    assert xenia.UUID_RE.match(vbd), vbd
    D.xe("vm-start", "uuid=" + vm)
    c = D.console(vm)
    try:
        c.wait_prompt(timeout=90)
        # 64 MiB = 131072 sectors of 512 bytes
        assert c.run("cat /sys/block/vdb/size") == "131072"
        assert c.run("cat /sys/block/vdb/serial") == vdi[:20]
        # grow it while the guest runs: the guest sees the new size
        D.xe("vdi-resize", "uuid=" + vdi, "disk-size=96MiB")
        xenia.wait_for(lambda: c.run("cat /sys/block/vdb/size") == "196608", 10, 0.2,
                       what="the guest to see 96 MiB")
        assert D.xe("vdi-param-get", "uuid=" + vdi, "param-name=virtual-size").strip() == str(96 << 20)
        bad = D.xe("vdi-resize", "uuid=" + vdi, "disk-size=32MiB", ok=False)
        assert bad.error_code() == "INVALID_VALUE", bad.stderr  # no shrinking
    finally:
        c.close()
    # a disk in use by a running VM cannot be destroyed
    assert D.xe("vdi-destroy", "uuid=" + vdi, ok=False).error_code() == "VDI_IN_USE"
    D.xe("vm-shutdown", "uuid=" + vm, "--force")
    # offline growth goes through the image
    D.xe("vdi-resize", "uuid=" + vdi, "disk-size=128MiB")
    path = os.path.join(D.sr_dir(), D.xe("vdi-param-get", "uuid=" + vdi, "param-name=location").strip() + ".qcow2")
    info = json.loads(subprocess.check_output(["qemu-img", "info", "--output=json", path]))
    assert info["virtual-size"] == 128 << 20, info
    # a linked clone of the VM boots from overlays of both disks
    clone = D.xe("vm-clone", "uuid=" + vm, "new-name-label=disks-clone").strip()
    assert xenia.UUID_RE.match(clone), clone
    assert len(D.xe("vbd-list", "vm-uuid=" + clone, "--minimal").strip().split(",")) == 2
    D.xe("vm-uninstall", "uuid=" + clone, "--force")
    D.xe("vbd-destroy", "uuid=" + vbd)
    D.xe("vdi-destroy", "uuid=" + vdi)
    assert vdi not in D.xe("vdi-list", "--minimal")
