/* bootcfg.c: grub.cfg and extlinux.conf menus read into the entry to
 * boot (bootcfg.h).
 *
 * grub.cfg is a small shell language. Only its lexical rules are
 * followed (quotes, escapes, comments, `;`, braces); of its commands,
 * `menuentry` and `submenu` blocks, `set default=` at the top level, and
 * inside an entry `linux`/`initrd` (and their 16/efi spellings). Nothing
 * is evaluated: words that are variable references are dropped from the
 * command line, as grub would leave unset variables empty. extlinux is
 * line-based: DEFAULT, LABEL, KERNEL/LINUX, INITRD, APPEND, MENU LABEL,
 * MENU DEFAULT. */
#include "vm/bootcfg.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_DEPTH 8

void xn_boot_entry_free(xn_boot_entry *e)
{
	if (!e)
		return;
	free(e->title);
	free(e->kernel);
	xn_strv_free(e->initrds);
	free(e->args);
	free(e);
}

static xn_boot_entry *entry_new(const char *title)
{
	xn_boot_entry *e = xn_calloc(1, sizeof(*e));
	e->title = xn_strdup(title ? title : "");
	e->initrds = xn_strv_new();
	e->args = xn_strdup("");
	return e;
}

/* ---- a menu: entries and grub submenus -------------------------------- */

struct item {
	xn_boot_entry *e;   /* NULL for a submenu */
	char *id;           /* grub's --id / $menuentry_id_option, or NULL */
	char *title;
	struct menu *sub;
};

struct menu {
	struct item *v;
	size_t n;
};

static void menu_free(struct menu *m)
{
	for (size_t i = 0; m && i < m->n; i++) {
		xn_boot_entry_free(m->v[i].e);
		free(m->v[i].id);
		free(m->v[i].title);
		menu_free(m->v[i].sub);
		free(m->v[i].sub);
	}
	if (m)
		free(m->v);
}

static struct item *menu_add(struct menu *m, const char *title)
{
	m->v = xn_realloc(m->v, (m->n + 1) * sizeof(*m->v));
	struct item *it = &m->v[m->n++];
	*it = (struct item){.title = xn_strdup(title ? title : "")};
	return it;
}

/* The item of m that key names: an index, else a title or an id. */
static struct item *menu_find(struct menu *m, const char *key, size_t len)
{
	XN_AUTOFREE char *k = xn_strndup(key, len);
	char *end;
	long idx = strtol(k, &end, 10);
	if (k[0] && !*end)
		return idx >= 0 && (size_t)idx < m->n ? &m->v[idx] : NULL;
	for (size_t i = 0; i < m->n; i++)
		if (strcasecmp(m->v[i].title, k) == 0 || xn_streq(m->v[i].id, k))
			return &m->v[i];
	return NULL;
}

/* The entry a path "a>b>c" names in m (a submenu: its first entry). */
static xn_boot_entry *menu_pick(struct menu *m, const char *path)
{
	for (int depth = 0; m && depth < MAX_DEPTH; depth++) {
		const char *gt = strchr(path, '>');
		size_t len = gt ? (size_t)(gt - path) : strlen(path);
		struct item *it = menu_find(m, path, len);
		if (!it)
			return NULL;
		if (it->e && !gt)
			return it->e;
		m = it->sub;
		path = gt ? gt + 1 : "0";
	}
	return NULL;
}

/* e leaves m (which is then freed without it). */
static void menu_detach(struct menu *m, const xn_boot_entry *e)
{
	for (size_t i = 0; m && i < m->n; i++) {
		if (m->v[i].e == e)
			m->v[i].e = NULL;
		menu_detach(m->v[i].sub, e);
	}
}

static xn_boot_entry *take_entry(struct menu *m, const char *select, const char *dflt,
				 const char *what, xn_error **err)
{
	xn_boot_entry *e = select && select[0] ? menu_pick(m, select) : NULL;
	if (!e && !(select && select[0]))
		e = (dflt && dflt[0] ? menu_pick(m, dflt) : NULL) ?: menu_pick(m, "0");
	if (!e || !e->kernel) {
		if (select && select[0])
			xn_fail_internal(err, "%s has no entry '%s' with a kernel", what, select);
		else
			xn_fail_internal(err, "%s has no entry with a kernel", what);
		return NULL;
	}
	menu_detach(m, e);
	return e;
}

/* ---- grub: words ------------------------------------------------------ */

enum tok { T_EOF, T_WORD, T_SEP, T_LBRACE, T_RBRACE };

struct lex {
	const char *p;
};

static bool word_end(char c)
{
	return c == '\0' || c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == ';';
}

static void lex_blank(struct lex *l)
{
	for (;;) {
		if (*l->p == ' ' || *l->p == '\t' || *l->p == '\r')
			l->p++;
		else if (l->p[0] == '\\' && l->p[1] == '\n')
			l->p += 2;
		else if (*l->p == '#')
			l->p += strcspn(l->p, "\n");
		else
			return;
	}
}

