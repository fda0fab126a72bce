/* sr_nfs.c: the "nfs" SR driver and the NFS half of the "iso" driver
 * (storage.h), both reached from userspace: libnfs in the daemon for
 * the driver's own calls, QEMU's nfs block driver (also libnfs) for the
 * disks. The host needs no kernel NFS client and mounts nothing.
 *
 * An "nfs" SR has xapi's device_config server=<host> and
 * serverpath=</exported/path>; its files live in <serverpath>/<sr-uuid>/
 * as in xapi's NFS SR, made at attach. QEMU's driver speaks NFSv3 only
 * (rpcbind and MOUNT), so nfsversion may only be "3". An ISO library on
 * NFS has device_config location=<host>:/<path>; its files are the
 * export's own, listed and read, never written or removed.
 *
 * Every blocking call makes its own libnfs context, mounts, works and
 * tears it down: nothing is shared between threads of the pool, and a
 * server that went away and came back needs no reconnection logic. RPCs
 * time out after NFS_TIMEOUT_MS and a TCP connect gives up after
 * NFS_SYN_COUNT retries (about 7 s), so no call hangs on a dead server.
 *
 * QEMU does no locking over nfs://, so lock/unlock keep a toolstack lock
 * per image: <file>.lock, created exclusively (NFSv3 exclusive CREATE,
 * atomic on the server, so it holds across hosts) with its owner inside.
 * list never reports .lock files nor dot-files. */
#include "storage/storage.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nfsc/libnfs.h>
#include <nfsc/libnfs-raw-nfs.h>

#include "util/log.h"
#include "util/uuid.h"

#define NFS_TIMEOUT_MS 10000
#define NFS_SYN_COUNT 2
#define LOCK_SUFFIX ".lock"
#define LOCK_MAX 4096

/* Where an SR's files are: the files of the SR are under sub in the
 * export, as seen from the mount ("/<sr-uuid>", or "" for an ISO
 * library whose files are the export's own). */
typedef struct nfs_where {
	char *server;  /* host name or address, without IPv6 brackets */
	char *export;  /* exported path, absolute, no trailing '/' but "/" */
	char *sub;
	bool iso;
} nfs_where;

static void where_clear(nfs_where *w)
{
	free(w->server);
	free(w->export);
	free(w->sub);
	memset(w, 0, sizeof(*w));
}
#define AUTOWHERE __attribute__((cleanup(where_clear)))

static const char *dc_str(const xn_sr_conf *c, const char *key)
{
	const char *s = json_string_value(json_object_get(c->device_config, key));
	return s && s[0] ? s : NULL;
}

/* xapi's SM errors: SR_BACKEND_FAILURE_<code> ["", description, details]. */
static int sm_fail(xn_error **err, int code, const char *desc, const char *details)
{
	char name[32];
	snprintf(name, sizeof(name), "SR_BACKEND_FAILURE_%d", code);
	return xn_fail(err, name, "", desc, details ? details : "", NULL);
}

/* An absolute path without "." or ".." components and no characters a
 * path on the wire or in a URL cannot carry. */
static bool path_ok(const char *p)
{
	if (p[0] != '/' || strpbrk(p, "\n\r\t?#%\\"))
		return false;
	for (const char *s = p; (s = strchr(s, '/'));) {
		s++;
		size_t n = strcspn(s, "/");
		if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
			return false;
	}
	return true;
}

static char *path_normalize(const char *p)
{
	size_t n = strlen(p);
	while (n > 1 && p[n - 1] == '/')
		n--;
	return xn_strndup(p, n);
}

static bool host_ok(const char *h)
{
	return h[0] && strspn(h, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
				 "0123456789.-:_") == strlen(h);
}

/* Type nfs: server= serverpath= [nfsversion=3]. */
static int where_nfs(const xn_sr_conf *c, nfs_where *w, xn_error **err)
{
	const char *server = dc_str(c, "server"), *path = dc_str(c, "serverpath");
	const char *vers = dc_str(c, "nfsversion");
	if (!server)
		return sm_fail(err, 102, "The request is missing the server parameter", NULL);
	if (!host_ok(server))
		return sm_fail(err, 140, "Incorrect DNS name, unable to resolve.", server);
	if (!path)
		return sm_fail(err, 101, "The request is missing the serverpath parameter", NULL);
	if (!path_ok(path))
		return sm_fail(err, 103, "The serverpath argument is not valid", path);
	if (vers && strcmp(vers, "3") != 0)
		return sm_fail(err, 72, "Required NFS server version unsupported",
			       "nfsversion must be 3: QEMU's nfs driver speaks NFSv3 only");
	w->server = xn_strdup(server);
	w->export = path_normalize(path);
	w->sub = xn_asprintf("/%s", c->uuid);
	return 0;
}

