/* chain.c: garbage collection and coalescing of image chains (storage.h).
 *
 * A pass over one SR looks at its files and records and does at most one
 * thing per base copy (a hidden image other images were based on, see
 * vdi.c), then schedules another pass if it did anything:
 *  - files Xenia made ("<uuid>.qcow2", "<uuid>.state") that no record
 *    claims and no operation holds are removed (an interrupted operation
 *    left them);
 *  - a base copy nothing is based on any more is forgotten and removed;
 *  - a base copy with one child is merged with it: into the child with
 *    QMP block-stream when a running VM writes the child, otherwise the
 *    child is committed into the base (`qemu-img commit`, cheap: the
 *    child is usually small) when the child is a leaf, or the base is
 *    streamed into the child (`qemu-img rebase`) when it is not.
 * Every step leaves the images consistent whenever it stops: a commit
 * writes into a base only its one child reads, and the records change
 * only after the images did, so a pass that a crash interrupted is
 * simply done again. */
#include "storage/storage.h"

#include <string.h>

#include "util/log.h"
#include "util/proc.h"
#include "vm/vm.h"

#define GC_DELAY_MS 200
#define GC_RETRY_MS 5000    /* after a failed merge */

struct gc {
	xn_host *h;
	char *sr;
	json_t *files;
	bool again;
	bool retry;                  /* a merge failed (an image lock, most likely) */
	int pending;
};

static void kick_after(xn_host *h, const char *sr_ref, uint64_t ms);

static json_t *running_gcs;   /* sr ref -> true while a pass runs; "again" */

static bool xenia_file(const char *name)
{
	size_t n = strlen(name);
	if (n != 36 + 6 || (strcmp(name + 36, ".qcow2") != 0 && strcmp(name + 36, ".state") != 0))
		return false;
	return strspn(name, "0123456789abcdef-") == 36;
}

/* Whether a running VM has vdi, or any image based on it, open. */
static bool in_use(xn_host *h, const char *vdi, int depth)
{
	if (xn_vdi_open_vbd(h, vdi, 0) || depth > XN_CHAIN_MAX)
		return true;
	const char *sr = xn_db_str(h->db, vdi, "SR");
	const char *loc = xn_db_str(h->db, vdi, "location");
	size_t i;
	json_t *v;
	json_array_foreach(xn_db_field(h->db, sr, "VDIs"), i, v)
		if (xn_streq(xn_vdi_parent(h, json_string_value(v)), loc) &&
		    in_use(h, json_string_value(v), depth + 1))
			return true;
	return false;
}

static void gc_finish(struct gc *g)
{
	if (--g->pending > 0)
		return;
	xn_host *h = g->h;
	bool again = g->again || json_is_true(json_object_get(running_gcs, g->sr));
	json_object_del(running_gcs, g->sr);
	xn_sr_update_sizes(h, g->sr);
	if (again && xn_db_get(h->db, g->sr))
		xn_sr_gc_kick(h, g->sr);
	else if (g->retry && xn_db_get(h->db, g->sr))
		kick_after(h, g->sr, GC_RETRY_MS);
	json_decref(g->files);
	free(g->sr);
	free(g);
}

/* ---- merging a base copy with its only child ------------------------------ */

struct merge {
	struct gc *g;
	char *base, *child;          /* VDI refs */
	char *base_loc, *child_loc;
	bool commit;                 /* child committed into base (else base streamed into child) */
	json_t *grand;               /* commit: the child's children, rebased onto the base */
	size_t next;                 /* in grand */
};

static void merge_free(struct merge *m)
{
	free(m->base);
	free(m->child);
	free(m->base_loc);
	free(m->child_loc);
	json_decref(m->grand);
	free(m);
}

/* Whether the child's children are still exactly those rebased: one
 * that came or went meanwhile would name the child's file, which goes. */
static bool same_children(xn_host *h, struct merge *m)
{
	size_t n = 0, i;
	json_t *gr;
	json_array_foreach(m->grand, i, gr)
		n += xn_streq(xn_vdi_parent(h, json_string_value(gr)), m->child_loc);
	return n == json_array_size(m->grand) && xn_vdi_children(h, m->child, NULL) == n;
}

