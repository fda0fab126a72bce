/* Unit tests of the `xe` client's pure parts: argument parsing, sizes,
 * --minimal escaping, value rendering, the record layout (golden text),
 * filters and selectors, column choice, the JSON-RPC codec, the command
 * table's parameter checks, the console's CONNECT handshake.
 *
 * The CLI is not part of libxenia.a, so its sources are compiled into
 * this test directly (all but main()). */
#include "cli/cli.h"

#include "check.h"

/* ---- a fake database for lookups ------------------------------------------ */

static json_t *fake_db; /* class -> {ref -> record} */

static json_t *fake_record(void *ctx, const char *cls, const char *ref)
{
	return json_object_get(json_object_get(fake_db, cls), ref);
}

static const xe_lookup fake_lk = {fake_record, NULL};

static void fake_add(const char *cls, const char *ref, json_t *rec)
{
	if (!fake_db)
		fake_db = json_object();
	if (!json_object_get(fake_db, cls))
		json_object_set_new(fake_db, cls, json_object());
	json_object_set_new(json_object_get(fake_db, cls), ref, rec);
}

static json_t *vm_json(const char *uuid, const char *name, const char *power)
{
	json_t *r = xn_record_new(xn_model_class("VM"));
	json_object_set_new(r, "uuid", json_string(uuid));
	json_object_set_new(r, "name_label", json_string(name));
	json_object_set_new(r, "power_state", json_string(power));
	return r;
}

static void setup_db(void)
{
	xn_model_init();
	json_t *web = vm_json("2d7c558a-8f03-b1d0-e813-cbe7adfa534c", "web01", "Running");
	json_object_set_new(web, "metrics", json_string("OpaqueRef:m1"));
	json_object_set_new(web, "resident_on", json_string("OpaqueRef:h1"));
	json_object_set_new(web, "tags", json_pack("[ss]", "prod", "web"));
	json_object_set_new(web, "other_config", json_pack("{ss,ss}", "foo", "bar", "a", "b,c"));
	json_object_set_new(web, "VBDs", json_pack("[s]", "OpaqueRef:vbd1"));
	fake_add("VM", "OpaqueRef:vm1", web);
	json_t *dom0 = vm_json("8013b937-ff7e-60d1-ecd8-e52d66c5879e", "Control domain on host: xs1", "Running");
	json_object_set_new(dom0, "is_control_domain", json_true());
	fake_add("VM", "OpaqueRef:vm0", dom0);
	json_t *tmpl = vm_json("11111111-2222-3333-4444-555555555555", "Debian", "Halted");
	json_object_set_new(tmpl, "is_a_template", json_true());
	fake_add("VM", "OpaqueRef:t1", tmpl);
	fake_add("VM_metrics", "OpaqueRef:m1",
		 json_pack("{ss,sI,sI,ss}", "uuid", "m-uuid", "memory_actual", (json_int_t)536870912,
			   "VCPUs_number", (json_int_t)2, "start_time", "20250319T04:16:24Z"));
	fake_add("host", "OpaqueRef:h1", json_pack("{ss,ss}", "uuid", "h-uuid", "name_label", "xs1"));
	fake_add("VBD", "OpaqueRef:vbd1",
		 json_pack("{ss,ss,ss,ss,ss,sb}", "uuid", "vbd-uuid", "VM", "OpaqueRef:vm1", "VDI",
			   "OpaqueRef:NULL", "device", "xvda", "type", "Disk", "empty", 0));
}

static xe_rec *fake_rec(const char *spec, const char *cls, const char *ref)
{
	return xe_rec_new(xe_class_spec_find(spec), ref, fake_record(NULL, cls, ref));
}

/* ---- arguments ----------------------------------------------------------- */

static int parse(xe_args *a, const char *const *argv)
{
	int argc = 0;
	while (argv[argc])
		argc++;
	XN_AUTOERR xn_error *err = NULL;
	return xe_args_parse(a, argc, (char *const *)argv, &err);
}

