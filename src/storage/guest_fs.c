/* guest_fs.c: ext2/3/4 files of a disk image read over NBD (guest_fs.h).
 *
 * libext2fs opens a file system by name through an io_manager; ours
 * ("xenia-nbd") takes as name the address of a `struct part` (the NBD
 * handle, the partition's offset and size) printed by this file, so
 * each file system reads its own partition and nothing else. Reads go
 * through a 1 MiB window, because libext2fs reads files one block at a
 * time and each NBD request is a round trip to qemu-nbd. */
#include "storage/guest_fs.h"

#include <errno.h>
#include <et/com_err.h>
#include <ext2fs/ext2fs.h>
#include <libnbd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/log.h"

#define MAX_FS 16
#define WINDOW (1024 * 1024)
#define SECTOR 512

struct part {
	struct nbd_handle *nbd;
	uint64_t off, size;        /* the partition within the disk */
	char name[32];
	ext2_filsys fs;            /* open once its superblock was found */
	char *cache;               /* WINDOW bytes from cache_off, cache_len valid */
	uint64_t cache_off;
	size_t cache_len;
};

struct xn_guest_disk {
	struct nbd_handle *nbd;
	uint64_t size;
	struct part *parts[MAX_FS];  /* allocated: each io channel points at one */
	size_t nparts;
};

/* ---- the io_manager ---------------------------------------------------- */

/* Bytes [off, off+len) of the partition, through the window. */
static errcode_t part_read(struct part *p, uint64_t off, size_t len, void *out)
{
	if (off > p->size || len > p->size - off)
		return EXT2_ET_SHORT_READ;
	if (off >= p->cache_off && off + len <= p->cache_off + p->cache_len) {
		memcpy(out, p->cache + (off - p->cache_off), len);
		return 0;
	}
	if (len > WINDOW)
		return nbd_pread(p->nbd, out, len, p->off + off, 0) < 0 ? EXT2_ET_SHORT_READ : 0;
	if (!p->cache)
		p->cache = xn_malloc(WINDOW);
	size_t want = p->size - off < WINDOW ? (size_t)(p->size - off) : WINDOW;
	p->cache_len = 0;
	if (nbd_pread(p->nbd, p->cache, want, p->off + off, 0) < 0)
		return EXT2_ET_SHORT_READ;
	p->cache_off = off;
	p->cache_len = want;
	memcpy(out, p->cache, len);
	return 0;
}

static struct struct_io_manager nbd_io_manager;

static errcode_t nbd_io_open(const char *name, int flags, io_channel *channel)
{
	void *addr = NULL;
	if ((flags & IO_FLAG_RW) || sscanf(name, "xenia-nbd:%p", &addr) != 1 || !addr)
		return EXT2_ET_BAD_DEVICE_NAME;
	io_channel c = xn_calloc(1, sizeof(*c));
	c->magic = EXT2_ET_MAGIC_IO_CHANNEL;
	c->manager = &nbd_io_manager;
	c->name = xn_strdup(name);
	c->block_size = 1024;
	c->refcount = 1;
	c->private_data = addr;
	*channel = c;
	return 0;
}

static errcode_t nbd_io_close(io_channel c)
{
	if (--c->refcount > 0)
		return 0;
	free(c->name);
	free(c);
	return 0;
}

static errcode_t nbd_io_set_blksize(io_channel c, int blksize)
{
	c->block_size = blksize;
	return 0;
}

static errcode_t nbd_io_read64(io_channel c, unsigned long long block, int count, void *data)
{
	/* a negative count is a byte count (libext2fs's convention) */
	size_t len = count < 0 ? (size_t)-(long)count : (size_t)count * (size_t)c->block_size;
	return part_read(c->private_data, block * (uint64_t)c->block_size, len, data);
}

static errcode_t nbd_io_read(io_channel c, unsigned long block, int count, void *data)
{
	return nbd_io_read64(c, block, count, data);
}

static errcode_t nbd_io_write(io_channel c, unsigned long block, int count, const void *data)
{
	return EXT2_ET_RO_FILSYS;
}

static errcode_t nbd_io_write64(io_channel c, unsigned long long block, int count,
				const void *data)
{
	return EXT2_ET_RO_FILSYS;
}

static errcode_t nbd_io_flush(io_channel c)
{
	return 0;
}

static errcode_t nbd_io_set_option(io_channel c, const char *option, const char *arg)
{
	return EXT2_ET_INVALID_ARGUMENT;
}

static struct struct_io_manager nbd_io_manager = {
	.magic = EXT2_ET_MAGIC_IO_MANAGER,
	.name = "xenia-nbd",
	.open = nbd_io_open,
	.close = nbd_io_close,
	.set_blksize = nbd_io_set_blksize,
	.read_blk = nbd_io_read,
	.write_blk = nbd_io_write,
	.flush = nbd_io_flush,
	.set_option = nbd_io_set_option,
	.read_blk64 = nbd_io_read64,
	.write_blk64 = nbd_io_write64,
};

/* ---- partitions --------------------------------------------------------- */