/* The images changed; now the records: one commit, then the file that
 * dropped out goes. */
static void merged(void *ud, xn_error *err)
{
	struct merge *m = ud;
	struct gc *g = m->g;
	xn_host *h = g->h;
	bool ok = !err && xn_db_get(h->db, m->base) && xn_db_get(h->db, m->child) &&
		  xn_streq(xn_db_str(h->db, m->child, "location"), m->child_loc) &&
		  xn_streq(xn_db_str(h->db, m->base, "location"), m->base_loc) &&
		  (!m->commit || same_children(h, m));
	if (err) {
		xn_warn("storage: merging '%s' and '%s': %s", m->base_loc, m->child_loc,
			err->message);
		g->retry = true;
	}
	xn_error_free(err);
	if (ok) {
		xn_fault_point("merge-before-commit");
		xn_changes *cs = xn_changes_new(h->db);
		json_t *child = xn_changes_edit(cs, m->child);
		json_t *smc = json_deep_copy(xn_db_field(h->db, m->base, "sm_config"));
		json_t *csmc = json_object_get(child, "sm_config");
		if (!json_is_object(csmc)) {
			csmc = json_object();
			json_object_set_new(child, "sm_config", csmc);
		}
		json_object_del(csmc, "xenia-parent");
		json_object_del(csmc, "vhd-parent");
		const char *keys[] = {"xenia-parent", "vhd-parent"};
		for (size_t i = 0; i < 2; i++)
			if (json_object_get(smc, keys[i]))
				json_object_set(csmc, keys[i], json_object_get(smc, keys[i]));
		json_decref(smc);
		if (m->commit)
			json_object_set_new(child, "location", json_string(m->base_loc));
		/* the child's children now name the base's image as theirs */
		size_t i;
		json_t *gr;
		json_array_foreach(m->grand, i, gr) {
			json_t *rec = xn_changes_edit(cs, json_string_value(gr));
			json_t *gsmc = rec ? json_object_get(rec, "sm_config") : NULL;
			if (json_is_object(gsmc))
				json_object_set_new(gsmc, "xenia-parent", json_string(m->base_loc));
		}
		xn_changes_delete(cs, m->base);
		xn_error *e = NULL;
		if (xn_db_commit(h->db, cs, &e) == 0) {
			xn_image_remove(h, g->sr, m->commit ? m->child_loc : m->base_loc);
			g->again = true;
		} else {
			xn_warn("storage: %s", e->message);
			xn_error_free(e);
		}
	}
	xn_storage_release(h, g->sr, m->base_loc);
	xn_storage_release(h, g->sr, m->child_loc);
	merge_free(m);
	gc_finish(g);
}

static void merged_offline(void *ud, int status, const char *output);

/* After the commit: each of the child's children is pointed at the base
 * (header only: the base now holds what the child held), one by one. */
static void rebase_next(struct merge *m)
{
	xn_host *h = m->g->h;
	const char *g = json_string_value(json_array_get(m->grand, m->next++));
	if (!g) {
		merged(m, NULL);
		return;
	}
	if (!xn_db_get(h->db, g)) {
		/* destroyed meanwhile: nothing to point at the base (whether
		 * the merge may commit is same_children's to say) */
		rebase_next(m);
		return;
	}
	XN_AUTOFREE char *url = xn_vdi_path(h, g);
	XN_AUTOFREE char *base = xn_backing_name(h, m->g->sr, m->base_loc);
	char *argv[] = {"qemu-img", "rebase", "-q", "-u", "-f", "qcow2", "-b", base,
			"-F", "qcow2", url, NULL};
	xn_error *err = NULL;
	if (!url || xn_run(h->loop, argv, merged_offline, m, &err) < 0)
		merged(m, err ? err : (xn_fail_internal(&err, "a child of '%s' has no image",
							m->child_loc), err));
}

static void merged_offline(void *ud, int status, const char *output)
{
	struct merge *m = ud;
	xn_error *err = NULL;
	if (status != 0) {
		xn_fail(&err, "SR_BACKEND_FAILURE", "qemu-img", "coalesce", output, NULL);
		merged(m, err);
		return;
	}
	rebase_next(m);
}

