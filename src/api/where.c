/* where.c: parser and evaluator for get_all_records_where (where.h).
 * A recursive-descent parser over a tiny tokenizer; depth and length are
 * bounded so hostile input cannot exhaust the stack. */
#include "api/where.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 100
#define MAX_LEN 65536

enum node_kind { N_TRUE, N_FALSE, N_NOT, N_AND, N_OR, N_EQ };
enum val_kind { V_LITERAL, V_FIELD };

struct value {
	enum val_kind kind;
	char *text;
};

struct xn_where {
	enum node_kind kind;
	struct xn_where *a, *b;     /* NOT: a; AND/OR: a, b */
	struct value l, r;          /* EQ */
};

struct parser {
	const char *s;
	int depth;
	const char *error;
};

static void skip_ws(struct parser *p)
{
	while (isspace((unsigned char)*p->s))
		p->s++;
}

/* A keyword, not followed by an identifier character. */
static bool keyword(struct parser *p, const char *kw)
{
	skip_ws(p);
	size_t n = strlen(kw);
	if (strncmp(p->s, kw, n) != 0 || isalnum((unsigned char)p->s[n]) || p->s[n] == '_')
		return false;
	p->s += n;
	return true;
}

static char *quoted(struct parser *p)
{
	skip_ws(p);
	if (*p->s != '"') {
		p->error = "expected a quoted string";
		return NULL;
	}
	const char *start = ++p->s;
	while (*p->s && *p->s != '"')
		p->s++;
	if (!*p->s) {
		p->error = "unterminated string";
		return NULL;
	}
	char *t = xn_strndup(start, (size_t)(p->s - start));
	p->s++;
	return t;
}

static bool parse_value(struct parser *p, struct value *v)
{
	v->kind = keyword(p, "field") ? V_FIELD : V_LITERAL;
	v->text = quoted(p);
	if (v->text && v->kind == V_FIELD) {
		/* xapi's column names use "__" where the datamodel has "." */
		char *w = v->text;
		for (char *r = v->text; *r; r++) {
			if (r[0] == '_' && r[1] == '_') {
				*w++ = '_';
				r++;
			} else {
				*w++ = *r;
			}
		}
		*w = '\0';
	}
	return v->text != NULL;
}

static xn_where *node(enum node_kind k)
{
	xn_where *n = xn_calloc(1, sizeof(*n));
	n->kind = k;
	return n;
}

static xn_where *parse_or(struct parser *p);

static xn_where *parse_factor(struct parser *p)
{
	if (++p->depth > MAX_DEPTH) {
		p->error = "expression nested too deeply";
		return NULL;
	}
	xn_where *n = NULL;
	skip_ws(p);
	if (keyword(p, "not")) {
		xn_where *a = parse_factor(p);
		if (a) {
			n = node(N_NOT);
			n->a = a;
		}
	} else if (*p->s == '(') {
		p->s++;
		n = parse_or(p);
		skip_ws(p);
		if (n && *p->s != ')') {
			p->error = "expected ')'";
			xn_where_free(n);
			n = NULL;
		} else if (n) {
			p->s++;
		}
	} else if (keyword(p, "true")) {
		n = node(N_TRUE);
	} else if (keyword(p, "false")) {
		n = node(N_FALSE);
	} else {
		n = node(N_EQ);
		skip_ws(p);
		if (!parse_value(p, &n->l)) {
			xn_where_free(n);
			n = NULL;
		} else {
			skip_ws(p);
			if (*p->s != '=') {
				p->error = "expected '='";
				xn_where_free(n);
				n = NULL;
			} else {
				p->s++;
				if (!parse_value(p, &n->r)) {
					xn_where_free(n);
					n = NULL;
				}
			}
		}
	}
	p->depth--;
	return n;
}

static xn_where *parse_binary(struct parser *p, const char *kw, enum node_kind k,
			      xn_where *(*sub)(struct parser *))
{
	xn_where *left = sub(p);
	while (left && keyword(p, kw)) {
		xn_where *right = sub(p);
		if (!right) {
			xn_where_free(left);
			return NULL;
		}
		xn_where *n = node(k);
		n->a = left;
		n->b = right;
		left = n;
	}
	return left;
}

static xn_where *parse_and(struct parser *p)
{
	return parse_binary(p, "and", N_AND, parse_factor);
}

static xn_where *parse_or(struct parser *p)
{
	return parse_binary(p, "or", N_OR, parse_and);
}

xn_where *xn_where_parse(const char *text, xn_error **err)
{
	if (strlen(text) > MAX_LEN) {
		xn_fail(err, "INVALID_VALUE", "expr", "expression too long", NULL);
		return NULL;
	}
	struct parser p = {text, 0, NULL};
	xn_where *w = parse_or(&p);
	skip_ws(&p);
	if (w && *p.s) {
		p.error = "unexpected text after the expression";
		xn_where_free(w);
		w = NULL;
	}
	if (!w)
		xn_fail(err, "INVALID_VALUE", text, p.error ? p.error : "syntax error", NULL);
	return w;
}

/* The string form of a record value, as xapi compares it. */
static char *string_form(json_t *v)
{
	if (json_is_string(v))
		return xn_strdup(json_string_value(v));
	if (json_is_boolean(v))
		return xn_strdup(json_is_true(v) ? "true" : "false");
	if (json_is_integer(v))
		return xn_asprintf("%lld", (long long)json_integer_value(v));
	if (json_is_real(v))
		return xn_asprintf("%g", json_real_value(v));
	return NULL; /* sets, maps: never equal to a literal */
}

static char *resolve(const struct value *v, json_t *rec)
{
	if (v->kind == V_LITERAL)
		return xn_strdup(v->text);
	return string_form(json_object_get(rec, v->text));
}

bool xn_where_match(const xn_where *w, json_t *rec)
{
	switch (w->kind) {
	case N_TRUE:
		return true;
	case N_FALSE:
		return false;
	case N_NOT:
		return !xn_where_match(w->a, rec);
	case N_AND:
		return xn_where_match(w->a, rec) && xn_where_match(w->b, rec);
	case N_OR:
		return xn_where_match(w->a, rec) || xn_where_match(w->b, rec);
	case N_EQ: {
		XN_AUTOFREE char *l = resolve(&w->l, rec);
		XN_AUTOFREE char *r = resolve(&w->r, rec);
		return l && r && strcmp(l, r) == 0;
	}
	}
	return false;
}

void xn_where_free(xn_where *w)
{
	if (!w)
		return;
	xn_where_free(w->a);
	xn_where_free(w->b);
	free(w->l.text);
	free(w->r.text);
	free(w);
}
