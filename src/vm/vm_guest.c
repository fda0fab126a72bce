/* vm_guest.c: guest metrics and clean shutdown through the guest agent
 * (vm_guest.h).
 *
 * Every running VM has a `struct guest`: a client of its agent (qga.h)
 * and a timer. Every XN_GUEST_POLL_MS, and soon after the guest opens
 * the agent's port (QEMU's VSERPORT_CHANGE), a poll asks the agent, one
 * command after the other (steps[] below): guest-info (its version and
 * which commands it has), guest-get-osinfo, the interfaces and their
 * addresses, and /proc/meminfo through guest-file-open/read/close. A
 * poll that gets every answer it needs turns into the VM_guest_metrics
 * record, committed only when a field differs from what is stored; a
 * poll whose handshake or command gets no answer marks the agent absent
 * (live false). A paused or suspending guest is not asked.
 *
 * Everything the agent says is untrusted guest data: strings are cut to
 * a bounded length at a UTF-8 boundary, counts are bounded, addresses
 * must parse as addresses, and nothing of it reaches a file name, a
 * command line or anything but the record's string maps.
 *
 * Lifetime: a poll and a shutdown request belong to their guest; the
 * guest is freed by xn_vm_guest_detach, after closing its agent client,
 * which answers everything pending (as failures) first. */
#include "vm/vm_guest.h"

#include <arpa/inet.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "engine/qemu_argv.h"
#include "engine/qga.h"
#include "model/model.h"
#include "util/log.h"
#include "util/uuid.h"
#include "vm/vm_runtime.h"

/* Bounds on what a guest can make us store. */
#define MAX_VALUE 255     /* bytes of one string value */
#define MAX_IFACES 64
#define MAX_ADDRS 32      /* of one family on one VIF */
#define MEMINFO_READ 8192

enum agent_state { AGENT_UNKNOWN, AGENT_LIVE, AGENT_ABSENT };

struct guest {
	struct dom *d;
	xn_qga *qga;
	uv_timer_t *timer;
	enum agent_state agent;
	struct poll *poll;    /* the poll in progress, if any */
	bool closing;         /* being detached: callbacks only clean up */
};

/* ---- pure: the record's maps -------------------------------------------- */

/* A guest string as a JSON string of at most MAX_VALUE bytes, cut at a
 * character boundary (jansson has checked it is UTF-8). */
static json_t *guest_str(const char *s)
{
	size_t n = strlen(s);
	if (n > MAX_VALUE) {
		n = MAX_VALUE;
		while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
			n--;
	}
	return json_stringn(s, n);
}

static const char *field_str(json_t *obj, const char *key)
{
	const char *s = json_string_value(json_object_get(obj, key));
	return s ? s : "";
}

static void put_str(json_t *map, const char *key, const char *value)
{
	if (value && value[0])
		json_object_set_new(map, key, guest_str(value));
}

json_t *xn_guest_os_version(json_t *osinfo)
{
	json_t *os = json_object();
	const char *name = field_str(osinfo, "pretty-name");
	put_str(os, "name", name[0] ? name : field_str(osinfo, "name"));
	put_str(os, "distro", field_str(osinfo, "id"));
	put_str(os, "uname", field_str(osinfo, "kernel-release"));
	const char *ver = field_str(osinfo, "version-id");
	size_t major = strcspn(ver, ".");
	if (major > 0) {
		XN_AUTOFREE char *m = xn_strndup(ver, major);
		put_str(os, "major", m);
	}
	if (ver[major] == '.') {
		const char *minor = ver + major + 1;
		XN_AUTOFREE char *m = xn_strndup(minor, strcspn(minor, "."));
		put_str(os, "minor", m);
	}
	return os;
}

