/* vm_provision.c: VM.provision, the second half of `xe vm-install`.
 *
 * A template says which disks a new VM gets in other_config:disks, as
 * xapi writes it:
 *
 *   <provision><disk device="0" size="8589934592" sr="<SR uuid>"
 *                    bootable="true" type="system"/></provision>
 *
 * Provisioning makes one empty thin image per <disk> (an empty sr means
 * the pool's default SR), then one commit adds their VDIs and VBDs and
 * drops the key, so that a VM is provisioned once. A bad spec (unknown
 * SR: UUID_INVALID, as in xapi; a size that is no number; a device the
 * VM already uses) fails before anything is made; images made before a
 * failure are removed again. A template that installs its system
 * (other_config:xenia-install=debootstrap, "Debian 12") has it written
 * into the first disk before the commit (debian_install.c). */
#include "vm/vm_runtime.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "storage/storage.h"
#include "vm/debian_install.h"
#include "util/log.h"
#include "util/uuid.h"

struct disk_spec {
	char *device, *sr, *location, *type;
	int64_t size;
	bool bootable;
};

struct provision {
	xn_call *call;
	xn_host *h;
	char *vm;
	struct disk_spec *disks;
	size_t n, made;
	char *password;   /* root's, when Debian was installed into the disk */
};

static void provision_free(struct provision *p)
{
	for (size_t i = 0; i < p->n; i++) {
		if (p->disks[i].location)
			xn_storage_release(p->h, p->disks[i].sr, p->disks[i].location);
		free(p->disks[i].device);
		free(p->disks[i].sr);
		free(p->disks[i].location);
		free(p->disks[i].type);
	}
	free(p->disks);
	free(p->vm);
	free(p->password);
	free(p);
}

/* The attribute name of node as a new string ("" if absent). */
static char *attr(xmlNode *node, const char *name)
{
	xmlChar *v = xmlGetProp(node, (const xmlChar *)name);
	char *s = xn_strdup(v ? (const char *)v : "");
	xmlFree(v);
	return s;
}

/* One <disk>: checked and resolved into d. */
static int parse_disk(struct provision *p, xmlNode *node, struct disk_spec *d, xn_error **err)
{
	xn_host *h = p->h;
	d->device = attr(node, "device");
	XN_AUTOFREE char *size = attr(node, "size");
	XN_AUTOFREE char *sr_uuid = attr(node, "sr");
	XN_AUTOFREE char *bootable = attr(node, "bootable");
	d->type = attr(node, "type");
	char *end = NULL;
	errno = 0;
	long long bytes = strtoll(size, &end, 10);
	if (!size[0] || *end || errno || bytes <= 0 || bytes > (long long)64 << 40)
		return xn_fail(err, "INVALID_VALUE", "other_config:disks size", size, NULL);
	d->size = (bytes + 511) / 512 * 512;
	if (xn_vm_device_free(h, p->vm, "VBDs", "userdevice", d->device, XN_VM_MAX_USERDEVICE,
			      "other_config:disks device", err) < 0)
		return -1;
	for (size_t i = 0; i < p->n && &p->disks[i] != d; i++)
		if (xn_streq(p->disks[i].device, d->device))
			return xn_fail(err, "DEVICE_ALREADY_EXISTS", d->device, NULL);
	const char *sr = NULL;
	if (sr_uuid[0]) {
		sr = xn_db_ref_by_uuid(h->db, xn_model_class("SR"), sr_uuid);
		if (!sr)
			return xn_fail(err, "UUID_INVALID", "sr", sr_uuid, NULL);
	} else {
		sr = xn_db_str(h->db, h->pool_ref, "default_SR");
		if (xn_ref_is_null(sr) || !xn_db_get(h->db, sr))
			sr = h->local_sr_ref;
	}
	const xn_sr_ops *ops = xn_sr_ops_of(h, sr);
	if (!ops || ops->read_only || strcmp(ops->content_type, "iso") == 0)
		return xn_fail(err, "SR_OPERATION_NOT_SUPPORTED", sr, NULL);
	d->sr = xn_strdup(sr);
	d->bootable = strcmp(bootable, "true") == 0;
	if (!d->type[0]) {
		free(d->type);
		d->type = xn_strdup("system");
	}
	return 0;
}

