/* vm_resources.c: the credit scheduler's VCPUs_params on running VMs
 * (vm_resources.h): weight and cap through the VM's cpu cgroup
 * (host/cgroup.h), mask through the affinity of its vCPU threads.
 *
 * Pinning uses sched_setaffinity on the vCPU threads QEMU names "CPU
 * <i>/TCG" (or /KVM), not a cpuset group: xapi's mask is about vCPUs,
 * and QEMU's other threads (main loop, I/O) stay free to run anywhere.
 * No mask means every CPU the daemon itself may use.
 *
 * When it applies: at start, before the guest runs its first
 * instruction (QEMU waits for `cont`); after a daemon restart, for every
 * re-attached QEMU (the kernel kept the settings; applying them again
 * repairs a daemon that died half-way through a change); and at once on
 * a running VM when VCPUs_params changes (the generic set_/add_to_/
 * remove_from_ setters are wrapped here, and add_to_VCPUs_params_live).
 * A change is checked whole, applied to the running VM, and only then
 * recorded; if recording fails the previous settings are put back, so a
 * refused change leaves the VM as it was. VM_metrics.VCPUs_params shows
 * what a running VM got. */
#include "vm/vm_resources.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "host/cgroup.h"
#include "util/log.h"

static xn_cgroups *cgroups;   /* NULL: the host has no cpu cgroups */
static cpu_set_t host_cpus;   /* what "no mask" means */
static bool host_cpus_known;

static const cpu_set_t *host_set(void)
{
	if (!host_cpus_known) {
		CPU_ZERO(&host_cpus);
		if (sched_getaffinity(0, sizeof(host_cpus), &host_cpus) < 0)
			CPU_SET(0, &host_cpus);
		host_cpus_known = true;
	}
	return &host_cpus;
}

/* ---- parsing ----------------------------------------------------------- */

/* A plain decimal up to max (no sign, no spaces). */
static bool parse_uint(const char *s, unsigned long max, unsigned long *out)
{
	if (!s || !*s || strspn(s, "0123456789") != strlen(s) || strlen(s) > 9)
		return false;
	*out = strtoul(s, NULL, 10);
	return *out <= max;
}

static int bad_value(xn_error **err, const char *key, const char *value)
{
	XN_AUTOFREE char *field = xn_asprintf("VCPUs_params:%s", key);
	return xn_fail(err, "INVALID_VALUE", field, value ? value : "", NULL);
}

int xn_cpu_mask_parse(const char *s, const cpu_set_t *host, cpu_set_t *out, xn_error **err)
{
	CPU_ZERO(out);
	if (!*s)
		return 0;
	XN_AUTOFREE char *copy = xn_strdup(s);
	size_t len = strlen(copy);
	if (copy[0] == ',' || copy[len - 1] == ',' || strstr(copy, ",,"))
		return bad_value(err, "mask", s);
	for (char *save, *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		unsigned long cpu;
		if (!parse_uint(t, CPU_SETSIZE - 1, &cpu) || !CPU_ISSET(cpu, host))
			return bad_value(err, "mask", s);
		CPU_SET(cpu, out);
	}
	return 0;
}

int xn_vcpu_params_parse(json_t *params, long vcpus, const cpu_set_t *host,
			 xn_vcpu_params *out, xn_error **err)
{
	*out = (xn_vcpu_params){.weight = XN_CGROUP_WEIGHT_DEFAULT};
	json_t *w = json_object_get(params, "weight");
	json_t *c = json_object_get(params, "cap");
	json_t *m = json_object_get(params, "mask");
	unsigned long v;
	if (w) {
		if (!parse_uint(json_string_value(w), 65535, &v) || v < 1)
			return bad_value(err, "weight", json_string_value(w));
		out->weight = (unsigned)v;
	}
	if (c) {
		if (!parse_uint(json_string_value(c), 100 * (unsigned long)(vcpus < 1 ? 1 : vcpus), &v))
			return bad_value(err, "cap", json_string_value(c));
		out->cap = (unsigned)v;
	}
	if (m) {
		if (!json_is_string(m) || xn_cpu_mask_parse(json_string_value(m), host, &out->mask,
							     err) < 0)
			return json_is_string(m) ? -1 : bad_value(err, "mask", NULL);
		out->pinned = CPU_COUNT(&out->mask) > 0;
	}
	return 0;
}