json_t *xn_guest_drivers_version(const char *version)
{
	long v[3] = {-1, -1, -1};
	const char *p = version ? version : "";
	for (int i = 0; i < 3 && *p >= '0' && *p <= '9'; i++) {
		char *end;
		v[i] = strtol(p, &end, 10);
		p = *end == '.' ? end + 1 : end;
		if (v[i] < 0 || v[i] > 1000000)
			v[i] = -1;
	}
	json_t *dv = json_object();
	static const char *keys[] = {"major", "minor", "micro"};
	for (int i = 0; i < 3; i++)
		if (v[i] >= 0 || i == 2)
			json_object_set_new(dv, keys[i], json_sprintf("%ld", v[i]));
	json_object_set_new(dv, "application", json_string("qemu-ga"));
	return dv;
}

/* addr as the family says, or NULL. */
static const char *valid_addr(json_t *a, bool *v6)
{
	const char *type = field_str(a, "ip-address-type");
	const char *s = field_str(a, "ip-address");
	unsigned char buf[sizeof(struct in6_addr)];
	*v6 = strcmp(type, "ipv6") == 0;
	if (!*v6 && strcmp(type, "ipv4") != 0)
		return NULL;
	return inet_pton(*v6 ? AF_INET6 : AF_INET, s, buf) == 1 ? s : NULL;
}

/* Append iface's addresses to the device's lists in `by_dev`. */
static void collect_addrs(json_t *by_dev, const char *dev, json_t *iface)
{
	json_t *lists = json_object_get(by_dev, dev);
	if (!lists) {
		lists = json_pack("{s:[], s:[]}", "v4", "v6");
		json_object_set_new(by_dev, dev, lists);
	}
	size_t i;
	json_t *a;
	json_array_foreach(json_object_get(iface, "ip-addresses"), i, a) {
		bool v6;
		const char *s = valid_addr(a, &v6);
		json_t *list = json_object_get(lists, v6 ? "v6" : "v4");
		if (s && json_array_size(list) < MAX_ADDRS)
			json_array_append_new(list, json_string(s));
	}
}

/* "<dev>/ip", "<dev>/ipv4/<k>", "<dev>/ipv6/<k>" := a */
static void put_addr(json_t *nets, const char *dev, const char *kind, long k, json_t *a)
{
	char key[64];
	if (k < 0)
		snprintf(key, sizeof(key), "%s/%s", dev, kind);
	else
		snprintf(key, sizeof(key), "%s/%s/%ld", dev, kind, k);
	json_object_set(nets, key, a);
}

json_t *xn_guest_networks(json_t *ifaces, json_t *macs)
{
	json_t *by_dev = json_object();
	for (size_t i = 0; i < json_array_size(ifaces) && i < MAX_IFACES; i++) {
		json_t *iface = json_array_get(ifaces, i);
		XN_AUTOFREE char *mac = xn_strndup(field_str(iface, "hardware-address"), 17);
		for (char *c = mac; *c; c++)
			*c = (char)(*c >= 'A' && *c <= 'F' ? *c - 'A' + 'a' : *c);
		const char *dev = json_string_value(json_object_get(macs, mac));
		if (dev)
			collect_addrs(by_dev, dev, iface);
	}
	json_t *nets = json_object();
	const char *dev;
	json_t *lists;
	json_object_foreach(by_dev, dev, lists) {
		size_t k;
		json_t *a;
		json_array_foreach(json_object_get(lists, "v4"), k, a) {
			if (k == 0)
				put_addr(nets, dev, "ip", -1, a);
			put_addr(nets, dev, "ipv4", (long)k, a);
		}
		json_array_foreach(json_object_get(lists, "v6"), k, a)
			put_addr(nets, dev, "ipv6", (long)k, a);
	}
	json_decref(by_dev);
	return nets;
}

