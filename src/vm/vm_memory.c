/* vm_memory.c: a VM's memory limits and vCPU counts (the VM.set_memory_*
 * and set_VCPUs_* messages), and the memory balloon of running VMs
 * (vm_resources.h).
 *
 * Limits: 16 MiB <= static_max, static_min <= dynamic_min <=
 * dynamic_max <= static_max, else MEMORY_CONSTRAINT_VIOLATION, checked
 * on the record as the change would leave it. QEMU gets static_max as
 * its RAM, so the static limits and the vCPU counts change on halted
 * VMs only (xapi's rule; no memory hot-add above static_max). The
 * dynamic range changes on running VMs too: the balloon (virtio-balloon,
 * device balloon0) is asked for the new target first, and the record
 * changes only once QEMU took it.
 *
 * The target: this host does not squeeze VMs when its memory runs short,
 * so a running VM's balloon target is the top of its dynamic range,
 * dynamic_max (set_memory_dynamic_range(t, t), which `xe
 * vm-memory-target-set` sends, makes it exactly t), and
 * VM.memory_target says what it is. The deprecated
 * set_memory_target_live moves the target within the dynamic range
 * without changing it. How far the guest got shows in
 * VM_metrics.memory_actual, from QEMU's BALLOON_CHANGE events. */
#include "vm/vm_resources.h"

#include <stdlib.h>
#include <string.h>

#include "util/log.h"

/* How often QEMU asks the guest for its memory statistics (seconds). */
#define STATS_INTERVAL_S 5

/* ---- the balloon ---------------------------------------------------------- */

static void record_metric(xn_host *h, const char *vm, const char *field, json_int_t v)
{
	const char *m = xn_db_str(h->db, vm, "metrics");
	if (!xn_db_get(h->db, m) || xn_db_int(h->db, m, field) == v)
		return;
	xn_changes *cs = xn_changes_new(h->db);
	xn_changes_set(cs, m, field, json_integer(v));
	XN_AUTOERR xn_error *err = NULL;
	if (xn_db_commit(h->db, cs, &err) < 0)
		xn_warn("vm %s: cannot record %s: %s", xn_db_str(h->db, vm, "uuid"), field,
			err->message);
}

/* data: BALLOON_CHANGE's or query-balloon's {"actual": bytes}. */
static void record_actual(xn_host *h, const char *vm, json_t *data)
{
	json_t *actual = json_object_get(data, "actual");
	if (json_is_integer(actual))
		record_metric(h, vm, "memory_actual", json_integer_value(actual));
}

void xn_dom_balloon_changed(struct dom *d, json_t *data)
{
	record_actual(d->h, d->ref, data);
}

/* A reply only logged: ud is "vm <uuid>: <what>" (freed here). */
static void reply_logged(void *ud, json_t *ret, const xn_error *err)
{
	(void)ret;
	if (err)
		xn_warn("%s: %s", (char *)ud, err->message);
	free(ud);
}

struct balloon_query {
	xn_host *h;
	char *vm;
};

static void balloon_queried(void *ud, json_t *ret, const xn_error *err)
{
	struct balloon_query *q = ud;
	if (!err)
		record_actual(q->h, q->vm, ret);
	free(q->vm);
	free(q);
}

static json_t *balloon_args(json_int_t target)
{
	return json_pack("{s:I}", "value", (json_int_t)target);
}

void xn_dom_memory_start(struct dom *d, bool reattached)
{
	xn_host *h = d->h;
	json_int_t target = xn_db_int(h->db, d->ref, "memory_dynamic_max");
	json_int_t recorded = xn_db_int(h->db, d->ref, "memory_target");
	if (reattached && recorded >= xn_db_int(h->db, d->ref, "memory_dynamic_min") &&
	    recorded <= target)
		target = recorded; /* set_memory_target_live's, kept */
	xn_dom_qmp(d, "qom-set",
		   json_pack("{s:s,s:s,s:i}", "path", "/machine/peripheral/balloon0", "property",
			     "guest-stats-polling-interval", "value", STATS_INTERVAL_S),
		   reply_logged, xn_asprintf("vm %s: balloon statistics", d->uuid));
	xn_dom_qmp(d, "balloon", balloon_args(target), reply_logged,
		   xn_asprintf("vm %s: balloon target", d->uuid));
	struct balloon_query *q = xn_calloc(1, sizeof(*q));
	*q = (struct balloon_query){.h = h, .vm = xn_strdup(d->ref)};
	xn_dom_qmp(d, "query-balloon", NULL, balloon_queried, q);
	if (xn_db_int(h->db, d->ref, "memory_target") == target)
		return;
	XN_AUTOERR xn_error *err = NULL;
	if (xn_db_set(h->db, d->ref, "memory_target", json_integer(target), &err) < 0)
		xn_warn("vm %s: cannot record memory_target: %s", d->uuid, err->message);
}

