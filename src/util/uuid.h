/* uuid.h: random (version 4) UUIDs, XenAPI references and validation. */
#ifndef XN_UUID_H
#define XN_UUID_H

#include <stdbool.h>

#define XN_UUID_LEN 36
#define XN_REF_PREFIX "OpaqueRef:"
#define XN_NULL_REF "OpaqueRef:NULL"

void xn_uuid_generate(char out[XN_UUID_LEN + 1]);
char *xn_uuid_new(void);             /* caller frees */
char *xn_ref_new(void);              /* "OpaqueRef:<uuid>", caller frees */
bool xn_uuid_valid(const char *s);   /* 8-4-4-4-12 hex digits */
bool xn_ref_is_null(const char *ref);/* NULL, "" or OpaqueRef:NULL */
/* Fill buf with n random bytes from the kernel. */
void xn_random_bytes(void *buf, size_t n);

#endif
