/* ova_package.c: OVA unpacking and manifest checks (ova_package.h).
 *
 * libarchive reads the tar; each member is written with O_EXCL and
 * O_NOFOLLOW into the directory while its SHA-1 and SHA-256 are
 * computed (OpenSSL EVP), so the manifest is checked without a second
 * read. The manifest's lines are "SHA1(name)= hex" or "SHA256(name)= hex". */
#include "vm/ova_package.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "util/fs.h"

#define BUF (1 << 20)

static int refuse(xn_error **err, const char *what, const char *name)
{
	XN_AUTOFREE char *msg = xn_asprintf("OVA: %s: '%s'", what, name ? name : "");
	return xn_fail(err, "IMPORT_ERROR_GENERIC", msg, NULL);
}

static bool has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && strcasecmp(s + n - m, suffix) == 0;
}

static void hex(const unsigned char *d, unsigned n, char *out)
{
	for (unsigned i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", d[i]);
}

/* Copy the current member into dir/name; digests gets {"SHA1", "SHA256"}. */
static int write_member(struct archive *a, const char *dir, const char *name, json_t *digests,
			xn_error **err)
{
	XN_AUTOFREE char *path = xn_asprintf("%s/%s", dir, name);
	XN_AUTOCLOSE int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return refuse(err, "a member that cannot be written (twice in the archive?)", name);
	EVP_MD_CTX *s1 = EVP_MD_CTX_new(), *s256 = EVP_MD_CTX_new();
	EVP_DigestInit_ex(s1, EVP_sha1(), NULL);
	EVP_DigestInit_ex(s256, EVP_sha256(), NULL);
	XN_AUTOFREE char *buf = xn_malloc(BUF);
	la_ssize_t n;
	int rc = 0;
	while ((n = archive_read_data(a, buf, BUF)) > 0) {
		EVP_DigestUpdate(s1, buf, (size_t)n);
		EVP_DigestUpdate(s256, buf, (size_t)n);
		if (write(fd, buf, (size_t)n) != n) {
			rc = xn_fail_errno(err, errno, "cannot write '%s'", path);
			break;
		}
	}
	if (n < 0 && rc == 0)
		rc = refuse(err, archive_error_string(a), name);
	unsigned char d[EVP_MAX_MD_SIZE];
	char h1[2 * EVP_MAX_MD_SIZE + 1], h256[2 * EVP_MAX_MD_SIZE + 1];
	unsigned len;
	EVP_DigestFinal_ex(s1, d, &len);
	hex(d, len, h1);
	EVP_DigestFinal_ex(s256, d, &len);
	hex(d, len, h256);
	EVP_MD_CTX_free(s1);
	EVP_MD_CTX_free(s256);
	json_object_set_new(digests, name, json_pack("{s:s,s:s}", "SHA1", h1, "SHA256", h256));
	return rc;
}

/* The member's plain name ("./" allowed in front), or NULL if it is not
 * a regular file at the top of the archive. */
static const char *plain_name(struct archive_entry *e)
{
	const char *name = archive_entry_pathname(e);
	if (name && strncmp(name, "./", 2) == 0)
		name += 2;
	if (!name || !*name || strchr(name, '/') || strcmp(name, "..") == 0 ||
	    strcmp(name, ".") == 0 || archive_entry_filetype(e) != AE_IFREG ||
	    archive_entry_hardlink(e) || archive_entry_symlink(e))
		return NULL;
	return name;
}

static int unpack_all(struct archive *a, const char *dir, json_t *digests, xn_error **err)
{
	struct archive_entry *e;
	int r;
	while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
		const char *name = plain_name(e);
		if (!name)
			return refuse(err, "a member that is not a plain file at the top (paths, "
					   "links and devices are refused)",
				      archive_entry_pathname(e));
		if (write_member(a, dir, name, digests, err) < 0)
			return -1;
	}
	if (r != ARCHIVE_EOF)
		return refuse(err, "a damaged or truncated archive", archive_error_string(a));
	return 0;
}

/* Check one manifest line against the digests of the members. */
static int check_line(const char *line, json_t *digests, json_t *seen, xn_error **err)
{
	char algo[16], name[256], want[129];
	if (sscanf(line, "%15[A-Z0-9](%255[^)])= %128s", algo, name, want) != 3)
		return refuse(err, "a manifest line that cannot be read", line);
	const char *got = json_string_value(json_object_get(json_object_get(digests, name), algo));
	if (!json_object_get(digests, name))
		return refuse(err, "the manifest lists a file the archive does not hold", name);
	if (!got)
		return refuse(err, "a manifest digest of an unknown kind", algo);
	if (strcasecmp(got, want) != 0)
		return refuse(err, "digest mismatch (the manifest does not match the file)", name);
	json_object_set_new(seen, name, json_true());
	return 0;
}

static int check_manifest(const char *dir, const char *mf, json_t *digests, xn_error **err)
{
	XN_AUTOFREE char *path = xn_asprintf("%s/%s", dir, mf);
	XN_AUTOFREE char *text = xn_read_file(path, NULL, err);
	if (!text)
		return -1;
	json_t *seen = json_object();
	int rc = 0;
	for (char *save = NULL, *l = strtok_r(text, "\r\n", &save); l && rc == 0;
	     l = strtok_r(NULL, "\r\n", &save))
		if (*l)
			rc = check_line(l, digests, seen, err);
	const char *name;
	json_t *v;
	json_object_foreach(digests, name, v)
		if (rc == 0 && !json_object_get(seen, name) && strcmp(name, mf) != 0 &&
		    !has_suffix(name, ".cert"))
			rc = refuse(err, "a file the manifest does not list", name);
	json_decref(seen);
	return rc;
}

/* The one member ending in suffix (NULL if none); refuses two. */
static int find_one(json_t *digests, const char *suffix, const char **out, xn_error **err)
{
	const char *name;
	json_t *v;
	*out = NULL;
	json_object_foreach(digests, name, v) {
		if (!has_suffix(name, suffix))
			continue;
		if (*out)
			return refuse(err, "more than one member named", suffix);
		*out = name;
	}
	return 0;
}

int xn_ova_unpack(const char *ova, const char *dir, char **ovf, xn_error **err)
{
	struct archive *a = archive_read_new();
	archive_read_support_format_tar(a);
	json_t *digests = json_object();
	int rc = archive_read_open_filename(a, ova, BUF) == ARCHIVE_OK
			 ? unpack_all(a, dir, digests, err)
			 : refuse(err, "not a tar archive", archive_error_string(a));
	archive_read_free(a);
	const char *mf = NULL, *desc = NULL;
	if (rc == 0)
		rc = find_one(digests, ".mf", &mf, err);
	if (rc == 0)
		rc = find_one(digests, ".ovf", &desc, err);
	if (rc == 0 && !desc)
		rc = refuse(err, "no .ovf descriptor in the package", ova);
	if (rc == 0 && mf)
		rc = check_manifest(dir, mf, digests, err);
	if (rc == 0)
		*ovf = xn_strdup(desc);
	json_decref(digests);
	return rc;
}
