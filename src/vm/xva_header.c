/* xva_header.c: an XVA's ova.xml, written for an export and read and
 * planned for an import (xva.h).
 *
 * ova.xml is one XML-RPC value, {version, objects}, each object
 * {class, id, snapshot}: the object's record with every reference
 * rewritten to an id of the archive ("Ref:N"), or OpaqueRef:NULL when
 * its target is not in the archive. Export follows xapi's export.ml:
 * ids are handed out walking from the VM (its VIFs and their networks,
 * its VBDs, their VDIs and SRs), the VM is recorded Halted with no
 * operations, snapshots or consoles, VBDs and VIFs detached, networks
 * without PIFs, SRs without PBDs. CD drives are recorded empty: an ISO
 * belongs to a library of this host, not to the VM.
 *
 * Import takes what it knows of each record (fields of the class that
 * pass the datamodel's type check; ints arrive as text) and resets what
 * belongs to this host: uuids (unless preserved), power state, metrics,
 * operations, disk locations. Networks are matched by name, else made
 * (a private network). An exported snapshot becomes a template, as in
 * xapi. The version xapi checks is the format's (export_vsn): any
 * writer's archive in a format this reader knows is accepted. */
#include "vm/xva.h"

#include <string.h>

#include "net/net.h"
#include "storage/storage.h"
#include "util/log.h"
#include "util/uuid.h"
#include "vm/vm_runtime.h"

/* ---- export ------------------------------------------------------------------ */

struct walk {
	xn_host *h;
	json_t *ids;        /* ref -> "Ref:N" */
	json_t *order;      /* refs in the order ids were given */
	json_t *disks;      /* [[VDI ref, id], ...] */
	int next;
};

static const char *give_id(struct walk *w, const char *ref)
{
	if (xn_ref_is_null(ref) || !xn_db_get(w->h->db, ref))
		return NULL;
	json_t *id = json_object_get(w->ids, ref);
	if (!id) {
		id = json_sprintf("Ref:%d", w->next++);
		json_object_set_new(w->ids, ref, id);
		json_array_append_new(w->order, json_string(ref));
	}
	return json_string_value(id);
}

static bool is_disk(xn_host *h, const char *vbd)
{
	const char *vdi = xn_db_str(h->db, vbd, "VDI");
	const char *sr = xn_db_str(h->db, vdi, "SR");
	return xn_streq(xn_db_str(h->db, vbd, "type"), "Disk") && !xn_ref_is_null(vdi) &&
	       !xn_streq(xn_db_str(h->db, sr, "type"), "iso");
}

static void walk_vm(struct walk *w, const char *vm)
{
	xn_db *db = w->h->db;
	give_id(w, vm);
	size_t i;
	json_t *v;
	json_array_foreach(xn_db_field(db, vm, "VIFs"), i, v) {
		give_id(w, json_string_value(v));
		give_id(w, xn_db_str(db, json_string_value(v), "network"));
	}
	json_array_foreach(xn_db_field(db, vm, "VBDs"), i, v) {
		const char *vbd = json_string_value(v);
		give_id(w, vbd);
		if (!is_disk(w->h, vbd))
			continue;
		const char *vdi = xn_db_str(db, vbd, "VDI");
		const char *id = give_id(w, vdi);
		give_id(w, xn_db_str(db, vdi, "SR"));
		json_array_append_new(w->disks, json_pack("[ss]", vdi, id));
	}
}

/* A reference field's value in the archive: its id, or the null ref. */
static json_t *rewrite_value(struct walk *w, const xn_type *t, json_t *v)
{
	if (t->kind == XN_T_REF) {
		json_t *id = json_object_get(w->ids, json_string_value(v) ? json_string_value(v) : "");
		return json_string(id ? json_string_value(id) : XN_NULL_REF);
	}
	json_t *out = json_array();
	size_t i;
	json_t *e;
	json_array_foreach(v, i, e) {
		json_t *id = json_object_get(w->ids, json_string_value(e) ? json_string_value(e) : "");
		if (id)
			json_array_append(out, id);
	}
	return out;
}

