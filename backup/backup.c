/*
 * backup.c - one backup run: walk the sources once, decide per entry from
 * its stat whether this level must store it, write what must be stored as a
 * pax tar stream (libarchive) into a new store archive, end the stream with
 * .strata/manifest, and record versions in the catalog in one transaction.
 *
 * Invariants:
 * - The live versions of a set (last_snapshot NULL) describe the tree of
 *   the newest committed snapshot of that set.  A new snapshot N therefore
 *   compares each walked entry with its live version: unchanged entries cost
 *   nothing, a stored entry closes the live version (last = N - 1) and adds
 *   a new one, an entry that vanished closes its version.
 * - Which entries are stored: full, all; incremental, those whose stat
 *   (type, mode, owner, size, mtime, ctime, inode) differs from the live
 *   version; differential, those plus every entry whose live version was
 *   created after the base full (its bytes live in an incremental's archive,
 *   and a differential must need only its full).
 * - One archive per snapshot; its catalog row id is the snapshot id, so the
 *   versions point at it before it is finished.  No entry stored: no archive.
 * - The tar stream is written unblocked (bytes_per_block 0), so the stream
 *   offset after archive_write_header is where that entry's data starts.
 *   For a sparse file libarchive first writes the sparse map, so the data
 *   offset is the end offset minus the stored segment bytes.
 * - Frame sizes follow the content: a run of small files fills frames of
 *   small_frame_size (32 KiB), so reading one small file back decompresses
 *   little; a file of at least frame_size starts a frame of its own and is
 *   cut into frame_size (1 MiB) frames, which compress better and stream
 *   faster.  The mount's random reads and the compression ratio pull in
 *   opposite directions; bench/README.md has the measurements.  Past 64 GiB
 *   of stream small frames grow to 4x, past 256 GiB to frame_size, which
 *   bounds an archive's frame table (STRATA_FRAMES_MAX frames, and the
 *   mount keeps the tables of the archives it reads in memory).
 * - A file is read once: the bytes go to the tar stream and SHA-256 at the
 *   same time.  If its stat changes while it is read, the entry is written
 *   again (a later tar member of the same name wins on extraction, the
 *   catalog points at the last copy); after three tries it is reported and
 *   the previous version is kept.
 */
#include "backup.h"
#include "tarlib.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#define READ_CHUNK (1u << 20)
#define INPLACE_MIN (64u << 10)
#define LARGE_FRAME (1u << 20)
#define SMALL_FRAME (32u << 10)
#define SMALL_GROW_AT (64ull << 30)     /* stream offset: small frames 4x from here */
#define SMALL_LARGE_AT (256ull << 30)   /* and frame_size from here */
#define MAX_TRIES 3
#define XATTR_LIST_MAX_BYTES (64u << 10)
#define XATTR_LIST_SMALL 512u
#define MANIFEST_MEMBER ".strata/manifest"

struct idname {
	uint32_t id;
	char name[64];
	bool found;
};

struct idcache {
	struct idname *v;
	size_t n, alloc;
};

struct hardlink {
	uint64_t dev, ino;
	char *path;              /* tar path of the first stored name */
	uint64_t data_offset;
	uint8_t *sparse;
	size_t sparse_len;
	uint8_t sha256[32];
};

struct archive_name {
	int64_t id;
	char name[64];
};

struct run {
	struct strata_repo *repo;
	struct strata_catalog *cat;
	const struct strata_backup_options *opts;
	struct strata_error *err;

	struct strata_snapshot snap;
	int64_t set_id;
	int64_t full_id;            /* base full, for differentials */
	int fatal;                  /* sticky */

	struct strata_archive_writer *writer;
	uint64_t frame_start;       /* stream offset of the frame being filled (as far as we cut) */
	uint32_t large, small;      /* frame sizes */
	struct archive *tar;
	struct archive_entry *entry;
	struct strata_error tar_err;
	struct strata_sha256 *sha;
	bool sha_dirty;             /* sha holds bytes of a copy that did not finish */
	uint8_t *buf;

	struct strata_buf path;     /* current tar path, "srv/erp/x" */
	struct strata_buf mlines;   /* manifest lines not yet in 'manifest' */
	FILE *manifest;             /* NULL until the lines outgrow MANIFEST_MEM */
	int manifest_err;           /* errno of the first manifest failure */
	size_t manifest_mem;        /* spill mlines at this size */
	struct idcache users, groups;
	struct hardlink *links;
	size_t nlinks, alinks;
	struct strata_inomap linkmap;   /* (dev, ino) -> index in links */
	struct archive_name *anames;
	size_t nanames;

	uint64_t entries, stored, bytes_read, warnings;
	uint64_t in_tree;           /* entries of the new snapshot's tree (manifest lines) */
	int64_t last_progress_ns;
};

/* ---- small helpers ---------------------------------------------------- */

