/* event.c: XenAPI events (reference/xenapi.md §2.5): event.from with
 * tokens, event.inject, event.get_current_id.
 *
 * A token is the database generation (and a message generation, always
 * 0 here) as "%020llu,%020llu". Every commit bumps the generation and
 * stamps the objects it touched, so the events after a token are the
 * objects whose stamp is newer, plus the deletions logged since. A
 * waiting event.from is answered right after the commit that gives it
 * something to report, or at its timeout. */
#include "api/api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DELETIONS 65536

struct deletion {
	uint64_t gen;
	const xn_class *cls;
	char *ref;
};

struct waiter {
	xn_call *call;
	json_t *classes;      /* lowercase class names, or "*" */
	uint64_t since;
	uv_timer_t *timer;
	struct waiter *next;
};

static struct {
	xn_host *h;
	json_t *created;      /* ref -> generation it was added at */
	struct deletion *dels;
	size_t ndels, first;  /* ring */
	uint64_t lost_before; /* deletions older than this were dropped */
	struct waiter *waiters;
	uv_idle_t *wake;
} ev;

static char *token_of(uint64_t gen)
{
	return xn_asprintf("%020llu,%020llu", (unsigned long long)gen, 0ULL);
}

static int parse_token(const char *t, uint64_t *gen)
{
	if (!*t) {
		*gen = 0;
		return 0;
	}
	unsigned long long a, b;
	char tail;
	if (sscanf(t, "%llu,%llu%c", &a, &b, &tail) != 2)
		return -1;
	*gen = a;
	return 0;
}

static bool subscribed(json_t *classes, const xn_class *c, const char *ref)
{
	size_t i;
	json_t *v;
	json_array_foreach(classes, i, v) {
		const char *s = json_string_value(v);
		const char *slash = strchr(s, '/');
		if (strcmp(s, "*") == 0 || strcmp(s, c->lower) == 0)
			return true;
		if (slash && (size_t)(slash - s) == strlen(c->lower) &&
		    strncmp(s, c->lower, (size_t)(slash - s)) == 0 && strcmp(slash + 1, ref) == 0)
			return true;
	}
	return false;
}

static bool reportable(const xn_class *c)
{
	return !(c->flags & (XN_CLS_NO_EVENTS | XN_CLS_INTERNAL | XN_CLS_RECORD_ONLY));
}

static json_t *event_of(const xn_class *c, const char *ref, const char *op, json_t *snapshot,
			uint64_t gen)
{
	json_t *e = json_pack("{s:s,s:s,s:s,s:s,s:s}", "id", "", "timestamp", "0.0", "class",
			      c->lower, "operation", op, "ref", ref);
	char id[32];
	snprintf(id, sizeof(id), "%llu", (unsigned long long)gen);
	json_object_set_new(e, "id", json_string(id));
	if (snapshot)
		json_object_set(e, "snapshot", snapshot);
	return e;
}

/* Everything that changed after `since` in the subscribed classes. */
static json_t *collect(json_t *classes, uint64_t since)
{
	xn_db *db = ev.h->db;
	json_t *events = json_array();
	for (size_t i = 0; i < xn_model_nclasses(); i++) {
		const xn_class *c = xn_model_class_at(i);
		if (!reportable(c))
			continue;
		const char *ref;
		json_t *rec;
		json_object_foreach(xn_db_all(db, c), ref, rec) {
			uint64_t g = xn_db_obj_generation(db, ref);
			if (g <= since || !subscribed(classes, c, ref))
				continue;
			json_int_t born = json_integer_value(json_object_get(ev.created, ref));
			const char *op = since == 0 || (uint64_t)born > since ? "add" : "mod";
			json_array_append_new(events, event_of(c, ref, op, rec, g));
		}
	}
	for (size_t k = 0; k < ev.ndels; k++) {
		struct deletion *d = &ev.dels[(ev.first + k) % MAX_DELETIONS];
		if (d->gen > since && since != 0 && subscribed(classes, d->cls, d->ref))
			json_array_append_new(events, event_of(d->cls, d->ref, "del", NULL, d->gen));
	}
	return events;
}

static json_t *ref_counts(void)
{
	json_t *counts = json_object();
	for (size_t i = 0; i < xn_model_nclasses(); i++) {
		const xn_class *c = xn_model_class_at(i);
		if (reportable(c))
			json_object_set_new(counts, c->lower,
					    json_integer((json_int_t)json_object_size(
						    xn_db_all(ev.h->db, c))));
	}
	return counts;
}

