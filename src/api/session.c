/* session.c: accounts, logins and sessions (api.h).
 *
 * Accounts are Xenia's own records (class xn_account, never visible
 * through the API): a name, a role and a yescrypt password hash made by
 * libcrypt. Callers on the Unix socket are root without a password, as
 * on xapi's local socket. Sessions are XenAPI session records. */
#include "api/api.h"

#include <crypt.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "util/fs.h"
#include "util/log.h"
#include "util/uuid.h"

static const xn_class *account_class(void)
{
	return xn_model_class("xn_account");
}

static const char *find_account(xn_host *h, const char *name)
{
	const char *k;
	json_t *v;
	json_object_foreach(xn_db_all(h->db, account_class()), k, v)
		if (xn_streq(json_string_value(json_object_get(v, "name")), name))
			return k;
	return NULL;
}

static char *hash_password(const char *pw, xn_error **err)
{
	char *salt = crypt_gensalt_ra("$y$", 0, NULL, 0);
	if (!salt) {
		xn_fail_internal(err, "cannot make a password salt");
		return NULL;
	}
	void *data = NULL;
	int size = 0;
	char *h = crypt_ra(pw, salt, &data, &size);
	char *out = h && h[0] != '*' ? xn_strdup(h) : NULL;
	free(salt);
	free(data);
	if (!out)
		xn_fail_internal(err, "cannot hash a password");
	return out;
}

static bool password_ok(const char *pw, const char *hash)
{
	if (!hash || !*hash)
		return false;
	void *data = NULL;
	int size = 0;
	char *h = crypt_ra(pw, hash, &data, &size);
	bool ok = h && strcmp(h, hash) == 0;
	free(data);
	return ok;
}

/* The highest role among a subject's roles; -1 if none. */
static int subject_role(xn_host *h, const char *subject)
{
	int best = -1;
	size_t i;
	json_t *r;
	json_array_foreach(xn_db_field(h->db, subject, "roles"), i, r) {
		int lvl = xn_role_from_name(xn_db_str(h->db, json_string_value(r), "name_label"));
		if (lvl > best)
			best = lvl;
	}
	return best;
}

static const char *role_ref(xn_host *h, const char *name)
{
	const char *k;
	json_t *v;
	json_object_foreach(xn_db_all(h->db, xn_model_class("role")), k, v)
		if (xn_streq(json_string_value(json_object_get(v, "name_label")), name))
			return k;
	return NULL;
}

/* The roles xapi defines, as role records (clients such as XenCenter
 * read them). */
static int roles_init(xn_host *h, xn_error **err)
{
	static const char *desc[] = {
		"Read-only access to everything",
		"Start, stop and use the consoles of VMs",
		"Create and destroy VMs, and everything a VM operator does",
		"Migrate VMs and change their resources, and everything a VM admin does",
		"Manage hosts, storage and networks of the pool, but not users",
		"Everything, including users and roles",
	};
	xn_changes *cs = xn_changes_new(h->db);
	for (int r = XN_ROLE_READ_ONLY; r < XN_ROLE_NONE; r++)
		if (!role_ref(h, xn_role_name(r)))
			xn_changes_add(cs, xn_model_class("role"), NULL,
				       json_pack("{s:s,s:s}", "name_label", xn_role_name(r),
						 "name_description", desc[r]));
	return xn_db_commit(h->db, cs, err);
}

int xn_accounts_init(xn_host *h, xn_error **err)
{
	if (roles_init(h, err) < 0)
		return -1;
	if (find_account(h, "root"))
		return 0;
	unsigned char raw[12];
	xn_random_bytes(raw, sizeof(raw));
	static const char alphabet[] = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
	char pw[sizeof(raw) + 1];
	for (size_t i = 0; i < sizeof(raw); i++)
		pw[i] = alphabet[raw[i] % (sizeof(alphabet) - 1)];
	pw[sizeof(raw)] = '\0';
	XN_AUTOFREE char *hash = hash_password(pw, err);
	if (!hash)
		return -1;
	XN_AUTOFREE char *path = xn_asprintf("%s/root-password", h->data_dir);
	XN_AUTOFREE char *line = xn_asprintf("%s\n", pw);
	if (xn_write_file_atomic(path, line, strlen(line), 0600, err) < 0)
		return -1;
	xn_changes *cs = xn_changes_new(h->db);
	xn_changes_add(cs, account_class(), NULL,
		       json_pack("{s:s,s:s,s:s}", "name", "root", "password_hash", hash, "role",
				 "pool-admin"));
	if (xn_db_commit(h->db, cs, err) < 0)
		return -1;
	xn_info("created user 'root' (pool-admin); its password is in %s: %s", path, pw);
	return 0;
}