TEST(test_args_basic)
{
	xe_args a;
	const char *argv[] = {"vm-param-set", "uuid=abc", "other-config:foo=bar", "--force",
			      "PV-args=console=ttyS0 quiet", "--params=uuid", NULL};
	CHECK(parse(&a, argv) == 0);
	CHECK_STR(a.words[0], "vm-param-set");
	CHECK(a.words[1] == NULL);
	CHECK(a.nparams == 5);
	CHECK_STR(xe_arg(&a, "uuid"), "abc");
	CHECK_STR(xe_arg(&a, "other-config:foo"), "bar");
	CHECK_STR(xe_arg(&a, "PV-args"), "console=ttyS0 quiet");
	CHECK_STR(xe_arg(&a, "params"), "uuid");
	CHECK(xe_arg_flag(&a, "force"));
	CHECK(!xe_arg_flag(&a, "multiple"));
	CHECK_STR(a.params[1].key, "other-config:foo");
	xe_args_clear(&a);
}

TEST(test_args_connection)
{
	xe_args a;
	const char *argv[] = {"-s", "xs1", "host-list", "-p", "8443", "-u", "root", "-pw", "secret",
			      "--nossl", "name-label=x", NULL};
	CHECK(parse(&a, argv) == 0);
	CHECK_STR(a.server, "xs1");
	CHECK(a.port == 8443);
	CHECK_STR(a.username, "root");
	CHECK_STR(a.password, "secret");
	CHECK(a.nossl);
	CHECK_STR(a.words[0], "host-list");
	CHECK(a.nparams == 1);
	xe_args_defaults(&a, "server=other\nusername=bob\npasswordfile=/x\n", '\n');
	CHECK_STR(a.server, "xs1"); /* the command line wins */
	CHECK_STR(a.pwfile, "/x");
	xe_args_clear(&a);

	const char *argv2[] = {"vm-list", "server=h", "port=80", "username=u", "password=p", NULL};
	CHECK(parse(&a, argv2) == 0);
	CHECK_STR(a.server, "h");
	CHECK(a.port == 80 && a.nparams == 0);
	xe_args_clear(&a);

	const char *bad[] = {"vm-list", "-x", "1", NULL};
	CHECK(parse(&a, bad) < 0);
	xe_args_clear(&a);
	const char *dangling[] = {"vm-list", "-s", NULL};
	CHECK(parse(&a, dangling) < 0);
	xe_args_clear(&a);
	const char *noval[] = {"vm-list", "=x", NULL};
	CHECK(parse(&a, noval) < 0);
	xe_args_clear(&a);
}

TEST(test_parse_size)
{
	int64_t v = 0;
	XN_AUTOERR xn_error *err = NULL;
	CHECK(xe_parse_size("512MiB", &v, &err) == 0 && v == 536870912);
	CHECK(xe_parse_size("1GiB", &v, &err) == 0 && v == 1073741824);
	CHECK(xe_parse_size("4096", &v, &err) == 0 && v == 4096);
	CHECK(xe_parse_size("2k", &v, &err) == 0 && v == 2048);
	CHECK(xe_parse_size("3m", &v, &err) == 0 && v == 3 * 1048576);
	CHECK(xe_parse_size("1 TiB", &v, &err) == 0 && v == (int64_t)1 << 40);
	CHECK(xe_parse_size("8gb", &v, &err) == 0 && v == (int64_t)8 << 30);
	CHECK(xe_parse_size("10b", &v, &err) == 0 && v == 10);
	CHECK(err == NULL);
	CHECK(xe_parse_size("abc", &v, &err) < 0);
	xn_errorp_free(&err);
	CHECK(xe_parse_size("1x", &v, &err) < 0);
	xn_errorp_free(&err);
	CHECK(xe_parse_size("-1", &v, &err) < 0);
	xn_errorp_free(&err);
	CHECK(xe_parse_size("99999999999T", &v, &err) < 0);
	CHECK(err && strcmp(err->code, XE_CLI_ERROR) == 0);
}

TEST(test_minimal_escaping)
{
	char *vals[] = {"a,b", "c\\d", "e", NULL};
	XN_AUTOFREE char *s = xe_minimal_join(vals);
	CHECK_STR(s, "a\\,b,c\\\\d,e");
	char *none[] = {NULL};
	XN_AUTOFREE char *e = xe_minimal_join(none);
	CHECK_STR(e, "");
}

/* ---- rendering and layout ------------------------------------------------- */

