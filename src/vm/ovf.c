/* ovf.c: OVF descriptors read with libxml2 (ovf.h).
 *
 * One pass checks every element: those in the DMTF namespaces (the
 * envelope, CIM rasd/vssd/sasd/epasd) are known, except OVF sections
 * this reader has not heard of; any other element is an extension.
 * Unknown or extension elements that are not ovf:required="false" refuse
 * the descriptor; optional ones are skipped with what they contain. A
 * second walk reads References, DiskSection, NetworkSection and the one
 * VirtualSystem's VirtualHardwareSection. Entities are not expanded and
 * nothing is fetched from the network. */
#include "vm/ovf.h"

#include <errno.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <stdlib.h>
#include <string.h>

#define DMTF "http://schemas.dmtf.org/"
#define OVF_NS1 "http://schemas.dmtf.org/ovf/envelope/1"
#define OVF_NS2 "http://schemas.dmtf.org/ovf/envelope/2"

/* CIM resource types (DSP1041) that matter here */
enum { RT_CPU = 3, RT_MEMORY = 4, RT_NIC = 10, RT_DISK = 17 };

static const char *const known_sections[] = {
	"References", "DiskSection", "NetworkSection", "VirtualSystem",
	"VirtualSystemCollection", "VirtualHardwareSection", "OperatingSystemSection",
	"AnnotationSection", "ProductSection", "EulaSection", "StartupSection",
	"DeploymentOptionSection", "ResourceAllocationSection", "InstallSection",
	"Strings", "Info", "Name", "System", "Item", "File", "Disk", "Network",
	"Description", "Configuration", "Label", "Property", "Category", "License",
	"Product", "Vendor", "Version", "FullVersion", "ProductUrl", "VendorUrl",
	"AppUrl", "Icon", "Annotation", "Msg", "EthernetPortItem", "StorageItem",
	"Envelope", NULL};

static bool is_ovf_ns(const xmlNode *n)
{
	return n->ns && n->ns->href &&
	       (strcmp((const char *)n->ns->href, OVF_NS1) == 0 ||
		strcmp((const char *)n->ns->href, OVF_NS2) == 0);
}

static bool known(const xmlNode *n)
{
	if (!n->ns || !n->ns->href)
		return false;
	if (!is_ovf_ns(n))
		return strncmp((const char *)n->ns->href, DMTF, strlen(DMTF)) == 0;
	for (size_t i = 0; known_sections[i]; i++)
		if (strcmp((const char *)n->name, known_sections[i]) == 0)
			return true;
	return false;
}

/* An attribute in either OVF namespace, else unqualified; caller frees. */
static char *attr(const xmlNode *n, const char *name)
{
	xmlChar *v = xmlGetNsProp(n, (const xmlChar *)name, (const xmlChar *)OVF_NS1);
	if (!v)
		v = xmlGetNsProp(n, (const xmlChar *)name, (const xmlChar *)OVF_NS2);
	if (!v)
		v = xmlGetNoNsProp(n, (const xmlChar *)name);
	return (char *)v;
}

static int check_elements(const xmlNode *n, xn_error **err)
{
	for (; n; n = n->next) {
		if (n->type != XML_ELEMENT_NODE)
			continue;
		if (!known(n)) {
			XN_AUTOFREE char *req = attr(n, "required");
			if (req && strcmp(req, "false") == 0)
				continue;
			XN_AUTOFREE char *msg = xn_asprintf(
				"the OVF descriptor has a required element this host does not "
				"understand: '%s'%s%s",
				(const char *)n->name, n->ns && n->ns->href ? " in " : "",
				n->ns && n->ns->href ? (const char *)n->ns->href : "");
			return xn_fail(err, "IMPORT_ERROR_GENERIC", msg, NULL);
		}
		if (check_elements(n->children, err) < 0)
			return -1;
	}
	return 0;
}

