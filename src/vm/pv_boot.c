/* pv_boot.c: the PV bootloader (pv_boot.h). On the loop: which disk, its
 * image and the VM's arguments; on a worker thread: the disk opened
 * (guest_fs.c), the first boot menu found on any of its ext file
 * systems read (bootcfg.c), the entry's kernel and initrds copied into
 * the run directory, the command line put together. */
#include "vm/pv_boot.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "storage/guest_fs.h"
#include "storage/storage.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/uuid.h"
#include "vm/bootcfg.h"

/* Where menus are looked for on each file system, in order. */
static const struct {
	const char *path;
	bool grub;
} configs[] = {
	{"/boot/grub/grub.cfg", true},         {"/grub/grub.cfg", true},
	{"/boot/grub2/grub.cfg", true},        {"/grub2/grub.cfg", true},
	{"/boot/extlinux/extlinux.conf", false}, {"/extlinux/extlinux.conf", false},
	{"/extlinux.conf", false},              {"/boot/syslinux/syslinux.cfg", false},
	{"/syslinux/syslinux.cfg", false},      {"/syslinux.cfg", false},
};

#define MAX_CONFIG_BYTES (1u << 20)

struct job {
	uv_work_t w;
	char *vm, *uuid, *image, *format, *run_dir, *loader_args, *pv_args;
	xn_pv_boot *boot;
	xn_error *err;
	xn_pv_boot_done done;
	void *ud;
};

void xn_pv_boot_free(xn_pv_boot *b)
{
	if (!b)
		return;
	free(b->kernel);
	free(b->ramdisk);
	free(b->args);
	free(b);
}

int xn_pv_boot_wanted(json_t *vm, xn_error **err)
{
	const char *loader = json_string_value(json_object_get(vm, "PV_bootloader"));
	const char *hvm = json_string_value(json_object_get(vm, "HVM_boot_policy"));
	if (!loader || !loader[0] || (hvm && hvm[0]))
		return 0;
	if (strcmp(loader, "pygrub") == 0 || strcmp(loader, "xenia") == 0)
		return 1;
	return xn_fail(err, "UNKNOWN_BOOTLOADER",
		       json_string_value(json_object_get(vm, "uuid")), loader, NULL);
}

/* ---- PV_bootloader_args ------------------------------------------------ */

struct loader_opts {
	char *entry, *kernel, *ramdisk, *args;
};

/* Words with shell-like quotes ('...', "...", \x). */
static char **split_words(const char *s)
{
	char **v = xn_strv_new();
	while (*s) {
		s += strspn(s, " \t\n");
		if (!*s)
			break;
		xn_buf b = {0};
		for (char q = 0; *s && (q || !strchr(" \t\n", *s)); s++) {
			if (!q && (*s == '\'' || *s == '"'))
				q = *s;
			else if (q && *s == q)
				q = 0;
			else if (*s == '\\' && s[1] && q != '\'')
				xn_buf_append(&b, ++s, 1);
			else
				xn_buf_append(&b, s, 1);
		}
		XN_AUTOFREE char *w = xn_buf_steal(&b);
		xn_strv_push(&v, w);
	}
	return v;
}

static int parse_loader_args(const char *s, struct loader_opts *o, xn_error **err)
{
	static const char *names[] = {"--entry", "--kernel", "--ramdisk", "--args"};
	XN_AUTOSTRV char **w = split_words(s ? s : "");
	for (size_t i = 0; w[i]; i++) {
		char **slot[] = {&o->entry, &o->kernel, &o->ramdisk, &o->args};
		size_t k = 0, n = 0;
		for (; k < XN_ARRAY_LEN(names); k++)
			if (xn_str_has_prefix(w[i], names[k]) &&
			    (w[i][n = strlen(names[k])] == '=' || !w[i][n]))
				break;
		if (k == XN_ARRAY_LEN(names) || (!w[i][n] && !w[i + 1]))
			return xn_fail_internal(err, "PV_bootloader_args: cannot use '%s'", w[i]);
		free(*slot[k]);
		*slot[k] = xn_strdup(w[i][n] ? w[i] + n + 1 : w[++i]);
	}
	return 0;
}

static void loader_opts_clear(struct loader_opts *o)
{
	free(o->entry);
	free(o->kernel);
	free(o->ramdisk);
	free(o->args);
}

/* ---- thread: the menu, the files --------------------------------------- */

struct found {
	xn_boot_entry *entry;
	size_t fs;
	char *dir;  /* the menu's directory: where its relative paths start */
};

