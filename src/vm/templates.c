/* templates.c: the built-in templates, created on first start from the
 * images `make` built (images/tiny-linux): the disk is imported into the
 * local SR, kernel and initrd copied under DATA/boot, and a template VM
 * record points at them. */
#include "vm/vm.h"

#include <string.h>

#include "storage/storage.h"
#include "util/fs.h"
#include "util/log.h"

#define MiB (1024LL * 1024)

static bool have_builtin(xn_host *h, const char *id)
{
	const char *k;
	json_t *v;
	json_object_foreach(xn_db_all(h->db, xn_model_class("VM")), k, v) {
		json_t *oc = json_object_get(v, "other_config");
		if (xn_streq(json_string_value(json_object_get(oc, "xenia-builtin")), id))
			return true;
	}
	return false;
}

static int tiny_linux(xn_host *h, xn_error **err)
{
	XN_AUTOFREE char *src = xn_asprintf("%s/tiny-linux", h->images_dir);
	XN_AUTOFREE char *mpath = xn_asprintf("%s/manifest.json", src);
	json_t *m = json_load_file(mpath, 0, NULL);
	if (!m) {
		xn_warn("templates: no '%s' (run make): template 'Tiny Linux' not created", mpath);
		return 0;
	}
	const char *kernel = json_string_value(json_object_get(m, "kernel"));
	const char *ramdisk = json_string_value(json_object_get(m, "ramdisk"));
	const char *disk = json_string_value(json_object_get(m, "disk"));
	const char *args = json_string_value(json_object_get(m, "args"));
	XN_AUTOFREE char *boot = xn_asprintf("%s/boot/tiny-linux", h->data_dir);
	XN_AUTOFREE char *k_src = xn_asprintf("%s/%s", src, kernel ? kernel : "vmlinuz");
	XN_AUTOFREE char *r_src = xn_asprintf("%s/%s", src, ramdisk ? ramdisk : "initrd.img");
	XN_AUTOFREE char *d_src = xn_asprintf("%s/%s", src, disk ? disk : "disk.qcow2");
	XN_AUTOFREE char *k_dst = xn_asprintf("%s/vmlinuz", boot);
	XN_AUTOFREE char *r_dst = xn_asprintf("%s/initrd.img", boot);
	XN_AUTOFREE char *cmdline = xn_strdup(args ? args : "console=ttyS0 root=/dev/vda2 quiet");
	json_decref(m);
	if (xn_mkdir_p(boot, 0755, err) < 0 || xn_copy_file(k_src, k_dst, 0644, err) < 0 ||
	    xn_copy_file(r_src, r_dst, 0644, err) < 0)
		return -1;
	xn_changes *cs = xn_changes_new(h->db);
	const char *vdi = xn_vdi_import_sync(h, cs, h->local_sr_ref, d_src, "Tiny Linux disk", err);
	if (!vdi) {
		xn_changes_free(cs);
		return -1;
	}
	XN_AUTOFREE char *vdi_ref = xn_strdup(vdi);
	/* The template's disk is the read-only base every install overlays. */
	xn_changes_set(cs, vdi_ref, "read_only", json_true());
	json_t *rec = json_pack(
		"{s:s,s:s,s:b,s:b,s:I,s:I,s:I,s:I,s:i,s:i,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:{s:s},s:{}}",
		"name_label", "Tiny Linux", "name_description",
		"A small Linux (Debian kernel, busybox) that boots to a root shell on the "
		"serial console in seconds",
		"is_a_template", 1, "is_default_template", 1, "memory_static_max", 128 * MiB,
		"memory_dynamic_max", 128 * MiB, "memory_dynamic_min", 128 * MiB,
		"memory_static_min", 64 * MiB, "VCPUs_max", 1, "VCPUs_at_startup", 1,
		"actions_after_shutdown", "destroy", "actions_after_reboot", "restart",
		"actions_after_crash", "restart", "PV_kernel", k_dst, "PV_ramdisk", r_dst,
		"PV_args", cmdline, "domain_type", "pv", "other_config", "xenia-builtin",
		"tiny-linux", "platform");
	const char *vm = xn_changes_add(cs, xn_model_class("VM"), NULL, rec);
	XN_AUTOFREE char *vm_ref = xn_strdup(vm);
	xn_changes_add(cs, xn_model_class("VBD"), NULL,
		       json_pack("{s:s,s:s,s:s,s:b,s:s,s:s,s:b}", "VM", vm_ref, "VDI", vdi_ref,
				 "userdevice", "0", "bootable", 1, "mode", "RW", "type", "Disk",
				 "unpluggable", 0));
	if (xn_db_commit(h->db, cs, err) < 0)
		return -1;
	xn_info("templates: created 'Tiny Linux'");
	return 0;
}

int xn_templates_init(xn_host *h, xn_error **err)
{
	if (!have_builtin(h, "tiny-linux") && tiny_linux(h, err) < 0)
		return -1;
	return 0;
}