/* Type iso: location=<server>:/<path>, the server possibly "[v6addr]",
 * and xapi's optional iso_path, a directory under the export. */
static int where_iso(const xn_sr_conf *c, nfs_where *w, xn_error **err)
{
	const char *loc = dc_str(c, "location"), *iso_path = dc_str(c, "iso_path");
	if (!loc)
		return sm_fail(err, 94, "The request is missing the location parameter", NULL);
	const char *colon = strstr(loc, ":/");
	if (loc[0] == '[') {
		const char *close = strchr(loc, ']');
		colon = close && close[1] == ':' ? close + 1 : NULL;
	}
	XN_AUTOFREE char *server = colon ? xn_strndup(loc, colon - loc) : NULL;
	if (server && server[0] == '[') {
		memmove(server, server + 1, strlen(server));
		server[strlen(server) - 1] = '\0';
	}
	if (!server || !host_ok(server) || !path_ok(colon + 1))
		return sm_fail(err, 225,
			       "Incorrect Location string format. String must be in the format "
			       "SERVER:PATH for NFS targets",
			       loc);
	XN_AUTOFREE char *sub = xn_asprintf("/%s", iso_path ? iso_path + (iso_path[0] == '/') : "");
	if (!path_ok(sub))
		return sm_fail(err, 226, "Invalid local path", iso_path);
	w->server = xn_steal(&server);
	w->export = path_normalize(colon + 1);
	w->sub = strcmp(sub, "/") ? path_normalize(sub) : xn_strdup("");
	w->iso = true;
	return 0;
}

static int where_get(const xn_sr_conf *c, nfs_where *w, xn_error **err)
{
	return strcmp(c->type, "iso") == 0 ? where_iso(c, w, err) : where_nfs(c, w, err);
}

/* The path of file on the server: <export><sub>/<file>. */
static char *server_path(const nfs_where *w, const char *file)
{
	return xn_asprintf("%s%s/%s", strcmp(w->export, "/") ? w->export : "", w->sub, file);
}

/* ---- one mounted context per call ------------------------------------ */

typedef struct nfs_conn {
	struct nfs_context *nfs;
	nfs_where w;
} nfs_conn;

static void conn_close(nfs_conn *k)
{
	if (k->nfs)
		nfs_destroy_context(k->nfs);
	where_clear(&k->w);
}
#define AUTOCONN __attribute__((cleanup(conn_close)))

/* Connect to one address within the timeout: 0 or an errno. */
static int tcp_try(const struct addrinfo *a)
{
	XN_AUTOCLOSE int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
				     a->ai_protocol);
	if (fd < 0)
		return errno;
	if (connect(fd, a->ai_addr, a->ai_addrlen) == 0)
		return 0;
	if (errno != EINPROGRESS)
		return errno;
	struct pollfd p = {.fd = fd, .events = POLLOUT};
	int n = poll(&p, 1, NFS_TIMEOUT_MS);
	if (n <= 0)
		return n == 0 ? ETIMEDOUT : errno;
	int e = 0;
	socklen_t len = sizeof(e);
	getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len);
	return e;
}

/* Like xapi before it mounts: the server's name resolves and its
 * portmapper (rpcbind, which NFSv3 and QEMU need) takes connections, so
 * that a server that is down says so, within the timeout. */
static int probe_server(const nfs_where *w, xn_error **err)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
	int rc = getaddrinfo(w->server, "111", &hints, &res);
	if (rc != 0) {
		XN_AUTOFREE char *why = xn_asprintf("'%s': %s", w->server, gai_strerror(rc));
		return sm_fail(err, 140, "Incorrect DNS name, unable to resolve.", why);
	}
	int e = ENOENT;
	for (struct addrinfo *a = res; a && e; a = a->ai_next)
		e = tcp_try(a);
	freeaddrinfo(res);
	if (e) {
		XN_AUTOFREE char *why = xn_asprintf("cannot connect to '%s' port 111 (rpcbind): %s",
						    w->server, strerror(e));
		return sm_fail(err, 108, "Unable to detect an NFS service on this target.", why);
	}
	return 0;
}

