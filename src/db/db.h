/* db.h: the object store.
 *
 * Every XenAPI object (and Xenia's internal state) lives here as a record
 * (model.h). Reads are served from memory. Every write is a change-set
 * handed to xn_db_commit(), which persists it through the backend as one
 * transaction (SQLite on a standalone host; etcd in a pool) and only then
 * applies it to memory, bumps the generation and tells the listeners.
 * Nothing above db/ knows which backend is in use, and nothing else
 * writes to the backend.
 *
 * The commit also keeps one-to-many relations (VBD.VM <-> VM.VBDs)
 * consistent, so callers only ever write the "one" side.
 *
 * Threading: the store belongs to the event-loop thread. */
#ifndef XN_DB_H
#define XN_DB_H

#include <jansson.h>
#include <stdint.h>

#include "model/model.h"
#include "util/err.h"

typedef struct xn_db xn_db;
typedef struct xn_changes xn_changes;

/* One stored object as the backend sees it. */
typedef struct xn_db_write {
	const xn_class *cls;
	const char *ref;
	const char *uuid;
	json_t *record; /* NULL: delete */
} xn_db_write;

typedef int (*xn_db_load_fn)(void *ud, const xn_class *cls, const char *ref,
			     json_t *record, xn_error **err);

/* A persistence backend: a table of operations. */
typedef struct xn_db_backend_ops {
	const char *name;
	/* Call fn for every stored object; *generation gets the stored
	 * generation counter. */
	int (*load)(void *be, xn_db_load_fn fn, void *ud, uint64_t *generation,
		    xn_error **err);
	/* Apply all writes and the new generation atomically. */
	int (*commit)(void *be, const xn_db_write *writes, size_t n, uint64_t generation,
		      xn_error **err);
	void (*close)(void *be);
} xn_db_backend_ops;

/* Open the SQLite backend at path (created if missing). */
void *xn_db_sqlite_open(const char *path, xn_error **err);
extern const xn_db_backend_ops xn_db_sqlite_ops;

/* Open a store over a backend (takes ownership of be) and load it. */
xn_db *xn_db_open(const xn_db_backend_ops *ops, void *be, xn_error **err);
void xn_db_close(xn_db *db);

/* ---- reads (borrowed values, valid until the next commit) ---------- */

json_t *xn_db_get(xn_db *db, const char *ref);
const xn_class *xn_db_class_of(xn_db *db, const char *ref);
/* All objects of a class: a JSON object ref -> record. */
json_t *xn_db_all(xn_db *db, const xn_class *c);
const char *xn_db_ref_by_uuid(xn_db *db, const xn_class *c, const char *uuid);
/* Value of one field, borrowed; NULL if the object or field is missing. */
json_t *xn_db_field(xn_db *db, const char *ref, const char *field);
const char *xn_db_str(xn_db *db, const char *ref, const char *field); /* "" if absent */
json_int_t xn_db_int(xn_db *db, const char *ref, const char *field);
/* The first object in ref's set field `set` (e.g. a VM's "VBDs") whose
 * string field `field` is value (borrowed ref), or NULL. */
const char *xn_db_member_where(xn_db *db, const char *ref, const char *set, const char *field,
			       const char *value);
bool xn_db_bool(xn_db *db, const char *ref, const char *field);
uint64_t xn_db_generation(xn_db *db);
/* The record of ref as compact JSON text, kept until the object next
 * changes (answers that return stored records are the API's hot path).
 * NULL unless rec is ref's current stored record. Borrowed: valid until
 * the next commit. */
const char *xn_db_record_text(xn_db *db, const char *ref, json_t *rec);
/* Generation of the last commit that touched ref (0 if unknown). */
uint64_t xn_db_obj_generation(xn_db *db, const char *ref);

/* ---- writes --------------------------------------------------------- */

xn_changes *xn_changes_new(xn_db *db);
void xn_changes_free(xn_changes *cs);
void xn_changesp_free(xn_changes **cs);
#define XN_AUTOCHANGES __attribute__((cleanup(xn_changesp_free)))

/* Add a new object. record is taken over; missing fields get defaults;
 * uuid is generated unless the record has one; ref is generated unless
 * given. Returns the ref (borrowed from the change-set). */
const char *xn_changes_add(xn_changes *cs, const xn_class *c, const char *ref,
			   json_t *record);
/* A mutable copy of an existing (or just added) object's record, kept in
 * the change-set; NULL if the object does not exist. */
json_t *xn_changes_edit(xn_changes *cs, const char *ref);
/* Set one field (value taken over). Returns -1 if the object is missing. */
int xn_changes_set(xn_changes *cs, const char *ref, const char *field, json_t *value);
void xn_changes_delete(xn_changes *cs, const char *ref);
bool xn_changes_empty(const xn_changes *cs);

/* Persist and apply; the change-set is consumed either way. On failure
 * nothing is applied. */
int xn_db_commit(xn_db *db, xn_changes *cs, xn_error **err);

/* Shorthand: one field of one object. */
int xn_db_set(xn_db *db, const char *ref, const char *field, json_t *value,
	      xn_error **err);

/* ---- listeners ------------------------------------------------------ */

enum xn_db_op { XN_DB_ADD, XN_DB_MOD, XN_DB_DEL };
typedef void (*xn_db_listener)(void *ud, uint64_t generation, const xn_class *cls,
			       const char *ref, enum xn_db_op op, json_t *record);
/* Called after every commit, once per object it touched (record is the
 * new one, or the last one for deletions). */
void xn_db_listen(xn_db *db, xn_db_listener fn, void *ud);

#endif
