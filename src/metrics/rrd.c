/* rrd.c: one RRD file per owner (the host, each VM), written and read
 * with librrd (metrics_int.h).
 *
 * DATA/rrd/<uuid>.rrd holds the owner's archived data sources, each as
 * a GAUGE (the sampler computes rates itself) with a heartbeat of 300 s,
 * in xapi's archives: AVERAGE over 1 step (5 s) for 120 rows (10
 * minutes), and AVERAGE, MIN and MAX over 12 steps (2 hours), 720 steps
 * (1 week) and 17280 steps (1 year). Samples are written at multiples
 * of the step, so a 5-second row holds exactly the value sampled then.
 * rrdtool limits names to 19 characters, so DATA/rrd/<uuid>.json (the
 * archive's description) maps each data source name to its name in the
 * file and keeps its units, limits and description; it is written
 * before the file changes. A data source that appears (a hot-plugged
 * disk) or that record_data_source enables is added by writing a new
 * file whose old series are copied from the old one (rrdtool create
 * --source) and renaming it over the old one.
 *
 * File work is blocking, so it runs on the libuv thread pool, one job at
 * a time in order (updates, rewrites, reads and removals never overlap
 * and never reorder); the loop keeps the descriptions and builds each
 * job with everything it needs, so workers share nothing. */
#include "metrics/metrics_int.h"

#include <dirent.h>
#include <math.h>
#include <rrd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/fs.h"
#include "util/log.h"

#define HEARTBEAT 300

/* xapi's archives: (rows, steps per row). */
static const struct {
	int rows, pdp;
} archives[] = {{120, 1}, {120, 12}, {168, 720}, {366, 17280}};

enum job_kind { JOB_UPDATE, JOB_REMOVE, JOB_FETCH };

struct job {
	enum job_kind kind;
	xn_rrd_store *s;
	char *rrd, *sidecar;        /* paths */
	/* update */
	char *describe;             /* the new description, when the DS set changes */
	char **defs;                /* then every DS definition of the new file */
	char *template;             /* "n1:n2:..." */
	char *values;               /* "t:v1:v2:..." */
	time_t t;
	/* fetch */
	xn_rrd_want *wants;
	json_t **maps;              /* per want: rrd name -> display name */
	size_t nwants;
	long start, interval;
	char *cf;
	xn_rrd_fetch_fn fn;
	void *ud;
	xn_rrd_table *table;
	xn_error *err;
	struct job *next;
};

struct xn_rrd_store {
	uv_loop_t *loop;
	char *dir;
	json_t *described;          /* uuid -> name -> description */
	struct job *head, *tail;    /* queued, head running when busy */
	bool busy;
	uv_work_t work;
};

static char *path_of(xn_rrd_store *s, const char *uuid, const char *ext)
{
	return xn_asprintf("%s/%s.%s", s->dir, uuid, ext);
}

/* ---- the job queue ---------------------------------------------------- */

static void run_next(xn_rrd_store *s);

static void job_free(struct job *j)
{
	free(j->rrd);
	free(j->sidecar);
	free(j->describe);
	xn_strv_free(j->defs);
	free(j->template);
	free(j->values);
	for (size_t i = 0; i < j->nwants; i++) {
		free(j->wants[i].uuid);
		free(j->wants[i].prefix);
		json_decref(j->maps[i]);
	}
	free(j->wants);
	free(j->maps);
	free(j->cf);
	xn_rrd_table_free(j->table);
	xn_error_free(j->err);
	free(j);
}

static void work_update(struct job *j);
static void work_fetch(struct job *j);

static void work(uv_work_t *w)
{
	struct job *j = ((xn_rrd_store *)w->data)->head;
	switch (j->kind) {
	case JOB_UPDATE:
		work_update(j);
		break;
	case JOB_REMOVE:
		unlink(j->rrd);
		unlink(j->sidecar);
		break;
	case JOB_FETCH:
		work_fetch(j);
		break;
	}
}