/* Idle sessions expire: last use is kept in memory (writing it to the
 * database on every call would cost a commit per call); a sweep every
 * minute destroys sessions idle for longer than the timeout. A daemon
 * restart counts as use. */
static json_t *last_used;      /* session ref -> monotonic ms */
static uv_timer_t sweep_timer;

static void sweep(uv_timer_t *t)
{
	xn_host *h = t->data;
	uint64_t now = xn_now_ms();
	xn_changes *cs = xn_changes_new(h->db);
	const char *k;
	json_t *v;
	json_object_foreach(xn_db_all(h->db, xn_model_class("session")), k, v) {
		json_t *used = json_object_get(last_used, k);
		if (!used) {
			json_object_set_new(last_used, k, json_integer((json_int_t)now));
			continue;
		}
		if (now - (uint64_t)json_integer_value(used) > h->session_timeout_ms)
			xn_changes_delete(cs, k);
	}

	XN_AUTOERR xn_error *err = NULL;
	if (!xn_changes_empty(cs))
		xn_info("sessions: expiring idle sessions");
	if (xn_db_commit(h->db, cs, &err) < 0)
		xn_warn("sessions: cannot expire: %s", err->message);
	/* forget the sessions that are gone (expired just now, or removed
	 * with their user) */
	void *tmp;
	json_object_foreach_safe(last_used, tmp, k, v)
		if (!xn_db_get(h->db, k))
			json_object_del(last_used, k);
}

void xn_sessions_init(xn_host *h)
{
	last_used = json_object();
	if (!h->session_timeout_ms)
		h->session_timeout_ms = 24u * 3600 * 1000;
	uv_timer_init(h->loop, &sweep_timer);
	sweep_timer.data = h;
	uint64_t every = h->session_timeout_ms < 60000 ? h->session_timeout_ms / 2 + 1 : 60000;
	uv_timer_start(&sweep_timer, sweep, every, every);
	uv_unref((uv_handle_t *)&sweep_timer);
}

int xn_session_check(xn_host *h, const char *ref, int *role, xn_error **err)
{
	const xn_class *sc = xn_model_class("session");
	if (!ref || xn_db_class_of(h->db, ref) != sc)
		return xn_fail(err, "SESSION_INVALID", ref ? ref : "", NULL);
	if (last_used)
		json_object_set_new(last_used, ref, json_integer((json_int_t)xn_now_ms()));
	const char *user = xn_db_str(h->db, ref, "auth_user_name");
	const char *acct = find_account(h, user);
	int r = acct ? subject_role(h, xn_db_str(h->db, acct, "subject")) : -1;
	if (xn_db_bool(h->db, ref, "is_local_superuser"))
		r = XN_ROLE_POOL_ADMIN;
	if (r < 0)
		return xn_fail(err, "SESSION_INVALID", ref, NULL);
	*role = r;
	return 0;
}

/* "Basic <base64 of user:password>": the user's name and password
 * (caller frees *user, *pw); -1 if malformed. */
static int basic_credentials(const char *header, char **user, char **pw)
{
	if (!header || strncasecmp(header, "Basic ", 6) != 0)
		return -1;
	const char *b64 = header + 6;
	size_t n = strlen(b64);
	if (n == 0 || n % 4 || n > 4096)
		return -1;
	XN_AUTOFREE unsigned char *raw = xn_malloc(n / 4 * 3 + 1);
	int len = EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)n);
	if (len < 0)
		return -1;
	len -= (b64[n - 1] == '=') + (b64[n - 2] == '=');
	raw[len] = '\0';
	char *colon = strchr((char *)raw, ':');
	if (!colon || memchr(raw, 0, (size_t)len))
		return -1;
	*user = xn_strndup((char *)raw, (size_t)(colon - (char *)raw));
	*pw = xn_strdup(colon + 1);
	return 0;
}

int xn_api_http_role(xn_host *h, xn_http_req *req, xn_error **err)
{
	const char *session = xn_http_req_query(req, "session_id");
	const char *auth = xn_http_req_header(req, "Authorization");
	int role;
	if (session)
		return xn_session_check(h, session, &role, err) < 0 ? -1 : role;
	if (!auth)
		return xn_http_req_is_local(req) ? XN_ROLE_POOL_ADMIN
						 : xn_fail(err, "SESSION_INVALID", "", NULL);
	XN_AUTOFREE char *user = NULL, *pw = NULL;
	if (basic_credentials(auth, &user, &pw) < 0)
		return xn_fail(err, "SESSION_AUTHENTICATION_FAILED", "", "Authentication failure",
			       NULL);
	const char *acct = find_account(h, user);
	if (!acct || !password_ok(pw, xn_db_str(h->db, acct, "password_hash")))
		return xn_fail(err, "SESSION_AUTHENTICATION_FAILED", user, "Authentication failure",
			       NULL);
	role = strcmp(user, "root") == 0 ? XN_ROLE_POOL_ADMIN
					 : subject_role(h, xn_db_str(h->db, acct, "subject"));
	return role >= 0 ? role : xn_fail(err, "SESSION_AUTHENTICATION_FAILED", user,
					  "Authentication failure", NULL);
}

