/* vm_import_image.c: PUT /import_image, a new VM from a bare disk image
 * (raw, qcow2, vhd, vmdk) or an OVA (xva.h).
 *
 *   PUT /import_image?session_id=S&format=ova|raw|qcow2|vhd|vmdk
 *       [&name=LABEL][&sr_id=R|&sr_uuid=U][&task_id=T]
 *
 * Unlike an XVA, these formats cannot be written into a disk as they
 * arrive (an OVA's descriptor may come after nothing else, a vmdk or
 * vhd needs its whole file), so the steps are, top to bottom:
 *   the body is spooled into a private directory under DATA/transfer
 *   (emptied at start) -> a worker thread unpacks and checks it
 *   (ova_package.h, ovf.h, disk_probe.h) into a description -> the loop
 *   turns that into an XVA-style header and plans it (xva.h: SR_FULL,
 *   the records) and makes an empty image for each disk (held from the
 *   collector) -> the thread converts each disk into its image with
 *   qemu-img -> one commit records the VM, its disks and NICs.
 * Any failure removes the new images and the spool and records nothing.
 * The VM boots by BIOS from its first disk (as VMware and VirtualBox
 * guests do). The answer is the new VM's ref, as for /import. */
#include "vm/xva.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "api/http_xfer.h"
#include "storage/disk_probe.h"
#include "storage/storage.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/proc.h"
#include "util/uuid.h"
#include "vm/ova_package.h"
#include "vm/ovf.h"
#include "vm/p2v.h"

#define MAX_WAITING (32 << 20)   /* body bytes not yet on disk */
#define MiB (1024LL * 1024)

struct imp {
	xn_host *h;
	xn_http_req *req;            /* NULL once answered or gone */
	char *task, *sr, *format, *name;
	char *dir, *spool;           /* the private directory, the upload in it */
	char *boot_dir;              /* rootfs: where the guest's kernel is copied */
	uv_file fd;
	int64_t received, waiting;
	bool body_done, paused, answered;
	int busy;                    /* writes, image creations and thread steps running */
	json_t *desc;                /* the thread's description of the VM */
	xn_xva_plan *plan;
	char **locs;                 /* the new images (held), NULL-terminated */
	json_t *convert;             /* [{"src", "format", "dst"}] for the thread */
	char *vm;
	xn_error *err;
};

struct wreq {
	uv_fs_t fs;
	struct imp *im;
	char *buf;
	size_t len;
};

struct step {
	uv_work_t w;
	struct imp *im;
	int (*fn)(struct imp *im, xn_error **err);
	void (*next)(struct imp *im);
	xn_error *err;
};

static void maybe_end(struct imp *im);

static void fail(struct imp *im, xn_error *err)
{
	if (im->err)
		xn_error_free(err);
	else
		im->err = err;
}

static void imp_free(struct imp *im)
{
	free(im->task);
	free(im->sr);
	free(im->format);
	free(im->name);
	free(im->dir);
	free(im->spool);
	free(im->boot_dir);
	json_decref(im->desc);
	json_decref(im->convert);
	xn_xva_plan_free(im->plan);
	xn_strv_free(im->locs);
	free(im->vm);
	xn_error_free(im->err);
	free(im);
}

/* ---- worker-thread steps ------------------------------------------------------ */

static void step_work(uv_work_t *w)
{
	struct step *s = (struct step *)w;
	s->fn(s->im, &s->err);
}

static void step_after(uv_work_t *w, int status)
{
	struct step *s = (struct step *)w;
	struct imp *im = s->im;
	im->busy--;
	if (s->err)
		fail(im, s->err);
	else if (!im->err)
		s->next(im);
	free(s);
	maybe_end(im);
}

static void run_step(struct imp *im, int (*fn)(struct imp *, xn_error **),
		     void (*next)(struct imp *))
{
	struct step *s = xn_calloc(1, sizeof(*s));
	s->im = im;
	s->fn = fn;
	s->next = next;
	im->busy++;
	uv_queue_work(im->h->loop, &s->w, step_work, step_after);
}