/* ---- setters ------------------------------------------------------------ */

/* A change waiting for the balloon: then fields (and memory_target) are
 * recorded and the call answered. */
struct mem_change {
	xn_call *call;
	char *vm;
	json_t *fields;   /* field -> new value */
};

static void commit_fields(xn_call *c, const char *vm, json_t *fields)
{
	xn_changes *cs = xn_changes_new(c->host->db);
	const char *k;
	json_t *v;
	json_object_foreach(fields, k, v) xn_changes_set(cs, vm, k, json_incref(v));
	xn_error *err = NULL;
	if (xn_db_commit(c->host->db, cs, &err) < 0)
		xn_call_fail(c, err);
	else
		xn_call_return(c, NULL);
}

static void ballooned(void *ud, json_t *ret, const xn_error *err)
{
	struct mem_change *m = ud;
	(void)ret;
	if (err) {
		xn_error *e = NULL;
		xn_fail_internal(&e, "cannot move the balloon: %s", err->message);
		xn_call_fail(m->call, e);
	} else {
		commit_fields(m->call, m->vm, m->fields);
	}
	json_decref(m->fields);
	free(m->vm);
	free(m);
}

/* Ask d's balloon for target bytes; then record fields (taken) and
 * memory_target, and answer c. */
static void balloon_then_commit(xn_call *c, struct dom *d, json_int_t target, json_t *fields)
{
	json_object_set_new(fields, "memory_target", json_integer(target));
	struct mem_change *m = xn_calloc(1, sizeof(*m));
	*m = (struct mem_change){.call = c, .vm = xn_strdup(d->ref), .fields = fields};
	xn_info("vm %s: balloon target %lld MiB", d->uuid, (long long)(target >> 20));
	xn_dom_qmp(d, "balloon", balloon_args(target), ballooned, m);
}

static int constraint_violation(xn_call *c)
{
	xn_call_fail_code(c, "MEMORY_CONSTRAINT_VIOLATION",
			  "Memory limits must satisfy: 16 MiB <= static_max, "
			  "static_min <= dynamic_min <= dynamic_max <= static_max", NULL);
	return -1;
}

/* The record as fields[i] = values[i] would leave it passes the checks. */
static int check_limits(xn_call *c, json_t *rec, const char **fields, json_int_t *values,
			size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (values[i] < 0 || (strstr(fields[i], "VCPUs") && values[i] < 1)) {
			XN_AUTOFREE char *s = xn_asprintf("%lld", (long long)values[i]);
			xn_call_fail_code(c, "INVALID_VALUE", fields[i], s, NULL);
			return -1;
		}
	}
	json_t *next = json_deep_copy(rec);
	for (size_t i = 0; i < n; i++)
		json_object_set_new(next, fields[i], json_integer(values[i]));
#define G(f) json_integer_value(json_object_get(next, f))
	json_int_t smin = G("memory_static_min"), dmin = G("memory_dynamic_min"),
		   dmax = G("memory_dynamic_max"), smax = G("memory_static_max");
	json_int_t vmax = G("VCPUs_max"), vstart = G("VCPUs_at_startup");
#undef G
	json_decref(next);
	if (!(smin <= dmin && dmin <= dmax && dmax <= smax) || smax < (16 << 20))
		return constraint_violation(c);
	if (vstart > vmax || vmax > XN_VM_MAX_VCPUS) {
		XN_AUTOFREE char *s = xn_asprintf("%lld", (long long)vstart);
		xn_call_fail_code(c, "INVALID_VALUE", "VCPUs_at_startup", s, NULL);
		return -1;
	}
	return 0;
}

static void set_fields(xn_call *c, const char *op, const char **fields, json_int_t *values,
		       size_t n)
{
	xn_host *h = c->host;
	const char *vm = xn_call_arg_str(c, 0);
	json_t *rec = xn_db_get(h->db, vm);
	xn_error *err = NULL;
	if (xn_vm_check_op(vm, rec, op, &err) < 0) {
		xn_call_fail(c, err);
		return;
	}
	if (check_limits(c, rec, fields, values, n) < 0)
		return;
	json_t *changes = json_object();
	json_int_t dmax = xn_db_int(h->db, vm, "memory_dynamic_max");
	for (size_t i = 0; i < n; i++) {
		json_object_set_new(changes, fields[i], json_integer(values[i]));
		if (strcmp(fields[i], "memory_dynamic_max") == 0)
			dmax = values[i];
	}
	struct dom *d = xn_dom_find(h, vm);
	if (d && strcmp(op, "changing_dynamic_range") == 0) {
		balloon_then_commit(c, d, dmax, changes);
		return;
	}
	commit_fields(c, vm, changes);
	json_decref(changes);
}

