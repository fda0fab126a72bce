/* err.h: the error type every fallible function reports through.
 *
 * An xn_error carries a XenAPI error code ("VM_BAD_POWER_STATE"), its
 * parameters (what goes on the wire after the code) and a message for
 * logs. Functions take `xn_error **err` last and return 0 / a pointer on
 * success, -1 / NULL on failure; err may be NULL when the caller does not
 * care. Only the API layer and the CLI serialise or print errors. */
#ifndef XN_ERR_H
#define XN_ERR_H

#include "util/util.h"

typedef struct xn_error {
	char *code;     /* XenAPI error code */
	char **params;  /* NULL-terminated; may be empty */
	char *message;  /* human-readable, for logs */
} xn_error;

/* Set *err (if err is non-NULL and *err is NULL) to code with the given
 * parameters, a NULL-terminated list of strings. Returns -1. */
int xn_fail(xn_error **err, const char *code, ...) __attribute__((sentinel));
int xn_failv(xn_error **err, const char *code, char *const *params);
/* Same, with the parameters as a va_list of strings ended by NULL. */
int xn_fail_va(xn_error **err, const char *code, va_list ap);

/* INTERNAL_ERROR [message]. Returns -1. */
int xn_fail_internal(xn_error **err, const char *fmt, ...) XN_PRINTF(2, 3);

/* INTERNAL_ERROR with ": strerror(errnum)" appended. Returns -1. */
int xn_fail_errno(xn_error **err, int errnum, const char *fmt, ...) XN_PRINTF(3, 4);

/* Prefix the message of an existing error (context for logs). */
void xn_error_prefix(xn_error *e, const char *fmt, ...) XN_PRINTF(2, 3);

void xn_error_free(xn_error *e);
void xn_errorp_free(xn_error **e);
#define XN_AUTOERR __attribute__((cleanup(xn_errorp_free)))

/* "CODE: p1, p2 (message)", caller frees. */
char *xn_error_str(const xn_error *e);

/* Move *src into *dst (if dst is non-NULL and empty); *src is cleared. */
int xn_error_propagate(xn_error **dst, xn_error **src);

#endif