/* Thread: a disk of the description, checked; capacity at least its size. */
static int add_disk(json_t *disks, const char *path, const char *want, int64_t capacity,
		    xn_error **err)
{
	int64_t size = 0;
	const char *fmt = path ? xn_disk_probe(path, want, &size, err) : "raw";
	if (!fmt)
		return -1;
	json_array_append_new(disks, json_pack("{s:s?,s:s,s:I}", "path", path, "format", fmt,
					       "capacity", (json_int_t)(size > capacity ? size : capacity)));
	return 0;
}

static int inspect_ova(struct imp *im, xn_error **err)
{
	XN_AUTOFREE char *ovf = NULL;
	XN_AUTOFREE char *pkg = xn_asprintf("%s/package", im->dir);
	if (xn_mkdir_p(pkg, 0700, err) < 0 || xn_ova_unpack(im->spool, pkg, &ovf, err) < 0)
		return -1;
	XN_AUTOFREE char *ovf_path = xn_asprintf("%s/%s", pkg, ovf);
	size_t len;
	XN_AUTOFREE char *xml = xn_read_file(ovf_path, &len, err);
	json_t *d = xml ? xn_ovf_parse(xml, len, err) : NULL;
	if (!d)
		return -1;
	json_t *disks = json_array();
	json_object_set_new(d, "images", disks);
	im->desc = d;
	size_t i;
	json_t *disk;
	json_array_foreach(json_object_get(d, "disks"), i, disk) {
		const char *file = json_string_value(json_object_get(disk, "file"));
		XN_AUTOFREE char *path = file ? xn_asprintf("%s/%s", pkg, file) : NULL;
		if (path && !xn_path_exists(path)) {
			XN_AUTOFREE char *msg = xn_asprintf("OVA: the descriptor names a disk file "
							    "the package does not hold: '%s'", file);
			return xn_fail(err, "IMPORT_ERROR_GENERIC", msg, NULL);
		}
		if (add_disk(disks, path, NULL,
			     json_integer_value(json_object_get(disk, "capacity")), err) < 0)
			return -1;
	}
	return 0;
}

/* Thread: a root file system's tar (P2V) made into an ext4 disk image. */
static int inspect_rootfs(struct imp *im, xn_error **err)
{
	json_t *built = xn_p2v_build(im->spool, im->dir, im->boot_dir, err);
	if (!built)
		return -1;
	if (!json_object_get(built, "kernel")) { /* none of its own: the built-in one */
		XN_AUTOFREE char *k = xn_asprintf("%s/boot/tiny-linux/vmlinuz", im->h->data_dir);
		XN_AUTOFREE char *r = xn_asprintf("%s/boot/tiny-linux/initrd.img", im->h->data_dir);
		json_object_set_new(built, "kernel", json_string(k));
		json_object_set_new(built, "ramdisk", json_string(r));
	}
	im->desc = json_pack("{s:s,s:i,s:I,s:[],s:[{s:s}],s:o}", "name", "P2V", "vcpus", 1,
			     "memory", (json_int_t)(256 * MiB), "images", "nics", "network",
			     "Pool-wide network", "pv", built);
	return add_disk(json_object_get(im->desc, "images"),
			json_string_value(json_object_get(built, "image")), "raw", 0, err);
}

static int inspect(struct imp *im, xn_error **err)
{
	if (strcmp(im->format, "ova") == 0)
		return inspect_ova(im, err);
	if (strcmp(im->format, "rootfs") == 0)
		return inspect_rootfs(im, err);
	im->desc = json_pack("{s:s,s:i,s:I,s:[],s:[{s:s}]}", "name", "Imported VM", "vcpus", 1,
			     "memory", (json_int_t)(256 * MiB), "images", "nics", "network",
			     "Pool-wide network");
	return add_disk(json_object_get(im->desc, "images"), im->spool, im->format, 0, err);
}

