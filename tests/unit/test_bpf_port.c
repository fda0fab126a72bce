/* Unit tests of bpf_port.c against the kernel: frames really cross the
 * eBPF VLAN and bond ports. main() moves the process into a network
 * namespace of its own first; veth pairs stand in for NICs, and their
 * far ends for the switch, where raw packet sockets send and receive.
 *
 * A frame's 802.1Q tag is read as the kernel hands it to a packet socket
 * (PACKET_AUXDATA: the tag is taken out of the frame on receive), and a
 * tagged frame is sent with the tag written into the frame, as a switch
 * would send it. */
#include "net/bpf_port.h"

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/if_packet.h>

#include "check.h"
#include "check_err.h"
#include "net/netlink.h"

enum { ETH_TEST = 0x88b5 }; /* IEEE local experimental ethertype */

static const unsigned char guest_mac[6] = {0x02, 0, 0, 0, 0, 0x11};

/* A raw socket bound to dev, receiving every frame (with aux data). */
static int packet_socket(const char *dev)
{
	int s = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(0x0003 /* ETH_P_ALL */));
	struct sockaddr_ll a = {.sll_family = AF_PACKET,
				.sll_protocol = htons(0x0003),
				.sll_ifindex = (int)if_nametoindex(dev)};
	int on = 1;
	if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    setsockopt(s, SOL_PACKET, PACKET_AUXDATA, &on, sizeof(on)) < 0) {
		fprintf(stderr, "  packet socket on %s: %s\n", dev, strerror(errno));
		abort();
	}
	return s;
}

/* Send a test frame out of dev, from src, with payload marker; tag > 0
 * writes an 802.1Q tag into it. */
static void send_frame(const char *dev, const unsigned char *src, int tag, unsigned char marker)
{
	unsigned char f[64] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
	size_t o = 12;
	memcpy(f + 6, src, 6);
	if (tag) {
		f[o++] = 0x81, f[o++] = 0x00, f[o++] = (unsigned char)(tag >> 8),
		f[o++] = (unsigned char)tag;
	}
	f[o++] = ETH_TEST >> 8, f[o++] = ETH_TEST & 0xff;
	f[o] = marker;
	int s = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
	struct sockaddr_ll a = {.sll_family = AF_PACKET, .sll_ifindex = (int)if_nametoindex(dev),
				.sll_halen = 6};
	if (s < 0 || sendto(s, f, sizeof(f), 0, (struct sockaddr *)&a, sizeof(a)) < 0)
		fprintf(stderr, "  send on %s: %s\n", dev, strerror(errno));
	close(s);
}

/* Wait up to 500 ms on s for an incoming test frame with marker: its tag
 * (0 untagged, the VLAN id if tagged), or -1 if none came. */
static int recv_frame(int s, unsigned char marker)
{
	for (int round = 0; round < 50; round++) {
		struct pollfd p = {.fd = s, .events = POLLIN};
		if (poll(&p, 1, 10) <= 0)
			continue;
		unsigned char f[256];
		union {
			char buf[CMSG_SPACE(sizeof(struct tpacket_auxdata))];
			struct cmsghdr align;
		} ctl;
		struct sockaddr_ll from;
		struct iovec iov = {f, sizeof(f)};
		struct msghdr m = {.msg_name = &from, .msg_namelen = sizeof(from), .msg_iov = &iov,
				   .msg_iovlen = 1, .msg_control = ctl.buf,
				   .msg_controllen = sizeof(ctl.buf)};
		ssize_t n = recvmsg(s, &m, 0);
		if (n < 15 || from.sll_pkttype == PACKET_OUTGOING)
			continue;
		int tag = 0;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
			struct tpacket_auxdata aux;
			if (c->cmsg_level != SOL_PACKET || c->cmsg_type != PACKET_AUXDATA)
				continue;
			memcpy(&aux, CMSG_DATA(c), sizeof(aux));
			if (aux.tp_status & TP_STATUS_VLAN_VALID)
				tag = aux.tp_vlan_tci & 0xfff;
		}
		if (((f[12] << 8) | f[13]) == ETH_TEST && f[14] == marker)
			return tag;
	}
	return -1;
}