static void warnf(struct run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void warnf(struct run *r, const char *fmt, ...)
{
	char msg[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	r->warnings++;
	if (r->opts->warn)
		r->opts->warn(r->opts->ctx, msg);
}

/* "/srv/erp/x" quoted for messages, from the current tar path. */
static const char *qpath(struct run *r, char *dst, size_t size)
{
	char tmp[1200];

	strata_quote(tmp, sizeof(tmp), (const char *)r->path.data, r->path.len);
	snprintf(dst, size, "/%s", tmp);
	return dst;
}

static void progress(struct run *r, bool force)
{
	int64_t now;

	if (!r->opts->progress)
		return;
	now = strata_now_ns();
	if (!force && now - r->last_progress_ns < 100000000)
		return;
	r->last_progress_ns = now;
	{
		struct strata_backup_progress p = {
			.entries = r->entries,
			.bytes_read = r->bytes_read,
			.bytes_stored = 0,
			.path = (const char *)r->path.data,
		};
		r->opts->progress(r->opts->ctx, &p);
	}
}

static const char *id_lookup(struct idcache *c, uint32_t id, bool user)
{
	for (size_t i = 0; i < c->n; i++)
		if (c->v[i].id == id)
			return c->v[i].found ? c->v[i].name : NULL;
	if (strata_grow(&c->v, &c->alloc, c->n + 1, sizeof(*c->v)) < 0)
		return NULL;
	{
		struct idname *e = &c->v[c->n++];
		char buf[4096];

		e->id = id;
		e->found = false;
		if (user) {
			struct passwd pw, *res = NULL;

			if (getpwuid_r(id, &pw, buf, sizeof(buf), &res) == 0 && res &&
			    strlen(res->pw_name) < sizeof(e->name)) {
				snprintf(e->name, sizeof(e->name), "%s", res->pw_name);
				e->found = true;
			}
		} else {
			struct group gr, *res = NULL;

			if (getgrgid_r(id, &gr, buf, sizeof(buf), &res) == 0 && res &&
			    strlen(res->gr_name) < sizeof(e->name)) {
				snprintf(e->name, sizeof(e->name), "%s", res->gr_name);
				e->found = true;
			}
		}
		return e->found ? e->name : NULL;
	}
}

static char type_of(mode_t m)
{
	switch (m & S_IFMT) {
	case S_IFREG: return STRATA_T_REG;
	case S_IFDIR: return STRATA_T_DIR;
	case S_IFLNK: return STRATA_T_LNK;
	case S_IFIFO: return STRATA_T_FIFO;
	case S_IFCHR: return STRATA_T_CHR;
	case S_IFBLK: return STRATA_T_BLK;
	default: return STRATA_T_SOCK;
	}
}

static int64_t ts_ns(const struct timespec *ts)
{
	return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
}

static bool stat_changed(const struct stat *st, const struct strata_entry *lv)
{
	if (type_of(st->st_mode) != lv->type || (uint32_t)st->st_mode != lv->mode ||
	    st->st_uid != lv->uid || st->st_gid != lv->gid ||
	    ts_ns(&st->st_mtim) != lv->mtime_ns || ts_ns(&st->st_ctim) != lv->ctime_ns ||
	    (uint64_t)st->st_ino != lv->ino)
		return true;
	if (S_ISREG(st->st_mode) && (uint64_t)st->st_size != lv->size)
		return true;
	return false;
}

/* ---- excludes --------------------------------------------------------- */

/*
 * A pattern without '/' (other than a trailing one) matches an entry's name;
 * one with a '/' matches the absolute path.  A trailing '/' matches
 * directories only: "__pycache__/", "/srv/erp/tmp/".
 */
static bool excluded(struct run *r, const char *name, bool is_dir)
{
	const char *const *ex = r->opts->excludes;
	char abspath[8192];

	if (!ex)
		return false;
	abspath[0] = '\0';
	for (; *ex; ex++) {
		char pat[1024];
		size_t len = strlen(*ex);
		bool dir_only = len > 1 && (*ex)[len - 1] == '/';

		if (len == 0 || len >= sizeof(pat))
			continue;
		memcpy(pat, *ex, len + 1);
		if (dir_only)
			pat[--len] = '\0';
		if (dir_only && !is_dir)
			continue;
		if (strchr(pat, '/')) {
			if (!abspath[0])
				snprintf(abspath, sizeof(abspath), "/%s", (const char *)r->path.data);
			if (fnmatch(pat, abspath, FNM_PATHNAME | FNM_PERIOD) == 0)
				return true;
		} else if (fnmatch(pat, name, FNM_PERIOD) == 0 || fnmatch(pat, name, 0) == 0) {
			return true;
		}
	}
	return false;
}

/* A directory holding one of the exclude-if-present marker files. */
static bool has_marker(struct run *r, int dirfd, const char *name)
{
	const char *const *m = r->opts->exclude_if_present;
	struct stat st;

	for (; m && *m; m++) {
		char p[512];

		if (snprintf(p, sizeof(p), "%s/%s", name, *m) >= (int)sizeof(p))
			continue;
		if (fstatat(dirfd, p, &st, AT_SYMLINK_NOFOLLOW) == 0)
			return true;
	}
	return false;
}

/* ---- the tar stream --------------------------------------------------- */

static la_ssize_t tar_write_cb(struct archive *a, void *ctx, const void *buf, size_t n)
{
	struct run *r = ctx;

	(void)a;
	if (strata_archive_writer_write(r->writer, buf, n, &r->tar_err) < 0)
		return -1;
	return (la_ssize_t)n;
}

static int tar_fail(struct run *r, const char *what)
{
	char q[1400];

	if (r->tar_err.code)
		return strata_error_set(r->err, r->tar_err.code, r->tar_err.kind, "%s", r->tar_err.msg);
	return strata_error_set(r->err, -EIO, STRATA_ERR_IO, "cannot write %s of '%s': %s", what,
				qpath(r, q, sizeof(q)), sym_archive_error_string(r->tar));
}

static int tar_open(struct run *r)
{
	struct strata_archive_writer_options wo = {
		.frame_size = r->large,
		.level = r->opts->compression_level,
		.threads = r->opts->threads,
		.master_key = strata_repo_master_key(r->repo),
	};
	int ret;

	if (strata_repo_encrypted(r->repo) && !wo.master_key)
		return strata_error_set(r->err, -EACCES, STRATA_ERR_AUTH,
					"repository '%s' is encrypted and locked",
					strata_repo_path(r->repo));
	ret = strata_archive_writer_open(strata_repo_archives_fd(r->repo), &wo, &r->writer, r->err);
	if (ret < 0)
		return ret;
	r->tar = sym_archive_write_new();
	if (!r->tar)
		return strata_error_set(r->err, -ENOMEM, STRATA_ERR_INTERNAL, "out of memory");
	if (sym_archive_write_set_format_pax(r->tar) != ARCHIVE_OK ||
	    sym_archive_write_set_bytes_per_block(r->tar, 0) != ARCHIVE_OK ||
	    sym_archive_write_open(r->tar, r, NULL, tar_write_cb, NULL) != ARCHIVE_OK)
		return strata_error_set(r->err, -EIO, STRATA_ERR_INTERNAL, "cannot start tar stream: %s",
					sym_archive_error_string(r->tar));
	return 0;
}

/*
 * Before the header of an entry of 'size' content bytes: a large file
 * starts its own frame; a small one closes the current frame once it holds
 * a small frame's worth.
 */
static uint32_t small_frame(const struct run *r, uint64_t off)
{
	uint64_t s = off >= SMALL_LARGE_AT ? r->large : off >= SMALL_GROW_AT ? 4ull * r->small :
		     r->small;

	return s < r->large ? (uint32_t)s : r->large;
}

static int frame_policy(struct run *r, uint64_t size)
{
	uint64_t off = strata_archive_writer_offset(r->writer);
	uint32_t small = small_frame(r, off);
	bool cut = size >= r->large ? off > r->frame_start : off - r->frame_start >= small;
	int ret;

	if (!cut)
		return 0;
	ret = strata_archive_writer_cut(r->writer, size >= r->large ? r->large : small, r->err);
	if (ret < 0)
		return ret;
	r->frame_start = off;
	return 0;
}

/* After a large file: what follows starts a new frame. */
static int frame_after(struct run *r, uint64_t size)
{
	int ret;

	if (size < r->large)
		return 0;
	ret = strata_archive_writer_cut(r->writer, r->large, r->err);
	if (ret == 0)
		r->frame_start = strata_archive_writer_offset(r->writer);
	return ret;
}

/* ---- manifest --------------------------------------------------------- */

/*
 * The manifest's lines stay in memory up to MANIFEST_MEM (opts->manifest_mem)
 * and only a larger tree spills them to a temporary file: an unchanged
 * incremental, which writes no archive, then costs no file and no write.
 * A line is ~185 bytes (the bench tree's median), so that is ~45,000
 * entries; the bench tree's 50,762 spill.  Raising the limit to 32 MiB
 * made no difference that 12 alternating runs of its unchanged
 * incremental could see (median task-clock 283 against 285 ms).
 */
#define MANIFEST_MEM (8u << 20)

static void mput(struct run *r, const void *p, size_t n)
{
	if (!r->manifest_err && strata_buf_append(&r->mlines, p, n) < 0)
		r->manifest_err = ENOMEM;
}

/* Move the lines in memory to the temporary file (made on first use). */
static void manifest_spill(struct run *r)
{
	if (r->manifest_err || r->mlines.len == 0)
		return;
	errno = 0;
	if (!r->manifest)
		r->manifest = tmpfile();
	if (!r->manifest || fwrite(r->mlines.data, 1, r->mlines.len, r->manifest) != r->mlines.len)
		r->manifest_err = errno ? errno : EIO;
	strata_buf_reset(&r->mlines);
}

static void manifest_escape(struct run *r, const char *s, size_t len)
{
	size_t run = 0;

	for (size_t i = 0; i < len; i++) {
		uint8_t c = (uint8_t)s[i];

		if (c <= 0x20 || c >= 0x7f || c == '%') {
			char esc[4] = "%";

			strata_hex(esc + 1, &c, 1);
			mput(r, s + run, i - run);
			mput(r, esc, 3);
			run = i + 1;
		}
	}
	mput(r, s + run, len - run);
}

/* v in base 8 or 10 at p, then a space; returns the end. */
static char *put_num(char *p, uint64_t v, unsigned base)
{
	char t[24];
	int n = 0;

	do {
		t[n++] = (char)('0' + v % base);
		v /= base;
	} while (v);
	while (n)
		*p++ = t[--n];
	*p++ = ' ';
	return p;
}

static const char *archive_name_of(struct run *r, int64_t id)
{
	struct strata_archive_row row;
	struct strata_error e = { 0 };

	if (id == 0)
		return "-";
	if (id == r->snap.id)
		return "this";
	for (size_t i = 0; i < r->nanames; i++)
		if (r->anames[i].id == id)
			return r->anames[i].name;
	memset(&row, 0, sizeof(row));
	if (strata_catalog_archive_get(r->cat, id, &row, &e) < 0)
		return "?";
	{
		struct archive_name *na = realloc(r->anames, (r->nanames + 1) * sizeof(*na));

		if (!na) {
			free(row.frames);
			return "?";
		}
		r->anames = na;
		na[r->nanames].id = id;
		snprintf(na[r->nanames].name, sizeof(na[r->nanames].name), "%s", row.name);
		free(row.frames);
		return na[r->nanames++].name;
	}
}

/*
 * One line per entry of the snapshot's whole tree:
 *   type mode uid gid size mtime_ns archive data_offset sha256 path [-> target]
 * with '%XX' escapes for bytes <= 0x20, >= 0x7f and '%'.  "this" names the
 * archive the manifest is in.
 */
static void manifest_add(struct run *r, const struct strata_entry *e)
{
	char head[256], *p = head;
	const char *an = archive_name_of(r, e->archive);
	size_t an_len = strlen(an);

	r->in_tree++;
	*p++ = (char)e->type;
	*p++ = ' ';
	p = put_num(p, e->mode, 8);
	p = put_num(p, e->uid, 10);
	p = put_num(p, e->gid, 10);
	p = put_num(p, e->size, 10);
	if (e->mtime_ns < 0) {
		*p++ = '-';
		p = put_num(p, -(uint64_t)e->mtime_ns, 10);
	} else {
		p = put_num(p, (uint64_t)e->mtime_ns, 10);
	}
	memcpy(p, an, an_len);   /* at most 63 bytes (struct archive_name) */
	p += an_len;
	*p++ = ' ';
	p = put_num(p, e->data_offset, 10);
	if (e->has_sha256) {
		strata_hex(p, e->sha256, 32);
		p += 64;
	} else {
		*p++ = '-';
	}
	*p++ = ' ';
	mput(r, head, (size_t)(p - head));
	manifest_escape(r, (const char *)r->path.data, r->path.len);
	if (e->type == STRATA_T_LNK && e->link) {
		mput(r, " -> ", 4);
		manifest_escape(r, e->link, e->link_len);
	}
	mput(r, "\n", 1);
	if (r->mlines.len >= r->manifest_mem)
		manifest_spill(r);
}

/*
 * The manifest's first line names the snapshot, so an archive alone says
 * which snapshot it holds and what it was compared against:
 *   # strata-manifest 1 id=ID name=NAME set=SET kind=KIND base=ID|- started_ns=NS label=LABEL|-
 * Put before the walk's lines, once the snapshot row exists.
 */
static void manifest_begin(struct run *r)
{
	char num[64];
	const struct strata_snapshot *s = &r->snap;

	mput(r, num, (size_t)snprintf(num, sizeof(num), "# strata-manifest 1 id=%lld name=",
				      (long long)s->id));
	manifest_escape(r, s->name, strlen(s->name));
	mput(r, " set=", 5);
	manifest_escape(r, s->set, strlen(s->set));
	mput(r, num, (size_t)snprintf(num, sizeof(num), " kind=%s base=", strata_level_name(s->kind)));
	if (s->base)
		mput(r, num, (size_t)snprintf(num, sizeof(num), "%lld", (long long)s->base));
	else
		mput(r, "-", 1);
	mput(r, num, (size_t)snprintf(num, sizeof(num), " started_ns=%lld label=",
				      (long long)s->started_ns));
	if (s->label[0])
		manifest_escape(r, s->label, strlen(s->label));
	else
		mput(r, "-", 1);
	mput(r, "\n", 1);
}

static int manifest_write(struct run *r)
{
	struct archive_entry *e = r->entry;
	long size = (long)r->mlines.len;
	size_t n;

	if (r->manifest) {
		manifest_spill(r);
		if (!r->manifest_err && (fflush(r->manifest) != 0 || (size = ftell(r->manifest)) < 0))
			r->manifest_err = errno;
		rewind(r->manifest);
	}
	if (r->manifest_err)
		return strata_error_errno(r->err, r->manifest_err, "cannot write manifest");
	sym_archive_entry_clear(e);
	sym_archive_entry_set_pathname(e, MANIFEST_MEMBER);
	sym_archive_entry_set_filetype(e, AE_IFREG);
	sym_archive_entry_set_perm(e, 0600);
	sym_archive_entry_set_size(e, size);
	sym_archive_entry_set_mtime(e, r->snap.started_ns / 1000000000, r->snap.started_ns % 1000000000);
	if (sym_archive_write_header(r->tar, e) != ARCHIVE_OK)
		return tar_fail(r, "the manifest");
	if (!r->manifest) {
		for (size_t off = 0; off < r->mlines.len; off += n) {
			n = r->mlines.len - off < READ_CHUNK ? r->mlines.len - off : READ_CHUNK;
			if (sym_archive_write_data(r->tar, r->mlines.data + off, n) != (la_ssize_t)n)
				return tar_fail(r, "the manifest");
		}
		return 0;
	}
	while ((n = fread(r->buf, 1, READ_CHUNK, r->manifest)) > 0)
		if (sym_archive_write_data(r->tar, r->buf, n) != (la_ssize_t)n)
			return tar_fail(r, "the manifest");
	return 0;
}

/* ---- metadata --------------------------------------------------------- */

struct meta {
	struct stat st;
	struct strata_buf xattrs;
	struct strata_buf sparse;   /* u64le pairs */
	char link[4096];
	size_t link_len;
};

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Read xattrs through fd (regular files, directories) or a /proc path.
 * The list is asked for with a small buffer first: the kernel allocates
 * a buffer of the size passed on every call, and most entries have no
 * xattrs at all.
 */
static int read_xattrs(struct run *r, int fd, int dirfd, const char *name, struct strata_buf *out)
{
	char procpath[512];
	char list[XATTR_LIST_MAX_BYTES];
	char *names[1024];
	size_t nn = 0;
	ssize_t len;
	int ret = 0;

	/* entries without an fd (symlinks, fifos, devices) go through /proc */
	if (fd < 0)
		snprintf(procpath, sizeof(procpath), "/proc/self/fd/%d/%s", dirfd, name);
	len = fd >= 0 ? flistxattr(fd, list, XATTR_LIST_SMALL)
		      : llistxattr(procpath, list, XATTR_LIST_SMALL);
	if (len < 0 && errno == ERANGE)
		len = fd >= 0 ? flistxattr(fd, list, sizeof(list))
			      : llistxattr(procpath, list, sizeof(list));
	if (len < 0) {
		if (errno == ENOTSUP || errno == ENOSYS)
			return 0;
		return -errno;
	}
	for (ssize_t i = 0; i < len && nn < 1024; i += (ssize_t)strlen(list + i) + 1)
		names[nn++] = list + i;
	qsort(names, nn, sizeof(names[0]), cmp_str);
	for (size_t i = 0; i < nn; i++) {
		uint8_t hdr[4];
		ssize_t vlen;

		vlen = fd >= 0 ? fgetxattr(fd, names[i], r->buf, READ_CHUNK)
			       : lgetxattr(procpath, names[i], r->buf, READ_CHUNK);
		if (vlen < 0) {
			if (errno == ENODATA)
				continue;
			return -errno;
		}
		strata_put_le32(hdr, (uint32_t)strlen(names[i]));
		ret = strata_buf_append(out, hdr, 4);
		if (!ret)
			ret = strata_buf_append(out, names[i], strlen(names[i]));
		strata_put_le32(hdr, (uint32_t)vlen);
		if (!ret)
			ret = strata_buf_append(out, hdr, 4);
		if (!ret)
			ret = strata_buf_append(out, r->buf, (size_t)vlen);
		if (ret)
			return ret;
		if (out->len > STRATA_XATTRS_MAX)
			return -E2BIG;
	}
	return 0;
}

/* Data segments of a file that has holes; none for a dense one. */
static int read_sparse(int fd, const struct stat *st, struct strata_buf *out)
{
	off_t pos = 0, size = st->st_size;

	if (size == 0 || (uint64_t)st->st_blocks * 512 >= (uint64_t)size)
		return 0;
	while (pos < size) {
		off_t data = lseek(fd, pos, SEEK_DATA), hole;
		uint8_t pair[16];
		int ret;

		if (data < 0) {
			if (errno == ENXIO)
				break;
			strata_buf_reset(out);
			return 0;      /* no SEEK_DATA here: store it dense */
		}
		hole = lseek(fd, data, SEEK_HOLE);
		if (hole < 0 || hole > size)
			hole = size;
		strata_put_le64(pair, (uint64_t)data);
		strata_put_le64(pair + 8, (uint64_t)(hole - data));
		ret = strata_buf_append(out, pair, 16);
		if (ret)
			return ret;
		pos = hole;
	}
	lseek(fd, 0, SEEK_SET);
	if (out->len == 0) {
		/* All hole: one empty segment at the end keeps it "sparse". */
		uint8_t pair[16];

		strata_put_le64(pair, (uint64_t)size);
		strata_put_le64(pair + 8, 0);
		return strata_buf_append(out, pair, 16);
	}
	return 0;
}

static void entry_from_meta(struct run *r, const struct meta *m, struct strata_entry *e)
{
	memset(e, 0, sizeof(*e));
	e->type = type_of(m->st.st_mode);
	e->mode = (uint32_t)m->st.st_mode;
	e->uid = m->st.st_uid;
	e->gid = m->st.st_gid;
	e->uname = id_lookup(&r->users, m->st.st_uid, true);
	e->gname = id_lookup(&r->groups, m->st.st_gid, false);
	e->size = S_ISREG(m->st.st_mode) ? (uint64_t)m->st.st_size : 0;
	e->mtime_ns = ts_ns(&m->st.st_mtim);
	e->ctime_ns = ts_ns(&m->st.st_ctim);
	e->dev = (uint64_t)m->st.st_dev;
	e->ino = (uint64_t)m->st.st_ino;
	e->nlink = (uint32_t)m->st.st_nlink;
	e->rdev = (uint64_t)m->st.st_rdev;
	if (e->type == STRATA_T_LNK) {
		e->link = m->link;
		e->link_len = m->link_len;
	}
	if (m->xattrs.len) {
		e->xattrs = m->xattrs.data;
		e->xattrs_len = m->xattrs.len;
	}
	if (m->sparse.len) {
		e->sparse = m->sparse.data;
		e->sparse_len = m->sparse.len;
	}
	e->first_snapshot = r->snap.id;
}

/*
 * libarchive 3.6 writes a pre-1970 time with a fraction as "-S.F" meaning
 * -S + 0.F, which GNU tar (and POSIX) read as -(S.F): one second early.
 * Hand it the second after, so the header says the true time.  Only the
 * escape hatch reads these headers; strata restores from the catalog.
 */
static void tar_set_mtime(struct archive_entry *ae, int64_t ns)
{
	int64_t sec = ns / 1000000000, nsec = ns % 1000000000;

	if (nsec < 0) {
		sec -= 1;
		nsec += 1000000000;
	}
	if (sec < 0 && nsec > 0)
		sec += 1;
	sym_archive_entry_set_mtime(ae, (time_t)sec, (long)nsec);
}

static void tar_entry_from(struct run *r, const struct strata_entry *e)
{
	struct archive_entry *ae = r->entry;
	size_t off = 0;
	const char *xn;
	const uint8_t *xv;
	uint32_t nl, vl;

	sym_archive_entry_clear(ae);
	sym_archive_entry_copy_pathname(ae, (const char *)r->path.data);
	sym_archive_entry_set_mode(ae, e->mode);
	sym_archive_entry_set_uid(ae, e->uid);
	sym_archive_entry_set_gid(ae, e->gid);
	if (e->uname)
		sym_archive_entry_copy_uname(ae, e->uname);
	if (e->gname)
		sym_archive_entry_copy_gname(ae, e->gname);
	tar_set_mtime(ae, e->mtime_ns);
	sym_archive_entry_set_size(ae, e->type == STRATA_T_REG ? (la_int64_t)e->size : 0);
	if (e->type == STRATA_T_LNK)
		sym_archive_entry_copy_symlink(ae, e->link);
	if (e->type == STRATA_T_CHR || e->type == STRATA_T_BLK)
		sym_archive_entry_set_rdev(ae, (dev_t)e->rdev);
	while (strata_xattrs_next(e->xattrs, e->xattrs_len, &off, &xn, &nl, &xv, &vl) > 0) {
		char name[256];

		memcpy(name, xn, nl);
		name[nl] = '\0';
		sym_archive_entry_xattr_add_entry(ae, name, xv, vl);
	}
	for (size_t i = 0; i + 16 <= e->sparse_len; i += 16) {
		uint64_t so = strata_get_le64(e->sparse + i), sl = strata_get_le64(e->sparse + i + 8);

		sym_archive_entry_sparse_add_entry(ae, (la_int64_t)so, (la_int64_t)sl);
	}
}

/* ---- storing one entry ------------------------------------------------- */

static int close_subtree(struct run *r, const struct strata_entry *lv);

static struct hardlink *hardlink_find(struct run *r, uint64_t dev, uint64_t ino)
{
	size_t i = strata_inomap_get(&r->linkmap, dev, ino);

	return i == SIZE_MAX ? NULL : &r->links[i];
}

static void hardlink_remember(struct run *r, const struct strata_entry *e)
{
	struct hardlink *h;

	if (strata_grow(&r->links, &r->alinks, r->nlinks + 1, sizeof(*r->links)) < 0)
		return;
	h = &r->links[r->nlinks];
	memset(h, 0, sizeof(*h));
	h->dev = e->dev;
	h->ino = e->ino;
	h->path = strdup((const char *)r->path.data);
	h->data_offset = e->data_offset;
	memcpy(h->sha256, e->sha256, 32);
	if (e->sparse_len) {
		h->sparse = malloc(e->sparse_len);
		if (h->sparse) {
			memcpy(h->sparse, e->sparse, e->sparse_len);
			h->sparse_len = e->sparse_len;
		}
	}
	if (h->path && strata_inomap_put(&r->linkmap, h->dev, h->ino, r->nlinks) == 0) {
		r->nlinks++;
	} else {
		free(h->path);
		free(h->sparse);
	}
}

/* SHA-256 of no bytes: the digest of an empty file. */
static const uint8_t sha256_empty[32] = {
	0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
	0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
};

/*
 * Copy a regular file's bytes into the tar stream, hashing them.  Returns 0
 * and *changed when the stat moved under us, a negative errno on a fatal
 * (archive) error, or a positive errno when reading the source failed.
 *
 * A dense file is read straight into the archive writer's frame buffer
 * when the chunk fits, or is cut to fit when the frame still has
 * INPLACE_MIN bytes of room (strata_archive_writer_reserve): libarchive hands
 * unblocked data of a dense pax member through unchanged, so the writer
 * then copies nothing.  A sparse member's first data call writes the
 * sparse map before the data, so sparse files always go through r->buf.
 */
static int copy_data(struct run *r, int fd, const struct stat *st, struct strata_entry *e,
		     bool retry, bool *changed)
{
	uint64_t left = (uint64_t)st->st_size;
	bool short_read = false, dense = e->sparse_len == 0;
	struct stat after;

	if (r->sha_dirty) {
		strata_sha256_final(r->sha, e->sha256); /* reset */
		r->sha_dirty = false;
	}
	if (retry && lseek(fd, 0, SEEK_SET) < 0)
		return errno;
	while (left) {
		size_t want = left < READ_CHUNK ? (size_t)left : READ_CHUNK;
		uint8_t *buf = r->buf;
		void *room;
		size_t room_len;
		ssize_t n;

		if (dense) {
			int ret = strata_archive_writer_reserve(r->writer, &room, &room_len, r->err);

			if (ret < 0)
				return ret;
			/* a large file's chunks end where its frames do */
			if (room_len < want && room_len >= INPLACE_MIN)
				want = room_len;
			if (room_len >= want)
				buf = room;
		}
		n = short_read ? 0 : read(fd, buf, want);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno;
		}
		if (n == 0) {
			/* The file shrank: pad, then report it as changed. */
			short_read = true;
			memset(buf, 0, want);
			n = (ssize_t)want;
		}
		r->sha_dirty = true;
		strata_sha256_update(r->sha, buf, (size_t)n);
		if (sym_archive_write_data(r->tar, buf, (size_t)n) != n)
			return tar_fail(r, "the data");
		left -= (uint64_t)n;
		r->bytes_read += (uint64_t)n;
		progress(r, false);
	}
	strata_sha256_final(r->sha, e->sha256);
	r->sha_dirty = false;
	e->has_sha256 = true;
	if (fstat(fd, &after) < 0)
		return errno;
	*changed = short_read || after.st_size != st->st_size ||
		   ts_ns(&after.st_mtim) != ts_ns(&st->st_mtim) ||
		   ts_ns(&after.st_ctim) != ts_ns(&st->st_ctim);
	return 0;
}

static uint64_t sparse_bytes(const struct strata_entry *e)
{
	uint64_t sum = 0;

	for (size_t i = 0; i + 16 <= e->sparse_len; i += 16)
		sum += strata_get_le64(e->sparse + i + 8);
	return sum;
}

/*
 * Store one entry: gather its metadata, write its tar member (and data),
 * record the new version.  lv is its live version or NULL; node its node.
 * Returns a negative errno on a fatal error, 0 when stored, 1 when it was
 * skipped with a warning (the live version then stays as it is).
 */
static int store_entry(struct run *r, int dirfd, const char *name, struct stat *st,
		       const struct strata_entry *lv, int64_t node, int *ret_fd)
{
	struct meta m;
	struct strata_entry e;
	char q[1400];
	int fd = -1, ret = 0, tries = 0;
	bool is_reg = S_ISREG(st->st_mode), is_dir = S_ISDIR(st->st_mode);
	struct hardlink *hl = NULL;

	memset(&m, 0, sizeof(m));
	m.xattrs.cap = STRATA_XATTRS_MAX + 65536;
	m.sparse.cap = 64u << 20;
	if (ret_fd)
		*ret_fd = -1;
	if (is_reg || is_dir) {
		fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY |
			    (is_dir ? O_DIRECTORY : O_NONBLOCK));
		if (fd < 0 && errno == EPERM)
			fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0) {
			warnf(r, "'%s': %s", qpath(r, q, sizeof(q)), strerror(errno));
			return 1;
		}
		/* No fstat here: the walk's fstatat is the reference, and the
		 * fstat after reading catches a file swapped in between. */
	}
