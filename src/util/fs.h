/* fs.h: file-system helpers that report through xn_error. */
#ifndef XN_FS_H
#define XN_FS_H

#include "util/err.h"

int xn_mkdir_p(const char *path, int mode, xn_error **err);
/* Write data to path atomically (temporary file, fsync, rename). */
int xn_write_file_atomic(const char *path, const void *data, size_t len, int mode,
			 xn_error **err);
/* Whole file as a NUL-terminated string; *len_out (optional) gets its size. */
char *xn_read_file(const char *path, size_t *len_out, xn_error **err);
/* Remove a directory tree (no error if it does not exist). */
int xn_rm_rf(const char *path, xn_error **err);
bool xn_path_exists(const char *path);
/* Copy a regular file (used for small files such as kernels). */
int xn_copy_file(const char *src, const char *dst, int mode, xn_error **err);

#endif
