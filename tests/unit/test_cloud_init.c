/* Unit tests of the cloud-init NoCloud seed's contents (cloud_init.c):
 * host name checks, and meta-data / user-data as NoCloud reads them,
 * with values quoted so that no key can inject YAML. */
#include "vm/cloud_init.h"
#include "check.h"

#include <stdlib.h>

#include "util/util.h"

TEST(test_hostname_ok)
{
	CHECK(xn_cloud_init_hostname_ok("web-42"));
	CHECK(xn_cloud_init_hostname_ok("A1"));
	CHECK(!xn_cloud_init_hostname_ok(""));
	CHECK(!xn_cloud_init_hostname_ok(NULL));
	CHECK(!xn_cloud_init_hostname_ok("-web"));
	CHECK(!xn_cloud_init_hostname_ok("web-"));
	CHECK(!xn_cloud_init_hostname_ok("bad_name"));
	CHECK(!xn_cloud_init_hostname_ok("a b"));
	CHECK(!xn_cloud_init_hostname_ok("x\ny"));
	char long_name[65];
	memset(long_name, 'a', 64);
	long_name[64] = '\0';
	CHECK(!xn_cloud_init_hostname_ok(long_name));
	long_name[63] = '\0';
	CHECK(xn_cloud_init_hostname_ok(long_name));
}

TEST(test_render_defaults)
{
	XN_AUTOFREE char *meta = NULL, *user = NULL;
	xn_cloud_init_render("u-1", "web-42", "ssh-ed25519 AAAA k\"ey\nx: y", NULL, &meta, &user);
	CHECK_STR(meta, "instance-id: \"u-1\"\nlocal-hostname: \"web-42\"\npublic-keys:\n"
			"  - \"ssh-ed25519 AAAA k\\\"ey\\nx: y\"\n");
	CHECK_STR(user, "#cloud-config\nhostname: \"web-42\"\nssh_authorized_keys:\n"
			"  - \"ssh-ed25519 AAAA k\\\"ey\\nx: y\"\n");
}

TEST(test_render_user_data_and_no_key)
{
	XN_AUTOFREE char *meta = NULL, *user = NULL;
	xn_cloud_init_render("u-2", "db", "", "#!/bin/sh\necho hi\n", &meta, &user);
	CHECK_STR(meta, "instance-id: \"u-2\"\nlocal-hostname: \"db\"\n");
	CHECK_STR(user, "#!/bin/sh\necho hi\n");
}

int main(void)
{
	RUN(test_hostname_ok);
	RUN(test_render_defaults);
	RUN(test_render_user_data_and_no_key);
	CHECK_EXIT();
}
