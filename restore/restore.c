/*
 * restore.c - reading entries back: the content reader (catalog version ->
 * archive bytes, sparse maps, a table of open archive readers) and restore
 * to disk through libarchive's archive_write_disk.
 *
 * Restore builds each archive_entry from the catalog, never from a tar
 * header, and writes it with ARCHIVE_EXTRACT_SECURE_NODOTDOT,
 * _SECURE_SYMLINKS and _SECURE_NOABSOLUTEPATHS relative to the target
 * directory (the process's working directory for the duration of the run,
 * restored afterwards).  Names are checked again here: a node name holding
 * '/', NUL, "." or ".." is refused, so a hostile catalog cannot steer a
 * write outside the target.  A file whose content cannot be read (damaged
 * frame) is reported, removed, and the restore goes on.
 */
#include "restore.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#define CHUNK (1u << 20)

struct open_archive {
	int64_t id;
	struct strata_archive_reader *r;
};

struct strata_reader {
	struct strata_repo *repo;
	struct strata_frame_cache *cache;
	pthread_mutex_t lock;
	struct open_archive *v;
	size_t n, alloc;
};

int strata_reader_new(struct strata_repo *repo, struct strata_frame_cache *cache,
		      struct strata_reader **ret, struct strata_error *err)
{
	struct strata_reader *rd = calloc(1, sizeof(*rd));

	if (!rd)
		return strata_error_set(err, -ENOMEM, STRATA_ERR_INTERNAL, "out of memory");
	rd->repo = repo;
	rd->cache = cache;
	pthread_mutex_init(&rd->lock, NULL);
	*ret = rd;
	return 0;
}

void strata_reader_free(struct strata_reader *rd)
{
	if (!rd)
		return;
	for (size_t i = 0; i < rd->n; i++)
		strata_archive_reader_close(rd->v[i].r);
	free(rd->v);
	pthread_mutex_destroy(&rd->lock);
	free(rd);
}

/* The open reader for archive row 'id', opening it on first use. */
static int reader_get(struct strata_reader *rd, struct strata_catalog *cat, int64_t id,
		      struct strata_archive_reader **ret, struct strata_error *err)
{
	struct strata_archive_row row;
	struct strata_frame *frames = NULL;
	uint32_t nframes = 0;
	struct strata_archive_reader *r = NULL;
	int rc = 0;

	pthread_mutex_lock(&rd->lock);
	for (size_t i = 0; i < rd->n; i++) {
		if (rd->v[i].id == id) {
			*ret = rd->v[i].r;
			pthread_mutex_unlock(&rd->lock);
			return 0;
		}
	}
	memset(&row, 0, sizeof(row));
	rc = strata_catalog_archive_get(cat, id, &row, err);
	if (rc < 0)
		goto out;
	rc = strata_frames_decode(row.frames, row.frames_len, &frames, &nframes, err);
	if (rc < 0)
		goto out;
	rc = strata_archive_reader_open(strata_repo_archives_fd(rd->repo), row.name,
					strata_repo_master_key(rd->repo), frames, nframes, rd->cache,
					&r, err);
	if (rc < 0)
		goto out;
	if (rd->n == rd->alloc) {
		size_t na = rd->alloc ? rd->alloc * 2 : 16;
		struct open_archive *nv = realloc(rd->v, na * sizeof(*nv));

		if (!nv) {
			strata_archive_reader_close(r);
			rc = strata_error_set(err, -ENOMEM, STRATA_ERR_INTERNAL, "out of memory");
			goto out;
		}
		rd->v = nv;
		rd->alloc = na;
	}
	rd->v[rd->n].id = id;
	rd->v[rd->n].r = r;
	rd->n++;
	*ret = r;
out:
	pthread_mutex_unlock(&rd->lock);
	free(frames);
	free(row.frames);
	return rc;
}

