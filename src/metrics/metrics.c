/* metrics.c: the module's glue (metrics.h): the live state of each
 * owner of data sources, what happens after each sample (archive it,
 * keep VM_metrics and host_metrics current), start-up, and the removal
 * of a destroyed VM's RRD.
 *
 * VM_metrics and host_metrics are written in one commit per sample, and
 * only with the fields that changed (utilisations rounded to 0.01), so
 * idle VMs cost no database writes and send no events. */
#include "metrics/metrics_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"
#include "util/uuid.h"
#include "vm/vm.h"

static xn_mowner *owners;
static xn_rrd_store *store;

xn_mowner *xn_metrics_owners(void)
{
	return owners;
}

xn_rrd_store *xn_metrics_store(void)
{
	return store;
}

xn_mowner *xn_metrics_owner(const char *uuid)
{
	for (xn_mowner *o = owners; o; o = o->next)
		if (strcmp(o->uuid, uuid) == 0)
			return o;
	return NULL;
}

static xn_mowner *owner_new(const char *uuid, const char *ref, bool is_host)
{
	xn_mowner *o = xn_calloc(1, sizeof(*o));
	o->uuid = xn_strdup(uuid);
	o->ref = xn_strdup(ref);
	o->is_host = is_host;
	o->live = json_object();
	o->next = owners;
	owners = o;
	return o;
}

static void owner_free(xn_mowner *o)
{
	free(o->uuid);
	free(o->ref);
	json_decref(o->live);
	json_decref(o->raw);
	free(o);
}

xn_mowner *xn_metrics_owner_vm(xn_host *h, const char *vm_ref)
{
	const char *uuid = xn_db_str(h->db, vm_ref, "uuid");
	xn_mowner *o = xn_metrics_owner(uuid);
	return o ? o : owner_new(uuid, vm_ref, false);
}

void xn_metrics_owners_prune(xn_host *h)
{
	for (xn_mowner **p = &owners; *p;) {
		xn_mowner *o = *p;
		if (o->is_host || xn_vm_qemu_pid(h, o->ref) > 0) {
			p = &o->next;
			continue;
		}
		*p = o->next;
		owner_free(o);
	}
}

/* ---- VM_metrics and host_metrics ---------------------------------------- */

static double live_value(xn_mowner *o, const char *name)
{
	json_t *v = json_object_get(json_object_get(o->live, name), "value");
	return json_is_number(v) ? json_number_value(v) : NAN;
}

/* Set field of rec to v (taken) if it differs; true if it did. */
static bool set_if_changed(json_t *rec, const char *field, json_t *v)
{
	if (json_equal(json_object_get(rec, field), v)) {
		json_decref(v);
		return false;
	}
	json_object_set_new(rec, field, v);
	return true;
}

static void vm_metrics(xn_host *h, xn_changes *cs, xn_mowner *o)
{
	const char *m = xn_db_str(h->db, o->ref, "metrics");
	json_t *cur = xn_db_get(h->db, m);
	if (!cur || xn_ref_is_null(m))
		return;
	json_t *rec = json_deep_copy(cur);
	bool changed = false;
	double mem = live_value(o, "memory");
	if (isfinite(mem))
		changed |= set_if_changed(rec, "memory_actual", json_integer((json_int_t)mem));
	json_t *util = json_object();
	for (int i = 0; i < o->vcpus; i++) {
		char k[16], name[16];
		snprintf(k, sizeof(k), "%d", i);
		snprintf(name, sizeof(name), "cpu%d", i);
		double v = live_value(o, name);
		json_object_set_new(util, k, json_real(isfinite(v) ? round(v * 100) / 100 : 0.0));
	}
	changed |= set_if_changed(rec, "VCPUs_utilisation", util);
	if (o->vcpus > 0)
		changed |= set_if_changed(rec, "VCPUs_number", json_integer(o->vcpus));
	if (changed) {
		json_object_set_new(rec, "last_updated", xn_datetime_now());
		json_t *e = xn_changes_edit(cs, m);
		json_object_update(e, rec);
	}
	json_decref(rec);
}

