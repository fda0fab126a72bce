/* bpf_port.c: VLAN and bond ports as eBPF programs on tc ingress hooks
 * (bpf_port.h), loaded and attached with libbpf.
 *
 * The programs are a few instructions each, written here as instruction
 * arrays (no compiler for the BPF target is needed to build Xenia). Each
 * is a tc direct-action classifier: it returns TC_ACT_REDIRECT through
 * bpf_redirect(), TC_ACT_SHOT, or TC_ACT_UNSPEC to let the next filter
 * (and then the stack) have the frame. On ingress the kernel has already
 * moved an 802.1Q tag out of the frame into the skb (vlan_present,
 * vlan_tci), so that is where the VLAN programs look for it.
 *
 * Filters are told apart by tc priority and handle: a VLAN's filter on
 * its NIC has priority 100 + tag and handle tag; a port's own filter (on
 * its wire end, or a bond member) has priority 1 and handle 1. */
#include "net/bpf_port.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <net/if.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>

#include "net/netlink.h"
#include "util/util.h"

/* ---- a tiny assembler ----------------------------------------------- */

enum { R0, R1, R2, R3, R4, R5, R6, R7 };

#define INSN(c, d, s, o, i)                                                                     \
	((struct bpf_insn){.code = (c), .dst_reg = (d), .src_reg = (s), .off = (o), .imm = (i)})
#define MOV_REG(d, s) INSN(BPF_ALU64 | BPF_MOV | BPF_X, d, s, 0, 0)
#define MOV_IMM(d, i) INSN(BPF_ALU64 | BPF_MOV | BPF_K, d, 0, 0, i)
#define AND_IMM(d, i) INSN(BPF_ALU64 | BPF_AND | BPF_K, d, 0, 0, i)
#define XOR_REG(d, s) INSN(BPF_ALU64 | BPF_XOR | BPF_X, d, s, 0, 0)
#define MOD_IMM(d, i) INSN(BPF_ALU64 | BPF_MOD | BPF_K, d, 0, 0, i)
#define LDX_W(d, s, off) INSN(BPF_LDX | BPF_MEM | BPF_W, d, s, off, 0)
/* r0 = the frame's byte at off (needs r6 = the context; a frame too
 * short ends the program with 0, TC_ACT_OK) */
#define LD_BYTE(off) INSN(BPF_LD | BPF_ABS | BPF_B, 0, 0, 0, off)
#define JEQ_IMM(d, i, off) INSN(BPF_JMP | BPF_JEQ | BPF_K, d, 0, off, i)
#define JNE_IMM(d, i, off) INSN(BPF_JMP | BPF_JNE | BPF_K, d, 0, off, i)
#define CALL(f) INSN(BPF_JMP | BPF_CALL, 0, 0, 0, f)
#define EXIT() INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0)

enum { MAX_INSNS = 128 };

typedef struct prog {
	struct bpf_insn insn[MAX_INSNS];
	int n;
} prog;

static void emit(prog *p, struct bpf_insn i)
{
	if (p->n == MAX_INSNS)
		abort(); /* the programs here are bounded: a bond has few members */
	p->insn[p->n++] = i;
}

/* return bpf_redirect(ifindex, 0): out of ifindex (its egress) */
static void emit_redirect(prog *p, int ifindex)
{
	emit(p, MOV_IMM(R1, ifindex));
	emit(p, MOV_IMM(R2, 0));
	emit(p, CALL(BPF_FUNC_redirect));
	emit(p, EXIT());
}

static void emit_return(prog *p, int action)
{
	emit(p, MOV_IMM(R0, action));
	emit(p, EXIT());
}

/* ---- the programs ------------------------------------------------------- */

/* On the VLAN's wire end: tag the frame and send it out of the NIC. */
static void vlan_tx(prog *p, int tag, int nic)
{
	emit(p, MOV_REG(R6, R1));
	emit(p, MOV_IMM(R2, 0x0081)); /* htons(ETH_P_8021Q) */
	emit(p, MOV_IMM(R3, tag));
	emit(p, CALL(BPF_FUNC_skb_vlan_push));
	emit(p, JEQ_IMM(R0, 0, 2));
	emit_return(p, TC_ACT_SHOT);
	emit_redirect(p, nic);
}

/* On the NIC: a frame with the tag loses it and goes to the wire end
 * (out of it, so into the port and its bridge); others go on. */