static int convert(struct imp *im, xn_error **err)
{
	size_t i;
	json_t *c;
	json_array_foreach(im->convert, i, c) {
		const char *src = json_string_value(json_object_get(c, "src"));
		if (!src)
			continue; /* a blank disk */
		char *argv[] = {"qemu-img", "convert", "-n", "--target-is-zero", "-f",
				(char *)json_string_value(json_object_get(c, "format")), "-O", "qcow2",
				(char *)src, (char *)json_string_value(json_object_get(c, "dst")), NULL};
		XN_AUTOERR xn_error *qerr = NULL;
		if (xn_run_sync(argv, NULL, &qerr) < 0) {
			XN_AUTOFREE char *msg = xn_asprintf("cannot convert '%s': %s", src, qerr->message);
			return xn_fail(err, "IMPORT_ERROR_GENERIC", msg, NULL);
		}
	}
	return 0;
}

/* ---- the description as an XVA-style header (xva.h) ----------------------------- */

static json_t *obj(const char *cls, const char *id, json_t *snap)
{
	return json_pack("{s:s,s:s,s:o}", "class", cls, "id", id, "snapshot", snap);
}

static json_t *vm_object(struct imp *im)
{
	json_int_t mem = json_integer_value(json_object_get(im->desc, "memory"));
	json_int_t vcpus = json_integer_value(json_object_get(im->desc, "vcpus"));
	const char *name = im->name ? im->name : json_string_value(json_object_get(im->desc, "name"));
	json_t *vm = json_pack(
		"{s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:s,s:{s:s},s:s,s:s,s:s,s:s,s:{s:s}}",
		"name_label", name, "name_description", "Imported from a disk image",
		"memory_static_max", mem, "memory_dynamic_max", mem, "memory_dynamic_min", mem,
		"memory_static_min", mem, "VCPUs_max", vcpus, "VCPUs_at_startup", vcpus,
		"HVM_boot_policy", "BIOS order", "HVM_boot_params", "order", "c", "domain_type",
		"hvm", "actions_after_shutdown", "destroy", "actions_after_reboot", "restart",
		"actions_after_crash", "restart", "other_config", "import-format", im->format);
	json_t *pv = json_object_get(im->desc, "pv");
	if (pv) { /* P2V: direct boot of the guest's kernel, root on the virtio disk */
		json_object_set_new(vm, "PV_kernel", json_incref(json_object_get(pv, "kernel")));
		json_t *rd = json_object_get(pv, "ramdisk");
		json_object_set_new(vm, "PV_ramdisk", rd ? json_incref(rd) : json_string(""));
		json_object_set_new(vm, "PV_args", json_incref(json_object_get(pv, "args")));
		json_object_set_new(vm, "domain_type", json_string("pv"));
		json_object_set_new(vm, "name_description", json_string("Converted by P2V"));
	}
	return obj("VM", "Ref:0", vm);
}

static json_t *build_header(struct imp *im)
{
	json_t *objects = json_array();
	json_array_append_new(objects, vm_object(im));
	size_t i;
	json_t *d;
	json_array_foreach(json_object_get(im->desc, "images"), i, d) {
		XN_AUTOFREE char *vbd = xn_asprintf("Ref:vbd%zu", i);
		XN_AUTOFREE char *vdi = xn_asprintf("Ref:vdi%zu", i);
		XN_AUTOFREE char *dev = xn_asprintf("%zu", i);
		XN_AUTOFREE char *label = xn_asprintf("%s disk %zu", im->name ? im->name : "imported", i);
		json_array_append_new(objects, obj("VBD", vbd, json_pack(
			"{s:s,s:s,s:s,s:b,s:s,s:s}", "VM", "Ref:0", "VDI", vdi, "userdevice", dev,
			"bootable", i == 0, "mode", "RW", "type", "Disk")));
		json_array_append_new(objects, obj("VDI", vdi, json_pack(
			"{s:s,s:O,s:s}", "name_label", label, "virtual_size",
			json_object_get(d, "capacity"), "type", "user")));
	}
	json_array_foreach(json_object_get(im->desc, "nics"), i, d) {
		XN_AUTOFREE char *vif = xn_asprintf("Ref:vif%zu", i);
		XN_AUTOFREE char *net = xn_asprintf("Ref:net%zu", i);
		XN_AUTOFREE char *dev = xn_asprintf("%zu", i);
		json_array_append_new(objects, obj("VIF", vif, json_pack(
			"{s:s,s:s,s:s,s:s}", "VM", "Ref:0", "network", net, "device", dev, "MAC", "")));
		json_array_append_new(objects, obj("network", net, json_pack(
			"{s:O}", "name_label", json_object_get(d, "network"))));
	}
	return json_pack("{s:{s:i},s:o}", "version", "export_vsn", XN_XVA_EXPORT_VSN, "objects",
			 objects);
}