again:
	m.st = *st;
	strata_buf_reset(&m.xattrs);
	strata_buf_reset(&m.sparse);
	{
		if (S_ISLNK(st->st_mode)) {
			ssize_t n = readlinkat(dirfd, name, m.link, sizeof(m.link) - 1);

			if (n < 0) {
				warnf(r, "'%s': %s", qpath(r, q, sizeof(q)), strerror(errno));
				ret = 1;
				goto out;
			}
			m.link[n] = '\0';
			m.link_len = (size_t)n;
		}
		ret = read_xattrs(r, fd, dirfd, name, &m.xattrs);
		if (ret == -EPERM || ret == -EACCES || ret == -ENOENT) {
			/* fifos, sockets and symlinks may refuse xattr lookups */
			ret = 0;
		} else if (ret < 0) {
			warnf(r, "'%s': cannot read extended attributes: %s", qpath(r, q, sizeof(q)),
			      strerror(-ret));
			ret = 0;
			strata_buf_reset(&m.xattrs);
		}
	}
	if (is_reg) {
		ret = read_sparse(fd, st, &m.sparse);
		if (ret < 0)
			goto fatal;
	}
	entry_from_meta(r, &m, &e);
	e.node_id = node;

	if (is_reg && st->st_nlink > 1)
		hl = hardlink_find(r, e.dev, e.ino);
	if (hl) {
		/* A further name of a file this archive already holds. */
		tar_entry_from(r, &e);
		sym_archive_entry_set_size(r->entry, 0);
		sym_archive_entry_copy_hardlink(r->entry, hl->path);
		if (sym_archive_write_header(r->tar, r->entry) < ARCHIVE_WARN) {
			ret = tar_fail(r, "the header");
			goto fatal;
		}
		e.archive = r->snap.id;
		e.data_offset = hl->data_offset;
		e.has_sha256 = true;
		memcpy(e.sha256, hl->sha256, 32);
		e.sparse = hl->sparse;
		e.sparse_len = hl->sparse_len;
	} else {
		ret = frame_policy(r, is_reg ? (uint64_t)st->st_size : 0);
		if (ret < 0)
			goto fatal;
		tar_entry_from(r, &e);
		if (sym_archive_write_header(r->tar, r->entry) < ARCHIVE_WARN) {
			ret = tar_fail(r, "the header");
			goto fatal;
		}
		if (is_reg && st->st_size > 0) {
			uint64_t start = strata_archive_writer_offset(r->writer), end;
			bool changed = false;

			ret = copy_data(r, fd, st, &e, tries > 0 || e.sparse_len > 0, &changed);
			if (ret < 0)
				goto fatal;
			if (ret > 0) {
				warnf(r, "'%s': %s", qpath(r, q, sizeof(q)), strerror(ret));
				ret = 1;
				goto out;
			}
			end = strata_archive_writer_offset(r->writer);
			ret = frame_after(r, (uint64_t)st->st_size);
			if (ret < 0)
				goto fatal;
			e.archive = r->snap.id;
			e.data_offset = e.sparse_len ? end - sparse_bytes(&e) : start;
			if (changed) {
				if (++tries < MAX_TRIES) {
					warnf(r, "'%s': changed while reading, retrying",
					      qpath(r, q, sizeof(q)));
					r->warnings--; /* a retry that works is not a warning */
					if (fstat(fd, st) < 0) {
						ret = 1;
						goto out;
					}
					goto again;
				}
				warnf(r, "'%s': changed while reading %d times, keeping the previous version",
				      qpath(r, q, sizeof(q)), MAX_TRIES);
				ret = 1;
				goto out;
			}
		} else if (is_reg) {
			memcpy(e.sha256, sha256_empty, 32);
			e.has_sha256 = true;
		}
		if (is_reg && st->st_nlink > 1)
			hardlink_remember(r, &e);
	}
	if (lv) {
		/* a directory replaced by something else takes its subtree along */
		if (lv->type == STRATA_T_DIR && !is_dir)
			ret = close_subtree(r, lv);
		else
			ret = strata_catalog_version_close(r->cat, lv->version_id, r->snap.id - 1, r->err);
		if (ret < 0)
			goto fatal;
	}
	ret = strata_catalog_version_add(r->cat, &e, &e.version_id, r->err);
	if (ret < 0)
		goto fatal;
	r->stored++;
	manifest_add(r, &e);
	if (is_dir && ret_fd) {
		*ret_fd = fd;
		fd = -1;
	}
	ret = 0;
	goto out;
