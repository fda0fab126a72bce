/* qemu_argv.c: build QEMU's command line from a VM's records
 * (qemu_argv.h).
 *
 * The argv is assembled in a fixed order, one helper per part of the
 * machine: identity and accelerator, memory and CPUs, control sockets,
 * the guest agent's channel, guest actions, boot, disks, spare hot-plug
 * ports, small devices. It
 * validates everything it relies on first, so a bad record gives a
 * XenAPI error and never a half-built command line.
 *
 * Disks are sorted by VBD userdevice. Each virtio disk gets its own
 * pcie-root-port so it can be unplugged later (q35's pcie.0 has no
 * hot-plug). CDs of HVM guests sit on the built-in AHCI (ide.0 ..
 * ide.5), which every installer and OS drives; CDs of guests booted
 * from a kernel (Xen's PV guests, such as Tiny Linux, whose cloud
 * kernel has no AHCI driver) are paravirtual, as on Xen: scsi-cd on a
 * virtio-scsi controller. A disk's protocol node comes from storage
 * (a local file, an NFS export, ...) and gets our node-name on top:
 * file-<userdevice> under the format node drive-<userdevice>. Boot order:
 * for HVM guests the letters of HVM_boot_params:order are turned into
 * bootindex properties ('c': the bootable disks, 'd': the CDs with
 * media) and also passed as -boot order=. QEMU's documentation warns
 * against mixing the two because some firmware honours only one; here
 * both say the same thing, and SeaBIOS puts bootindexed devices first,
 * then the rest by the CMOS order. */
#include "engine/qemu_argv.h"

#include <stdlib.h>
#include <string.h>

#include "util/uuid.h"

#define MIB (1024 * 1024)
#define MAX_VCPUS 64
#define MAX_USERDEVICE 254
/* sun_path is 108 bytes; the longest socket we put in run_dir. */
#define SUN_PATH_MAX 108
#define LONGEST_SOCKET "/console.sock"

/* One VBD, as placed in the machine. */
typedef struct slot {
	const xn_qemu_disk *d;
	size_t index;     /* in the input: ties in sorting stay in input order */
	const char *vbd_uuid;
	long userdevice;
	bool cd;          /* type "CD", else "Disk" */
	bool empty;       /* no medium (CDs only) */
	bool read_only;
	int bootindex;    /* 0: none */
	int cd_port;      /* ide.<n> for CDs */
} slot;

static const char *rec_str(json_t *rec, const char *key)
{
	const char *s = json_string_value(json_object_get(rec, key));
	return s ? s : "";
}

static bool rec_bool(json_t *rec, const char *key)
{
	return json_is_true(json_object_get(rec, key));
}

static int fail_invalid(xn_error **err, const char *field, const char *value)
{
	return xn_fail(err, "INVALID_VALUE", field, value, NULL);
}

static int fail_invalid_int(xn_error **err, const char *field, json_t *v)
{
	XN_AUTOFREE char *s = json_is_integer(v)
		? xn_asprintf("%" JSON_INTEGER_FORMAT, json_integer_value(v))
		: xn_strdup(json_is_string(v) ? json_string_value(v) : "");
	return fail_invalid(err, field, s);
}

char *xn_qemu_opt_escape(const char *s)
{
	xn_buf b = {0};
	for (; *s; s++)
		xn_buf_puts(&b, *s == ',' ? ",," : (char[]){*s, '\0'});
	return xn_buf_steal(&b);
}

/* ---- validation of the VM record and the inputs ---- */

static int check_vcpus(json_t *vm, xn_error **err)
{
	json_t *start = json_object_get(vm, "VCPUs_at_startup");
	json_t *max = json_object_get(vm, "VCPUs_max");
	if (!json_is_integer(start) || json_integer_value(start) < 1 ||
	    json_integer_value(start) > MAX_VCPUS)
		return fail_invalid_int(err, "VCPUs_at_startup", start);
	if (!json_is_integer(max) || json_integer_value(max) < json_integer_value(start) ||
	    json_integer_value(max) > MAX_VCPUS)
		return fail_invalid_int(err, "VCPUs_max", max);
	return 0;
}

