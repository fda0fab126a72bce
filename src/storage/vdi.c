/* vdi.c: disk images and the VDI messages that make or remove them:
 * create, destroy, clone, snapshot, copy (storage.h).
 *
 * Images are thin qcow2 files. A clone or snapshot is an overlay whose
 * backing file is its source's image, named relative to the overlay, so
 * it takes one `qemu-img create` whatever the disk's size. An image
 * that has overlays is never written again:
 *
 *  - A source that may be written moves to a fresh overlay of its old
 *    image too (the old image becomes a hidden "base copy" VDI,
 *    managed=false, as in xapi); if a running VM writes it, its QEMU is
 *    switched to the new overlay with QMP (vm.h). Both overlays are made
 *    at once, so this costs no more time than one.
 *  - A source nothing writes (a snapshot's or a template's disk) keeps
 *    its image, and the copy is an overlay of it. Should such a disk be
 *    attached writable later (a template turned back into a VM), it is
 *    split then (xn_vdi_prepare_attach).
 *
 * Each VDI's sm_config "xenia-parent" names the location its image is
 * based on (xapi's "vhd-parent" holds the parent's uuid, for display).
 * Deleting a VDI whose image others are based on turns it into a base
 * copy; chain.c merges base copies into their only child or removes
 * them when nothing is based on them any more.
 *
 * Order of effects, so that a crash at any point loses nothing: files
 * are created first, then one commit makes records of them (a crash
 * before leaves unclaimed files, removed by the collector), then a
 * running QEMU is switched (a crash before leaves the VM writing the
 * image that is now a base copy: its data stays in the chain of the
 * VDI, which the next start opens). */
#include "storage/storage.h"

#include <string.h>

#include "util/log.h"
#include "util/proc.h"
#include "util/uuid.h"
#include "vm/vm.h"

/* ---- qemu-img in a child process ------------------------------------- */

struct img_op {
	xn_storage_done done;
	void *ud;
	char *what;
};

static void img_done(void *ud, int status, const char *output)
{
	struct img_op *op = ud;
	xn_error *err = NULL;
	if (status != 0) {
		if (strstr(output, "No space left"))
			xn_fail(&err, "SR_FULL", "", "", NULL);
		else
			xn_fail(&err, "SR_BACKEND_FAILURE", "qemu-img", op->what, output, NULL);
	}
	op->done(op->ud, err);
	free(op->what);
	free(op);
}

static void run_img(xn_host *h, char **argv, const char *what, xn_storage_done done, void *ud)
{
	struct img_op *op = xn_calloc(1, sizeof(*op));
	op->done = done;
	op->ud = ud;
	op->what = xn_strdup(what);
	xn_error *err = NULL;
	if (xn_run(h->loop, argv, img_done, op, &err) < 0) {
		free(op->what);
		free(op);
		done(ud, err);
	}
}

/* The url of location on sr (caller frees), or NULL with err. */
static char *location_url(xn_host *h, const char *sr, const char *location, xn_error **err)
{
	char *url = xn_location_url(h, sr, location);
	if (!url)
		xn_fail(err, "SR_UNKNOWN_DRIVER", xn_db_str(h->db, sr, "type"), NULL);
	return url;
}

void xn_image_create(xn_host *h, const char *sr_ref, const char *location, int64_t size,
		     xn_storage_done done, void *ud)
{
	xn_error *err = NULL;
	XN_AUTOFREE char *url = location_url(h, sr_ref, location, &err);
	if (!url) {
		done(ud, err);
		return;
	}
	XN_AUTOFREE char *sz = xn_asprintf("%lld", (long long)size);
	char *argv[] = {"qemu-img", "create", "-q", "-f", "qcow2", url, sz, NULL};
	run_img(h, argv, "create", done, ud);
}

char *xn_backing_name(xn_host *h, const char *sr_ref, const char *location)
{
	if (xn_streq(xn_db_str(h->db, sr_ref, "type"), "file"))
		return xn_location_file(location);
	xn_error *err = NULL;
	char *url = location_url(h, sr_ref, location, &err);
	xn_error_free(err);
	return url ? url : xn_location_file(location);
}