static void set(json_t *rec, const char *field, json_t *v)
{
	if (json_object_get(rec, field))
		json_object_set_new(rec, field, v);
	else
		json_decref(v);
}

/* The snapshot of ref as the archive records it (new reference). */
static json_t *snapshot_of(struct walk *w, const char *ref)
{
	xn_db *db = w->h->db;
	const xn_class *c = xn_db_class_of(db, ref);
	json_t *rec = json_deep_copy(xn_db_get(db, ref));
	for (size_t i = 0; i < c->nfields; i++) {
		const xn_field *f = &c->fields[i];
		json_t *v = json_object_get(rec, f->name);
		bool refs = f->type->kind == XN_T_REF ||
			    (f->type->kind == XN_T_SET && f->type->elem->kind == XN_T_REF);
		if (v && refs)
			json_object_set_new(rec, f->name, rewrite_value(w, f->type, v));
		else if (v && f->type->kind == XN_T_MAP &&
			 (f->type->key->kind == XN_T_REF || f->type->val->kind == XN_T_REF))
			json_object_set_new(rec, f->name, json_object());
	}
	static const char *emptied[] = {"allowed_operations", "consoles", "crash_dumps", "blobs",
					"snapshots", "PIFs", "PBDs", NULL};
	for (size_t i = 0; emptied[i]; i++)
		set(rec, emptied[i], json_array());
	set(rec, "current_operations", json_object());
	set(rec, "currently_attached", json_false());
	set(rec, "metrics", json_string(XN_NULL_REF));
	if (c == xn_model_class("VM")) {
		json_object_set_new(rec, "power_state", json_string("Halted"));
		json_object_set_new(rec, "snapshot_of", json_string(XN_NULL_REF));
		json_object_set_new(rec, "resident_on", json_string(XN_NULL_REF));
		json_object_set_new(rec, "domid", json_integer(-1));
		json_object_del(json_object_get(rec, "other_config"), "xenia-builtin");
	} else if (c == xn_model_class("VBD") && !is_disk(w->h, ref)) {
		json_object_set_new(rec, "VDI", json_string(XN_NULL_REF));
		json_object_set_new(rec, "empty", json_true());
	} else if (c == xn_model_class("VDI")) {
		json_object_set_new(rec, "sm_config", json_object()); /* chains are this host's */
	}
	return rec;
}

/* The classes in xapi's order of export. */
static const char *const classes[] = {"host", "VM", "VBD", "VIF", "network", "VDI", "SR"};

char *xn_xva_header_build(xn_host *h, const char *vm, json_t **disks)
{
	struct walk w = {.h = h, .ids = json_object(), .order = json_array(),
			 .disks = json_array()};
	walk_vm(&w, vm);
	xn_buf b = {0};
	xn_buf_puts(&b, "<value><struct><member><name>version</name>");
	XN_AUTOFREE char *date = xn_datetime_str(xn_wall_time());
	json_t *sv = xn_db_field(h->db, h->host_ref, "software_version");
	const char *product = json_string_value(json_object_get(sv, "product_version"));
	json_t *version = json_pack(
		"{s:s,s:s,s:s,s:s,s:s,s:i,s:i,s:i}", "hostname", "localhost", "date", date,
		"product_version", product ? product : "", "product_brand", "Xenia", "build_number", "xenia",
		"xapi_major", 1, "xapi_minor", 20, "export_vsn", XN_XVA_EXPORT_VSN);
	xn_xmlrpc_value(&b, version, NULL);
	json_decref(version);
	xn_buf_puts(&b, "</member><member><name>objects</name><value><array><data>");
	for (size_t k = 0; k < XN_ARRAY_LEN(classes); k++) {
		const xn_class *c = xn_model_class(classes[k]);
		size_t i;
		json_t *r;
		json_array_foreach(w.order, i, r) {
			const char *ref = json_string_value(r);
			if (xn_db_class_of(h->db, ref) != c)
				continue;
			json_t *snap = snapshot_of(&w, ref);
			XN_AUTOFREE char *type = xn_asprintf("%s record", c->name);
			xn_buf_printf(&b, "<value><struct><member><name>class</name><value>%s</value>"
				      "</member><member><name>id</name><value>%s</value></member>"
				      "<member><name>snapshot</name>",
				      c->name, json_string_value(json_object_get(w.ids, ref)));
			xn_xmlrpc_value(&b, snap, xn_type_parse(type));
			xn_buf_puts(&b, "</member></struct></value>");
			json_decref(snap);
		}
	}
	xn_buf_puts(&b, "</data></array></value></member></struct></value>");
	json_decref(w.ids);
	json_decref(w.order);
	*disks = w.disks;
	return xn_buf_steal(&b);
}