/* One word with grub's quoting: '...' literal, "..." with \ escapes. */
static char *lex_word(struct lex *l)
{
	xn_buf b = {0};
	while (!word_end(*l->p)) {
		char q = *l->p;
		if (q == '\'' || q == '"') {
			l->p++;
			while (*l->p && *l->p != q) {
				if (q == '"' && l->p[0] == '\\' && l->p[1])
					l->p++;
				xn_buf_append(&b, l->p++, 1);
			}
			if (*l->p)
				l->p++;
		} else if (q == '\\' && l->p[1]) {
			xn_buf_append(&b, l->p + 1, 1);
			l->p += 2;
		} else {
			xn_buf_append(&b, l->p++, 1);
		}
	}
	xn_buf_append(&b, "", 1);
	return xn_buf_steal(&b);
}

static enum tok lex_next(struct lex *l, char **word)
{
	lex_blank(l);
	char c = *l->p;
	if (!c)
		return T_EOF;
	if (c == '\n' || c == ';') {
		l->p++;
		return T_SEP;
	}
	if ((c == '{' || c == '}') && word_end(l->p[1])) {
		l->p++;
		return c == '{' ? T_LBRACE : T_RBRACE;
	}
	*word = lex_word(l);
	return T_WORD;
}

/* The words of one command (caller frees) and what ended it. */
static enum tok lex_command(struct lex *l, char ***words)
{
	*words = xn_strv_new();
	for (;;) {
		char *w = NULL;
		enum tok t = lex_next(l, &w);
		if (t != T_WORD)
			return t;
		xn_strv_push(words, w);
		free(w);
	}
}

/* ---- grub: commands --------------------------------------------------- */

static const char *strip_device(const char *path)
{
	if (path[0] == '(') {
		const char *close = strchr(path, ')');
		if (close)
			return close[1] ? close + 1 : "/";
	}
	return path;
}

static bool is_cmd(const char *w, const char *name)
{
	size_t n = strlen(name);
	return strncmp(w, name, n) == 0 &&
	       (!w[n] || strcmp(w + n, "16") == 0 || strcmp(w + n, "efi") == 0);
}

/* linux/initrd inside a menuentry. */
static void grub_entry_command(xn_boot_entry *e, char **w)
{
	size_t n = xn_strv_len(w);
	if (n >= 2 && (is_cmd(w[0], "linux") || strcmp(w[0], "kernel") == 0)) {
		free(e->kernel);
		e->kernel = xn_strdup(strip_device(w[1]));
		XN_AUTOSTRV char **args = xn_strv_new();
		for (size_t i = 2; i < n; i++)
			if (w[i][0] != '$')
				xn_strv_push(&args, w[i]);
		free(e->args);
		e->args = xn_strv_join(args, " ");
	} else if (n >= 2 && is_cmd(w[0], "initrd")) {
		xn_strv_free(e->initrds);
		e->initrds = xn_strv_new();
		for (size_t i = 1; i < n; i++)
			xn_strv_push(&e->initrds, strip_device(w[i]));
	}
}

static void grub_block(struct lex *l, struct menu *m, xn_boot_entry *in, int depth,
		       char **dflt);

/* menuentry 'title' [--id id | $menuentry_id_option id] ... { body } */
static void grub_menuentry(struct lex *l, struct menu *m, char **w, int depth, bool sub)
{
	struct item *it = menu_add(m, xn_strv_len(w) > 1 ? w[1] : "");
	for (size_t i = 2; w[i]; i++) {
		if (xn_str_has_prefix(w[i], "--id="))
			it->id = xn_strdup(w[i] + 5);
		else if ((strcmp(w[i], "--id") == 0 || strcmp(w[i], "$menuentry_id_option") == 0) &&
			 w[i + 1] && !it->id)
			it->id = xn_strdup(w[i + 1]);
	}
	if (sub) {
		it->sub = xn_calloc(1, sizeof(*it->sub));
		grub_block(l, it->sub, NULL, depth + 1, NULL);
	} else {
		it->e = entry_new(it->title);
		grub_block(l, NULL, it->e, depth + 1, NULL);
	}
}

/* Commands up to the closing brace (depth > 0) or the end. Inside an
 * entry (in) they fill it; else menuentry/submenu add to m. Other
 * blocks (function bodies) are read and ignored. */
static void grub_block(struct lex *l, struct menu *m, xn_boot_entry *in, int depth,
		       char **dflt)
{
	for (;;) {
		XN_AUTOSTRV char **w = NULL;
		enum tok t = lex_command(l, &w);
		bool braced = t == T_LBRACE && w[0] && depth < MAX_DEPTH;
		if (braced && m && (strcmp(w[0], "menuentry") == 0 || strcmp(w[0], "submenu") == 0))
			grub_menuentry(l, m, w, depth, w[0][0] == 's');
		else if (braced)
			grub_block(l, NULL, NULL, depth + 1, NULL);
		else if (in && w[0])
			grub_entry_command(in, w);
		else if (dflt && w[0] && strcmp(w[0], "set") == 0 && w[1] &&
			 xn_str_has_prefix(w[1], "default=")) {
			free(*dflt);
			*dflt = xn_strdup(w[1] + 8);
		}
		if (t == T_EOF || (t == T_RBRACE && depth > 0))
			return;
	}
}