static uint32_t le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const unsigned char *p)
{
	return le32(p) | (uint64_t)le32(p + 4) << 32;
}

/* Keep [off, off+size) if an ext superblock (magic 0xEF53) starts at
 * its byte 1024. */
static void add_if_ext(xn_guest_disk *g, uint64_t off, uint64_t size, const char *name)
{
	unsigned char sb[SECTOR];
	if (g->nparts == MAX_FS || off >= g->size || size < 2048 || size > g->size - off ||
	    nbd_pread(g->nbd, sb, sizeof(sb), off + 1024, 0) < 0 || sb[56] != 0x53 ||
	    sb[57] != 0xEF)
		return;
	struct part *p = xn_calloc(1, sizeof(*p));
	*p = (struct part){.nbd = g->nbd, .off = off, .size = size};
	g->parts[g->nparts++] = p;
	snprintf(p->name, sizeof(p->name), "%s", name);
}

/* GPT entries (the header at LBA 1), at most 128 of them. */
static void scan_gpt(xn_guest_disk *g)
{
	unsigned char h[SECTOR];
	if (nbd_pread(g->nbd, h, sizeof(h), SECTOR, 0) < 0 || memcmp(h, "EFI PART", 8) != 0)
		return;
	uint64_t lba = le64(h + 72);
	uint32_t n = le32(h + 80), esize = le32(h + 84);
	if (n > 128 || esize < 128 || esize > 1024 || lba > g->size / SECTOR)
		return;
	XN_AUTOFREE unsigned char *e = xn_malloc((size_t)n * esize);
	if (n == 0 || nbd_pread(g->nbd, e, (size_t)n * esize, lba * SECTOR, 0) < 0)
		return;
	for (uint32_t i = 0; i < n; i++) {
		const unsigned char *x = e + (size_t)i * esize;
		uint64_t first = le64(x + 32), last = le64(x + 40);
		static const unsigned char zero[16];
		if (memcmp(x, zero, 16) == 0 || last < first || last >= g->size / SECTOR)
			continue;
		char name[32];
		snprintf(name, sizeof(name), "partition %u", i + 1);
		add_if_ext(g, first * SECTOR, (last - first + 1) * SECTOR, name);
	}
}

/* The MBR's four primary partitions, a GPT behind a protective MBR, or
 * else the whole disk. */
static void scan_partitions(xn_guest_disk *g)
{
	unsigned char mbr[SECTOR];
	if (nbd_pread(g->nbd, mbr, sizeof(mbr), 0, 0) < 0)
		return;
	bool has_table = mbr[510] == 0x55 && mbr[511] == 0xAA;
	for (int i = 0; has_table && i < 4; i++) {
		const unsigned char *e = mbr + 446 + 16 * i;
		if (e[4] == 0xEE) {
			scan_gpt(g);
			return;
		}
		char name[32];
		snprintf(name, sizeof(name), "partition %d", i + 1);
		if (e[4] != 0 && e[4] != 0x05 && e[4] != 0x0f && e[4] != 0x85)
			add_if_ext(g, (uint64_t)le32(e + 8) * SECTOR, (uint64_t)le32(e + 12) * SECTOR,
				   name);
	}
	if (g->nparts == 0)
		add_if_ext(g, 0, g->size, "the whole disk");
}

/* ---- the disk ------------------------------------------------------------ */

static int open_fs(struct part *p, xn_error **err)
{
	char name[64];
	snprintf(name, sizeof(name), "xenia-nbd:%p", (void *)p);
	errcode_t rc = ext2fs_open2(name, NULL, EXT2_FLAG_64BITS, 0, 0, &nbd_io_manager, &p->fs);
	if (rc) {
		p->fs = NULL;
		return xn_fail_internal(err, "cannot open the file system of %s: %s", p->name,
					error_message(rc));
	}
	return 0;
}

xn_guest_disk *xn_guest_disk_open(const char *image, const char *format, xn_error **err)
{
	xn_guest_disk *g = xn_calloc(1, sizeof(*g));
	g->nbd = nbd_create();
	XN_AUTOFREE char *fmt = xn_asprintf("--format=%s", format);
	char *argv[] = {"qemu-nbd", fmt, "--read-only", (char *)image, NULL};
	int64_t size = -1;
	if (!g->nbd || nbd_connect_systemd_socket_activation(g->nbd, argv) < 0 ||
	    (size = nbd_get_size(g->nbd)) < 0) {
		xn_fail_internal(err, "cannot read the disk '%s': %s", image, nbd_get_error());
		xn_guest_disk_close(g);
		return NULL;
	}
	g->size = (uint64_t)size;
	scan_partitions(g);
	/* keep only the file systems libext2fs accepts */
	size_t k = 0;
	for (size_t i = 0; i < g->nparts; i++) {
		xn_error *e = NULL;
		if (open_fs(g->parts[i], &e) == 0) {
			g->parts[k++] = g->parts[i];
			continue;
		}
		xn_warn("bootloader: %s", e->message);
		xn_error_free(e);
		free(g->parts[i]->cache);
		free(g->parts[i]);
	}
	g->nparts = k;
	return g;
}