static int parse_disks(struct provision *p, const char *xml, xn_error **err)
{
	xmlDoc *doc = xmlReadMemory(xml, (int)strlen(xml), "disks.xml", NULL,
				    XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	xmlNode *root = doc ? xmlDocGetRootElement(doc) : NULL;
	if (!root || strcmp((const char *)root->name, "provision") != 0) {
		xmlFreeDoc(doc);
		return xn_fail(err, "INVALID_VALUE", "other_config:disks", xml, NULL);
	}
	size_t n = 0;
	for (xmlNode *c = root->children; c; c = c->next)
		n += c->type == XML_ELEMENT_NODE;
	p->disks = xn_calloc(n ? n : 1, sizeof(*p->disks));
	int rc = 0;
	for (xmlNode *c = root->children; c && rc == 0; c = c->next) {
		if (c->type != XML_ELEMENT_NODE)
			continue;
		if (strcmp((const char *)c->name, "disk") != 0) {
			rc = xn_fail(err, "INVALID_VALUE", "other_config:disks",
				     (const char *)c->name, NULL);
			break;
		}
		p->n++;
		rc = parse_disk(p, c, &p->disks[p->n - 1], err);
	}
	xmlFreeDoc(doc);
	return rc;
}

static void provision_fail(struct provision *p, xn_error *err)
{
	for (size_t i = 0; i < p->made; i++)
		xn_image_remove(p->h, p->disks[i].sr, p->disks[i].location);
	xn_call_fail(p->call, err);
	provision_free(p);
}

static void commit_disks(struct provision *p)
{
	xn_host *h = p->h;
	xn_changes *cs = xn_changes_new(h->db);
	const char *name = xn_db_str(h->db, p->vm, "name_label");
	for (size_t i = 0; i < p->n; i++) {
		struct disk_spec *d = &p->disks[i];
		XN_AUTOFREE char *label = xn_asprintf("%s %s", name, d->device);
		const char *vdi = xn_changes_add(
			cs, xn_model_class("VDI"), NULL,
			json_pack("{s:s,s:s,s:s,s:s,s:I,s:s,s:b,s:{}}", "uuid", d->location,
				  "location", d->location, "name_label", label, "SR", d->sr,
				  "virtual_size", (json_int_t)d->size, "type",
				  strcmp(d->type, "system") == 0 ? "system" : "user", "managed", 1,
				  "sm_config"));
		xn_changes_add(cs, xn_model_class("VBD"), NULL,
			       json_pack("{s:s,s:s,s:s,s:b,s:s,s:s,s:b}", "VM", p->vm, "VDI", vdi,
					 "userdevice", d->device, "bootable", d->bootable, "mode",
					 "RW", "type", "Disk", "unpluggable", 1));
	}
	json_t *oc = json_object_get(xn_changes_edit(cs, p->vm), "other_config");
	json_object_del(oc, "disks");
	if (p->password) {
		json_object_del(oc, "xenia-install");
		json_object_set_new(oc, "install-root-password", json_string(p->password));
	}
	xn_error *err = NULL;
	if (xn_db_commit(h->db, cs, &err) < 0) {
		provision_fail(p, err);
		return;
	}
	for (size_t i = 0; i < p->n; i++)
		xn_sr_update_sizes(h, p->disks[i].sr);
	xn_info("vm %s: provisioned %zu disk%s", xn_db_str(h->db, p->vm, "uuid"), p->n,
		p->n == 1 ? "" : "s");
	xn_call_return(p->call, NULL);
	provision_free(p);
}

static void installed(void *ud, xn_error *err)
{
	struct provision *p = ud;
	if (err)
		provision_fail(p, err);
	else
		commit_disks(p);
}

/* The Debian template: the system goes into the first disk, with root's
 * password from other_config:install-root-password or a new random one
 * (recorded there for the administrator's first login). */
static void install_debian(struct provision *p)
{
	const char *given = json_string_value(
		json_object_get(xn_db_field(p->h->db, p->vm, "other_config"), "install-root-password"));
	if (given && given[0]) {
		p->password = xn_strdup(given);
	} else {
		/* 16 random hex digits, from two random uuids */
		XN_AUTOFREE char *a = xn_uuid_new();
		XN_AUTOFREE char *b = xn_uuid_new();
		p->password = xn_asprintf("%.8s%.8s", a, b);
	}
	XN_AUTOFREE char *target = xn_location_url(p->h, p->disks[0].sr, p->disks[0].location);
	xn_debian_install(p->h, p->vm, p->call->task, target, p->password, installed, p);
}

static void made_next(void *ud, xn_error *err)
{
	struct provision *p = ud;
	if (err) {
		p->made--; /* the failed image removed itself */
		provision_fail(p, err);
		return;
	}
	if (p->made == p->n) {
		if (p->n > 0 && xn_debian_install_wanted(p->h, p->vm))
			install_debian(p);
		else
			commit_disks(p);
		return;
	}
	struct disk_spec *d = &p->disks[p->made++];
	xn_image_create(p->h, d->sr, d->location, d->size, made_next, p);
}

static void vm_provision(xn_call *c)
{
	xn_host *h = c->host;
	const char *vm = xn_call_arg_str(c, 0);
	xn_error *err = NULL;
	if (xn_vm_check_op(vm, xn_db_get(h->db, vm), "provision", &err) < 0) {
		xn_call_fail(c, err);
		return;
	}
	const char *xml = json_string_value(
		json_object_get(xn_db_field(h->db, vm, "other_config"), "disks"));
	if (!xml || !xml[0]) {
		xn_call_return(c, NULL);
		return;
	}
	struct provision *p = xn_calloc(1, sizeof(*p));
	p->call = c;
	p->h = h;
	p->vm = xn_strdup(vm);
	if (parse_disks(p, xml, &err) < 0) {
		xn_call_fail(c, err);
		provision_free(p);
		return;
	}
	for (size_t i = 0; i < p->n; i++) {
		p->disks[i].location = xn_uuid_new();
		xn_storage_hold(h, p->disks[i].sr, p->disks[i].location);
	}
	made_next(p, NULL);
}

const xn_api_method xn_vm_provision_methods[] = {
	{"VM.provision", vm_provision},
	{NULL, NULL},
};
