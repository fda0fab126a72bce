/* test_ovf.c: OVF descriptors into import descriptions (vm/ovf.c): a
 * VirtualBox-style descriptor, units, blank disks, and the refusals
 * (required unknown elements, file references leaving the package,
 * collections, bad capacities). */
#include <stdlib.h>

#include "check.h"
#include "util/err.h"
#include "vm/ovf.h"

#define ENV_OPEN                                                                         \
	"<?xml version=\"1.0\"?><Envelope xmlns=\"http://schemas.dmtf.org/ovf/envelope/1\" " \
	"xmlns:ovf=\"http://schemas.dmtf.org/ovf/envelope/1\" "                              \
	"xmlns:rasd=\"http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/"                    \
	"CIM_ResourceAllocationSettingData\">"

static json_t *parse(const char *xml, char **code)
{
	xn_error *err = NULL;
	json_t *out = xn_ovf_parse(xml, strlen(xml), &err);
	*code = err ? strdup(err->message) : NULL;
	xn_error_free(err);
	return out;
}

TEST(reads_name_cpus_memory_disks_nics)
{
	const char *xml = ENV_OPEN
		"<References><File ovf:id=\"f1\" ovf:href=\"a.vmdk\"/></References>"
		"<DiskSection><Info/><Disk ovf:diskId=\"d1\" ovf:fileRef=\"f1\" ovf:capacity=\"2\" "
		"ovf:capacityAllocationUnits=\"byte * 2^30\"/>"
		"<Disk ovf:diskId=\"d2\" ovf:capacity=\"64\" ovf:capacityAllocationUnits=\"MegaBytes\"/>"
		"</DiskSection><VirtualSystem ovf:id=\"vm\"><Info/><Name>web</Name>"
		"<VirtualHardwareSection><Info/>"
		"<Item><rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>4"
		"</rasd:VirtualQuantity></Item>"
		"<Item><rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits><rasd:ResourceType>4"
		"</rasd:ResourceType><rasd:VirtualQuantity>512</rasd:VirtualQuantity></Item>"
		"<Item><rasd:Connection>LAN</rasd:Connection><rasd:ResourceType>10</rasd:ResourceType></Item>"
		"<Item><rasd:ResourceType>6</rasd:ResourceType></Item>"
		"</VirtualHardwareSection>"
		"<vmw:Extra xmlns:vmw=\"http://www.vmware.com/schema/ovf\" ovf:required=\"false\"/>"
		"</VirtualSystem></Envelope>";
	char *msg;
	json_t *d = parse(xml, &msg);
	CHECK(d != NULL);
	CHECK_STR(json_string_value(json_object_get(d, "name")), "web");
	CHECK(json_integer_value(json_object_get(d, "vcpus")) == 4);
	CHECK(json_integer_value(json_object_get(d, "memory")) == 512LL << 20);
	json_t *disks = json_object_get(d, "disks");
	CHECK(json_array_size(disks) == 2);
	CHECK_STR(json_string_value(json_object_get(json_array_get(disks, 0), "file")), "a.vmdk");
	CHECK(json_integer_value(json_object_get(json_array_get(disks, 0), "capacity")) == 2LL << 30);
	CHECK(json_string_value(json_object_get(json_array_get(disks, 1), "file")) == NULL);
	CHECK(json_integer_value(json_object_get(json_array_get(disks, 1), "capacity")) == 64LL << 20);
	CHECK_STR(json_string_value(json_object_get(json_array_get(json_object_get(d, "nics"), 0),
						    "network")), "LAN");
	json_decref(d);
	free(msg);
}

static void refused(const char *body, const char *words)
{
	XN_AUTOFREE char *xml = xn_asprintf("%s%s</Envelope>", ENV_OPEN, body);
	char *msg;
	json_t *d = parse(xml, &msg);
	CHECK(d == NULL);
	CHECK(msg && strstr(msg, words));
	if (!msg || !strstr(msg, words))
		fprintf(stderr, "  wanted '%s' in '%s'\n", words, msg ? msg : "(none)");
	json_decref(d);
	free(msg);
}

TEST(refuses_bad_descriptors)
{
	const char *vs = "<VirtualSystem ovf:id=\"v\"><Info/></VirtualSystem>";
	XN_AUTOFREE char *unknown = xn_asprintf("%s<x:Y xmlns:x=\"urn:y\"/>", vs);
	refused(unknown, "'Y'");
	XN_AUTOFREE char *future = xn_asprintf("%s<FutureSection><Info/></FutureSection>", vs);
	refused(future, "FutureSection");
	XN_AUTOFREE char *escape = xn_asprintf(
		"<References><File ovf:id=\"f\" ovf:href=\"../etc/shadow\"/></References>"
		"<DiskSection><Disk ovf:diskId=\"d\" ovf:fileRef=\"f\" ovf:capacity=\"1024\"/>"
		"</DiskSection>%s", vs);
	refused(escape, "not a member");
	XN_AUTOFREE char *nocap = xn_asprintf(
		"<DiskSection><Disk ovf:diskId=\"d\" ovf:capacity=\"lots\"/></DiskSection>%s", vs);
	refused(nocap, "capacity");
	refused("<VirtualSystemCollection/>", "collection");
	refused("", "no VirtualSystem");
	char *msg;
	CHECK(parse("<not xml", &msg) == NULL);
	CHECK(msg && strstr(msg, "well-formed"));
	free(msg);
}

int main(void)
{
	RUN(reads_name_cpus_memory_disks_nics);
	RUN(refuses_bad_descriptors);
	CHECK_EXIT();
}
