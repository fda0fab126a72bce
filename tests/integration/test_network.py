"""Virtual networks (issue 5): networks as bridges, VIFs as taps the daemon
makes and hands to QEMU, with real guests. Everything happens on bridges
the daemon makes; no test touches the machine's own interfaces."""

import os
import re
import subprocess

import xenia
from xenia import wait_for

D = None


def setup_module():
    global D
    D = xenia.Daemon(shutdown_timeout=10, name="net").start()


def teardown_module():
    D.cleanup()


def links():
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True,
                         check=True).stdout
    return {m.group(1): line for line in out.splitlines()
            for m in [re.match(r"\d+: ([^:@]+)", line)] if m}


def guest_up(vm, addr):
    """Start vm, bring its eth0 up with addr; its console."""
    D.xe("vm-start", "uuid=" + vm)
    c = D.console(vm)
    c.wait_prompt()
    c.run("ip link set eth0 up; ip addr add %s/24 dev eth0; echo ok" % addr)
    return c


def test_two_vms_on_a_private_network_ping_each_other():
    net = D.xe("network-create", "name-label=private").strip()
    assert xenia.UUID_RE.match(net), net
    bridge = D.xe("network-param-get", "uuid=" + net, "param-name=bridge").strip()
    assert re.match(r"xapi\d+$", bridge), bridge
    vms, macs = [], []
    for name in ("a", "b"):
        vm = D.install("net-" + name)
        vif = D.xe("vif-create", "vm-uuid=" + vm, "network-uuid=" + net, "device=0").strip()
        assert xenia.UUID_RE.match(vif), vif
        mac = D.xe("vif-param-get", "uuid=" + vif, "param-name=MAC").strip()
        # generated: locally administered, unicast
        assert re.match(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$", mac), mac
        assert int(mac[:2], 16) & 0x03 == 0x02, mac
        vms.append(vm)
        macs.append(mac)
    assert macs[0] != macs[1]
    ca = guest_up(vms[0], "10.77.0.1")
    cb = guest_up(vms[1], "10.77.0.2")
    try:
        # the taps are in the bridge, and QEMU holds them (not the daemon)
        have = links()
        for vm in vms:
            tap = "vif%s.0" % vm[:8]
            assert tap in have and ("master " + bridge) in have[tap], have.get(tap)
        assert ca.run("cat /sys/class/net/eth0/address") == macs[0]
        out = ca.run("ping -c 3 -W 5 10.77.0.2 >/dev/null && echo reached", timeout=60)
        assert out == "reached", out
        out = cb.run("ping -c 3 -W 5 10.77.0.1 >/dev/null && echo reached", timeout=60)
        assert out == "reached", out
        assert D.xe("vif-list", "vm-uuid=" + vms[0], "params=currently-attached",
                    "--minimal").strip() == "true"
    finally:
        ca.close()
        cb.close()
    # a network in use cannot go
    r = D.xe("network-destroy", "uuid=" + net, ok=False)
    assert r.error_code() == "NETWORK_CONTAINS_VIF", r.stderr
    for vm in vms:
        D.xe("vm-shutdown", "uuid=" + vm, "--force")
    # the taps went with their QEMUs
    wait_for(lambda: not any(("vif%s.0" % vm[:8]) in links() for vm in vms), 10,
             what="the taps gone")
    assert D.xe("vif-list", "vm-uuid=" + vms[0], "params=currently-attached",
                "--minimal").strip() == "false"
    for vm in vms:
        D.xe("vm-uninstall", "uuid=" + vm, "--force")
    assert D.xe("vif-list", "network-uuid=" + net, "--minimal").strip() == ""
    D.xe("network-destroy", "uuid=" + net)
    assert bridge not in links()


def test_bad_vifs_are_refused():
    net = D.xe("network-create", "name-label=checks").strip()
    vm = D.install("net-bad")
    first = D.xe("vif-create", "vm-uuid=" + vm, "network-uuid=" + net, "device=0",
                 "mac=02:00:00:00:00:01").strip()
    for args, code in ((["device=0"], "DEVICE_ALREADY_EXISTS"),
                       (["device=1", "mac=02:00:00:00:00:01"], "INVALID_VALUE"),
                       (["device=1", "mac=01:00:00:00:00:01"], "MAC_INVALID"),
                       (["device=1", "mac=nonsense"], "MAC_INVALID"),
                       (["device=99"], "INVALID_VALUE")):
        r = D.xe("vif-create", "vm-uuid=" + vm, "network-uuid=" + net, *args, ok=False)
        assert r.error_code() == code, (args, r.stderr)
    assert D.xe("vif-list", "vm-uuid=" + vm, "--minimal").strip() == first
    D.xe("vm-uninstall", "uuid=" + vm, "--force")
    D.xe("network-destroy", "uuid=" + net)


class Outside:
    """A veth pair as a physical NIC: the host end (`nic`, with addr) in
    the root namespace, the far end in a namespace of its own (`ns`, with
    peer), nothing routed off the machine."""

    def __init__(self, tag, addr, peer):
        self.ns, self.nic, self.far = "xn-%s" % tag, "xn%sh" % tag, "xn%sn" % tag
        self.addr, self.peer = addr, peer
        run = lambda *a: subprocess.run(a, check=True, capture_output=True, timeout=30)
        self.cleanup()
        run("ip", "netns", "add", self.ns)
        run("ip", "link", "add", self.nic, "type", "veth", "peer", "name", self.far)
        run("ip", "link", "set", self.far, "netns", self.ns)
        run("ip", "-n", self.ns, "link", "set", "lo", "up")
        run("ip", "-n", self.ns, "addr", "add", peer + "/24", "dev", self.far)
        run("ip", "-n", self.ns, "link", "set", self.far, "up")
        run("ip", "addr", "add", addr + "/24", "dev", self.nic)
        run("ip", "link", "set", self.nic, "up")

    def host_reaches_peer(self):
        return subprocess.run(["ping", "-c", "1", "-W", "2", self.peer],
                              capture_output=True, timeout=10).returncode == 0

    def cleanup(self):
        subprocess.run(["ip", "link", "del", self.nic], capture_output=True, timeout=30)
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True, timeout=30)