static int check_memory(json_t *vm, xn_error **err)
{
	json_t *mem = json_object_get(vm, "memory_static_max");
	/* Past 16 TiB is a typo, and keeps the MiB arithmetic far from overflow. */
	if (!json_is_integer(mem) || json_integer_value(mem) <= 0 ||
	    json_integer_value(mem) > ((json_int_t)16 << 40))
		return fail_invalid_int(err, "memory_static_max", mem);
	return 0;
}

static int check_path(const char *field, const char *path, xn_error **err)
{
	if (path[0] != '/' || strchr(path, '\n'))
		return fail_invalid(err, field, path);
	return 0;
}

/* What the daemon supplies besides the records. */
static int check_host_side(const xn_qemu_input *in, xn_error **err)
{
	if (!xn_streq(in->engine, "kvm") && !xn_streq(in->engine, "tcg"))
		return fail_invalid(err, "engine", in->engine ? in->engine : "");
	if (!in->qemu_binary || !in->qemu_binary[0])
		return xn_fail_internal(err, "no QEMU binary given");
	if (!in->run_dir)
		return xn_fail_internal(err, "no run directory given");
	if (check_path("run_dir", in->run_dir, err) < 0)
		return -1;
	if (strlen(in->run_dir) + strlen(LONGEST_SOCKET) >= SUN_PATH_MAX)
		return xn_fail_internal(err, "run directory '%s' is too long for a socket path",
					in->run_dir);
	if (in->incoming && (!in->incoming[0] || strchr(in->incoming, '\n')))
		return fail_invalid(err, "incoming", in->incoming);
	return 0;
}

static int check_nics(const xn_qemu_input *in, xn_error **err);

static int check_input(const xn_qemu_input *in, xn_error **err)
{
	if (!in->vm)
		return xn_fail_internal(err, "no VM record given");
	/* The uuid goes into option syntax unescaped: it must be a uuid. */
	if (!xn_uuid_valid(rec_str(in->vm, "uuid")))
		return fail_invalid(err, "uuid", rec_str(in->vm, "uuid"));
	if (check_host_side(in, err) < 0 || check_memory(in->vm, err) < 0 ||
	    check_vcpus(in->vm, err) < 0 || check_nics(in, err) < 0)
		return -1;
	const char *kernel = rec_str(in->vm, "PV_kernel");
	const char *ramdisk = rec_str(in->vm, "PV_ramdisk");
	if (kernel[0] && check_path("PV_kernel", kernel, err) < 0)
		return -1;
	if (kernel[0] && ramdisk[0] && check_path("PV_ramdisk", ramdisk, err) < 0)
		return -1;
	/* A kernel command line is one line; nothing in the argv has a newline. */
	if (kernel[0] && strchr(rec_str(in->vm, "PV_args"), '\n'))
		return fail_invalid(err, "PV_args", rec_str(in->vm, "PV_args"));
	return 0;
}

/* ---- disks: validation, order, placement ---- */

static int parse_userdevice(const char *s, long *out)
{
	char *end;
	if (!s[0] || s[0] == '-' || s[0] == '+')
		return -1;
	long v = strtol(s, &end, 10);
	if (*end || v < 0 || v > MAX_USERDEVICE)
		return -1;
	*out = v;
	return 0;
}

/* ---- NICs ---- */

static int nic_check(const xn_qemu_nic *n, xn_error **err)
{
	const char *dev = rec_str(n->vif, "device");
	long d;
	if (parse_userdevice(dev, &d) < 0 || d > 15)
		return fail_invalid(err, "VIF device", dev);
	const char *mac = rec_str(n->vif, "MAC");
	unsigned b[6];
	char tail;
	if (strlen(mac) != 17 || sscanf(mac, "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2],
					&b[3], &b[4], &b[5], &tail) != 6)
		return fail_invalid(err, "MAC", mac);
	if (n->fd < 3)
		return xn_fail_internal(err, "no tap descriptor for VIF %s", dev);
	return 0;
}

char *xn_qemu_nic_netdev(const xn_qemu_nic *n, xn_error **err)
{
	if (nic_check(n, err) < 0)
		return NULL;
	return xn_asprintf("tap,id=net-%s,fd=%d,vhost=off", rec_str(n->vif, "device"), n->fd);
}

json_t *xn_qemu_nic_device(const xn_qemu_nic *n, const char *port, xn_error **err)
{
	if (nic_check(n, err) < 0)
		return NULL;
	const char *dev = rec_str(n->vif, "device");
	return json_pack("{s:s, s:o, s:s, s:o, s:s}", "driver", "virtio-net-pci", "netdev",
			 json_sprintf("net-%s", dev), "mac", rec_str(n->vif, "MAC"), "id",
			 json_sprintf("vif-%s", dev), "bus", port);
}