TEST(test_render_values)
{
	const xn_class *vm = xn_model_class("VM");
	json_t *rec = fake_record(NULL, "VM", "OpaqueRef:vm1");
	XN_AUTOFREE char *tags = xe_render(xn_class_field(vm, "tags")->type, json_object_get(rec, "tags"), &fake_lk);
	CHECK_STR(tags, "prod; web");
	XN_AUTOFREE char *oc = xe_render(xn_class_field(vm, "other_config")->type,
					 json_object_get(rec, "other_config"), &fake_lk);
	CHECK_STR(oc, "foo: bar; a: b,c");
	json_t *h1 = json_string("OpaqueRef:h1");
	XN_AUTOFREE char *host = xe_render(xn_class_field(vm, "resident_on")->type, h1, &fake_lk);
	CHECK_STR(host, "h-uuid");
	json_decref(h1);
	json_t *null_ref = json_string("OpaqueRef:NULL"), *gone = json_string("OpaqueRef:gone");
	XN_AUTOFREE char *n1 = xe_render(xn_class_field(vm, "affinity")->type, null_ref, &fake_lk);
	XN_AUTOFREE char *n2 = xe_render(xn_class_field(vm, "affinity")->type, gone, &fake_lk);
	CHECK_STR(n1, "<not in database>");
	CHECK_STR(n2, "<not in database>");
	json_decref(null_ref);
	json_decref(gone);
	XN_AUTOFREE char *ps = xe_render(xn_class_field(vm, "power_state")->type,
					 json_object_get(rec, "power_state"), &fake_lk);
	CHECK_STR(ps, "running");
	json_t *f = json_real(1.0), *i = json_integer(8589934592LL), *b = json_true();
	XN_AUTOFREE char *fs = xe_render(xn_type_parse("float"), f, &fake_lk);
	XN_AUTOFREE char *is = xe_render(xn_type_parse("int"), i, &fake_lk);
	XN_AUTOFREE char *bs = xe_render(xn_type_parse("bool"), b, &fake_lk);
	CHECK_STR(fs, "1.000");
	CHECK_STR(is, "8589934592");
	CHECK_STR(bs, "true");
	json_decref(f);
	json_decref(i);
	json_decref(b);
	json_t *vt = json_string("user");
	XN_AUTOFREE char *vts = xe_render(xn_type_parse("enum vdi_type"), vt, &fake_lk);
	CHECK_STR(vts, "User");
	json_decref(vt);
}

TEST(test_format_vm_list_golden)
{
	/* xenapi.md §4.2's `xe vm-list` example, byte for byte. */
	const xe_class_spec *spec = xe_class_spec_find("vm");
	XN_AUTOSTRV char **cols = xe_columns(spec, NULL);
	xe_rec *a = fake_rec("vm", "VM", "OpaqueRef:vm1");
	xe_rec *b = fake_rec("vm", "VM", "OpaqueRef:vm0");
	XN_AUTOFREE char *ta = xe_format_record(a, cols, true, &fake_lk);
	XN_AUTOFREE char *tb = xe_format_record(b, cols, true, &fake_lk);
	XN_AUTOFREE char *all = xn_asprintf("%s%s", ta, tb);
	CHECK_STR(all, "uuid ( RO)           : 2d7c558a-8f03-b1d0-e813-cbe7adfa534c\n"
		       "     name-label ( RW): web01\n"
		       "    power-state ( RO): running\n"
		       "\n"
		       "uuid ( RO)           : 8013b937-ff7e-60d1-ecd8-e52d66c5879e\n"
		       "     name-label ( RW): Control domain on host: xs1\n"
		       "    power-state ( RO): running\n"
		       "\n");
	/* Columns print in record order whatever order params= gives. */
	XN_AUTOSTRV char **rev = xe_columns(spec, "power-state,uuid");
	XN_AUTOFREE char *tr = xe_format_record(a, rev, false, &fake_lk);
	CHECK_STR(tr, "uuid           : 2d7c558a-8f03-b1d0-e813-cbe7adfa534c\n"
		      "    power-state: running\n\n");
	CHECK(xe_columns(spec, "all") == NULL);
	xe_rec_free(a);
	xe_rec_free(b);
}