static void login(xn_call *c)
{
	xn_host *h = c->host;
	const char *uname = xn_call_arg_str(c, 0);
	const char *pwd = xn_call_arg_str(c, 1);
	bool local_root = c->local && (!*uname || strcmp(uname, "root") == 0);
	const char *acct = find_account(h, uname);
	if (!local_root && (!acct || !password_ok(pwd, xn_db_str(h->db, acct, "password_hash")))) {
		xn_call_fail_code(c, "SESSION_AUTHENTICATION_FAILED", uname,
				  "Authentication failure", NULL);
		return;
	}
	json_t *now = xn_datetime_now();
	json_t *rec = json_pack("{s:s,s:O,s:O,s:b,s:s,s:s}", "this_host", h->host_ref,
				"last_active", now, "validation_time", now, "is_local_superuser",
				local_root || strcmp(uname, "root") == 0, "auth_user_name",
				local_root ? "root" : uname, "originator",
				json_array_size(c->args) > 3 ? xn_call_arg_str(c, 3) : "");
	json_decref(now);
	const char *subject = acct && !local_root ? xn_db_str(h->db, acct, "subject") : "";
	if (!xn_ref_is_null(subject)) {
		json_object_set_new(rec, "subject", json_string(subject));
		json_object_set_new(rec, "auth_user_sid",
				    json_string(xn_db_str(h->db, subject, "subject_identifier")));
	}
	xn_changes *cs = xn_changes_new(h->db);
	XN_AUTOFREE char *ref = xn_strdup(xn_changes_add(cs, xn_model_class("session"), NULL, rec));
	xn_error *err = NULL;
	if (xn_db_commit(h->db, cs, &err) < 0) {
		xn_call_fail(c, err);
		return;
	}
	xn_call_return(c, json_string(ref));
}

/* ---- local users (Xenia's subject.xenia_* messages) ------------------ */

