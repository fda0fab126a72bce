/* disk_probe.c: checks of outside disk images (disk_probe.h).
 *
 * The format is named by the caller or read from the magic bytes, never
 * left to QEMU's own probing (which would let a raw image that starts
 * like a qcow2 header be read as one). `qemu-img info --output=json` with
 * that format then says what the image refers to. */
#include "storage/disk_probe.h"

#include <fcntl.h>
#include <jansson.h>
#include <string.h>
#include <unistd.h>

#include "util/proc.h"

static int refuse(xn_error **err, const char *why, const char *path)
{
	XN_AUTOFREE char *msg = xn_asprintf("disk image '%s': %s", path, why);
	return xn_fail(err, "IMPORT_ERROR_GENERIC", msg, NULL);
}

/* The format the first and last bytes say; "vmdk-descriptor" for a text vmdk. */
static const char *magic_format(const char *path)
{
	char head[32] = {0}, tail[8] = {0};
	XN_AUTOCLOSE int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || pread(fd, head, sizeof(head), 0) < 0)
		return "raw";
	off_t end = lseek(fd, 0, SEEK_END);
	if (end >= 512 && pread(fd, tail, sizeof(tail), end - 512) < 0)
		return "raw";
	if (memcmp(head, "QFI\xfb", 4) == 0)
		return "qcow2";
	if (memcmp(head, "KDMV", 4) == 0 || memcmp(head, "COWD", 4) == 0)
		return "vmdk";
	if (strncmp(head, "# Disk DescriptorFile", 21) == 0)
		return "vmdk-descriptor";
	if (memcmp(head, "conectix", 8) == 0 || memcmp(tail, "conectix", 8) == 0)
		return "vpc";
	return "raw";
}

static const char *qemu_format(const char *want, const char *path)
{
	static const char *const names[][2] = {{"raw", "raw"}, {"qcow2", "qcow2"}, {"vhd", "vpc"},
					       {"vpc", "vpc"}, {"vmdk", "vmdk"}};
	if (!want || !*want)
		return magic_format(path);
	for (size_t i = 0; i < XN_ARRAY_LEN(names); i++)
		if (strcmp(want, names[i][0]) == 0)
			return names[i][1];
	return NULL;
}

/* Every vmdk extent must be the file itself. */
static int check_vmdk(json_t *data, const char *path, xn_error **err)
{
	size_t i;
	json_t *e;
	json_t *extents = json_object_get(data, "extents");
	if (json_array_size(extents) == 0)
		return refuse(err, "a vmdk without extents", path);
	json_array_foreach(extents, i, e) {
		const char *f = json_string_value(json_object_get(e, "filename"));
		if (!xn_streq(f, path)) {
			XN_AUTOFREE char *why = xn_asprintf(
				"a vmdk extent refers to another file ('%s'): refused", f ? f : "");
			return refuse(err, why, path);
		}
	}
	return 0;
}

static int check_info(json_t *info, const char *fmt, const char *path, xn_error **err)
{
	json_t *data = json_object_get(json_object_get(info, "format-specific"), "data");
	if (json_object_get(info, "backing-filename") || json_object_get(info, "full-backing-filename"))
		return refuse(err, "a qcow2 with a backing file: refused (import a whole image)", path);
	if (strcmp(fmt, "qcow2") == 0 && json_object_get(data, "data-file"))
		return refuse(err, "a qcow2 with an external data file: refused", path);
	if (strcmp(fmt, "vmdk") == 0)
		return check_vmdk(data, path, err);
	return 0;
}

const char *xn_disk_probe(const char *path, const char *want, int64_t *size, xn_error **err)
{
	const char *fmt = qemu_format(want, path);
	if (!fmt) {
		xn_fail(err, "VDI_INCOMPATIBLE_TYPE", "", want, NULL);
		return NULL;
	}
	if (strcmp(fmt, "vmdk-descriptor") == 0 ||
	    (strcmp(fmt, "vmdk") == 0 && strcmp(magic_format(path), "vmdk") != 0)) {
		refuse(err, "a vmdk descriptor naming other files: only monolithic sparse or "
			    "stream-optimized vmdk images are imported", path);
		return NULL;
	}
	char *argv[] = {"qemu-img", "info", "--output=json", "-f", (char *)fmt, (char *)path, NULL};
	XN_AUTOFREE char *out = NULL;
	XN_AUTOERR xn_error *qerr = NULL;
	if (xn_run_sync(argv, &out, &qerr) < 0) {
		refuse(err, qerr->message, path);
		return NULL;
	}
	json_t *info = json_loads(out, 0, NULL);
	json_int_t vsize = json_integer_value(json_object_get(info, "virtual-size"));
	int rc = info && vsize > 0 ? check_info(info, fmt, path, err)
				   : refuse(err, "qemu-img cannot tell its size", path);
	json_decref(info);
	if (rc < 0)
		return NULL;
	*size = vsize;
	return fmt;
}