TEST(test_param_list_rows)
{
	xe_rec *r = fake_rec("vm", "VM", "OpaqueRef:vm1");
	XN_AUTOFREE char *text = xe_format_record(r, NULL, true, &fake_lk);
	CHECK(strstr(text, "uuid ( RO)") == text);
	CHECK(strstr(text, "                tags (SRW): prod; web\n") != NULL);
	CHECK(strstr(text, " other-config (MRW): foo: bar; a: b,c\n") != NULL);
	CHECK(strstr(text, " platform (MRW): ") != NULL);
	CHECK(strstr(text, " memory-static-max ( RW): ") != NULL);
	CHECK(strstr(text, " allowed-operations (SRO): ") != NULL);
	CHECK(strstr(text, " current-operations (MRO): ") != NULL);
	CHECK(strstr(text, " resident-on ( RO): h-uuid\n") != NULL);
	CHECK(strstr(text, " vbd-uuids (SRO): vbd-uuid\n") != NULL);
	/* VM_metrics fields are merged in; the metrics ref itself is hidden. */
	CHECK(strstr(text, "    power-state ( RO): running\n") != NULL);
	const char *next = strchr(strstr(text, "power-state ( RO)"), '\n') + 1;
	next += strspn(next, " ");
	CHECK(xn_str_has_prefix(next, "memory-actual ( RO): 536870912\n"));
	CHECK(strstr(text, " VCPUs-number ( RO): 2\n") != NULL);
	CHECK(strstr(text, " start-time ( RO): 20250319T04:16:24Z\n") != NULL);
	CHECK(strstr(text, " networks (MRO): <not in database>\n") != NULL);
	CHECK(strstr(text, " metrics ( RO)") == NULL);
	CHECK(strstr(text, "snapshot-metadata") == NULL);
	CHECK(text[strlen(text) - 1] == '\n' && text[strlen(text) - 2] == '\n');
	/* Every line but the first is right-aligned to the same width. */
	size_t width = (size_t)(strstr(text, ": ") - text);
	for (const char *line = strchr(text, '\n') + 1; *line != '\n'; line = strchr(line, '\n') + 1)
		CHECK((size_t)(strstr(line, ": ") - line) == width && line[0] == ' ');
	xe_rec_free(r);
}

TEST(test_derived_rows)
{
	xe_rec *vbd = fake_rec("vbd", "VBD", "OpaqueRef:vbd1");
	XN_AUTOSTRV char **cols = xe_columns(xe_class_spec_find("vbd"), NULL);
	XN_AUTOFREE char *t = xe_format_record(vbd, cols, true, &fake_lk);
	CHECK_STR(t, "uuid ( RO)             : vbd-uuid\n"
		     "          vm-uuid ( RO): 2d7c558a-8f03-b1d0-e813-cbe7adfa534c\n"
		     "    vm-name-label ( RO): web01\n"
		     "         vdi-uuid ( RO): <not in database>\n"
		     "           device ( RO): xvda\n"
		     "            empty ( RO): false\n\n");
	xe_rec_free(vbd);

	json_t *sr = xn_record_new(xn_model_class("SR"));
	json_object_set_new(sr, "shared", json_true());
	xe_rec *r = xe_rec_new(xe_class_spec_find("sr"), "OpaqueRef:sr1", sr);
	CHECK_STR(xe_row_value(r, xe_rec_row(r, "host"), &fake_lk), "<shared>");
	CHECK_STR(xe_row_suffix(xe_rec_row(r, "name-label")), " ( RW)"); /* explicit set_name_label */
	xe_rec_free(r);
	json_decref(sr);
}

/* ---- filters and selectors ------------------------------------------------ */

static size_t count_matching(const char *spec_name, const char *filters)
{
	const xe_class_spec *spec = xe_class_spec_find(spec_name);
	xe_filter *fixed = xe_filters_parse(spec->fixed);
	xe_filter *f = xe_filters_parse(filters);
	size_t n = 0;
	const char *ref;
	json_t *j;
	json_object_foreach(json_object_get(fake_db, "VM"), ref, j) {
		xe_rec *r = xe_rec_new(spec, ref, j);
		n += xe_rec_matches_all(r, fixed, &fake_lk) && xe_rec_matches_all(r, f, &fake_lk);
		xe_rec_free(r);
	}
	xe_filters_free(fixed);
	xe_filters_free(f);
	return n;
}