void xn_image_overlay(xn_host *h, const char *sr_ref, const char *backing,
		      const char *location, int64_t size, xn_storage_done done, void *ud)
{
	xn_error *err = NULL;
	XN_AUTOFREE char *url = location_url(h, sr_ref, location, &err);
	if (!url) {
		done(ud, err);
		return;
	}
	/* -u: the backing may be open in a running VM (its size is given). */
	XN_AUTOFREE char *bfile = xn_backing_name(h, sr_ref, backing);
	XN_AUTOFREE char *sz = xn_asprintf("%lld", (long long)size);
	char *argv[] = {"qemu-img", "create", "-q", "-f", "qcow2", "-u", "-F", "qcow2",
			"-b", bfile, url, sz, NULL};
	run_img(h, argv, "overlay", done, ud);
}

void xn_image_copy(xn_host *h, const char *vdi_ref, const char *sr_ref, const char *location,
		   xn_storage_done done, void *ud)
{
	xn_error *err = NULL;
	XN_AUTOFREE char *src = xn_vdi_path(h, vdi_ref);
	XN_AUTOFREE char *dst = location_url(h, sr_ref, location, &err);
	if (!src || !dst) {
		if (!err)
			xn_fail(&err, "VDI_MISSING", xn_db_str(h->db, vdi_ref, "SR"), vdi_ref, NULL);
		done(ud, err);
		return;
	}
	/* -U: a snapshot's image may be a backing file a running VM has
	 * open; it is never written, so reading it shared is consistent. */
	char *argv[] = {"qemu-img", "convert", "-q", "-U", "-f",
			(char *)xn_vdi_format(h, vdi_ref), "-O", "qcow2", src, dst, NULL};
	run_img(h, argv, "copy", done, ud);
}

struct removal {
	xn_host *h;
	char *sr, *location;
};

static int remove_work(const xn_sr_conf *c, void *ud, xn_error **err)
{
	struct removal *r = ud;
	XN_AUTOFREE char *file = xn_location_file(r->location);
	return xn_sr_ops_by_type(c->type)->remove(c, file, err);
}

static void removed(void *ud, xn_error *err)
{
	struct removal *r = ud;
	if (err)
		xn_warn("storage: cannot remove '%s' (collected later): %s", r->location,
			err->message);
	xn_error_free(err);
	xn_storage_release(r->h, r->sr, r->location);
	xn_sr_update_sizes(r->h, r->sr);
	free(r->sr);
	free(r->location);
	free(r);
}

void xn_image_remove(xn_host *h, const char *sr_ref, const char *location)
{
	struct removal *r = xn_calloc(1, sizeof(*r));
	r->h = h;
	r->sr = xn_strdup(sr_ref);
	r->location = xn_strdup(location);
	xn_storage_hold(h, sr_ref, location);
	xn_sr_work(h, sr_ref, remove_work, r, removed);
}

/* ---- locations in use by operations in progress ----------------------- */

static json_t *holds;   /* "sr/location" -> count */

static char *hold_key(const char *sr, const char *location)
{
	return xn_asprintf("%s/%s", sr, location);
}

void xn_storage_hold(xn_host *h, const char *sr_ref, const char *location)
{
	if (!holds)
		holds = json_object();
	XN_AUTOFREE char *k = hold_key(sr_ref, location);
	json_int_t n = json_integer_value(json_object_get(holds, k));
	json_object_set_new(holds, k, json_integer(n + 1));
}

void xn_storage_release(xn_host *h, const char *sr_ref, const char *location)
{
	XN_AUTOFREE char *k = hold_key(sr_ref, location);
	json_int_t n = json_integer_value(json_object_get(holds, k));
	if (n <= 1)
		json_object_del(holds, k);
	else
		json_object_set_new(holds, k, json_integer(n - 1));
}

bool xn_storage_held(const char *sr_ref, const char *location)
{
	XN_AUTOFREE char *k = hold_key(sr_ref, location);
	return json_object_get(holds, k) != NULL;
}

/* ---- chains in the records -------------------------------------------- */