static void merge(struct gc *g, const char *base, const char *child)
{
	xn_host *h = g->h;
	struct merge *m = xn_calloc(1, sizeof(*m));
	m->g = g;
	m->base = xn_strdup(base);
	m->child = xn_strdup(child);
	m->base_loc = xn_strdup(xn_db_str(h->db, base, "location"));
	m->child_loc = xn_strdup(xn_db_str(h->db, child, "location"));
	xn_storage_hold(h, g->sr, m->base_loc);
	xn_storage_hold(h, g->sr, m->child_loc);
	g->pending++;
	const char *vbd = xn_vdi_open_vbd(h, child, XN_VBD_RW);
	if (vbd) {
		XN_AUTOFREE char *file = xn_location_file(m->base_loc);
		xn_vm_disk_stream(h, vbd, file, merged, m);
		return;
	}
	/* Offline: the child's own clusters go down into the base (-d: the
	 * child keeps them, so it reads the same until the records switch
	 * to the base); the child's children, if any, are then pointed at
	 * the base. Only the child's allocated clusters are read, whatever
	 * the virtual size. A crash at any point leaves images that read
	 * the same through the chain the records name; the next pass does
	 * it again. */
	m->commit = true;
	m->grand = json_array();
	const char *k;
	json_t *v;
	json_object_foreach(xn_db_all(h->db, xn_model_class("VDI")), k, v)
		if (xn_streq(json_string_value(json_object_get(v, "SR")), g->sr) &&
		    xn_streq(xn_vdi_parent(h, k), m->child_loc))
			json_array_append_new(m->grand, json_string(k));
	XN_AUTOFREE char *child_url = xn_vdi_path(h, child);
	char *argv[] = {"qemu-img", "commit", "-q", "-d", "-f", "qcow2", child_url, NULL};
	xn_error *err = NULL;
	if (xn_run(h->loop, argv, merged_offline, m, &err) < 0)
		merged(m, err);
}

/* ---- a pass ------------------------------------------------------------------ */

/* The files of sr that Xenia made and no record claims (new array). */
static json_t *unclaimed(xn_host *h, const char *sr, json_t *files)
{
	json_t *claimed = json_object(), *out = json_array();
	size_t i;
	json_t *v;
	json_array_foreach(xn_db_field(h->db, sr, "VDIs"), i, v) {
		XN_AUTOFREE char *f =
			xn_location_file(xn_db_str(h->db, json_string_value(v), "location"));
		json_object_set_new(claimed, f, json_true());
	}
	const char *name;
	json_object_foreach(files, name, v)
		if (xenia_file(name) && !json_object_get(claimed, name))
			json_array_append_new(out, json_string(name));
	json_decref(claimed);
	return out;
}

static void remove_unclaimed(struct gc *g)
{
	json_t *names = unclaimed(g->h, g->sr, g->files);
	size_t i;
	json_t *v;
	json_array_foreach(names, i, v) {
		const char *name = json_string_value(v);
		XN_AUTOFREE char *loc = strcmp(name + 36, ".qcow2") == 0 ? xn_strndup(name, 36)
									  : xn_strdup(name);
		if (xn_storage_held(g->sr, loc))
			continue;
		xn_info("storage: removing unclaimed image '%s'", name);
		xn_image_remove(g->h, g->sr, loc);
	}
	json_decref(names);
}

