/* Unit tests of the NFS drivers' pure half (sr_nfs.c): the nodes and
 * URLs QEMU and qemu-img get, and the device_config errors attach gives
 * before it reaches any server (xapi's SM codes). What needs a server
 * is in tests/integration/test_sr_nfs.py, against nfs-ganesha. */
#include "api/api.h"
#include "storage/storage.h"
#include "check.h"

extern const xn_sr_ops xn_sr_iso_nfs_ops;

#define SR_UUID "0f0e0d0c-0b0a-4908-8706-050403020100"

static xn_sr_conf *conf(const char *type, const char *dc)
{
	xn_sr_conf *c = xn_calloc(1, sizeof(*c));
	c->ref = xn_strdup("OpaqueRef:sr");
	c->uuid = xn_strdup(SR_UUID);
	c->type = xn_strdup(type);
	c->device_config = json_loads(dc, 0, NULL);
	return c;
}

static char *node_text(const xn_sr_ops *ops, const char *type, const char *dc, const char *file)
{
	xn_sr_conf *c = conf(type, dc);
	json_t *n = ops->node(c, file);
	char *s = n ? json_dumps(n, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	json_decref(n);
	xn_sr_conf_free(c);
	return s;
}

static char *url(const xn_sr_ops *ops, const char *type, const char *dc, const char *file)
{
	xn_sr_conf *c = conf(type, dc);
	char *u = ops->url(c, file);
	xn_sr_conf_free(c);
	return u;
}

/* The error code attach gives for dc (no server is contacted: every
 * case fails in validation), or NULL if it succeeded. Caller frees. */
static char *attach_code(const xn_sr_ops *ops, const char *type, const char *dc)
{
	xn_sr_conf *c = conf(type, dc);
	xn_error *err = NULL;
	int rc = ops->attach(c, &err);
	char *code = err ? xn_strdup(err->code) : NULL;
	CHECK(rc < 0 && err);
	xn_error_free(err);
	xn_sr_conf_free(c);
	return code;
}

TEST(test_nfs_node_and_url)
{
	const char *dc = "{\"server\":\"127.0.0.1\",\"serverpath\":\"/srv/xenia/\"}";
	char *n = node_text(&xn_sr_nfs_ops, "nfs", dc, "a.qcow2");
	CHECK_STR(n, "{\"driver\":\"nfs\",\"path\":\"/srv/xenia/" SR_UUID "/a.qcow2\","
		     "\"server\":{\"host\":\"127.0.0.1\",\"type\":\"inet\"}}");
	free(n);
	char *u = url(&xn_sr_nfs_ops, "nfs", dc, "a.qcow2");
	CHECK_STR(u, "nfs://127.0.0.1/srv/xenia/" SR_UUID "/a.qcow2");
	free(u);
	/* the whole server exported: no double slash */
	u = url(&xn_sr_nfs_ops, "nfs", "{\"server\":\"nas\",\"serverpath\":\"/\"}", "b.qcow2");
	CHECK_STR(u, "nfs://nas/" SR_UUID "/b.qcow2");
	free(u);
	/* IPv6: brackets in the URL, none in the node */
	u = url(&xn_sr_nfs_ops, "nfs", "{\"server\":\"::1\",\"serverpath\":\"/x\"}", "c.qcow2");
	CHECK_STR(u, "nfs://[::1]/x/" SR_UUID "/c.qcow2");
	free(u);
	/* a config attach would refuse gives no node at all */
	CHECK(node_text(&xn_sr_nfs_ops, "nfs", "{\"server\":\"nas\"}", "a.qcow2") == NULL);
}

TEST(test_iso_node_and_url)
{
	const char *dc = "{\"location\":\"nas.example:/isos\"}";
	char *n = node_text(&xn_sr_iso_nfs_ops, "iso", dc, "debian.iso");
	CHECK_STR(n, "{\"driver\":\"nfs\",\"path\":\"/isos/debian.iso\","
		     "\"server\":{\"host\":\"nas.example\",\"type\":\"inet\"}}");
	free(n);
	char *u = url(&xn_sr_iso_nfs_ops, "iso", "{\"location\":\"[fd00::2]:/isos\"}", "a.iso");
	CHECK_STR(u, "nfs://[fd00::2]/isos/a.iso");
	free(u);
	u = url(&xn_sr_iso_nfs_ops, "iso",
		"{\"location\":\"nas:/export\",\"iso_path\":\"/cd/images/\"}", "a.iso");
	CHECK_STR(u, "nfs://nas/export/cd/images/a.iso");
	free(u);
}

/* device_configs attach refuses before any network call, and the code */
static const struct {
	const char *type, *dc, *code;
} bad_configs[] = {
	{"nfs", "{\"serverpath\":\"/x\"}", "SR_BACKEND_FAILURE_102"},
	{"nfs", "{\"server\":\"\",\"serverpath\":\"/x\"}", "SR_BACKEND_FAILURE_102"},
	{"nfs", "{\"server\":\"nas\"}", "SR_BACKEND_FAILURE_101"},
	{"nfs", "{\"server\":\"nas\",\"serverpath\":\"x\"}", "SR_BACKEND_FAILURE_103"},
	{"nfs", "{\"server\":\"nas\",\"serverpath\":\"/a/../b\"}", "SR_BACKEND_FAILURE_103"},
	{"nfs", "{\"server\":\"nas\",\"serverpath\":\"/a?b\"}", "SR_BACKEND_FAILURE_103"},
	{"nfs", "{\"server\":\"nas\",\"serverpath\":\"/x\",\"nfsversion\":\"4\"}",
	 "SR_BACKEND_FAILURE_72"},
	{"nfs", "{\"server\":\"n a s\",\"serverpath\":\"/x\"}", "SR_BACKEND_FAILURE_140"},
	/* a name that cannot resolve: DNSError, before any mount */
	{"nfs", "{\"server\":\"no-such-host.invalid\",\"serverpath\":\"/x\"}",
	 "SR_BACKEND_FAILURE_140"},
	{"iso", "{}", "SR_BACKEND_FAILURE_94"},
	{"iso", "{\"location\":\"nas\"}", "SR_BACKEND_FAILURE_225"},
	{"iso", "{\"location\":\"nas:isos\"}", "SR_BACKEND_FAILURE_225"},
	{"iso", "{\"location\":\":/isos\"}", "SR_BACKEND_FAILURE_225"},
	{"iso", "{\"location\":\"nas:/isos\",\"iso_path\":\"../etc\"}", "SR_BACKEND_FAILURE_226"},
};

TEST(test_bad_config)
{
	for (size_t i = 0; i < XN_ARRAY_LEN(bad_configs); i++) {
		const xn_sr_ops *o = strcmp(bad_configs[i].type, "iso") == 0 ? &xn_sr_iso_nfs_ops
									     : &xn_sr_nfs_ops;
		char *code = attach_code(o, bad_configs[i].type, bad_configs[i].dc);
		CHECK_STR(code, bad_configs[i].code);
		free(code);
	}
}

TEST(test_read_only_iso)
{
	CHECK(xn_sr_iso_nfs_ops.read_only && xn_sr_iso_nfs_ops.shared);
	CHECK(!xn_sr_iso_nfs_ops.lock);  /* read-only images need no lock */
	CHECK(xn_sr_nfs_ops.shared && xn_sr_nfs_ops.lock && xn_sr_nfs_ops.unlock);
	/* removing an ISO VDI forgets it; the file stays (no server asked) */
	xn_sr_conf *c = conf("iso", "{\"location\":\"no-such-host.invalid:/isos\"}");
	xn_error *err = NULL;
	CHECK(xn_sr_iso_nfs_ops.remove(c, "a.iso", &err) == 0 && !err);
	xn_sr_conf_free(c);
}

int main(void)
{
	RUN(test_nfs_node_and_url);
	RUN(test_iso_node_and_url);
	RUN(test_bad_config);
	RUN(test_read_only_iso);
	CHECK_EXIT();
}