static int check_nics(const xn_qemu_input *in, xn_error **err)
{
	for (size_t i = 0; i < in->nnics; i++) {
		if (nic_check(&in->nics[i], err) < 0)
			return -1;
		for (size_t j = 0; j < i; j++)
			if (xn_streq(rec_str(in->nics[i].vif, "device"),
				     rec_str(in->nics[j].vif, "device")))
				return fail_invalid(err, "VIF device",
						    rec_str(in->nics[i].vif, "device"));
	}
	return 0;
}

bool xn_qemu_disk_read_only(const xn_qemu_disk *d)
{
	return xn_streq(rec_str(d->vbd, "type"), "CD") || xn_streq(rec_str(d->vbd, "mode"), "RO") ||
	       (d->vdi && rec_bool(d->vdi, "read_only"));
}

/* A storage node is an object naming its driver; a local file's name is
 * an absolute path. The node reaches QEMU as JSON, never in option
 * syntax, so other values need no escaping. */
static int check_node(json_t *node, xn_error **err)
{
	const char *driver = json_string_value(json_object_get(node, "driver"));
	if (!json_is_object(node) || !driver || !driver[0] || json_object_get(node, "node-name"))
		return fail_invalid(err, "node", driver ? driver : "");
	if (xn_streq(driver, "file") &&
	    check_path("path", rec_str(node, "filename"), err) < 0)
		return -1;
	return 0;
}

static bool disk_empty(const xn_qemu_disk *d)
{
	return !d->vdi || !d->node || json_is_null(d->node) || rec_bool(d->vbd, "empty");
}

/* What the engine relies on in one VBD, its VDI and node. */
static int check_disk(const xn_qemu_disk *d, long *userdevice, xn_error **err)
{
	if (!d->vbd)
		return xn_fail_internal(err, "a disk has no VBD record");
	const char *ud = rec_str(d->vbd, "userdevice");
	if (parse_userdevice(ud, userdevice) < 0)
		return fail_invalid(err, "userdevice", ud);
	const char *type = rec_str(d->vbd, "type");
	if (!xn_streq(type, "Disk") && !xn_streq(type, "CD"))
		return xn_fail(err, "VALUE_NOT_SUPPORTED", "type", type,
			       "only Disk and CD drives are supported", NULL);
	if (disk_empty(d)) {
		if (!xn_streq(type, "CD"))
			return xn_fail(err, "VBD_IS_EMPTY", rec_str(d->vbd, "uuid"), NULL);
		return 0;
	}
	if (check_node(d->node, err) < 0)
		return -1;
	if (!xn_streq(d->format, "qcow2") && !xn_streq(d->format, "raw"))
		return fail_invalid(err, "format", d->format ? d->format : "");
	return 0;
}

static int fill_slot(slot *s, const xn_qemu_disk *d, xn_error **err)
{
	if (check_disk(d, &s->userdevice, err) < 0)
		return -1;
	s->d = d;
	s->vbd_uuid = rec_str(d->vbd, "uuid");
	s->cd = xn_streq(rec_str(d->vbd, "type"), "CD");
	s->empty = disk_empty(d);
	s->read_only = xn_qemu_disk_read_only(d);
	return 0;
}

static int by_userdevice(const void *a, const void *b)
{
	const slot *x = a, *y = b;
	if (x->userdevice != y->userdevice)
		return x->userdevice < y->userdevice ? -1 : 1;
	return x->index < y->index ? -1 : x->index > y->index;
}

static int check_counts(const char *vm_uuid, const slot *s, size_t n, xn_error **err)
{
	size_t disks = 0, cds = 0;
	for (size_t i = 0; i < n; i++) {
		if (i > 0 && s[i].userdevice == s[i - 1].userdevice) {
			XN_AUTOFREE char *dev = xn_asprintf("%ld", s[i].userdevice);
			return xn_fail(err, "VM_DUPLICATE_VBD_DEVICE", vm_uuid, s[i].vbd_uuid,
				       dev, NULL);
		}
		s[i].cd ? cds++ : disks++;
	}
	if (disks > XN_QEMU_MAX_DISKS)
		return xn_fail(err, "VALUE_NOT_SUPPORTED", "VBDs", "Disk",
			       "a VM has at most 16 disks", NULL);
	if (cds > XN_QEMU_MAX_CDS)
		return xn_fail(err, "VALUE_NOT_SUPPORTED", "VBDs", "CD",
			       "a VM has at most 6 CD drives", NULL);
	return 0;
}