TEST(test_filters)
{
	CHECK(count_matching("vm", "") == 2);       /* templates are not VMs; dom0 is */
	CHECK(count_matching("template", "") == 1);
	CHECK(count_matching("snapshot", "") == 0);
	CHECK(count_matching("vm", "power-state=running") == 2);
	CHECK(count_matching("vm", "power-state=Running") == 2); /* enums ignore case */
	CHECK(count_matching("vm", "power-state=halted") == 0);
	CHECK(count_matching("vm", "name-label=web01") == 1);
	CHECK(count_matching("vm", "name-label=WEB01") == 0);
	CHECK(count_matching("vm", "vm=web01") == 1);
	CHECK(count_matching("vm", "vm=8013b937-ff7e-60d1-ecd8-e52d66c5879e") == 1);
	CHECK(count_matching("vm", "other-config:foo=bar") == 1);
	CHECK(count_matching("vm", "other-config:foo=baz") == 0);
	CHECK(count_matching("vm", "other-config:nokey=bar") == 0);
	CHECK(count_matching("vm", "tags:contains=web") == 1);
	CHECK(count_matching("vm", "tags:contains=db") == 0);
	CHECK(count_matching("vm", "resident-on=h-uuid") == 1);
	CHECK(count_matching("vm", "memory-actual=536870912") == 1);
	CHECK(count_matching("vm", "is-control-domain=false power-state=running") == 1);
	CHECK(count_matching("template", "vm=Debian") == 1);
}

TEST(test_filters_from_params)
{
	xe_param p[] = {{"power-state", "halted"}, {"--minimal", "x"}, {"multiple", "true"},
			{"paused", "true"}, {"other-config:foo", "bar"}};
	XN_AUTOERR xn_error *err = NULL;
	const xe_class_spec *spec = xe_class_spec_find("vm");
	xe_filter *f = xe_filters_from_params(spec, p, 1, "paused on", &err);
	CHECK(f && f[0].key && !f[1].key);
	xe_filters_free(f);
	xe_param q[] = {{"multiple", "true"}, {"paused", "true"}, {"other-config:foo", "bar"}};
	f = xe_filters_from_params(spec, q, 3, "vm paused", &err);
	CHECK(f && strcmp(f[0].key, "other-config") == 0 && strcmp(f[0].mapkey, "foo") == 0 && !f[1].key);
	xe_filters_free(f);
	/* vm= is declared by the command (for help) and still selects. */
	xe_param sel[] = {{"vm", "web01"}, {"paused", "true"}};
	f = xe_filters_from_params(spec, sel, 2, "vm paused on force multiple", &err);
	CHECK(f && f[0].key && strcmp(f[0].key, "vm") == 0 && !f[1].key);
	xe_filters_free(f);
	xe_param bad[] = {{"no-such-field", "1"}};
	CHECK(xe_filters_from_params(spec, bad, 1, "", &err) == NULL);
	CHECK(err && strstr(err->params[0], "no-such-field"));
}

/* ---- fields and commands --------------------------------------------------- */

TEST(test_settable)
{
	const xn_class *vm = xn_model_class("VM");
	CHECK(xe_field_settable(xn_class_field(vm, "name_label")));
	CHECK(xe_field_settable(xn_class_field(vm, "memory_static_max"))); /* set_memory_static_max */
	CHECK(!xe_field_settable(xn_class_field(vm, "power_state")));
	CHECK(!xe_field_settable(xn_class_field(vm, "uuid")));
	CHECK(xe_field_keys_settable(xn_class_field(vm, "platform")));    /* add_to_platform */
	CHECK(!xe_field_keys_settable(xn_class_field(vm, "allowed_operations")));
}