TEST(test_vlan_port)
{
	xn_error *e = NULL;
	/* nic <-> sw: the NIC and the switch's port */
	CHECK(ok(xn_nl_veth_add("xnic0", "xsw0", &e), &e));
	CHECK(failed_with(xn_bpf_port_vlan("xnic0.10", "xnic0.10w", "xnic0", 0, &e), &e,
			  "bpf: vlan xnic0: invalid VLAN tag 0"));
	CHECK(!xn_nl_link_exists("xnic0.10"));
	CHECK(ok(xn_bpf_port_vlan("xnic0.10", "xnic0.10w", "xnic0", 10, &e), &e));
	CHECK(ok(xn_bpf_port_vlan("xnic0.20", "xnic0.20w", "xnic0", 20, &e), &e));
	CHECK(ok(xn_bpf_port_vlan("xnic0.10", "xnic0.10w", "xnic0", 10, &e), &e)); /* again */
	CHECK(xn_bpf_port_attached("xnic0", 10) && xn_bpf_port_attached("xnic0", 20));
	CHECK(!xn_bpf_port_attached("xnic0", 30));

	int sw = packet_socket("xsw0"), v10 = packet_socket("xnic0.10"),
	    v20 = packet_socket("xnic0.20"), nic = packet_socket("xnic0");
	/* out: a frame into port 10 leaves the NIC tagged 10, and so on */
	send_frame("xnic0.10", guest_mac, 0, 1);
	CHECK(recv_frame(sw, 1) == 10);
	send_frame("xnic0.20", guest_mac, 0, 2);
	CHECK(recv_frame(sw, 2) == 20);
	/* in: tagged 10 reaches port 10 untagged, and not port 20 (a packet
	 * socket on the NIC itself sees every frame before tc does) */
	send_frame("xsw0", guest_mac, 10, 3);
	CHECK(recv_frame(v10, 3) == 0);
	CHECK(recv_frame(v20, 3) == -1);
	/* untagged and unknown tags go on to the NIC itself */
	send_frame("xsw0", guest_mac, 0, 4);
	CHECK(recv_frame(nic, 4) == 0);
	CHECK(recv_frame(v10, 4) == -1);
	send_frame("xsw0", guest_mac, 30, 5);
	CHECK(recv_frame(v10, 5) == -1 && recv_frame(v20, 5) == -1);

	CHECK(ok(xn_bpf_port_vlan_del("xnic0.10", "xnic0", 10, &e), &e));
	CHECK(!xn_nl_link_exists("xnic0.10") && !xn_nl_link_exists("xnic0.10w"));
	CHECK(!xn_bpf_port_attached("xnic0", 10) && xn_bpf_port_attached("xnic0", 20));
	send_frame("xsw0", guest_mac, 20, 6); /* the other VLAN still works */
	CHECK(recv_frame(v20, 6) == 0);
	CHECK(ok(xn_bpf_port_vlan_del("xnic0.10", "xnic0", 10, &e), &e)); /* gone already */
	CHECK(ok(xn_bpf_port_vlan_del("xnic0.20", "xnic0", 20, &e), &e));
	close(sw), close(v10), close(v20), close(nic);
	CHECK(ok(xn_nl_link_del("xnic0", &e), &e));
}

/* Steer b by live; *active out. */
static bool steer(const xn_bpf_bond *b, bool l0, bool l1, int *active)
{
	xn_error *e = NULL;
	bool live[2] = {l0, l1};
	return ok(xn_bpf_port_bond(b, live, active, &e), &e);
}