/* Bootindex from the boot order: 'c' the bootable disks, 'd' the CDs with
 * a medium, each in userdevice order. Other letters ('a', 'n') have no
 * devices here yet. */
static void assign_bootindex(slot *s, size_t n, const char *order)
{
	int next = 1;
	for (const char *o = order; *o; o++) {
		for (size_t i = 0; i < n; i++) {
			bool disk = *o == 'c' && !s[i].cd && rec_bool(s[i].d->vbd, "bootable");
			bool cd = *o == 'd' && s[i].cd && !s[i].empty;
			if ((disk || cd) && !s[i].bootindex)
				s[i].bootindex = next++;
		}
	}
}

static slot *plan_disks(const xn_qemu_input *in, const char *order, xn_error **err)
{
	slot *s = xn_calloc(in->ndisks ? in->ndisks : 1, sizeof(*s));
	for (size_t i = 0; i < in->ndisks; i++) {
		s[i].index = i;
		if (fill_slot(&s[i], &in->disks[i], err) < 0) {
			free(s);
			return NULL;
		}
	}
	qsort(s, in->ndisks, sizeof(*s), by_userdevice);
	if (check_counts(rec_str(in->vm, "uuid"), s, in->ndisks, err) < 0) {
		free(s);
		return NULL;
	}
	int port = 0;
	for (size_t i = 0; i < in->ndisks; i++)
		if (s[i].cd)
			s[i].cd_port = port++;
	if (order)
		assign_bootindex(s, in->ndisks, order);
	return s;
}

/* ---- argv pieces ---- */

static void push_json(char ***argv, const char *opt, json_t *obj)
{
	XN_AUTOFREE char *s = json_dumps(obj, JSON_COMPACT);
	json_decref(obj);
	xn_strv_push(argv, opt);
	xn_strv_push(argv, s);
}

static void push_accel(char ***argv, const xn_qemu_input *in)
{
	xn_strv_push(argv, "-accel");
	if (xn_streq(in->engine, "kvm")) {
		xn_strv_push(argv, "kvm");
		xn_strv_push(argv, "-cpu");
		xn_strv_push(argv, "host");
		return;
	}
	/* tb-size bounds the translation cache per VM (MiB; QEMU's default
	 * is 1 GiB); boot time was the same with 256. -cpu max: the tiny
	 * guest boots within noise of the default qemu64 (4.4 s vs 4.0 s
	 * median), and unlike qemu64 it runs x86-64-v2/v3 distributions
	 * (SSE4.2, POPCNT, AVX2 are emulated since QEMU 7.2). Under TCG it
	 * depends on the QEMU version only, so it migrates between hosts. */
	xn_strv_push(argv, "tcg,thread=multi,tb-size=256");
	xn_strv_push(argv, "-cpu");
	xn_strv_push(argv, "max");
}

static void push_machine(char ***argv, const xn_qemu_input *in)
{
	const char *uuid = rec_str(in->vm, "uuid");
	xn_strv_push(argv, in->qemu_binary);
	const char *fixed[] = {"-S", "-nodefaults", "-no-user-config", "-display", "none"};
	for (size_t i = 0; i < XN_ARRAY_LEN(fixed); i++)
		xn_strv_push(argv, fixed[i]);
	xn_strv_push(argv, "-name");
	xn_strv_pushf(argv, "guest=%s,debug-threads=on", uuid);
	xn_strv_push(argv, "-uuid");
	xn_strv_push(argv, uuid);
	xn_strv_push(argv, "-machine");
	xn_strv_push(argv, "q35"); /* not microvm: it hangs under TCG here */
	push_accel(argv, in);
	json_int_t mem = json_integer_value(json_object_get(in->vm, "memory_static_max"));
	xn_strv_push(argv, "-m");
	xn_strv_pushf(argv, "%" JSON_INTEGER_FORMAT, (mem + MIB - 1) / MIB);
	xn_strv_push(argv, "-smp");
	xn_strv_pushf(argv, "%" JSON_INTEGER_FORMAT ",maxcpus=%" JSON_INTEGER_FORMAT,
		      json_integer_value(json_object_get(in->vm, "VCPUs_at_startup")),
		      json_integer_value(json_object_get(in->vm, "VCPUs_max")));
	const char *tail[] = {"-rtc", "base=utc", "-msg", "timestamp=on"};
	for (size_t i = 0; i < XN_ARRAY_LEN(tail); i++)
		xn_strv_push(argv, tail[i]);
}

