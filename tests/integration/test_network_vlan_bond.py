"""VLANs and bonds with real guests (issue 5). Physical NICs are veth
pairs whose far ends are in a network namespace of the test's own: the
"switch". It sees the frames as a switch port would (rawframes.py, run
inside the namespace), and for bonds it is a bridge joining both
members' far ends. Nothing is routed off the machine."""

import json
import os
import subprocess
import sys

import xenia
from xenia import wait_for

D = None
RAW = os.path.join(os.path.dirname(os.path.abspath(__file__)), "rawframes.py")


def setup_module():
    global D
    D = xenia.Daemon(shutdown_timeout=10, name="vlan").start()


def teardown_module():
    D.cleanup()


links = xenia.host_links


def run(*a):
    return subprocess.run(a, check=True, capture_output=True, text=True, timeout=30)


class Switch:
    """Namespace ns with one veth pair per NIC: host end `<ns>h<i>`, far
    end `<ns>n<i>` in the namespace; with bridged=True the far ends are
    in one bridge there (forward delay 0), which has address addr."""

    def __init__(self, ns, n, bridged=False, addr=None):
        self.ns = ns
        self.nics = ["%sh%d" % (ns, i) for i in range(n)]
        self.fars = ["%sn%d" % (ns, i) for i in range(n)]
        self.cleanup()
        run("ip", "netns", "add", ns)
        run("ip", "-n", ns, "link", "set", "lo", "up")
        if bridged:
            run("ip", "-n", ns, "link", "add", "br0", "type", "bridge", "forward_delay", "0")
            run("ip", "-n", ns, "link", "set", "br0", "up")
            run("ip", "-n", ns, "addr", "add", addr + "/24", "dev", "br0")
        for nic, far in zip(self.nics, self.fars):
            run("ip", "link", "add", nic, "type", "veth", "peer", "name", far)
            run("ip", "link", "set", far, "netns", ns)
            if bridged:
                run("ip", "-n", ns, "link", "set", far, "master", "br0")
            run("ip", "-n", ns, "link", "set", far, "up")
            run("ip", "link", "set", nic, "up")

    def far_link(self, i, up):
        run("ip", "-n", self.ns, "link", "set", self.fars[i], "up" if up else "down")

    def raw(self, *args, seconds):
        """rawframes.py inside the namespace: its JSON lines."""
        out = subprocess.run(["ip", "netns", "exec", self.ns, sys.executable, RAW] +
                             [str(a) for a in args] + [str(seconds)], capture_output=True, text=True,
                             timeout=seconds + 20, check=True).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def sniff(self, i, seconds):
        """Start sniffing far end i; .communicate() gives its frames."""
        return subprocess.Popen(["ip", "netns", "exec", self.ns, sys.executable, RAW, "sniff",
                                 self.fars[i], str(seconds)], stdout=subprocess.PIPE, text=True)

    def cleanup(self):
        for nic in self.nics:
            subprocess.run(["ip", "link", "del", nic], capture_output=True, timeout=30)
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True, timeout=30)


def pif_of(dev):
    host = D.xe("host-list", "--minimal").strip()
    D.xe("pif-scan", "host-uuid=" + host)
    pif = D.xe("pif-list", "device=" + dev, "--minimal").strip()
    assert xenia.UUID_RE.match(pif), (dev, pif)
    return pif


def guest_on(net, name, addr):
    """A started VM with one VIF on net, eth0 at addr/24: (vm, console, mac)."""
    vm = D.install(name)
    vif = D.xe("vif-create", "vm-uuid=" + vm, "network-uuid=" + net, "device=0").strip()
    mac = D.xe("vif-param-get", "uuid=" + vif, "param-name=MAC").strip()
    D.xe("vm-start", "uuid=" + vm)
    c = D.console(vm)
    c.wait_prompt()
    c.run("ip link set eth0 up; ip addr add %s/24 dev eth0; echo ok" % addr)
    return vm, c, mac


def pings(c, addr, count=3):
    return c.run("ping -c %d -W 3 %s >/dev/null && echo reached || echo lost"
                 % (count, addr), timeout=60) == "reached"


