/* cgroup.c: per-VM CPU control groups on cgroup v1 or v2 (cgroup.h).
 *
 * cgroupfs files take one value per write(2), and a refused value shows
 * as the write's errno (EINVAL, EBUSY), so every write is a plain
 * open/write/close whose error is reported with the file's path. */
#include "host/cgroup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/fs.h"
#include "util/log.h"

struct xn_cgroups {
	int version;
	char *root;   /* the hierarchy's mount point */
	char *base;   /* <root>/<base> */
};

/* ---- mounts ---------------------------------------------------------- */

/* mountinfo escapes space, tab, newline and backslash as \ooo. */
static char *unescape(const char *s, size_t n)
{
	char *out = xn_malloc(n + 1), *o = out;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\\' && i + 3 < n && s[i + 1] >= '0' && s[i + 1] <= '3') {
			*o++ = (char)((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
			i += 3;
		} else {
			*o++ = s[i];
		}
	}
	*o = '\0';
	return out;
}

static bool has_option(const char *opts, size_t n, const char *want)
{
	size_t wl = strlen(want);
	for (size_t i = 0; i < n;) {
		size_t l = strcspn(opts + i, ",");
		if (l > n - i)
			l = n - i;
		if (l == wl && memcmp(opts + i, want, wl) == 0)
			return true;
		i += l + 1;
	}
	return false;
}

/* One mountinfo line: its mount point (field 5), and after the " - "
 * separator the file-system type and the super options. */
static void mount_line(const char *line, size_t len, char **v1, char **v2)
{
	const char *f[5];
	size_t fl[5];
	const char *p = line, *end = line + len;
	for (int i = 0; i < 5; i++) {
		p += strspn(p, " ");
		f[i] = p;
		fl[i] = strcspn(p, " \n");
		p += fl[i];
		if (p > end)
			return;
	}
	const char *sep = memmem(p, (size_t)(end - p), " - ", 3);
	if (!sep)
		return;
	p = sep + 3;
	const char *type = p;
	size_t tl = strcspn(type, " \n");
	const char *src = type + tl + strspn(type + tl, " ");
	const char *opts = src + strcspn(src, " \n");
	opts += strspn(opts, " ");
	size_t ol = strcspn(opts, " \n");
	if (tl == 6 && memcmp(type, "cgroup", 6) == 0 && !*v1 && has_option(opts, ol, "cpu"))
		*v1 = unescape(f[4], fl[4]);
	else if (tl == 7 && memcmp(type, "cgroup2", 7) == 0 && !*v2)
		*v2 = unescape(f[4], fl[4]);
}

void xn_cgroup_mounts(const char *mountinfo, char **v1, char **v2)
{
	*v1 = *v2 = NULL;
	for (const char *line = mountinfo; line && *line;) {
		const char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) : strlen(line);
		mount_line(line, len, v1, v2);
		line = nl ? nl + 1 : NULL;
	}
}

/* ---- mapping --------------------------------------------------------- */

uint64_t xn_cgroup_v1_shares(unsigned weight)
{
	return (uint64_t)weight * 1024 / XN_CGROUP_WEIGHT_DEFAULT;
}

uint64_t xn_cgroup_v2_weight(unsigned weight)
{
	uint64_t w = ((uint64_t)weight * 100 + XN_CGROUP_WEIGHT_DEFAULT / 2) /
		     XN_CGROUP_WEIGHT_DEFAULT;
	return w < 1 ? 1 : w > 10000 ? 10000 : w;
}

int64_t xn_cgroup_quota_us(unsigned cap, uint64_t period_us)
{
	return cap ? (int64_t)((uint64_t)cap * period_us / 100) : -1;
}

/* ---- files ----------------------------------------------------------- */

static int put(const char *dir, const char *file, xn_error **err, const char *fmt, ...)
	XN_PRINTF(4, 5);

static int put(const char *dir, const char *file, xn_error **err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	XN_AUTOFREE char *value = xn_vasprintf(fmt, ap);
	va_end(ap);
	XN_AUTOFREE char *path = xn_asprintf("%s/%s", dir, file);
	XN_AUTOCLOSE int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, value, strlen(value)) < 0)
		return xn_fail_errno(err, errno, "cannot write '%s' to '%s'", value, path);
	return 0;
}

static bool lists_word(const char *dir, const char *file, const char *word)
{
	XN_AUTOFREE char *path = xn_asprintf("%s/%s", dir, file);
	XN_AUTOFREE char *text = xn_read_file(path, NULL, NULL);
	for (char *save, *t = text ? strtok_r(text, " \n", &save) : NULL; t;
	     t = strtok_r(NULL, " \n", &save))
		if (strcmp(t, word) == 0)
			return true;
	return false;
}

