"""A new VM from an OVA/OVF package or a bare disk image: `xe vm-import
filename=X.ova|.qcow2|.vmdk|.vhd|.img [format=]`, PUT /import_image.

One daemon for the module. Packages are built here with Python's tarfile
and a vmdk made by `qemu-img convert -O vmdk` from the Tiny Linux disk;
they must import with the described name, vCPUs, memory, disks and NICs
and boot by BIOS to a shell. Bad input (a manifest digest that does not
match, a required element this host does not know, a vmdk whose extent
points at a host file, members with paths) must be refused with a clear
XenAPI error, leaving no VM, no VDI, no file behind."""

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
MiB = 1 << 20
OVF_NS = "http://schemas.dmtf.org/ovf/envelope/1"
RASD = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"


def setup_module():
    global D, TMP
    D = xenia.Daemon(name="ova").start()
    TMP = tempfile.mkdtemp(prefix="xenia-ova-test-")


def teardown_module():
    D.cleanup()
    shutil.rmtree(TMP, ignore_errors=True)


def path(name):
    return os.path.join(TMP, name)


def tiny(fmt, name=None):
    """The Tiny Linux disk converted to fmt (cached)."""
    out = path(name or "tiny." + fmt)
    if not os.path.exists(out):
        src = os.path.join(xenia.BUILD, "images", "tiny-linux", "disk.qcow2")
        qfmt = {"vhd": "vpc", "img": "raw"}.get(fmt, fmt)
        opts = ["-o", "subformat=streamOptimized"] if fmt == "vmdk" else []
        subprocess.run(["qemu-img", "convert", "-O", qfmt] + opts + [src, out],
                       check=True, capture_output=True, timeout=300)
    return out


def state():
    vms = set(D.api("VM.get_all"))
    vdis = set(D.api("VDI.get_all"))
    files = set(os.listdir(D.sr_dir()))
    return vms, vdis, files


def assert_unchanged(before):
    wait_for(lambda: state() == before, 30, what="the SR and the VM list as before")
    transfer = os.path.join(D.data_dir, "transfer")
    wait_for(lambda: not [f for f in os.listdir(transfer) if f.startswith("import-")], 30,
             what="no spool left")


def refused(archive, code, words, *extra):
    before = state()
    out = D.xe("vm-import", "filename=" + archive, *extra, ok=False, timeout=300)
    assert out.error_code() == code, out.stderr
    assert words in (out.error_params() or ""), out.error_params()
    assert_unchanged(before)
    return out


def boots(vm):
    D.xe("vm-start", "uuid=" + vm)
    with D.console(vm) as c:
        c.wait_prompt(timeout=180)
        out = c.run("cat /proc/cmdline >/dev/null; echo booted", timeout=60)
    D.xe("vm-shutdown", "uuid=" + vm, "--force")
    wait_for(lambda: D.power_state(vm) == "halted", 60, what="VM halted")
    return out == "booted"


def ovf(disks=(("disk1.vmdk", 1 << 30),), vcpus=2, mem_mib=192, nics=("VM Network",),
        extra=""):
    refs = "".join('<File ovf:id="f%d" ovf:href="%s"/>' % (i, f)
                   for i, (f, _) in enumerate(disks))
    dsec = "".join('<Disk ovf:diskId="d%d" ovf:fileRef="f%d" ovf:capacity="%d" '
                   'ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html"/>'
                   % (i, i, cap) for i, (_, cap) in enumerate(disks))
    items = ("<Item><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>3</rasd:ResourceType>"
             "<rasd:VirtualQuantity>%d</rasd:VirtualQuantity></Item>"
             "<Item><rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits>"
             "<rasd:InstanceID>2</rasd:InstanceID><rasd:ResourceType>4</rasd:ResourceType>"
             "<rasd:VirtualQuantity>%d</rasd:VirtualQuantity></Item>" % (vcpus, mem_mib))
    items += "".join("<Item><rasd:Connection>%s</rasd:Connection><rasd:InstanceID>%d"
                     "</rasd:InstanceID><rasd:ResourceType>10</rasd:ResourceType></Item>"
                     % (n, 10 + i) for i, n in enumerate(nics))
    items += "".join("<Item><rasd:HostResource>ovf:/disk/d%d</rasd:HostResource>"
                     "<rasd:InstanceID>%d</rasd:InstanceID><rasd:ResourceType>17"
                     "</rasd:ResourceType></Item>" % (i, 20 + i) for i in range(len(disks)))
    return ('<?xml version="1.0"?><Envelope xmlns="%s" xmlns:ovf="%s" xmlns:rasd="%s" '
            'xmlns:vbox="http://www.virtualbox.org/ovf/machine">'
            '<References>%s</References><DiskSection><Info>disks</Info>%s</DiskSection>'
            '<NetworkSection><Info>nets</Info><Network ovf:name="VM Network"/></NetworkSection>'
            '<VirtualSystem ovf:id="vm"><Info>a VM</Info><Name>from-ova</Name>'
            '<OperatingSystemSection ovf:id="96"><Info>os</Info></OperatingSystemSection>'
            '<VirtualHardwareSection><Info>hw</Info>%s</VirtualHardwareSection>%s'
            '<vbox:Machine ovf:required="false" version="1.16"><x/></vbox:Machine>'
            '</VirtualSystem></Envelope>'
            % (OVF_NS, OVF_NS, RASD, refs, dsec, items, extra)).encode()


