"""P2V: `xe p2v source=DIR|TARBALL` turns a Linux root file system into
a VM (a disk sized to fit made with mke2fs -d, fstab and root= pointed at
/dev/vda, the guest's own kernel booted), reading the source only.

The root file system is the Tiny Linux template's, copied out of its disk
image with debugfs (no mounts), with an fstab, a grub.cfg and a kernel in
/boot as a physical machine has them. Malicious tarballs (`..`, absolute
paths, a member written through a symlink that points outside) must be
refused with a clear XenAPI error, writing nothing on the host and
leaving the SR as it was."""

import hashlib
import io
import os
import shutil
import subprocess
import tarfile
import tempfile

import xenia
from xenia import wait_for

D = None
TMP = None
ROOT = None


def setup_module():
    global D, TMP, ROOT
    D = xenia.Daemon(name="p2v").start()
    TMP = tempfile.mkdtemp(prefix="xenia-p2v-test-")
    ROOT = make_root(os.path.join(TMP, "machine"))


def teardown_module():
    D.cleanup()
    shutil.rmtree(TMP, ignore_errors=True)


def make_root(root):
    """The Tiny Linux root files, dressed as a physical machine's."""
    images = os.path.join(xenia.BUILD, "images", "tiny-linux")
    raw = os.path.join(TMP, "tiny.raw")
    subprocess.run(["qemu-img", "convert", "-O", "raw", os.path.join(images, "disk.qcow2"), raw],
                   check=True, capture_output=True, timeout=300)
    dump = subprocess.run(["sfdisk", "-J", raw], check=True, capture_output=True, text=True)
    import json
    start = json.loads(dump.stdout)["partitiontable"]["partitions"][1]["start"] * 512
    os.makedirs(root)
    subprocess.run(["debugfs", "-R", "rdump / " + root, "%s?offset=%d" % (raw, start)],
                   check=True, capture_output=True, timeout=300)
    os.unlink(raw)
    shutil.rmtree(os.path.join(root, "lost+found"), ignore_errors=True)
    with open(os.path.join(root, "etc", "fstab"), "w") as f:
        f.write("# /etc/fstab of a physical machine\n"
                "UUID=0a1b2c3d-0000-4000-8000-000000000001 / ext4 errors=remount-ro 0 1\n"
                "/dev/sda5 none swap sw 0 0\n"
                "proc /proc proc defaults 0 0\n")
    boot = os.path.join(root, "boot")
    os.makedirs(os.path.join(boot, "grub"), exist_ok=True)
    shutil.copy(os.path.join(images, "vmlinuz"), os.path.join(boot, "vmlinuz-6.1.0-p2v"))
    shutil.copy(os.path.join(images, "initrd.img"), os.path.join(boot, "initrd.img-6.1.0-p2v"))
    with open(os.path.join(boot, "grub", "grub.cfg"), "w") as f:
        f.write("menuentry 'Linux' {\n"
                "\tlinux /boot/vmlinuz-6.1.0-p2v root=UUID=0a1b2c3d-0000-4000-8000-000000000001"
                " ro quiet\n\tinitrd /boot/initrd.img-6.1.0-p2v\n}\n")
    os.symlink("/proc/self/mounts", os.path.join(root, "etc", "mtab-link"))
    return root


def tree_digest(root):
    h = hashlib.sha256()
    for d, dirs, files in sorted(os.walk(root)):
        dirs.sort()
        for name in sorted(files + dirs):
            p = os.path.join(d, name)
            st = os.lstat(p)
            h.update(("%s %o %d %d" % (os.path.relpath(p, root), st.st_mode, st.st_size,
                                        st.st_mtime_ns)).encode())
            if os.path.islink(p):
                h.update(os.readlink(p).encode())
            elif os.path.isfile(p):
                with open(p, "rb") as f:
                    h.update(f.read())
    return h.hexdigest()


def state():
    return set(D.api("VM.get_all")), set(D.api("VDI.get_all")), set(os.listdir(D.sr_dir()))


