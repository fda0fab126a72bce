/* Unit tests of the get_all_records_where language: xe's own queries,
 * precedence, and refusal of malformed or hostile expressions. */
#include "api/where.h"
#include "check.h"

static bool m(const char *expr, json_t *rec)
{
	xn_error *err = NULL;
	xn_where *w = xn_where_parse(expr, &err);
	CHECK(w != NULL);
	if (!w) {
		xn_error_free(err);
		return false;
	}
	bool r = xn_where_match(w, rec);
	xn_where_free(w);
	return r;
}

static bool bad(const char *expr)
{
	xn_error *err = NULL;
	xn_where *w = xn_where_parse(expr, &err);
	bool refused = !w && err && strcmp(err->code, "INVALID_VALUE") == 0;
	xn_where_free(w);
	xn_error_free(err);
	return refused;
}

TEST(test_queries)
{
	json_t *rec = json_pack("{s:s,s:s,s:b,s:s,s:i}", "uuid", "u1", "name_label", "web1",
				"is_a_template", 0, "power_state", "Running", "VCPUs_max", 2);
	CHECK(m("true", rec));
	CHECK(!m("false", rec));
	CHECK(m("(field \"uuid\"=\"x\") or (field \"name__label\"=\"web1\")", rec));
	CHECK(m("field \"is_a_template\"=\"false\" and field \"power_state\"=\"Running\"", rec));
	CHECK(!m("not field \"power_state\"=\"Running\"", rec));
	CHECK(m("field \"VCPUs_max\"=\"2\"", rec));
	CHECK(m("false and false or true", rec)); /* and binds tighter */
	CHECK(!m("field \"missing\"=\"\"", rec));
	json_decref(rec);
}

TEST(test_refusals)
{
	CHECK(bad(""));
	CHECK(bad("field \"a\"="));
	CHECK(bad("field \"a\"=\"b"));
	CHECK(bad("(true"));
	CHECK(bad("true true"));
	CHECK(bad("trueish"));
	char deep[4000];
	memset(deep, '(', sizeof(deep) - 1);
	deep[sizeof(deep) - 1] = '\0';
	CHECK(bad(deep));
}

int main(void)
{
	RUN(test_queries);
	RUN(test_refusals);
	CHECK_EXIT();
}