/* A VM's VCPUs_params, or the map params would give it. */
static int vm_params(xn_host *h, const char *vm, json_t *params, xn_vcpu_params *out,
		     xn_error **err)
{
	if (!params)
		params = xn_db_field(h->db, vm, "VCPUs_params");
	return xn_vcpu_params_parse(params, (long)xn_db_int(h->db, vm, "VCPUs_max"), host_set(),
				    out, err);
}

/* ---- applying ------------------------------------------------------------ */

static int apply_cgroup(struct dom *d, const xn_vcpu_params *p, xn_error **err)
{
	if (!cgroups) {
		if (p->weight == XN_CGROUP_WEIGHT_DEFAULT && p->cap == 0)
			return 0;
		return xn_fail_internal(err, "VCPUs_params weight and cap need the cpu cgroup "
					     "controller, which this host does not have");
	}
	if (xn_cgroup_create(cgroups, d->uuid, err) < 0 ||
	    xn_cgroup_attach(cgroups, d->uuid, d->pid, err) < 0)
		return -1;
	return xn_cgroup_set_cpu(cgroups, d->uuid, p->weight, p->cap, err);
}

static int apply_mask(struct dom *d, const xn_vcpu_params *p, xn_error **err)
{
	pid_t tids[XN_VM_MAX_VCPUS];
	int n = xn_qemu_vcpu_tids(d->pid, tids, XN_VM_MAX_VCPUS);
	if (n < 0)
		return xn_fail_internal(err, "VM %s: QEMU (pid %d) is gone", d->uuid, (int)d->pid);
	if (n == 0 && p->pinned)
		return xn_fail_internal(err, "VM %s: QEMU (pid %d) has no vCPU threads to pin",
					d->uuid, (int)d->pid);
	const cpu_set_t *set = p->pinned ? &p->mask : host_set();
	for (int i = 0; i < n; i++)
		if (tids[i] && sched_setaffinity(tids[i], sizeof(*set), set) < 0 && errno != ESRCH)
			return xn_fail_errno(err, errno, "VM %s: cannot pin vCPU %d (thread %d)",
					     d->uuid, i, (int)tids[i]);
	return 0;
}

/* VM_metrics.VCPUs_params: what the running VM has now. */
static void record_live(xn_host *h, const char *vm, json_t *params)
{
	const char *m = xn_db_str(h->db, vm, "metrics");
	json_t *now = xn_db_field(h->db, m, "VCPUs_params");
	if (!xn_db_get(h->db, m) || (now && json_equal(now, params)))
		return;
	xn_changes *cs = xn_changes_new(h->db);
	xn_changes_set(cs, m, "VCPUs_params", json_deep_copy(params));
	XN_AUTOERR xn_error *err = NULL;
	if (xn_db_commit(h->db, cs, &err) < 0)
		xn_warn("vm %s: cannot record its live VCPUs_params: %s", xn_db_str(h->db, vm, "uuid"),
			err->message);
}

/* Apply the VCPUs_params map params (the record's if NULL) to d. */
static int dom_apply(struct dom *d, json_t *params, xn_error **err)
{
	xn_host *h = d->h;
	xn_vcpu_params p;
	if (!params)
		params = xn_db_field(h->db, d->ref, "VCPUs_params");
	if (vm_params(h, d->ref, params, &p, err) < 0 || apply_cgroup(d, &p, err) < 0 ||
	    apply_mask(d, &p, err) < 0)
		return -1;
	xn_info("vm %s: weight %u, cap %u%s", d->uuid, p.weight, p.cap,
		p.pinned ? ", vCPUs pinned" : "");
	record_live(h, d->ref, params);
	return 0;
}