xn_boot_entry *xn_bootcfg_grub(const char *text, const char *select, xn_error **err)
{
	struct lex l = {.p = text};
	struct menu m = {0};
	XN_AUTOFREE char *dflt = NULL;
	grub_block(&l, &m, NULL, 0, &dflt);
	xn_boot_entry *e = take_entry(&m, select, dflt, "grub.cfg", err);
	menu_free(&m);
	return e;
}

/* ---- extlinux --------------------------------------------------------- */

/* initrd=a,b words of an APPEND line become the entry's initrds when it
 * has no INITRD line (syslinux loads them itself). */
static void extlinux_append_initrds(xn_boot_entry *e)
{
	XN_AUTOSTRV char **keep = xn_strv_new();
	bool had = e->initrds[0] != NULL;
	char *save = NULL;
	XN_AUTOFREE char *copy = xn_strdup(e->args);
	for (char *w = strtok_r(copy, " \t", &save); w; w = strtok_r(NULL, " \t", &save)) {
		if (!xn_str_has_prefix(w, "initrd=")) {
			xn_strv_push(&keep, w);
			continue;
		}
		char *s2 = NULL;
		for (char *f = strtok_r(w + 7, ",", &s2); f && !had; f = strtok_r(NULL, ",", &s2))
			xn_strv_push(&e->initrds, f);
	}
	free(e->args);
	e->args = xn_strv_join(keep, " ");
}

static void extlinux_set(xn_boot_entry *e, const char *key, const char *val, bool *is_default)
{
	if (strcasecmp(key, "kernel") == 0 || strcasecmp(key, "linux") == 0) {
		free(e->kernel);
		e->kernel = xn_strndup(val, strcspn(val, " \t"));
	} else if (strcasecmp(key, "initrd") == 0) {
		xn_strv_free(e->initrds);
		e->initrds = xn_strv_new();
		XN_AUTOFREE char *copy = xn_strdup(val);
		char *save = NULL;
		for (char *f = strtok_r(copy, ",", &save); f; f = strtok_r(NULL, ",", &save))
			xn_strv_push(&e->initrds, f);
	} else if (strcasecmp(key, "append") == 0) {
		free(e->args);
		e->args = xn_strdup(strcmp(val, "-") == 0 ? "" : val);
	} else if (strcasecmp(key, "menu") == 0 && strncasecmp(val, "default", 7) == 0 &&
		   word_end(val[7])) {
		*is_default = true;
	}
}

/* The DEFAULT of a config that names no label: "kernel args". */
static xn_boot_entry *extlinux_bare_default(const char *dflt)
{
	xn_boot_entry *e = entry_new(dflt);
	size_t k = strcspn(dflt, " \t");
	e->kernel = xn_strndup(dflt, k);
	free(e->args);
	e->args = xn_strdup(dflt + k + strspn(dflt + k, " \t"));
	extlinux_append_initrds(e);
	return e;
}

xn_boot_entry *xn_bootcfg_extlinux(const char *text, const char *select, xn_error **err)
{
	struct menu m = {0};
	XN_AUTOFREE char *dflt = NULL, *menu_default = NULL;
	XN_AUTOFREE char *copy = xn_strdup(text);
	char *save = NULL;
	for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		line += strspn(line, " \t");
		line[strcspn(line, "\r")] = '\0';
		size_t k = strcspn(line, " \t");
		XN_AUTOFREE char *key = xn_strndup(line, k);
		char *val = line + k + strspn(line + k, " \t");
		for (size_t n = strlen(val); n && isspace((unsigned char)val[n - 1]); n--)
			val[n - 1] = '\0';
		struct item *cur = m.n ? &m.v[m.n - 1] : NULL;
		bool is_default = false;
		if (strcasecmp(key, "default") == 0) {
			free(dflt);
			dflt = xn_strdup(val);
		} else if (strcasecmp(key, "label") == 0) {
			menu_add(&m, val)->e = entry_new(val);
		} else if (cur) {
			extlinux_set(cur->e, key, val, &is_default);
			if (is_default && !menu_default)
				menu_default = xn_strdup(cur->title);
		}
	}
	for (size_t i = 0; i < m.n; i++)
		extlinux_append_initrds(m.v[i].e);
	bool label = dflt && menu_find(&m, dflt, strlen(dflt));
	xn_boot_entry *e = NULL;
	if (!(select && select[0]) && dflt && dflt[0] && !label && !strstr(dflt, ".c32"))
		e = extlinux_bare_default(dflt);
	else
		e = take_entry(&m, select, label ? dflt : menu_default, "extlinux.conf", err);
	menu_free(&m);
	return e;
}
