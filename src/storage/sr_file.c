/* sr_file.c: the "file" SR driver, a local directory of images (the
 * PBD's device_config "path"), and the local-directory half of the
 * "iso" driver, which shares everything but its content (storage.h).
 * QEMU locks local image files itself (OFD locks), so no toolstack
 * lock is needed here. */
#include "storage/storage.h"

#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "util/fs.h"

static int dir_attach(const xn_sr_conf *c, xn_error **err)
{
	if (!c->dir || c->dir[0] != '/')
		return xn_fail(err, "SR_BACKEND_FAILURE_111", "",
			       "device-config:path must be an absolute directory", "", NULL);
	return xn_mkdir_p(c->dir, 0700, err);
}

static int dir_attach_existing(const xn_sr_conf *c, xn_error **err)
{
	struct stat st;
	if (!c->dir || c->dir[0] != '/')
		return xn_fail(err, "SR_BACKEND_FAILURE_111", "",
			       "device-config:location must be an absolute directory", "", NULL);
	if (stat(c->dir, &st) < 0 || !S_ISDIR(st.st_mode))
		return xn_fail(err, "SR_BACKEND_FAILURE_77", "", "no such directory", c->dir, NULL);
	return 0;
}

static char *dir_url(const xn_sr_conf *c, const char *file)
{
	return xn_asprintf("%s/%s", c->dir, file);
}

static json_t *dir_node(const xn_sr_conf *c, const char *file)
{
	XN_AUTOFREE char *path = dir_url(c, file);
	return json_pack("{s:s,s:s}", "driver", "file", "filename", path);
}

static int dir_list(const xn_sr_conf *c, json_t **files, xn_error **err)
{
	DIR *d = opendir(c->dir);
	if (!d)
		return xn_fail_errno(err, errno, "cannot open '%s'", c->dir);
	*files = json_object();
	for (struct dirent *e; (e = readdir(d));) {
		struct stat st;
		if (e->d_name[0] == '.' || fstatat(dirfd(d), e->d_name, &st, 0) < 0 ||
		    !S_ISREG(st.st_mode))
			continue;
		json_object_set_new(*files, e->d_name,
				    json_pack("{s:I}", "size", (json_int_t)st.st_blocks * 512));
	}
	closedir(d);
	return 0;
}

static int dir_remove(const xn_sr_conf *c, const char *file, xn_error **err)
{
	XN_AUTOFREE char *path = dir_url(c, file);
	if (unlink(path) < 0 && errno != ENOENT)
		return xn_fail(err, "SR_BACKEND_FAILURE", "unlink", path, strerror(errno), NULL);
	return 0;
}

static int dir_space(const xn_sr_conf *c, int64_t *total, int64_t *free_bytes, xn_error **err)
{
	struct statvfs st;
	if (statvfs(c->dir, &st) < 0)
		return xn_fail_errno(err, errno, "cannot stat '%s'", c->dir);
	*total = (int64_t)st.f_blocks * (int64_t)st.f_frsize;
	*free_bytes = (int64_t)st.f_bavail * (int64_t)st.f_frsize;
	return 0;
}

const xn_sr_ops xn_sr_file_ops = {
	.type = "file",
	.content_type = "user",
	.attach = dir_attach,
	.node = dir_node,
	.url = dir_url,
	.list = dir_list,
	.remove = dir_remove,
	.space = dir_space,
};

/* An ISO library: a local directory (device-config:location=/dir) or
 * an NFS export (location=server:/path, sr_nfs.c). The administrator's
 * files are never created or removed by Xenia (removing an ISO VDI
 * forgets it). */
#define ISO_DISPATCH(c) ((c)->dir ? &local_iso : &xn_sr_iso_nfs_ops)

static int iso_remove(const xn_sr_conf *c, const char *file, xn_error **err)
{
	return 0;
}

static const xn_sr_ops local_iso = {
	.attach = dir_attach_existing,
	.node = dir_node,
	.url = dir_url,
	.list = dir_list,
	.space = dir_space,
};

static int iso_attach(const xn_sr_conf *c, xn_error **err)
{
	return ISO_DISPATCH(c)->attach(c, err);
}

static json_t *iso_node(const xn_sr_conf *c, const char *file)
{
	return ISO_DISPATCH(c)->node(c, file);
}

static char *iso_url(const xn_sr_conf *c, const char *file)
{
	return ISO_DISPATCH(c)->url(c, file);
}

static int iso_list(const xn_sr_conf *c, json_t **files, xn_error **err)
{
	return ISO_DISPATCH(c)->list(c, files, err);
}

static int iso_space(const xn_sr_conf *c, int64_t *total, int64_t *free_bytes, xn_error **err)
{
	return ISO_DISPATCH(c)->space(c, total, free_bytes, err);
}

const xn_sr_ops xn_sr_iso_ops = {
	.type = "iso",
	.content_type = "iso",
	.read_only = true,
	.attach = iso_attach,
	.node = iso_node,
	.url = iso_url,
	.list = iso_list,
	.remove = iso_remove,
	.space = iso_space,
};