static void host_metrics(xn_host *h, xn_changes *cs, xn_mowner *o)
{
	const char *m = xn_db_str(h->db, h->host_ref, "metrics");
	json_t *cur = xn_db_get(h->db, m);
	if (!cur)
		return;
	json_t *rec = json_deep_copy(cur);
	bool changed = false;
	double total = live_value(o, "memory_total_kib"), free_kib = live_value(o, "memory_free_kib");
	if (isfinite(total))
		changed |= set_if_changed(rec, "memory_total", json_integer((json_int_t)total * 1024));
	if (isfinite(free_kib))
		changed |= set_if_changed(rec, "memory_free", json_integer((json_int_t)free_kib * 1024));
	if (changed) {
		json_object_set_new(rec, "last_updated", xn_datetime_now());
		json_object_update(xn_changes_edit(cs, m), rec);
	}
	json_decref(rec);
}

void xn_metrics_sampled(xn_host *h, time_t t)
{
	xn_changes *cs = xn_changes_new(h->db);
	for (xn_mowner *o = owners; o; o = o->next) {
		if (o->time != t)
			continue;
		xn_rrd_update(store, o->uuid, t, o->live);
		if (o->is_host)
			host_metrics(h, cs, o);
		else
			vm_metrics(h, cs, o);
	}
	XN_AUTOERR xn_error *err = NULL;
	if (xn_db_commit(h->db, cs, &err) < 0)
		xn_warn("metrics: cannot record VM_metrics: %s", err->message);
}

/* ---- start ---------------------------------------------------------------- */

/* A destroyed VM's RRD goes with it. */
static void on_commit(void *ud, uint64_t gen, const xn_class *cls, const char *ref,
		      enum xn_db_op op, json_t *record)
{
	(void)ud;
	(void)gen;
	(void)ref;
	if (op != XN_DB_DEL || cls != xn_model_class("VM"))
		return;
	const char *uuid = json_string_value(json_object_get(record, "uuid"));
	if (uuid && xn_rrd_archived(store, uuid))
		xn_rrd_remove(store, uuid);
}

void xn_metrics_register(xn_api *api)
{
	xn_api_register(api, xn_ds_api_methods);
}

int xn_metrics_init(xn_host *h, xn_error **err)
{
	XN_AUTOFREE char *dir = xn_asprintf("%s/rrd", h->data_dir);
	store = xn_rrd_store_open(h->loop, dir, err);
	if (!store)
		return -1;
	owner_new(xn_db_str(h->db, h->host_ref, "uuid"), h->host_ref, true);
	xn_db_listen(h->db, on_commit, h);
	/* RRDs of VMs destroyed while the daemon was down go now */
	const char *host_uuid = xn_db_str(h->db, h->host_ref, "uuid");
	json_t *gone = json_array();
	const char *uuid;
	json_t *desc;
	json_object_foreach(xn_rrd_described(store), uuid, desc)
		if (strcmp(uuid, host_uuid) != 0 &&
		    !xn_db_ref_by_uuid(h->db, xn_model_class("VM"), uuid))
			json_array_append_new(gone, json_string(uuid));
	size_t i;
	json_t *g;
	json_array_foreach(gone, i, g)
		xn_rrd_remove(store, json_string_value(g));
	json_decref(gone);
	xn_rrd_updates_init(h);
	xn_prometheus_init(h);
	const char *off = getenv("XENIA_NO_SAMPLING");
	if (off && strcmp(off, "1") == 0)
		xn_info("metrics: sampling is off (XENIA_NO_SAMPLING=1)");
	else
		xn_sampler_start(h);
	return 0;
}

void xn_metrics_stop(void)
{
	xn_sampler_stop();
}