def test_directory_becomes_a_vm_that_boots_its_own_kernel():
    before = tree_digest(ROOT)
    vm = D.xe("p2v", "source=" + ROOT, "name-label=old-server", timeout=600).strip()
    assert tree_digest(ROOT) == before          # the original is only read
    assert D.vm_param(vm, "name-label") == "old-server"
    kernel = D.vm_param(vm, "PV-kernel")
    assert kernel.startswith(os.path.join(D.data_dir, "boot", "p2v-")), kernel
    assert D.vm_param(vm, "PV-args") == "console=ttyS0 root=/dev/vda"
    D.xe("vm-start", "uuid=" + vm)
    with D.console(vm) as c:
        c.wait_prompt(timeout=180)
        assert c.run("grep ' / ' /proc/mounts | cut -d' ' -f1", timeout=60) == "/dev/vda"
        fstab = c.run("grep -v '^#' /etc/fstab | grep -c sda; grep -c '^/dev/vda / ext4' "
                      "/etc/fstab", timeout=60)
        assert fstab.split() == ["0", "1"], fstab
        assert c.run("grep -o 'root=[^ ]*' /boot/grub/grub.cfg", timeout=60) == "root=/dev/vda"
        assert c.run("readlink /etc/mtab-link", timeout=60) == "/proc/self/mounts"
    D.xe("vm-shutdown", "uuid=" + vm, "--force")
    wait_for(lambda: D.power_state(vm) == "halted", 60, what="VM halted")
    D.xe("vm-uninstall", "uuid=" + vm, "--force")


def test_tarball_becomes_a_vm():
    tgz = os.path.join(TMP, "machine.tar.gz")
    with tarfile.open(tgz, "w:gz") as t:
        t.add(ROOT, arcname=".")
    vm = D.xe("p2v", "source=" + tgz, timeout=600).strip()
    assert D.vm_param(vm, "name-label") == "machine"
    vdi = D.xe("vbd-list", "vm-uuid=" + vm, "type=Disk", "params=vdi-uuid", "--minimal").strip()
    size = int(D.xe("vdi-param-get", "uuid=" + vdi, "param-name=virtual-size"))
    assert 256 << 20 <= size <= 1 << 30, size   # sized to fit, not a fixed large disk
    D.xe("vm-uninstall", "uuid=" + vm, "--force")


def bad_tar(name, members):
    out = os.path.join(TMP, name)
    with tarfile.open(out, "w") as t:
        for info, data in members:
            t.addfile(info, io.BytesIO(data) if data is not None else None)
    return out


def file_member(name, data=b"evil\n"):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def link_member(name, target):
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    return info, None


def hard_member(name, target):
    info = tarfile.TarInfo(name)
    info.type = tarfile.LNKTYPE
    info.linkname = target
    return info, None


def test_malicious_tarballs_are_refused_and_write_nothing_outside():
    victim = os.path.join(TMP, "victim")
    os.makedirs(victim)
    cases = [
        ("dotdot.tar", [file_member("etc/hostname", b"x\n"),
                        file_member("../../../../../../" + victim.lstrip("/") + "/owned")],
         "outside the root"),
        ("absolute.tar", [file_member(victim + "/owned")], "outside the root"),
        ("through-link.tar", [link_member("escape", victim), file_member("escape/owned")], ""),
        ("hardlink.tar", [file_member("a"), hard_member("b", "../../x")], "outside the root"),
    ]
    boot = os.path.join(D.data_dir, "boot")
    kernels = set(os.listdir(boot))
    for name, members, words in cases:
        before = state()
        out = D.xe("p2v", "source=" + bad_tar(name, members), ok=False, timeout=300)
        assert out.error_code() == "IMPORT_ERROR_GENERIC", (name, out.stderr)
        assert "P2V" in (out.error_params() or ""), (name, out.error_params())
        assert words in (out.error_params() or ""), (name, out.error_params())
        wait_for(lambda: state() == before, 30, what="the SR and the VM list as before")
        assert not os.listdir(victim), name
        transfer = os.path.join(D.data_dir, "transfer")
        wait_for(lambda: not os.listdir(transfer), 30, what="no spool left")
        assert set(os.listdir(boot)) == kernels, name