/* ---- import: reading ----------------------------------------------------------- */

json_t *xn_xva_header_parse(const char *xml, size_t len, xn_error **err)
{
	json_t *v = xn_xmlrpc_decode_value(xml, len);
	json_t *objects = json_object_get(v, "objects");
	if (!json_is_object(v) || !json_is_array(objects)) {
		json_decref(v);
		xn_fail(err, "IMPORT_ERROR_GENERIC",
			"ova.xml is not an XVA header (an XML-RPC struct with 'version' and "
			"'objects')", NULL);
		return NULL;
	}
	size_t i;
	json_t *o;
	json_array_foreach(objects, i, o) {
		if (!json_is_string(json_object_get(o, "class")) ||
		    !json_is_string(json_object_get(o, "id")) ||
		    !json_is_object(json_object_get(o, "snapshot"))) {
			json_decref(v);
			xn_fail(err, "IMPORT_ERROR_GENERIC",
				"ova.xml: an object without class, id or snapshot", NULL);
			return NULL;
		}
	}
	return v;
}

struct xn_xva_plan {
	xn_host *h;
	char *sr;
	bool preserve, metadata;
	json_t *objects;     /* id -> {class, id, snapshot} (borrowed from the header) */
	const char *vm;      /* the VM's id */
	json_t *vdis;        /* id -> existing VDI ref (metadata) or "" (to be made) */
	json_t *disks;       /* [{"id", "size", "location"}] */
};

static json_t *object(const xn_xva_plan *p, const char *id, const char *cls)
{
	json_t *o = json_object_get(p->objects, id ? id : "");
	return o && xn_streq(json_string_value(json_object_get(o, "class")), cls)
		       ? json_object_get(o, "snapshot") : NULL;
}

static const char *snap_str(json_t *snap, const char *field)
{
	const char *s = json_string_value(json_object_get(snap, field));
	return s ? s : "";
}

/* The snapshot of object id if it is a cls (a VBD, a VIF) of the VM. */
static json_t *vm_device(const xn_xva_plan *p, const char *id, const char *cls)
{
	json_t *snap = object(p, id, cls);
	return snap && xn_streq(snap_str(snap, "VM"), p->vm) ? snap : NULL;
}

static int64_t snap_int(json_t *snap, const char *field)
{
	json_t *v = xn_value_check(xn_type_parse("int"), json_object_get(snap, field), field, NULL);
	int64_t n = v ? json_integer_value(v) : -1;
	json_decref(v);
	return n;
}