static json_t *batch(json_t *events)
{
	XN_AUTOFREE char *tok = token_of(xn_db_generation(ev.h->db));
	return json_pack("{s:o,s:o,s:s}", "events", events, "valid_ref_counts", ref_counts(),
			 "token", tok);
}

static void waiter_done(struct waiter *w, json_t *events)
{
	for (struct waiter **p = &ev.waiters; *p; p = &(*p)->next)
		if (*p == w) {
			*p = w->next;
			break;
		}
	uv_close((uv_handle_t *)w->timer, (uv_close_cb)free);
	json_decref(w->classes);
	xn_call_return(w->call, batch(events));
	free(w);
}

static void on_timeout(uv_timer_t *t)
{
	struct waiter *w = t->data;
	waiter_done(w, collect(w->classes, w->since));
}

/* After commits: answer every waiter that now has something. */
static void on_wake(uv_idle_t *idle)
{
	uv_idle_stop(idle);
	for (struct waiter *w = ev.waiters, *next; w; w = next) {
		next = w->next;
		json_t *events = collect(w->classes, w->since);
		if (json_array_size(events))
			waiter_done(w, events);
		else
			json_decref(events);
	}
}

static void on_commit(void *ud, uint64_t gen, const xn_class *cls, const char *ref,
		      enum xn_db_op op, json_t *record)
{
	(void)ud;
	(void)record;
	if (!reportable(cls))
		return;
	if (op == XN_DB_ADD)
		json_object_set_new(ev.created, ref, json_integer((json_int_t)gen));
	if (op == XN_DB_DEL) {
		json_object_del(ev.created, ref);
		if (ev.ndels == MAX_DELETIONS) {
			struct deletion *old = &ev.dels[ev.first];
			ev.lost_before = old->gen;
			free(old->ref);
			ev.first = (ev.first + 1) % MAX_DELETIONS;
			ev.ndels--;
		}
		struct deletion *d = &ev.dels[(ev.first + ev.ndels++) % MAX_DELETIONS];
		*d = (struct deletion){gen, cls, xn_strdup(ref)};
	}
	if (ev.waiters)
		uv_idle_start(ev.wake, on_wake); /* batch all of this commit */
}

static void event_from(xn_call *c)
{
	json_t *classes = json_array();
	size_t i;
	json_t *v;
	json_array_foreach(xn_call_arg(c, 0), i, v) {
		XN_AUTOFREE char *lower = xn_strdup(json_string_value(v));
		for (char *p = lower; *p && *p != '/'; p++)
			*p = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
		const char *slash = strchr(lower, '/');
		XN_AUTOFREE char *cname = slash ? xn_strndup(lower, (size_t)(slash - lower))
						: xn_strdup(lower);
		if (strcmp(cname, "*") != 0 && !xn_model_class_ci(cname)) {
			json_decref(classes);
			xn_call_fail_code(c, "EVENT_SUBSCRIPTION_PARSE_FAILURE",
					  json_string_value(v), NULL);
			return;
		}
		json_array_append_new(classes, json_string(lower));
	}
	uint64_t since;
	if (parse_token(xn_call_arg_str(c, 1), &since) < 0) {
		json_decref(classes);
		xn_call_fail_code(c, "EVENT_FROM_TOKEN_PARSE_FAILURE", xn_call_arg_str(c, 1), NULL);
		return;
	}
	double timeout = json_number_value(xn_call_arg(c, 2));
	json_t *events = collect(classes, since);
	if (json_array_size(events) || timeout <= 0) {
		json_decref(classes);
		xn_call_return(c, batch(events));
		return;
	}
	json_decref(events);
	struct waiter *w = xn_calloc(1, sizeof(*w));
	w->call = c;
	w->classes = classes;
	w->since = since;
	w->timer = xn_calloc(1, sizeof(uv_timer_t));
	uv_timer_init(c->host->loop, w->timer);
	w->timer->data = w;
	uv_timer_start(w->timer, on_timeout, (uint64_t)(timeout > 3600 ? 3600e3 : timeout * 1e3), 0);
	w->next = ev.waiters;
	ev.waiters = w;
}

/* Touch an object so the next event.from reports it; returns the token
 * just before that change. */
