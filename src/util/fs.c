/* fs.c: directory creation, atomic writes, recursive removal (fs.h). */
#include "util/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int xn_mkdir_p(const char *path, int mode, xn_error **err)
{
	XN_AUTOFREE char *p = xn_strdup(path);
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, (mode_t)mode) < 0 && errno != EEXIST)
			return xn_fail_errno(err, errno, "cannot create directory '%s'", p);
		*s = '/';
	}
	if (mkdir(p, (mode_t)mode) < 0 && errno != EEXIST)
		return xn_fail_errno(err, errno, "cannot create directory '%s'", p);
	return 0;
}

int xn_write_file_atomic(const char *path, const void *data, size_t len, int mode,
			 xn_error **err)
{
	XN_AUTOFREE char *tmp = xn_asprintf("%s.tmp.%d", path, (int)getpid());
	XN_AUTOCLOSE int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		return xn_fail_errno(err, errno, "cannot create '%s'", tmp);
	const char *p = data;
	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			int e = errno;
			unlink(tmp);
			return xn_fail_errno(err, e, "cannot write '%s'", tmp);
		}
		p += w;
		len -= (size_t)w;
	}
	if (fsync(fd) < 0 || rename(tmp, path) < 0) {
		int e = errno;
		unlink(tmp);
		return xn_fail_errno(err, e, "cannot replace '%s'", path);
	}
	return 0;
}

char *xn_read_file(const char *path, size_t *len_out, xn_error **err)
{
	XN_AUTOCLOSE int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		xn_fail_errno(err, errno, "cannot open '%s'", path);
		return NULL;
	}
	xn_buf b = {0};
	char chunk[8192];
	for (;;) {
		ssize_t r = read(fd, chunk, sizeof(chunk));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			xn_fail_errno(err, errno, "cannot read '%s'", path);
			xn_buf_reset(&b);
			return NULL;
		}
		if (r == 0)
			break;
		xn_buf_append(&b, chunk, (size_t)r);
	}
	if (len_out)
		*len_out = b.len;
	return xn_buf_steal(&b);
}

static int rm_one(const char *p, const struct stat *st XN_UNUSED, int flag XN_UNUSED,
		  struct FTW *ftw XN_UNUSED)
{
	return remove(p) < 0 && errno != ENOENT ? -1 : 0;
}

int xn_rm_rf(const char *path, xn_error **err)
{
	if (!xn_path_exists(path))
		return 0;
	if (nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS) < 0)
		return xn_fail_errno(err, errno, "cannot remove '%s'", path);
	return 0;
}

bool xn_path_exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

int xn_copy_file(const char *src, const char *dst, int mode, xn_error **err)
{
	size_t len;
	XN_AUTOFREE char *data = xn_read_file(src, &len, err);
	if (!data)
		return -1;
	return xn_write_file_atomic(dst, data, len, mode, err);
}
