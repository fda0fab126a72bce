/* db_sqlite.c: the standalone host's persistence backend (db.h).
 *
 * One table per stored class, derived from the model: (ref, uuid, record)
 * where record is the object's JSON record, the same document a pool
 * stores in etcd, so both backends carry identical values. A meta table
 * holds the generation counter. WAL journal, synchronous=FULL: a commit
 * that returned survives a crash of the daemon or of the machine. */
#include "db/db.h"

#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

struct sqlite_be {
	sqlite3 *db;
};

static int sql_fail(xn_error **err, sqlite3 *db, const char *what)
{
	return xn_fail_internal(err, "database: %s: %s", what, sqlite3_errmsg(db));
}

static int exec(sqlite3 *db, const char *sql, xn_error **err)
{
	char *msg = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		xn_fail_internal(err, "database: %s: %s", sql, msg ? msg : "?");
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

static bool stored(const xn_class *c)
{
	return !(c->flags & XN_CLS_RECORD_ONLY);
}

void *xn_db_sqlite_open(const char *path, xn_error **err)
{
	xn_model_init();
	sqlite3 *db = NULL;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
				       SQLITE_OPEN_FULLMUTEX, NULL) != SQLITE_OK) {
		xn_fail_internal(err, "cannot open database '%s': %s", path,
				 db ? sqlite3_errmsg(db) : "out of memory");
		sqlite3_close(db);
		return NULL;
	}
	sqlite3_busy_timeout(db, 5000);
	if (exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
		     "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);",
		 err) < 0)
		goto fail;
	if (exec(db, "BEGIN", err) < 0)
		goto fail;
	for (size_t i = 0; i < xn_model_nclasses(); i++) {
		const xn_class *c = xn_model_class_at(i);
		if (!stored(c))
			continue;
		XN_AUTOFREE char *sql = xn_asprintf(
			"CREATE TABLE IF NOT EXISTS \"%s\" (ref TEXT PRIMARY KEY, "
			"uuid TEXT NOT NULL, record TEXT NOT NULL)", c->name);
		if (exec(db, sql, err) < 0) {
			exec(db, "ROLLBACK", NULL);
			goto fail;
		}
	}
	if (exec(db, "COMMIT", err) < 0)
		goto fail;
	struct sqlite_be *be = xn_calloc(1, sizeof(*be));
	be->db = db;
	return be;
fail:
	sqlite3_close(db);
	return NULL;
}

static int sqlite_load(void *p, xn_db_load_fn fn, void *ud, uint64_t *generation,
		       xn_error **err)
{
	struct sqlite_be *be = p;
	*generation = 0;
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(be->db, "SELECT value FROM meta WHERE key='generation'", -1,
			       &st, NULL) != SQLITE_OK)
		return sql_fail(err, be->db, "reading meta");
	if (sqlite3_step(st) == SQLITE_ROW)
		*generation = (uint64_t)sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	for (size_t i = 0; i < xn_model_nclasses(); i++) {
		const xn_class *c = xn_model_class_at(i);
		if (!stored(c))
			continue;
		XN_AUTOFREE char *sql = xn_asprintf("SELECT ref, record FROM \"%s\"", c->name);
		if (sqlite3_prepare_v2(be->db, sql, -1, &st, NULL) != SQLITE_OK)
			return sql_fail(err, be->db, "reading objects");
		int rc;
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			const char *ref = (const char *)sqlite3_column_text(st, 0);
			const char *text = (const char *)sqlite3_column_text(st, 1);
			json_error_t jerr;
			json_t *rec = json_loads(text ? text : "", 0, &jerr);
			if (!json_is_object(rec)) {
				json_decref(rec);
				sqlite3_finalize(st);
				return xn_fail_internal(err, "database: corrupt record %s/%s: %s",
							c->name, ref, jerr.text);
			}
			/* Fields added to the model since the record was
			 * written get their defaults. */
			json_t *full = xn_record_new(c);
			json_object_update(full, rec);
			json_decref(rec);
			if (fn(ud, c, ref, full, err) < 0) {
				sqlite3_finalize(st);
				return -1;
			}
		}
		sqlite3_finalize(st);
		if (rc != SQLITE_DONE)
			return sql_fail(err, be->db, "reading objects");
	}
	return 0;
}

static int write_one(sqlite3 *db, const xn_db_write *w, xn_error **err)
{
	XN_AUTOFREE char *sql = w->record
		? xn_asprintf("INSERT OR REPLACE INTO \"%s\" (ref, uuid, record) VALUES (?, ?, ?)",
			      w->cls->name)
		: xn_asprintf("DELETE FROM \"%s\" WHERE ref = ?", w->cls->name);
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return sql_fail(err, db, "preparing write");
	sqlite3_bind_text(st, 1, w->ref, -1, SQLITE_STATIC);
	char *text = NULL;
	if (w->record) {
		text = json_dumps(w->record, JSON_COMPACT);
		sqlite3_bind_text(st, 2, w->uuid ? w->uuid : "", -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, text, -1, SQLITE_STATIC);
	}
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	free(text);
	if (rc != SQLITE_DONE)
		return sql_fail(err, db, "writing object");
	return 0;
}

static int sqlite_commit(void *p, const xn_db_write *writes, size_t n, uint64_t generation,
			 xn_error **err)
{
	struct sqlite_be *be = p;
	XN_AUTOFREE char *sql = NULL;
	if (exec(be->db, "BEGIN IMMEDIATE", err) < 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (!stored(writes[i].cls))
			continue;
		if (write_one(be->db, &writes[i], err) < 0)
			goto rollback;
	}
	sql = xn_asprintf(
		"INSERT OR REPLACE INTO meta (key, value) VALUES ('generation', '%llu')",
		(unsigned long long)generation);
	if (exec(be->db, sql, err) < 0)
		goto rollback;
	if (exec(be->db, "COMMIT", err) < 0)
		goto rollback;
	return 0;
rollback:
	exec(be->db, "ROLLBACK", NULL);
	return -1;
}

static void sqlite_close(void *p)
{
	struct sqlite_be *be = p;
	sqlite3_close(be->db);
	free(be);
}

const xn_db_backend_ops xn_db_sqlite_ops = {
	.name = "sqlite",
	.load = sqlite_load,
	.commit = sqlite_commit,
	.close = sqlite_close,
};