static void work_done(uv_work_t *w, int status)
{
	xn_rrd_store *s = w->data;
	struct job *j = s->head;
	s->head = j->next;
	if (!s->head)
		s->tail = NULL;
	s->busy = false;
	if (j->kind == JOB_FETCH) {
		j->fn(j->ud, xn_steal(&j->table), xn_steal(&j->err));
	} else if (j->err) {
		xn_warn("metrics: %s", j->err->message);
	}
	job_free(j);
	run_next(s);
	(void)status;
}

static void run_next(xn_rrd_store *s)
{
	if (s->busy || !s->head)
		return;
	s->busy = true;
	s->work.data = s;
	uv_queue_work(s->loop, &s->work, work, work_done);
}

static void enqueue(xn_rrd_store *s, struct job *j)
{
	j->s = s;
	if (s->tail)
		s->tail->next = j;
	else
		s->head = j;
	s->tail = j;
	run_next(s);
}

/* ---- writing (worker side) ------------------------------------------------ */

static void rrd_fail(struct job *j, const char *what)
{
	xn_fail_internal(&j->err, "%s '%s': %s", what, j->rrd, rrd_get_error());
	rrd_clear_error();
}

/* Write a new file with j->defs, copying the series of the old one if
 * there is one, and rename it over the old one. */
static int rewrite(struct job *j)
{
	XN_AUTOSTRV char **argv = xn_strv_new();
	for (char **d = j->defs; *d; d++)
		xn_strv_push(&argv, *d);
	for (size_t i = 0; i < XN_ARRAY_LEN(archives); i++) {
		if (archives[i].pdp == 1) {
			xn_strv_pushf(&argv, "RRA:AVERAGE:0.5:1:%d", archives[i].rows);
			continue;
		}
		static const char *cfs[] = {"AVERAGE", "MIN", "MAX"};
		for (size_t c = 0; c < XN_ARRAY_LEN(cfs); c++)
			xn_strv_pushf(&argv, "RRA:%s:0.99:%d:%d", cfs[c], archives[i].pdp,
				      archives[i].rows);
	}
	bool old = access(j->rrd, F_OK) == 0;
	time_t last = old ? rrd_last_r(j->rrd) : j->t - XN_METRICS_STEP;
	if (last <= 0)
		last = j->t - XN_METRICS_STEP;
	XN_AUTOFREE char *tmp = xn_asprintf("%s.new", j->rrd);
	const char *sources[] = {j->rrd, NULL};
	unlink(tmp);
	if (rrd_create_r2(tmp, XN_METRICS_STEP, last, 0, old ? sources : NULL, NULL,
			  (int)xn_strv_len(argv), (const char **)argv) != 0) {
		rrd_fail(j, "cannot create");
		unlink(tmp);
		return -1;
	}
	if (rename(tmp, j->rrd) < 0) {
		xn_fail_errno(&j->err, errno, "cannot rename '%s'", tmp);
		unlink(tmp);
		return -1;
	}
	return 0;
}

static void work_update(struct job *j)
{
	if (j->describe &&
	    xn_write_file_atomic(j->sidecar, j->describe, strlen(j->describe), 0600, &j->err) < 0)
		return;
	if ((j->defs || access(j->rrd, F_OK) != 0) && rewrite(j) < 0)
		return;
	if (!j->values)
		return;
	const char *argv[] = {j->values};
	if (rrd_updatex_r(j->rrd, j->template, RRD_SKIP_PAST_UPDATES, 1, argv) != 0)
		rrd_fail(j, "cannot update");
}

/* ---- the loop side -------------------------------------------------------- */

static void load_descriptions(xn_rrd_store *s)
{
	DIR *d = opendir(s->dir);
	if (!d)
		return;
	for (struct dirent *e; (e = readdir(d));) {
		size_t n = strlen(e->d_name);
		if (n < 6 || strcmp(e->d_name + n - 5, ".json") != 0)
			continue;
		XN_AUTOFREE char *uuid = xn_strndup(e->d_name, n - 5);
		XN_AUTOFREE char *path = path_of(s, uuid, "json");
		XN_AUTOFREE char *text = xn_read_file(path, NULL, NULL);
		json_t *desc = text ? json_loads(text, 0, NULL) : NULL;
		if (json_is_object(desc))
			json_object_set_new(s->described, uuid, desc);
		else
			json_decref(desc);
	}
	closedir(d);
}