json_t *xn_guest_memory(const char *meminfo)
{
	long long total = -1, avail = -1, free_ = -1;
	for (const char *line = meminfo; line && *line;) {
		long long v;
		if (sscanf(line, "MemTotal: %lld kB", &v) == 1)
			total = v;
		else if (sscanf(line, "MemAvailable: %lld kB", &v) == 1)
			avail = v;
		else if (sscanf(line, "MemFree: %lld kB", &v) == 1)
			free_ = v;
		line = strchr(line, '\n');
		line = line ? line + 1 : NULL;
	}
	json_t *mem = json_object();
	if (total >= 0)
		json_object_set_new(mem, "total", json_sprintf("%lld", total));
	if (avail >= 0 || free_ >= 0)
		json_object_set_new(mem, "free", json_sprintf("%lld", avail >= 0 ? avail : free_));
	return mem;
}

/* ---- the record ----------------------------------------------------------- */

/* The VM's VM_guest_metrics ref, or NULL if it has none (yet). */
static const char *metrics_of(xn_host *h, const char *vm)
{
	const char *gm = xn_db_str(h->db, vm, "guest_metrics");
	return !xn_ref_is_null(gm) && xn_db_class_of(h->db, gm) == xn_model_class("VM_guest_metrics")
		       ? gm
		       : NULL;
}

static long long map_ll(json_t *map, const char *key)
{
	const char *s = json_string_value(json_object_get(map, key));
	return s ? strtoll(s, NULL, 10) : -1;
}

/* Whether a new value of field k is worth no write: equal, or for memory
 * (whose free part moves all the time) the same total and free within
 * 1/16 of it. A database commit per VM every poll would cost an fsync
 * and an event each time; xapi leaves memory out of its checks too. */
static bool unchanged(const char *k, json_t *new, json_t *old)
{
	if (json_equal(new, old))
		return true;
	if (strcmp(k, "memory") != 0 || json_object_size(new) != json_object_size(old))
		return false;
	long long total = map_ll(new, "total"), diff = map_ll(new, "free") - map_ll(old, "free");
	return total > 0 && total == map_ll(old, "total") && (diff < 0 ? -diff : diff) * 16 <= total;
}

/* Set fields (taken over) on the VM's guest metrics, made if missing,
 * with last_updated; nothing is written if every field is unchanged. */
static void store(xn_host *h, const char *vm, json_t *fields)
{
	const char *gm = metrics_of(h, vm);
	bool same = gm != NULL;
	const char *k;
	json_t *v;
	json_object_foreach(fields, k, v)
		same = same && unchanged(k, v, xn_db_field(h->db, gm, k));
	if (same || !xn_db_get(h->db, vm)) {
		json_decref(fields);
		return;
	}
	xn_changes *cs = xn_changes_new(h->db);
	if (!gm) {
		gm = xn_changes_add(cs, xn_model_class("VM_guest_metrics"), NULL, json_object());
		xn_changes_set(cs, vm, "guest_metrics", json_string(gm));
	}
	json_object_set_new(fields, "last_updated", xn_datetime_now());
	json_object_update(xn_changes_edit(cs, gm), fields);
	json_decref(fields);
	XN_AUTOERR xn_error *err = NULL;
	if (xn_db_commit(h->db, cs, &err) < 0)
		xn_warn("vm %s: cannot record guest metrics: %s", xn_db_str(h->db, vm, "uuid"),
			err->message);
}

/* The fields that say whether an agent answers. */
static json_t *liveness(bool live)
{
	return json_pack("{s:b, s:b, s:b}", "live", live, "PV_drivers_detected", live,
			 "PV_drivers_up_to_date", live);
}

void xn_vm_guest_halted(xn_host *h, xn_changes *cs, const char *vm_ref)
{
	const char *gm = metrics_of(h, vm_ref);
	if (!gm)
		return;
	json_t *fields = liveness(false);
	json_object_set_new(fields, "networks", json_object());
	json_object_set_new(fields, "memory", json_object());
	bool changed = false;
	const char *k;
	json_t *v;
	json_object_foreach(fields, k, v) {
		if (!json_equal(v, xn_db_field(h->db, gm, k))) {
			xn_changes_set(cs, gm, k, json_incref(v));
			changed = true;
		}
	}
	if (changed)
		xn_changes_set(cs, gm, "last_updated", xn_datetime_now());
	json_decref(fields);
}