static void vlan_rx(prog *p, int tag, int wire)
{
	emit(p, MOV_REG(R6, R1));
	emit(p, LDX_W(R2, R6, offsetof(struct __sk_buff, vlan_present)));
	emit(p, JEQ_IMM(R2, 0, 12));                  /* -> pass */
	emit(p, LDX_W(R2, R6, offsetof(struct __sk_buff, vlan_tci)));
	emit(p, AND_IMM(R2, 0x0fff));
	emit(p, JNE_IMM(R2, tag, 9));                 /* -> pass */
	emit(p, MOV_REG(R1, R6));
	emit(p, CALL(BPF_FUNC_skb_vlan_pop));
	emit(p, JNE_IMM(R0, 0, 4));                   /* -> drop */
	emit_redirect(p, wire);
	emit_return(p, TC_ACT_SHOT);                  /* drop */
	emit_return(p, TC_ACT_UNSPEC);                /* pass */
}

/* On the bond's wire end: to the active member, or (balance) to the live
 * member the source MAC hashes to; nothing live drops. */
static void bond_tx(prog *p, const int *out, int n, bool balance)
{
	if (n == 0) {
		emit_return(p, TC_ACT_SHOT);
		return;
	}
	if (!balance || n == 1) {
		emit_redirect(p, out[0]);
		return;
	}
	emit(p, MOV_REG(R6, R1));
	emit(p, MOV_IMM(R7, 0));
	for (int b = 6; b < 12; b++) { /* the source MAC's bytes, xor'd */
		emit(p, LD_BYTE(b));
		emit(p, XOR_REG(R7, R0));
	}
	emit(p, MOD_IMM(R7, n));
	for (int i = 0; i < n; i++) {
		emit(p, JNE_IMM(R7, i, 4));
		emit_redirect(p, out[i]);
	}
	emit_return(p, TC_ACT_SHOT);
}

/* On a member: into the bond (out of its wire end). A member that must
 * not deliver drops everything (active-backup's backups) or broadcasts
 * and multicasts (balance-slb's other live members). */
static void bond_rx(prog *p, int wire, bool deliver, bool group_too)
{
	if (!deliver) {
		emit_return(p, TC_ACT_SHOT);
		return;
	}
	if (!group_too) {
		emit(p, MOV_REG(R6, R1));
		emit(p, LD_BYTE(0));
		emit(p, AND_IMM(R0, 1)); /* the group bit of the destination */
		emit(p, JEQ_IMM(R0, 0, 2));
		emit_return(p, TC_ACT_SHOT);
	}
	emit_redirect(p, wire);
}

/* ---- loading and attaching ----------------------------------------------- */

static int fail(xn_error **err, const char *what, const char *dev, const char *fmt, ...)
	XN_PRINTF(4, 5);
static int fail(xn_error **err, const char *what, const char *dev, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	XN_AUTOFREE char *reason = xn_vasprintf(fmt, ap);
	va_end(ap);
	return xn_fail_internal(err, "bpf: %s %s: %s", what, dev, reason);
}

static int quiet(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	return 0; /* errors come back as return codes, reported by us */
}

static int ifindex_of(const char *what, const char *dev, xn_error **err)
{
	unsigned i = if_nametoindex(dev);
	return i ? (int)i : fail(err, what, dev, "no such device");
}

static struct bpf_tc_hook ingress_hook(int ifindex)
{
	return (struct bpf_tc_hook){.sz = sizeof(struct bpf_tc_hook), .ifindex = ifindex,
				    .attach_point = BPF_TC_INGRESS};
}

/* Load p and attach it to dev's ingress as filter (prio, handle),
 * replacing whatever that filter was. */
static int attach(const char *what, const char *name, const prog *p, const char *dev, int prio,
		  int handle, xn_error **err)
{
	libbpf_set_print(quiet);
	int ifindex = ifindex_of(what, dev, err);
	if (ifindex < 0)
		return -1;
	char log[4096] = "";
	LIBBPF_OPTS(bpf_prog_load_opts, lo, .log_buf = log, .log_size = sizeof(log));
	int fd = bpf_prog_load(BPF_PROG_TYPE_SCHED_CLS, name, "GPL", p->insn, (size_t)p->n, &lo);
	if (fd < 0)
		return fail(err, what, dev, "loading %s: %s%s%s", name, strerror(errno),
			    log[0] ? "\n" : "", log);
	struct bpf_tc_hook hook = ingress_hook(ifindex);
	int rc = bpf_tc_hook_create(&hook);
	if (rc < 0 && rc != -EEXIST) {
		close(fd);
		return fail(err, what, dev, "clsact: %s", strerror(-rc));
	}
	LIBBPF_OPTS(bpf_tc_opts, to, .prog_fd = fd, .flags = BPF_TC_F_REPLACE,
		    .priority = (__u32)prio, .handle = (__u32)handle);
	rc = bpf_tc_attach(&hook, &to);
	close(fd); /* the filter holds the program now */
	return rc < 0 ? fail(err, what, dev, "attach: %s", strerror(-rc)) : 0;
}

