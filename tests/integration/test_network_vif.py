"""VIF hot-plug and rate limits (issue 5), with real guests on private
networks only (bridges the daemon makes; no host interface is touched).

Guest A has one NIC on network "vifnet" (10.78.0.1). Guest B starts with
one NIC on another private network, gets a second one on "vifnet" by
vif-plug (its eth1, 10.78.0.2), loses it by vif-unplug, and gets it back
rate-limited. Transfers are busybox nc between the two guests, timed in
the sender with /proc/uptime."""

import re
import subprocess

import xenia
from xenia import wait_for

D = None
NET = OTHER = None
A = B = None          # VM uuids
CA = CB = None        # their consoles
VIF_B1 = None         # B's hot-plugged VIF (device 1 on NET)
UNLIMITED_KBPS = None


def setup_module():
    global D, NET, OTHER, A, B
    D = xenia.Daemon(shutdown_timeout=10, name="vif").start()
    NET = D.xe("network-create", "name-label=vifnet").strip()
    OTHER = D.xe("network-create", "name-label=vifother").strip()
    A = D.install("vif-a")
    B = D.install("vif-b")
    D.xe("vif-create", "vm-uuid=" + A, "network-uuid=" + NET, "device=0")
    D.xe("vif-create", "vm-uuid=" + B, "network-uuid=" + OTHER, "device=0")


def teardown_module():
    for c in (CA, CB):
        if c:
            c.close()
    D.cleanup()


links = xenia.host_links


def tbf_rate(dev):
    """The rate of dev's tbf qdisc as tc prints it ('8Mbit'), or None."""
    out = subprocess.run(["tc", "qdisc", "show", "dev", dev], capture_output=True,
                         text=True).stdout
    m = re.search(r"qdisc tbf .* rate (\S+)", out)
    return m.group(1) if m else None


def vif_param(vif, name):
    return D.xe("vif-param-get", "uuid=" + vif, "param-name=" + name).strip()


def fails(code, *args):
    out = D.xe(*args, ok=False)
    assert out.error_code() == code, "%s: %s" % (" ".join(args), out.stderr)
    return out