#define SETTER(fn, op, field)                                          \
	static void fn(xn_call *c)                                     \
	{                                                              \
		const char *f[] = {field};                             \
		json_int_t v[] = {xn_call_arg_int(c, 1)};              \
		set_fields(c, op, f, v, 1);                            \
	}
SETTER(set_static_max, "changing_static_range", "memory_static_max")
SETTER(set_static_min, "changing_static_range", "memory_static_min")
SETTER(set_dynamic_max, "changing_dynamic_range", "memory_dynamic_max")
SETTER(set_dynamic_min, "changing_dynamic_range", "memory_dynamic_min")
SETTER(set_vcpus_max, "changing_VCPUs", "VCPUs_max")
SETTER(set_vcpus_at_startup, "changing_VCPUs", "VCPUs_at_startup")
#undef SETTER

/* Two fields at once: (min, max) of a range. */
#define RANGE_SETTER(fn, op, lo, hi)                                          \
	static void fn(xn_call *c)                                            \
	{                                                                     \
		const char *f[] = {lo, hi};                                   \
		json_int_t v[] = {xn_call_arg_int(c, 1), xn_call_arg_int(c, 2)}; \
		set_fields(c, op, f, v, 2);                                   \
	}
RANGE_SETTER(set_dynamic_range, "changing_dynamic_range", "memory_dynamic_min",
	     "memory_dynamic_max")
RANGE_SETTER(set_static_range, "changing_static_range", "memory_static_min",
	     "memory_static_max")
#undef RANGE_SETTER

static void set_memory_limits(xn_call *c)
{
	const char *f[] = {"memory_static_min", "memory_static_max", "memory_dynamic_min",
			   "memory_dynamic_max"};
	json_int_t v[] = {xn_call_arg_int(c, 1), xn_call_arg_int(c, 2), xn_call_arg_int(c, 3),
			  xn_call_arg_int(c, 4)};
	set_fields(c, "changing_memory_limits", f, v, 4);
}

static void set_memory(xn_call *c)
{
	const char *f[] = {"memory_static_max", "memory_dynamic_max", "memory_dynamic_min"};
	json_int_t x = xn_call_arg_int(c, 1);
	json_int_t v[] = {x, x, x};
	set_fields(c, "changing_memory_limits", f, v, 3);
}

/* Deprecated in xapi: the balloon target of a running VM, within its
 * dynamic range, which stays as it is. */
static void set_target_live(xn_call *c)
{
	xn_host *h = c->host;
	const char *vm = xn_call_arg_str(c, 0);
	json_int_t target = xn_call_arg_int(c, 1);
	xn_error *err = NULL;
	if (xn_vm_check_op(vm, xn_db_get(h->db, vm), "changing_memory_live", &err) < 0) {
		xn_call_fail(c, err);
		return;
	}
	struct dom *d = xn_dom_find(h, vm);
	if (!d) {
		xn_call_fail_code(c, "VM_BAD_POWER_STATE", vm, "running", "halted", NULL);
		return;
	}
	if (target < xn_db_int(h->db, vm, "memory_dynamic_min") ||
	    target > xn_db_int(h->db, vm, "memory_dynamic_max")) {
		xn_call_fail_code(c, "MEMORY_CONSTRAINT_VIOLATION",
				  "dynamic_min <= target <= dynamic_max", NULL);
		return;
	}
	balloon_then_commit(c, d, target, json_object());
}

const xn_api_method xn_vm_memory_methods[] = {
	{"VM.set_memory_static_max", set_static_max},
	{"VM.set_memory_static_min", set_static_min},
	{"VM.set_memory_dynamic_max", set_dynamic_max},
	{"VM.set_memory_dynamic_min", set_dynamic_min},
	{"VM.set_memory_dynamic_range", set_dynamic_range},
	{"VM.set_memory_static_range", set_static_range},
	{"VM.set_memory_limits", set_memory_limits},
	{"VM.set_memory", set_memory},
	{"VM.set_memory_target_live", set_target_live},
	{"VM.set_VCPUs_max", set_vcpus_max},
	{"VM.set_VCPUs_at_startup", set_vcpus_at_startup},
	{NULL, NULL},
};
