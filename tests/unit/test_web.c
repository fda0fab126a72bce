/* Unit tests of the web console's server side: the websocket handshake
 * key (RFC 6455's own example), and which request paths may name a file
 * of the built console and with which content type. */
#include "api/static.h"
#include "api/websocket.h"
#include "check.h"

TEST(test_accept_key)
{
	char out[29];
	/* RFC 6455 section 1.3 */
	CHECK(xn_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", out) == 0);
	CHECK_STR(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
	/* a key must be 16 bytes in base64 */
	CHECK(xn_ws_accept_key("dGhlIHNhbXBsZQ==", out) < 0);
	CHECK(xn_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ", out) < 0);
	CHECK(xn_ws_accept_key("!!!!!!!!!!!!!!!!!!!!!!==", out) < 0);
	CHECK(xn_ws_accept_key("", out) < 0);
	CHECK(xn_ws_accept_key(NULL, out) < 0);
}

TEST(test_paths)
{
	CHECK(xn_static_path_ok("/"));
	CHECK(xn_static_path_ok("/index.html"));
	CHECK(xn_static_path_ok("/assets/index-D3FReANI.js"));
	CHECK(!xn_static_path_ok("/../etc/passwd"));
	CHECK(!xn_static_path_ok("/assets/../../xapi.db"));
	CHECK(!xn_static_path_ok("/assets/.."));
	CHECK(!xn_static_path_ok("/.hidden"));
	CHECK(!xn_static_path_ok("//etc/passwd"));
	CHECK(!xn_static_path_ok("/assets//x.js"));
	CHECK(!xn_static_path_ok("/assets/"));
	CHECK(!xn_static_path_ok("index.html"));
	CHECK(!xn_static_path_ok(""));
}

TEST(test_content_types)
{
	CHECK_STR(xn_static_content_type("/index.html"), "text/html; charset=utf-8");
	CHECK_STR(xn_static_content_type("/assets/a-1.js"), "text/javascript; charset=utf-8");
	CHECK_STR(xn_static_content_type("/assets/a.css"), "text/css; charset=utf-8");
	CHECK_STR(xn_static_content_type("/x.svg"), "image/svg+xml");
	CHECK_STR(xn_static_content_type("/x.woff2"), "font/woff2");
	CHECK_STR(xn_static_content_type("/a.d/file"), "application/octet-stream");
	CHECK_STR(xn_static_content_type("/noext"), "application/octet-stream");
}

int main(void)
{
	RUN(test_accept_key);
	RUN(test_paths);
	RUN(test_content_types);
	CHECK_EXIT();
}