/* What went wrong, without the code ("INTERNAL_ERROR: ") in front. */
static const char *reason(const xn_error *e)
{
	if (xn_streq(e->code, "INTERNAL_ERROR") && e->params && e->params[0])
		return e->params[0];
	return e->message;
}

/* The first menu with a bootable entry on any file system. */
static int find_menu(xn_guest_disk *g, const char *select, struct found *f, xn_error **err)
{
	xn_error *last = NULL;
	for (size_t i = 0; i < xn_guest_disk_nfs(g); i++) {
		for (size_t c = 0; c < XN_ARRAY_LEN(configs); c++) {
			if (!xn_guest_disk_is_file(g, i, NULL, configs[c].path))
				continue;
			size_t len = 0;
			xn_error *e = NULL;
			XN_AUTOFREE char *text = xn_guest_disk_read(g, i, NULL, configs[c].path,
								   MAX_CONFIG_BYTES, &len, &e);
			if (text && strlen(text) != len)
				xn_fail_internal(&e, "'%s' is not a text file", configs[c].path);
			f->entry = text && !e ? (configs[c].grub ? xn_bootcfg_grub : xn_bootcfg_extlinux)(
							text, select, &e)
					      : NULL;
			if (f->entry) {
				xn_error_free(last);
				f->fs = i;
				f->dir = xn_strndup(configs[c].path, strrchr(configs[c].path, '/') -
									     configs[c].path);
				return 0;
			}
			xn_error_free(last);
			last = NULL;
			xn_fail_internal(&last, "%s on %s: %s", configs[c].path,
					 xn_guest_disk_fs_name(g, i), reason(e));
			xn_error_free(e);
		}
	}
	if (last)
		return xn_error_propagate(err, &last), -1;
	return xn_fail_internal(err, "no boot menu (grub.cfg, extlinux.conf, syslinux.cfg) on "
				"any of the disk's %zu ext2/3/4 file system(s)",
				xn_guest_disk_nfs(g));
}

/* The file system that has path: the menu's own first, then (absolute
 * paths: /boot on another partition) the others. */
static int find_file_fs(xn_guest_disk *g, const struct found *f, const char *path)
{
	if (xn_guest_disk_is_file(g, f->fs, f->dir, path))
		return (int)f->fs;
	for (size_t i = 0; path[0] == '/' && i < xn_guest_disk_nfs(g); i++)
		if (i != f->fs && xn_guest_disk_is_file(g, i, NULL, path))
			return (int)i;
	return -1;
}

/* Append each of paths to the new file dst, within *budget. */
static int copy_files(xn_guest_disk *g, const struct found *f, char *const *paths,
		      const char *dst, uint64_t *budget, xn_error **err)
{
	XN_AUTOCLOSE int fd = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return xn_fail_errno(err, errno, "cannot create '%s'", dst);
	for (size_t i = 0; paths[i]; i++) {
		int fs = find_file_fs(g, f, paths[i]);
		if (xn_guest_disk_copy(g, fs < 0 ? f->fs : (size_t)fs, f->dir, paths[i], fd, budget,
				       err) < 0)
			return -1;
	}
	return 0;
}

static char *join_args(const char *a, const char *b, const char *c)
{
	XN_AUTOSTRV char **v = xn_strv_new();
	const char *parts[] = {a, b, c};
	for (size_t i = 0; i < XN_ARRAY_LEN(parts); i++)
		if (parts[i] && parts[i][strspn(parts[i], " \t")])
			xn_strv_push(&v, parts[i]);
	return xn_strv_join(v, " ");
}