TEST(test_command_table)
{
	const xe_cmd *c = xe_cmd_find("vm-list");
	CHECK(c && c->fn == xe_cmd_list && c->data == xe_class_spec_find("vm"));
	CHECK(xe_cmd_find("template-list") && xe_cmd_find("sr-param-set") && xe_cmd_find("host-list"));
	CHECK(xe_cmd_find("vdi-param-clear") && xe_cmd_find("console") && xe_cmd_find("vm-install"));
	CHECK(xe_cmd_find("no-such-command") == NULL);

	xe_args a;
	XN_AUTOERR xn_error *err = NULL;
	const char *get[] = {"vm-param-get", "uuid=x", NULL};
	parse(&a, get);
	CHECK(xe_cmd_check_params(xe_cmd_find("vm-param-get"), &a, &err) < 0);
	CHECK(err && strcmp(err->params[0], "Required parameter not found: param-name") == 0);
	xn_errorp_free(&err);
	xe_args_clear(&a);

	const char *destroy[] = {"vm-destroy", "uuid=x", "bogus=1", "--force", NULL};
	parse(&a, destroy);
	CHECK(xe_cmd_check_params(xe_cmd_find("vm-destroy"), &a, &err) < 0);
	CHECK(err && strstr(err->params[0], "bogus"));
	xn_errorp_free(&err);
	xe_args_clear(&a);

	const char *start[] = {"vm-start", "name-label=x", "paused=true", "--multiple", NULL};
	parse(&a, start);
	CHECK(xe_cmd_check_params(xe_cmd_find("vm-start"), &a, &err) == 0);
	xe_args_clear(&a);
}

TEST(test_rewrite_provision_sr)
{
	XN_AUTOFREE char *x = xe_rewrite_provision(
		"<provision><disk device=\"0\" size=\"8589934592\" sr=\"\" bootable=\"true\" type=\"system\"/>"
		"<disk device='1' size='1' sr='old'/></provision>", "sr", "SRU");
	CHECK_STR(x, "<provision><disk device=\"0\" size=\"8589934592\" sr=\"SRU\" bootable=\"true\" "
		     "type=\"system\"/><disk device='1' size='1' sr='SRU'/></provision>");
	XN_AUTOFREE char *y = xe_rewrite_provision("<provision><disk usr=\"a\"/></provision>", "sr", "S");
	CHECK_STR(y, "<provision><disk usr=\"a\"/></provision>");
	/* size: not the tail of another attribute's name */
	XN_AUTOFREE char *z = xe_rewrite_provision(
		"<provision><disk device=\"0\" xsize=\"5\" size=\"8589934592\" sr=\"\"/></provision>",
		"size", "1073741824");
	CHECK_STR(z, "<provision><disk device=\"0\" xsize=\"5\" size=\"1073741824\" sr=\"\"/></provision>");
}

/* ---- JSON-RPC ----------------------------------------------------------- */

TEST(test_rpc_codec)
{
	json_t *params = json_pack("[ss]", "OpaqueRef:s", "OpaqueRef:v");
	XN_AUTOFREE char *req = xe_rpc_request("VM.start", params, 7);
	json_decref(params);
	CHECK_STR(req, "{\"jsonrpc\":\"2.0\",\"method\":\"VM.start\",\"params\":[\"OpaqueRef:s\","
		       "\"OpaqueRef:v\"],\"id\":7}");
	XN_AUTOERR xn_error *err = NULL;
	const char *ok = "{\"jsonrpc\":\"2.0\",\"result\":[\"OpaqueRef:a\"],\"id\":7}";
	json_t *r = xe_rpc_reply(ok, strlen(ok), &err);
	CHECK(json_is_array(r) && err == NULL);
	json_decref(r);
	const char *v2 = "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":1,\"message\":\"VM_BAD_POWER_STATE\","
			 "\"data\":[\"OpaqueRef:x\",\"halted\",\"running\"]},\"id\":7}";
	CHECK(xe_rpc_reply(v2, strlen(v2), &err) == NULL);
	CHECK(err && strcmp(err->code, "VM_BAD_POWER_STATE") == 0 && xn_strv_len(err->params) == 3);
	CHECK(err && strcmp(err->params[2], "running") == 0);
	xn_errorp_free(&err);
	const char *v1 = "{\"result\":null,\"error\":[\"SESSION_INVALID\",\"OpaqueRef:s\"],\"id\":\"x\"}";
	CHECK(xe_rpc_reply(v1, strlen(v1), &err) == NULL);
	CHECK(err && strcmp(err->code, "SESSION_INVALID") == 0 && xn_strv_len(err->params) == 1);
	xn_errorp_free(&err);
	const char *v1ok = "{\"result\":\"\",\"error\":null,\"id\":\"x\"}";
	r = xe_rpc_reply(v1ok, strlen(v1ok), &err);
	CHECK(json_is_string(r) && !err);
	json_decref(r);
	CHECK(xe_rpc_reply("<html>", 6, &err) == NULL);
	CHECK(err && strcmp(err->code, XE_CLI_ERROR) == 0);
}