/* Each of the VM's VBDs (ids) whose VDI is a disk with data. */
static int plan_disks(xn_xva_plan *p, xn_error **err)
{
	int64_t total = 0;
	const char *id;
	json_t *o;
	json_object_foreach(p->objects, id, o) {
		json_t *vbd = vm_device(p, id, "VBD");
		if (!vbd || !xn_streq(snap_str(vbd, "type"), "Disk"))
			continue;
		const char *vdi_id = snap_str(vbd, "VDI");
		json_t *vdi = object(p, vdi_id, "VDI");
		json_t *sr = object(p, snap_str(vdi, "SR"), "SR");
		if (!vdi || xn_streq(snap_str(sr, "type"), "iso") || json_object_get(p->vdis, vdi_id))
			continue;
		int64_t size = snap_int(vdi, "virtual_size");
		size = size < 0 ? size : (size + 511) / 512 * 512; /* whole sectors */
		if (size < 0)
			return xn_fail(err, "IMPORT_ERROR_GENERIC", "ova.xml: a disk without a size",
				       vdi_id, NULL);
		const char *uuid = snap_str(vdi, "uuid");
		const char *have = xn_db_ref_by_uuid(p->h->db, xn_model_class("VDI"), uuid);
		if (p->metadata && !have)
			return xn_fail(err, "VDI_MISSING", p->sr, uuid, NULL);
		if (p->preserve && !p->metadata && have)
			return xn_fail(err, "IMPORT_ERROR_GENERIC",
				       "a disk with this uuid exists already", uuid, NULL);
		json_object_set_new(p->vdis, vdi_id, json_string(p->metadata ? have : ""));
		if (!p->metadata)
			json_array_append_new(p->disks, json_pack("{s:s,s:I}", "id", vdi_id,
								  "size", (json_int_t)size));
		total += size;
	}
	/* images are thin, but a disk the SR could never hold is refused */
	int64_t room = xn_db_int(p->h->db, p->sr, "physical_size");
	if (!p->metadata && room > 0 && total > room) {
		XN_AUTOFREE char *a = xn_asprintf("%lld", (long long)total);
		XN_AUTOFREE char *b = xn_asprintf("%lld", (long long)room);
		return xn_fail(err, "SR_FULL", a, b, NULL);
	}
	return 0;
}

static int plan_vm(xn_xva_plan *p, json_t *header, xn_error **err)
{
	json_t *vsn = json_object_get(json_object_get(header, "version"), "export_vsn");
	json_t *n = vsn ? xn_value_check(xn_type_parse("int"), vsn, "export_vsn", NULL) : NULL;
	int64_t version = n ? json_integer_value(n) : 0;
	json_decref(n);
	if (version < 1 || version > XN_XVA_EXPORT_VSN)
		return xn_fail(err, "IMPORT_INCOMPATIBLE_VERSION", NULL);
	size_t i;
	json_t *o;
	json_array_foreach(json_object_get(header, "objects"), i, o) {
		const char *id = json_string_value(json_object_get(o, "id"));
		json_object_set(p->objects, id, o);
		if (!xn_streq(json_string_value(json_object_get(o, "class")), "VM"))
			continue;
		if (p->vm)
			return xn_fail(err, "IMPORT_ERROR_GENERIC",
				       "ova.xml describes more than one VM", NULL);
		p->vm = id;
	}
	if (!p->vm)
		return xn_fail(err, "IMPORT_ERROR_GENERIC", "ova.xml describes no VM", NULL);
	const char *uuid = snap_str(object(p, p->vm, "VM"), "uuid");
	if (p->preserve && xn_db_ref_by_uuid(p->h->db, xn_model_class("VM"), uuid))
		return xn_fail(err, "IMPORT_ERROR_GENERIC", "a VM with this uuid exists already",
			       uuid, NULL);
	return 0;
}

xn_xva_plan *xn_xva_plan_new(xn_host *h, json_t *header, const char *sr, bool preserve,
			     bool metadata, xn_error **err)
{
	xn_xva_plan *p = xn_calloc(1, sizeof(*p));
	p->h = h;
	p->sr = xn_strdup(sr);
	p->preserve = preserve;
	p->metadata = metadata;
	p->objects = json_object();
	p->vdis = json_object();
	p->disks = json_array();
	if (plan_vm(p, header, err) < 0 || plan_disks(p, err) < 0) {
		xn_xva_plan_free(p);
		return NULL;
	}
	return p;
}

size_t xn_xva_plan_ndisks(const xn_xva_plan *p)
{
	return json_array_size(p->disks);
}