/* Mount the export of c (k cleared by the caller with conn_close). */
static int conn_open(const xn_sr_conf *c, nfs_conn *k, xn_error **err)
{
	if (where_get(c, &k->w, err) < 0 || probe_server(&k->w, err) < 0)
		return -1;
	k->nfs = nfs_init_context();
	if (!k->nfs)
		return xn_fail_internal(err, "cannot create an NFS context");
	nfs_set_timeout(k->nfs, NFS_TIMEOUT_MS);
	nfs_set_tcp_syncnt(k->nfs, NFS_SYN_COUNT);
	if (nfs_mount(k->nfs, k->w.server, k->w.export) < 0) {
		XN_AUTOFREE char *why = xn_asprintf("cannot mount '%s:%s': %s", k->w.server,
						    k->w.export, nfs_get_error(k->nfs));
		return k->w.iso ? sm_fail(err, 222,
					  "Could not mount the directory specified in "
					  "Device Configuration",
					  why)
				: sm_fail(err, 73, "NFS mount error", why);
	}
	return 0;
}

/* file's path under the mount. Caller frees. */
static char *conn_path(const nfs_conn *k, const char *file)
{
	return xn_asprintf("%s/%s", k->w.sub, file);
}

static int conn_fail(nfs_conn *k, int rc, const char *what, const char *file, xn_error **err)
{
	XN_AUTOFREE char *path = server_path(&k->w, file);
	XN_AUTOFREE char *why = xn_asprintf("cannot %s '%s:%s': %s (%s)", what, k->w.server, path,
					    strerror(-rc), nfs_get_error(k->nfs));
	return xn_fail(err, "SR_BACKEND_FAILURE", what, path, why, NULL);
}

/* ---- the driver ------------------------------------------------------- */

/* Create and remove a probe file: the SR's directory takes writes. */
static int probe_write(nfs_conn *k, xn_error **err)
{
	XN_AUTOFREE char *uuid = xn_uuid_new();
	XN_AUTOFREE char *name = xn_asprintf(".probe-%s", uuid);
	XN_AUTOFREE char *path = conn_path(k, name);
	struct nfsfh *fh = NULL;
	int rc = nfs_create(k->nfs, path, O_WRONLY | O_CREAT | O_EXCL, 0600, &fh);
	if (rc < 0) {
		XN_AUTOFREE char *where = server_path(&k->w, "");
		XN_AUTOFREE char *why = xn_asprintf("cannot write in '%s:%s': %s", k->w.server,
						    where, nfs_get_error(k->nfs));
		return sm_fail(err, 88, "NFS SR creation error", why);
	}
	nfs_close(k->nfs, fh);
	nfs_unlink(k->nfs, path);
	return 0;
}

static int nfs_attach(const xn_sr_conf *c, xn_error **err)
{
	AUTOCONN nfs_conn k = {0};
	if (conn_open(c, &k, err) < 0)
		return -1;
	struct nfs_stat_64 st;
	int rc = nfs_stat64(k.nfs, k.w.sub, &st);
	if (rc == -ENOENT) {
		rc = nfs_mkdir2(k.nfs, k.w.sub, 0755);
		if (rc == -EEXIST)  /* another host made it meanwhile */
			rc = 0;
		if (rc < 0) {
			XN_AUTOFREE char *where = server_path(&k.w, "");
			XN_AUTOFREE char *why = xn_asprintf("cannot create '%s:%s': %s",
							    k.w.server, where,
							    nfs_get_error(k.nfs));
			return sm_fail(err, 88, "NFS SR creation error", why);
		}
	} else if (rc < 0) {
		return conn_fail(&k, rc, "stat", "", err);
	} else if ((st.nfs_mode & S_IFMT) != S_IFDIR) {
		XN_AUTOFREE char *where = server_path(&k.w, "");
		XN_AUTOFREE char *why = xn_asprintf("'%s:%s' is not a directory", k.w.server, where);
		return sm_fail(err, 88, "NFS SR creation error", why);
	}
	return probe_write(&k, err);
}