const char *xn_vdi_parent(xn_host *h, const char *vdi_ref)
{
	json_t *smc = xn_db_field(h->db, vdi_ref, "sm_config");
	return json_string_value(json_object_get(smc, "xenia-parent"));
}

const char *xn_vdi_by_location(xn_host *h, const char *sr_ref, const char *location)
{
	return xn_db_member_where(h->db, sr_ref, "VDIs", "location", location);
}

size_t xn_vdi_children(xn_host *h, const char *vdi_ref, const char **only)
{
	const char *sr = xn_db_str(h->db, vdi_ref, "SR");
	const char *loc = xn_db_str(h->db, vdi_ref, "location");
	size_t n = 0, i;
	json_t *v;
	json_array_foreach(xn_db_field(h->db, sr, "VDIs"), i, v) {
		if (xn_streq(xn_vdi_parent(h, json_string_value(v)), loc)) {
			n++;
			if (only)
				*only = json_string_value(v);
		}
	}
	return n;
}

/* Images in vdi's chain, itself included. */
static size_t chain_depth(xn_host *h, const char *vdi_ref)
{
	const char *sr = xn_db_str(h->db, vdi_ref, "SR");
	size_t depth = 1;
	for (const char *p = xn_vdi_parent(h, vdi_ref); p && depth <= XN_CHAIN_MAX + 1; depth++) {
		const char *parent = xn_vdi_by_location(h, sr, p);
		p = parent ? xn_vdi_parent(h, parent) : NULL;
	}
	return depth;
}

/* Record in rec that its image is based on location loc, the image of
 * the VDI with uuid uuid (NULL loc: a standalone image). */
static void set_parent(json_t *rec, const char *loc, const char *uuid)
{
	json_t *smc = json_object_get(rec, "sm_config");
	if (!json_is_object(smc)) {
		smc = json_object();
		json_object_set_new(rec, "sm_config", smc);
	}
	if (!loc) {
		json_object_del(smc, "xenia-parent");
		json_object_del(smc, "vhd-parent");
		return;
	}
	json_object_set_new(smc, "xenia-parent", json_string(loc));
	json_object_set_new(smc, "vhd-parent", json_string(uuid));
}

/* A base copy record for the image vdi has now (added to cs; the caller
 * moves vdi to another location in cs). Returns the new ref. */
static const char *add_base_copy(xn_host *h, xn_changes *cs, const char *vdi)
{
	json_t *rec = json_pack("{s:s,s:s,s:s,s:s,s:I,s:I,s:s,s:b,s:b,s:{}}", "name_label",
				"base copy", "name_description", "", "SR",
				xn_db_str(h->db, vdi, "SR"), "location",
				xn_db_str(h->db, vdi, "location"), "virtual_size",
				xn_db_int(h->db, vdi, "virtual_size"), "physical_utilisation",
				xn_db_int(h->db, vdi, "physical_utilisation"), "type",
				xn_db_str(h->db, vdi, "type"), "managed", 0, "read_only", 1,
				"sm_config");
	json_t *smc = json_object_get(rec, "sm_config");
	json_t *old = xn_db_field(h->db, vdi, "sm_config");
	const char *keys[] = {"xenia-parent", "vhd-parent"};
	for (size_t i = 0; i < 2; i++)
		if (json_object_get(old, keys[i]))
			json_object_set(smc, keys[i], json_object_get(old, keys[i]));
	return xn_changes_add(cs, xn_model_class("VDI"), NULL, rec);
}

const char *xn_vdi_open_vbd(xn_host *h, const char *vdi_ref, unsigned flags)
{
	size_t i;
	json_t *v;
	json_array_foreach(xn_db_field(h->db, vdi_ref, "VBDs"), i, v) {
		const char *vbd = json_string_value(v);
		if ((flags & XN_VBD_RW) && !xn_streq(xn_db_str(h->db, vbd, "mode"), "RW"))
			continue;
		if ((flags & XN_VBD_ATTACHED) && !xn_db_bool(h->db, vbd, "currently_attached"))
			continue;
		if (xn_vm_has_qemu(h, xn_db_str(h->db, vbd, "VM")))
			return vbd;
	}
	return NULL;
}