const char *xn_xva_plan_disk(const xn_xva_plan *p, size_t i, int64_t *size)
{
	json_t *d = json_array_get(p->disks, i);
	*size = json_integer_value(json_object_get(d, "size"));
	return json_string_value(json_object_get(d, "id"));
}

void xn_xva_plan_set_location(xn_xva_plan *p, size_t i, const char *location)
{
	json_object_set_new(json_array_get(p->disks, i), "location", json_string(location));
}

void xn_xva_plan_free(xn_xva_plan *p)
{
	if (!p)
		return;
	free(p->sr);
	json_decref(p->objects);
	json_decref(p->vdis);
	json_decref(p->disks);
	free(p);
}

/* ---- import: the records ----------------------------------------------------- */

/* A record of class cls from an archive's snapshot: every field the
 * class has that passes its type check, references left out (the
 * caller sets those it keeps), uuid only when preserved. */
static json_t *take_fields(xn_xva_plan *p, const char *cls, json_t *snap)
{
	const xn_class *c = xn_model_class(cls);
	json_t *rec = json_object();
	for (size_t i = 0; i < c->nfields; i++) {
		const xn_field *f = &c->fields[i];
		const xn_type *t = f->type;
		bool refs = t->kind == XN_T_REF || (t->kind == XN_T_SET && t->elem->kind == XN_T_REF) ||
			    (t->kind == XN_T_MAP &&
			     (t->key->kind == XN_T_REF || t->val->kind == XN_T_REF));
		json_t *v = json_object_get(snap, f->name);
		if (!v || refs || (strcmp(f->name, "uuid") == 0 && !p->preserve))
			continue;
		json_t *ok = xn_value_check(t, v, f->name, NULL);
		if (ok)
			json_object_set_new(rec, f->name, ok);
		else
			xn_debug("import: %s.%s: value of the wrong type ignored", cls, f->name);
	}
	static const char *reset[] = {"allowed_operations", "current_operations",
				      "currently_attached", "runtime_properties", NULL};
	for (size_t i = 0; reset[i]; i++)
		json_object_del(rec, reset[i]);
	return rec;
}

static const char *add_vm(xn_xva_plan *p, xn_changes *cs)
{
	json_t *snap = object(p, p->vm, "VM");
	json_t *rec = take_fields(p, "VM", snap);
	bool template = json_is_true(json_object_get(rec, "is_a_template")) ||
			json_is_true(json_object_get(rec, "is_a_snapshot"));
	json_object_set_new(rec, "is_a_template", json_boolean(template));
	json_object_set_new(rec, "is_a_snapshot", json_false());
	json_object_set_new(rec, "is_default_template", json_false());
	json_object_set_new(rec, "is_control_domain", json_false());
	json_object_set_new(rec, "power_state", json_string("Halted"));
	json_object_set_new(rec, "domid", json_integer(-1));
	json_object_del(rec, "snapshot_time");
	json_object_del(json_object_get(rec, "other_config"), "xenia-builtin");
	const char *m = xn_changes_add(cs, xn_model_class("VM_metrics"), NULL, json_object());
	json_object_set_new(rec, "metrics", json_string(m));
	const char *vm = xn_changes_add(cs, xn_model_class("VM"), NULL, rec);
	xn_vm_refresh_allowed(cs, vm);
	return vm;
}

static const char *add_vdi(xn_xva_plan *p, xn_changes *cs, json_t *disk)
{
	const char *id = json_string_value(json_object_get(disk, "id"));
	const char *loc = json_string_value(json_object_get(disk, "location"));
	json_t *rec = take_fields(p, "VDI", object(p, id, "VDI"));
	static const char *reset[] = {"physical_utilisation", "sm_config", "is_a_snapshot",
				      "snapshot_time", "missing", "location", NULL};
	for (size_t i = 0; reset[i]; i++)
		json_object_del(rec, reset[i]);
	if (!p->preserve)
		json_object_set_new(rec, "uuid", json_string(loc));
	json_object_set_new(rec, "SR", json_string(p->sr));
	json_object_set_new(rec, "virtual_size", json_incref(json_object_get(disk, "size")));
	json_object_set_new(rec, "location", json_string(loc));
	json_object_set_new(rec, "managed", json_true());
	return xn_changes_add(cs, xn_model_class("VDI"), NULL, rec);
}

