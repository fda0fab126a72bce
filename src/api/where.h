/* where.h: xapi's get_all_records_where expression language
 * (reference/xenapi.md §2.2):
 *
 *   expr  := expr "or" expr | expr "and" expr | "not" expr | "(" expr ")"
 *          | "true" | "false" | value "=" value
 *   value := "\"literal\"" | field "\"column\""
 *
 * Columns are field names with "__" for "." (name__label = name_label
 * here, since Xenia's fields have no dots). Values compare as strings:
 * booleans "true"/"false", numbers in decimal, enums by name. */
#ifndef XN_WHERE_H
#define XN_WHERE_H

#include <jansson.h>

#include "util/err.h"

typedef struct xn_where xn_where;

/* Parse; NULL with INTERNAL_ERROR-free xapi error
 * ("FIELD_TYPE_ERROR"-like: we use INVALID_VALUE [expr, reason]). */
xn_where *xn_where_parse(const char *text, xn_error **err);
bool xn_where_match(const xn_where *w, json_t *record);
void xn_where_free(xn_where *w);

#endif
