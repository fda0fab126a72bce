/* p2v.c: root file systems into disk images (p2v.h). */
#include "vm/p2v.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "util/fs.h"
#include "util/proc.h"

#define MiB (1024LL * 1024)

static int refuse(xn_error **err, const char *what, const char *name)
{
	XN_AUTOFREE char *msg = xn_asprintf("P2V: %s: '%s'", what, name ? name : "");
	return xn_fail(err, "IMPORT_ERROR_GENERIC", msg, NULL);
}

/* Whether a member name stays inside the root: relative, no ".." part. */
static bool inside(const char *name)
{
	if (!name || name[0] == '/')
		return false;
	for (const char *p = name; *p;) {
		size_t n = strcspn(p, "/");
		if (n == 2 && strncmp(p, "..", 2) == 0)
			return false;
		p += n + (p[n] == '/');
	}
	return true;
}

/* Unpack one member under root; *bytes counts what the disk will hold. */
static int unpack_entry(struct archive *in, struct archive *out, struct archive_entry *e,
			const char *root, int64_t *bytes, xn_error **err)
{
	const char *name = archive_entry_pathname(e);
	const char *hard = archive_entry_hardlink(e);
	if (!inside(name) || (hard && !inside(hard)))
		return refuse(err, "a member with a path outside the root (absolute or ..)",
			      !inside(name) ? name : hard);
	mode_t type = archive_entry_filetype(e);
	if (type == AE_IFCHR || type == AE_IFBLK || type == AE_IFIFO || type == AE_IFSOCK)
		return 0; /* devtmpfs makes the device nodes */
	XN_AUTOFREE char *full = xn_asprintf("%s/%s", root, name);
	archive_entry_set_pathname(e, full);
	if (hard) {
		XN_AUTOFREE char *link = xn_asprintf("%s/%s", root, hard);
		archive_entry_set_hardlink(e, link);
	}
	*bytes += archive_entry_size(e) + 4096;
	if (archive_write_header(out, e) != ARCHIVE_OK)
		return refuse(err, archive_error_string(out), name);
	const void *buf;
	size_t len;
	la_int64_t off;
	int r;
	while ((r = archive_read_data_block(in, &buf, &len, &off)) == ARCHIVE_OK)
		if (archive_write_data_block(out, buf, len, off) != ARCHIVE_OK)
			return refuse(err, archive_error_string(out), name);
	if (r != ARCHIVE_EOF)
		return refuse(err, "a damaged or truncated tar", archive_error_string(in));
	return archive_write_finish_entry(out) == ARCHIVE_OK
		       ? 0 : refuse(err, archive_error_string(out), name);
}

static int unpack(const char *tar, const char *root, int64_t *bytes, xn_error **err)
{
	struct archive *in = archive_read_new(), *out = archive_write_disk_new();
	archive_read_support_format_all(in);
	archive_read_support_filter_all(in);
	archive_write_disk_set_options(out, ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_OWNER |
						    ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_XATTR |
						    ARCHIVE_EXTRACT_SECURE_SYMLINKS |
						    ARCHIVE_EXTRACT_SECURE_NODOTDOT);
	int rc = archive_read_open_filename(in, tar, 1 << 20) == ARCHIVE_OK
			 ? 0 : refuse(err, "not a tar archive", archive_error_string(in));
	struct archive_entry *e;
	int r = ARCHIVE_EOF;
	while (rc == 0 && (r = archive_read_next_header(in, &e)) == ARCHIVE_OK)
		rc = unpack_entry(in, out, e, root, bytes, err);
	if (rc == 0 && r != ARCHIVE_EOF)
		rc = refuse(err, "a damaged or truncated tar", archive_error_string(in));
	archive_read_free(in);
	archive_write_free(out);
	return rc;
}

/* Each whitespace-separated word starting "root=" in a line becomes
 * root=/dev/vda. Caller frees. */
static char *fix_root_args(const char *line)
{
	xn_buf b = {0};
	for (const char *p = line; *p;) {
		size_t sp = strspn(p, " \t"), w = strcspn(p + sp, " \t\"'");
		xn_buf_append(&b, p, sp);
		if (strncmp(p + sp, "root=", 5) == 0)
			xn_buf_printf(&b, "root=%s", XN_P2V_ROOT);
		else
			xn_buf_append(&b, p + sp, w);
		p += sp + w;
		size_t q = strspn(p, "\"'");
		xn_buf_append(&b, p, q);
		p += q;
	}
	return xn_buf_steal(&b);
}

/* root/rel if every part of it is a real directory and the last a
 * regular file (nothing of the guest's may lead outside); caller frees. */
static char *guest_file(const char *root, const char *rel)
{
	XN_AUTOFREE char *path = xn_asprintf("%s/%s", root, rel);
	struct stat st;
	for (char *p = path + strlen(root) + 1; (p = strchr(p, '/')); p++) {
		*p = '\0';
		bool dir = lstat(path, &st) == 0 && S_ISDIR(st.st_mode);
		*p = '/';
		if (!dir)
			return NULL;
	}
	return lstat(path, &st) == 0 && S_ISREG(st.st_mode) ? xn_steal(&path) : NULL;
}