/* d (if any) back to what its VM's record says, after a refused change. */
static void restore(struct dom *d)
{
	XN_AUTOERR xn_error *err = NULL;
	if (d && dom_apply(d, NULL, &err) < 0)
		xn_warn("vm %s: cannot restore its VCPUs_params: %s", d->uuid, err->message);
}

/* ---- hooks ------------------------------------------------------------- */

int xn_dom_resources_start(struct dom *d, xn_error **err)
{
	if (dom_apply(d, NULL, err) < 0)
		return -1;
	xn_dom_memory_start(d, false);
	return 0;
}

void xn_dom_resources_reattach(struct dom *d)
{
	XN_AUTOERR xn_error *err = NULL;
	if (dom_apply(d, NULL, &err) < 0)
		xn_warn("vm %s: cannot apply VCPUs_params again: %s", d->uuid, err->message);
	xn_dom_memory_start(d, true);
}

/* Removing a group whose last process is still exiting fails (EBUSY):
 * try again for a while. */
struct drop {
	uv_timer_t timer;
	char *name;
	int tries;
};

static void drop_closed(uv_handle_t *t)
{
	struct drop *dr = t->data;
	free(dr->name);
	free(dr);
}

static void drop_retry(uv_timer_t *t)
{
	struct drop *dr = t->data;
	XN_AUTOERR xn_error *err = NULL;
	if (xn_cgroup_remove(cgroups, dr->name, &err) < 0 && ++dr->tries < 50) {
		uv_timer_start(t, drop_retry, 100, 0);
		return;
	}
	if (err)
		xn_warn("vm %s: %s", dr->name, err->message);
	uv_close((uv_handle_t *)t, drop_closed);
}

static void drop_group(xn_host *h, const char *name)
{
	if (!cgroups || xn_cgroup_remove(cgroups, name, NULL) == 0)
		return;
	struct drop *dr = xn_calloc(1, sizeof(*dr));
	dr->name = xn_strdup(name);
	uv_timer_init(h->loop, &dr->timer);
	dr->timer.data = dr;
	uv_timer_start(&dr->timer, drop_retry, 100, 0);
}

void xn_dom_resources_release(struct dom *d)
{
	drop_group(d->h, d->uuid);
}

void xn_vm_resources_init(xn_host *h)
{
	host_set();
	xn_cgroups_free(cgroups);
	XN_AUTOERR xn_error *err = NULL;
	cgroups = xn_cgroups_open("xenia", &err);
	if (!cgroups) {
		xn_warn("vm: no CPU weight or cap for VMs: %s", err->message);
		return;
	}
	/* Groups of other daemons' VMs (not in our records) are theirs. */
	XN_AUTOSTRV char **names = xn_cgroup_list(cgroups);
	for (size_t i = 0; names[i]; i++) {
		const char *vm = xn_db_ref_by_uuid(h->db, xn_model_class("VM"), names[i]);
		if (vm && !xn_dom_find(h, vm)) {
			xn_info("vm %s: removing the cgroup of a VM that no longer runs", names[i]);
			drop_group(h, names[i]);
		}
	}
}

/* ---- VM.set_VCPUs_params, add_to_, remove_from_ ------------------------- */

/* The map a generic VCPUs_params setter would leave (new reference), or
 * NULL when the call is malformed (the accessor then refuses it). */
static json_t *params_after(xn_call *c, const char *verb, json_t *cur)
{
	json_t *k = xn_call_arg(c, 1), *v = xn_call_arg(c, 2);
	if (strcmp(verb, "set_VCPUs_params") == 0) {
		const char *key;
		json_t *val;
		json_object_foreach(k, key, val) if (!json_is_string(val)) return NULL;
		return json_is_object(k) ? json_deep_copy(k) : NULL;
	}
	if (!json_is_string(k) || (strcmp(verb, "add_to_VCPUs_params") == 0 && !json_is_string(v)))
		return NULL;
	json_t *next = json_is_object(cur) ? json_deep_copy(cur) : json_object();
	if (strcmp(verb, "remove_from_VCPUs_params") == 0)
		json_object_del(next, json_string_value(k));
	else
		json_object_set(next, json_string_value(k), v);
	return next;
}