/* Whether nothing ever writes vdi: a snapshot's disk, a base copy, a
 * read-only disk, or the disk of templates only. Such a source keeps
 * its image; copies are overlays of it directly. */
static bool frozen(xn_host *h, const char *vdi)
{
	if (xn_db_bool(h->db, vdi, "is_a_snapshot") || !xn_db_bool(h->db, vdi, "managed") ||
	    xn_db_bool(h->db, vdi, "read_only"))
		return true;
	json_t *vbds = xn_db_field(h->db, vdi, "VBDs");
	size_t i;
	json_t *v;
	json_array_foreach(vbds, i, v)
		if (!xn_db_bool(h->db, xn_db_str(h->db, json_string_value(v), "VM"), "is_a_template"))
			return false;
	return json_array_size(vbds) > 0;
}

json_t *xn_vdi_record_copy(xn_host *h, const char *vdi_ref, const char *sr_ref,
			   const char *location)
{
	json_t *rec = json_deep_copy(xn_db_get(h->db, vdi_ref));
	static const char *reset[] = {"VBDs", "snapshots", "crash_dump", "snapshot_of",
				      "current_operations", "allowed_operations", NULL};
	for (size_t i = 0; reset[i]; i++)
		json_object_del(rec, reset[i]);
	json_object_set_new(rec, "uuid", json_string(location));
	json_object_set_new(rec, "location", json_string(location));
	json_object_set_new(rec, "SR", json_string(sr_ref));
	json_object_set_new(rec, "is_a_snapshot", json_false());
	json_object_set_new(rec, "read_only", json_false());
	json_object_set_new(rec, "managed", json_true());
	json_object_set_new(rec, "sm_config", json_object());
	return rec;
}

/* ---- forks: clones and snapshots of one disk --------------------------- */

struct xn_vdi_fork {
	xn_host *h;
	char *src, *sr;
	bool snapshot;
	char *copy;        /* the new image's location (also the new VDI's uuid) */
	char *leaf;        /* split: the source's new location, else NULL */
	char *vbd;         /* split: the VBD of the running VM to switch */
	char *old;         /* split: the source's location before */
	char *new_ref;     /* after apply */
	int pending;
	xn_error *err;
	xn_storage_done done;
	void *ud;
};

xn_vdi_fork *xn_vdi_fork_new(xn_host *h, const char *vdi_ref, bool snapshot, xn_error **err)
{
	const char *sr = xn_db_str(h->db, vdi_ref, "SR");
	const xn_sr_ops *ops = xn_sr_ops_of(h, sr);
	if (!ops) {
		xn_fail(err, "SR_UNKNOWN_DRIVER", xn_db_str(h->db, sr, "type"), NULL);
		return NULL;
	}
	if (ops->read_only || strcmp(xn_vdi_format(h, vdi_ref), "qcow2") != 0) {
		xn_fail(err, "SR_OPERATION_NOT_SUPPORTED", sr, NULL);
		return NULL;
	}
	if (chain_depth(h, vdi_ref) >= XN_CHAIN_MAX) {
		xn_fail(err, "SR_BACKEND_FAILURE_109", "", "The snapshot chain is too long", "",
			NULL);
		return NULL;
	}
	xn_vdi_fork *f = xn_calloc(1, sizeof(*f));
	f->h = h;
	f->src = xn_strdup(vdi_ref);
	f->sr = xn_strdup(sr);
	f->snapshot = snapshot;
	f->copy = xn_uuid_new();
	f->old = xn_strdup(xn_db_str(h->db, vdi_ref, "location"));
	const char *vbd = xn_vdi_open_vbd(h, vdi_ref, XN_VBD_RW);
	if (vbd)
		f->vbd = xn_strdup(vbd);
	if (vbd || !frozen(h, vdi_ref))
		f->leaf = xn_uuid_new();
	return f;
}

void xn_vdi_fork_free(xn_vdi_fork *f)
{
	if (!f)
		return;
	free(f->src);
	free(f->sr);
	free(f->copy);
	free(f->leaf);
	free(f->vbd);
	free(f->old);
	free(f->new_ref);
	xn_error_free(f->err);
	free(f);
}