fatal:
	r->fatal = ret;
out:
	if (fd >= 0)
		close(fd);
	strata_buf_release(&m.xattrs);
	strata_buf_release(&m.sparse);
	return ret;
}

/* ---- the walk ---------------------------------------------------------- */

/* A trie of the source paths: children sorted by name; a leaf is a source. */
struct src_node {
	char *name;
	bool is_source;
	struct src_node *kids;
	size_t nkids;
};

struct dirent_name {
	char *name;
	size_t len;
};

static int cmp_names(const void *a, const void *b)
{
	const struct dirent_name *x = a, *y = b;
	size_t n = x->len < y->len ? x->len : y->len;
	int c = memcmp(x->name, y->name, n);

	if (c)
		return c;
	return x->len < y->len ? -1 : x->len > y->len;
}

static int cmp_entry_name(const struct strata_entry *e, const char *name, size_t len)
{
	size_t n = e->name_len < len ? e->name_len : len;
	int c = memcmp(e->name, name, n);

	if (c)
		return c;
	return e->name_len < len ? -1 : e->name_len > len;
}

static int path_push(struct run *r, const char *name, size_t len, size_t *saved)
{
	*saved = r->path.len;
	if (r->path.len && strata_buf_append(&r->path, "/", 1) < 0)
		return -ENAMETOOLONG;
	if (strata_buf_append(&r->path, name, len) < 0)
		return -ENAMETOOLONG;
	return 0;
}