static bool valid_user_name(const char *n)
{
	size_t len = strlen(n);
	if (len == 0 || len > 64)
		return false;
	for (const char *p = n; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' || *p == '-'))
			return false;
	return true;
}

static void add_user(xn_call *c)
{
	xn_host *h = c->host;
	const char *name = xn_call_arg_str(c, 0);
	const char *pw = xn_call_arg_str(c, 1);
	const char *role = xn_call_arg_str(c, 2);
	if (!valid_user_name(name)) {
		xn_call_fail_code(c, "INVALID_VALUE", "user_name", name, NULL);
		return;
	}
	if (find_account(h, name)) {
		xn_call_fail_code(c, "SUBJECT_ALREADY_EXISTS", name, NULL);
		return;
	}
	const char *rref = role_ref(h, role);
	if (!rref) {
		xn_call_fail_code(c, "INVALID_VALUE", "role", role, NULL);
		return;
	}
	if (!*pw) {
		xn_call_fail_code(c, "INVALID_VALUE", "password", "(empty)", NULL);
		return;
	}
	xn_error *err = NULL;
	XN_AUTOFREE char *hash = hash_password(pw, &err);
	if (!hash) {
		xn_call_fail(c, err);
		return;
	}
	XN_AUTOFREE char *sid = xn_asprintf("xenia-local:%s", name);
	xn_changes *cs = xn_changes_new(h->db);
	XN_AUTOFREE char *subject = xn_strdup(xn_changes_add(
		cs, xn_model_class("subject"), NULL,
		json_pack("{s:s,s:{s:s,s:s,s:s},s:[s]}", "subject_identifier", sid, "other_config",
			  "subject-name", name, "subject-displayname", name, "subject-is-group",
			  "false", "roles", rref)));
	xn_changes_add(cs, account_class(), NULL,
		       json_pack("{s:s,s:s,s:s,s:s}", "name", name, "password_hash", hash, "role",
				 role, "subject", subject));
	if (xn_db_commit(h->db, cs, &err) < 0)
		xn_call_fail(c, err);
	else
		xn_call_return(c, json_string(subject));
}

static const char *account_of_subject(xn_host *h, const char *subject)
{
	const char *k;
	json_t *v;
	json_object_foreach(xn_db_all(h->db, account_class()), k, v)
		if (xn_streq(json_string_value(json_object_get(v, "subject")), subject))
			return k;
	return NULL;
}

static void set_password(xn_call *c, const char *acct, const char *pw)
{
	xn_error *err = NULL;
	XN_AUTOFREE char *hash = *pw ? hash_password(pw, &err) : NULL;
	if (!*pw) {
		xn_call_fail_code(c, "INVALID_VALUE", "password", "(empty)", NULL);
		return;
	}
	if (!hash || xn_db_set(c->host->db, acct, "password_hash", json_string(hash), &err) < 0)
		xn_call_fail(c, err);
	else
		xn_call_return(c, NULL);
}

static void subject_set_password(xn_call *c)
{
	const char *acct = account_of_subject(c->host, xn_call_arg_str(c, 0));
	if (!acct) {
		xn_call_fail_code(c, "HANDLE_INVALID", "subject", xn_call_arg_str(c, 0), NULL);
		return;
	}
	set_password(c, acct, xn_call_arg_str(c, 1));
}

/* session.change_password: the caller's own password, given the old one. */
static void change_password(xn_call *c)
{
	xn_host *h = c->host;
	const char *user = xn_db_str(h->db, c->session, "auth_user_name");
	const char *acct = find_account(h, user);
	if (!acct || !password_ok(xn_call_arg_str(c, 0), xn_db_str(h->db, acct, "password_hash"))) {
		xn_call_fail_code(c, "SESSION_AUTHENTICATION_FAILED", user,
				  "the old password is wrong", NULL);
		return;
	}
	set_password(c, acct, xn_call_arg_str(c, 1));
}

/* Destroying a local user's subject removes the account and its sessions. */
static void subject_destroy(xn_call *c)
{
	xn_host *h = c->host;
	const char *subject = xn_call_arg_str(c, 0);
	const char *acct = account_of_subject(h, subject);
	xn_changes *cs = xn_changes_new(h->db);
	if (acct) {
		const char *name = xn_db_str(h->db, acct, "name");
		const char *k;
		json_t *v;
		json_object_foreach(xn_db_all(h->db, xn_model_class("session")), k, v)
			if (xn_streq(json_string_value(json_object_get(v, "auth_user_name")), name))
				xn_changes_delete(cs, k);
		xn_changes_delete(cs, acct);
	}
	xn_changes_delete(cs, subject);
	xn_error *err = NULL;
	if (xn_db_commit(h->db, cs, &err) < 0)
		xn_call_fail(c, err);
	else
		xn_call_return(c, NULL);
}

/* session.get_rbac_permissions(self): what the session's role allows,
 * as xapi names permissions ("vm.start", lower-case class): every
 * message whose lowest role the session's role reaches. Computed when
 * asked, not stored in every session. */
static void rbac_permissions(xn_call *c)
{
	const char *self = xn_call_arg_str(c, 0);
	int role;
	xn_error *err = NULL;
	if (xn_session_check(c->host, self, &role, &err) < 0) {
		xn_error_free(err);
		xn_call_fail_code(c, "HANDLE_INVALID", "session", self, NULL);
		return;
	}
	json_t *perms = json_array();
	for (size_t i = 0; i < xn_model_nclasses(); i++) {
		const xn_class *cls = xn_model_class_at(i);
		if (cls->flags & (XN_CLS_INTERNAL | XN_CLS_RECORD_ONLY))
			continue;
		for (size_t j = 0; j < cls->nmessages; j++)
			if (cls->messages[j].role <= role)
				json_array_append_new(perms, json_sprintf("%s.%s", cls->lower,
									  cls->messages[j].name));
	}
	c->result_type = xn_type_parse("string set");
	xn_call_return(c, perms);
}

static void logout(xn_call *c)
{
	if (last_used)
		json_object_del(last_used, c->session);
	xn_changes *cs = xn_changes_new(c->host->db);
	xn_changes_delete(cs, c->session);
	xn_error *err = NULL;
	if (xn_db_commit(c->host->db, cs, &err) < 0)
		xn_call_fail(c, err);
	else
		xn_call_return(c, NULL);
}

const xn_api_method xn_session_methods[] = {
	{"session.login_with_password", login},
	{"session.logout", logout},
	{"session.local_logout", logout},
	{"session.change_password", change_password},
	{"session.get_rbac_permissions", rbac_permissions},
	{"subject.xenia_add_user", add_user},
	{"subject.xenia_set_password", subject_set_password},
	{"subject.destroy", subject_destroy},
	{NULL, NULL},
};