static void push_control(char ***argv, const xn_qemu_input *in)
{
	XN_AUTOFREE char *dir = xn_qemu_opt_escape(in->run_dir);
	xn_strv_push(argv, "-pidfile");
	xn_strv_pushf(argv, "%s/qemu.pid", in->run_dir);
	xn_strv_push(argv, "-chardev");
	xn_strv_pushf(argv, "socket,id=qmp,path=%s/qmp.sock,server=on,wait=off", dir);
	xn_strv_push(argv, "-mon");
	xn_strv_push(argv, "chardev=qmp,mode=control");
	xn_strv_push(argv, "-chardev");
	xn_strv_pushf(argv, "socket,id=serial0,path=%s/console.sock,server=on,wait=off", dir);
	xn_strv_push(argv, "-serial");
	xn_strv_push(argv, "chardev:serial0");
}

/* The guest agent's channel: a virtio-serial port named as QEMU's guest
 * agent expects, on a socket QEMU serves, so the daemon can connect,
 * leave and come back (after its own restart) while the VM runs. */
static void push_agent(char ***argv, const xn_qemu_input *in)
{
	XN_AUTOFREE char *dir = xn_qemu_opt_escape(in->run_dir);
	xn_strv_push(argv, "-chardev");
	xn_strv_pushf(argv, "socket,id=qga0,path=%s/qga.sock,server=on,wait=off", dir);
	xn_strv_push(argv, "-device");
	xn_strv_push(argv, "virtio-serial-pci,id=vser0");
	xn_strv_push(argv, "-device");
	xn_strv_pushf(argv, "virtserialport,bus=vser0.0,chardev=qga0,name=%s,id=%s",
		      XN_QEMU_AGENT_PORT, XN_QEMU_AGENT_DEVICE);
}

/* Guest reboot / crash behaviour. Power-off makes QEMU exit (default),
 * and so does a guest reboot: as on Xen, the daemon then applies
 * actions_after_reboot and starts a fresh QEMU, which picks up changed
 * settings, and boots faster under TCG than a reset in place (the reset
 * guest runs into stale translated code: 3-10 s instead of 0.8 s to the
 * kernel, measured on the test machine). */
static void push_actions(char ***argv, const xn_qemu_input *in)
{
	(void)in;
	xn_strv_push(argv, "-action");
	xn_strv_push(argv, "reboot=shutdown");
	/* A panic pauses the guest; the daemon sees GUEST_PANICKED and applies
	 * actions_after_crash. */
	xn_strv_push(argv, "-action");
	xn_strv_push(argv, "panic=pause");
	xn_strv_push(argv, "-device");
	xn_strv_push(argv, "pvpanic");
}

static void push_boot(char ***argv, const xn_qemu_input *in, const char *order)
{
	const char *kernel = rec_str(in->vm, "PV_kernel");
	if (kernel[0]) {
		/* -kernel/-initrd/-append are plain strings, not option syntax. */
		xn_strv_push(argv, "-kernel");
		xn_strv_push(argv, kernel);
		const char *ramdisk = rec_str(in->vm, "PV_ramdisk");
		if (ramdisk[0]) {
			xn_strv_push(argv, "-initrd");
			xn_strv_push(argv, ramdisk);
		}
		xn_strv_push(argv, "-append");
		xn_strv_push(argv, rec_str(in->vm, "PV_args"));
		return;
	}
	XN_AUTOFREE char *vnc = xn_qemu_opt_escape(in->run_dir);
	xn_strv_push(argv, "-boot");
	xn_strv_pushf(argv, "order=%s", order);
	xn_strv_push(argv, "-device");
	xn_strv_push(argv, "VGA");
	xn_strv_push(argv, "-vnc");
	xn_strv_pushf(argv, "unix:%s/vnc.sock", vnc);
}

