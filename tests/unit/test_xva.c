/* test_xva.c: the pure parts of XVA handling (chunk names, checksums,
 * ova.xml parsing) and the import thread's refusals that come before any
 * disk is touched (not a tar, ova.xml missing or not first). */
#include <archive.h>
#include <archive_entry.h>
#include <unistd.h>

#include "check.h"
#include "uvwait.h"

#include "storage/xva_stream.h"
#include "vm/xva.h"

TEST(chunk_names)
{
	long n = -1;
	CHECK(xn_xva_chunk_name("Ref:3/00000007", "Ref:3", &n) && n == 7);
	CHECK(xn_xva_chunk_name("Ref:10/12345678", "Ref:10", &n) && n == 12345678);
	CHECK(!xn_xva_chunk_name("Ref:3/7", "Ref:3", &n));
	CHECK(!xn_xva_chunk_name("Ref:3/0000000a", "Ref:3", &n));
	CHECK(!xn_xva_chunk_name("Ref:30/00000001", "Ref:3", &n));
	CHECK(!xn_xva_chunk_name("Ref:3/00000001.checksum", "Ref:3", &n));
	CHECK(!xn_xva_chunk_name("Ref:3/../00000001", "Ref:3", &n));
	CHECK(!xn_xva_chunk_name("../Ref:3/00000001", "Ref:3", &n));
	CHECK(!xn_xva_chunk_name(NULL, "Ref:3", &n));
}

TEST(digests)
{
	char out[41];
	xn_xva_digest("abc", 3, false, out);
	CHECK_STR(out, "a9993e364706816aba3e25717850c26c9cd0d89d");
	xn_xva_digest("", 0, true, out);
	CHECK_STR(out, "EF46DB3751D8E999");
}

TEST(header_parse)
{
	const char *xml =
		"<value><struct><member><name>version</name><value><struct><member><name>"
		"export_vsn</name><value>2</value></member></struct></value></member><member>"
		"<name>objects</name><value><array><data><value><struct><member><name>class</name>"
		"<value>VM</value></member><member><name>id</name><value>Ref:0</value></member>"
		"<member><name>snapshot</name><value><struct><member><name>name_label</name>"
		"<value>x &amp; y</value></member></struct></value></member></struct></value>"
		"</data></array></value></member></struct></value>";
	xn_error *err = NULL;
	json_t *h = xn_xva_header_parse(xml, strlen(xml), &err);
	CHECK(h && !err);
	json_t *o = json_array_get(json_object_get(h, "objects"), 0);
	CHECK_STR(json_string_value(json_object_get(json_object_get(o, "snapshot"), "name_label")),
		  "x & y");
	json_decref(h);
	const char *bad[] = {"<value>1</value>", "<methodCall/>", "not xml",
			     "<value><struct><member><name>objects</name><value><array><data>"
			     "<value>1</value></data></array></value></member></struct></value>"};
	for (size_t i = 0; i < XN_ARRAY_LEN(bad); i++) {
		CHECK(!xn_xva_header_parse(bad[i], strlen(bad[i]), &err));
		CHECK(err && strcmp(err->code, "IMPORT_ERROR_GENERIC") == 0);
		xn_error_free(err);
		err = NULL;
	}
}

/* ---- the import thread, fed through a pipe ------------------------------------ */

static bool done, got_header;
static xn_error *result;
static xn_xva_job *job;

static void on_header(void *ud, const char *xml, size_t len)
{
	got_header = true;
	xn_xva_job_abort(job);
}

static void on_done(void *ud, xn_error *err)
{
	result = err;
	done = true;
}

/* Feed bytes to an import thread; the error it ends with. */
static xn_error *import_bytes(const void *buf, size_t len)
{
	int fds[2];
	CHECK(pipe(fds) == 0);
	done = got_header = false;
	result = NULL;
	struct xn_xva_cb cb = {.header = on_header, .done = on_done};
	job = xn_xva_import_start(&loop, fds[0], &cb, NULL);
	CHECK(job != NULL);
	CHECK(write(fds[1], buf, len) == (ssize_t)len);
	close(fds[1]);
	wait_for_quietly(&done, 10000);
	CHECK(done);
	uv_run(&loop, UV_RUN_NOWAIT); /* the job's handle closes */
	return result;
}

/* A tar of the given members (name, text). */
static size_t make_tar(char *out, size_t cap, const char *const *members, size_t n)
{
	struct archive *a = archive_write_new();
	archive_write_set_format_ustar(a);
	size_t used = 0;
	archive_write_open_memory(a, out, cap, &used);
	for (size_t i = 0; i < n; i += 2) {
		struct archive_entry *e = archive_entry_new();
		archive_entry_set_pathname(e, members[i]);
		archive_entry_set_size(e, (la_int64_t)strlen(members[i + 1]));
		archive_entry_set_filetype(e, AE_IFREG);
		archive_write_header(a, e);
		archive_write_data(a, members[i + 1], strlen(members[i + 1]));
		archive_entry_free(e);
	}
	archive_write_close(a);
	archive_write_free(a);
	return used;
}

static void check_refused(xn_error *err, const char *words)
{
	CHECK(err && strcmp(err->code, "IMPORT_ERROR_GENERIC") == 0);
	CHECK(err && err->params && err->params[0] && strstr(err->params[0], words));
	if (err && (!err->params || !err->params[0] || !strstr(err->params[0], words)))
		fprintf(stderr, "  got: %s\n", err->params ? err->params[0] : "(none)");
	xn_error_free(err);
}

TEST(import_refuses_non_archives)
{
	static char tar[65536];
	check_refused(import_bytes("hello, not a tar at all", 23), "damaged or truncated");
	const char *other_first[] = {"../etc/passwd", "x", "ova.xml", "<value/>"};
	size_t n = make_tar(tar, sizeof(tar), other_first, 4);
	check_refused(import_bytes(tar, n), "not ova.xml");
	CHECK(!got_header);
	static char xml[3000];
	memset(xml, ' ', sizeof(xml) - 1);
	memcpy(xml, "<value/>", 8);
	const char *only[] = {"ova.xml", xml};
	n = make_tar(tar, sizeof(tar), only, 2);
	/* truncated inside ova.xml's data */
	check_refused(import_bytes(tar, 600), "truncated");
	CHECK(!got_header);
	/* whole: the header reaches the loop (which aborts here) */
	xn_error *err = import_bytes(tar, n);
	CHECK(got_header);
	CHECK(err && strcmp(err->code, "TASK_CANCELLED") == 0);
	xn_error_free(err);
}

int main(void)
{
	xn_model_init();
	uv_loop_init(&loop);
	RUN(chunk_names);
	RUN(digests);
	RUN(header_parse);
	RUN(import_refuses_non_archives);
	CHECK_EXIT();
}
