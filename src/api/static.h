/* static.h: the web console's files, served by xeniad.
 *
 * GET of any path no other route claims is a file under the host's web
 * directory (build/web, made by `make` from web/): `/` is index.html.
 * POST / stays XML-RPC (routes are matched by method first). */
#ifndef XN_STATIC_H
#define XN_STATIC_H

#include "host/host.h"

/* Register the GET / route (files under h->web_dir). */
void xn_static_init(xn_host *h);

/* The Content-Type for a file name, by its extension. */
const char *xn_static_content_type(const char *name);

/* Whether a request path may name a file: absolute, and no component
 * that is empty or starts with a dot (no "..", no hidden files). */
bool xn_static_path_ok(const char *path);

#endif