def transfer_kbps(src, dst_ip, nbytes):
    """Send nbytes from console src to dst_ip:5000 (a listener must run);
    the rate in kbit/s as the sender timed it."""
    blocks = max(1, nbytes // 65536)
    out = src.run("s=$(cut -d' ' -f1 /proc/uptime); dd if=/dev/zero bs=64k count=%d "
                  "2>/dev/null | nc %s 5000; e=$(cut -d' ' -f1 /proc/uptime); echo $s $e"
                  % (blocks, dst_ip), timeout=120)
    s, e = (float(x) for x in out.split()[-2:])
    return blocks * 65536 * 8 / 1000 / (e - s), e - s


def listen(c):
    c.run("nc -l -p 5000 > /dev/null &")


def test_plug_and_unplug_on_a_halted_vm_are_refused():
    vif = D.xe("vif-create", "vm-uuid=" + B, "network-uuid=" + NET, "device=1").strip()
    out = fails("VM_BAD_POWER_STATE", "vif-plug", "uuid=" + vif)
    assert out.error_params().endswith("running, halted"), out.error_params()
    fails("VM_BAD_POWER_STATE", "vif-unplug", "uuid=" + vif)
    assert vif_param(vif, "currently-attached") == "false"
    D.xe("vif-destroy", "uuid=" + vif)  # a start would plug it


@xenia.time_limit(150)
def test_hot_plugged_vif_carries_traffic_and_unplugs():
    global CA, CB, VIF_B1
    # a limit set before start applies to the tap at start
    vif_b0 = D.xe("vif-list", "vm-uuid=" + B, "device=0", "--minimal").strip()
    D.xe("vif-param-set", "uuid=" + vif_b0, "qos-algorithm-type=ratelimit",
         "qos-algorithm-params:kbps=50000")
    D.xe("vm-start", "uuid=" + A)
    D.xe("vm-start", "uuid=" + B)
    assert tbf_rate("vif%s.0" % B[:8]) == "50Mbit", tbf_rate("vif%s.0" % B[:8])
    assert tbf_rate("vif%s.0" % A[:8]) is None
    CA = D.console(A)
    CB = D.console(B)
    CA.wait_prompt()
    CB.wait_prompt()
    CA.run("ip link set eth0 up; ip addr add 10.78.0.1/24 dev eth0")
    VIF_B1 = D.xe("vif-create", "vm-uuid=" + B, "network-uuid=" + NET, "device=1").strip()
    assert vif_param(VIF_B1, "currently-attached") == "false"
    assert CB.run("ls /sys/class/net/eth1 >/dev/null 2>&1 || echo none") == "none"

    D.xe("vif-plug", "uuid=" + VIF_B1)
    assert vif_param(VIF_B1, "currently-attached") == "true"
    tap = "vif%s.1" % B[:8]
    bridge = D.xe("network-param-get", "uuid=" + NET, "param-name=bridge").strip()
    assert ("master " + bridge) in links().get(tap, ""), links().get(tap)
    fails("DEVICE_ALREADY_ATTACHED", "vif-plug", "uuid=" + VIF_B1)
    r = D.xe("vif-destroy", "uuid=" + VIF_B1, ok=False)
    assert r.error_code() == "OPERATION_NOT_ALLOWED", r.stderr
    mac = vif_param(VIF_B1, "MAC")
    wait_for(lambda: CB.run("cat /sys/class/net/eth1/address 2>/dev/null") == mac, 20,
             what="eth1 in the guest")
    CB.run("ip link set eth1 up; ip addr add 10.78.0.2/24 dev eth1")
    out = CB.run("ping -c 3 -W 5 10.78.0.1 >/dev/null && echo reached", timeout=60)
    assert out == "reached", out

    D.xe("vif-unplug", "uuid=" + VIF_B1)
    assert vif_param(VIF_B1, "currently-attached") == "false"
    assert CB.run("ls /sys/class/net/eth1 >/dev/null 2>&1 || echo gone") == "gone"
    wait_for(lambda: tap not in links(), 10, what="the tap gone")
    fails("DEVICE_ALREADY_DETACHED", "vif-unplug", "uuid=" + VIF_B1)
    # and back: the guest sees it again
    D.xe("vif-plug", "uuid=" + VIF_B1)
    wait_for(lambda: CB.run("cat /sys/class/net/eth1/address 2>/dev/null") == mac, 20,
             what="eth1 back in the guest")


@xenia.time_limit(150)
def test_rate_limited_vif_keeps_to_its_limit():
    global UNLIMITED_KBPS
    CB.run("ip link set eth1 up; ip addr add 10.78.0.2/24 dev eth1 2>/dev/null; true")
    out = CA.run("ping -c 2 -W 5 10.78.0.2 >/dev/null && echo reached", timeout=60)
    assert out == "reached", out
    # A -> B unlimited: what TCG can push
    listen(CB)
    UNLIMITED_KBPS, secs = transfer_kbps(CA, "10.78.0.2", 16 << 20)
    print("unlimited: %.0f kbit/s (%.1f s)" % (UNLIMITED_KBPS, secs))
    limit = min(8000, int(UNLIMITED_KBPS / 3) // 100 * 100)
    assert limit >= 1000, "TCG too slow to measure a limit: %.0f kbit/s" % UNLIMITED_KBPS
    # a limit set on a plugged VIF applies at once
    D.xe("vif-param-set", "uuid=" + VIF_B1, "qos-algorithm-type=ratelimit",
         "qos-algorithm-params:kbps=%d" % limit)
    tap = "vif%s.1" % B[:8]
    assert tbf_rate(tap) is not None
    # and at plug: unplug, plug again, the guest's eth1 back up
    D.xe("vif-unplug", "uuid=" + VIF_B1)
    D.xe("vif-plug", "uuid=" + VIF_B1)
    assert tbf_rate(tap) is not None, "no limit after plug"
    mac = vif_param(VIF_B1, "MAC")
    wait_for(lambda: CB.run("cat /sys/class/net/eth1/address 2>/dev/null") == mac, 20,
             what="eth1 back")
    try:
        # configured again until it answers: a NIC the guest has just
        # probed may not take its address at once
        wait_for(lambda: CB.run("ip link set eth1 up; ip addr add 10.78.0.2/24 dev eth1 "
                                "2>/dev/null; ping -c 1 -W 2 10.78.0.1 >/dev/null && echo y",
                                timeout=10) == "y", 30, interval=1, what="B reachable again")
    except xenia.WaitTimeout:
        print(CB.run("ip addr; ip link"), links().get(tap))
        raise
    listen(CB)
    nbytes = limit * 1000 // 8 * 8   # eight seconds' worth at the limit
    got, secs = transfer_kbps(CA, "10.78.0.2", nbytes)
    print("limit %d kbit/s: measured %.0f kbit/s over %.1f s" % (limit, got, secs))
    assert abs(got - limit) <= 0.15 * limit, (limit, got, secs)
    # removing the limit on the running VM lifts it
    D.xe("vif-param-set", "uuid=" + VIF_B1, "qos-algorithm-type=")
    assert tbf_rate(tap) is None
    # a malformed limit is refused
    r = D.xe("vif-param-set", "uuid=" + VIF_B1, "qos-algorithm-params:kbps=fast", ok=False)
    assert r.error_code() == "INVALID_VALUE", r.stderr


def test_unplug_and_shutdown_leave_nothing():
    D.xe("vif-unplug", "uuid=" + VIF_B1)
    D.xe("vif-destroy", "uuid=" + VIF_B1)
    for vm in (A, B):
        D.xe("vm-shutdown", "uuid=" + vm, "--force")
    wait_for(lambda: not any(l.startswith("vif%s" % vm[:8]) for l in links()
                             for vm in (A, B)), 10, what="the taps gone")