xn_rrd_store *xn_rrd_store_open(uv_loop_t *loop, const char *dir, xn_error **err)
{
	if (xn_mkdir_p(dir, 0700, err) < 0)
		return NULL;
	xn_rrd_store *s = xn_calloc(1, sizeof(*s));
	s->loop = loop;
	s->dir = xn_strdup(dir);
	s->described = json_object();
	load_descriptions(s);
	return s;
}

void xn_rrd_store_close(xn_rrd_store *s)
{
	if (!s)
		return;
	/* run what is queued to its end first */
	while (s->head)
		uv_run(s->loop, UV_RUN_ONCE);
	json_decref(s->described);
	free(s->dir);
	free(s);
}

json_t *xn_rrd_archived(xn_rrd_store *s, const char *uuid)
{
	return json_object_get(s->described, uuid);
}

json_t *xn_rrd_described(xn_rrd_store *s)
{
	return s->described;
}

bool xn_rrd_has(xn_rrd_store *s, const char *uuid, const char *name)
{
	return json_object_get(xn_rrd_archived(s, uuid), name) != NULL;
}

static char *limit_text(json_t *v)
{
	return json_is_number(v) ? xn_asprintf("%.17g", json_number_value(v)) : xn_strdup("U");
}

/* The DS definitions of a description, in its order. */
static char **definitions(json_t *desc)
{
	char **defs = xn_strv_new();
	const char *name;
	json_t *ds;
	json_object_foreach(desc, name, ds) {
		XN_AUTOFREE char *min = limit_text(json_object_get(ds, "min"));
		XN_AUTOFREE char *max = limit_text(json_object_get(ds, "max"));
		xn_strv_pushf(&defs, "DS:%s:GAUGE:%d:%s:%s",
			      json_string_value(json_object_get(ds, "rrd")), HEARTBEAT, min, max);
	}
	return defs;
}

/* name's description as archived: ds without its value, plus its rrd name. */
static json_t *archived_entry(const char *name, json_t *ds)
{
	json_t *e = json_deep_copy(ds);
	json_object_del(e, "value");
	XN_AUTOFREE char *rrd = xn_ds_rrd_name(name);
	json_object_set_new(e, "rrd", json_string(rrd));
	return e;
}

/* A job that rewrites uuid's file from its (changed) description, and
 * then writes values (NULL: none). */
static struct job *update_job(xn_rrd_store *s, const char *uuid, bool changed)
{
	json_t *desc = xn_rrd_archived(s, uuid);
	struct job *j = xn_calloc(1, sizeof(*j));
	j->kind = JOB_UPDATE;
	j->rrd = path_of(s, uuid, "rrd");
	j->sidecar = path_of(s, uuid, "json");
	if (changed) {
		j->describe = json_dumps(desc, JSON_PRESERVE_ORDER | JSON_INDENT(1));
		j->defs = json_object_size(desc) ? definitions(desc) : NULL;
	}
	return j;
}

void xn_rrd_update(xn_rrd_store *s, const char *uuid, time_t t, json_t *live)
{
	json_t *desc = xn_rrd_archived(s, uuid);
	bool changed = false;
	if (!desc) {
		desc = json_object();
		json_object_set_new(s->described, uuid, desc);
	}
	const char *name;
	json_t *ds;
	json_object_foreach(live, name, ds) {
		if (json_is_true(json_object_get(ds, "standard")) && !json_object_get(desc, name)) {
			json_object_set_new(desc, name, archived_entry(name, ds));
			changed = true;
		}
	}
	if (!json_object_size(desc))
		return;
	struct job *j = update_job(s, uuid, changed);
	j->t = t;
	xn_buf tmpl = {0}, vals = {0};
	xn_buf_printf(&vals, "%lld", (long long)t);
	json_object_foreach(live, name, ds) {
		json_t *e = json_object_get(desc, name);
		if (!e)
			continue;
		xn_buf_printf(&tmpl, "%s%s", tmpl.len ? ":" : "",
			      json_string_value(json_object_get(e, "rrd")));
		xn_buf_printf(&vals, ":%.17g", json_number_value(json_object_get(ds, "value")));
	}
	if (tmpl.len) {
		j->template = xn_buf_steal(&tmpl);
		j->values = xn_buf_steal(&vals);
	}
	xn_buf_reset(&tmpl);
	xn_buf_reset(&vals);
	enqueue(s, j);
}