static void fork_made(void *ud, xn_error *err)
{
	xn_vdi_fork *f = ud;
	if (err && !f->err)
		f->err = err;
	else
		xn_error_free(err);
	if (--f->pending > 0)
		return;
	xn_error *e = f->err;
	f->err = NULL;
	if (!e)
		xn_fault_point("fork-images-made");
	if (e)
		xn_vdi_fork_abort(f);
	f->done(f->ud, e);
}

void xn_vdi_fork_prepare(xn_vdi_fork *f, xn_storage_done done, void *ud)
{
	xn_host *h = f->h;
	int64_t size = xn_db_int(h->db, f->src, "virtual_size");
	f->done = done;
	f->ud = ud;
	f->pending = f->leaf ? 2 : 1;
	xn_storage_hold(h, f->sr, f->copy);
	if (f->leaf)
		xn_storage_hold(h, f->sr, f->leaf);
	xn_image_overlay(h, f->sr, f->old, f->copy, size, fork_made, f);
	if (f->leaf)
		xn_image_overlay(h, f->sr, f->old, f->leaf, size, fork_made, f);
}

const char *xn_vdi_fork_apply(xn_vdi_fork *f, xn_changes *cs, json_t *fields)
{
	xn_host *h = f->h;
	json_t *rec = xn_vdi_record_copy(h, f->src, f->sr, f->copy);
	json_object_set_new(rec, "is_a_snapshot", json_boolean(f->snapshot));
	if (f->snapshot) {
		json_object_set_new(rec, "snapshot_of", json_string(f->src));
		json_object_set_new(rec, "snapshot_time", xn_datetime_now());
	}
	const char *parent_uuid = xn_db_str(h->db, f->src, "uuid");
	if (f->leaf) {
		const char *base = add_base_copy(h, cs, f->src);
		parent_uuid = json_string_value(json_object_get(xn_changes_edit(cs, base), "uuid"));
		json_t *src = xn_changes_edit(cs, f->src);
		json_object_set_new(src, "location", json_string(f->leaf));
		set_parent(src, f->old, parent_uuid);
	}
	set_parent(rec, f->old, parent_uuid);
	if (fields)
		json_object_update(rec, fields);
	free(f->new_ref);
	f->new_ref = xn_strdup(xn_changes_add(cs, xn_model_class("VDI"), NULL, rec));
	return f->new_ref;
}

static void fork_release(xn_vdi_fork *f)
{
	xn_storage_release(f->h, f->sr, f->copy);
	if (f->leaf)
		xn_storage_release(f->h, f->sr, f->leaf);
}

void xn_vdi_fork_abort(xn_vdi_fork *f)
{
	xn_image_remove(f->h, f->sr, f->copy);
	if (f->leaf)
		xn_image_remove(f->h, f->sr, f->leaf);
	fork_release(f);
}

static void switched(void *ud, xn_error *err)
{
	xn_vdi_fork *f = ud;
	xn_host *h = f->h;
	if (err) {
		/* QEMU still writes the old image: give it back to the source
		 * and forget the copy, in one commit. */
		xn_warn("storage: cannot switch '%s' to its new image: %s", f->src, err->message);
		xn_changes *cs = xn_changes_new(h->db);
		const char *base = xn_vdi_by_location(h, f->sr, f->old);
		json_t *src = xn_changes_edit(cs, f->src);
		json_object_set_new(src, "location", json_string(f->old));
		set_parent(src, NULL, NULL);
		if (base) {
			json_t *smc = xn_db_field(h->db, base, "sm_config");
			if (json_object_get(smc, "xenia-parent"))
				set_parent(src, json_string_value(json_object_get(smc, "xenia-parent")),
					   json_string_value(json_object_get(smc, "vhd-parent")));
			xn_changes_delete(cs, base);
		}
		if (f->new_ref && xn_db_get(h->db, f->new_ref)) {
			size_t i;
			json_t *v;
			json_array_foreach(xn_db_field(h->db, f->new_ref, "VBDs"), i, v)
				xn_changes_delete(cs, json_string_value(v));
			xn_changes_delete(cs, f->new_ref);
		}
		xn_error *e = NULL;
		if (xn_db_commit(h->db, cs, &e) < 0) {
			xn_warn("storage: %s", e->message);
			xn_error_free(e);
		} else {
			xn_image_remove(h, f->sr, f->copy);
			xn_image_remove(h, f->sr, f->leaf);
		}
	}
	fork_release(f);
	xn_sr_update_sizes(h, f->sr);
	if (f->done)
		f->done(f->ud, err);
	else
		xn_error_free(err);
}