/* Check the map next for vm and, if the VM runs, apply it; a running VM
 * that cannot take it goes back to its record's settings. -1 with err. */
static int apply_change(xn_host *h, const char *vm, json_t *next, xn_error **err)
{
	xn_vcpu_params p;
	if (vm_params(h, vm, next, &p, err) < 0)
		return -1;
	struct dom *d = xn_dom_find(h, vm);
	if (!d || dom_apply(d, next, err) == 0)
		return 0;
	restore(d);
	return -1;
}

struct params_set {
	xn_host *h;
	char *vm;
	xn_call_done done;
	void *ud;
};

/* After the accessor: if it refused, the running VM goes back to what
 * the (unchanged) record says. */
static void params_set_done(void *ud, json_t *result, const xn_type *type, const xn_error *err)
{
	struct params_set *q = ud;
	if (err)
		restore(xn_dom_find(q->h, q->vm));
	q->done(q->ud, result, type, err);
	free(q->vm);
	free(q);
}

static void params_set(xn_call *c)
{
	xn_host *h = c->host;
	const char *verb = strchr(c->method, '.') + 1;
	const char *vm = xn_call_arg_str(c, 0);
	const xn_class *cls = xn_model_class("VM");
	json_t *cur = xn_db_field(h->db, vm, "VCPUs_params");
	json_t *next = c->role >= XN_ROLE_VM_ADMIN && xn_db_class_of(h->db, vm) == cls
			       ? params_after(c, verb, cur)
			       : NULL;
	if (!next) { /* the accessor refuses it, as for any field */
		xn_accessor_call(c, cls, verb);
		return;
	}
	xn_error *err = NULL;
	bool dup = strcmp(verb, "add_to_VCPUs_params") == 0 &&
		   json_object_get(cur, xn_call_arg_str(c, 1));
	xn_vcpu_params p;
	int rc = dup ? vm_params(h, vm, next, &p, &err) : apply_change(h, vm, next, &err);
	json_decref(next);
	if (rc < 0) {
		xn_call_fail(c, err);
		return;
	}
	struct params_set *q = xn_calloc(1, sizeof(*q));
	*q = (struct params_set){.h = h, .vm = xn_strdup(vm), .done = c->done, .ud = c->done_ud};
	c->done = params_set_done;
	c->done_ud = q;
	xn_accessor_call(c, cls, verb);
}

/* VM.add_to_VCPUs_params_live: a running VM's key set (replaced if there)
 * and applied at once. */
static void params_add_live(xn_call *c)
{
	xn_host *h = c->host;
	const char *vm = xn_call_arg_str(c, 0);
	xn_error *err = NULL;
	if (xn_vm_check_op(vm, xn_db_get(h->db, vm), "changing_VCPUs_live", &err) < 0) {
		xn_call_fail(c, err);
		return;
	}
	json_t *cur = xn_db_field(h->db, vm, "VCPUs_params");
	json_t *next = json_is_object(cur) ? json_deep_copy(cur) : json_object();
	json_object_set(next, xn_call_arg_str(c, 1), xn_call_arg(c, 2));
	int rc = apply_change(h, vm, next, &err);
	if (rc == 0) {
		xn_changes *cs = xn_changes_new(h->db);
		xn_changes_set(cs, vm, "VCPUs_params", json_incref(next));
		rc = xn_db_commit(h->db, cs, &err);
		if (rc < 0)
			restore(xn_dom_find(h, vm));
	}
	json_decref(next);
	if (rc < 0)
		xn_call_fail(c, err);
	else
		xn_call_return(c, NULL);
}

const xn_api_method xn_vm_resources_methods[] = {
	{"VM.set_VCPUs_params", params_set},
	{"VM.add_to_VCPUs_params", params_set},
	{"VM.remove_from_VCPUs_params", params_set},
	{"VM.add_to_VCPUs_params_live", params_add_live},
	{NULL, NULL},
};
