/* templates.c: the built-in templates, each made on start when no VM
 * record carries its other_config:xenia-builtin=<id>.
 *
 *   "Tiny Linux": from the images `make` built (images/tiny-linux): the
 *     disk is imported into the local SR, kernel and initrd copied under
 *     DATA/boot, and a template VM record points at them.
 *   "Other install media": an HVM guest that boots by BIOS from its CD
 *     drive (empty in the template; insert an ISO before the first start)
 *     and then from its disk, an empty one made by VM.provision from
 *     other_config:disks; VGA console.
 *   "Generic cloud image": an HVM guest booting its disk by BIOS, into
 *     which the administrator imports a cloud image (xe vdi-import), with
 *     a cloud-init NoCloud seed made at each start (cloud_init.c).
 *   "Debian 12": an HVM guest booting its disk by BIOS, the disk filled
 *     at install by debootstrap (debian_install.c). */
#include "vm/vm.h"

#include <string.h>

#include "storage/storage.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/uuid.h"

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

/* What every built-in template's VM record has: one vCPU, memory of
 * mem (static_min: mem_min), restart on reboot or crash, and its
 * xenia-builtin mark. */
static json_t *template_record(const char *name, const char *desc, const char *id, long long mem,
			       long long mem_min)
{
	return json_pack("{s:s,s:s,s:b,s:b,s:I,s:I,s:I,s:I,s:i,s:i,s:s,s:s,s:s,s:{s:s},s:{}}",
			 "name_label", name, "name_description", desc, "is_a_template", 1,
			 "is_default_template", 1, "memory_static_max", (json_int_t)mem,
			 "memory_dynamic_max", (json_int_t)mem, "memory_dynamic_min",
			 (json_int_t)mem, "memory_static_min", (json_int_t)mem_min, "VCPUs_max", 1,
			 "VCPUs_at_startup", 1, "actions_after_shutdown", "destroy",
			 "actions_after_reboot", "restart", "actions_after_crash", "restart",
			 "other_config", "xenia-builtin", id, "platform");
}

/* rec gets more's fields; more is consumed. */
static void merge(json_t *rec, json_t *more)
{
	json_object_update(rec, more);
	json_decref(more);
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
	json_t *rec = template_record(
		"Tiny Linux",
		"A small Linux (Debian kernel, busybox) that boots to a root shell on the "
		"serial console in seconds",
		"tiny-linux", 128 * MiB, 64 * MiB);
	merge(rec, json_pack("{s:s,s:s,s:s,s:s}", "PV_kernel", k_dst, "PV_ramdisk", r_dst,
			     "PV_args", cmdline, "domain_type", "pv"));
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

/* One provisioned disk in xapi's other_config:disks form (the SR is the
 * pool's default unless vm-install says otherwise). Caller frees. */
static char *provision_xml(long long size)
{
	return xn_asprintf("<provision><disk device=\"0\" size=\"%lld\" sr=\"\" "
			   "bootable=\"true\" type=\"system\"/></provision>",
			   size);
}

/* An empty CD drive on userdevice 3, as xapi gives HVM templates. */
static void add_empty_cd(xn_changes *cs, const char *vm)
{
	xn_changes_add(cs, xn_model_class("VBD"), NULL,
		       json_pack("{s:s,s:s,s:s,s:b,s:s,s:s,s:b,s:b}", "VM", vm, "VDI",
				 XN_NULL_REF, "userdevice", "3", "bootable", 0, "mode", "RO",
				 "type", "CD", "empty", 1, "unpluggable", 1));
}

/* Record rec (consumed) as an HVM template booting by BIOS in order, with
 * one disk of disk_size made at install, and with cd an empty CD drive. */
static int hvm_template(xn_host *h, json_t *rec, const char *order, long long disk_size,
			bool cd, xn_error **err)
{
	XN_AUTOFREE char *name = xn_strdup(json_string_value(json_object_get(rec, "name_label")));
	XN_AUTOFREE char *disks = provision_xml(disk_size);
	merge(rec, json_pack("{s:s,s:{s:s},s:s}", "HVM_boot_policy", "BIOS order",
			     "HVM_boot_params", "order", order, "domain_type", "hvm"));
	json_object_set_new(json_object_get(rec, "other_config"), "disks", json_string(disks));
	xn_changes *cs = xn_changes_new(h->db);
	XN_AUTOFREE char *vm = xn_strdup(xn_changes_add(cs, xn_model_class("VM"), NULL, rec));
	if (cd)
		add_empty_cd(cs, vm);
	if (xn_db_commit(h->db, cs, err) < 0)
		return -1;
	xn_info("templates: created '%s'", name);
	return 0;
}

static int other_install_media(xn_host *h, xn_error **err)
{
	json_t *rec = template_record(
		"Other install media",
		"Install an operating system from a CD or ISO: BIOS boot from the CD drive "
		"(insert the medium first), an empty disk, a VGA console",
		"other-install-media", 512 * MiB, 128 * MiB);
	json_object_set_new(json_object_get(rec, "other_config"), "install-methods",
			    json_string("cdrom"));
	return hvm_template(h, rec, "dc", 8192 * MiB, true, err);
}

static int generic_cloud_image(xn_host *h, xn_error **err)
{
	json_t *rec = template_record(
		"Generic cloud image",
		"A cloud image (qcow2 or raw: xe vdi-import it into the new VM's disk) booted by "
		"BIOS, with a cloud-init NoCloud seed from other-config:cloud-init-hostname, "
		"cloud-init-ssh-key and cloud-init-user-data",
		"generic-cloud-image", 1024 * MiB, 256 * MiB);
	json_object_set_new(json_object_get(rec, "other_config"), "xenia-cloud-init",
			    json_string("nocloud"));
	return hvm_template(h, rec, "c", 10240 * MiB, false, err);
}

static int debian_12(xn_host *h, xn_error **err)
{
	json_t *rec = template_record(
		"Debian 12",
		"Debian 12 (bookworm), installed by debootstrap from a Debian mirror into the "
		"new disk: systemd, the cloud kernel, the QEMU guest agent, DHCP, a serial "
		"console; root's password lands in other-config:install-root-password",
		"debian-12", 1024 * MiB, 256 * MiB);
	json_t *oc = json_object_get(rec, "other_config");
	json_object_set_new(oc, "xenia-install", json_string("debootstrap"));
	json_object_set_new(oc, "install-distribution", json_string("bookworm"));
	return hvm_template(h, rec, "c", 8192 * MiB, false, err);
}

static const struct builtin {
	const char *id;
	int (*make)(xn_host *h, xn_error **err);
} builtins[] = {
	{"tiny-linux", tiny_linux},
	{"other-install-media", other_install_media},
	{"generic-cloud-image", generic_cloud_image},
	{"debian-12", debian_12},
};

int xn_templates_init(xn_host *h, xn_error **err)
{
	for (size_t i = 0; i < sizeof(builtins) / sizeof(builtins[0]); i++)
		if (!have_builtin(h, builtins[i].id) && builtins[i].make(h, err) < 0)
			return -1;
	return 0;
}
