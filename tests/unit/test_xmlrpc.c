/* Unit tests of the XML-RPC encoding: xapi's forms for each type. */
#include "api/api.h"
#include "check.h"

static char *enc(json_t *v, const char *type)
{
	xn_buf b = {0};
	xn_xmlrpc_value(&b, v, type ? xn_type_parse(type) : NULL);
	json_decref(v);
	return xn_buf_steal(&b);
}

TEST(test_scalars)
{
	xn_model_init();
	XN_AUTOFREE char *i = enc(json_integer(8589934592), "int");
	CHECK_STR(i, "<value>8589934592</value>");
	XN_AUTOFREE char *s = enc(json_string("a<b&\"c\"\x01"), "string");
	CHECK_STR(s, "<value>a&lt;b&amp;&quot;c&quot;</value>");
	XN_AUTOFREE char *b = enc(json_true(), "bool");
	CHECK_STR(b, "<value><boolean>1</boolean></value>");
	XN_AUTOFREE char *d = enc(json_string("20250319T04:16:24Z"), "datetime");
	CHECK_STR(d, "<value><dateTime.iso8601>20250319T04:16:24Z</dateTime.iso8601></value>");
	XN_AUTOFREE char *f = enc(json_real(0.5), "float");
	CHECK_STR(f, "<value><double>0.5</double></value>");
}

TEST(test_record_fields_typed)
{
	json_t *rec = json_pack("{s:s,s:i}", "snapshot_time", "19700101T00:00:00Z", "domid", 7);
	XN_AUTOFREE char *r = enc(rec, "VM record");
	CHECK_STR(r, "<value><struct><member><name>snapshot_time</name><value><dateTime.iso8601>"
		     "19700101T00:00:00Z</dateTime.iso8601></value></member><member><name>domid"
		     "</name><value>7</value></member></struct></value>");
	XN_AUTOFREE char *a = enc(json_pack("[s,s]", "x", "y"), "string set");
	CHECK_STR(a, "<value><array><data><value>x</value><value>y</value></data></array></value>");
}

TEST(test_event_batch)
{
	/* xapi's rpc_of_event_from: snapshots typed by their class,
	 * valid_ref_counts as int32 (<i4>) */
	json_t *batch = json_pack(
		"{s:[{s:s,s:s,s:s,s:s,s:s,s:{s:s,s:i}}],s:{s:i},s:s}", "events", "id", "5",
		"timestamp", "0.0", "class", "vm", "operation", "mod", "ref", "OpaqueRef:a",
		"snapshot", "snapshot_time", "19700101T00:00:00Z", "domid", 7, "valid_ref_counts",
		"task", 3, "token", "t");
	XN_AUTOFREE char *r = enc(batch, "an event batch");
	CHECK_STR(r, "<value><struct><member><name>events</name><value><array><data><value>"
		     "<struct><member><name>id</name><value>5</value></member><member><name>"
		     "timestamp</name><value>0.0</value></member><member><name>class</name><value>"
		     "vm</value></member><member><name>operation</name><value>mod</value></member>"
		     "<member><name>ref</name><value>OpaqueRef:a</value></member><member><name>"
		     "snapshot</name><value><struct><member><name>snapshot_time</name><value>"
		     "<dateTime.iso8601>19700101T00:00:00Z</dateTime.iso8601></value></member>"
		     "<member><name>domid</name><value>7</value></member></struct></value></member>"
		     "</struct></value></data></array></value></member><member><name>"
		     "valid_ref_counts</name><value><struct><member><name>task</name><value><i4>3"
		     "</i4></value></member></struct></value></member><member><name>token</name>"
		     "<value>t</value></member></struct></value>");
}

int main(void)
{
	RUN(test_scalars);
	RUN(test_record_fields_typed);
	RUN(test_event_batch);
	CHECK_EXIT();
}