/* ---- the loop's steps ------------------------------------------------------------ */

static void converted(struct imp *im)
{
	im->vm = xn_xva_plan_commit(im->plan, &im->err);
	if (im->vm)
		xn_sr_update_sizes(im->h, im->sr);
}

static void image_made(void *ud, xn_error *err)
{
	struct imp *im = ud;
	im->busy--;
	if (err)
		fail(im, err);
	bool last = im->busy == 0;
	if (last && !im->err)
		run_step(im, convert, converted);
	maybe_end(im);
}

static void inspected(struct imp *im)
{
	json_t *header = build_header(im);
	im->plan = xn_xva_plan_new(im->h, header, im->sr, false, false, &im->err);
	json_decref(header);
	if (!im->plan)
		return;
	im->locs = xn_strv_new();
	im->convert = json_array();
	json_t *images = json_object_get(im->desc, "images");
	for (size_t i = 0; i < xn_xva_plan_ndisks(im->plan); i++) {
		int64_t size;
		const char *id = xn_xva_plan_disk(im->plan, i, &size);
		json_t *d = json_array_get(images, strtoul(id + strlen("Ref:vdi"), NULL, 10));
		XN_AUTOFREE char *loc = xn_uuid_new();
		XN_AUTOFREE char *dst = xn_location_url(im->h, im->sr, loc);
		json_array_append_new(im->convert, json_pack("{s:O,s:O,s:s}", "src",
							     json_object_get(d, "path"), "format",
							     json_object_get(d, "format"), "dst", dst));
		xn_strv_push(&im->locs, loc);
		xn_xva_plan_set_location(im->plan, i, loc);
		xn_storage_hold(im->h, im->sr, loc);
		im->busy++;
		xn_image_create(im->h, im->sr, loc, size, image_made, im);
	}
	if (xn_xva_plan_ndisks(im->plan) == 0)
		run_step(im, convert, converted);
}

static void spooled(struct imp *im)
{
	if (im->fd >= 0) {
		uv_fs_t req;
		uv_fs_close(NULL, &req, im->fd, NULL);
		uv_fs_req_cleanup(&req);
		im->fd = -1;
	}
	run_step(im, inspect, inspected);
}

/* The end, once nothing runs: clean up, settle the task, answer. */
static void maybe_end(struct imp *im)
{
	if (im->busy > 0 || im->answered || (!im->body_done && !im->err))
		return;
	im->answered = true;
	if (im->fd >= 0) {
		uv_fs_t req;
		uv_fs_close(NULL, &req, im->fd, NULL);
		uv_fs_req_cleanup(&req);
	}
	if (im->err)
		xn_info("import_image: %s", im->err->message);
	for (size_t i = 0; im->locs && im->locs[i]; i++) {
		if (im->err)
			xn_image_remove(im->h, im->sr, im->locs[i]);
		xn_storage_release(im->h, im->sr, im->locs[i]);
	}
	if (im->err && im->locs)
		xn_sr_update_sizes(im->h, im->sr);
	XN_AUTOERR xn_error *rerr = NULL;
	if (im->dir && xn_rm_rf(im->dir, &rerr) < 0)
		xn_warn("import_image: %s", rerr->message);
	if (im->err && im->boot_dir)
		xn_rm_rf(im->boot_dir, NULL);
	if (im->task)
		xn_xfer_finish_vm(im->h, im->req, im->task, im->err, im->vm);
	else if (im->req)
		xn_xfer_answer_error(im->req, NULL, im->err);
	imp_free(im);
}

/* ---- the body into the spool file ------------------------------------------------ */