void xn_rrd_enable(xn_rrd_store *s, const char *uuid, const char *name, json_t *ds)
{
	json_t *desc = xn_rrd_archived(s, uuid);
	if (!desc) {
		desc = json_object();
		json_object_set_new(s->described, uuid, desc);
	}
	if (json_object_get(desc, name))
		return;
	json_object_set_new(desc, name, archived_entry(name, ds));
	struct job *j = update_job(s, uuid, true);
	j->t = time(NULL);
	enqueue(s, j);
}

int xn_rrd_forget(xn_rrd_store *s, const char *uuid, const char *name)
{
	json_t *desc = xn_rrd_archived(s, uuid);
	if (!json_object_get(desc, name))
		return -1;
	json_object_del(desc, name);
	struct job *j = update_job(s, uuid, true);
	j->t = time(NULL);
	if (!j->defs) {
		/* nothing left to archive: no file at all */
		j->kind = JOB_REMOVE;
		json_object_del(s->described, uuid);
	}
	enqueue(s, j);
	return 0;
}

void xn_rrd_remove(xn_rrd_store *s, const char *uuid)
{
	struct job *j = xn_calloc(1, sizeof(*j));
	j->kind = JOB_REMOVE;
	j->rrd = path_of(s, uuid, "rrd");
	j->sidecar = path_of(s, uuid, "json");
	json_object_del(s->described, uuid);
	enqueue(s, j);
}

/* ---- reading -------------------------------------------------------------- */

void xn_rrd_table_free(xn_rrd_table *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->ncols; i++)
		free(t->legend[i]);
	free(t->legend);
	free(t->times);
	free(t->data);
	free(t);
}

void xn_rrd_fetch(xn_rrd_store *s, const xn_rrd_want *wants, size_t n, long start,
		  long interval, const char *cf, xn_rrd_fetch_fn fn, void *ud)
{
	struct job *j = xn_calloc(1, sizeof(*j));
	j->kind = JOB_FETCH;
	j->wants = xn_calloc(n + 1, sizeof(*j->wants));
	j->maps = xn_calloc(n + 1, sizeof(*j->maps));
	for (size_t i = 0; i < n; i++) {
		json_t *desc = xn_rrd_archived(s, wants[i].uuid);
		if (!desc)
			continue;
		json_t *map = json_object();
		const char *name;
		json_t *e;
		json_object_foreach(desc, name, e)
			json_object_set_new(map, json_string_value(json_object_get(e, "rrd")),
					    json_string(name));
		/* a job's wants name the file in place of the uuid */
		j->wants[j->nwants] = (xn_rrd_want){path_of(s, wants[i].uuid, "rrd"),
						    xn_strdup(wants[i].prefix)};
		j->maps[j->nwants++] = map;
	}
	j->start = start;
	j->interval = interval;
	j->cf = xn_strdup(cf);
	j->fn = fn;
	j->ud = ud;
	enqueue(s, j);
}

/* Which archive answers: xapi's find_best_rras. The first (finest) one
 * at least as coarse as interval that reaches back to start, else the
 * coarsest. */
static size_t best_archive(time_t last, long start, long interval, const char *cf)
{
	size_t best = XN_ARRAY_LEN(archives) - 1;
	for (size_t i = 0; i < XN_ARRAY_LEN(archives); i++) {
		long span = (long)archives[i].pdp * XN_METRICS_STEP;
		if (cf && strcmp(cf, "AVERAGE") != 0 && archives[i].pdp == 1)
			continue; /* no MIN or MAX at full resolution */
		if (span < interval)
			continue;
		long oldest = (long)(last - last % XN_METRICS_STEP) - span * archives[i].rows;
		if (start > oldest)
			return i;
	}
	return best;
}