static void path_pop(struct run *r, size_t saved)
{
	r->path.len = saved;
	r->path.data[saved] = '\0';
}

static int walk_dir(struct run *r, int dirfd, int64_t node, dev_t dev, const struct src_node *only);

/*
 * An entry is gone from this snapshot: close its live version and, for a
 * directory, every live version below it, so none of them stays live and
 * comes back if a directory of that name appears again.
 */
static int close_subtree(struct run *r, const struct strata_entry *lv)
{
	struct strata_entry_list kids = { 0 };
	int ret;

	ret = strata_catalog_version_close(r->cat, lv->version_id, r->snap.id - 1, r->err);
	if (ret < 0 || lv->type != STRATA_T_DIR)
		return ret;
	ret = strata_catalog_live_children(r->cat, r->set_id, lv->node_id, &kids, r->err);
	for (size_t i = 0; ret == 0 && i < kids.n; i++)
		ret = close_subtree(r, &kids.v[i]);
	strata_entry_list_release(&kids);
	return ret;
}

/*
 * Visit one name in directory dirfd (whose node is 'parent'): compare,
 * store if the level says so, recurse into directories.  lv may be NULL.
 * src: the trie node when this name is a source or on the way to one.
 */
static int visit(struct run *r, int dirfd, const char *name, const struct strata_entry *lv,
		 int64_t parent, dev_t dev, const struct src_node *src)
{
	struct stat st;
	char q[1400];
	size_t saved;
	int64_t node;
	bool must, changed;
	int ret, childfd = -1;
	bool walked_whole = !src || src->is_source;

	ret = path_push(r, name, strlen(name), &saved);
	if (ret < 0)
		return strata_error_set(r->err, ret, STRATA_ERR_IO, "path too long below '%s'",
					qpath(r, q, sizeof(q)));
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno == ENOENT && !src) {
			/* vanished between readdir and stat: it is simply gone */
			if (lv)
				ret = close_subtree(r, lv);
			goto out;
		}
		warnf(r, "'%s': %s", qpath(r, q, sizeof(q)), strerror(errno));
		goto out;
	}
	r->entries++;
	if (!src && (excluded(r, name, S_ISDIR(st.st_mode)) ||
		     (S_ISDIR(st.st_mode) && has_marker(r, dirfd, name)))) {
		r->entries--;
		if (lv)
			ret = close_subtree(r, lv);
		goto out;
	}
	if (src && !src->is_source && lv) {
		/* An ancestor of a source is only the way to it (tar does not
		 * store it at all): its times change with everything else in,
		 * say, /tmp, so only a new type, mode or owner counts. */
		changed = type_of(st.st_mode) != lv->type || (uint32_t)st.st_mode != lv->mode ||
			  st.st_uid != lv->uid || st.st_gid != lv->gid;
	} else {
		changed = !lv || stat_changed(&st, lv);
	}
	must = changed || r->snap.kind == STRATA_LEVEL_FULL ||
	       (r->snap.kind == STRATA_LEVEL_DIFFERENTIAL && lv->first_snapshot > r->full_id);
	if (lv && lv->type != type_of(st.st_mode))
		must = true;
	node = lv ? lv->node_id : 0;
	if (must) {
		if (!node) {
			ret = strata_catalog_node_get(r->cat, r->set_id, parent, name, strlen(name), &node,
						      r->err);
			if (ret < 0)
				goto out;
		}
		ret = store_entry(r, dirfd, name, &st, lv, node, S_ISDIR(st.st_mode) ? &childfd : NULL);
		if (ret < 0)
			goto out;
		if (ret > 0) {
			/* Skipped with a warning: the old version (if any) stays live,
			 * and so do its children's. */
			if (lv)
				manifest_add(r, lv);
			ret = 0;
			goto out;
		}
	} else {
		manifest_add(r, lv);
	}
	if (S_ISDIR(st.st_mode)) {
		if (r->opts->one_file_system && st.st_dev != dev && !src) {
			/* another file system: the directory itself, not its contents */
			goto out;
		}
		if (childfd < 0) {
			childfd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (childfd < 0) {
				warnf(r, "'%s': %s", qpath(r, q, sizeof(q)), strerror(errno));
				goto out;
			}
		}
		ret = walk_dir(r, childfd, node, st.st_dev, walked_whole ? NULL : src);
	}
