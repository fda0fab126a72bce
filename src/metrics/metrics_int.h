/* metrics_int.h: what the files of src/metrics/ share (not a public
 * header: other modules use metrics.h).
 *
 * A data source is one named series of one owner, the host or a VM
 * ("cpu0", "memory", "vbd_vda_write"), with xapi's description fields.
 * In memory a set of them is a JSON object name -> record:
 *   {"value": 0.25, "units": "(fraction)", "min": 0.0, "max": 1.0,
 *    "standard": true, "description": "CPU0 usage"}
 * where a missing min or max means unbounded. The sampler (sampler.c)
 * makes one such set per owner every 5 seconds; the RRD store (rrd.c)
 * archives the standard ones (and those record_data_source enabled);
 * the API (ds_api.c), /rrd_updates (rrd_updates.c) and /metrics
 * (prometheus.c) read them. Everything here runs on the loop thread
 * except the RRD store's jobs, which run one at a time on the thread
 * pool. */
#ifndef XN_METRICS_INT_H
#define XN_METRICS_INT_H

#include <jansson.h>
#include <time.h>

#include "host/host.h"
#include "metrics/metrics.h"

/* Seconds between samples, and the RRD step. */
#define XN_METRICS_STEP 5

/* ---- data sources (ds.c) ------------------------------------------------ */

/* Put data source name into set with its value and description (a
 * printf format). min/max: NAN when unbounded. */
void xn_ds_put(json_t *set, const char *name, double value, const char *units, double min,
	       double max, bool standard, const char *fmt, ...) XN_PRINTF(8, 9);
/* The XenAPI data_source record of ds (a set member or an archived
 * description): value is NAN when unknown (then 0.0 is shown, as xapi
 * shows for sources without a reading). */
json_t *xn_ds_record(const char *name, json_t *ds, bool enabled, double value);
/* The name rrdtool keeps for a data source: the name itself when it
 * fits rrdtool's rules (1-19 of [A-Za-z0-9_]), else "x" and 18 hex
 * digits of a hash of it. Caller frees. */
char *xn_ds_rrd_name(const char *name);
/* A float as xapi writes it in /rrd_updates ("%0.5g"; "NaN",
 * "Infinity", "0.0"). buf of at least 32 bytes. */
const char *xn_ds_format(double v, char *buf, size_t len);

/* ---- live state (metrics.c) --------------------------------------------- */

/* One owner of data sources: the host or a running VM. */
typedef struct xn_mowner {
	char *uuid;
	char *ref;              /* VM or host ref */
	bool is_host;
	json_t *live;           /* the last sample's data sources */
	time_t time;            /* when it was taken (a multiple of the step) */
	json_t *raw;            /* the last sample's raw readings (sampler.c), counters
				 * since the owner started: cpu<i>_ns, vbd_<d>_rd_bytes, ... */
	double raw_time;        /* monotonic seconds of raw */
	int vcpus;              /* VMs: vCPUs seen at the last sample */
	struct xn_mowner *next;
} xn_mowner;

xn_mowner *xn_metrics_owners(void);
/* The owner with this uuid, or NULL. */
xn_mowner *xn_metrics_owner(const char *uuid);
/* The owner for a running VM, made if new. */
xn_mowner *xn_metrics_owner_vm(xn_host *h, const char *vm_ref);
/* Forget the owners of VMs that do not run any more. */
void xn_metrics_owners_prune(xn_host *h);
/* A sample was taken: archive it, update VM_metrics and host_metrics. */
void xn_metrics_sampled(xn_host *h, time_t t);
/* The store of RRD files. */
struct xn_rrd_store *xn_metrics_store(void);

/* ---- sampling (sampler.c) ------------------------------------------------ */

/* Start sampling every XN_METRICS_STEP seconds on h's loop. */
void xn_sampler_start(xn_host *h);
void xn_sampler_stop(void);

/* Pure parsers, exposed for the unit tests. */
/* Per-CPU busy and total jiffies from a /proc/stat text: "cpu0 ..."
 * lines into busy[i], total[i] for i < max; returns the CPU count. */
