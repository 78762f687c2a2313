/*
 * restore.c - restore a snapshot (or subtrees of it) to disk with its
 * metadata: bytes, holes, type, mode, owners, times to the nanosecond,
 * symlinks, hardlinks, fifos and devices, xattrs and POSIX ACLs.
 *
 * Safety, against a hostile or damaged catalog and a hostile target:
 * - Everything is written relative to directory fds: the catalog walk is
 *   depth first with parents before children, so a stack of open directory
 *   fds, one per depth, always holds the entry's parent.  Each entry is
 *   created with openat/mkdirat/symlinkat/mknodat on its parent's fd, with
 *   O_NOFOLLOW|O_EXCL where it applies; directories are entered with
 *   O_DIRECTORY|O_NOFOLLOW.  No path is ever resolved through a symlink, so
 *   nothing can be written outside the target, whatever the names say.
 * - Names are checked again: a name holding '/' or NUL, "." or "..", or a
 *   path that is not safe (strata_path_is_safe) is refused and reported.
 * - An entry whose parent is not the directory on the stack (it hangs below
 *   a non-directory, or in a loop) is never reached by the walk; the whole
 *   snapshot's restore compares the entries reached with the snapshot's
 *   entry count and reports the difference as damage.
 * A directory's owner, mode, xattrs, default ACL and times are applied when
 * it is left (after its contents), so its mtime survives and restored
 * children do not inherit a default ACL they never had.  A file whose
 * content cannot be read is reported, removed, and the restore goes on.
 */
#include "restore.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#define CHUNK (1u << 20)
#define RESTORE_CACHE (64u << 20)   /* decompressed frames kept for restore */
#define RESTORE_READAHEAD 8          /* frames decompressed ahead, on the other core */

/* A directory being filled: applied and closed when the walk leaves it. */
struct open_dir {
	int fd;
	int64_t node;
	struct strata_entry e;      /* its metadata; xattrs copied below */
	uint8_t *xattrs;
	char *qpath;                /* quoted, for messages */
};

struct hl_seen {
	uint64_t dev, ino;
	char *path;                 /* relative to the target */
};

struct restore_run {
	struct strata_repo *repo;
	struct strata_catalog *cat;
	const struct strata_restore_options *opts;
	struct strata_restore_stats stats;
	struct strata_reader *rd;
	struct strata_frame_cache *cache;
	uint8_t *buf;
	struct strata_error first;     /* the first problem: the run's result */
	struct strata_error *err;
	bool chown;
	int target;
	struct open_dir *stack;        /* stack[0]: the target, depth d at [d] */
	size_t depth, alloc;
	struct hl_seen *hl;
	size_t nhl, ahl;
	struct strata_inomap hlmap;    /* (dev, ino) -> index in hl */
	uint64_t visited;              /* entries the walk reached */
	int64_t last_progress_ns;
};