out:
	if (childfd >= 0)
		close(childfd);
	path_pop(r, saved);
	if (ret < 0 && !r->fatal)
		r->fatal = ret;
	return ret < 0 ? ret : 0;
}

static int read_names(int dirfd, struct dirent_name **ret, size_t *ret_n)
{
	int fd = dup(dirfd);
	DIR *d;
	struct dirent *de;
	struct dirent_name *v = NULL;
	size_t n = 0, alloc = 0;

	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		int e = -errno;

		close(fd);
		return e;
	}
	rewinddir(d);
	errno = 0;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.' && (!de->d_name[1] || (de->d_name[1] == '.' && !de->d_name[2])))
			continue;
		if (strata_grow(&v, &alloc, n + 1, sizeof(*v)) < 0)
			goto nomem;
		v[n].len = strlen(de->d_name);
		v[n].name = strdup(de->d_name);
		if (!v[n].name)
			goto nomem;
		n++;
	}
	closedir(d);
	if (n > 1)
		qsort(v, n, sizeof(*v), cmp_names);
	*ret = v;
	*ret_n = n;
	return 0;
nomem:
	closedir(d);
	for (size_t i = 0; i < n; i++)
		free(v[i].name);
	free(v);
	return -ENOMEM;
}

/*
 * Walk directory dirfd (node 'node', 0 = the set root).  only == NULL:
 * every name in it; else only the names of only->kids (the way to sources).
 * Live versions not present any more are closed.
 */