static int iso_attach(const xn_sr_conf *c, xn_error **err)
{
	AUTOCONN nfs_conn k = {0};
	if (conn_open(c, &k, err) < 0)
		return -1;
	struct nfsdir *d = NULL;
	if (nfs_opendir(k.nfs, k.w.sub[0] ? k.w.sub : "/", &d) < 0) {
		XN_AUTOFREE char *where = server_path(&k.w, "");
		XN_AUTOFREE char *why = xn_asprintf("cannot list '%s:%s': %s", k.w.server, where,
						    nfs_get_error(k.nfs));
		return sm_fail(err, 224,
			       "Could not locate the ISO sharename on the target, or the "
			       "access permissions may be incorrect.",
			       why);
	}
	nfs_closedir(k.nfs, d);
	return 0;
}

static json_t *nfs_node(const xn_sr_conf *c, const char *file)
{
	AUTOWHERE nfs_where w = {0};
	if (where_get(c, &w, NULL) < 0)
		return NULL;
	XN_AUTOFREE char *path = server_path(&w, file);
	return json_pack("{s:s,s:{s:s,s:s},s:s}", "driver", "nfs", "server", "type", "inet", "host",
			 w.server, "path", path);
}

/* nfs://<server><path>: no trailing dot after the host (libnfs resolves
 * the host with getaddrinfo, which refuses "127.0.0.1."), IPv6 addresses
 * in brackets. path_ok keeps out what a URL would need to escape. */
static char *nfs_url(const xn_sr_conf *c, const char *file)
{
	AUTOWHERE nfs_where w = {0};
	if (where_get(c, &w, NULL) < 0)
		return NULL;
	XN_AUTOFREE char *path = server_path(&w, file);
	bool v6 = strchr(w.server, ':') != NULL;
	return xn_asprintf("nfs://%s%s%s%s", v6 ? "[" : "", w.server, v6 ? "]" : "", path);
}

static bool has_suffix(const char *s, const char *suffix, bool nocase)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n > m && (nocase ? strcasecmp(s + n - m, suffix) : strcmp(s + n - m, suffix)) == 0;
}

static int nfs_list(const xn_sr_conf *c, json_t **files, xn_error **err)
{
	AUTOCONN nfs_conn k = {0};
	if (conn_open(c, &k, err) < 0)
		return -1;
	struct nfsdir *d = NULL;
	const char *dir = k.w.sub[0] ? k.w.sub : "/";
	int rc = nfs_opendir(k.nfs, dir, &d);
	if (rc < 0)
		return conn_fail(&k, rc, "list", "", err);
	*files = json_object();
	for (struct nfsdirent *e; (e = nfs_readdir(k.nfs, d));) {
		if (e->name[0] == '.' || e->type != NF3REG || has_suffix(e->name, LOCK_SUFFIX, false))
			continue;
		/* an ISO library lists only images, as xapi's does */
		if (k.w.iso && !has_suffix(e->name, ".iso", true) && !has_suffix(e->name, ".img", true))
			continue;
		json_object_set_new(*files, e->name, json_pack("{s:I}", "size", (json_int_t)e->used));
	}
	nfs_closedir(k.nfs, d);
	return 0;
}

static int nfs_remove(const xn_sr_conf *c, const char *file, xn_error **err)
{
	AUTOCONN nfs_conn k = {0};
	if (conn_open(c, &k, err) < 0)
		return -1;
	XN_AUTOFREE char *path = conn_path(&k, file);
	int rc = nfs_unlink(k.nfs, path);
	if (rc < 0 && rc != -ENOENT)
		return conn_fail(&k, rc, "remove", file, err);
	return 0;
}

static int nfs_space(const xn_sr_conf *c, int64_t *total, int64_t *free_bytes, xn_error **err)
{
	AUTOCONN nfs_conn k = {0};
	if (conn_open(c, &k, err) < 0)
		return -1;
	struct nfs_statvfs_64 st;
	int rc = nfs_statvfs64(k.nfs, "/", &st);
	if (rc < 0)
		return conn_fail(&k, rc, "statvfs", "", err);
	*total = (int64_t)(st.f_blocks * st.f_frsize);
	*free_bytes = (int64_t)(st.f_bavail * st.f_frsize);
	return 0;
}

/* The owner recorded in an existing lock file (caller frees), NULL with
 * *rc set when it cannot be read (-ENOENT: it is gone). */
static char *lock_read(nfs_conn *k, const char *path, int *rc)
{
	struct nfsfh *fh = NULL;
	*rc = nfs_open(k->nfs, path, O_RDONLY, &fh);
	if (*rc < 0)
		return NULL;
	char buf[LOCK_MAX + 1];
	int n = nfs_read(k->nfs, fh, LOCK_MAX, buf);
	nfs_close(k->nfs, fh);
	if (n < 0) {
		*rc = n;
		return NULL;
	}
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\0'))
		n--;
	return xn_strndup(buf, (size_t)n);
}

