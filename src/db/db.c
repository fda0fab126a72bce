/* db.c: the in-memory side of the object store: lookups, change-sets,
 * relation maintenance, and the one commit function (db.h). */
#include "db/db.h"

#include <stdlib.h>
#include <string.h>

#include "util/log.h"
#include "util/uuid.h"

struct listener {
	xn_db_listener fn;
	void *ud;
};

struct xn_db {
	const xn_db_backend_ops *ops;
	void *be;
	json_t **by_class;   /* per class: ref -> record */
	json_t **by_uuid;    /* per class: uuid -> ref */
	json_t *class_of;    /* ref -> class id */
	json_t *obj_gen;     /* ref -> generation of its last change */
	json_t *texts;       /* ref -> compact JSON of its record (a cache) */
	uint64_t generation;
	struct listener *listeners;
	size_t nlisteners;
};

/* One entry of a change-set: the object's complete new record (or NULL
 * to delete it) plus what it was before. */
struct change {
	const xn_class *cls;
	char *ref;
	json_t *record;  /* new record; NULL = delete */
	bool existed;
};

struct xn_changes {
	xn_db *db;
	struct change *v;
	size_t n;
};

static int load_one(void *ud, const xn_class *cls, const char *ref, json_t *record,
		    xn_error **err XN_UNUSED)
{
	xn_db *db = ud;
	json_object_set_new(db->by_class[cls->id], ref, record);
	json_object_set_new(db->class_of, ref, json_integer(cls->id));
	json_t *uuid = json_object_get(record, "uuid");
	if (json_is_string(uuid))
		json_object_set_new(db->by_uuid[cls->id], json_string_value(uuid),
				    json_string(ref));
	return 0;
}

xn_db *xn_db_open(const xn_db_backend_ops *ops, void *be, xn_error **err)
{
	xn_model_init();
	xn_db *db = xn_calloc(1, sizeof(*db));
	db->ops = ops;
	db->be = be;
	size_t n = xn_model_nclasses();
	db->by_class = xn_calloc(n, sizeof(json_t *));
	db->by_uuid = xn_calloc(n, sizeof(json_t *));
	for (size_t i = 0; i < n; i++) {
		db->by_class[i] = json_object();
		db->by_uuid[i] = json_object();
	}
	db->class_of = json_object();
	db->obj_gen = json_object();
	db->texts = json_object();
	if (ops->load(be, load_one, db, &db->generation, err) < 0) {
		xn_db_close(db);
		return NULL;
	}
	return db;
}

void xn_db_close(xn_db *db)
{
	if (!db)
		return;
	if (db->ops && db->be)
		db->ops->close(db->be);
	for (size_t i = 0; i < xn_model_nclasses(); i++) {
		json_decref(db->by_class[i]);
		json_decref(db->by_uuid[i]);
	}
	free(db->by_class);
	free(db->by_uuid);
	json_decref(db->class_of);
	json_decref(db->obj_gen);
	json_decref(db->texts);
	free(db->listeners);
	free(db);
}

const xn_class *xn_db_class_of(xn_db *db, const char *ref)
{
	json_t *id = ref ? json_object_get(db->class_of, ref) : NULL;
	return id ? xn_model_class_at((size_t)json_integer_value(id)) : NULL;
}

json_t *xn_db_get(xn_db *db, const char *ref)
{
	const xn_class *c = xn_db_class_of(db, ref);
	return c ? json_object_get(db->by_class[c->id], ref) : NULL;
}

json_t *xn_db_all(xn_db *db, const xn_class *c)
{
	return db->by_class[c->id];
}

const char *xn_db_ref_by_uuid(xn_db *db, const xn_class *c, const char *uuid)
{
	json_t *r = uuid ? json_object_get(db->by_uuid[c->id], uuid) : NULL;
	return r ? json_string_value(r) : NULL;
}

json_t *xn_db_field(xn_db *db, const char *ref, const char *field)
{
	json_t *rec = xn_db_get(db, ref);
	return rec ? json_object_get(rec, field) : NULL;
}

const char *xn_db_str(xn_db *db, const char *ref, const char *field)
{
	const char *s = json_string_value(xn_db_field(db, ref, field));
	return s ? s : "";
}

const char *xn_db_member_where(xn_db *db, const char *ref, const char *set, const char *field,
			       const char *value)
{
	size_t i;
	json_t *v;
	json_array_foreach(xn_db_field(db, ref, set), i, v)
		if (xn_streq(xn_db_str(db, json_string_value(v), field), value))
			return json_string_value(v);
	return NULL;
}

json_int_t xn_db_int(xn_db *db, const char *ref, const char *field)
{
	return json_integer_value(xn_db_field(db, ref, field));
}

bool xn_db_bool(xn_db *db, const char *ref, const char *field)
{
	return json_is_true(xn_db_field(db, ref, field));
}

uint64_t xn_db_generation(xn_db *db)
{
	return db->generation;
}