static void add_vbds(xn_xva_plan *p, xn_changes *cs, const char *vm, json_t *vdis)
{
	const char *id;
	json_t *o;
	json_object_foreach(p->objects, id, o) {
		json_t *snap = vm_device(p, id, "VBD");
		if (!snap)
			continue;
		json_t *rec = take_fields(p, "VBD", snap);
		const char *vdi = json_string_value(json_object_get(vdis, snap_str(snap, "VDI")));
		json_object_set_new(rec, "VM", json_string(vm));
		json_object_set_new(rec, "VDI", json_string(vdi ? vdi : XN_NULL_REF));
		json_object_set_new(rec, "empty", json_boolean(!vdi));
		if (!vdi && xn_streq(snap_str(snap, "type"), "Disk"))
			json_decref(rec); /* a disk whose data is not here */
		else
			xn_changes_add(cs, xn_model_class("VBD"), NULL, rec);
	}
}

/* This host's network for an archive's: the one of the same name, else
 * a new private network (made by cs). */
static const char *network_for(xn_xva_plan *p, xn_changes *cs, const char *id, json_t *made)
{
	json_t *snap = object(p, id, "network");
	const char *name = snap ? snap_str(snap, "name_label") : "Imported network";
	const char *k;
	json_t *v;
	json_object_foreach(xn_db_all(p->h->db, xn_model_class("network")), k, v)
		if (xn_streq(json_string_value(json_object_get(v, "name_label")), name))
			return k;
	json_t *ref = json_object_get(made, name);
	if (ref)
		return json_string_value(ref);
	XN_AUTOFREE char *bridge = xn_net_free_bridge_name(p->h);
	const char *net = xn_changes_add(
		cs, xn_model_class("network"), NULL,
		json_pack("{s:s,s:s,s:s,s:I}", "name_label", name, "name_description",
			  snap ? snap_str(snap, "name_description") : "", "bridge", bridge, "MTU",
			  (json_int_t)1500));
	json_object_set_new(made, name, json_string(net));
	return net;
}

static void add_vifs(xn_xva_plan *p, xn_changes *cs, const char *vm)
{
	json_t *made = json_object();
	const char *id;
	json_t *o;
	json_object_foreach(p->objects, id, o) {
		json_t *snap = vm_device(p, id, "VIF");
		if (!snap)
			continue;
		json_t *rec = take_fields(p, "VIF", snap);
		json_object_set_new(rec, "VM", json_string(vm));
		json_object_set_new(rec, "network",
				    json_string(network_for(p, cs, snap_str(snap, "network"), made)));
		if (!p->preserve || !*snap_str(snap, "MAC")) {
			XN_AUTOFREE char *mac = xn_net_new_mac(p->h);
			json_object_set_new(rec, "MAC", json_string(mac));
			json_object_set_new(rec, "MAC_autogenerated", json_true());
		}
		xn_changes_add(cs, xn_model_class("VIF"), NULL, rec);
	}
	json_decref(made);
}

char *xn_xva_plan_commit(xn_xva_plan *p, xn_error **err)
{
	xn_changes *cs = xn_changes_new(p->h->db);
	XN_AUTOFREE char *vm = xn_strdup(add_vm(p, cs));
	json_t *vdis = json_deep_copy(p->vdis);   /* id -> VDI ref */
	size_t i;
	json_t *d;
	json_array_foreach(p->disks, i, d)
		json_object_set_new(vdis, json_string_value(json_object_get(d, "id")),
				    json_string(add_vdi(p, cs, d)));
	add_vbds(p, cs, vm, vdis);
	json_decref(vdis);
	add_vifs(p, cs, vm);
	if (xn_db_commit(p->h->db, cs, err) < 0)
		return NULL;
	return xn_steal(&vm);
}