static void tidy_base_copies(struct gc *g)
{
	xn_host *h = g->h;
	json_t *vdis = json_deep_copy(xn_db_field(h->db, g->sr, "VDIs"));
	/* one merge at a time per SR: merges in one chain would take each
	 * other's image locks (a commit writes the base a neighbour's merge
	 * opens); the pass after it starts the next */
	bool merging = false;
	size_t i;
	json_t *v;
	json_array_foreach(vdis, i, v) {
		const char *vdi = json_string_value(v);
		if (!xn_db_get(h->db, vdi) || xn_db_bool(h->db, vdi, "managed"))
			continue;
		const char *loc = xn_db_str(h->db, vdi, "location");
		if (xn_storage_held(g->sr, loc) || json_array_size(xn_db_field(h->db, vdi, "VBDs")))
			continue;
		const char *child = NULL;
		size_t n = xn_vdi_children(h, vdi, &child);
		if (n == 0) {
			XN_AUTOFREE char *l = xn_strdup(loc);
			xn_changes *cs = xn_changes_new(h->db);
			xn_changes_delete(cs, vdi);
			xn_error *err = NULL;
			if (xn_db_commit(h->db, cs, &err) == 0) {
				xn_image_remove(h, g->sr, l);
				g->again = true;
			} else {
				xn_error_free(err);
			}
		} else if (n == 1 && !merging &&
			   !xn_storage_held(g->sr, xn_db_str(h->db, child, "location")) &&
			   (xn_vdi_open_vbd(h, child, XN_VBD_RW) || !in_use(h, child, 0))) {
			merging = true;
			merge(g, vdi, child);
		}
	}
	json_decref(vdis);
}

static int list_work(const xn_sr_conf *c, void *ud, xn_error **err)
{
	struct gc *g = ud;
	return xn_sr_ops_by_type(c->type)->list(c, &g->files, err);
}

static void listed(void *ud, xn_error *err)
{
	struct gc *g = ud;
	if (err || !xn_db_get(g->h->db, g->sr)) {
		if (err)
			xn_debug("storage: gc of %s: %s", g->sr, err->message);
		xn_error_free(err);
		gc_finish(g);
		return;
	}
	remove_unclaimed(g);
	tidy_base_copies(g);
	gc_finish(g);
}

static void gc_pass(xn_host *h, const char *sr)
{
	if (!running_gcs)
		running_gcs = json_object();
	if (json_object_get(running_gcs, sr)) {
		json_object_set_new(running_gcs, sr, json_true());  /* run again after */
		return;
	}
	const xn_sr_ops *ops = xn_sr_ops_of(h, sr);
	if (!ops || ops->read_only)
		return;
	json_object_set_new(running_gcs, sr, json_false());
	struct gc *g = xn_calloc(1, sizeof(*g));
	g->h = h;
	g->sr = xn_strdup(sr);
	g->pending = 1;
	xn_sr_work(h, sr, list_work, g, listed);
}

struct kick {
	uv_timer_t timer;
	xn_host *h;
	char *sr;
};

static void kick_closed(uv_handle_t *t)
{
	struct kick *k = t->data;
	free(k->sr);
	free(k);
}

static void kick_fire(uv_timer_t *t)
{
	struct kick *k = t->data;
	if (xn_db_get(k->h->db, k->sr))
		gc_pass(k->h, k->sr);
	uv_close((uv_handle_t *)t, kick_closed);
}

static void kick_after(xn_host *h, const char *sr_ref, uint64_t ms)
{
	struct kick *k = xn_calloc(1, sizeof(*k));
	k->h = h;
	k->sr = xn_strdup(sr_ref);
	uv_timer_init(h->loop, &k->timer);
	k->timer.data = k;
	uv_timer_start(&k->timer, kick_fire, ms, 0);
}

void xn_sr_gc_kick(xn_host *h, const char *sr_ref)
{
	kick_after(h, sr_ref, GC_DELAY_MS);
}

int xn_sr_gc_sync(xn_host *h, const char *sr_ref, xn_error **err)
{
	xn_sr_conf *c = xn_sr_conf_get(h, sr_ref);
	if (!c)
		return 0;
	const xn_sr_ops *ops = xn_sr_ops_by_type(c->type);
	json_t *files = NULL;
	int rc = ops->attach(c, err);
	if (rc == 0)
		rc = ops->list(c, &files, err);
	if (rc == 0) {
		json_t *names = unclaimed(h, sr_ref, files);
		size_t i;
		json_t *v;
		json_array_foreach(names, i, v) {
			const char *name = json_string_value(v);
			xn_warn("storage: removing unclaimed image '%s'", name);
			xn_error *e = NULL;
			if (ops->remove(c, name, &e) < 0) {
				xn_warn("storage: %s", e->message);
				xn_error_free(e);
			}
		}
		json_decref(names);
	}
	json_decref(files);
	xn_sr_conf_free(c);
	return rc;
}
