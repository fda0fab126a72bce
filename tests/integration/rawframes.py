"""Ethernet frames as a switch port sees them, for the VLAN and bond tests
(run inside a test's network namespace with `ip netns exec`).

    rawframes.py sniff IFACE SECONDS
        prints one JSON line per frame received on IFACE within SECONDS:
        {"src": mac, "dst": mac, "tag": VLAN id or 0, "type": ethertype}
    rawframes.py arp IFACE TAG SENDER_IP TARGET_IP SECONDS
        sends an ARP request for TARGET_IP (tagged TAG, untagged if 0) from
        a made-up MAC, and prints the ARP replies to it as sniff does

The kernel hands a received frame's 802.1Q tag apart from the frame
(PACKET_AUXDATA), so that is where the tag is read. Everything is
bounded by SECONDS."""

import json
import select
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_AUXDATA = 8
TP_STATUS_VLAN_VALID = 1 << 4
PACKET_OUTGOING = 4
OUR_MAC = bytes.fromhex("02feedface01")


def mac(b):
    return ":".join("%02x" % x for x in b)


def frames(s, seconds):
    """(frame, tag) received on s until seconds pass."""
    end = time.monotonic() + seconds
    while True:
        left = end - time.monotonic()
        if left <= 0:
            return
        if not select.select([s], [], [], left)[0]:
            continue
        data, anc, _, addr = s.recvmsg(4096, 1024)
        if addr[2] == PACKET_OUTGOING or len(data) < 14:
            continue
        tag = 0
        for level, kind, d in anc:
            if level == SOL_PACKET and kind == PACKET_AUXDATA:
                status, _, _, _, _, tci, _ = struct.unpack("IIIHHHH", d[:20])
                if status & TP_STATUS_VLAN_VALID:
                    tag = tci & 0xfff
        yield data, tag


def describe(data, tag):
    return {"src": mac(data[6:12]), "dst": mac(data[0:6]), "tag": tag,
            "type": struct.unpack("!H", data[12:14])[0]}


def open_socket(iface):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind((iface, 0))
    s.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
    return s


def arp_request(tag, sender_ip, target_ip):
    head = b"\xff" * 6 + OUR_MAC
    if tag:
        head += struct.pack("!HH", 0x8100, tag)
    arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, OUR_MAC,
                      socket.inet_aton(sender_ip), b"\0" * 6, socket.inet_aton(target_ip))
    return head + struct.pack("!H", 0x0806) + arp


def main(argv):
    if argv[1] == "sniff":
        s = open_socket(argv[2])
        for data, tag in frames(s, float(argv[3])):
            print(json.dumps(describe(data, tag)), flush=True)
    elif argv[1] == "arp":
        iface, tag, sender, target, seconds = argv[2], int(argv[3]), argv[4], argv[5], float(argv[6])
        s = open_socket(iface)
        s.send(arp_request(tag, sender, target))
        for data, t in frames(s, seconds):
            # an ARP reply (opcode 2) to us
            if data[0:6] == OUR_MAC and struct.unpack("!H", data[12:14])[0] == 0x0806 \
                    and struct.unpack("!H", data[20:22])[0] == 2:
                print(json.dumps(describe(data, t)), flush=True)
    else:
        sys.exit("usage: rawframes.py sniff IFACE SECONDS | arp IFACE TAG SENDER TARGET SECONDS")


if __name__ == "__main__":
    main(sys.argv)
