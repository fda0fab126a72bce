"""NAT networks (issue 5): a network whose other_config has xapi's
ip_begin/ip_end/netmask and xenia-nat=true gets a dnsmasq on its bridge
and masquerading out through the host. A real guest takes a lease with
udhcpc and reaches an "outside world": a network namespace joined to the
host by a veth pair, which has no route back to the NAT subnet, so only
masqueraded traffic can get answers. Nothing here touches eth0 or sends
traffic off the machine; the namespace and the veth go in finally."""

import ipaddress
import os
import re
import secrets
import subprocess

import xenia
from xenia import wait_for

D = None
SUBNET = "10.201.7"
OUT_HOST, OUT_NS = "10.202.0.1", "10.202.0.2"
NAT_CONFIG = {"ip_begin": SUBNET + ".10", "ip_end": SUBNET + ".100",
              "netmask": "255.255.255.0", "xenia-nat": "true"}


def setup_module():
    global D
    D = xenia.Daemon(shutdown_timeout=10, name="nat").start()


def teardown_module():
    D.cleanup()


def sh(cmd, check=True):
    return subprocess.run(cmd, shell=True, capture_output=True, text=True, check=check)


def dnsmasqs(bridge):
    """Live dnsmasq processes of this daemon for bridge."""
    pidfile = "--pid-file=%s/run/dnsmasq-%s.pid" % (D.data_dir, bridge)
    pids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            argv = xenia.cmdline(int(name))
            if argv and "dnsmasq" in argv[0] and pidfile in argv and xenia.pid_alive(int(name)):
                pids.append(int(name))
    return pids


def nat_chains(bridge):
    out = sh("nft list table ip xenia-nat", check=False).stdout
    return re.findall(r"chain (\S+-%s) " % re.escape(bridge), out)


def test_default_network_and_bad_configs():
    nets = D.api("network.get_all_records")
    default = [n for n in nets.values() if n["other_config"].get("xenia-nat") == "true"]
    assert len(default) == 1, nets
    oc = default[0]["other_config"]
    assert re.match(r"192\.168\.\d+\.2$", oc["ip_begin"]), oc
    assert oc["netmask"] == "255.255.255.0", oc
    assert re.match(r"xapi\d+$", default[0]["bridge"]), default[0]
    for key, value in (("ip_begin", "nonsense"), ("ip_end", "10.201.8.5"),
                       ("netmask", "255.0.255.0"), ("gateway", SUBNET + ".50")):
        oc = dict(NAT_CONFIG, **{key: value})
        try:
            D.api("network.create", {"name_label": "bad", "other_config": oc})
            raise AssertionError("accepted %s=%s" % (key, value))
        except xenia.ApiError as e:
            assert e.code == "INVALID_VALUE" and e.params[0] in (key, "gateway"), e
    assert len(D.api("network.get_all")) == len(nets)


@xenia.time_limit(240)
def test_guest_gets_a_lease_and_reaches_outside_masqueraded():
    tag = secrets.token_hex(3)
    ns, vhost, vns = "xnat-" + tag, "xnh" + tag, "xnn" + tag
    server = None
    vm = net = bridge = None
    console = None
    try:
        net = D.api("network.create", {"name_label": "nat", "other_config": NAT_CONFIG})
        bridge = D.api("network.get_bridge", net)
        # the outside world: a namespace on a veth, no route to the NAT subnet
        sh("ip netns add %s" % ns)
        sh("ip link add %s type veth peer name %s" % (vhost, vns))
        sh("ip link set %s netns %s" % (vns, ns))
        sh("ip addr add %s/24 dev %s && ip link set %s up" % (OUT_HOST, vhost, vhost))
        sh("ip netns exec %s sh -c 'ip link set lo up; ip addr add %s/24 dev %s; "
           "ip link set %s up'" % (ns, OUT_NS, vns, vns))
        # a TCP server there that answers with the address it sees
        server = subprocess.Popen(
            ["ip", "netns", "exec", ns, "python3", "-c",
             "import socket\n"
             "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
             "s.bind(('%s', 8080)); s.listen(1); print('ready', flush=True)\n"
             "c, a = s.accept(); print(a[0], flush=True); c.sendall(('peer ' + a[0] + '\\n').encode())\n"
             "c.close()\n" % OUT_NS],
            stdout=subprocess.PIPE, text=True)
        assert server.stdout.readline().strip() == "ready"

        # the bridge has the gateway, one dnsmasq serves it, the rules are there
        assert (SUBNET + ".1/24") in sh("ip -o -4 addr show dev " + bridge).stdout
        wait_for(lambda: len(dnsmasqs(bridge)) == 1, 10, what="dnsmasq started")
        assert sorted(nat_chains(bridge)) == ["fwd-" + bridge, "post-" + bridge]

        vm = D.install("nat-guest")
        D.xe("vif-create", "vm-uuid=" + vm, "network-uuid=" + D.api("network.get_uuid", net),
             "device=0")
        D.xe("vm-start", "uuid=" + vm)
        console = D.console(vm)
        console.wait_prompt()
        console.run("udhcpc -i eth0 -n -q -t 10 -T 2 >/dev/null 2>&1; echo done", timeout=60)
        addr = console.run("ip -4 -o addr show dev eth0 | awk '{print $4}'")
        ip = ipaddress.ip_interface(addr)
        assert ip.network == ipaddress.ip_network(SUBNET + ".0/24"), addr
        assert NAT_CONFIG["ip_begin"] <= str(ip.ip) and \
            int(str(ip.ip).split(".")[3]) <= 100, addr
        out = console.run("ping -c 3 -W 5 %s >/dev/null && echo reached" % OUT_NS, timeout=60)
        assert out == "reached", out
        out = console.run("echo hi | nc %s 8080" % OUT_NS, timeout=30)
        assert out == "peer " + OUT_HOST, out  # masqueraded: the host's address
        assert server.stdout.readline().strip() == OUT_HOST

        # kill -9 of the daemon and a restart leave exactly one dnsmasq
        before = dnsmasqs(bridge)
        console.close()
        console = None
        D.kill9()
        D.start()
        wait_for(lambda: D.power_state(vm) == "running", 30, what="VM re-attached")
        assert dnsmasqs(bridge) == before, (before, dnsmasqs(bridge))
        console = D.console(vm)
        console.run("true")
        out = console.run("ping -c 1 -W 5 %s >/dev/null && echo reached" % OUT_NS, timeout=30)
        assert out == "reached", out
        console.close()
        console = None

        D.xe("vm-shutdown", "uuid=" + vm, "--force")
        D.xe("vm-uninstall", "uuid=" + vm, "--force")
        vm = None
        D.api("network.destroy", net)
        net = None
        assert dnsmasqs(bridge) == []
        assert nat_chains(bridge) == []
        assert sh("ip link show dev " + bridge, check=False).returncode != 0
    finally:
        for step in (lambda: console and console.close(),
                     lambda: server and (server.kill(), server.wait()),
                     lambda: sh("ip netns del %s" % ns, check=False),
                     lambda: sh("ip link del %s" % vhost, check=False),
                     lambda: vm and D.xe("vm-uninstall", "uuid=" + vm, "--force"),
                     lambda: net and D.api("network.destroy", net)):
            try:
                step()
            except Exception as e:  # clean up the rest all the same
                print("cleanup: %s" % e)
        if bridge:  # whatever a failure left
            xenia.kill_pids(dnsmasqs(bridge))
            for chain in nat_chains(bridge):
                sh("nft delete chain ip xenia-nat " + chain, check=False)