static int extract(struct job *j, xn_guest_disk *g, const struct loader_opts *o, xn_error **err)
{
	struct found f = {0};
	if (find_menu(g, o->entry, &f, err) < 0)
		return -1;
	XN_AUTOFREE char *dir = f.dir;
	xn_boot_entry *e = f.entry;
	char *kernel[] = {o->kernel ? o->kernel : e->kernel, NULL};
	char *ramdisk[] = {o->ramdisk, NULL};
	char **initrds = o->ramdisk ? ramdisk : e->initrds;
	uint64_t budget = XN_PV_BOOT_MAX_BYTES;
	xn_pv_boot *b = xn_calloc(1, sizeof(*b));
	b->kernel = xn_asprintf("%s/%s", j->run_dir, XN_PV_BOOT_KERNEL);
	b->ramdisk = initrds[0] ? xn_asprintf("%s/%s", j->run_dir, XN_PV_BOOT_INITRD) : NULL;
	b->args = join_args(e->args, o->args, j->pv_args);
	int rc = copy_files(g, &f, kernel, b->kernel, &budget, err);
	if (rc == 0 && b->ramdisk)
		rc = copy_files(g, &f, initrds, b->ramdisk, &budget, err);
	if (rc == 0 && strchr(b->args, '\n'))
		rc = xn_fail_internal(err, "the kernel command line has a line break");
	if (rc == 0)
		xn_info("vm %s: bootloader: '%s' from %s (%s), command line '%s'", j->uuid,
			e->title, xn_guest_disk_fs_name(g, f.fs), kernel[0], b->args);
	xn_boot_entry_free(e);
	if (rc < 0)
		xn_pv_boot_free(b);
	else
		j->boot = b;
	return rc;
}

static void job_work(uv_work_t *w)
{
	struct job *j = (struct job *)w;
	struct loader_opts o = {0};
	xn_error *e = NULL;
	xn_guest_disk *g = NULL;
	if (parse_loader_args(j->loader_args, &o, &e) == 0 && xn_rm_rf(j->run_dir, &e) == 0 &&
	    xn_mkdir_p(j->run_dir, 0700, &e) == 0 && (g = xn_guest_disk_open(j->image, j->format, &e)))
		extract(j, g, &o, &e);
	xn_guest_disk_close(g);
	loader_opts_clear(&o);
	if (e) {
		xn_rm_rf(j->run_dir, NULL);
		xn_fail(&j->err, "BOOTLOADER_FAILED", j->vm, reason(e), NULL);
		xn_error_free(e);
	}
}

static void job_free(struct job *j)
{
	free(j->vm);
	free(j->uuid);
	free(j->image);
	free(j->format);
	free(j->run_dir);
	free(j->loader_args);
	free(j->pv_args);
	free(j);
}

static void job_after(uv_work_t *w, int status)
{
	struct job *j = (struct job *)w;
	if (j->err)
		xn_warn("vm %s: %s", j->uuid, j->err->message);
	j->done(j->ud, j->boot, j->err);
	job_free(j);
}

/* ---- loop: which disk ----------------------------------------------------- */

/* The VBD to boot from: bootable, else userdevice 0, else the first
 * disk; NULL if the VM has no disk with an image. */
static const char *boot_vbd(xn_host *h, const char *vm)
{
	const char *pick = NULL;
	int rank = 0;
	size_t i;
	json_t *v;
	json_array_foreach(xn_db_field(h->db, vm, "VBDs"), i, v) {
		const char *vbd = json_string_value(v), *vdi = xn_db_str(h->db, vbd, "VDI");
		if (!xn_streq(xn_db_str(h->db, vbd, "type"), "Disk") || xn_db_bool(h->db, vbd, "empty") ||
		    xn_ref_is_null(vdi) || !xn_db_get(h->db, vdi))
			continue;
		int r = xn_db_bool(h->db, vbd, "bootable")                    ? 3
			: xn_streq(xn_db_str(h->db, vbd, "userdevice"), "0") ? 2
									      : 1;
		if (r > rank)
			pick = vbd, rank = r;
	}
	return pick;
}

void xn_pv_boot_run(xn_host *h, const char *vm_ref, const char *run_dir, xn_pv_boot_done done,
		    void *ud)
{
	const char *vbd = boot_vbd(h, vm_ref);
	if (!vbd) {
		xn_error *err = NULL;
		xn_fail(&err, "BOOTLOADER_FAILED", vm_ref, "the VM has no disk to boot from", NULL);
		done(ud, NULL, err);
		return;
	}
	const char *vdi = xn_db_str(h->db, vbd, "VDI");
	struct job *j = xn_calloc(1, sizeof(*j));
	j->vm = xn_strdup(vm_ref);
	j->uuid = xn_strdup(xn_db_str(h->db, vm_ref, "uuid"));
	j->image = xn_vdi_path(h, vdi);
	j->format = xn_strdup(xn_vdi_format(h, vdi));
	j->run_dir = xn_strdup(run_dir);
	j->loader_args = xn_strdup(xn_db_str(h->db, vm_ref, "PV_bootloader_args"));
	j->pv_args = xn_strdup(xn_db_str(h->db, vm_ref, "PV_args"));
	j->done = done;
	j->ud = ud;
	uv_queue_work(h->loop, &j->w, job_work, job_after);
}