int64_t strata_reader_pread(struct strata_reader *rd, struct strata_catalog *cat,
			    const struct strata_entry *e, void *buf, size_t n, uint64_t off,
			    struct strata_error *err)
{
	struct strata_archive_reader *ar = NULL;
	uint8_t *out = buf;
	uint64_t packed = 0;
	int rc;

	if (e->type != STRATA_T_REG || off >= e->size || n == 0)
		return 0;
	if (n > e->size - off)
		n = (size_t)(e->size - off);
	if (e->archive == 0)
		return strata_error_set(err, -EBADMSG, STRATA_ERR_CORRUPT,
					"catalog: file of %llu bytes has no archive",
					(unsigned long long)e->size);
	rc = reader_get(rd, cat, e->archive, &ar, err);
	if (rc < 0)
		return rc;
	if (!e->sparse_len) {
		rc = strata_archive_reader_pread(ar, buf, n, e->data_offset + off, err);
		return rc < 0 ? rc : (int64_t)n;
	}
	/* Sparse: zeros, except where a data segment covers the range. */
	memset(buf, 0, n);
	for (size_t i = 0; i + 16 <= e->sparse_len; i += 16) {
		uint64_t so = strata_get_le64(e->sparse + i), sl = strata_get_le64(e->sparse + i + 8);
		uint64_t lo = off > so ? off : so;
		uint64_t hi = off + n < so + sl ? off + n : so + sl;

		if (lo < hi) {
			rc = strata_archive_reader_pread(ar, out + (lo - off), (size_t)(hi - lo),
							 e->data_offset + packed + (lo - so), err);
			if (rc < 0)
				return rc;
		}
		packed += sl;
		if (so >= off + n)
			break;
	}
	return (int64_t)n;
}

/* ---- restore ------------------------------------------------------------ */

struct hl_seen {
	uint64_t dev, ino;
	char *path;
};

struct restore_run {
	struct strata_repo *repo;
	struct strata_catalog *cat;
	const struct strata_restore_options *opts;
	struct strata_restore_stats stats;
	struct strata_reader *rd;
	struct archive *disk;
	struct archive_entry *ae;
	uint8_t *buf;
	struct strata_error first;     /* the first content error */
	struct strata_error *err;
	struct hl_seen *hl;
	size_t nhl, ahl;

	int64_t last_progress_ns;
	uint64_t visited;              /* entries the walk reached */
	struct deferred_acl {
		char *path;
		uint8_t *value;
		uint32_t len;
	} *dacl;                       /* default ACLs, set after all contents */
	size_t ndacl;
};