void xn_guest_disk_close(xn_guest_disk *g)
{
	if (!g)
		return;
	for (size_t i = 0; i < g->nparts; i++) {
		ext2fs_close_free(&g->parts[i]->fs);
		free(g->parts[i]->cache);
		free(g->parts[i]);
	}
	if (g->nbd) {
		nbd_shutdown(g->nbd, 0);
		nbd_close(g->nbd);
	}
	free(g);
}

size_t xn_guest_disk_nfs(const xn_guest_disk *g)
{
	return g->nparts;
}

const char *xn_guest_disk_fs_name(const xn_guest_disk *g, size_t i)
{
	return g->parts[i]->name;
}

/* ---- files --------------------------------------------------------------- */

/* The inode of a regular file at path (relative ones from dir). */
static int lookup(xn_guest_disk *g, size_t i, const char *dir, const char *path,
		  ext2_ino_t *ino, struct ext2_inode *inode, xn_error **err)
{
	ext2_filsys fs = g->parts[i]->fs;
	ext2_ino_t cwd = EXT2_ROOT_INO;
	errcode_t rc = 0;
	if (dir && path[0] != '/')
		rc = ext2fs_namei_follow(fs, EXT2_ROOT_INO, EXT2_ROOT_INO, dir, &cwd);
	if (!rc)
		rc = ext2fs_namei_follow(fs, EXT2_ROOT_INO, cwd, path, ino);
	if (!rc)
		rc = ext2fs_read_inode(fs, *ino, inode);
	if (rc)
		return xn_fail_internal(err, "cannot find '%s' on %s: %s", path, g->parts[i]->name,
					error_message(rc));
	if (!LINUX_S_ISREG(inode->i_mode))
		return xn_fail_internal(err, "'%s' on %s is not a regular file", path,
					g->parts[i]->name);
	return 0;
}

bool xn_guest_disk_is_file(xn_guest_disk *g, size_t i, const char *dir, const char *path)
{
	ext2_ino_t ino;
	struct ext2_inode inode;
	return lookup(g, i, dir, path, &ino, &inode, NULL) == 0;
}

/* Feed the file's bytes to sink, chunk by chunk. */
static int read_file(xn_guest_disk *g, size_t i, const char *dir, const char *path,
		     uint64_t max, int (*sink)(void *, const char *, size_t), void *ud,
		     uint64_t *size, xn_error **err)
{
	ext2_ino_t ino;
	struct ext2_inode inode;
	if (lookup(g, i, dir, path, &ino, &inode, err) < 0)
		return -1;
	*size = EXT2_I_SIZE(&inode);
	if (*size > max)
		return xn_fail_internal(err, "'%s' on %s is too large (%llu bytes, at most %llu)",
					path, g->parts[i]->name, (unsigned long long)*size,
					(unsigned long long)max);
	ext2_file_t f;
	errcode_t rc = ext2fs_file_open(g->parts[i]->fs, ino, 0, &f);
	if (rc)
		return xn_fail_internal(err, "cannot open '%s' on %s: %s", path, g->parts[i]->name,
					error_message(rc));
	XN_AUTOFREE char *buf = xn_malloc(WINDOW);
	int sunk = 0;
	for (uint64_t done = 0; !rc && sunk == 0 && done < *size;) {
		unsigned int got = 0;
		rc = ext2fs_file_read(f, buf, WINDOW, &got);
		if (!rc && got == 0)
			rc = EXT2_ET_SHORT_READ;
		if (!rc)
			sunk = sink(ud, buf, got);
		done += got;
	}
	int saved = errno;
	ext2fs_file_close(f);
	if (sunk < 0)
		return xn_fail_errno(err, saved, "cannot copy '%s'", path);
	if (rc)
		return xn_fail_internal(err, "cannot read '%s' on %s: %s", path, g->parts[i]->name,
					error_message(rc));
	return 0;
}

static int sink_buf(void *ud, const char *p, size_t n)
{
	xn_buf_append(ud, p, n);
	return 0;
}

char *xn_guest_disk_read(xn_guest_disk *g, size_t i, const char *dir, const char *path,
			 uint64_t max, size_t *len, xn_error **err)
{
	xn_buf b = {0};
	uint64_t size = 0;
	if (read_file(g, i, dir, path, max, sink_buf, &b, &size, err) < 0) {
		xn_buf_reset(&b);
		return NULL;
	}
	*len = b.len;
	xn_buf_append(&b, "", 1);
	return xn_buf_steal(&b);
}

static int sink_fd(void *ud, const char *p, size_t n)
{
	int fd = *(int *)ud;
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int xn_guest_disk_copy(xn_guest_disk *g, size_t i, const char *dir, const char *path, int fd,
		       uint64_t *budget, xn_error **err)
{
	uint64_t size = 0;
	if (read_file(g, i, dir, path, *budget, sink_fd, &fd, &size, err) < 0)
		return -1;
	*budget -= size;
	return 0;
}