void xn_vdi_fork_switch(xn_vdi_fork *f, xn_storage_done done, void *ud)
{
	f->done = done;
	f->ud = ud;
	if (!f->vbd) {
		fork_release(f);
		xn_sr_update_sizes(f->h, f->sr);
		if (done)
			done(ud, NULL);
		return;
	}
	xn_fault_point("fork-before-switch");
	xn_vm_disk_switch(f->h, f->vbd, f->leaf, switched, f);
}

const char *xn_vdi_fork_ref(const xn_vdi_fork *f)
{
	return f->new_ref;
}

/* ---- before attaching ---------------------------------------------------- */

struct attach {
	xn_host *h;
	char *vdi, *sr, *leaf;
	xn_storage_done done;
	void *ud;
};

static void split_made(void *ud, xn_error *err)
{
	struct attach *a = ud;
	xn_host *h = a->h;
	if (!err && !xn_db_get(h->db, a->vdi))
		xn_fail(&err, "HANDLE_INVALID", "VDI", a->vdi, NULL);
	if (!err) {
		xn_changes *cs = xn_changes_new(h->db);
		XN_AUTOFREE char *old = xn_strdup(xn_db_str(h->db, a->vdi, "location"));
		const char *base = add_base_copy(h, cs, a->vdi);
		const char *base_uuid =
			json_string_value(json_object_get(xn_changes_edit(cs, base), "uuid"));
		json_t *rec = xn_changes_edit(cs, a->vdi);
		json_object_set_new(rec, "location", json_string(a->leaf));
		set_parent(rec, old, base_uuid);
		xn_db_commit(h->db, cs, &err);
	}
	if (err)
		xn_image_remove(h, a->sr, a->leaf);
	xn_storage_release(h, a->sr, a->leaf);
	a->done(a->ud, err);
	free(a->vdi);
	free(a->sr);
	free(a->leaf);
	free(a);
}

void xn_vdi_prepare_attach(xn_host *h, const char *vdi_ref, bool writable,
			   xn_storage_done done, void *ud)
{
	xn_error *err = NULL;
	/* writable: nobody else may have it open; read-only: nobody may be
	 * writing it */
	if (xn_vdi_open_vbd(h, vdi_ref, XN_VBD_ATTACHED | (writable ? 0 : XN_VBD_RW))) {
		done(ud, (xn_fail(&err, "VDI_IN_USE", vdi_ref, "attach", NULL), err));
		return;
	}
	const char *sr = xn_db_str(h->db, vdi_ref, "SR");
	const xn_sr_ops *ops = xn_sr_ops_of(h, sr);
	if (writable && (!ops || ops->read_only || xn_db_bool(h->db, vdi_ref, "read_only"))) {
		done(ud, (xn_fail(&err, "VDI_READONLY", vdi_ref, NULL), err));
		return;
	}
	if (!writable || xn_vdi_children(h, vdi_ref, NULL) == 0) {
		done(ud, NULL);
		return;
	}
	struct attach *a = xn_calloc(1, sizeof(*a));
	a->h = h;
	a->vdi = xn_strdup(vdi_ref);
	a->sr = xn_strdup(sr);
	a->leaf = xn_uuid_new();
	a->done = done;
	a->ud = ud;
	xn_storage_hold(h, sr, a->leaf);
	xn_image_overlay(h, sr, xn_db_str(h->db, vdi_ref, "location"), a->leaf,
			 xn_db_int(h->db, vdi_ref, "virtual_size"), split_made, a);
}