def make_ova(out, desc, files, manifest=True, corrupt=None, extra_members=()):
    """An OVA: descriptor, manifest (SHA-256 lines; corrupt= names a file
    whose digest is wrong), then the files (name -> path)."""
    def add(t, name, data=None, src=None):
        info = tarfile.TarInfo(name)
        info.size = len(data) if data is not None else os.path.getsize(src)
        if data is not None:
            t.addfile(info, io.BytesIO(data))
        else:
            with open(src, "rb") as f:
                t.addfile(info, f)
    digests = {"vm.ovf": hashlib.sha256(desc).hexdigest()}
    for name, src in files.items():
        with open(src, "rb") as f:
            digests[name] = hashlib.sha256(f.read()).hexdigest()
    if corrupt:
        digests[corrupt] = "0" * 64
    mf = "".join("SHA256(%s)= %s\n" % kv for kv in digests.items()).encode()
    with tarfile.open(out, "w", format=tarfile.USTAR_FORMAT) as t:
        add(t, "vm.ovf", desc)
        if manifest:
            add(t, "vm.mf", mf)
        for name, src in files.items():
            add(t, name, src=src)
        for m in extra_members:
            t.addfile(m[0], m[1])
    return out


# ---- imports that work ---------------------------------------------------------------

def test_ova_with_vmdk_imports_with_its_settings_and_boots():
    a = make_ova(path("good.ova"), ovf(disks=(("disk1.vmdk", 1 << 30), ("data.vmdk", 64 * MiB)),
                                       nics=("VM Network", "Backup")),
                 {"disk1.vmdk": tiny("vmdk"), "data.vmdk": tiny("vmdk", "data.vmdk")})
    vm = D.xe("vm-import", "filename=" + a).strip()
    assert D.vm_param(vm, "name-label") == "from-ova"
    assert D.vm_param(vm, "VCPUs-max") == "2"
    assert D.vm_param(vm, "memory-static-max") == str(192 * MiB)
    vbds = D.xe("vbd-list", "vm-uuid=" + vm, "type=Disk", "params=userdevice",
                "--minimal").strip().split(",")
    assert sorted(vbds) == ["0", "1"]
    nets = D.xe("vif-list", "vm-uuid=" + vm, "params=network-uuid",
                "--minimal").strip().split(",")
    names = [D.xe("network-param-get", "uuid=" + n, "param-name=name-label").strip()
             for n in nets]
    assert sorted(names) == ["Backup", "VM Network"], names
    # the data disk was declared smaller than its image: it fits the image
    sizes = sorted(int(D.xe("vdi-param-get", "uuid=" + v, "param-name=virtual-size").strip())
                   for v in D.xe("vbd-list", "vm-uuid=" + vm, "type=Disk", "params=vdi-uuid",
                                 "--minimal").strip().split(","))
    assert sizes == [1 << 30, 1 << 30], sizes
    assert boots(vm)
    D.xe("vm-uninstall", "uuid=" + vm, "--force")