int xn_qemu_disk_blockdevs(const xn_qemu_disk *d, json_t **file, json_t **drive, xn_error **err)
{
	long ud;
	if (check_disk(d, &ud, err) < 0)
		return -1;
	if (disk_empty(d))
		return xn_fail(err, "VBD_IS_EMPTY", rec_str(d->vbd, "uuid"), NULL);
	bool ro = xn_qemu_disk_read_only(d);
	/* driver and node-name first, then what storage gave, then ours:
	 * the command line reads the same whatever the driver. */
	json_t *f = json_pack("{s:O, s:o}", "driver", json_object_get(d->node, "driver"),
			      "node-name", json_sprintf("file-%ld", ud));
	const char *k;
	json_t *v;
	json_object_foreach(d->node, k, v)
		if (strcmp(k, "driver") != 0)
			json_object_set(f, k, v);
	json_object_set_new(f, "read-only", json_boolean(ro));
	json_t *dr = json_pack("{s:s, s:o, s:o, s:b}", "driver", d->format, "node-name",
			       json_sprintf("drive-%ld", ud), "file", json_sprintf("file-%ld", ud),
			       "read-only", ro);
	if (!ro) {
		/* Guests' discards keep thin images thin. */
		json_object_set_new(f, "discard", json_string("unmap"));
		json_object_set_new(dr, "discard", json_string("unmap"));
	}
	*file = f;
	*drive = dr;
	return 0;
}

json_t *xn_qemu_disk_device(const xn_qemu_disk *d, const char *port, int bootindex,
			    xn_error **err)
{
	long ud;
	if (check_disk(d, &ud, err) < 0)
		return NULL;
	if (disk_empty(d)) {
		xn_fail(err, "VBD_IS_EMPTY", rec_str(d->vbd, "uuid"), NULL);
		return NULL;
	}
	XN_AUTOFREE char *serial = xn_strndup(rec_str(d->vdi, "uuid"), 20);
	json_t *dev = json_pack("{s:s, s:o, s:s, s:o, s:s}", "driver", "virtio-blk-pci", "id",
				json_sprintf("vbd-%ld", ud), "bus", port, "drive",
				json_sprintf("drive-%ld", ud), "serial", serial);
	if (bootindex)
		json_object_set_new(dev, "bootindex", json_integer(bootindex));
	return dev;
}

/* Validated by plan_disks already: these cannot fail here. */
static void push_blockdev(char ***argv, const slot *s)
{
	json_t *f = NULL, *d = NULL;
	xn_qemu_disk_blockdevs(s->d, &f, &d, NULL);
	push_json(argv, "-blockdev", f);
	push_json(argv, "-blockdev", d);
}

static void push_disk(char ***argv, const slot *s, int chassis)
{
	XN_AUTOFREE char *port = xn_asprintf("rp-vbd-%ld", s->userdevice);
	xn_strv_push(argv, "-device");
	xn_strv_pushf(argv, "pcie-root-port,id=%s,bus=pcie.0,chassis=%d", port, chassis);
	push_blockdev(argv, s);
	push_json(argv, "-device", xn_qemu_disk_device(s->d, port, s->bootindex, NULL));
}

/* HVM: ide-cd on AHCI port n; PV: scsi-cd on the virtio-scsi bus. */
static void push_cd(char ***argv, const slot *s, bool pv)
{
	json_t *dev = pv ? json_pack("{s:s, s:o, s:s, s:i, s:i}", "driver", "scsi-cd", "id",
				     json_sprintf("vbd-%ld", s->userdevice), "bus", "scsi0.0",
				     "scsi-id", s->cd_port, "lun", 0)
			 : json_pack("{s:s, s:o, s:o}", "driver", "ide-cd", "id",
				     json_sprintf("vbd-%ld", s->userdevice), "bus",
				     json_sprintf("ide.%d", s->cd_port));
	if (!s->empty) {
		push_blockdev(argv, s);
		json_object_set_new(dev, "drive", json_sprintf("drive-%ld", s->userdevice));
	}
	if (s->bootindex)
		json_object_set_new(dev, "bootindex", json_integer(s->bootindex));
	push_json(argv, "-device", dev);
}

/* The cloud-init seed: after every other port, so that it changes no
 * other device's place. */