def addrs(dev):
    return subprocess.run(["ip", "-o", "-4", "addr", "show", "dev", dev], capture_output=True,
                          text=True, timeout=10).stdout


def test_a_bridged_nic_keeps_the_host_reachable_and_carries_guests():
    out = Outside("p1", "10.203.0.1", "10.203.0.2")
    vm = None
    try:
        host = D.xe("host-list", "--minimal").strip()
        D.xe("pif-scan", "host-uuid=" + host)
        pif = D.xe("pif-list", "device=" + out.nic, "--minimal").strip()
        assert xenia.UUID_RE.match(pif), pif
        assert D.xe("pif-param-get", "uuid=" + pif, "param-name=MAC").strip() == \
            open("/sys/class/net/%s/address" % out.nic).read().strip()
        assert D.xe("pif-param-get", "uuid=" + pif, "param-name=IP").strip() == out.addr
        # eth0 is recorded, as the management interface, and left alone
        eth0 = D.xe("pif-list", "device=eth0", "params=management", "--minimal").strip()
        assert eth0 in ("true", ""), eth0
        net = D.xe("pif-param-get", "uuid=" + pif, "param-name=network-uuid").strip()
        bridge = D.xe("network-param-get", "uuid=" + net, "param-name=bridge").strip()
        assert re.match(r"xenbr\d+$", bridge), bridge
        assert out.host_reaches_peer()
        D.xe("pif-plug", "uuid=" + pif)
        # the address moved to the bridge, the NIC is in it, the host still reaches out
        assert out.addr in addrs(bridge) and out.addr not in addrs(out.nic)
        assert ("master " + bridge) in links()[out.nic]
        assert out.host_reaches_peer()
        # a guest on the network is on the NIC's segment
        vm = D.install("net-ext")
        D.xe("vif-create", "vm-uuid=" + vm, "network-uuid=" + net, "device=0")
        c = guest_up(vm, "10.203.0.7")
        try:
            got = c.run("ping -c 3 -W 5 %s >/dev/null && echo reached" % out.peer, timeout=60)
            assert got == "reached", got
        finally:
            c.close()
        D.xe("vm-shutdown", "uuid=" + vm, "--force")
        D.xe("pif-unplug", "uuid=" + pif)
        assert out.addr in addrs(out.nic) and "master" not in links()[out.nic]
        assert out.host_reaches_peer()
        # forgotten, its network and bridge can go
        D.xe("vm-uninstall", "uuid=" + vm, "--force")
        vm = None
        assert D.xe("network-destroy", "uuid=" + net, ok=False).error_code() == \
            "NETWORK_CONTAINS_PIF"
        D.xe("pif-forget", "uuid=" + pif)
        D.xe("network-destroy", "uuid=" + net)
        assert bridge not in links()
    finally:
        if vm:
            D.xe_run("vm-uninstall", "uuid=" + vm, "--force")
        out.cleanup()