static void event_inject(xn_call *c)
{
	const char *ref = xn_call_arg_str(c, 1);
	const xn_class *cls = xn_model_class_ci(xn_call_arg_str(c, 0));
	if (!cls || xn_db_class_of(c->host->db, ref) != cls) {
		xn_call_fail_code(c, "HANDLE_INVALID", cls ? cls->name : xn_call_arg_str(c, 0), ref,
				  NULL);
		return;
	}
	XN_AUTOFREE char *tok = token_of(xn_db_generation(c->host->db));
	xn_changes *cs = xn_changes_new(c->host->db);
	xn_changes_edit(cs, ref);
	xn_error *err = NULL;
	if (xn_db_commit(c->host->db, cs, &err) < 0)
		xn_call_fail(c, err);
	else
		xn_call_return(c, json_string(tok));
}

static void event_current_id(xn_call *c)
{
	xn_call_return(c, json_integer((json_int_t)xn_db_generation(c->host->db)));
}

/* ---- legacy: event.register / event.next / event.unregister ---------- *
 * Each session has a set of registered classes and the generation it
 * has seen up to; event.next blocks (like event.from with no timeout)
 * until something newer exists. */

static json_t *registrations; /* session -> {"classes": [...], "gen": n} */

static void event_register(xn_call *c, bool add)
{
	json_t *r = json_object_get(registrations, c->session);
	if (!r) {
		r = json_pack("{s:[],s:I}", "classes", "gen",
			      (json_int_t)xn_db_generation(c->host->db));
		json_object_set_new(registrations, c->session, r);
	}
	json_t *classes = json_object_get(r, "classes");
	size_t i;
	json_t *v;
	json_array_foreach(xn_call_arg(c, 0), i, v) {
		XN_AUTOFREE char *lower = xn_strdup(json_string_value(v));
		for (char *p = lower; *p; p++)
			*p = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
		for (size_t k = json_array_size(classes); k-- > 0;)
			if (strcmp(json_string_value(json_array_get(classes, k)), lower) == 0)
				json_array_remove(classes, k);
		if (add)
			json_array_append_new(classes, json_string(lower));
	}
	xn_call_return(c, NULL);
}

static void event_register_add(xn_call *c)
{
	event_register(c, true);
}

static void event_unregister(xn_call *c)
{
	event_register(c, false);
}

/* event.next's records: the event.from ones with an integer id and the
 * object's uuid. */
static void legacy_done(void *ud, json_t *result, const xn_type *type, const xn_error *err)
{
	(void)type;
	xn_call *c = ud;
	if (err) {
		xn_error *copy = NULL;
		xn_failv(&copy, err->code, err->params);
		xn_call_fail(c, copy);
		return;
	}
	json_t *r = json_object_get(registrations, c->session);
	const char *tok = json_string_value(json_object_get(result, "token"));
	uint64_t gen = 0;
	if (r && tok && parse_token(tok, &gen) == 0)
		json_object_set_new(r, "gen", json_integer((json_int_t)gen));
	json_t *events = json_array();
	size_t i;
	json_t *e;
	json_array_foreach(json_object_get(result, "events"), i, e) {
		json_t *x = json_deep_copy(e);
		json_object_set_new(x, "id", json_integer(atoll(json_string_value(
						   json_object_get(e, "id")))));
		json_t *snap = json_object_get(e, "snapshot");
		json_object_set(x, "obj_uuid", snap ? json_object_get(snap, "uuid") : json_string(""));
		json_array_append_new(events, x);
	}
	xn_call_return(c, events);
}

static void event_next(xn_call *c)
{
	json_t *r = json_object_get(registrations, c->session);
	if (!r) {
		xn_call_fail_code(c, "SESSION_NOT_REGISTERED", c->session, NULL);
		return;
	}
	/* Run it as an event.from with a long timeout on a call of our own. */
	XN_AUTOFREE char *tok = token_of((uint64_t)json_integer_value(json_object_get(r, "gen")));
	json_t *params = json_pack("[s,O,s,f]", c->session, json_object_get(r, "classes"), tok,
				   3600.0);
	xn_api_call(c->host->api, "event.from", params, c->local, legacy_done, c);
	json_decref(params);
}

static const xn_api_method event_methods[] = {
	{"event.register", event_register_add},
	{"event.unregister", event_unregister},
	{"event.next", event_next},
	{"event.from", event_from},
	{"event.inject", event_inject},
	{"event.get_current_id", event_current_id},
	{NULL, NULL},
};

void xn_events_init(xn_api *api, xn_host *h)
{
	ev.h = h;
	ev.created = json_object();
	registrations = json_object();
	ev.dels = xn_calloc(MAX_DELETIONS, sizeof(struct deletion));
	ev.wake = xn_calloc(1, sizeof(uv_idle_t));
	uv_idle_init(h->loop, ev.wake);
	xn_db_listen(h->db, on_commit, NULL);
	xn_api_register(api, event_methods);
}
