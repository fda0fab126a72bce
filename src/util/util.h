/* util.h: allocation that cannot fail, cleanup attributes, small string
 * helpers. Every module includes this. Allocation failure aborts the
 * process (xn_malloc and friends), so ENOMEM is not threaded through the
 * layers; everything else reports failure through an xn_error (err.h). */
#ifndef XN_UTIL_H
#define XN_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define XN_UNUSED __attribute__((unused))
#define XN_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define XN_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

void *xn_malloc(size_t n);
void *xn_calloc(size_t n, size_t size);
void *xn_realloc(void *p, size_t n);
char *xn_strdup(const char *s);           /* NULL in, NULL out */
char *xn_strndup(const char *s, size_t n);
char *xn_asprintf(const char *fmt, ...) XN_PRINTF(1, 2);
char *xn_vasprintf(const char *fmt, va_list ap);

/* Cleanup attributes: the variable is released when it goes out of scope.
 * Hand ownership out with xn_steal(&var). */
void xn_freep(void *p);
void xn_closep(int *fd);
#define XN_AUTOFREE __attribute__((cleanup(xn_freep)))
#define XN_AUTOCLOSE __attribute__((cleanup(xn_closep)))

static inline void *xn_steal_ptr(void *pp)
{
	void **p = pp;
	void *v = *p;
	*p = NULL;
	return v;
}
#define xn_steal(pp) xn_steal_ptr(pp)

static inline int xn_steal_fd(int *fd)
{
	int v = *fd;
	*fd = -1;
	return v;
}

/* NULL-terminated string vectors. */
char **xn_strv_new(void);
void xn_strv_push(char ***v, const char *s);            /* copies s */
void xn_strv_pushf(char ***v, const char *fmt, ...) XN_PRINTF(2, 3);
size_t xn_strv_len(char *const *v);
void xn_strv_free(char **v);
char *xn_strv_join(char *const *v, const char *sep);
void xn_strvp_free(char ***v);
#define XN_AUTOSTRV __attribute__((cleanup(xn_strvp_free)))

bool xn_str_has_prefix(const char *s, const char *prefix);
bool xn_streq(const char *a, const char *b); /* NULL-safe */

/* Growable byte buffer. */
typedef struct xn_buf {
	char *data;
	size_t len, cap;
} xn_buf;
void xn_buf_append(xn_buf *b, const void *p, size_t n);
void xn_buf_puts(xn_buf *b, const char *s);
void xn_buf_printf(xn_buf *b, const char *fmt, ...) XN_PRINTF(2, 3);
void xn_buf_consume(xn_buf *b, size_t n);   /* drop n bytes from the front */
void xn_buf_reset(xn_buf *b);
char *xn_buf_steal(xn_buf *b);              /* NUL-terminated; b emptied */

/* Fault injection for tests: when the environment variable XENIA_FAULT
 * names this point, the process dies here at once (SIGKILL), as in a
 * crash or a kill -9. */
void xn_fault_point(const char *name);
/* Whether XENIA_FAULT names this point (for faults other than the
 * daemon's own death, such as killing a QEMU). */
bool xn_fault_armed(const char *name);

/* Monotonic and wall clocks. */
uint64_t xn_now_ms(void);           /* monotonic, milliseconds */
double xn_wall_time(void);          /* seconds since the epoch */

#endif
