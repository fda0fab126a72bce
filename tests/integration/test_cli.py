"""xe against a fresh daemon, no guest booted: listing, installing,
reading and setting parameters, host information, uninstall, help.
One daemon for the module; each test installs the VMs it needs."""

import os
import re

import xenia
from xenia import UUID_RE

D = None


def setup_module():
    global D
    D = xenia.Daemon(name="cli").start()


def teardown_module():
    D.cleanup()


def expected_engine():
    """kvm only with hardware virtualisation and a usable /dev/kvm."""
    with open("/proc/cpuinfo") as f:
        flags = set(f.read().split())
    if not flags & {"vmx", "svm"}:
        return "tcg"
    try:
        os.close(os.open("/dev/kvm", os.O_RDWR))
        return "kvm"
    except OSError:
        return "tcg"


def test_host_list_shows_one_host():
    out = D.xe("host-list")
    uuids = re.findall(r"^uuid \( RO\)\s*: (\S+)$", out, re.M)
    assert len(uuids) == 1 and UUID_RE.match(uuids[0]), out
    assert re.search(r"^\s*name-label \( RW\): \S", out, re.M), out
    assert D.xe("host-list", "--minimal").strip() == uuids[0]


def test_template_list_has_tiny_linux():
    out = D.xe("template-list", "params=name-label")
    names = [r[0] for r in xenia.records(out, "name-label")]
    assert "Tiny Linux" in names, out
    # templates are not VMs: vm-list must not show them
    assert "Tiny Linux" not in D.xe("vm-list", "params=name-label")


def test_vm_install_and_list():
    uuid = D.install("cli-list")
    # a new VM is halted and shows up in vm-list with the asked columns
    out = D.xe("vm-list", "params=name-label,power-state")
    assert ("cli-list", "halted") in xenia.records(out, "name-label", "power-state"), out
    # params= picks only those columns
    assert "uuid" not in out, out
    # --minimal: the uuids alone, comma-separated
    minimal = D.xe("vm-list", "--minimal").strip()
    assert "\n" not in minimal and uuid in minimal.split(","), minimal
    assert D.xe("vm-list", "name-label=cli-list", "--minimal").strip() == uuid
    assert D.xe("vm-list", "uuid=" + uuid, "params=name-label", "--minimal").strip() == "cli-list"
    # a filter that matches nothing prints nothing
    assert D.xe("vm-list", "name-label=no-such-vm", "--minimal").strip() == ""
    # two installs give two different VMs
    other = D.install("cli-list")
    assert other != uuid
    assert sorted(D.xe("vm-list", "name-label=cli-list", "--minimal").strip().split(",")) == \
        sorted([uuid, other])


def test_vm_param_list_and_get():
    uuid = D.install("cli-params")
    fields = xenia.param_list(D.xe("vm-param-list", "uuid=" + uuid))
    assert fields.get("uuid") == uuid, fields
    assert fields.get("name-label") == "cli-params", fields
    assert fields.get("power-state") == "halted", fields
    for f in ("memory-static-max", "VCPUs-max", "allowed-operations", "actions-after-crash"):
        assert f in fields, "vm-param-list lacks %s" % f
    assert D.vm_param(uuid, "name-label") == "cli-params"
    assert D.vm_param(uuid, "power-state") == "halted"
    assert D.vm_param(uuid, "is-a-template") == "false"
    # a freshly installed VM can be started (allowed-operations follows
    # is-a-template, which vm-install clears)
    assert "start" in D.allowed_ops(uuid), D.vm_param(uuid, "allowed-operations")
    # the record shows which fields are writable
    text = D.xe("vm-param-list", "uuid=" + uuid)
    assert re.search(r"^\s*name-label \( RW\): cli-params$", text, re.M), text
    assert re.search(r"^\s*power-state \( RO\): halted$", text, re.M), text


def test_vm_param_set_reads_back():
    uuid = D.install("cli-set")
    D.xe("vm-param-set", "uuid=" + uuid, "name-description=front end", "VCPUs-max=2",
         "VCPUs-at-startup=2", "memory-static-max=512MiB", "memory-dynamic-max=512MiB")
    assert D.vm_param(uuid, "name-description") == "front end"
    assert D.vm_param(uuid, "VCPUs-max") == "2"
    assert D.vm_param(uuid, "VCPUs-at-startup") == "2"
    assert D.vm_param(uuid, "memory-static-max") == str(512 << 20)
    assert D.vm_param(uuid, "memory-dynamic-max") == str(512 << 20)
    # and the values are what the API returns too
    ref = D.api("VM.get_by_uuid", uuid)
    rec = D.api("VM.get_record", ref)
    assert rec["name_description"] == "front end"
    assert int(rec["memory_static_max"]) == 512 << 20
    assert int(rec["VCPUs_max"]) == 2 and int(rec["VCPUs_at_startup"]) == 2
    # other size suffixes, all powers of 1024
    D.xe("vm-param-set", "uuid=" + uuid, "memory-dynamic-max=262144KiB")
    assert D.vm_param(uuid, "memory-dynamic-max") == str(256 << 20)
    # the change survives a daemon restart (it is stored, not cached)
    D.restart()
    assert D.vm_param(uuid, "name-description") == "front end"
    assert D.vm_param(uuid, "memory-static-max") == str(512 << 20)


def test_host_param_list_shows_engine():
    host = D.xe("host-list", "--minimal").strip()
    fields = xenia.param_list(D.xe("host-param-list", "uuid=" + host))
    sv = fields.get("software-version", "")
    engine = expected_engine()
    assert "engine: " + engine in sv, "software-version %r lacks engine: %s" % (sv, engine)
    assert D.xe("host-param-get", "uuid=" + host, "param-name=software-version",
                "param-key=engine").strip() == engine


def test_vm_uninstall_removes_vm_and_disk():
    uuid = D.install("cli-uninstall")
    vdis = [v for v in D.xe("vbd-list", "vm-uuid=" + uuid, "params=vdi-uuid",
                            "--minimal").strip().split(",") if v]
    assert len(vdis) == 1, "expected one disk, vbd-list says %s" % vdis
    sr = D.sr_dir()
    files = os.listdir(sr)
    mine = [f for f in files if f.startswith(vdis[0])]
    assert mine, "no file for VDI %s in %s: %s" % (vdis[0], sr, files)
    others = set(files) - set(mine)
    D.xe("vm-uninstall", "uuid=" + uuid, "--force")
    assert uuid not in D.xe("vm-list", "--minimal")
    assert vdis[0] not in D.xe("vdi-list", "--minimal")
    left = set(os.listdir(sr))
    assert not left & set(mine), "disk file(s) %s left in %s" % (left & set(mine), sr)
    # other VMs' disks and the template's disk stay
    assert others <= left, "uninstall removed other files: %s" % (others - left)
    # the template still installs (its disk was not taken away)
    D.xe("vm-uninstall", "uuid=" + D.install("cli-after-uninstall"), "--force")


def test_help():
    out = D.xe("help")
    for cmd in ("vm-install", "vm-start", "vm-list", "console"):
        assert cmd in out, "xe help does not list %s:\n%s" % (cmd, out)
    one = D.xe("help", "vm-install")
    assert "new-name-label" in one and "template" in one, one
    every = D.xe("help", "--all")
    assert "vm-param-set" in every and len(every) > len(out)
    bad = D.xe("help", "no-such-command", ok=False)
    assert "no-such-command" in bad.stderr, bad.stderr
    bad = D.xe("no-such-command", ok=False)
    assert "Unknown command" in bad.stderr, bad.stderr