static int mkdir_one(const char *dir, xn_error **err)
{
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return xn_fail_errno(err, errno, "cannot make cgroup '%s'", dir);
	return 0;
}

/* v2: children of dir may use the cpu controller. */
static int enable_cpu(const char *dir, xn_error **err)
{
	if (lists_word(dir, "cgroup.subtree_control", "cpu"))
		return 0;
	return put(dir, "cgroup.subtree_control", err, "+cpu");
}

/* ---- groups ---------------------------------------------------------- */

/* The hierarchy to use: a v1 one with cpu, else v2 if cpu is there. */
static xn_cgroups *find_hierarchy(xn_error **err)
{
	XN_AUTOFREE char *mi = xn_read_file("/proc/self/mountinfo", NULL, err);
	if (!mi)
		return NULL;
	char *v1, *v2;
	xn_cgroup_mounts(mi, &v1, &v2);
	xn_cgroups *cg = xn_calloc(1, sizeof(*cg));
	if (v1) {
		cg->version = 1;
		cg->root = v1;
		free(v2);
	} else if (v2 && lists_word(v2, "cgroup.controllers", "cpu")) {
		cg->version = 2;
		cg->root = v2;
	} else {
		free(v2);
		free(cg);
		xn_fail_internal(err, "this host has no cgroup hierarchy with the cpu controller");
		return NULL;
	}
	return cg;
}

xn_cgroups *xn_cgroups_open(const char *base, xn_error **err)
{
	xn_cgroups *cg = find_hierarchy(err);
	if (!cg)
		return NULL;
	cg->base = xn_asprintf("%s/%s", cg->root, base);
	if ((cg->version == 2 && enable_cpu(cg->root, err) < 0) || mkdir_one(cg->base, err) < 0 ||
	    (cg->version == 2 && enable_cpu(cg->base, err) < 0)) {
		xn_cgroups_free(cg);
		return NULL;
	}
	xn_info("cgroup: VM groups under %s (cgroup v%d)", cg->base, cg->version);
	return cg;
}

void xn_cgroups_free(xn_cgroups *cg)
{
	if (!cg)
		return;
	free(cg->root);
	free(cg->base);
	free(cg);
}

int xn_cgroups_version(const xn_cgroups *cg)
{
	return cg->version;
}

char *xn_cgroup_dir(const xn_cgroups *cg, const char *name)
{
	return xn_asprintf("%s/%s", cg->base, name);
}

int xn_cgroup_create(xn_cgroups *cg, const char *name, xn_error **err)
{
	XN_AUTOFREE char *dir = xn_cgroup_dir(cg, name);
	return mkdir_one(dir, err);
}

int xn_cgroup_attach(xn_cgroups *cg, const char *name, pid_t pid, xn_error **err)
{
	XN_AUTOFREE char *dir = xn_cgroup_dir(cg, name);
	return put(dir, "cgroup.procs", err, "%d", (int)pid);
}

int xn_cgroup_set_cpu(xn_cgroups *cg, const char *name, unsigned weight, unsigned cap,
		      xn_error **err)
{
	XN_AUTOFREE char *dir = xn_cgroup_dir(cg, name);
	int64_t quota = xn_cgroup_quota_us(cap, XN_CGROUP_PERIOD_US);
	if (cg->version == 2) {
		if (put(dir, "cpu.weight", err, "%" PRIu64, xn_cgroup_v2_weight(weight)) < 0)
			return -1;
		if (quota < 0)
			return put(dir, "cpu.max", err, "max %d", XN_CGROUP_PERIOD_US);
		return put(dir, "cpu.max", err, "%" PRId64 " %d", quota, XN_CGROUP_PERIOD_US);
	}
	if (put(dir, "cpu.shares", err, "%" PRIu64, xn_cgroup_v1_shares(weight)) < 0 ||
	    put(dir, "cpu.cfs_period_us", err, "%d", XN_CGROUP_PERIOD_US) < 0)
		return -1;
	return put(dir, "cpu.cfs_quota_us", err, "%" PRId64, quota);
}

int xn_cgroup_remove(xn_cgroups *cg, const char *name, xn_error **err)
{
	XN_AUTOFREE char *dir = xn_cgroup_dir(cg, name);
	if (rmdir(dir) < 0 && errno != ENOENT)
		return xn_fail_errno(err, errno, "cannot remove cgroup '%s'", dir);
	return 0;
}

char **xn_cgroup_list(xn_cgroups *cg)
{
	char **names = xn_strv_new();
	DIR *d = opendir(cg->base);
	if (!d)
		return names;
	for (struct dirent *e; (e = readdir(d));)
		if (e->d_type == DT_DIR && e->d_name[0] != '.')
			xn_strv_push(&names, e->d_name);
	closedir(d);
	return names;
}