TEST(test_bond_active_backup)
{
	xn_error *e = NULL;
	CHECK(ok(xn_nl_veth_add("xm0", "xsm0", &e), &e));
	CHECK(ok(xn_nl_veth_add("xm1", "xsm1", &e), &e));
	const char *members[] = {"xm0", "xm1"};
	xn_bpf_bond b = {.port = "xbond0", .wire = "xbond0w", .members = members, .n = 2};
	int active;
	CHECK(steer(&b, true, true, &active) && active == 0);
	int s0 = packet_socket("xsm0"), s1 = packet_socket("xsm1"), port = packet_socket("xbond0");
	send_frame("xbond0", guest_mac, 0, 1);
	CHECK(recv_frame(s0, 1) == 0);
	CHECK(recv_frame(s1, 1) == -1);
	send_frame("xsm0", guest_mac, 0, 2); /* from the active member: in */
	CHECK(recv_frame(port, 2) == 0);
	send_frame("xsm1", guest_mac, 0, 3); /* from the backup: dropped */
	CHECK(recv_frame(port, 3) == -1);

	/* member 0 loses its link: member 1 carries everything */
	CHECK(steer(&b, false, true, &active) && active == 1);
	send_frame("xbond0", guest_mac, 0, 4);
	CHECK(recv_frame(s1, 4) == 0);
	CHECK(recv_frame(s0, 4) == -1);
	send_frame("xsm1", guest_mac, 0, 5);
	CHECK(recv_frame(port, 5) == 0);
	send_frame("xsm0", guest_mac, 0, 6);
	CHECK(recv_frame(port, 6) == -1);

	/* none live: nothing goes out */
	CHECK(steer(&b, false, false, &active) && active == -1);
	send_frame("xbond0", guest_mac, 0, 7);
	CHECK(recv_frame(s0, 7) == -1 && recv_frame(s1, 7) == -1);

	CHECK(ok(xn_bpf_port_bond_del(&b, &e), &e));
	CHECK(!xn_nl_link_exists("xbond0") && !xn_bpf_port_attached("xm0", 0));
	close(s0), close(s1), close(port);
	CHECK(ok(xn_nl_link_del("xm0", &e), &e));
	CHECK(ok(xn_nl_link_del("xm1", &e), &e));
}

TEST(test_bond_balance_slb)
{
	xn_error *e = NULL;
	CHECK(ok(xn_nl_veth_add("xm0", "xsm0", &e), &e));
	CHECK(ok(xn_nl_veth_add("xm1", "xsm1", &e), &e));
	const char *members[] = {"xm0", "xm1"};
	xn_bpf_bond b = {.port = "xbond1", .wire = "xbond1w", .members = members, .n = 2,
			 .balance = true};
	int active;
	CHECK(steer(&b, true, true, &active) && active == 0);
	int s0 = packet_socket("xsm0"), s1 = packet_socket("xsm1"), port = packet_socket("xbond1");
	/* source MACs spread over both members: 0x10 and 0x11 hash apart */
	unsigned char mac_a[6] = {0x02, 0, 0, 0, 0, 0x10}, mac_b[6] = {0x02, 0, 0, 0, 0, 0x11};
	send_frame("xbond1", mac_a, 0, 1);
	CHECK(recv_frame(s0, 1) == 0);
	send_frame("xbond1", mac_a, 0, 1);
	CHECK(recv_frame(s1, 1) == -1);
	send_frame("xbond1", mac_b, 0, 2);
	CHECK(recv_frame(s1, 2) == 0);
	send_frame("xbond1", mac_b, 0, 2);
	CHECK(recv_frame(s0, 2) == -1);
	/* broadcasts come in from the first live member only; unicast from any */
	send_frame("xsm1", mac_a, 0, 3);
	CHECK(recv_frame(port, 3) == -1);
	send_frame("xsm0", mac_a, 0, 4);
	CHECK(recv_frame(port, 4) == 0);
	/* member 0 down: both MACs go through member 1 */
	CHECK(steer(&b, false, true, &active) && active == 1);
	send_frame("xbond1", mac_a, 0, 5);
	CHECK(recv_frame(s1, 5) == 0);
	send_frame("xbond1", mac_b, 0, 6);
	CHECK(recv_frame(s1, 6) == 0);
	CHECK(ok(xn_bpf_port_bond_del(&b, &e), &e));
	close(s0), close(s1), close(port);
	CHECK(ok(xn_nl_link_del("xm0", &e), &e));
	CHECK(ok(xn_nl_link_del("xm1", &e), &e));
}

int main(void)
{
	if (unshare(CLONE_NEWNET) < 0) {
		printf("FAIL test_bpf_port: unshare(CLONE_NEWNET): %s (the unit tests run as root)\n",
		       strerror(errno));
		return 1;
	}
	xn_error *e = NULL;
	CHECK(ok(xn_nl_link_set_up("lo", true, &e), &e));
	RUN(test_vlan_port);
	RUN(test_bond_active_backup);
	RUN(test_bond_balance_slb);
	CHECK_EXIT();
}
