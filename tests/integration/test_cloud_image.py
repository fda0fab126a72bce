"""The "Generic cloud image" template (issue 8): a cloud image imported
into the new VM's disk, booted by BIOS, configured through a cloud-init
NoCloud seed (an ISO labelled cidata with meta-data and user-data) that
the daemon makes from other-config:cloud-init-* at every start.

This machine cannot download a distribution's cloud image, so the test
makes one: the Tiny Linux disk with, in its init, a small NoCloud reader
standing in for cloud-init (it finds the disk labelled cidata, reads
local-hostname and public-keys from meta-data, keeps user-data). What is
checked is what the daemon gives any cloud image: the seed's disk, its
label, its files and their content, seen from inside the guest."""

import os
import subprocess

import xenia

D = None
WORK = None
IMAGE = None
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIXeniaTestKeyOnly test@xenia"
TEMPLATE = "Generic cloud image"

# Runs from the image's rcS, before the console shell.
NOCLOUD_READER = r"""#!/bin/sh
# A minimal NoCloud reader, standing in for cloud-init in this test image.
for d in /dev/vd[a-z]; do
    [ "$(dd if=$d bs=1 skip=32808 count=6 2>/dev/null)" = cidata ] || continue
    mkdir -p /run/cidata
    mount -t iso9660 -o ro "$d" /run/cidata || continue
    h=$(sed -n 's/^local-hostname: *"\(.*\)"$/\1/p' /run/cidata/meta-data)
    [ -n "$h" ] && echo "$h" >/proc/sys/kernel/hostname
    mkdir -p /root/.ssh
    sed -n 's/^  - "\(.*\)"$/\1/p' /run/cidata/meta-data >/root/.ssh/authorized_keys
    cp /run/cidata/user-data /run/user-data
    echo "nocloud: seed from $d"
    exit 0
done
echo "nocloud: no seed"
"""


def sh(*argv):
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


def make_cloud_image():
    """The Tiny Linux disk plus the NoCloud reader, as a qcow2 file."""
    raw = os.path.join(WORK, "cloud.raw")
    sh("qemu-img", "convert", "-O", "raw",
       os.path.join(xenia.BUILD, "images", "tiny-linux", "disk.qcow2"), raw)
    start = [l for l in sh("sfdisk", "-d", raw).splitlines() if l.startswith(raw + "2")]
    offset = int(start[0].split("start=")[1].split(",")[0]) * 512
    fs = "%s?offset=%d" % (raw, offset)
    rcs = sh("debugfs", "-R", "cat /etc/init.d/rcS", fs)
    reader = os.path.join(WORK, "nocloud")
    with open(reader, "w") as f:
        f.write(NOCLOUD_READER)
    new_rcs = os.path.join(WORK, "rcS")
    with open(new_rcs, "w") as f:
        f.write(rcs + "\n/etc/init.d/nocloud\n")
    os.chmod(reader, 0o755)
    os.chmod(new_rcs, 0o755)
    cmds = "\n".join(["rm /etc/init.d/rcS", "write %s /etc/init.d/rcS" % new_rcs,
                      "write %s /etc/init.d/nocloud" % reader,
                      "sif /etc/init.d/rcS mode 0100755", "sif /etc/init.d/nocloud mode 0100755"])
    subprocess.run(["debugfs", "-w", "-f", "-", fs], input=cmds, check=True,
                   capture_output=True, text=True)
    assert "nocloud" in sh("debugfs", "-R", "cat /etc/init.d/rcS", fs)
    image = os.path.join(WORK, "cloud.qcow2")
    sh("qemu-img", "convert", "-O", "qcow2", raw, image)
    os.unlink(raw)
    return image


def setup_module():
    global D, WORK, IMAGE
    D = xenia.Daemon(name="cloud").start()
    WORK = os.path.join(D.data_dir, "work")
    os.makedirs(WORK)
    IMAGE = make_cloud_image()


def teardown_module():
    D.cleanup()


def test_template_defaults():
    t = D.xe("template-list", "name-label=" + TEMPLATE, "--minimal").strip()
    assert xenia.UUID_RE.match(t), t
    assert D.vm_param(t, "HVM-boot-policy") == "BIOS order"
    assert D.vm_param(t, "other-config", "xenia-cloud-init") == "nocloud"
    assert 'size="10737418240"' in D.vm_param(t, "other-config", "disks")


def install():
    vm = D.xe("vm-install", "template=" + TEMPLATE, "new-name-label=cloud1",
              "disk-size=1GiB").strip()
    assert xenia.UUID_RE.match(vm), vm
    vdi = D.xe("vbd-list", "vm-uuid=" + vm, "type=Disk", "params=vdi-uuid", "--minimal").strip()
    D.xe("vdi-import", "uuid=" + vdi, "filename=" + IMAGE, "format=qcow2", timeout=300)
    return vm


@xenia.time_limit(600)
def test_seed_sets_hostname_key_and_user_data():
    vm = install()
    # a bad host name: the start is refused and the VM stays halted
    D.xe("vm-param-set", "uuid=" + vm, "other-config:cloud-init-hostname=bad_name!")
    out = D.xe("vm-start", "uuid=" + vm, ok=False)
    assert out.error_code() == "INVALID_VALUE", out.stderr
    assert D.power_state(vm) == "halted"
    assert D.qemu_pids(vm) == []

    D.xe("vm-param-set", "uuid=" + vm, "other-config:cloud-init-hostname=web-42",
         "other-config:cloud-init-ssh-key=" + KEY)
    D.xe("vm-start", "uuid=" + vm)
    with D.console(vm) as c:
        c.wait_prompt(timeout=240)
        assert c.run("hostname") == "web-42"
        assert c.run("cat /root/.ssh/authorized_keys") == KEY
        user = c.run("cat /run/user-data")
        assert user.startswith("#cloud-config") and '"web-42"' in user and KEY in user, user
        assert 'instance-id: "%s"' % vm in c.run("cat /run/cidata/meta-data")
    D.xe("vm-shutdown", "uuid=" + vm, "--force")

    # changed keys apply at the next start; given user-data goes as it is
    D.xe("vm-param-set", "uuid=" + vm, "other-config:cloud-init-hostname=db-7",
         "other-config:cloud-init-user-data=#cloud-config\nruncmd: [touch, /x]\n")
    D.xe("vm-start", "uuid=" + vm)
    with D.console(vm) as c:
        c.wait_prompt(timeout=240)
        assert c.run("hostname") == "db-7"
        assert c.run("cat /run/user-data") == "#cloud-config\nruncmd: [touch, /x]"
    D.xe("vm-shutdown", "uuid=" + vm, "--force")
    # the seed goes with the VM
    seed = os.path.join(D.data_dir, "seeds", vm + ".iso")
    assert os.path.exists(seed)
    D.xe("vm-uninstall", "uuid=" + vm, "--force")
    assert not os.path.exists(seed)
