"""Boot paths: BIOS boot from the VM's own disk (HVM-boot-policy
"BIOS order", the disk's syslinux boot loader), and the engine the host
record reports."""

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
