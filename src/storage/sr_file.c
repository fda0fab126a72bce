/* sr_file.c: the "file" SR driver: a local directory of qcow2 images
 * named <location>.qcow2 (storage.h). The directory is the PBD's
 * device_config "path". */
#include "storage/storage.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "util/proc.h"

char *xn_sr_file_dir(xn_host *h, const char *sr_ref)
{
	const char *k;
	json_t *pbd;
	json_t *pbds = xn_db_field(h->db, sr_ref, "PBDs");
	size_t i;
	json_array_foreach(pbds, i, pbd) {
		k = json_string_value(pbd);
		json_t *cfg = xn_db_field(h->db, k, "device_config");
		const char *path = json_string_value(json_object_get(cfg, "path"));
		if (path)
			return xn_strdup(path);
	}
	return xn_asprintf("%s/sr/%s", h->data_dir, xn_db_str(h->db, sr_ref, "uuid"));
}

/* Disk images are "<location>.qcow2"; other files (suspend images,
 * "<uuid>.state") carry their extension in the location. */
static char *file_path(xn_host *h, const char *sr_ref, const char *location)
{
	XN_AUTOFREE char *dir = xn_sr_file_dir(h, sr_ref);
	return xn_asprintf("%s/%s%s", dir, location, strchr(location, '.') ? "" : ".qcow2");
}

struct img_op {
	xn_storage_done done;
	void *ud;
	char *what;
};

static void img_done(void *ud, int status, const char *output)
{
	struct img_op *op = ud;
	xn_error *err = NULL;
	if (status != 0)
		xn_fail(&err, "SR_BACKEND_FAILURE", "qemu-img", op->what, output, NULL);
	op->done(op->ud, err);
	free(op->what);
	free(op);
}

static void run_img(xn_host *h, char **argv, const char *what, xn_storage_done done, void *ud)
{
	struct img_op *op = xn_calloc(1, sizeof(*op));
	op->done = done;
	op->ud = ud;
	op->what = xn_strdup(what);
	xn_error *err = NULL;
	if (xn_run(h->loop, argv, img_done, op, &err) < 0) {
		free(op->what);
		free(op);
		done(ud, err);
	}
}

static void file_clone(xn_host *h, const char *sr_ref, const char *src, const char *location,
		       int64_t size, xn_storage_done done, void *ud)
{
	XN_AUTOFREE char *to = file_path(h, sr_ref, location);
	/* The backing file is named relative to the overlay, so the SR's
	 * directory can move. -u: the source may be open in a running VM. */
	XN_AUTOFREE char *backing = xn_asprintf("%s.qcow2", src);
	XN_AUTOFREE char *sz = xn_asprintf("%lld", (long long)size);
	char *argv[] = {"qemu-img", "create", "-q", "-f", "qcow2", "-u", "-F", "qcow2",
			"-b", backing, to, sz, NULL};
	run_img(h, argv, "clone", done, ud);
}

static void file_create(xn_host *h, const char *sr_ref, const char *location, int64_t size,
			xn_storage_done done, void *ud)
{
	XN_AUTOFREE char *to = file_path(h, sr_ref, location);
	XN_AUTOFREE char *sz = xn_asprintf("%lld", (long long)size);
	char *argv[] = {"qemu-img", "create", "-q", "-f", "qcow2", to, sz, NULL};
	run_img(h, argv, "create", done, ud);
}

static int file_destroy(xn_host *h, const char *sr_ref, const char *location, xn_error **err)
{
	XN_AUTOFREE char *path = file_path(h, sr_ref, location);
	if (unlink(path) < 0 && errno != ENOENT)
		return xn_fail(err, "SR_BACKEND_FAILURE", "unlink", path, strerror(errno), NULL);
	return 0;
}

const xn_sr_ops xn_sr_file_ops = {
	.type = "file",
	.vdi_path = file_path,
	.vdi_clone = file_clone,
	.vdi_create = file_create,
	.vdi_destroy = file_destroy,
};