const char *xn_db_record_text(xn_db *db, const char *ref, json_t *rec)
{
	if (!ref || !rec || xn_db_get(db, ref) != rec)
		return NULL;
	json_t *t = json_object_get(db->texts, ref);
	if (!t) {
		char *text = json_dumps(rec, JSON_COMPACT);
		if (!text)
			return NULL;
		t = json_string_nocheck(text);
		free(text);
		json_object_set_new(db->texts, ref, t);
	}
	return json_string_value(t);
}

uint64_t xn_db_obj_generation(xn_db *db, const char *ref)
{
	return (uint64_t)json_integer_value(json_object_get(db->obj_gen, ref));
}

void xn_db_listen(xn_db *db, xn_db_listener fn, void *ud)
{
	db->listeners = xn_realloc(db->listeners, (db->nlisteners + 1) * sizeof(struct listener));
	db->listeners[db->nlisteners++] = (struct listener){fn, ud};
}

/* ---- change-sets ---------------------------------------------------- */

xn_changes *xn_changes_new(xn_db *db)
{
	xn_changes *cs = xn_calloc(1, sizeof(*cs));
	cs->db = db;
	return cs;
}

void xn_changes_free(xn_changes *cs)
{
	if (!cs)
		return;
	for (size_t i = 0; i < cs->n; i++) {
		free(cs->v[i].ref);
		json_decref(cs->v[i].record);
	}
	free(cs->v);
	free(cs);
}

void xn_changesp_free(xn_changes **cs)
{
	xn_changes_free(*cs);
	*cs = NULL;
}

bool xn_changes_empty(const xn_changes *cs)
{
	return cs->n == 0;
}

static struct change *find_change(xn_changes *cs, const char *ref)
{
	for (size_t i = 0; i < cs->n; i++)
		if (strcmp(cs->v[i].ref, ref) == 0)
			return &cs->v[i];
	return NULL;
}

static struct change *push_change(xn_changes *cs, const xn_class *c, const char *ref,
				  json_t *record, bool existed)
{
	cs->v = xn_realloc(cs->v, (cs->n + 1) * sizeof(struct change));
	struct change *ch = &cs->v[cs->n++];
	ch->cls = c;
	ch->ref = xn_strdup(ref);
	ch->record = record;
	ch->existed = existed;
	return ch;
}

const char *xn_changes_add(xn_changes *cs, const xn_class *c, const char *ref,
			   json_t *record)
{
	json_t *full = xn_record_new(c);
	json_object_update(full, record);
	json_decref(record);
	const char *uuid = json_string_value(json_object_get(full, "uuid"));
	if (!uuid || !*uuid) {
		XN_AUTOFREE char *u = xn_uuid_new();
		json_object_set_new(full, "uuid", json_string(u));
	}
	XN_AUTOFREE char *newref = ref ? xn_strdup(ref) : xn_ref_new();
	struct change *ch = push_change(cs, c, newref, full, false);
	return ch->ref;
}

json_t *xn_changes_edit(xn_changes *cs, const char *ref)
{
	struct change *ch = find_change(cs, ref);
	if (ch)
		return ch->record; /* NULL if deleted in this change-set */
	json_t *cur = xn_db_get(cs->db, ref);
	if (!cur)
		return NULL;
	ch = push_change(cs, xn_db_class_of(cs->db, ref), ref, json_deep_copy(cur), true);
	return ch->record;
}

int xn_changes_set(xn_changes *cs, const char *ref, const char *field, json_t *value)
{
	json_t *rec = xn_changes_edit(cs, ref);
	if (!rec) {
		json_decref(value);
		return -1;
	}
	json_object_set_new(rec, field, value);
	return 0;
}

void xn_changes_delete(xn_changes *cs, const char *ref)
{
	struct change *ch = find_change(cs, ref);
	if (ch) {
		json_decref(ch->record);
		ch->record = NULL;
		if (!ch->existed) {
			/* added and deleted in one change-set: nothing to do */
			free(ch->ref);
			*ch = cs->v[--cs->n];
		}
		return;
	}
	const xn_class *c = xn_db_class_of(cs->db, ref);
	if (c)
		push_change(cs, c, ref, NULL, true);
}

/* ---- relations ------------------------------------------------------ */

static void set_remove(json_t *set, const char *ref)
{
	for (size_t i = json_array_size(set); i-- > 0;)
		if (xn_streq(json_string_value(json_array_get(set, i)), ref))
			json_array_remove(set, i);
}

static void set_add(json_t *set, const char *ref)
{
	set_remove(set, ref);
	json_array_append_new(set, json_string(ref));
}