/* ---- console handshake ------------------------------------------------------ */

TEST(test_console_request)
{
	XN_AUTOERR xn_error *err = NULL;
	XN_AUTOFREE char *p1 = xe_console_path("https://10.0.0.1/console?ref=OpaqueRef:c", &err);
	XN_AUTOFREE char *p2 = xe_console_path("/console?uuid=u", &err);
	XN_AUTOFREE char *p3 = xe_console_path("http://h:8080/console", &err);
	CHECK_STR(p1, "/console?ref=OpaqueRef:c");
	CHECK_STR(p2, "/console?uuid=u");
	CHECK_STR(p3, "/console");
	CHECK(xe_console_path("garbage", &err) == NULL && err);
	XN_AUTOFREE char *r1 = xe_console_request(p1, "OpaqueRef:s", 4096);
	CHECK_STR(r1, "CONNECT /console?ref=OpaqueRef:c&session_id=OpaqueRef:s&scrollback=4096 HTTP/1.0\r\n\r\n");
	XN_AUTOFREE char *r3 = xe_console_request(p3, "S", 0);
	CHECK_STR(r3, "CONNECT /console?session_id=S&scrollback=0 HTTP/1.0\r\n\r\n");
}

TEST(test_console_answer)
{
	/* A 200 ends the HTTP part; what follows is console output. */
	const char *ok = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nlogin: ";
	xe_http_resp *r = xe_http_resp_new();
	ssize_t used = xe_http_resp_feed(r, ok, strlen(ok));
	CHECK(xe_http_resp_done(r) && xe_http_resp_status(r) == 200);
	CHECK(used == (ssize_t)(strlen(ok) - strlen("login: ")));
	xe_http_resp_free(r);

	/* Byte by byte, as a slow socket may deliver it. */
	r = xe_http_resp_new();
	size_t i = 0;
	for (; i < strlen(ok) && !xe_http_resp_done(r); i++)
		CHECK(xe_http_resp_feed(r, ok + i, 1) == 1);
	CHECK(xe_http_resp_done(r) && i == strlen(ok) - strlen("login: "));
	xe_http_resp_free(r);

	/* A refusal with a body of known length. */
	const char *nf = "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nno consolEXTRA";
	r = xe_http_resp_new();
	CHECK(xe_http_resp_feed(r, nf, strlen(nf)) > 0);
	CHECK(xe_http_resp_done(r) && xe_http_resp_status(r) == 404);
	CHECK_STR(xe_http_resp_body(r), "no consol");
	xe_http_resp_free(r);

	/* A refusal whose body runs to the end of the connection. */
	const char *fb = "HTTP/1.0 403 Forbidden\r\n\r\nSESSION_INVALID";
	r = xe_http_resp_new();
	CHECK(xe_http_resp_feed(r, fb, strlen(fb)) == (ssize_t)strlen(fb));
	CHECK(!xe_http_resp_done(r));
	CHECK(xe_http_resp_feed(r, "", 0) == 0);
	CHECK(xe_http_resp_done(r) && xe_http_resp_status(r) == 403);
	CHECK_STR(xe_http_resp_body(r), "SESSION_INVALID");
	xe_http_resp_free(r);

	r = xe_http_resp_new();
	CHECK(xe_http_resp_feed(r, "SSH-2.0-OpenSSH\r\n", 17) < 0);
	xe_http_resp_free(r);
	r = xe_http_resp_new();
	CHECK(xe_http_resp_feed(r, "HTTP/1.1 2", 10) == 10);
	CHECK(xe_http_resp_feed(r, "", 0) < 0); /* closed mid status line */
	xe_http_resp_free(r);
}

int main(void)
{
	setup_db();
	RUN(test_args_basic);
	RUN(test_args_connection);
	RUN(test_parse_size);
	RUN(test_minimal_escaping);
	RUN(test_render_values);
	RUN(test_format_vm_list_golden);
	RUN(test_param_list_rows);
	RUN(test_derived_rows);
	RUN(test_filters);
	RUN(test_filters_from_params);
	RUN(test_settable);
	RUN(test_command_table);
	RUN(test_rewrite_provision_sr);
	RUN(test_rpc_codec);
	RUN(test_console_request);
	RUN(test_console_answer);
	json_decref(fake_db);
	CHECK_EXIT();
}