/* Remove dev's ingress filter (prio, handle): a missing device or filter
 * is no error. */
static int detach(const char *what, const char *dev, int prio, int handle, xn_error **err)
{
	unsigned ifindex = if_nametoindex(dev);
	if (!ifindex)
		return 0;
	struct bpf_tc_hook hook = ingress_hook((int)ifindex);
	LIBBPF_OPTS(bpf_tc_opts, to, .priority = (__u32)prio, .handle = (__u32)handle);
	int rc = bpf_tc_detach(&hook, &to);
	return rc < 0 && rc != -ENOENT && rc != -EINVAL && rc != -ENODEV
		       ? fail(err, what, dev, "detach: %s", strerror(-rc))
		       : 0;
}

bool xn_bpf_port_attached(const char *dev, int tag)
{
	unsigned ifindex = if_nametoindex(dev);
	if (!ifindex)
		return false;
	libbpf_set_print(quiet);
	struct bpf_tc_hook hook = ingress_hook((int)ifindex);
	LIBBPF_OPTS(bpf_tc_opts, to, .priority = tag ? 100 + (__u32)tag : 1,
		    .handle = tag ? (__u32)tag : 1);
	return bpf_tc_query(&hook, &to) == 0;
}

/* ---- VLANs ------------------------------------------------------------------ */

int xn_bpf_port_vlan(const char *port, const char *wire, const char *nic, int tag,
		     xn_error **err)
{
	const char *what = "vlan";
	if (tag < 1 || tag > 4094)
		return fail(err, what, nic, "invalid VLAN tag %d (1-4094)", tag);
	int nic_i = ifindex_of(what, nic, err);
	if (nic_i < 0 || xn_nl_veth_add(port, wire, err) < 0 ||
	    xn_nl_link_set_promisc(nic, true, err) < 0)
		return -1;
	int wire_i = ifindex_of(what, wire, err);
	if (wire_i < 0)
		return -1;
	prog tx = {0}, rx = {0};
	vlan_tx(&tx, tag, nic_i);
	vlan_rx(&rx, tag, wire_i);
	if (attach(what, "xn_vlan_tx", &tx, wire, 1, 1, err) < 0 ||
	    attach(what, "xn_vlan_rx", &rx, nic, 100 + tag, tag, err) < 0) {
		xn_nl_link_del(port, NULL);
		return -1;
	}
	return 0;
}

int xn_bpf_port_vlan_del(const char *port, const char *nic, int tag, xn_error **err)
{
	return detach("vlan", nic, 100 + tag, tag, err) < 0 || xn_nl_link_del(port, err) < 0 ? -1
												  : 0;
}

/* ---- bonds ------------------------------------------------------------------ */

int xn_bpf_port_bond(const xn_bpf_bond *b, const bool *live, int *active, xn_error **err)
{
	const char *what = "bond";
	int idx[b->n], out[b->n], nout = 0;
	*active = -1;
	if (xn_nl_veth_add(b->port, b->wire, err) < 0)
		return -1;
	int wire_i = ifindex_of(what, b->wire, err);
	if (wire_i < 0)
		return -1;
	for (size_t i = 0; i < b->n; i++) {
		if ((idx[i] = ifindex_of(what, b->members[i], err)) < 0 ||
		    xn_nl_link_set_promisc(b->members[i], true, err) < 0 ||
		    xn_nl_link_set_up(b->members[i], true, err) < 0)
			return -1;
		if (live[i] && *active < 0)
			*active = (int)i;
		if (live[i] && (b->balance || nout == 0))
			out[nout++] = idx[i];
	}
	for (size_t i = 0; i < b->n; i++) {
		prog rx = {0};
		bool deliver = b->balance ? live[i] : (int)i == *active;
		bond_rx(&rx, wire_i, deliver, (int)i == *active);
		if (attach(what, "xn_bond_rx", &rx, b->members[i], 1, 1, err) < 0)
			return -1;
	}
	prog tx = {0};
	bond_tx(&tx, out, nout, b->balance);
	return attach(what, "xn_bond_tx", &tx, b->wire, 1, 1, err);
}

int xn_bpf_port_bond_del(const xn_bpf_bond *b, xn_error **err)
{
	int rc = 0;
	for (size_t i = 0; i < b->n; i++)
		rc |= detach("bond", b->members[i], 1, 1, err);
	return rc < 0 || xn_nl_link_del(b->port, err) < 0 ? -1 : 0;
}