static int walk_dir(struct run *r, int dirfd, int64_t node, dev_t dev, const struct src_node *only)
{
	struct strata_entry_list live = { 0 };
	struct dirent_name *names = NULL;
	size_t nnames = 0, i = 0, j = 0;
	char q[1400];
	int ret;

	ret = strata_catalog_live_children(r->cat, r->set_id, node, &live, r->err);
	if (ret < 0)
		return ret;
	if (only) {
		names = calloc(only->nkids ? only->nkids : 1, sizeof(*names));
		if (!names) {
			ret = -ENOMEM;
			goto out;
		}
		for (size_t k = 0; k < only->nkids; k++) {
			names[k].name = only->kids[k].name;
			names[k].len = strlen(only->kids[k].name);
		}
		nnames = only->nkids;
	} else {
		ret = read_names(dirfd, &names, &nnames);
		if (ret < 0) {
			/* cannot list it: keep what the catalog has */
			warnf(r, "'%s': %s", qpath(r, q, sizeof(q)), strerror(-ret));
			for (size_t k = 0; k < live.n; k++)
				manifest_add(r, &live.v[k]);
			ret = 0;
			goto out;
		}
	}
	while (i < nnames || j < live.n) {
		int c;

		if (r->fatal) {
			ret = r->fatal;
			break;
		}
		if (i == nnames)
			c = 1;
		else if (j == live.n)
			c = -1;
		else
			c = -cmp_entry_name(&live.v[j], names[i].name, names[i].len);
		if (c > 0) {
			/* live in the catalog, gone from the disk */
			ret = close_subtree(r, &live.v[j]);
			if (ret < 0)
				break;
			j++;
			continue;
		}
		ret = visit(r, dirfd, names[i].name, c == 0 ? &live.v[j] : NULL, node, dev,
			    only ? &only->kids[i] : NULL);
		if (ret < 0)
			break;
		i++;
		if (c == 0)
			j++;
	}
out:
	if (names && !only)
		for (size_t k = 0; k < nnames; k++)
			free(names[k].name);
	free(names);
	strata_entry_list_release(&live);
	return ret;
}

/* ---- sources ----------------------------------------------------------- */

static void src_free(struct src_node *s)
{
	for (size_t i = 0; i < s->nkids; i++)
		src_free(&s->kids[i]);
	free(s->kids);
	free(s->name);
}

static int src_cmp(const void *a, const void *b)
{
	const struct src_node *x = a, *y = b;

	return cmp_names(&(struct dirent_name){ x->name, strlen(x->name) },
			 &(struct dirent_name){ y->name, strlen(y->name) });
}

static void src_sort(struct src_node *s)
{
	if (s->nkids > 1)
		qsort(s->kids, s->nkids, sizeof(*s->kids), src_cmp);
	for (size_t i = 0; i < s->nkids; i++)
		src_sort(&s->kids[i]);
}

/* Add "/srv/erp" to the trie; a source inside another source is dropped. */
static int src_add(struct src_node *root, const char *path, struct strata_error *err)
{
	char *copy = strdup(path), *save = NULL, *comp;
	struct src_node *cur = root;
	int ret = 0;

	if (!copy)
		return -ENOMEM;
	for (comp = strtok_r(copy, "/", &save); comp; comp = strtok_r(NULL, "/", &save)) {
		struct src_node *next = NULL;

		if (cur->is_source)
			goto out;
		if (!strcmp(comp, ".") || !strcmp(comp, "..")) {
			ret = strata_error_set(err, -EINVAL, STRATA_ERR_USAGE,
					       "source '%s' must be a normalised absolute path", path);
			goto out;
		}
		for (size_t i = 0; i < cur->nkids; i++)
			if (!strcmp(cur->kids[i].name, comp))
				next = &cur->kids[i];
		if (!next) {
			struct src_node *nk = realloc(cur->kids, (cur->nkids + 1) * sizeof(*nk));

			if (!nk) {
				ret = -ENOMEM;
				goto out;
			}
			cur->kids = nk;
			next = &nk[cur->nkids++];
			memset(next, 0, sizeof(*next));
			next->name = strdup(comp);
			if (!next->name) {
				ret = -ENOMEM;
				goto out;
			}
		}
		cur = next;
	}
	if (cur == root) {
		ret = strata_error_set(err, -EINVAL, STRATA_ERR_USAGE,
				       "source '/' is not supported: name the directories to back up");
		goto out;
	}
	/* a source that contains earlier ones replaces them */
	for (size_t i = 0; i < cur->nkids; i++)
		src_free(&cur->kids[i]);
	free(cur->kids);
	cur->kids = NULL;
	cur->nkids = 0;
	cur->is_source = true;
out:
	free(copy);
	return ret;
}

/* ---- orphans ----------------------------------------------------------- */

static int cmp_row_name(const void *a, const void *b)
{
	return strcmp(((const struct strata_archive_row *)a)->name,
		      ((const struct strata_archive_row *)b)->name);
}

int strata_backup_remove_orphans(struct strata_repo *repo, struct strata_catalog *cat,
				 unsigned *ret_removed, struct strata_error *err)
{
	struct strata_archive_row *rows = NULL, key;
	size_t nrows = 0;
	unsigned removed = 0;
	struct dirent *de;
	int dfd, ret;
	DIR *d;

	/* One query for every name the catalog knows, then the directory. */
	ret = strata_catalog_archives(cat, 0, &rows, &nrows, err);
	if (ret < 0)
		return ret;
	if (nrows > 1)
		qsort(rows, nrows, sizeof(*rows), cmp_row_name);
	dfd = dup(strata_repo_archives_fd(repo));
	d = dfd < 0 ? NULL : fdopendir(dfd);
	if (!d) {
		ret = strata_error_errno(err, errno, "cannot read archives of '%s'",
					 strata_repo_path(repo));
		if (dfd >= 0)
			close(dfd);
		goto out;
	}
	rewinddir(d);
	while ((de = readdir(d))) {
		bool tmp = strncmp(de->d_name, ".tmp-", 5) == 0;

		if (de->d_name[0] == '.' && !tmp)
			continue;
		size_t len = strlen(de->d_name);

		if (!tmp && len < sizeof(key.name)) {
			memcpy(key.name, de->d_name, len + 1);
			if (bsearch(&key, rows, nrows, sizeof(*rows), cmp_row_name))
				continue;
		}
		if (unlinkat(dirfd(d), de->d_name, 0) == 0)
			removed++;
	}
	closedir(d);
	if (ret_removed)
		*ret_removed = removed;
out:
	strata_archive_rows_free(rows, nrows);
	return ret;
}

/* ---- the run ----------------------------------------------------------- */