int xn_sampler_parse_stat(const char *text, double *busy, double *total, int max);
/* A field of a /proc/meminfo text in KiB, or -1. */
long long xn_sampler_meminfo(const char *text, const char *field);

/* ---- RRD files (rrd.c) ---------------------------------------------------- */

typedef struct xn_rrd_store xn_rrd_store;

/* Open the store in dir (made if missing): every owner's archive
 * description (<uuid>.json beside <uuid>.rrd) is read now. */
xn_rrd_store *xn_rrd_store_open(uv_loop_t *loop, const char *dir, xn_error **err);
/* Finish the queued jobs (running the loop) and free the store. */
void xn_rrd_store_close(xn_rrd_store *s);
/* What uuid's RRD archives: name -> description plus "enabled" (false:
 * forgotten, kept so record_data_source can bring it back). Borrowed;
 * NULL if uuid has no RRD. */
json_t *xn_rrd_archived(xn_rrd_store *s, const char *uuid);
/* Every owner's description: uuid -> name -> description (borrowed). */
json_t *xn_rrd_described(xn_rrd_store *s);
/* Whether name is archived (and enabled) for uuid. */
bool xn_rrd_has(xn_rrd_store *s, const char *uuid, const char *name);
/* Archive a sample of uuid taken at t: its standard data sources and
 * those enabled by xn_rrd_enable; new ones are added to the file. */
void xn_rrd_update(xn_rrd_store *s, const char *uuid, time_t t, json_t *live);
/* record_data_source: archive name (described by ds) from now on. */
void xn_rrd_enable(xn_rrd_store *s, const char *uuid, const char *name, json_t *ds);
/* forget_data_source_archives: drop name's archive (-1 if it has none). */
int xn_rrd_forget(xn_rrd_store *s, const char *uuid, const char *name);
/* Remove uuid's RRD (its VM was destroyed). */
void xn_rrd_remove(xn_rrd_store *s, const char *uuid);

/* Fetched series: rows newest first, as /rrd_updates returns them. */
typedef struct xn_rrd_table {
	long start, step, end;  /* xapi's meta fields */
	size_t ncols, nrows;
	char **legend;          /* "AVERAGE:vm:<uuid>:cpu0", ncols */
	long *times;            /* nrows */
	double *data;           /* nrows * ncols, row-major; NAN: unknown */
} xn_rrd_table;
void xn_rrd_table_free(xn_rrd_table *t);

/* One owner to fetch: its uuid and its legend prefix ("vm:<uuid>:"). */
typedef struct xn_rrd_want {
	char *uuid, *prefix;
} xn_rrd_want;
typedef void (*xn_rrd_fetch_fn)(void *ud, xn_rrd_table *t /* taken */, xn_error *err);
/* Read the archives of wants (n of them) from start (negative: that many
 * seconds before the last update) at the resolution fitting interval
 * seconds, consolidated with cf ("AVERAGE", "MIN", "MAX"; NULL: every
 * one kept at that resolution). The choice of archive and the rows are
 * xapi's (Rrd_updates.create_multi). */
void xn_rrd_fetch(xn_rrd_store *s, const xn_rrd_want *wants, size_t n, long start,
		  long interval, const char *cf, xn_rrd_fetch_fn fn, void *ud);

/* ---- HTTP endpoints -------------------------------------------------------- */

/* GET /rrd_updates (rrd_updates.c) and GET /metrics (prometheus.c). */
void xn_rrd_updates_init(xn_host *h);
void xn_prometheus_init(xn_host *h);
/* The /rrd_updates document of t: xapi's xport XML, or its JSON. Caller frees. */
char *xn_rrd_updates_xml(const xn_rrd_table *t, size_t *len);
char *xn_rrd_updates_json(const xn_rrd_table *t, size_t *len);
/* The Prometheus text of the owners' live state (caller frees). */
char *xn_prometheus_text(xn_host *h);

/* ---- XenAPI (ds_api.c) ---------------------------------------------------- */

extern const xn_api_method xn_ds_api_methods[];

#endif