static void push_seed(char ***argv, const char *seed, int chassis)
{
	xn_strv_push(argv, "-device");
	xn_strv_pushf(argv, "pcie-root-port,id=rp-seed,bus=pcie.0,chassis=%d", chassis);
	push_json(argv, "-blockdev",
		  json_pack("{s:s, s:s, s:s, s:b}", "driver", "file", "node-name", "file-seed",
			    "filename", seed, "read-only", 1));
	push_json(argv, "-blockdev",
		  json_pack("{s:s, s:s, s:s, s:b}", "driver", "raw", "node-name", "drive-seed",
			    "file", "file-seed", "read-only", 1));
	push_json(argv, "-device",
		  json_pack("{s:s, s:s, s:s, s:s, s:s}", "driver", "virtio-blk-pci", "id", "seed",
			    "bus", "rp-seed", "drive", "drive-seed", "serial", "cidata"));
}

static void push_devices(char ***argv, const xn_qemu_input *in, const slot *s)
{
	int chassis = 1;
	bool pv = rec_str(in->vm, "PV_kernel")[0] != '\0', scsi = false;
	for (size_t i = 0; i < in->ndisks; i++) {
		if (!s[i].cd) {
			push_disk(argv, &s[i], chassis++);
			continue;
		}
		if (pv && !scsi) {
			xn_strv_push(argv, "-device");
			xn_strv_push(argv, "virtio-scsi-pci,id=scsi0");
			scsi = true;
		}
		push_cd(argv, &s[i], pv);
	}
	for (size_t i = 0; i < in->nnics; i++) {
		const char *dev = rec_str(in->nics[i].vif, "device");
		XN_AUTOFREE char *port = xn_asprintf("rp-vif-%s", dev);
		xn_strv_push(argv, "-device");
		xn_strv_pushf(argv, "pcie-root-port,id=%s,bus=pcie.0,chassis=%d", port, chassis++);
		XN_AUTOFREE char *netdev = xn_qemu_nic_netdev(&in->nics[i], NULL);
		xn_strv_push(argv, "-netdev");
		xn_strv_push(argv, netdev);
		push_json(argv, "-device", xn_qemu_nic_device(&in->nics[i], port, NULL));
	}
	for (int i = 0; i < XN_QEMU_HOTPLUG_PORTS; i++) {
		xn_strv_push(argv, "-device");
		xn_strv_pushf(argv, "pcie-root-port,id=rp-hp%d,bus=pcie.0,chassis=%d", i,
			      chassis++);
	}
	if (in->seed)
		push_seed(argv, in->seed, chassis++);
	const char *fixed[] = {
		"-object", "rng-random,id=rng0,filename=/dev/urandom",
		"-device", "virtio-rng-pci,rng=rng0",
		"-device", "virtio-balloon-pci,id=balloon0",
	};
	for (size_t i = 0; i < XN_ARRAY_LEN(fixed); i++)
		xn_strv_push(argv, fixed[i]);
	if (in->incoming) {
		xn_strv_push(argv, "-incoming");
		xn_strv_push(argv, in->incoming);
	}
}

/* The HVM boot order, validated; NULL for a PV-kernel boot. */
static int boot_order(const xn_qemu_input *in, const char **order, xn_error **err)
{
	*order = NULL;
	if (rec_str(in->vm, "PV_kernel")[0])
		return 0;
	if (!xn_streq(rec_str(in->vm, "HVM_boot_policy"), "BIOS order"))
		return xn_fail(err, "BOOTLOADER_FAILED", rec_str(in->vm, "uuid"),
			       "the VM has no PV-kernel and no HVM boot policy", NULL);
	const char *o = rec_str(json_object_get(in->vm, "HVM_boot_params"), "order");
	if (!o[0])
		o = "cd";
	if (strspn(o, "acdn") != strlen(o))
		return fail_invalid(err, "HVM_boot_params:order", o);
	*order = o;
	return 0;
}

char **xn_qemu_argv(const xn_qemu_input *in, xn_error **err)
{
	const char *order;
	if (check_input(in, err) < 0 || boot_order(in, &order, err) < 0)
		return NULL;
	XN_AUTOFREE slot *slots = plan_disks(in, order, err);
	if (!slots)
		return NULL;
	char **argv = xn_strv_new();
	push_machine(&argv, in);
	push_control(&argv, in);
	push_agent(&argv, in);
	push_actions(&argv, in);
	push_boot(&argv, in, order);
	push_devices(&argv, in, slots);
	return argv;
}