def test_guests_on_two_vlans_over_one_nic_are_isolated_and_tagged():
    sw = Switch("xvl", 1)
    vms, consoles = [], []
    try:
        pif = pif_of(sw.nics[0])
        nets, vlans = {}, {}
        for tag in (10, 20):
            nets[tag] = D.xe("network-create", "name-label=vlan%d" % tag).strip()
            vlans[tag] = D.xe("vlan-create", "network-uuid=" + nets[tag], "pif-uuid=" + pif,
                              "vlan=%d" % tag).strip()
            assert xenia.UUID_RE.match(vlans[tag]), vlans[tag]
            assert D.xe("vlan-param-get", "uuid=" + vlans[tag], "param-name=tag").strip() == \
                str(tag)
            untagged = D.xe("vlan-param-get", "uuid=" + vlans[tag],
                            "param-name=untagged-PIF").strip()
            assert D.xe("pif-param-get", "uuid=" + untagged, "param-name=VLAN").strip() == \
                str(tag)
            port = D.xe("pif-param-get", "uuid=" + untagged, "param-name=device").strip()
            bridge = D.xe("network-param-get", "uuid=" + nets[tag], "param-name=bridge").strip()
            assert ("master " + bridge) in links()[port], links().get(port)
        # the same tag twice on one PIF is refused, nothing made
        r = D.xe("vlan-create", "network-uuid=" + nets[10], "pif-uuid=" + pif, "vlan=10",
                 ok=False)
        assert r.error_code() in ("PIF_VLAN_EXISTS", "NETWORK_ALREADY_CONNECTED"), r.stderr
        # a and c on VLAN 10, b on VLAN 20, all three in one IP subnet
        a, ca, mac_a = guest_on(nets[10], "vlan-a", "10.78.0.1")
        vms.append(a), consoles.append(ca)
        b, cb, mac_b = guest_on(nets[20], "vlan-b", "10.78.0.2")
        vms.append(b), consoles.append(cb)
        c, cc, mac_c = guest_on(nets[10], "vlan-c", "10.78.0.3")
        vms.append(c), consoles.append(cc)
        assert pings(ca, "10.78.0.3")
        assert not pings(ca, "10.78.0.2", count=2)  # another VLAN: unreachable
        assert not pings(cb, "10.78.0.3", count=2)
        # on the wire: a's and b's broadcasts carry their own tags
        sniff = sw.sniff(0, 8)
        ca.run("ping -c 3 -W 1 10.78.0.99 >/dev/null; echo done", timeout=30)
        cb.run("ping -c 3 -W 1 10.78.0.98 >/dev/null; echo done", timeout=30)
        seen = [json.loads(line) for line in sniff.communicate(timeout=30)[0].splitlines()]
        tags = {(f["src"], f["tag"]) for f in seen}
        assert (mac_a, 10) in tags and (mac_b, 20) in tags, seen
        assert not any(f["src"] in (mac_a, mac_b, mac_c) and f["tag"] == 0 for f in seen), seen
        # from the wire: an ARP request tagged 10 is answered by a, tagged 10;
        # tagged 20 it reaches b's VLAN, where nobody has a's address
        got = sw.raw("arp", sw.fars[0], 10, "10.78.0.50", "10.78.0.1", seconds=3)
        assert [(f["src"], f["tag"]) for f in got] == [(mac_a, 10)], got
        assert sw.raw("arp", sw.fars[0], 20, "10.78.0.50", "10.78.0.1", seconds=2) == []
        got = sw.raw("arp", sw.fars[0], 20, "10.78.0.50", "10.78.0.2", seconds=3)
        assert [(f["src"], f["tag"]) for f in got] == [(mac_b, 20)], got
        assert sw.raw("arp", sw.fars[0], 0, "10.78.0.50", "10.78.0.1", seconds=2) == []
        # a VLAN in use stays
        r = D.xe("vlan-destroy", "uuid=" + vlans[10], ok=False)
        assert r.error_code() == "VIF_IN_USE", r.stderr
        # after a daemon restart (kill -9) the VLANs still carry traffic
        D.kill9()
        D.start()
        got = sw.raw("arp", sw.fars[0], 10, "10.78.0.50", "10.78.0.3", seconds=3)
        assert [(f["src"], f["tag"]) for f in got] == [(mac_c, 10)], got
        for con in consoles:
            con.close()
        consoles = []
        for vm in vms:
            D.xe("vm-uninstall", "uuid=" + vm, "--force")
        vms = []
        have = set(links())
        for tag in (10, 20):
            D.xe("vlan-destroy", "uuid=" + vlans[tag])
            D.xe("network-destroy", "uuid=" + nets[tag])
        gone = have - set(links())
        assert {"%s.10" % sw.nics[0], "%s.20" % sw.nics[0]} <= gone, gone
        assert D.xe("vlan-list", "--minimal").strip() == ""
    finally:
        for con in consoles:
            con.close()
        for vm in vms:
            D.xe_run("vm-uninstall", "uuid=" + vm, "--force")
        sw.cleanup()