static const xmlNode *child(const xmlNode *n, const char *name)
{
	for (const xmlNode *c = n ? n->children : NULL; c; c = c->next)
		if (c->type == XML_ELEMENT_NODE && strcmp((const char *)c->name, name) == 0)
			return c;
	return NULL;
}

static char *text_of(const xmlNode *n, const char *name)
{
	const xmlNode *c = child(n, name);
	return c ? (char *)xmlNodeGetContent(c) : NULL;
}

/* The bytes per unit of "byte * 2^20", "MegaBytes", "GB", ...; 0 if unknown. */
static int64_t unit_bytes(const char *u)
{
	if (!u || !*u || strcmp(u, "byte") == 0 || strcmp(u, "bytes") == 0)
		return 1;
	int e;
	if (sscanf(u, "byte * 2^%d", &e) == 1 && e >= 0 && e < 50)
		return (int64_t)1 << e;
	static const struct { const char *name; int64_t n; } units[] = {
		{"KiloBytes", 1LL << 10}, {"KB", 1LL << 10}, {"MegaBytes", 1LL << 20},
		{"MB", 1LL << 20},        {"GigaBytes", 1LL << 30}, {"GB", 1LL << 30},
		{"TeraBytes", 1LL << 40}, {"TB", 1LL << 40}};
	for (size_t i = 0; i < XN_ARRAY_LEN(units); i++)
		if (strcmp(u, units[i].name) == 0)
			return units[i].n;
	return 0;
}

/* n units of unit as bytes, or -1 if either is not understood. */
static int64_t to_bytes(const char *n, const char *unit)
{
	int64_t per = unit_bytes(unit);
	char *end;
	errno = 0;
	long long v = n ? strtoll(n, &end, 10) : -1;
	if (!n || errno || end == n || *end || v < 0 || per == 0 || v > INT64_MAX / per)
		return -1;
	return v * per;
}

static int bad(xn_error **err, const char *what, const char *value)
{
	XN_AUTOFREE char *msg = xn_asprintf("OVF descriptor: %s: '%s'", what, value ? value : "");
	return xn_fail(err, "IMPORT_ERROR_GENERIC", msg, NULL);
}

/* A file of the package by its id: a plain member name (no path). */
static int file_href(const xmlNode *refs, const char *id, char **href, xn_error **err)
{
	for (const xmlNode *f = refs ? refs->children : NULL; f; f = f->next) {
		if (f->type != XML_ELEMENT_NODE || strcmp((const char *)f->name, "File") != 0)
			continue;
		XN_AUTOFREE char *fid = attr(f, "id");
		if (!xn_streq(fid, id))
			continue;
		XN_AUTOFREE char *h = attr(f, "href");
		XN_AUTOFREE char *comp = attr(f, "compression");
		if (comp && *comp && strcmp(comp, "identity") != 0)
			return bad(err, "compressed disk files are not supported", comp);
		if (!h || !*h || strchr(h, '/') || strcmp(h, "..") == 0 || strcmp(h, ".") == 0)
			return bad(err, "a file reference is not a member of the package", h);
		*href = xn_steal(&h);
		return 0;
	}
	return bad(err, "a disk names a file that References does not list", id);
}

/* DiskSection's disks, in order: {"id", "file" (or null: a blank disk), "capacity"}. */
static json_t *read_disks(const xmlNode *env, xn_error **err)
{
	json_t *disks = json_array();
	const xmlNode *refs = child(env, "References");
	const xmlNode *ds = child(env, "DiskSection");
	for (const xmlNode *d = ds ? ds->children : NULL; d; d = d->next) {
		if (d->type != XML_ELEMENT_NODE || strcmp((const char *)d->name, "Disk") != 0)
			continue;
		XN_AUTOFREE char *id = attr(d, "diskId");
		XN_AUTOFREE char *cap = attr(d, "capacity");
		XN_AUTOFREE char *units = attr(d, "capacityAllocationUnits");
		XN_AUTOFREE char *ref = attr(d, "fileRef");
		XN_AUTOFREE char *href = NULL;
		int64_t bytes = to_bytes(cap, units);
		if (bytes <= 0 || !id) {
			json_decref(disks);
			bad(err, "a disk has no id or no valid capacity", cap);
			return NULL;
		}
		if (ref && file_href(refs, ref, &href, err) < 0) {
			json_decref(disks);
			return NULL;
		}
		json_array_append_new(disks, json_pack("{s:s,s:s?,s:I}", "id", id, "file", href,
						       "capacity", (json_int_t)bytes));
	}
	return disks;
}