static void rwarn(struct restore_run *rr, int code, enum strata_error_kind kind, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Report one problem; the first one becomes the run's error. */
static void rwarn(struct restore_run *rr, int code, enum strata_error_kind kind, const char *fmt, ...)
{
	char msg[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	rr->stats.errors++;
	if (!rr->first.code)
		strata_error_set(&rr->first, code, kind, "%s", msg);
	if (rr->opts->warn)
		rr->opts->warn(rr->opts->ctx, msg);
}

static bool name_ok(const struct strata_entry *e)
{
	if (e->name_len == 0 || e->name_len > 255 || memchr(e->name, '/', e->name_len) ||
	    memchr(e->name, '\0', e->name_len))
		return false;
	if (e->name_len == 1 && e->name[0] == '.')
		return false;
	if (e->name_len == 2 && e->name[0] == '.' && e->name[1] == '.')
		return false;
	return true;
}

/* The xattr blob is well formed (strata_xattrs_next walks it to the end). */
static bool xattrs_valid(const uint8_t *p, size_t len)
{
	size_t off = 0;
	const char *n;
	const uint8_t *v;
	uint32_t nl, vl;
	int r;

	while ((r = strata_xattrs_next(p, len, &off, &n, &nl, &v, &vl)) > 0)
		;
	return r == 0;
}

static struct timespec ns_to_ts(int64_t ns)
{
	struct timespec ts = { (time_t)(ns / 1000000000), (long)(ns % 1000000000) };

	if (ts.tv_nsec < 0) {   /* floor: pre-1970 times keep 0 <= nsec < 1e9 */
		ts.tv_sec -= 1;
		ts.tv_nsec += 1000000000;
	}
	return ts;
}

/*
 * Set the xattrs of the blob on fd (or, fd < 0, on name in dirfd through
 * /proc, for entries that cannot be opened).  which: 0 all but the default
 * ACL, 1 only the default ACL.
 */
static void set_xattrs(struct restore_run *rr, int fd, int dirfd, const char *name,
		       const uint8_t *x, size_t len, int which, const char *q)
{
	char proc[512];
	size_t off = 0;
	const char *n;
	const uint8_t *v;
	uint32_t nl, vl;

	if (fd < 0)
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d/%s", dirfd, name);
	while (strata_xattrs_next(x, len, &off, &n, &nl, &v, &vl) > 0) {
		char xn[256];
		int r;

		memcpy(xn, n, nl);
		xn[nl] = '\0';
		if ((strcmp(xn, "system.posix_acl_default") == 0) == (which == 1)) {
			r = fd >= 0 ? fsetxattr(fd, xn, v, vl, 0) : lsetxattr(proc, xn, v, vl, 0);
			if (r < 0)
				rwarn(rr, -errno, STRATA_ERR_IO, "cannot set '%s' on '%s': %s", xn, q,
				      strerror(errno));
		}
	}
}

/* Owner, then mode (chown clears set-id bits), then xattrs and ACLs, then times. */
static void set_meta(struct restore_run *rr, int fd, int dirfd, const char *name,
		     const struct strata_entry *e, const uint8_t *xattrs, const char *q)
{
	struct timespec ts[2];
	mode_t mode = e->mode & 07777;

	if (rr->chown) {
		int r = fd >= 0 ? fchown(fd, e->uid, e->gid)
				: fchownat(dirfd, name, e->uid, e->gid, AT_SYMLINK_NOFOLLOW);

		if (r < 0)
			rwarn(rr, -errno, STRATA_ERR_IO, "cannot set the owner of '%s': %s", q, strerror(errno));
	} else {
		mode &= ~(mode_t)(S_ISUID | S_ISGID);
	}
	if (e->type != STRATA_T_LNK) {
		int r = fd >= 0 ? fchmod(fd, mode) : fchmodat(dirfd, name, mode, 0);

		if (r < 0)
			rwarn(rr, -errno, STRATA_ERR_IO, "cannot set the mode of '%s': %s", q, strerror(errno));
	}
	if (e->xattrs_len && e->type != STRATA_T_LNK)
		set_xattrs(rr, fd, dirfd, name, xattrs, e->xattrs_len, 0, q);
	ts[0].tv_sec = 0;
	ts[0].tv_nsec = UTIME_OMIT;
	ts[1] = ns_to_ts(e->mtime_ns);
	if ((fd >= 0 ? futimens(fd, ts) : utimensat(dirfd, name, ts, AT_SYMLINK_NOFOLLOW)) < 0)
		rwarn(rr, -errno, STRATA_ERR_IO, "cannot set the times of '%s': %s", q, strerror(errno));
}

/* Leave the directory on top of the stack: its metadata, then close it. */
static void dir_pop(struct restore_run *rr)
{
	struct open_dir *d = &rr->stack[rr->depth];

	if (d->e.xattrs_len)
		set_xattrs(rr, d->fd, -1, NULL, d->xattrs, d->e.xattrs_len, 1, d->qpath);
	set_meta(rr, d->fd, -1, NULL, &d->e, d->xattrs, d->qpath);
	close(d->fd);
	free(d->xattrs);
	free(d->qpath);
	memset(d, 0, sizeof(*d));
	rr->depth--;
}

static int dir_push(struct restore_run *rr, int fd, const struct strata_entry *e, const char *q)
{
	struct open_dir *d;

	if (strata_grow(&rr->stack, &rr->alloc, rr->depth + 2, sizeof(*rr->stack)) < 0)
		return -ENOMEM;
	d = &rr->stack[++rr->depth];
	memset(d, 0, sizeof(*d));
	d->fd = fd;
	d->node = e->node_id;
	d->e = *e;
	d->e.name = NULL;
	d->e.uname = d->e.gname = d->e.link = NULL;
	d->e.sparse = NULL;
	d->e.xattrs = NULL;
	d->qpath = strdup(q);
	if (e->xattrs_len) {
		d->xattrs = malloc(e->xattrs_len);
		if (d->xattrs)
			memcpy(d->xattrs, e->xattrs, e->xattrs_len);
		else
			d->e.xattrs_len = 0;
	}
	return d->qpath ? 0 : -ENOMEM;
}

static const char *hl_find(struct restore_run *rr, const struct strata_entry *e)
{
	size_t i = strata_inomap_get(&rr->hlmap, e->dev, e->ino);

	return i == SIZE_MAX ? NULL : rr->hl[i].path;
}

static void hl_add(struct restore_run *rr, const struct strata_entry *e, const char *path)
{
	if (strata_grow(&rr->hl, &rr->ahl, rr->nhl + 1, sizeof(*rr->hl)) < 0)
		return;
	rr->hl[rr->nhl].dev = e->dev;
	rr->hl[rr->nhl].ino = e->ino;
	rr->hl[rr->nhl].path = strdup(path);
	if (rr->hl[rr->nhl].path && strata_inomap_put(&rr->hlmap, e->dev, e->ino, rr->nhl) == 0)
		rr->nhl++;
	else
		free(rr->hl[rr->nhl].path);
}

/* Write a regular file's content, segment by segment (holes stay holes). */
static int write_content(struct restore_run *rr, int fd, const struct strata_entry *e, const char *q)
{
	struct strata_error rerr = { 0 };
	size_t nseg = e->sparse_len ? e->sparse_len / 16 : 1;

	for (size_t s = 0; s < nseg; s++) {
		uint64_t so = 0, sl = e->size;

		if (e->sparse_len) {
			so = strata_get_le64(e->sparse + 16 * s);
			sl = strata_get_le64(e->sparse + 16 * s + 8);
			if (so > e->size || sl > e->size - so) {
				rwarn(rr, -EBADMSG, STRATA_ERR_CORRUPT,
				      "cannot restore '%s': catalog: sparse map beyond the file size", q);
				return -1;
			}
		}
		for (uint64_t done = 0; done < sl;) {
			size_t want = sl - done < CHUNK ? (size_t)(sl - done) : CHUNK;
			int64_t got = strata_reader_pread(rr->rd, rr->cat, e, rr->buf, want, so + done, &rerr);

			if (got <= 0) {
				bool io = got < 0 && (rerr.kind == STRATA_ERR_IO || rerr.kind == STRATA_ERR_AUTH);

				if (got == 0)
					strata_error_set(&rerr, -EBADMSG, STRATA_ERR_CORRUPT, "short content");
				/* content the catalog points at and cannot be read: damage */
				rwarn(rr, io ? rerr.code : -EBADMSG, io ? rerr.kind : STRATA_ERR_CORRUPT,
				      "cannot restore '%s': %s", q, rerr.msg);
				return -1;
			}
			if (strata_pwrite_full(fd, rr->buf, (size_t)got, so + done) < 0) {
				rwarn(rr, -errno, STRATA_ERR_IO, "cannot write '%s': %s", q, strerror(errno));
				return -1;
			}
			done += (uint64_t)got;
			rr->stats.bytes += (uint64_t)got;
		}
	}
	if (e->sparse_len && ftruncate(fd, (off_t)e->size) < 0) {
		rwarn(rr, -errno, STRATA_ERR_IO, "cannot extend '%s': %s", q, strerror(errno));
		return -1;
	}
	return 0;
}

/* Make room for an entry: with overwrite, remove what is there (not a directory). */
static int make_room(struct restore_run *rr, int pfd, const char *name, bool is_dir)
{
	struct stat st;

	if (!rr->opts->overwrite || fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return 0;
	if (S_ISDIR(st.st_mode))
		return is_dir ? 0 : -EISDIR;
	return unlinkat(pfd, name, 0) < 0 ? -errno : 0;
}

static void restore_entry(struct restore_run *rr, int pfd, const struct strata_entry *e,
			  const char *name, const char *path, const char *q)
{
	int fd = -1;

	if (make_room(rr, pfd, name, e->type == STRATA_T_DIR) < 0) {
		rwarn(rr, -EEXIST, STRATA_ERR_IO, "cannot restore '%s': a directory is in the way", q);
		return;
	}
	switch (e->type) {
	case STRATA_T_DIR:
		if (mkdirat(pfd, name, 0700) < 0 && errno != EEXIST) {
			rwarn(rr, -errno, STRATA_ERR_IO, "cannot create '%s': %s", q, strerror(errno));
			return;
		}
		/* an existing symlink in its place fails here: never followed */
		fd = openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0) {
			rwarn(rr, -errno, STRATA_ERR_IO, "cannot enter '%s': %s", q,
			      errno == ELOOP || errno == ENOTDIR ? "not a directory (refusing to follow)"
								  : strerror(errno));
			return;
		}
		if (dir_push(rr, fd, e, q) < 0) {
			close(fd);
			rwarn(rr, -ENOMEM, STRATA_ERR_INTERNAL, "out of memory");
			return;
		}
		break;
	case STRATA_T_REG: {
		const char *leader = e->nlink > 1 ? hl_find(rr, e) : NULL;

		if (leader) {
			if (linkat(rr->target, leader, pfd, name, 0) == 0)
				break;
			/* a link across what cannot be linked: restore a copy */
		}
		fd = openat(pfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0) {
			rwarn(rr, -errno, STRATA_ERR_IO, "cannot create '%s': %s", q, strerror(errno));
			return;
		}
		if (e->size > 0 && write_content(rr, fd, e, q) < 0) {
			close(fd);
			unlinkat(pfd, name, 0);
			return;
		}
		set_meta(rr, fd, pfd, name, e, e->xattrs, q);
		close(fd);
		if (e->nlink > 1)
			hl_add(rr, e, path);
		break;
	}
	case STRATA_T_LNK:
		if (!e->link || memchr(e->link, '\0', e->link_len) != NULL || e->link_len == 0) {
			rwarn(rr, -EBADMSG, STRATA_ERR_CORRUPT, "catalog: symlink '%s' has no target", q);
			return;
		}
		if (symlinkat(e->link, pfd, name) < 0) {
			rwarn(rr, -errno, STRATA_ERR_IO, "cannot create '%s': %s", q, strerror(errno));
			return;
		}
		set_meta(rr, -1, pfd, name, e, e->xattrs, q);
		break;
	case STRATA_T_FIFO:
	case STRATA_T_CHR:
	case STRATA_T_BLK:
	case STRATA_T_SOCK: {
		mode_t fmt = e->type == STRATA_T_FIFO ? S_IFIFO
			     : e->type == STRATA_T_CHR ? S_IFCHR
			     : e->type == STRATA_T_BLK ? S_IFBLK : S_IFSOCK;

		if (mknodat(pfd, name, fmt | 0600, (dev_t)e->rdev) < 0) {
			rwarn(rr, -errno, STRATA_ERR_IO, "cannot create '%s': %s", q, strerror(errno));
			return;
		}
		set_meta(rr, -1, pfd, name, e, e->xattrs, q);
		break;
	}
	default:
		rwarn(rr, -EBADMSG, STRATA_ERR_CORRUPT, "catalog: entry '%s' has an unknown type", q);
		return;
	}
	rr->stats.entries++;
}

/* Depth of a path from the snapshot root: "a" is 1, "a/b" is 2. */
static size_t path_depth(const char *path, size_t len)
{
	size_t d = 1;

	for (size_t i = 0; i < len; i++)
		d += path[i] == '/';
	return d;
}

static int restore_one(void *ctx, const struct strata_entry *e, const char *path, size_t path_len)
{
	struct restore_run *rr = ctx;
	size_t depth = path_depth(path, path_len);
	char q[1400], name[256];

	rr->visited++;
	strata_quote(q, sizeof(q), path, path_len);
	if (!name_ok(e) || !strata_path_is_safe(path, path_len)) {
		rwarn(rr, -EBADMSG, STRATA_ERR_CORRUPT, "refusing unsafe path '%s' from the catalog", q);
		return 0;
	}
	if (!xattrs_valid(e->xattrs, e->xattrs_len) || (e->sparse_len % 16) != 0) {
		rwarn(rr, -EBADMSG, STRATA_ERR_CORRUPT, "catalog: entry '%s' is damaged (xattrs or sparse map)", q);
		return 0;
	}
	/* leave the directories this entry is not in */
	while (rr->depth >= depth)
		dir_pop(rr);
	if (rr->depth + 1 != depth || rr->stack[rr->depth].node != e->parent_node) {
		/* its parent was not restored (reported then): skip the subtree */
		return 0;
	}
	memcpy(name, e->name, e->name_len);
	name[e->name_len] = '\0';
	restore_entry(rr, rr->stack[rr->depth].fd, e, name, path, q);
	if (rr->opts->progress) {
		int64_t now = strata_now_ns();

		if (now - rr->last_progress_ns > 100000000) {
			rr->last_progress_ns = now;
			rr->opts->progress(rr->opts->ctx, rr->stats.entries, rr->stats.bytes, path);
		}
	}
	return 0;
}

/* Restore one requested subtree: its ancestors first (with their metadata), then the walk below it. */
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
		if ((path.len && strata_buf_append(&path, "/", 1) < 0) || strata_buf_append(&path, p, len) < 0) {
			rc = strata_error_set(rr->err, -ENAMETOOLONG, STRATA_ERR_USAGE, "path '%s' is too long", spec);
			goto out;
		}
		rc = restore_one(rr, &l.v[0], (const char *)path.data, path.len);
		if (rc < 0)
			goto out;
		parent = l.v[0].node_id;
		p += len;
		while (*p == '/')
			p++;
	}
	if (l.n && l.v[0].type == STRATA_T_DIR)
		rc = strata_catalog_walk(rr->cat, set_id, snap, parent, restore_one, rr, rr->err);
out:
	/* the next requested path starts again from the target */
	while (rr->depth > 0)
		dir_pop(rr);
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
	int rc = 0;

	memset(&rr, 0, sizeof(rr));
	rr.repo = repo;
	rr.cat = cat;
	rr.opts = opts;
	rr.err = err;
	rr.target = -1;
	rr.chown = geteuid() == 0 && !opts->no_owner;

	if (mkdir(target, 0700) < 0 && errno != EEXIST)
		return strata_error_errno(err, errno, "cannot create '%s'", target);
	rr.target = open(target, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rr.target < 0)
		return strata_error_errno(err, errno, "cannot open '%s'", target);
	rr.buf = malloc(CHUNK);
	rr.stack = calloc(64, sizeof(*rr.stack));
	if (!rr.buf || !rr.stack) {
		rc = strata_error_set(err, -ENOMEM, STRATA_ERR_INTERNAL, "out of memory");
		goto out;
	}
	rr.alloc = 64;
	rr.stack[0].fd = rr.target;
	rr.stack[0].node = 0;
	rc = strata_frame_cache_new(RESTORE_CACHE, &rr.cache);
	if (rc < 0) {
		rc = strata_error_set(err, rc, STRATA_ERR_INTERNAL, "out of memory");
		goto out;
	}
	rc = strata_reader_new(repo, rr.cache, &rr.rd, err);
	if (rc < 0)
		goto out;
	strata_reader_set_readahead(rr.rd, RESTORE_READAHEAD);

	if (opts->paths && opts->paths[0]) {
		for (const char *const *p = opts->paths; *p && rc == 0; p++)
			rc = restore_path(&rr, snap->set_id, snap->id, *p);
	} else {
		rc = strata_catalog_walk(cat, snap->set_id, snap->id, 0, restore_one, &rr, err);
		while (rr.depth > 0)
			dir_pop(&rr);
		/* Every entry of the snapshot must be reachable from its root: fewer
		 * means parts of the tree hang below a non-directory or in a loop. */
		if (rc == 0 && rr.visited < snap->files)
			rwarn(&rr, -EBADMSG, STRATA_ERR_CORRUPT,
			      "catalog: snapshot '%s' has %llu entries, only %llu are reachable", snap->name,
			      (unsigned long long)snap->files, (unsigned long long)rr.visited);
	}
	if (rc == 0 && rr.first.code)
		rc = strata_error_set(err, rr.first.code, rr.first.kind, "%s", rr.first.msg);
out:
	while (rr.depth > 0)
		dir_pop(&rr);
	if (rr.target >= 0)
		close(rr.target);
	free(rr.stack);
	free(rr.buf);
	strata_reader_free(rr.rd);
	strata_frame_cache_free(rr.cache);
	for (size_t i = 0; i < rr.nhl; i++)
		free(rr.hl[i].path);
	free(rr.hl);
	strata_inomap_release(&rr.hlmap);
	if (ret)
		*ret = rr.stats;
	return rc;
}