/* Rewrite a guest file line by line with fix (NULL: keep the line). */
static int rewrite(const char *root, const char *rel, char *(*fix)(const char *line),
		   xn_error **err)
{
	XN_AUTOFREE char *path = guest_file(root, rel);
	struct stat st;
	if (!path || stat(path, &st) < 0)
		return 0;
	XN_AUTOFREE char *text = xn_read_file(path, NULL, err);
	if (!text)
		return -1;
	xn_buf b = {0};
	for (char *save = NULL, *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		XN_AUTOFREE char *n = fix(l);
		xn_buf_printf(&b, "%s\n", n ? n : l);
	}
	XN_AUTOFREE char *out = xn_buf_steal(&b);
	return xn_write_file_atomic(path, out, strlen(out), st.st_mode & 07777, err);
}

/* fstab: / on the virtio disk; other disks' file systems, gone now,
 * commented out (swap included); pseudo file systems kept. */
static char *fix_fstab(const char *line)
{
	char dev[256], mnt[256], type[64];
	if (line[0] == '#' || sscanf(line, "%255s %255s %63s", dev, mnt, type) != 3)
		return NULL;
	if (strcmp(mnt, "/") == 0)
		return xn_asprintf("%s / ext4 defaults 0 1", XN_P2V_ROOT);
	static const char *const disks[] = {"UUID=", "LABEL=", "PARTUUID=", "PARTLABEL=", "/dev/",
					    NULL};
	for (size_t i = 0; disks[i]; i++)
		if (strncmp(dev, disks[i], strlen(disks[i])) == 0)
			return xn_asprintf("# p2v: not on this VM's disk: %s", line);
	return NULL;
}

static int adjust(const char *root, xn_error **err)
{
	static const char *const boot[] = {"boot/grub/grub.cfg", "boot/extlinux/extlinux.conf",
					   "boot/syslinux/syslinux.cfg", "etc/default/grub", NULL};
	if (rewrite(root, "etc/fstab", fix_fstab, err) < 0)
		return -1;
	for (size_t i = 0; boot[i]; i++)
		if (rewrite(root, boot[i], fix_root_args, err) < 0)
			return -1;
	return 0;
}

/* The guest's newest /boot/vmlinuz-V and its initrd.img-V, copied into
 * boot_dir; out gets "kernel" (and "ramdisk"). None: nothing set. */
static int copy_kernel(const char *root, const char *boot_dir, json_t *out, xn_error **err)
{
	XN_AUTOFREE char *bdir = xn_asprintf("%s/boot", root);
	DIR *d = opendir(bdir);
	XN_AUTOFREE char *best = NULL;
	for (struct dirent *e; d && (e = readdir(d));)
		if (strncmp(e->d_name, "vmlinuz-", 8) == 0 && (!best || strverscmp(e->d_name, best) > 0)) {
			XN_AUTOFREE char *rel = xn_asprintf("boot/%s", e->d_name);
			XN_AUTOFREE char *f = guest_file(root, rel);
			if (f) {
				free(best);
				best = xn_strdup(e->d_name);
			}
		}
	if (d)
		closedir(d);
	if (!best)
		return 0;
	XN_AUTOFREE char *k = xn_asprintf("boot/%s", best);
	XN_AUTOFREE char *r = xn_asprintf("boot/initrd.img-%s", best + 8);
	XN_AUTOFREE char *ksrc = guest_file(root, k), *rsrc = guest_file(root, r);
	XN_AUTOFREE char *kdst = xn_asprintf("%s/vmlinuz", boot_dir);
	XN_AUTOFREE char *rdst = xn_asprintf("%s/initrd.img", boot_dir);
	if (xn_mkdir_p(boot_dir, 0755, err) < 0 || xn_copy_file(ksrc, kdst, 0644, err) < 0 ||
	    (rsrc && xn_copy_file(rsrc, rdst, 0644, err) < 0))
		return -1;
	json_object_set_new(out, "kernel", json_string(kdst));
	if (rsrc)
		json_object_set_new(out, "ramdisk", json_string(rdst));
	return 0;
}

json_t *xn_p2v_build(const char *tar, const char *dir, const char *boot_dir, xn_error **err)
{
	XN_AUTOFREE char *root = xn_asprintf("%s/root", dir);
	XN_AUTOFREE char *image = xn_asprintf("%s/disk.raw", dir);
	int64_t bytes = 0;
	if (xn_mkdir_p(root, 0755, err) < 0 || unpack(tar, root, &bytes, err) < 0 ||
	    adjust(root, err) < 0)
		return NULL;
	/* room for the files, ext4's metadata and the guest's own growth */
	int64_t size = (bytes + bytes / 2 + 128 * MiB + MiB - 1) / MiB * MiB;
	size = size < 256 * MiB ? 256 * MiB : size;
	XN_AUTOFREE char *kib = xn_asprintf("%lldk", (long long)(size / 1024));
	char *argv[] = {"mke2fs", "-q", "-F", "-t", "ext4", "-L", "root", "-E", "nodiscard",
			"-d", root, image, kib, NULL};
	json_t *out = json_pack("{s:s,s:I,s:s}", "image", image, "size", (json_int_t)size, "args",
				"console=ttyS0 root=" XN_P2V_ROOT);
	if (xn_run_sync(argv, NULL, err) < 0 || copy_kernel(root, boot_dir, out, err) < 0) {
		json_decref(out);
		return NULL;
	}
	return out;
}