/* The consolidation functions kept at archive a. */
static size_t cfs_of(size_t a, const char *cf, const char **out)
{
	if (cf) {
		out[0] = cf;
		return 1;
	}
	out[0] = "AVERAGE";
	if (archives[a].pdp == 1)
		return 1;
	out[1] = "MIN";
	out[2] = "MAX";
	return 3;
}

/* Columns being gathered, before they become t's row-major data. */
struct columns {
	double **col;
	size_t n;
};

/* Read one file's series of cf into new columns (t's legend appended). */
static void fetch_one(struct job *j, size_t w, const char *cf, xn_rrd_table *t, long step,
		      struct columns *cols)
{
	const char *path = j->wants[w].uuid;
	time_t start = t->times[t->nrows - 1] - step, end = t->times[0];
	unsigned long fstep = (unsigned long)step, nds = 0;
	char **names = NULL;
	rrd_value_t *data = NULL;
	if (rrd_fetch_r(path, cf, &start, &end, &fstep, &nds, &names, &data) != 0) {
		rrd_clear_error();
		return;
	}
	size_t rows = fstep ? (size_t)((end - start) / (time_t)fstep) : 0;
	for (unsigned long d = 0; d < nds; d++) {
		const char *name = json_string_value(json_object_get(j->maps[w], names[d]));
		if (!name)
			continue;
		t->legend = xn_realloc(t->legend, (t->ncols + 1) * sizeof(char *));
		t->legend[t->ncols++] = xn_asprintf("%s:%s%s", cf, j->wants[w].prefix, name);
		double *c = xn_malloc(t->nrows * sizeof(double));
		for (size_t r = 0; r < t->nrows; r++) {
			/* fetched row k covers (start + k*step, start + (k+1)*step] */
			long k = (t->times[r] - (long)start) / step - 1;
			c[r] = fstep == (unsigned long)step && k >= 0 && (size_t)k < rows
				       ? data[(size_t)k * nds + d]
				       : NAN;
		}
		cols->col = xn_realloc(cols->col, (cols->n + 1) * sizeof(double *));
		cols->col[cols->n++] = c;
	}
	for (unsigned long d = 0; d < nds; d++)
		rrd_freemem(names[d]);
	rrd_freemem(names);
	rrd_freemem(data);
}

static void work_fetch(struct job *j)
{
	xn_rrd_table *t = xn_calloc(1, sizeof(*t));
	j->table = t;
	time_t last = 0;
	for (size_t w = 0; w < j->nwants; w++) {
		time_t l = access(j->wants[w].uuid, F_OK) == 0 ? rrd_last_r(j->wants[w].uuid) : 0;
		if (l > last)
			last = l;
	}
	if (last <= 0)
		return; /* nothing archived yet: an empty table */
	long start = j->start < 0 ? (long)last + j->start : j->start;
	size_t a = best_archive(last, start, j->interval, j->cf);
	long step = (long)archives[a].pdp * XN_METRICS_STEP;
	t->step = step;
	t->end = (long)last - (long)last % step;
	t->start = start - start % step + step;
	for (long time = t->end; time >= start && t->nrows < (size_t)archives[a].rows;
	     time -= step) {
		t->times = xn_realloc(t->times, (t->nrows + 1) * sizeof(long));
		t->times[t->nrows++] = time;
	}
	if (!t->nrows)
		return;
	const char *cfs[3];
	size_t ncf = cfs_of(a, j->cf, cfs);
	struct columns cols = {0};
	for (size_t w = 0; w < j->nwants; w++)
		for (size_t c = 0; c < ncf; c++)
			fetch_one(j, w, cfs[c], t, step, &cols);
	t->data = xn_calloc(t->nrows * t->ncols + 1, sizeof(double));
	for (size_t c = 0; c < cols.n; c++) {
		for (size_t r = 0; r < t->nrows; r++)
			t->data[r * t->ncols + c] = cols.col[c][r];
		free(cols.col[c]);
	}
	free(cols.col);
}