def links_up(bond):
    return int(D.xe("bond-param-get", "uuid=" + bond, "param-name=links-up").strip())


def test_a_bond_keeps_traffic_flowing_when_a_member_goes_down():
    sw = Switch("xbd", 2, bridged=True, addr="10.79.0.2")
    vm = con = bond = None
    try:
        p0, p1 = pif_of(sw.nics[0]), pif_of(sw.nics[1])
        net = D.xe("network-create", "name-label=bonded").strip()
        bond = D.xe("bond-create", "network-uuid=" + net, "pif-uuids=%s,%s" % (p0, p1),
                    "mode=active-backup").strip()
        assert xenia.UUID_RE.match(bond), bond
        assert links_up(bond) == 2
        for p in (p0, p1):
            assert D.xe("pif-param-get", "uuid=" + p, "param-name=bond-slave-of").strip() == bond
        # a member cannot join a second bond
        net2 = D.xe("network-create", "name-label=bonded2").strip()
        r = D.xe("bond-create", "network-uuid=" + net2, "pif-uuids=%s,%s" % (p0, p1),
                 ok=False)
        assert r.error_code() == "PIF_ALREADY_BONDED", r.stderr
        D.xe("network-destroy", "uuid=" + net2)
        vm, con, mac = guest_on(net, "bond-vm", "10.79.0.7")
        # the first answer may wait for ARP and the switch's learning on a busy host
        wait_for(lambda: pings(con, "10.79.0.2"), 60, what="the guest reaching the switch")
        # the primary's link goes: the other member takes over
        sw.far_link(0, False)
        wait_for(lambda: links_up(bond) == 1, 10, what="links-up 1")
        assert pings(con, "10.79.0.2")
        # back, then the other goes (the daemon killed in between)
        sw.far_link(0, True)
        wait_for(lambda: links_up(bond) == 2, 10, what="links-up 2")
        D.kill9()
        sw.far_link(1, False)
        con.close()
        D.start()
        wait_for(lambda: links_up(bond) == 1, 10, what="links-up 1 after a restart")
        con = D.console(vm)
        con.run("echo ok")
        assert pings(con, "10.79.0.2")
        sw.far_link(1, True)
        con.close()
        con = None
        D.xe("vm-uninstall", "uuid=" + vm, "--force")
        vm = None
        master = D.xe("bond-param-get", "uuid=" + bond, "param-name=master").strip()
        port = D.xe("pif-param-get", "uuid=" + master, "param-name=device").strip()
        assert port in links() and port + "w" in links()
        D.xe("bond-destroy", "uuid=" + bond)
        bond = None
        assert port not in links() and port + "w" not in links()
        for p in (p0, p1):
            assert D.xe("pif-param-get", "uuid=" + p,
                        "param-name=bond-slave-of").strip() in ("", "<not in database>")
        D.xe("network-destroy", "uuid=" + net)
    finally:
        if con:
            con.close()
        if vm:
            D.xe_run("vm-uninstall", "uuid=" + vm, "--force")
        if bond and D.running():
            D.xe_run("bond-destroy", "uuid=" + bond)  # its port goes with it
        sw.cleanup()