static int read_item(const xmlNode *item, json_t *out, xn_error **err)
{
	XN_AUTOFREE char *type = text_of(item, "ResourceType");
	XN_AUTOFREE char *qty = text_of(item, "VirtualQuantity");
	XN_AUTOFREE char *units = text_of(item, "AllocationUnits");
	int rt = type ? atoi(type) : 0;
	if (rt == RT_CPU) {
		long n = qty ? strtol(qty, NULL, 10) : 0;
		if (n < 1 || n > 256)
			return bad(err, "a vCPU count out of range", qty);
		json_object_set_new(out, "vcpus", json_integer(n));
	} else if (rt == RT_MEMORY) {
		int64_t bytes = to_bytes(qty, units ? units : "byte * 2^20");
		if (bytes < (16 << 20))
			return bad(err, "a memory size this host cannot give", qty);
		json_object_set_new(out, "memory", json_integer(bytes));
	} else if (rt == RT_NIC) {
		XN_AUTOFREE char *net = text_of(item, "Connection");
		json_array_append_new(json_object_get(out, "nics"),
				      json_pack("{s:s}", "network", net && *net ? net : "VM Network"));
	}
	return 0;
}

static int read_system(const xmlNode *vs, json_t *out, xn_error **err)
{
	XN_AUTOFREE char *name = text_of(vs, "Name");
	XN_AUTOFREE char *id = attr(vs, "id");
	json_object_set_new(out, "name", json_string(name && *name ? name : id ? id : "Imported VM"));
	const xmlNode *hw = child(vs, "VirtualHardwareSection");
	for (const xmlNode *c = hw ? hw->children : NULL; c; c = c->next) {
		if (c->type != XML_ELEMENT_NODE || strcmp((const char *)c->name, "Item") != 0)
			continue;
		if (read_item(c, out, err) < 0)
			return -1;
	}
	return 0;
}

static int read_envelope(const xmlNode *env, json_t *out, xn_error **err)
{
	if (!env || strcmp((const char *)env->name, "Envelope") != 0 || !is_ovf_ns(env))
		return bad(err, "the root is not an OVF Envelope", env ? (const char *)env->name : "");
	if (child(env, "VirtualSystemCollection"))
		return bad(err, "more than one virtual system (a collection)", "");
	const xmlNode *vs = child(env, "VirtualSystem");
	if (!vs)
		return bad(err, "no VirtualSystem", "");
	if (check_elements(env, err) < 0)
		return -1;
	json_t *disks = read_disks(env, err);
	if (!disks)
		return -1;
	json_object_set_new(out, "disks", disks);
	return read_system(vs, out, err);
}

json_t *xn_ovf_parse(const char *xml, size_t len, xn_error **err)
{
	xmlDoc *doc = xmlReadMemory(xml, (int)len, "descriptor.ovf", NULL,
				    XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	if (!doc) {
		xn_fail(err, "IMPORT_ERROR_GENERIC", "the OVF descriptor is not well-formed XML", NULL);
		return NULL;
	}
	json_t *out = json_pack("{s:i,s:I,s:[]}", "vcpus", 1, "memory", (json_int_t)(256 << 20),
				"nics");
	int rc = read_envelope(xmlDocGetRootElement(doc), out, err);
	xmlFreeDoc(doc);
	if (rc < 0) {
		json_decref(out);
		return NULL;
	}
	return out;
}
