/* ds_api.c: the data-source messages of VM and host (metrics_int.h):
 * get_data_sources, query_data_source, record_data_source and
 * forget_data_source_archives.
 *
 * A data source is live when the last sample had it (running VMs, the
 * host) and archived when its owner's RRD keeps it (xapi's "enabled");
 * get_data_sources lists both. query_data_source answers with the last
 * sampled value, or for a source that is only archived (a VM that
 * stopped) with the last value its RRD kept in the last 10 minutes.
 * Names that are neither get INVALID_VALUE [data_source, name]. */
#include "metrics/metrics_int.h"

#include <math.h>
#include <string.h>

/* The uuid whose data sources a call is about (its first argument, a
 * VM or host ref), borrowed from the database. */
static const char *subject_uuid(xn_call *c)
{
	return xn_db_str(c->host->db, xn_call_arg_str(c, 0), "uuid");
}

static json_t *live_of(const char *uuid)
{
	xn_mowner *o = xn_metrics_owner(uuid);
	return o ? o->live : NULL;
}

static void get_data_sources(xn_call *c)
{
	const char *uuid = subject_uuid(c);
	json_t *live = live_of(uuid);
	json_t *archived = xn_rrd_archived(xn_metrics_store(), uuid);
	json_t *out = json_array();
	const char *name;
	json_t *ds;
	json_object_foreach(live, name, ds)
		json_array_append_new(out, xn_ds_record(name, ds, json_object_get(archived, name) != NULL,
						      json_number_value(json_object_get(ds, "value"))));
	json_object_foreach(archived, name, ds)
		if (!json_object_get(live, name))
			json_array_append_new(out, xn_ds_record(name, ds, true, NAN));
	xn_call_return(c, out);
}

static void fail_unknown(xn_call *c, const char *name)
{
	xn_call_fail_code(c, "INVALID_VALUE", "data_source", name, NULL);
}

struct query {
	xn_call *c;
	char *want;   /* "AVERAGE:<name>" */
	char *name;
};

static void queried(void *ud, xn_rrd_table *t, xn_error *err)
{
	struct query *q = ud;
	double v = NAN;
	for (size_t col = 0; t && col < t->ncols && !err; col++) {
		if (strcmp(t->legend[col], q->want) != 0)
			continue;
		for (size_t r = 0; r < t->nrows && isnan(v); r++)
			v = t->data[r * t->ncols + col];
	}
	if (err)
		xn_call_fail(q->c, err);
	else if (!isfinite(v))
		fail_unknown(q->c, q->name);
	else
		xn_call_return(q->c, json_real(v));
	xn_rrd_table_free(t);
	free(q->want);
	free(q->name);
	free(q);
}

static void query_data_source(xn_call *c)
{
	const char *uuid = subject_uuid(c);
	const char *name = xn_call_arg_str(c, 1);
	json_t *v = json_object_get(json_object_get(live_of(uuid), name), "value");
	if (json_is_number(v)) {
		xn_call_return(c, json_real(json_number_value(v)));
		return;
	}
	if (!xn_rrd_has(xn_metrics_store(), uuid, name)) {
		fail_unknown(c, name);
		return;
	}
	struct query *q = xn_calloc(1, sizeof(*q));
	q->c = c;
	q->want = xn_asprintf("AVERAGE:%s", name);
	q->name = xn_strdup(name);
	xn_rrd_want w = {(char *)uuid, ""};
	xn_rrd_fetch(xn_metrics_store(), &w, 1, -600, XN_METRICS_STEP, "AVERAGE", queried, q);
}

static void record_data_source(xn_call *c)
{
	const char *uuid = subject_uuid(c);
	const char *name = xn_call_arg_str(c, 1);
	json_t *ds = json_object_get(live_of(uuid), name);
	if (!ds && !xn_rrd_has(xn_metrics_store(), uuid, name)) {
		fail_unknown(c, name);
		return;
	}
	if (ds)
		xn_rrd_enable(xn_metrics_store(), uuid, name, ds);
	xn_call_return(c, NULL);
}

static void forget_data_source_archives(xn_call *c)
{
	const char *uuid = subject_uuid(c);
	const char *name = xn_call_arg_str(c, 1);
	if (xn_rrd_forget(xn_metrics_store(), uuid, name) < 0 &&
	    !json_object_get(live_of(uuid), name)) {
		fail_unknown(c, name);
		return;
	}
	xn_call_return(c, NULL);
}

const xn_api_method xn_ds_api_methods[] = {
	{"VM.get_data_sources", get_data_sources},
	{"VM.query_data_source", query_data_source},
	{"VM.record_data_source", record_data_source},
	{"VM.forget_data_source_archives", forget_data_source_archives},
	{"host.get_data_sources", get_data_sources},
	{"host.query_data_source", query_data_source},
	{"host.record_data_source", record_data_source},
	{"host.forget_data_source_archives", forget_data_source_archives},
	{NULL, NULL},
};
