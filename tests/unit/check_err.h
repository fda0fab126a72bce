/* check_err.h: checks of calls that report through an xn_error, for the
 * unit tests (with check.h). */
#ifndef XN_TEST_CHECK_ERR_H
#define XN_TEST_CHECK_ERR_H

#include <stdbool.h>
#include <stdio.h>

#include "util/err.h"
#include "util/util.h"

/* Whether the call succeeded; prints and frees the error if not. */
static inline bool ok(int rc, xn_error **e)
{
	if (rc < 0 || *e)
		fprintf(stderr, "  unexpected error: %s\n", *e ? (*e)->message : "(none)");
	bool good = rc == 0 && !*e;
	xn_error_free(*e);
	*e = NULL;
	return good;
}

/* Whether the call failed with INTERNAL_ERROR whose message starts with
 * prefix; frees *e. */
static inline bool failed_with(int rc, xn_error **e, const char *prefix)
{
	bool good = rc < 0 && *e && xn_streq((*e)->code, "INTERNAL_ERROR") && (*e)->params[0] &&
		    xn_str_has_prefix((*e)->params[0], prefix);
	if (!good)
		fprintf(stderr, "  expected an error '%s...', got rc %d, '%s'\n", prefix, rc,
			*e ? (*e)->message : "no error");
	xn_error_free(*e);
	*e = NULL;
	return good;
}

#endif