static void run_release(struct run *r)
{
	if (r->tar) {
		sym_archive_write_free(r->tar);
		r->tar = NULL;
	}
	if (r->entry)  /* NULL too when libarchive did not load */
		sym_archive_entry_free(r->entry);
	strata_archive_writer_free(r->writer);
	strata_sha256_free(r->sha);
	free(r->buf);
	strata_buf_release(&r->path);
	strata_buf_release(&r->mlines);
	if (r->manifest)
		fclose(r->manifest);
	free(r->users.v);
	free(r->groups.v);
	for (size_t i = 0; i < r->nlinks; i++) {
		free(r->links[i].path);
		free(r->links[i].sparse);
	}
	free(r->links);
	strata_inomap_release(&r->linkmap);
	free(r->anames);
}

static int check_sources(const struct strata_backup_options *opts, struct src_node *root,
			 struct strata_error *err)
{
	int ret;

	if (!opts->sources || !opts->sources[0])
		return strata_error_set(err, -EINVAL, STRATA_ERR_USAGE, "no source to back up");
	for (const char *const *s = opts->sources; *s; s++) {
		struct stat st;

		if ((*s)[0] != '/')
			return strata_error_set(err, -EINVAL, STRATA_ERR_USAGE,
						"source '%s' is not an absolute path", *s);
		if (lstat(*s, &st) < 0)
			return strata_error_set(err, -errno, errno == ENOENT ? STRATA_ERR_NOT_FOUND : STRATA_ERR_IO,
						"source '%s': %s", *s, strerror(errno));
		ret = src_add(root, *s, err);
		if (ret < 0)
			return ret;
	}
	src_sort(root);
	return 0;
}

int strata_backup_run(struct strata_repo *repo, struct strata_catalog *cat,
		      const struct strata_backup_options *opts, struct strata_snapshot *ret_snap,
		      struct strata_error *err)
{
	struct run r;
	struct src_node root;
	struct strata_snapshot prev, full;
	struct strata_archive_info info;
	struct strata_error e2 = { 0 };
	enum strata_level level = opts->level;
	int64_t base = 0, started, real_start;
	int rootfd = -1, ret;
	bool have_prev, in_tx = false;

	memset(&r, 0, sizeof(r));
	memset(&root, 0, sizeof(root));
	memset(&info, 0, sizeof(info));
	r.repo = repo;
	r.cat = cat;
	r.opts = opts;
	r.err = err;
	r.path.cap = 1u << 20;

	ret = check_sources(opts, &root, err);
	if (ret < 0)
		goto out;
	ret = tarlib_load(err);
	if (ret < 0)
		goto out;
	ret = strata_catalog_set_get(cat, opts->set ? opts->set : "default", true, &r.set_id, err);
	if (ret < 0)
		goto out;
	ret = strata_backup_remove_orphans(repo, cat, NULL, err);
	if (ret < 0)
		goto out;

	have_prev = strata_catalog_snapshot_latest(cat, r.set_id, -1, &prev, &e2) == 0;
	strata_error_init(&e2);
	if (strata_catalog_snapshot_latest(cat, r.set_id, STRATA_LEVEL_FULL, &full, &e2) < 0) {
		level = STRATA_LEVEL_FULL;  /* nothing to be incremental against */
	} else if (level == STRATA_LEVEL_INCREMENTAL && have_prev) {
		base = prev.id;
	} else if (level == STRATA_LEVEL_DIFFERENTIAL) {
		base = full.id;
		r.full_id = full.id;
	}
	real_start = strata_now_ns();
	started = opts->now_ns ? opts->now_ns : real_start;

	r.buf = malloc(READ_CHUNK);
	r.entry = sym_archive_entry_new();
	if (!r.buf || !r.entry || strata_sha256_new(&r.sha) < 0) {
		ret = strata_error_set(err, -ENOMEM, STRATA_ERR_INTERNAL, "out of memory");
		goto out;
	}
	r.manifest_mem = opts->manifest_mem ? opts->manifest_mem : MANIFEST_MEM;
	r.large = opts->frame_size ? opts->frame_size : LARGE_FRAME;
	r.small = opts->small_frame_size ? opts->small_frame_size : SMALL_FRAME;
	if (r.small > r.large)
		r.small = r.large;
	ret = tar_open(&r);
	if (ret < 0)
		goto out;
	ret = strata_catalog_backup_begin(cat, r.set_id, level, base, started, opts->label, &r.snap, err);
	if (ret < 0)
		goto out;
	in_tx = true;
	r.snap.kind = level;
	r.snap.set_id = r.set_id;
	snprintf(r.snap.set, sizeof(r.snap.set), "%s", opts->set ? opts->set : "default");
	manifest_begin(&r);
	if (strata_buf_append(&r.path, "", 0) < 0) {
		ret = -ENOMEM;
		goto out;
	}
	rootfd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0) {
		ret = strata_error_errno(err, errno, "cannot open '/'");
		goto out;
	}
	{
		struct stat rst;

		fstat(rootfd, &rst);
		ret = walk_dir(&r, rootfd, 0, rst.st_dev, &root);
	}
	if (ret < 0 || r.fatal) {
		ret = ret < 0 ? ret : r.fatal;
		goto out;
	}
	progress(&r, true);

	r.snap.files = r.in_tree;
	r.snap.files_stored = r.stored;
	r.snap.bytes_read = r.bytes_read;
	r.snap.warnings = r.warnings;
	r.snap.state = r.warnings ? STRATA_SNAP_WARNING : STRATA_SNAP_COMPLETE;
	if (r.stored > 0) {
		struct strata_archive_row row;
		uint8_t *frames = NULL;
		size_t flen = 0;

		ret = manifest_write(&r);
		if (ret < 0)
			goto out;
		if (sym_archive_write_close(r.tar) != ARCHIVE_OK) {
			ret = tar_fail(&r, "the end");
			goto out;
		}
		ret = strata_archive_writer_finish(r.writer, &info, err);
		if (ret < 0)
			goto out;
		ret = strata_frames_encode(info.frames, info.nframes, &frames, &flen);
		if (ret < 0) {
			strata_error_set(err, ret, STRATA_ERR_INTERNAL, "cannot encode the frame table");
			goto unlink_out;
		}
		memset(&row, 0, sizeof(row));
		row.id = r.snap.id;
		row.snapshot = r.snap.id;
		snprintf(row.name, sizeof(row.name), "%s", info.name);
		row.file_size = info.file_size;
		row.stream_size = info.stream_size;
		memcpy(row.sha256, info.sha256, 32);
		row.encrypted = info.encrypted;
		memcpy(row.salt, info.salt, 32);
		row.frames = frames;
		row.frames_len = flen;
		{
			int64_t aid = 0;

			ret = strata_catalog_archive_add(cat, &row, &aid, err);
			if (ret == 0 && aid != r.snap.id)
				ret = strata_error_set(err, -EIO, STRATA_ERR_INTERNAL,
						       "archive row id %lld is not the snapshot id %lld",
						       (long long)aid, (long long)r.snap.id);
		}
		free(frames);
		if (ret < 0)
			goto unlink_out;
		r.snap.bytes_stored = info.file_size;
	}
	/* With an injected clock the duration is still the real one. */
	r.snap.finished_ns = started + (strata_now_ns() - real_start);
	ret = strata_catalog_backup_commit(cat, &r.snap, err);
	if (ret < 0)
		goto unlink_out;
	in_tx = false;
	*ret_snap = r.snap;
	goto out;
unlink_out:
	if (info.name[0])
		unlinkat(strata_repo_archives_fd(repo), info.name, 0);
out:
	if (in_tx)
		strata_catalog_backup_rollback(cat);
	if (ret < 0 && r.fatal && !err->code)
		strata_error_set(err, r.fatal, STRATA_ERR_IO, "backup failed");
	if (rootfd >= 0)
		close(rootfd);
	strata_archive_info_release(&info);
	run_release(&r);
	src_free(&root);
	return ret;
}