/* The agent stopped answering (or its port closed): say so, once. */
static void agent_gone(struct guest *g, const char *why)
{
	struct dom *d = g->d;
	if (g->agent == AGENT_LIVE)
		xn_info("vm %s: the guest agent is gone: %s", d->uuid, why);
	g->agent = AGENT_ABSENT;
	if (metrics_of(d->h, d->ref))
		store(d->h, d->ref, liveness(false));
}

/* ---- polls ------------------------------------------------------------------ */

struct poll {
	struct guest *g;
	size_t step;
	json_t *enabled;      /* command -> true, from guest-info */
	char *version;
	json_t *osinfo, *ifaces;
	json_int_t handle;    /* of /proc/meminfo; -1: not open */
	xn_buf meminfo;
};

typedef struct step {
	const char *cmd;
	json_t *(*args)(struct poll *p);     /* NULL: none */
	bool (*want)(struct poll *p, const char *cmd);
	void (*got)(struct poll *p, json_t *ret);
} step;

static void got_info(struct poll *p, json_t *ret)
{
	p->version = xn_strndup(field_str(ret, "version"), 64);
	p->enabled = json_object();
	size_t i;
	json_t *c;
	json_array_foreach(json_object_get(ret, "supported_commands"), i, c) {
		if (i >= 1024)
			break;
		if (json_is_true(json_object_get(c, "enabled")))
			json_object_set_new(p->enabled, field_str(c, "name"), json_true());
	}
}

/* Whether the agent has cmd enabled (if guest-info said nothing: try). */
static bool has(struct poll *p, const char *cmd)
{
	return !p->enabled || json_object_get(p->enabled, cmd) != NULL;
}

static void got_osinfo(struct poll *p, json_t *ret)
{
	p->osinfo = json_incref(ret);
}

static void got_ifaces(struct poll *p, json_t *ret)
{
	p->ifaces = json_incref(ret);
}

static json_t *args_open(struct poll *p)
{
	return json_pack("{s:s, s:s}", "path", "/proc/meminfo", "mode", "r");
}

static void got_open(struct poll *p, json_t *ret)
{
	if (json_is_integer(ret))
		p->handle = json_integer_value(ret);
}

static bool file_open(struct poll *p, const char *cmd)
{
	return p->handle >= 0;
}

static json_t *args_read(struct poll *p)
{
	return json_pack("{s:I, s:i}", "handle", p->handle, "count", MEMINFO_READ);
}

static void got_read(struct poll *p, json_t *ret)
{
	const char *b64 = field_str(ret, "buf-b64");
	size_t len = strlen(b64);
	if (len == 0 || len % 4 || len > MEMINFO_READ * 2)
		return;
	XN_AUTOFREE unsigned char *out = xn_malloc(len / 4 * 3 + 1);
	int n = EVP_DecodeBlock(out, (const unsigned char *)b64, (int)len);
	if (n < 0)
		return;
	for (size_t pad = len; pad > 0 && b64[pad - 1] == '='; pad--)
		n--;
	xn_buf_append(&p->meminfo, out, (size_t)n);
}

static json_t *args_close(struct poll *p)
{
	return json_pack("{s:I}", "handle", p->handle);
}

static const step steps[] = {
	{"guest-info", NULL, NULL, got_info},
	{"guest-get-osinfo", NULL, has, got_osinfo},
	{"guest-network-get-interfaces", NULL, has, got_ifaces},
	{"guest-file-open", args_open, has, got_open},
	{"guest-file-read", args_read, file_open, got_read},
	{"guest-file-close", args_close, file_open, NULL},
};

static void poll_free(struct poll *p)
{
	json_decref(p->enabled);
	json_decref(p->osinfo);
	json_decref(p->ifaces);
	free(p->version);
	xn_buf_reset(&p->meminfo);
	free(p);
}