def kernel_has(option):
    """Whether the running kernel was built with option (y or m)."""
    try:
        import gzip
        with gzip.open("/proc/config.gz", "rt") as f:
            return any(line.startswith(option + "=") for line in f)
    except OSError:
        return os.path.exists("/sys/module/" + option.split("_")[-1].lower())


def counts(*classes):
    return tuple(len([x for x in D.xe(c + "-list", "--minimal").strip().split(",") if x])
                 for c in classes)


def test_vlans_and_bonds_check_everything_first():
    a = Outside("v1", "10.204.0.1", "10.204.0.2")
    b = Outside("v2", "10.205.0.1", "10.205.0.2")
    try:
        host = D.xe("host-list", "--minimal").strip()
        D.xe("pif-scan", "host-uuid=" + host)
        pa = D.xe("pif-list", "device=" + a.nic, "--minimal").strip()
        pb = D.xe("pif-list", "device=" + b.nic, "--minimal").strip()
        net = D.xe("network-create", "name-label=vlan10").strip()
        before = counts("vlan", "bond", "pif", "network")
        for tag in ("0", "4095", "-3"):
            r = D.xe("vlan-create", "network-uuid=" + net, "pif-uuid=" + pa, "vlan=" + tag,
                     ok=False)
            assert r.error_code() == "VLAN_TAG_INVALID", (tag, r.stderr)
        own = D.xe("pif-param-get", "uuid=" + pa, "param-name=network-uuid").strip()
        r = D.xe("vlan-create", "network-uuid=" + own, "pif-uuid=" + pb, "vlan=10", ok=False)
        assert r.error_code() == "NETWORK_ALREADY_CONNECTED", r.stderr
        r = D.xe("bond-create", "network-uuid=" + net, "pif-uuids=" + pa, ok=False)
        assert r.error_code() == "PIF_BOND_NEEDS_MORE_MEMBERS", r.stderr
        r = D.xe("bond-create", "network-uuid=" + net, "pif-uuids=%s,%s" % (pa, pb),
                 "mode=round-robin", ok=False)
        assert r.error_code() == "INVALID_VALUE", r.stderr
        assert counts("vlan", "bond", "pif", "network") == before
        have = set(links())
        r = D.xe("vlan-create", "network-uuid=" + net, "pif-uuid=" + pa, "vlan=10",
                 ok=kernel_has("CONFIG_VLAN_8021Q"))
        if kernel_has("CONFIG_VLAN_8021Q"):
            vlan = r.strip()
            dev = "%s.10" % a.nic
            assert dev in links() and D.xe("vlan-param-get", "uuid=" + vlan,
                                            "param-name=tag").strip() == "10"
            D.xe("vlan-destroy", "uuid=" + vlan)
            assert dev not in links()
        else:
            # this kernel has no 8021q: a clear error, nothing made
            assert "vlan" in r.stderr.lower() and "kernel" in r.stderr.lower(), r.stderr
            assert set(links()) == have
        assert counts("vlan", "bond", "pif", "network") == before
        r = D.xe("bond-create", "network-uuid=" + net, "pif-uuids=%s,%s" % (pa, pb),
                 "mode=active-backup", ok=kernel_has("CONFIG_BONDING"))
        if kernel_has("CONFIG_BONDING"):
            bond = r.strip()
            for p in (pa, pb):
                r = D.xe("bond-create", "network-uuid=" + net, "pif-uuids=%s,%s" % (pa, pb),
                         ok=False)
                assert r.error_code() in ("PIF_ALREADY_BONDED", "NETWORK_ALREADY_CONNECTED")
            D.xe("bond-destroy", "uuid=" + bond)
        else:
            assert "bond" in r.stderr.lower() and "kernel" in r.stderr.lower(), r.stderr
            assert set(links()) == have
            # the members are untouched
            assert "master" not in links()[a.nic] and a.host_reaches_peer()
        assert counts("vlan", "bond", "pif", "network") == before
        D.xe("network-destroy", "uuid=" + net)
    finally:
        a.cleanup()
        b.cleanup()