static void rwarn(struct restore_run *rr, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void rwarn(struct restore_run *rr, const char *fmt, ...)
{
	char msg[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	rr->stats.errors++;
	if (rr->opts->warn)
		rr->opts->warn(rr->opts->ctx, msg);
}

static bool name_ok(const struct strata_entry *e)
{
	if (e->name_len == 0 || memchr(e->name, '/', e->name_len) || memchr(e->name, '\0', e->name_len))
		return false;
	if (e->name_len == 1 && e->name[0] == '.')
		return false;
	if (e->name_len == 2 && e->name[0] == '.' && e->name[1] == '.')
		return false;
	return true;
}

/* The xattr blob is well formed: [u32 len][name][u32 len][value]..., names 1..255 bytes, no NUL. */
static bool xattrs_valid(const uint8_t *p, size_t len)
{
	size_t off = 0;

	while (off < len) {
		uint32_t nl, vl;

		if (len - off < 8)
			return false;
		nl = strata_get_le32(p + off);
		if (nl == 0 || nl > 255 || nl > len - off - 8 || memchr(p + off + 4, 0, nl))
			return false;
		vl = strata_get_le32(p + off + 4 + nl);
		if (vl > len - off - 8 - nl)
			return false;
		off += 8 + (size_t)nl + vl;
	}
	return true;
}

static bool is_acl_xattr(const char *name)
{
	return !strcmp(name, "system.posix_acl_access") || !strcmp(name, "system.posix_acl_default");
}

/*
 * POSIX ACLs are kept as the kernel's raw xattrs (exact, no text round
 * trip).  archive_write_disk skips those names, so they are set here, after
 * the entry is finished: the path was created by archive_write_disk under
 * its secure flags and lsetxattr does not follow a final symlink.
 */
static void apply_acls(struct restore_run *rr, const struct strata_entry *e, const char *path,
		       const char *q)
{
	size_t off = 0;

	while (off + 8 <= e->xattrs_len) {
		uint32_t nl = strata_get_le32(e->xattrs + off), vl;
		char name[256];

		if (nl >= sizeof(name) || off + 8 + nl > e->xattrs_len)
			break;
		memcpy(name, e->xattrs + off + 4, nl);
		name[nl] = '\0';
		vl = strata_get_le32(e->xattrs + off + 4 + nl);
		if (vl > e->xattrs_len - off - 8 - nl)
			break;
		if (!strcmp(name, "system.posix_acl_default")) {
			/* later: children restored now must not inherit it */
			struct deferred_acl *nv = realloc(rr->dacl, (rr->ndacl + 1) * sizeof(*nv));

			if (nv) {
				rr->dacl = nv;
				nv[rr->ndacl].path = strdup(path);
				nv[rr->ndacl].value = malloc(vl ? vl : 1);
				nv[rr->ndacl].len = vl;
				if (nv[rr->ndacl].path && nv[rr->ndacl].value) {
					memcpy(nv[rr->ndacl].value, e->xattrs + off + 8 + nl, vl);
					rr->ndacl++;
				} else {
					free(nv[rr->ndacl].path);
					free(nv[rr->ndacl].value);
				}
			}
		} else if (is_acl_xattr(name) &&
			   lsetxattr(path, name, e->xattrs + off + 8 + nl, vl, 0) < 0) {
			rwarn(rr, "cannot set ACL on '%s': %s", q, strerror(errno));
		}
		off += 8 + nl + vl;
	}
}

static void entry_build(struct archive_entry *ae, const struct strata_entry *e, const char *path)
{
	size_t off = 0;

	archive_entry_clear(ae);
	archive_entry_copy_pathname(ae, path);
	archive_entry_set_mode(ae, e->mode);
	archive_entry_set_uid(ae, e->uid);
	archive_entry_set_gid(ae, e->gid);
	{
		/* floor division: a pre-1970 time keeps 0 <= nsec < 1e9 */
		int64_t sec = e->mtime_ns / 1000000000, nsec = e->mtime_ns % 1000000000;

		if (nsec < 0) {
			sec -= 1;
			nsec += 1000000000;
		}
		archive_entry_set_mtime(ae, (time_t)sec, (long)nsec);
	}
	archive_entry_set_size(ae, e->type == STRATA_T_REG ? (la_int64_t)e->size : 0);
	if (e->type == STRATA_T_LNK && e->link)
		archive_entry_copy_symlink(ae, e->link);
	if (e->type == STRATA_T_CHR || e->type == STRATA_T_BLK)
		archive_entry_set_rdev(ae, (dev_t)e->rdev);
	while (off + 8 <= e->xattrs_len) {
		uint32_t nl = strata_get_le32(e->xattrs + off), vl;
		char name[256];

		if (nl >= sizeof(name) || off + 8 + nl > e->xattrs_len)
			break;
		memcpy(name, e->xattrs + off + 4, nl);
		name[nl] = '\0';
		vl = strata_get_le32(e->xattrs + off + 4 + nl);
		if (vl > e->xattrs_len - off - 8 - nl)
			break;
		if (!is_acl_xattr(name))
			archive_entry_xattr_add_entry(ae, name, e->xattrs + off + 8 + nl, vl);
		off += 8 + nl + vl;
	}
}

static const char *hl_find(struct restore_run *rr, const struct strata_entry *e)
{
	for (size_t i = 0; i < rr->nhl; i++)
		if (rr->hl[i].dev == e->dev && rr->hl[i].ino == e->ino)
			return rr->hl[i].path;
	return NULL;
}

static void hl_add(struct restore_run *rr, const struct strata_entry *e, const char *path)
{
	if (rr->nhl == rr->ahl) {
		size_t na = rr->ahl ? rr->ahl * 2 : 64;
		struct hl_seen *nv = realloc(rr->hl, na * sizeof(*nv));

		if (!nv)
			return;
		rr->hl = nv;
		rr->ahl = na;
	}
	rr->hl[rr->nhl].dev = e->dev;
	rr->hl[rr->nhl].ino = e->ino;
	rr->hl[rr->nhl].path = strdup(path);
	if (rr->hl[rr->nhl].path)
		rr->nhl++;
}

/* Write a regular file's content, segment by segment (holes stay holes). */
static int write_content(struct restore_run *rr, const struct strata_entry *e, const char *q)
{
	struct strata_error rerr = { 0 };
	size_t nseg = e->sparse_len ? e->sparse_len / 16 : 1;

	for (size_t s = 0; s < nseg; s++) {
		uint64_t so = 0, sl = e->size;

		if (e->sparse_len) {
			so = strata_get_le64(e->sparse + 16 * s);
			sl = strata_get_le64(e->sparse + 16 * s + 8);
		}
		for (uint64_t done = 0; done < sl;) {
			size_t want = sl - done < CHUNK ? (size_t)(sl - done) : CHUNK;
			int64_t got = strata_reader_pread(rr->rd, rr->cat, e, rr->buf, want, so + done, &rerr);

			if (got <= 0) {
				if (got == 0)
					strata_error_set(&rerr, -EBADMSG, STRATA_ERR_CORRUPT, "short content");
				rwarn(rr, "cannot restore '%s': %s", q, rerr.msg);
				/* content the catalog points at and cannot be read: damage */
				if (!rr->first.code)
					strata_error_set(&rr->first,
							 rerr.kind == STRATA_ERR_IO || rerr.kind == STRATA_ERR_AUTH
								 ? rerr.code : -EBADMSG,
							 rerr.kind == STRATA_ERR_IO || rerr.kind == STRATA_ERR_AUTH
								 ? rerr.kind : STRATA_ERR_CORRUPT,
							 "cannot restore '%s': %s", q, rerr.msg);
				return -1;
			}
			if (archive_write_data_block(rr->disk, rr->buf, (size_t)got,
						     (la_int64_t)(so + done)) < ARCHIVE_WARN) {
				rwarn(rr, "cannot write '%s': %s", q, archive_error_string(rr->disk));
				return -1;
			}
			done += (uint64_t)got;
			rr->stats.bytes += (uint64_t)got;
		}
	}
	return 0;
}

static int restore_one(void *ctx, const struct strata_entry *e, const char *path, size_t path_len)
{
	struct restore_run *rr = ctx;
	char q[1400];
	const char *link = NULL;
	int r;

	(void)path_len;
	strata_quote(q, sizeof(q), path, path_len);
	if (!name_ok(e) || !strata_path_is_safe(path, path_len)) {
		rwarn(rr, "refusing unsafe path '%s' from the catalog", q);
		if (!rr->first.code)
			strata_error_set(&rr->first, -EBADMSG, STRATA_ERR_CORRUPT,
					 "refusing unsafe path '%s' from the catalog", q);
		return 0;
	}
	rr->visited++;
	if (!xattrs_valid(e->xattrs, e->xattrs_len) || (e->sparse_len % 16) != 0 ||
	    !strchr("fdlpcbs", e->type ? e->type : '?')) {
		rwarn(rr, "catalog: entry '%s' is damaged (type, xattrs or sparse map)", q);
		if (!rr->first.code)
			strata_error_set(&rr->first, -EBADMSG, STRATA_ERR_CORRUPT,
					 "catalog: entry '%s' is damaged", q);
		return 0;
	}
	entry_build(rr->ae, e, path);
	if (e->type == STRATA_T_REG && e->nlink > 1) {
		link = hl_find(rr, e);
		if (link) {
			archive_entry_set_size(rr->ae, 0);
			archive_entry_copy_hardlink(rr->ae, link);
		}
	}
	r = archive_write_header(rr->disk, rr->ae);
	if (r < ARCHIVE_WARN) {
		rwarn(rr, "cannot restore '%s': %s", q, archive_error_string(rr->disk));
		if (r == ARCHIVE_FATAL)
			return strata_error_set(rr->err, -EIO, STRATA_ERR_IO, "cannot restore '%s': %s", q,
						archive_error_string(rr->disk));
		return 0;
	}
	if (r == ARCHIVE_WARN && rr->opts->warn) {
		char msg[2048];

		snprintf(msg, sizeof(msg), "'%s': %s", q, archive_error_string(rr->disk));
		rr->opts->warn(rr->opts->ctx, msg);
	}
	if (e->type == STRATA_T_REG && !link && e->size > 0) {
		if (write_content(rr, e, q) < 0) {
			archive_write_finish_entry(rr->disk);
			unlink(path);
			return 0;
		}
	}
	r = archive_write_finish_entry(rr->disk);
	if (r < ARCHIVE_WARN)
		rwarn(rr, "cannot finish '%s': %s", q, archive_error_string(rr->disk));
	else if (e->xattrs_len && !link)
		apply_acls(rr, e, path, q);
	if (e->type == STRATA_T_REG && e->nlink > 1 && !link)
		hl_add(rr, e, path);
	rr->stats.entries++;
	if (rr->opts->progress) {
		int64_t now = strata_now_ns();

		if (now - rr->last_progress_ns > 100000000) {
			rr->last_progress_ns = now;
			rr->opts->progress(rr->opts->ctx, rr->stats.entries, rr->stats.bytes, path);
		}
	}
	return 0;
}

/* Restore the ancestors of a subtree (so "etc/erp" gets "etc" with its metadata). */
static int restore_path(struct restore_run *rr, int64_t set_id, int64_t snap, const char *spec)
{
	struct strata_entry_list l = { 0 };
	struct strata_buf path = STRATA_BUF_INIT(1u << 20);
	int64_t parent = 0;
	const char *p = spec;
	int rc = 0;

	while (*p == '/')
		p++;
	while (*p) {
		const char *slash = strchr(p, '/');
		size_t len = slash ? (size_t)(slash - p) : strlen(p);

		if (len == 0) {
			p++;
			continue;
		}
		strata_entry_list_release(&l);
		rc = strata_catalog_lookup(rr->cat, set_id, snap, parent, p, len, &l, rr->err);
		if (rc < 0)
			goto out;
		if (path.len)
			strata_buf_append(&path, "/", 1);
		strata_buf_append(&path, p, len);
		rc = restore_one(rr, &l.v[0], (const char *)path.data, path.len);
		if (rc < 0)
			goto out;
		parent = l.v[0].node_id;
		p += len;
		while (*p == '/')
			p++;
	}
	if (l.n && l.v[0].type == STRATA_T_DIR) {
		rc = strata_catalog_walk(rr->cat, set_id, snap, parent, restore_one, rr, rr->err);
	}
out:
	strata_entry_list_release(&l);
	strata_buf_release(&path);
	return rc;
}

int strata_restore_run(struct strata_repo *repo, struct strata_catalog *cat,
		       const struct strata_snapshot *snap, const char *target,
		       const struct strata_restore_options *opts, struct strata_restore_stats *ret,
		       struct strata_error *err)
{
	struct restore_run rr;
	int flags = ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_XATTR |
		    ARCHIVE_EXTRACT_SECURE_NODOTDOT |
		    ARCHIVE_EXTRACT_SECURE_SYMLINKS | ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS;
	int cwd = -1, rc = 0;

	memset(&rr, 0, sizeof(rr));
	rr.repo = repo;
	rr.cat = cat;
	rr.opts = opts;
	rr.err = err;
	if (!opts->overwrite)
		flags |= ARCHIVE_EXTRACT_NO_OVERWRITE;
	else
		flags |= ARCHIVE_EXTRACT_UNLINK;
	if (geteuid() == 0 && !opts->no_owner)
		flags |= ARCHIVE_EXTRACT_OWNER;

	if (mkdir(target, 0700) < 0 && errno != EEXIST)
		return strata_error_errno(err, errno, "cannot create '%s'", target);
	cwd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cwd < 0)
		return strata_error_errno(err, errno, "cannot open the working directory");
	if (chdir(target) < 0) {
		rc = strata_error_errno(err, errno, "cannot enter '%s'", target);
		goto out;
	}
	rr.buf = malloc(CHUNK);
	rr.ae = archive_entry_new();
	rr.disk = archive_write_disk_new();
	if (!rr.buf || !rr.ae || !rr.disk) {
		rc = strata_error_set(err, -ENOMEM, STRATA_ERR_INTERNAL, "out of memory");
		goto out;
	}
	archive_write_disk_set_options(rr.disk, flags);
	rc = strata_reader_new(repo, NULL, &rr.rd, err);
	if (rc < 0)
		goto out;

	if (opts->paths && opts->paths[0]) {
		for (const char *const *p = opts->paths; *p && rc == 0; p++)
			rc = restore_path(&rr, snap->set_id, snap->id, *p);
	} else {
		rc = strata_catalog_walk(cat, snap->set_id, snap->id, 0, restore_one, &rr, err);
		/* Every entry of the snapshot must be reachable from its root: fewer
		 * means parts of the tree hang below a non-directory or in a loop. */
		if (rc == 0 && rr.visited < snap->files && !rr.first.code)
			strata_error_set(&rr.first, -EBADMSG, STRATA_ERR_CORRUPT,
					 "catalog: snapshot '%s' has %llu entries, only %llu are reachable",
					 snap->name, (unsigned long long)snap->files,
					 (unsigned long long)rr.visited);
	}
	/* Directory modes and times are applied here, after their contents. */
	if (archive_write_close(rr.disk) != ARCHIVE_OK && rc == 0)
		rwarn(&rr, "cannot finish restore into '%s': %s", target, archive_error_string(rr.disk));
	for (size_t i = 0; i < rr.ndacl; i++) {
		if (lsetxattr(rr.dacl[i].path, "system.posix_acl_default", rr.dacl[i].value,
			      rr.dacl[i].len, 0) < 0) {
			char q[1400];

			strata_quote(q, sizeof(q), rr.dacl[i].path, strlen(rr.dacl[i].path));
			rwarn(&rr, "cannot set default ACL on '%s': %s", q, strerror(errno));
		}
	}
	if (rc == 0 && rr.first.code)
		rc = strata_error_set(err, rr.first.code, rr.first.kind, "%s", rr.first.msg);
	if (rc == 0 && rr.stats.errors)
		rc = strata_error_set(err, -EIO, STRATA_ERR_IO, "%llu entries could not be restored",
				      (unsigned long long)rr.stats.errors);
out:
	if (cwd >= 0) {
		if (fchdir(cwd) < 0 && rc == 0)
			rc = strata_error_errno(err, errno, "cannot return to the working directory");
		close(cwd);
	}
	if (rr.disk)
		archive_write_free(rr.disk);
	archive_entry_free(rr.ae);
	free(rr.buf);
	strata_reader_free(rr.rd);
	for (size_t i = 0; i < rr.nhl; i++)
		free(rr.hl[i].path);
	for (size_t i = 0; i < rr.ndacl; i++) {
		free(rr.dacl[i].path);
		free(rr.dacl[i].value);
	}
	free(rr.dacl);
	free(rr.hl);
	if (ret)
		*ret = rr.stats;
	return rc;
}