/* lowercase MAC -> device of the VM's VIFs */
static json_t *vif_macs(xn_host *h, const char *vm)
{
	json_t *macs = json_object();
	size_t i;
	json_t *v;
	json_array_foreach(xn_db_field(h->db, vm, "VIFs"), i, v) {
		XN_AUTOFREE char *mac = xn_strdup(xn_db_str(h->db, json_string_value(v), "MAC"));
		for (char *c = mac; *c; c++)
			*c = (char)(*c >= 'A' && *c <= 'F' ? *c - 'A' + 'a' : *c);
		json_object_set_new(macs, mac,
				    json_string(xn_db_str(h->db, json_string_value(v), "device")));
	}
	return macs;
}

/* A poll with every answer: the record. */
static void poll_store(struct poll *p)
{
	struct dom *d = p->g->d;
	json_t *macs = vif_macs(d->h, d->ref);
	json_t *os = p->osinfo ? xn_guest_os_version(p->osinfo) : json_object();
	bool linux_like = p->osinfo && !xn_streq(field_str(p->osinfo, "id"), "mswindows");
	const char *hotplug = linux_like ? "yes" : "unspecified";
	json_t *fields = liveness(true);
	json_object_set_new(fields, "os_version", os);
	json_object_set_new(fields, "PV_drivers_version", xn_guest_drivers_version(p->version));
	json_object_set_new(fields, "networks", xn_guest_networks(p->ifaces, macs));
	json_object_set_new(fields, "memory", xn_guest_memory(p->meminfo.data));
	json_object_set_new(fields, "other",
			    p->enabled && has(p, "guest-shutdown")
				    ? json_pack("{s:s, s:s}", "feature-shutdown", "1",
						"feature-reboot", "1")
				    : json_object());
	json_object_set_new(fields, "can_use_hotplug_vbd", json_string(hotplug));
	json_object_set_new(fields, "can_use_hotplug_vif", json_string(hotplug));
	json_decref(macs);
	if (p->g->agent != AGENT_LIVE)
		xn_info("vm %s: the guest agent answers (qemu-ga %s, %s)", d->uuid, p->version,
			field_str(os, "name"));
	p->g->agent = AGENT_LIVE;
	store(d->h, d->ref, fields);
}

static void schedule(struct guest *g, uint64_t ms);

static void poll_done(struct poll *p, bool answered)
{
	struct guest *g = p->g;
	g->poll = NULL;
	if (answered)
		poll_store(p);
	else
		agent_gone(g, "it does not answer");
	poll_free(p);
	schedule(g, XN_GUEST_POLL_MS);
}

static void poll_reply(void *ud, json_t *ret, json_t *agent_err, const xn_error *err);

/* Send the next step the agent has, or finish. */
static void poll_next(struct poll *p)
{
	for (; p->step < XN_ARRAY_LEN(steps); p->step++) {
		const step *s = &steps[p->step];
		if (s->want && !s->want(p, s->cmd))
			continue;
		xn_qga_command(p->g->qga, s->cmd, s->args ? s->args(p) : NULL, 0,
			       XN_GUEST_ANSWER_MS, poll_reply, p);
		return;
	}
	poll_done(p, true);
}

static void poll_reply(void *ud, json_t *ret, json_t *agent_err, const xn_error *err)
{
	struct poll *p = ud;
	if (p->g->closing) {
		poll_free(p);
		return;
	}
	if (err) {
		xn_debug("vm %s: %s", p->g->d->uuid, err->message);
		poll_done(p, false);
		return;
	}
	const step *s = &steps[p->step++];
	if (ret && s->got)
		s->got(p, ret);
	poll_next(p);
}

static void on_poll_timer(uv_timer_t *t)
{
	struct guest *g = t->data;
	struct dom *d = g->d;
	if (g->poll)
		return; /* poll_done schedules the next */
	if (!xn_streq(xn_db_str(d->h->db, d->ref, "power_state"), "Running") ||
	    json_object_size(xn_db_field(d->h->db, d->ref, "current_operations")) > 0) {
		schedule(g, XN_GUEST_POLL_MS); /* paused, or busy suspending, ... */
		return;
	}
	struct poll *p = xn_calloc(1, sizeof(*p));
	p->g = g;
	p->handle = -1;
	g->poll = p;
	poll_next(p);
}