def test_bare_disk_images_import_and_boot():
    for fmt in ("qcow2", "vhd", "vmdk", "img"):
        vm = D.xe("vm-import", "filename=" + tiny(fmt), "name-label=bare-" + fmt).strip()
        assert D.vm_param(vm, "name-label") == "bare-" + fmt
        vdi = D.xe("vbd-list", "vm-uuid=" + vm, "type=Disk", "params=vdi-uuid",
                   "--minimal").strip()
        # vhd rounds to its disk geometry
        size = int(D.xe("vdi-param-get", "uuid=" + vdi, "param-name=virtual-size"))
        assert 1 << 30 <= size < (1 << 30) + 4 * MiB, (fmt, size)
        loc = D.xe("vdi-param-get", "uuid=" + vdi, "param-name=location").strip()
        r = subprocess.run(["qemu-img", "compare", "-U", tiny("qcow2"),
                            os.path.join(D.sr_dir(), loc + ".qcow2")],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, (fmt, r.stdout + r.stderr)
        if fmt == "vhd":   # one full boot is enough: the others compared their bytes
            assert boots(vm)
        D.xe("vm-uninstall", "uuid=" + vm, "--force")


# ---- bad input -------------------------------------------------------------------------

def test_manifest_mismatch_is_refused():
    a = make_ova(path("badmf.ova"), ovf(), {"disk1.vmdk": tiny("vmdk")}, corrupt="disk1.vmdk")
    refused(a, "IMPORT_ERROR_GENERIC", "digest mismatch")


def test_required_unknown_element_is_refused_and_optional_one_ignored():
    bad = ovf(extra='<x:Magic xmlns:x="urn:example:magic"><x:y/></x:Magic>')
    a = make_ova(path("required.ova"), bad, {"disk1.vmdk": tiny("vmdk")})
    refused(a, "IMPORT_ERROR_GENERIC", "Magic")
    bad = ovf(extra='<FutureSection ovf:required="true"><Info>?</Info></FutureSection>')
    a = make_ova(path("required2.ova"), bad, {"disk1.vmdk": tiny("vmdk")})
    refused(a, "IMPORT_ERROR_GENERIC", "FutureSection")
    # the same element marked optional imports (the vbox:Machine one always is)
    ok = ovf(extra='<x:Magic xmlns:x="urn:example:magic" ovf:required="false"/>')
    a = make_ova(path("optional.ova"), ok, {"disk1.vmdk": tiny("vmdk")})
    vm = D.xe("vm-import", "filename=" + a).strip()
    D.xe("vm-uninstall", "uuid=" + vm, "--force")


def test_vmdk_extent_pointing_outside_is_refused():
    secret = path("secret.bin")
    with open(secret, "wb") as f:
        f.write(b"host secret\n" * 4096)
    desc = ('# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n'
            'createType="monolithicFlat"\nRW 96 FLAT "%s" 0\n'
            'ddb.adapterType = "ide"\n' % secret).encode()
    flat = path("flat.vmdk")
    with open(flat, "wb") as f:
        f.write(desc)
    a = make_ova(path("flat.ova"), ovf(), {"disk1.vmdk": flat})
    refused(a, "IMPORT_ERROR_GENERIC", "vmdk")
    # the same descriptor uploaded as a bare disk
    refused(flat, "IMPORT_ERROR_GENERIC", "vmdk")


def test_members_with_paths_or_links_are_refused():
    link = tarfile.TarInfo("disk1.vmdk")
    link.type = tarfile.SYMTYPE
    link.linkname = "/etc/shadow"
    a = make_ova(path("link.ova"), ovf(), {}, manifest=False, extra_members=[(link, None)])
    refused(a, "IMPORT_ERROR_GENERIC", "plain file")
    dotdot = tarfile.TarInfo("../escape.vmdk")
    dotdot.size = 4
    a = make_ova(path("dotdot.ova"), ovf(), {"disk1.vmdk": tiny("vmdk")},
                 extra_members=[(dotdot, io.BytesIO(b"evil"))])
    refused(a, "IMPORT_ERROR_GENERIC", "plain file")
    assert not os.path.exists(os.path.join(D.data_dir, "transfer", "escape.vmdk"))


def test_qcow2_with_backing_file_and_unknown_format_are_refused():
    top = path("top.qcow2")
    subprocess.run(["qemu-img", "create", "-f", "qcow2", "-F", "qcow2", "-b", tiny("qcow2"),
                    top], check=True, capture_output=True)
    refused(top, "IMPORT_ERROR_GENERIC", "backing file")
    refused(tiny("qcow2"), "VDI_INCOMPATIBLE_TYPE", "iso", "format=iso")


def test_huge_declared_disk_is_refused():
    a = make_ova(path("huge.ova"), ovf(disks=(("disk1.vmdk", 10 << 40),)),
                 {"disk1.vmdk": tiny("vmdk")})
    refused(a, "SR_FULL", "")