/* Create path exclusively with owner in it: 0, -EEXIST, or -errno. */
static int lock_create(nfs_conn *k, const char *path, const char *owner)
{
	struct nfsfh *fh = NULL;
	int rc = nfs_create(k->nfs, path, O_WRONLY | O_CREAT | O_EXCL, 0644, &fh);
	if (rc < 0)
		return rc;
	XN_AUTOFREE char *text = xn_asprintf("%s\n", owner);
	int n = nfs_write(k->nfs, fh, strlen(text), text);
	int rc2 = nfs_close(k->nfs, fh);
	if (n != (int)strlen(text) || rc2 < 0) {
		nfs_unlink(k->nfs, path);
		return n < 0 ? n : rc2 < 0 ? rc2 : -EIO;
	}
	return 0;
}

static int nfs_lock(const xn_sr_conf *c, const char *file, const char *owner, xn_error **err)
{
	AUTOCONN nfs_conn k = {0};
	if (conn_open(c, &k, err) < 0)
		return -1;
	XN_AUTOFREE char *lock = xn_asprintf("%s" LOCK_SUFFIX, file);
	XN_AUTOFREE char *path = conn_path(&k, lock);
	/* A lock that vanishes between create and read (its holder let go)
	 * is tried again, a few times. */
	for (int tries = 0; tries < 3; tries++) {
		int rc = lock_create(&k, path, owner);
		if (rc == 0)
			return 0;
		if (rc != -EEXIST)
			return conn_fail(&k, rc, "lock", lock, err);
		XN_AUTOFREE char *holder = lock_read(&k, path, &rc);
		if (!holder && rc == -ENOENT)
			continue;
		if (!holder)
			return conn_fail(&k, rc, "read lock", lock, err);
		if (strcmp(holder, owner) == 0)  /* ours already: a daemon restart */
			return 0;
		XN_AUTOFREE char *where = server_path(&k.w, lock);
		xn_error *e = NULL;
		xn_fail(&e, "VDI_IN_USE", file, holder, NULL);
		xn_error_prefix(e, "'%s:%s' is held by '%s'", k.w.server, where, holder);
		return xn_error_propagate(err, &e);
	}
	return conn_fail(&k, -EAGAIN, "lock", lock, err);
}

static int nfs_unlock(const xn_sr_conf *c, const char *file, const char *owner, xn_error **err)
{
	AUTOCONN nfs_conn k = {0};
	if (conn_open(c, &k, err) < 0)
		return -1;
	XN_AUTOFREE char *lock = xn_asprintf("%s" LOCK_SUFFIX, file);
	XN_AUTOFREE char *path = conn_path(&k, lock);
	int rc = 0;
	XN_AUTOFREE char *holder = lock_read(&k, path, &rc);
	if (!holder)
		return rc == -ENOENT ? 0 : conn_fail(&k, rc, "read lock", lock, err);
	if (strcmp(holder, owner) != 0) {
		xn_warn("nfs: lock %s is held by '%s', not by '%s': left alone", lock, holder, owner);
		return 0;
	}
	rc = nfs_unlink(k.nfs, path);
	if (rc < 0 && rc != -ENOENT)
		return conn_fail(&k, rc, "unlock", lock, err);
	return 0;
}

const xn_sr_ops xn_sr_nfs_ops = {
	.type = "nfs",
	.content_type = "user",
	.shared = true,
	.attach = nfs_attach,
	.node = nfs_node,
	.url = nfs_url,
	.list = nfs_list,
	.remove = nfs_remove,
	.space = nfs_space,
	.lock = nfs_lock,
	.unlock = nfs_unlock,
};

/* ISO images are the administrator's: removing an ISO VDI forgets it. */
static int iso_remove(const xn_sr_conf *c, const char *file, xn_error **err)
{
	return 0;
}

const xn_sr_ops xn_sr_iso_nfs_ops = {
	.type = "iso",
	.content_type = "iso",
	.shared = true,
	.read_only = true,
	.attach = iso_attach,
	.node = nfs_node,
	.url = nfs_url,
	.list = nfs_list,
	.remove = iso_remove,
	.space = nfs_space,
};