/* Edit the "many" side of rel on target (if it exists) to drop or add ref. */
static void relink(xn_changes *cs, const xn_relation *rel, const char *target,
		   const char *ref, bool add)
{
	if (xn_ref_is_null(target))
		return;
	const xn_class *tc = xn_db_class_of(cs->db, target);
	struct change *tch = find_change(cs, target);
	if (tch)
		tc = tch->cls;
	if (!tc || strcmp(tc->name, rel->many_cls) != 0)
		return;
	json_t *rec = xn_changes_edit(cs, target);
	if (!rec)
		return;
	json_t *set = json_object_get(rec, rel->many_field);
	if (!json_is_array(set)) {
		set = json_array();
		json_object_set_new(rec, rel->many_field, set);
	}
	if (add)
		set_add(set, ref);
	else
		set_remove(set, ref);
}

static void maintain_relations(xn_changes *cs)
{
	size_t nrel;
	const xn_relation *rels = xn_model_relations(&nrel);
	size_t n = cs->n; /* relinking appends; only walk the original entries */
	for (size_t i = 0; i < n; i++) {
		for (size_t r = 0; r < nrel; r++) {
			struct change *ch = &cs->v[i];
			if (strcmp(ch->cls->name, rels[r].one_cls) != 0)
				continue;
			json_t *old = ch->existed ? xn_db_get(cs->db, ch->ref) : NULL;
			const char *was = old ? json_string_value(json_object_get(old, rels[r].one_field)) : NULL;
			const char *now = ch->record ? json_string_value(json_object_get(ch->record, rels[r].one_field)) : NULL;
			if (xn_streq(was, now))
				continue;
			XN_AUTOFREE char *ref = xn_strdup(ch->ref);
			XN_AUTOFREE char *now_copy = xn_strdup(now);
			relink(cs, &rels[r], was, ref, false);
			relink(cs, &rels[r], now_copy, ref, true);
		}
	}
}

/* ---- commit --------------------------------------------------------- */

int xn_db_commit(xn_db *db, xn_changes *cs, xn_error **err)
{
	if (cs->n == 0) {
		xn_changes_free(cs);
		return 0;
	}
	maintain_relations(cs);
	xn_db_write *writes = xn_calloc(cs->n, sizeof(xn_db_write));
	for (size_t i = 0; i < cs->n; i++) {
		struct change *ch = &cs->v[i];
		json_t *rec = ch->record ? ch->record : xn_db_get(db, ch->ref);
		writes[i] = (xn_db_write){ch->cls, ch->ref,
					  json_string_value(json_object_get(rec, "uuid")),
					  ch->record};
	}
	uint64_t gen = db->generation + 1;
	int rc = db->ops->commit(db->be, writes, cs->n, gen, err);
	free(writes);
	if (rc < 0) {
		xn_changes_free(cs);
		return -1;
	}
	db->generation = gen;
	/* Apply to memory, keeping the old records alive for the listeners
	 * of deletions. */
	json_t *gone = json_object();
	for (size_t i = 0; i < cs->n; i++) {
		struct change *ch = &cs->v[i];
		json_t *cls_objs = db->by_class[ch->cls->id];
		json_t *old = json_object_get(cls_objs, ch->ref);
		if (old) {
			json_t *u = json_object_get(old, "uuid");
			if (json_is_string(u))
				json_object_del(db->by_uuid[ch->cls->id], json_string_value(u));
		}
		if (ch->record) {
			json_object_set(cls_objs, ch->ref, ch->record);
			json_object_set_new(db->class_of, ch->ref, json_integer(ch->cls->id));
			json_t *u = json_object_get(ch->record, "uuid");
			if (json_is_string(u))
				json_object_set_new(db->by_uuid[ch->cls->id], json_string_value(u),
						    json_string(ch->ref));
		} else if (old) {
			json_object_set(gone, ch->ref, old);
			json_object_del(cls_objs, ch->ref);
			json_object_del(db->class_of, ch->ref);
		}
		json_object_set_new(db->obj_gen, ch->ref, json_integer((json_int_t)gen));
		json_object_del(db->texts, ch->ref);
	}
	for (size_t i = 0; i < cs->n; i++) {
		struct change *ch = &cs->v[i];
		enum xn_db_op op = !ch->record ? XN_DB_DEL : ch->existed ? XN_DB_MOD : XN_DB_ADD;
		json_t *rec = ch->record ? ch->record : json_object_get(gone, ch->ref);
		if (op == XN_DB_DEL)
			json_object_del(db->obj_gen, ch->ref);
		for (size_t l = 0; l < db->nlisteners; l++)
			db->listeners[l].fn(db->listeners[l].ud, gen, ch->cls, ch->ref, op, rec);
	}
	json_decref(gone);
	xn_changes_free(cs);
	return 0;
}

int xn_db_set(xn_db *db, const char *ref, const char *field, json_t *value, xn_error **err)
{
	xn_changes *cs = xn_changes_new(db);
	if (xn_changes_set(cs, ref, field, value) < 0) {
		xn_changes_free(cs);
		return xn_fail_internal(err, "no object '%s'", ref);
	}
	return xn_db_commit(db, cs, err);
}
