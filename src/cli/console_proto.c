/* console_proto.c: the HTTP side of `xe console` (xenapi.md §2.3
 * console): the CONNECT request built from the console's location, and
 * the daemon's answer parsed with http_parser. A 200 ends the HTTP part
 * (returning 2 from on_headers_complete tells the parser the rest of the
 * stream is another protocol); any other status is followed by a body
 * explaining why, read to its end. Pure, no I/O. */
#include <http_parser.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

struct xe_http_resp {
	http_parser parser;
	http_parser_settings settings;
	int status;
	bool done;
	xn_buf body;
};

char *xe_console_path(const char *location, xn_error **err)
{
	if (location && location[0] == '/')
		return xn_strdup(location);
	const char *scheme = location ? strstr(location, "://") : NULL;
	const char *path = scheme ? strchr(scheme + 3, '/') : NULL;
	if (!path) {
		xe_fail(err, "Error: malformed console location '%s'", location ? location : "");
		return NULL;
	}
	return xn_strdup(path);
}

char *xe_console_request(const char *path, const char *session, long scrollback)
{
	return xn_asprintf("CONNECT %s%csession_id=%s&scrollback=%ld HTTP/1.0\r\n\r\n", path,
			   strchr(path, '?') ? '&' : '?', session, scrollback);
}

static int on_headers_complete(http_parser *p)
{
	xe_http_resp *r = p->data;
	r->status = (int)p->status_code;
	if (r->status != 200)
		return 0;
	r->done = true;
	return 2; /* the rest of the stream is the console */
}

static int on_body(http_parser *p, const char *at, size_t len)
{
	xe_http_resp *r = p->data;
	xn_buf_append(&r->body, at, len);
	return 0;
}

static int on_message_complete(http_parser *p)
{
	xe_http_resp *r = p->data;
	r->done = true;
	return 0;
}

xe_http_resp *xe_http_resp_new(void)
{
	xe_http_resp *r = xn_calloc(1, sizeof(*r));
	http_parser_init(&r->parser, HTTP_RESPONSE);
	r->parser.data = r;
	http_parser_settings_init(&r->settings);
	r->settings.on_headers_complete = on_headers_complete;
	r->settings.on_body = on_body;
	r->settings.on_message_complete = on_message_complete;
	xn_buf_puts(&r->body, "");
	return r;
}

void xe_http_resp_free(xe_http_resp *r)
{
	if (!r)
		return;
	xn_buf_reset(&r->body);
	free(r);
}

ssize_t xe_http_resp_feed(xe_http_resp *r, const char *data, size_t n)
{
	if (r->done)
		return 0;
	size_t used = http_parser_execute(&r->parser, &r->settings, data, n);
	if (r->done)
		return (ssize_t)used;
	if (HTTP_PARSER_ERRNO(&r->parser) != HPE_OK)
		return -1;
	if (n == 0) /* closed before the response was whole */
		return r->status ? (r->done = true, 0) : -1;
	return (ssize_t)used;
}

int xe_http_resp_status(const xe_http_resp *r)
{
	return r->status;
}

bool xe_http_resp_done(const xe_http_resp *r)
{
	return r->done;
}

const char *xe_http_resp_body(const xe_http_resp *r)
{
	return r->body.data ? r->body.data : "";
}