static void written(uv_fs_t *fs)
{
	struct wreq *w = (struct wreq *)fs;
	struct imp *im = w->im;
	im->busy--;
	im->waiting -= (int64_t)w->len;
	if (fs->result < 0 && !im->err) {
		xn_error *err = NULL;
		xn_fail_errno(&err, (int)-fs->result, "cannot write '%s'", im->spool);
		fail(im, err);
	}
	uv_fs_req_cleanup(fs);
	free(w->buf);
	free(w);
	if (im->paused && im->req && !im->body_done && im->waiting < MAX_WAITING / 4) {
		im->paused = false;
		xn_http_body_read(im->req, true, NULL);
	}
	if (im->body_done && im->busy == 0 && !im->err && !im->desc)
		spooled(im);
	maybe_end(im);
}

static void on_body(void *ud, const char *buf, size_t len)
{
	struct imp *im = ud;
	if (im->err || im->body_done)
		return;
	struct wreq *w = xn_calloc(1, sizeof(*w));
	w->im = im;
	w->buf = xn_malloc(len);
	memcpy(w->buf, buf, len);
	w->len = len;
	uv_buf_t b = uv_buf_init(w->buf, (unsigned)len);
	im->busy++;
	im->waiting += (int64_t)len;
	uv_fs_write(im->h->loop, &w->fs, im->fd, &b, 1, im->received, written);
	im->received += (int64_t)len;
	if (im->waiting >= MAX_WAITING && !im->paused && im->req) {
		im->paused = true;
		xn_http_body_read(im->req, false, NULL);
	}
}

static void on_body_end(void *ud)
{
	struct imp *im = ud;
	im->body_done = true;
	if (im->busy == 0 && !im->err)
		spooled(im);
	maybe_end(im);
}

static void on_gone(void *ud)
{
	struct imp *im = ud;
	im->req = NULL;
	fail(im, xn_xfer_cut_short(im->received));
	maybe_end(im);
}

/* ---- the request -------------------------------------------------------------- */

static int prepare(struct imp *im, xn_error **err)
{
	static const char *const formats[] = {"ova", "raw", "qcow2", "vhd", "vmdk", "rootfs", NULL};
	const char *f = xn_http_req_query(im->req, "format");
	size_t i = 0;
	while (formats[i] && !xn_streq(formats[i], f))
		i++;
	if (!formats[i])
		return xn_fail(err, "VDI_INCOMPATIBLE_TYPE", "", f ? f : "", NULL);
	im->format = xn_strdup(f);
	const char *name = xn_http_req_query(im->req, "name");
	im->name = name && *name ? xn_strdup(name) : NULL;
	int role = xn_xfer_role(im->h, im->req, err);
	if (role < 0)
		return -1;
	if (role < XN_ROLE_VM_ADMIN)
		return xn_fail(err, "RBAC_PERMISSION_DENIED", "http/put_import_image",
			       "the role of this session does not allow the call", NULL);
	if (!(im->sr = xn_import_sr(im->h, im->req, err)))
		return -1;
	XN_AUTOFREE char *id = xn_uuid_new();
	im->dir = xn_asprintf("%s/transfer/import-%s", im->h->data_dir, id);
	im->spool = xn_asprintf("%s/upload", im->dir);
	im->boot_dir = xn_asprintf("%s/boot/p2v-%s", im->h->data_dir, id);
	if (xn_mkdir_p(im->dir, 0700, err) < 0)
		return -1;
	im->fd = open(im->spool, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (im->fd < 0)
		return xn_fail_errno(err, errno, "cannot create '%s'", im->spool);
	im->task = xn_xfer_task(im->h, im->req, "import", err);
	return im->task ? 0 : -1;
}

static void handle(void *ud, xn_http_req *req)
{
	struct imp *im = xn_calloc(1, sizeof(*im));
	im->h = ud;
	im->req = req;
	im->fd = -1;
	xn_error *err = NULL;
	if (prepare(im, &err) < 0) {
		fail(im, err);
		maybe_end(im);
		return;
	}
	struct xn_http_stream_cb cb = {.data = on_body, .end = on_body_end, .gone = on_gone,
				       .ud = im};
	xn_http_req_stream(req, &cb);
	XN_AUTOFREE char *hdr = xn_xfer_task_header(im->task);
	xn_http_body_read(req, true, hdr);
}

void xn_vm_import_image_register(xn_host *h)
{
	xn_api_route_stream(h->api, "PUT", "/import_image", handle, h);
}