static void schedule(struct guest *g, uint64_t ms)
{
	uv_timer_start(g->timer, on_poll_timer, ms, 0);
}

/* ---- attach, detach, port events -------------------------------------------- */

void xn_vm_guest_attach(struct dom *d)
{
	if (d->guest)
		return;
	struct guest *g = xn_calloc(1, sizeof(*g));
	g->d = d;
	XN_AUTOFREE char *path = xn_asprintf("%s/qga.sock", d->run_dir);
	g->qga = xn_qga_new(d->h->loop, path);
	g->timer = xn_calloc(1, sizeof(uv_timer_t));
	uv_timer_init(d->h->loop, g->timer);
	g->timer->data = g;
	d->guest = g;
	schedule(g, 1000);
}

void xn_vm_guest_detach(struct dom *d)
{
	struct guest *g = d->guest;
	if (!g)
		return;
	d->guest = NULL;
	g->closing = true;
	uv_close((uv_handle_t *)g->timer, (uv_close_cb)free);
	xn_qga_close(g->qga); /* answers what is pending; those callbacks see closing */
	free(g);
}

void xn_vm_guest_port_event(struct dom *d, json_t *data)
{
	struct guest *g = d->guest;
	if (!g || !xn_streq(json_string_value(json_object_get(data, "id")), XN_QEMU_AGENT_DEVICE))
		return;
	if (json_is_true(json_object_get(data, "open"))) {
		xn_debug("vm %s: the guest opened the agent's port", d->uuid);
		if (!g->poll)
			schedule(g, 200);
	} else {
		agent_gone(g, "the guest closed its port");
	}
}

/* ---- clean shutdown and reboot ------------------------------------------------ */

struct shutdown_req {
	struct guest *g;
	bool reboot;
	xn_guest_shutdown_fn fn;
	void *ud;
};

static void shutdown_finish(struct shutdown_req *s, bool by_agent)
{
	s->fn(s->ud, by_agent && !s->g->closing);
	free(s);
}

static void shutdown_sent(void *ud, json_t *ret, json_t *agent_err, const xn_error *err)
{
	struct shutdown_req *s = ud;
	if (agent_err)
		xn_warn("vm %s: the guest agent refused to %s: %s", s->g->d->uuid,
			s->reboot ? "reboot" : "power off", field_str(agent_err, "desc"));
	shutdown_finish(s, ret != NULL);
}

static void shutdown_pinged(void *ud, json_t *ret, json_t *agent_err, const xn_error *err)
{
	struct shutdown_req *s = ud;
	if (err || s->g->closing) {
		shutdown_finish(s, false);
		return;
	}
	xn_info("vm %s: asking the guest agent to %s", s->g->d->uuid,
		s->reboot ? "reboot" : "power off");
	/* qemu-ga answers guest-shutdown only when it fails */
	xn_qga_command(s->g->qga, "guest-shutdown",
		       json_pack("{s:s}", "mode", s->reboot ? "reboot" : "powerdown"),
		       XN_QGA_NO_SUCCESS_REPLY, 3000, shutdown_sent, s);
}

void xn_vm_guest_shutdown(struct dom *d, bool reboot, xn_guest_shutdown_fn fn, void *ud)
{
	struct guest *g = d->guest;
	if (!g || g->agent == AGENT_ABSENT) {
		fn(ud, false);
		return;
	}
	struct shutdown_req *s = xn_calloc(1, sizeof(*s));
	*s = (struct shutdown_req){.g = g, .reboot = reboot, .fn = fn, .ud = ud};
	xn_qga_command(g->qga, "guest-ping", NULL, 0, 3000, shutdown_pinged, s);
}
