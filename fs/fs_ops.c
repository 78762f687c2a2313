/*
 * fs_ops.c - the FUSE low-level request handlers: the top two levels of
 * the tree (sets, snapshots, latest) from the snapshot list, everything
 * below from the catalog (one indexed query per request, on the worker's
 * pooled handle) and file contents through restore's reader and the shared
 * frame cache.
 *
 * Every handler replies exactly once and converts errors to an errno only
 * here.  Every modifying request answers EROFS.  Negative lookups inside a
 * snapshot are cached (ino 0, long timeout) since snapshots never change;
 * at the top level they are not, so new snapshots appear at once.
 * Directories are not opened when the kernel allows it: it keeps every
 * listing and reads it again when the directory's mtime moves (see
 * op_init and fs_mount.c view_date).  Nothing
 * the catalog holds may crash the driver: names that cannot be directory
 * entries ('/', NUL, ".", "..", longer than NAME_MAX) are not listed, and
 * impossible types, sizes or ids read as EIO.
 */
#include "fs_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#define MAX_IO (1u << 20)

/* A request is being served: the warming thread waits (fs_mount.c warm_main). */
static void busy(struct fs *fs)
{
	atomic_store_explicit(&fs->last_request_ns, strata_now_ns(), memory_order_relaxed);
}

/* ---- attributes -------------------------------------------------------- */

static struct timespec ns_to_ts(int64_t ns)
{
	struct timespec ts;

	ts.tv_sec = (time_t)(ns / 1000000000LL);
	ts.tv_nsec = (long)(ns % 1000000000LL);
	if (ts.tv_nsec < 0) {
		ts.tv_nsec += 1000000000L;
		ts.tv_sec--;
	}
	return ts;
}

static mode_t type_bits(char type)
{
	switch (type) {
	case STRATA_T_REG: return S_IFREG;
	case STRATA_T_DIR: return S_IFDIR;
	case STRATA_T_LNK: return S_IFLNK;
	case STRATA_T_FIFO: return S_IFIFO;
	case STRATA_T_CHR: return S_IFCHR;
	case STRATA_T_BLK: return S_IFBLK;
	case STRATA_T_SOCK: return S_IFSOCK;
	default: return 0;
	}
}

/* Bytes of data a sparse map holds; false when the map is malformed. */
static bool sparse_bytes(const struct strata_entry *e, uint64_t *ret)
{
	uint64_t sum = 0, end = 0;

	if (e->sparse_len % 16)
		return false;
	for (size_t i = 0; i < e->sparse_len; i += 16) {
		uint64_t so = strata_get_le64(e->sparse + i), sl = strata_get_le64(e->sparse + i + 8);

		if (so < end || sl > e->size || so > e->size - sl)
			return false;
		end = so + sl;
		sum += sl;
	}
	*ret = sum;
	return true;
}

static int entry_stat(const struct fs *fs, fuse_ino_t ino, const struct strata_entry *e,
		      struct stat *st)
{
	mode_t type = type_bits(e->type);
	uint64_t data = e->size;

	if (!type || e->size > (uint64_t)INT64_MAX)
		return -EIO;
	if (e->type == STRATA_T_REG && e->sparse && !sparse_bytes(e, &data))
		return -EIO;
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_mode = type | (e->mode & 07777);
	st->st_nlink = type == S_IFDIR || !e->nlink ? 1 : e->nlink;
	st->st_uid = e->uid;
	st->st_gid = e->gid;
	switch (type) {
	case S_IFREG:
		st->st_size = (off_t)e->size;
		st->st_blocks = (blkcnt_t)(data / 512 + (data % 512 != 0));
		break;
	case S_IFLNK:
		st->st_size = (off_t)(e->link ? strnlen(e->link, e->link_len) : 0);
		break;
	case S_IFCHR:
	case S_IFBLK:
		st->st_rdev = (dev_t)e->rdev;
		break;
	default:
		break;
	}
	st->st_mtim = ns_to_ts(e->mtime_ns);
	st->st_atim = st->st_mtim;
	st->st_ctim = ns_to_ts(e->ctime_ns ? e->ctime_ns : e->mtime_ns);
	(void)fs;
	return 0;
}

static void synth_stat(const struct fs *fs, fuse_ino_t ino, mode_t mode, int64_t ns, off_t size,
		       struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_mode = mode;
	st->st_nlink = 1;
	st->st_uid = fs->uid;
	st->st_gid = fs->gid;
	st->st_size = size;
	st->st_mtim = ns_to_ts(ns ? ns : fs->mount_ns);
	st->st_atim = st->st_mtim;
	st->st_ctim = st->st_mtim;
}

#define DIR_MODE (S_IFDIR | 0555)
#define LNK_MODE (S_IFLNK | 0777)

/* The set with id 'id' in the current view; false when gone. */
static bool set_find(struct fs *fs, int64_t id, struct fs_set *ret)
{
	bool found = false;

	pthread_rwlock_rdlock(&fs->view_lock);
	for (size_t i = 0; fs->view && i < fs->view->nsets; i++) {
		if (fs->view->sets[i].id == id) {
			*ret = fs->view->sets[i];
			found = true;
			break;
		}
	}
	pthread_rwlock_unlock(&fs->view_lock);
	return found;
}

/*
 * The snapshot a latest id points to (fs_inode.c: a moved latest is a new
 * id); false once that snapshot is gone.
 */
static bool latest_find(struct fs *fs, const struct fs_ino *in, struct fs_snap *ret)
{
	return fs_snap_find(fs, in->snap, ret) && ret->set_id == in->set_id;
}

/* The root's mtime: when its list of sets last changed. */
static int64_t view_listed(struct fs *fs)
{
	int64_t ns;

	pthread_rwlock_rdlock(&fs->view_lock);
	ns = fs->view ? fs->view->listed_ns : 0;
	pthread_rwlock_unlock(&fs->view_lock);
	return ns;
}

/*
 * Attributes of a node that is not a catalog entry (root, set, latest,
 * snapshot root).  Refreshes the snapshot list first.  0 or a positive errno.
 */
static int top_stat(struct fs *fs, struct strata_catalog *cat, const struct fs_ino *in,
		    fuse_ino_t ino, struct stat *st)
{
	struct fs_set set;
	struct fs_snap snap;

	fs_refresh(fs, cat);
	switch (in->kind) {
	case FS_ROOT:
		synth_stat(fs, ino, DIR_MODE, view_listed(fs), 0, st);
		return 0;
	case FS_SET:
		if (!set_find(fs, in->set_id, &set))
			return ENOENT;
		synth_stat(fs, ino, DIR_MODE, set.listed_ns, 0, st);
		return 0;
	case FS_LATEST:
		if (!latest_find(fs, in, &snap))
			return ENOENT;
		synth_stat(fs, ino, LNK_MODE, snap.finished_ns, (off_t)strlen(snap.name), st);
		return 0;
	case FS_TREE:
		if (in->node != 0 || !fs_snap_find(fs, in->snap, &snap))
			return ENOENT;
		synth_stat(fs, ino, DIR_MODE, snap.finished_ns, 0, st);
		return 0;
	default:
		return ENOENT;
	}
}

static bool is_top(const struct fs_ino *in)
{
	return in->kind == FS_ROOT || in->kind == FS_SET || in->kind == FS_LATEST ||
	       (in->kind == FS_TREE && in->node == 0);
}

/* A catalog name that can be a directory entry. */
static bool dirent_name_ok(const char *name, size_t len)
{
	if (!name || len == 0 || len > NAME_MAX || memchr(name, '/', len) || memchr(name, 0, len))
		return false;
	return !(len == 1 && name[0] == '.') && !(len == 2 && name[0] == '.' && name[1] == '.');
}

/* The version behind a tree or file id (see fs_inode.c), or a positive errno. */
static int ino_entry(struct fs *fs, struct strata_catalog *cat, const struct fs_ino *in,
		     struct strata_entry_list *ret)
{
	struct strata_error err;
	int rc;

	strata_error_init(&err);
	if (in->kind == FS_FILE)
		rc = strata_catalog_version_entry(cat, in->version, ret, &err);
	else
		rc = strata_catalog_node_entry(cat, in->snap, in->node, ret, &err);
	if (rc == -ENOENT)
		return ENOENT;
	if (rc < 0) {
		fs_log(fs, "catalog: %s", err.msg);
		return fs_errno(rc);
	}
	if (ret->n != 1) {
		rc = ret->n ? EIO : ENOENT;
		strata_entry_list_release(ret);
		return rc;
	}
	return 0;
}

/* ---- init, lookup, getattr ------------------------------------------------ */

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	struct fs *fs = userdata;

	if (conn->capable & FUSE_CAP_READDIRPLUS) {
		/* Always plus: find, ls -l and cp -a want every entry's attributes,
		 * which the directory query returns anyway. */
		conn->want |= FUSE_CAP_READDIRPLUS;
		conn->want &= ~(unsigned)FUSE_CAP_READDIRPLUS_AUTO;
	}
	if (conn->capable & FUSE_CAP_POSIX_ACL)
		conn->want |= FUSE_CAP_POSIX_ACL;  /* the kernel enforces backed-up ACLs */
	if (conn->capable & FUSE_CAP_ASYNC_READ)
		conn->want |= FUSE_CAP_ASYNC_READ;
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
	/* A symlink's target is fixed for the life of its id (fs_inode.c). */
	if (conn->capable & FUSE_CAP_CACHE_SYMLINKS)
		conn->want |= FUSE_CAP_CACHE_SYMLINKS;
	/* No open: the mount is read-only (the kernel refuses writing opens),
	 * so an open only cost a round trip and a catalog query. */
	if (conn->capable & FUSE_CAP_NO_OPEN_SUPPORT)
		fs->no_open = true;
	/*
	 * No opendir: the kernel then keeps every listing and asks again only
	 * when the directory's mtime changes, which it checks at the start of
	 * each listing with auto_inval_data (attributes older than their
	 * timeout are fetched).  The root's and the sets' mtimes move with
	 * every change of their listings (fs_mount.c: view_date).
	 */
	if ((conn->capable & FUSE_CAP_NO_OPENDIR_SUPPORT) &&
	    (conn->capable & FUSE_CAP_AUTO_INVAL_DATA)) {
		conn->want |= FUSE_CAP_AUTO_INVAL_DATA;
		fs->no_opendir = true;
	}
	conn->max_write = MAX_IO;  /* also raises max_pages, so reads may be 1 MiB */
	conn->max_read = MAX_IO;
	/* The kernel takes the smaller of this and the mount's readahead,
	 * which fs_mount.c raised before serving (its INIT offer is the old
	 * 128 KiB). */
	conn->max_readahead = FS_READ_AHEAD_KB * 1024;
	if (conn->max_background < 64)
		conn->max_background = 64;
	conn->time_gran = 1;
	fs_ready(fs);
}

static void reply_top_entry(fuse_req_t req, fuse_ino_t ino, const struct stat *st)
{
	struct fuse_entry_param e;

	memset(&e, 0, sizeof(e));
	e.ino = ino;
	e.attr = *st;
	e.attr_timeout = FS_TOP_TIMEOUT;
	e.entry_timeout = FS_TOP_TIMEOUT;
	fuse_reply_entry(req, &e);
}

static void lookup_top(fuse_req_t req, struct fs *fs, struct strata_catalog *cat,
		       const struct fs_ino *pin, const char *name)
{
	struct fs_ino in = { .kind = FS_BAD };
	fuse_ino_t ino = 0;
	struct stat st;
	int rc;

	fs_refresh(fs, cat);
	pthread_rwlock_rdlock(&fs->view_lock);
	if (pin->kind == FS_ROOT) {
		for (size_t i = 0; fs->view && i < fs->view->nsets; i++) {
			if (!strcmp(fs->view->sets[i].name, name)) {
				in.kind = FS_SET;
				in.set_id = fs->view->sets[i].id;
				ino = fs_ino_set(in.set_id);
				break;
			}
		}
	} else if (!strcmp(name, "latest")) {
		for (size_t i = 0; fs->view && i < fs->view->nsets; i++) {
			if (fs->view->sets[i].id == pin->set_id) {
				in.kind = FS_LATEST;
				in.set_id = pin->set_id;
				in.snap = fs->view->sets[i].latest;
				ino = fs_ino_latest(in.set_id, in.snap);
				break;
			}
		}
	} else {
		for (size_t i = 0; fs->view && i < fs->view->nsnaps; i++) {
			const struct fs_snap *s = &fs->view->snaps[i];

			if (s->set_id == pin->set_id && !strcmp(s->name, name)) {
				in.kind = FS_TREE;
				in.snap = s->id;
				in.node = 0;
				ino = fs_ino_tree(fs, s->id, 0);
				break;
			}
		}
	}
	pthread_rwlock_unlock(&fs->view_lock);
	/* Not cached: the name may appear with the next snapshot. */
	if (in.kind == FS_BAD || !ino) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	rc = top_stat(fs, cat, &in, ino, &st);
	if (rc)
		fuse_reply_err(req, rc);
	else
		reply_top_entry(req, ino, &st);
}

static void file_prime(struct fs *fs, fuse_ino_t ino, struct strata_entry_list *list);

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = fuse_req_userdata(req);
	struct strata_catalog *cat = NULL;
	struct strata_entry_list list = { 0 };
	struct fuse_entry_param e;
	struct strata_error err;
	struct fs_ino pin;
	struct fs_snap snap;
	size_t len = strlen(name);
	int rc;

	busy(fs);

	fs_ino_decode(fs, parent, &pin);
	if (pin.kind == FS_BAD || pin.kind == FS_LATEST || pin.kind == FS_FILE) {
		fuse_reply_err(req, pin.kind == FS_BAD ? ENOENT : ENOTDIR);
		return;
	}
	if (len > NAME_MAX) {
		fuse_reply_err(req, ENAMETOOLONG);
		return;
	}
	cat = fs_cat_get(fs);
	if (!cat) {
		fuse_reply_err(req, EIO);
		return;
	}
	if (pin.kind == FS_ROOT || pin.kind == FS_SET) {
		lookup_top(req, fs, cat, &pin, name);
		goto out;
	}
	if (!fs_snap_find(fs, pin.snap, &snap)) {
		fuse_reply_err(req, ENOENT);
		goto out;
	}
	strata_error_init(&err);
	memset(&e, 0, sizeof(e));
	e.attr_timeout = FS_TREE_TIMEOUT;
	e.entry_timeout = FS_TREE_TIMEOUT;
	rc = strata_catalog_lookup(cat, snap.set_id, pin.snap, pin.node, name, len, &list, &err);
	if (rc == -ENOENT || (rc == 0 && list.n == 0)) {
		fuse_reply_entry(req, &e);  /* ino 0: a cached negative entry */
		goto out;
	}
	if (rc < 0) {
		fs_log(fs, "catalog: %s", err.msg);
		fuse_reply_err(req, fs_errno(rc));
		goto out;
	}
	e.ino = fs_ino_entry(fs, pin.snap, &list.v[0]);
	if (!e.ino || entry_stat(fs, e.ino, &list.v[0], &e.attr) < 0) {
		fuse_reply_err(req, EIO);
		goto out;
	}
	fuse_reply_entry(req, &e);
	if (list.v[0].type == STRATA_T_REG) {
		/*
		 * A small file found by name (cat, cp, a script) is read next
		 * nearly always; listings (find, ls -l, rsync, cp -a) come by
		 * readdirplus and never get here.  Loading its frame now, while
		 * the kernel finishes the lookup and sends the read, overlaps
		 * the two: 1,000 random small files cold, 0.84-0.97 s against
		 * 0.93-1.09 s.  The read then finds the frame, or waits for
		 * this load instead of starting its own.
		 */
		if (list.v[0].size && list.v[0].size <= FS_LOOKUP_PREFETCH_MAX)
			strata_reader_prefetch(fs->reader, cat, &list.v[0], 0, list.v[0].size, true);
		file_prime(fs, e.ino, &list);  /* takes the list */
	}
out:
	strata_entry_list_release(&list);
	fs_cat_put(fs, cat);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	(void)ino;
	(void)nlookup;
	fuse_reply_none(req);  /* no per-inode state: see fs_inode.c */
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	(void)count;
	(void)forgets;
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fuse_req_userdata(req);
	struct strata_catalog *cat;
	struct strata_entry_list list = { 0 };
	struct fs_ino in;
	struct stat st;
	int rc;

	busy(fs);

	(void)fi;
	fs_ino_decode(fs, ino, &in);
	if (in.kind == FS_BAD) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	cat = fs_cat_get(fs);
	if (!cat) {
		fuse_reply_err(req, EIO);
		return;
	}
	if (is_top(&in)) {
		rc = top_stat(fs, cat, &in, ino, &st);
		if (rc)
			fuse_reply_err(req, rc);
		else
			fuse_reply_attr(req, &st, FS_TOP_TIMEOUT);
		goto out;
	}
	rc = ino_entry(fs, cat, &in, &list);
	if (rc) {
		fuse_reply_err(req, rc);
		goto out;
	}
	if (entry_stat(fs, ino, &list.v[0], &st) < 0)
		fuse_reply_err(req, EIO);
	else
		fuse_reply_attr(req, &st, FS_TREE_TIMEOUT);
out:
	strata_entry_list_release(&list);
	fs_cat_put(fs, cat);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct fs *fs = fuse_req_userdata(req);
	struct strata_catalog *cat;
	struct strata_entry_list list = { 0 };
	struct fs_ino in;
	struct fs_snap snap;
	char *target = NULL;
	int rc;

	busy(fs);

	fs_ino_decode(fs, ino, &in);
	if (in.kind != FS_LATEST && in.kind != FS_FILE) {
		fuse_reply_err(req, in.kind == FS_BAD ? ENOENT : EINVAL);
		return;
	}
	cat = fs_cat_get(fs);
	if (!cat) {
		fuse_reply_err(req, EIO);
		return;
	}
	if (in.kind == FS_LATEST) {
		fs_refresh(fs, cat);
		if (!latest_find(fs, &in, &snap))
			fuse_reply_err(req, ENOENT);
		else
			fuse_reply_readlink(req, snap.name);
		goto out;
	}
	rc = ino_entry(fs, cat, &in, &list);
	if (rc) {
		fuse_reply_err(req, rc);
		goto out;
	}
	if (list.v[0].type != STRATA_T_LNK) {
		fuse_reply_err(req, EINVAL);
		goto out;
	}
	if (!list.v[0].link || !list.v[0].link_len || list.v[0].link_len > PATH_MAX ||
	    memchr(list.v[0].link, 0, list.v[0].link_len) ||
	    !(target = strndup(list.v[0].link, list.v[0].link_len))) {
		fuse_reply_err(req, EIO);
		goto out;
	}
	fuse_reply_readlink(req, target);
out:
	free(target);
	strata_entry_list_release(&list);
	fs_cat_put(fs, cat);
}

/* ---- directories -------------------------------------------------------- */

struct fs_dent {
	const char *name;
	size_t len;
	fuse_ino_t ino;
	mode_t type;
	const struct strata_entry *e;   /* tree entries; NULL for top-level ones */
	struct fs_ino in;               /* top-level ones */
};

struct fs_dir {
	struct strata_entry_list list;
	struct fs_dent *v;
	size_t n;
	char *names;                    /* storage of top-level names */
	fuse_ino_t self, parent;
	struct fs_ino in;
	bool top;
	bool loaded;                    /* v holds the listing */
	unsigned refs;                  /* kept for handle-less readdir (fs->dir_lock) */
};

static void dir_free(struct fs_dir *d)
{
	if (!d)
		return;
	strata_entry_list_release(&d->list);
	free(d->v);
	free(d->names);
	free(d);
}

/* The listing of the root or of a set, from the current view. */
static int dir_load_top(struct fs *fs, const struct fs_ino *in, struct fs_dir *d)
{
	size_t cap, k = 0;
	int rc = 0;

	pthread_rwlock_rdlock(&fs->view_lock);
	cap = fs->view ? fs->view->nsnaps + fs->view->nsets + 1 : 1;
	d->v = calloc(cap, sizeof(*d->v));
	d->names = calloc(cap, STRATA_SNAP_NAME_MAX);
	if (!d->v || !d->names) {
		rc = ENOMEM;
		goto out;
	}
	for (size_t i = 0; fs->view && i < fs->view->nsets; i++) {
		const struct fs_set *s = &fs->view->sets[i];
		char *slot = d->names + k * STRATA_SNAP_NAME_MAX;
		struct fs_dent *de = &d->v[k];

		if (in->kind == FS_ROOT) {
			snprintf(slot, STRATA_SNAP_NAME_MAX, "%s", s->name);
			de->in.kind = FS_SET;
			de->ino = fs_ino_set(s->id);
			de->type = DIR_MODE;
		} else if (s->id == in->set_id) {
			snprintf(slot, STRATA_SNAP_NAME_MAX, "latest");
			de->in.kind = FS_LATEST;
			de->in.snap = s->latest;
			de->ino = fs_ino_latest(s->id, s->latest);
			de->type = LNK_MODE;
		} else {
			continue;
		}
		if (!de->ino) {  /* ids out of the encoding's range (fs_inode.c) */
			memset(de, 0, sizeof(*de));
			continue;
		}
		de->in.set_id = s->id;
		de->name = slot;
		de->len = strlen(slot);
		k++;
	}
	for (size_t i = 0; in->kind == FS_SET && fs->view && i < fs->view->nsnaps; i++) {
		const struct fs_snap *s = &fs->view->snaps[i];
		char *slot = d->names + k * STRATA_SNAP_NAME_MAX;
		struct fs_dent *de = &d->v[k];

		if (s->set_id != in->set_id || !(de->ino = fs_ino_tree(fs, s->id, 0)))
			continue;
		snprintf(slot, STRATA_SNAP_NAME_MAX, "%s", s->name);
		de->in.kind = FS_TREE;
		de->in.snap = s->id;
		de->type = DIR_MODE;
		de->name = slot;
		de->len = strlen(slot);
		k++;
	}
	d->n = k;
out:
	pthread_rwlock_unlock(&fs->view_lock);
	return rc;
}

static int dir_load_tree(struct fs *fs, struct strata_catalog *cat, const struct fs_ino *in,
			 const struct fs_snap *snap, struct fs_dir *d)
{
	struct strata_error err;
	int rc;

	strata_error_init(&err);
	rc = strata_catalog_children(cat, snap->set_id, in->snap, in->node, &d->list, &err);
	if (rc < 0) {
		if (rc != -ENOENT)
			fs_log(fs, "catalog: %s", err.msg);
		return fs_errno(rc);
	}
	d->v = calloc(d->list.n ? d->list.n : 1, sizeof(*d->v));
	if (!d->v)
		return ENOMEM;
	for (size_t i = 0; i < d->list.n; i++) {
		const struct strata_entry *e = &d->list.v[i];
		struct fs_dent *de = &d->v[d->n];

		if (!dirent_name_ok(e->name, e->name_len))
			continue;  /* cannot be named through the kernel */
		de->ino = fs_ino_entry(fs, in->snap, e);
		if (!de->ino)
			continue;
		de->name = e->name;
		de->len = e->name_len;
		de->type = type_bits(e->type);
		de->e = e;
		d->n++;
	}
	return 0;
}

/*
 * A directory of a snapshot is read from the catalog on the first readdir,
 * not in opendir: the kernel keeps the listing (cache_readdir, or always
 * without opendir) and answers later listings itself.
 */
static int dir_load(struct fs *fs, struct fs_dir *d)
{
	struct strata_catalog *cat;
	struct fs_snap snap;
	int rc = 0;

	if (d->loaded)
		return 0;
	if (!fs_snap_find(fs, d->in.snap, &snap))
		return ENOENT;
	cat = fs_cat_get(fs);
	if (!cat)
		return EIO;
	if (d->in.node == 0) {
		d->parent = fs->opts.snapshot > 0 ? FUSE_ROOT_ID : fs_ino_set(snap.set_id);
	} else {
		struct strata_entry_list self = { 0 };

		rc = ino_entry(fs, cat, &d->in, &self);
		if (rc == 0 && self.v[0].type != STRATA_T_DIR)
			rc = ENOTDIR;
		else if (rc == 0)
			d->parent = fs_ino_tree(fs, d->in.snap, self.v[0].parent_node);
		strata_entry_list_release(&self);
	}
	if (rc == 0)
		rc = dir_load_tree(fs, cat, &d->in, &snap, d);
	fs_cat_put(fs, cat);
	if (rc == 0)
		d->loaded = true;
	return rc;
}

/*
 * A new listing of directory 'ino': read now for the root and the sets
 * (from the snapshot list, refreshed first), on the first readdir for a
 * snapshot's directories.  *cacheable: its content never changes.  0 or a
 * positive errno.
 */
static int dir_new(struct fs *fs, fuse_ino_t ino, struct fs_dir **ret, bool *cacheable)
{
	struct fs_dir *d = NULL;
	struct fs_ino in;
	int rc = 0;

	*ret = NULL;
	*cacheable = false;
	fs_ino_decode(fs, ino, &in);
	if (in.kind == FS_BAD || in.kind == FS_LATEST || in.kind == FS_FILE)
		return in.kind == FS_BAD ? ENOENT : ENOTDIR;
	d = calloc(1, sizeof(*d));
	if (!d)
		return ENOMEM;
	d->self = ino;
	d->parent = FUSE_ROOT_ID;
	d->in = in;
	if (in.kind == FS_ROOT || in.kind == FS_SET || in.node == 0) {
		/* The top of the tree: the listing may have changed. */
		struct strata_catalog *cat = fs_cat_get(fs);

		if (!cat) {
			rc = EIO;
			goto out;
		}
		fs_refresh(fs, cat);
		fs_cat_put(fs, cat);
	}
	if (in.kind == FS_ROOT || in.kind == FS_SET) {
		if (in.kind == FS_SET) {
			struct fs_set set;

			if (!set_find(fs, in.set_id, &set)) {
				rc = ENOENT;
				goto out;
			}
		}
		d->top = true;
		d->loaded = true;
		rc = dir_load_top(fs, &in, d);
		goto out;
	}
	if (in.node == 0) {
		struct fs_snap snap;

		if (!fs_snap_find(fs, in.snap, &snap)) {
			rc = ENOENT;
			goto out;
		}
	}
	*cacheable = true;  /* snapshot contents never change */
out:
	if (rc)
		dir_free(d);
	else
		*ret = d;
	return rc;
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fuse_req_userdata(req);
	struct fs_dir *d;
	bool cacheable;
	int rc;

	if (fs->no_opendir) {
		/* The kernel stops sending opendir and releasedir (two round
		 * trips per directory a find walks) and keeps every listing. */
		fuse_reply_err(req, ENOSYS);
		return;
	}
	rc = dir_new(fs, ino, &d, &cacheable);
	if (rc) {
		fuse_reply_err(req, rc);
		return;
	}
	if (cacheable) {
		fi->cache_readdir = 1;
		fi->keep_cache = 1;
	}
	fi->fh = (uint64_t)(uintptr_t)d;
	if (fuse_reply_open(req, fi) == -ENOENT)
		dir_free(d);  /* the opener was interrupted: no releasedir will come */
}

/* ---- listings for readdir without opendir ------------------------------------ */

/*
 * The slot of 'ino' among n kept objects (*found), or else the slot to
 * fill: an empty one, or the least recently used.  Under the array's lock.
 */
static size_t kept_slot(const struct fs_kept *k, size_t n, fuse_ino_t ino, bool *found)
{
	size_t slot = 0;

	for (size_t i = 0; i < n; i++) {
		if (k[i].ino == ino) {
			*found = true;
			return i;
		}
		if (k[slot].ino && (!k[i].ino || k[i].used < k[slot].used))
			slot = i;
	}
	*found = false;
	return slot;
}

/* Drop one reference to a kept listing (the kept slot holds one). */
static void dir_put(struct fs *fs, struct fs_dir *d)
{
	bool last;

	pthread_mutex_lock(&fs->dir_lock);
	last = --d->refs == 0;
	pthread_mutex_unlock(&fs->dir_lock);
	if (last)
		dir_free(d);
}

/*
 * The listing of 'ino' for a readdir at 'off' that came without a handle.
 * A listing is read in several calls, each with the offset the last one
 * ended at: the calls after the first (off > 0) go on in the kept listing,
 * so offsets stay consistent even if a set's snapshots change meanwhile.
 * Referenced; dir_put when done.  0 or a positive errno.
 */
static int dir_get(struct fs *fs, fuse_ino_t ino, off_t off, struct fs_dir **ret)
{
	struct fs_dir *d = NULL, *old = NULL;
	size_t slot;
	bool cacheable, found;
	int rc;

	pthread_mutex_lock(&fs->dir_lock);
	slot = kept_slot(fs->dir_keys, FS_DIR_CACHE, ino, &found);
	if (off > 0 && found) {
		d = fs->dirs[slot];
		d->refs++;
		fs->dir_keys[slot].used = ++fs->dir_tick;
	}
	pthread_mutex_unlock(&fs->dir_lock);
	if (d) {
		*ret = d;
		return 0;
	}
	rc = dir_new(fs, ino, &d, &cacheable);
	if (rc == 0 && !d->loaded)
		rc = dir_load(fs, d);  /* whole, before another thread can see it */
	if (rc) {
		dir_free(d);
		return rc;
	}
	/* Keep it in the slot of the same directory, or else the oldest. */
	pthread_mutex_lock(&fs->dir_lock);
	slot = kept_slot(fs->dir_keys, FS_DIR_CACHE, ino, &found);
	old = fs->dirs[slot];
	if (old && --old->refs > 0)
		old = NULL;  /* still being read: its reader frees it */
	fs->dirs[slot] = d;
	fs->dir_keys[slot] = (struct fs_kept){ ino, ++fs->dir_tick };
	d->refs = 2;     /* the slot and the caller */
	pthread_mutex_unlock(&fs->dir_lock);
	dir_free(old);
	*ret = d;
	return 0;
}

/*
 * The kernel asked past the end of a kept listing: it has the whole of it
 * now (and keeps it), so drop ours; a big directory's listing would
 * otherwise stay in memory until eight others pushed it out.
 */
static void dir_forget(struct fs *fs, struct fs_dir *d)
{
	pthread_mutex_lock(&fs->dir_lock);
	for (size_t i = 0; i < FS_DIR_CACHE; i++) {
		if (fs->dirs[i] == d) {
			fs->dirs[i] = NULL;
			fs->dir_keys[i].ino = 0;
			d->refs--;  /* the slot's; the caller still holds one */
			break;
		}
	}
	pthread_mutex_unlock(&fs->dir_lock);
}

void fs_dirs_release(struct fs *fs)
{
	for (size_t i = 0; i < FS_DIR_CACHE; i++) {
		dir_free(fs->dirs[i]);
		fs->dirs[i] = NULL;
	}
}

/* Attributes of one listed entry, for readdirplus; false when it has none. */
static bool dent_stat(struct fs *fs, const struct fs_dir *d, const struct fs_dent *de,
		      struct fuse_entry_param *e)
{
	struct fs_set set;
	struct fs_snap snap;

	memset(e, 0, sizeof(*e));
	if (de->e) {
		if (entry_stat(fs, de->ino, de->e, &e->attr) < 0)
			return false;
		e->attr_timeout = FS_TREE_TIMEOUT;
		e->entry_timeout = FS_TREE_TIMEOUT;
		e->ino = de->ino;
		return true;
	}
	(void)d;
	switch (de->in.kind) {
	case FS_SET:
		if (!set_find(fs, de->in.set_id, &set))
			return false;
		synth_stat(fs, de->ino, DIR_MODE, set.listed_ns, 0, &e->attr);
		break;
	case FS_LATEST:
		if (!latest_find(fs, &de->in, &snap))
			return false;
		synth_stat(fs, de->ino, LNK_MODE, snap.finished_ns, (off_t)strlen(snap.name),
			   &e->attr);
		break;
	case FS_TREE:
		if (!fs_snap_find(fs, de->in.snap, &snap))
			return false;
		synth_stat(fs, de->ino, DIR_MODE, snap.finished_ns, 0, &e->attr);
		break;
	default:
		return false;
	}
	e->attr_timeout = FS_TOP_TIMEOUT;
	e->entry_timeout = FS_TOP_TIMEOUT;
	e->ino = de->ino;
	return true;
}

/*
 * Offsets: 0 is ".", 1 is "..", 2 + i is d->v[i]; each entry carries the
 * offset of the next.  In readdirplus "." and ".." carry no attributes
 * (ino 0), as in passthrough_ll.c, so the kernel takes no reference.
 */
static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi, bool plus)
{
	struct fs *fs = fuse_req_userdata(req);
	struct fs_dir *d = (struct fs_dir *)(uintptr_t)fi->fh;
	char *buf, namebuf[NAME_MAX + 1];
	size_t used = 0;
	int rc = 0;

	busy(fs);

	if (off < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (size > MAX_IO)
		size = MAX_IO;
	if (!d)
		rc = dir_get(fs, ino, off, &d);  /* no opendir: a kept listing */
	else if (!d->loaded)
		rc = dir_load(fs, d);
	if (rc) {
		fuse_reply_err(req, rc);
		return;
	}
	buf = malloc(size ? size : 1);
	if (!buf) {
		if (!fi->fh)
			dir_put(fs, d);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	for (size_t pos = (size_t)off; pos < d->n + 2; pos++) {
		struct fuse_entry_param e;
		const char *name;
		size_t n;

		memset(&e, 0, sizeof(e));
		if (pos < 2) {
			name = pos ? ".." : ".";
			e.attr.st_ino = pos ? d->parent : d->self;
			e.attr.st_mode = S_IFDIR;
		} else {
			const struct fs_dent *de = &d->v[pos - 2];

			memcpy(namebuf, de->name, de->len);
			namebuf[de->len] = 0;
			name = namebuf;
			if (!plus || !dent_stat(fs, d, de, &e)) {
				memset(&e, 0, sizeof(e));
				e.attr.st_ino = de->ino;
				e.attr.st_mode = de->type;
			}
		}
		if (plus)
			n = fuse_add_direntry_plus(req, buf + used, size - used, name, &e,
						   (off_t)pos + 1);
		else
			n = fuse_add_direntry(req, buf + used, size - used, name, &e.attr,
					      (off_t)pos + 1);
		if (n > size - used)
			break;  /* did not fit; nothing to undo (no lookup counts) */
		used += n;
	}
	fuse_reply_buf(req, buf, used);
	free(buf);
	if (!fi->fh) {
		if ((size_t)off >= d->n + 2)
			dir_forget(fs, d);
		dir_put(fs, d);
	}
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, false);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, true);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	dir_free((struct fs_dir *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

/* ---- files ------------------------------------------------------------------ */

/*
 * The state of a regular file being read (its entry and read-ahead), made
 * from the one version in 'list', which it takes over (list is left
 * empty).  0 or a positive errno.
 */
static int file_of(struct strata_entry_list *list, struct fs_file **ret)
{
	const struct strata_entry *e = list->n == 1 ? &list->v[0] : NULL;
	struct fs_file *f;

	*ret = NULL;
	if (e && e->type == STRATA_T_DIR)
		return EISDIR;
	if (!e || e->type != STRATA_T_REG || e->size > (uint64_t)INT64_MAX)
		return EIO;
	f = calloc(1, sizeof(*f));
	if (!f)
		return ENOMEM;
	pthread_mutex_init(&f->lock, NULL);
	atomic_init(&f->refs, 1);
	atomic_init(&f->logged, false);
	f->list = *list;
	*list = (struct strata_entry_list){ 0 };
	f->e = &f->list.v[0];
	f->snap = f->e->first_snapshot;  /* files are named by their version */
	*ret = f;
	return 0;
}

/* The state of file 'ino', from the catalog.  0 or a positive errno. */
static int file_new(struct fs *fs, fuse_ino_t ino, struct fs_file **ret)
{
	struct strata_entry_list list = { 0 };
	struct strata_catalog *cat;
	struct fs_ino in;
	int rc;

	*ret = NULL;
	fs_ino_decode(fs, ino, &in);
	if (in.kind == FS_BAD)
		return ENOENT;
	if (is_top(&in))
		return in.kind == FS_LATEST ? ELOOP : EISDIR;
	if (in.kind != FS_FILE)
		return EISDIR;  /* a snapshot's directory */
	cat = fs_cat_get(fs);
	if (!cat)
		return EIO;
	rc = ino_entry(fs, cat, &in, &list);
	fs_cat_put(fs, cat);
	if (rc == 0)
		rc = file_of(&list, ret);
	strata_entry_list_release(&list);
	return rc;
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fuse_req_userdata(req);
	struct fs_file *f;
	int rc;

	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) {
		fuse_reply_err(req, EROFS);
		return;
	}
	if (fs->no_open) {
		/* The kernel stops sending open and release (the mount is
		 * read-only, so it refuses writing opens itself); reads come
		 * without a handle (file_get). */
		fuse_reply_err(req, ENOSYS);
		return;
	}
	rc = file_new(fs, ino, &f);
	if (rc) {
		fuse_reply_err(req, rc);
		return;
	}
	fi->fh = (uint64_t)(uintptr_t)f;
	fi->keep_cache = 1;   /* a snapshot's file never changes */
	fi->noflush = 1;
	if (fuse_reply_open(req, fi) == -ENOENT)
		fs_file_unref(f);
}

/* Keep f (it gains the slot's reference) in the slot of the same file (a
 * read or lookup made it meanwhile), or the oldest. */
static void file_keep(struct fs *fs, fuse_ino_t ino, struct fs_file *f)
{
	struct fs_file *old;
	size_t slot;
	bool found;

	pthread_mutex_lock(&fs->file_lock);
	slot = kept_slot(fs->file_keys, FS_FILE_CACHE, ino, &found);
	old = fs->files[slot];
	fs->files[slot] = f;
	fs->file_keys[slot] = (struct fs_kept){ ino, ++fs->file_tick };
	atomic_fetch_add(&f->refs, 1);
	pthread_mutex_unlock(&fs->file_lock);
	fs_file_unref(old);
}

/*
 * The file state for a read or lseek: the open file's, or without open
 * (fs->no_open) the one kept for the inode, made on its first read.
 * Referenced; file_put when done.  0 or a positive errno.
 */
static int file_get(struct fs *fs, fuse_ino_t ino, struct fuse_file_info *fi,
		    struct fs_file **ret)
{
	struct fs_file *f = (struct fs_file *)(uintptr_t)fi->fh;
	size_t slot;
	bool found;
	int rc;

	if (f) {
		*ret = f;
		return 0;
	}
	pthread_mutex_lock(&fs->file_lock);
	slot = kept_slot(fs->file_keys, FS_FILE_CACHE, ino, &found);
	if (found) {
		f = fs->files[slot];
		atomic_fetch_add(&f->refs, 1);
		fs->file_keys[slot].used = ++fs->file_tick;
	}
	pthread_mutex_unlock(&fs->file_lock);
	if (f) {
		*ret = f;
		return 0;
	}
	rc = file_new(fs, ino, &f);
	if (rc)
		return rc;
	file_keep(fs, ino, f);
	*ret = f;
	return 0;
}

/* A file looked up is about to be read: keep its state now, from the
 * lookup's entry, so its first read queries the catalog no second time. */
static void file_prime(struct fs *fs, fuse_ino_t ino, struct strata_entry_list *list)
{
	struct fs_file *f;

	if (!fs->no_open || file_of(list, &f) != 0)
		return;
	file_keep(fs, ino, f);
	fs_file_unref(f);
}

static void file_put(struct fs_file *f, struct fuse_file_info *fi)
{
	if (!fi->fh)
		fs_file_unref(f);
}

void fs_files_release(struct fs *fs)
{
	for (size_t i = 0; i < FS_FILE_CACHE; i++) {
		fs_file_unref(fs->files[i]);
		fs->files[i] = NULL;
	}
}

/*
 * Each worker thread keeps one MAX_IO buffer for reads: a fresh malloc of
 * that size is an mmap, and faulting its pages in on every request cost
 * more than the copy itself.  Freed when libfuse ends the thread.
 */
static pthread_key_t read_buf_key;
static pthread_once_t read_buf_once = PTHREAD_ONCE_INIT;

static void read_buf_key_init(void)
{
	(void)pthread_key_create(&read_buf_key, free);
}

static uint8_t *read_buffer(void)
{
	uint8_t *b;

	(void)pthread_once(&read_buf_once, read_buf_key_init);
	b = pthread_getspecific(read_buf_key);
	if (!b) {
		b = malloc(MAX_IO);
		if (b && pthread_setspecific(read_buf_key, b) != 0) {
			free(b);
			b = NULL;
		}
	}
	return b;
}

/* "set/snapshot/path/of/file" for a log line. */
static void file_path(struct fs *fs, struct strata_catalog *cat, const struct fs_file *f,
		      char *out, size_t size)
{
	struct strata_buf b = STRATA_BUF_INIT(1u << 20);
	struct strata_error err;
	struct fs_snap snap;
	char q[1024];

	strata_error_init(&err);
	if (!fs_snap_find(fs, f->snap, &snap)) {
		snprintf(snap.name, sizeof(snap.name), "snapshot %lld", (long long)f->snap);
		snprintf(snap.set, sizeof(snap.set), "?");
	}
	if (strata_catalog_node_path(cat, f->e->node_id, &b, &err) == 0)
		strata_quote(q, sizeof(q), (const char *)b.data, b.len);
	else
		snprintf(q, sizeof(q), "node %lld", (long long)f->e->node_id);
	snprintf(out, size, "%s/%s/%s", snap.set, snap.name, q);
	strata_buf_release(&b);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct fs *fs = fuse_req_userdata(req);
	struct fs_file *f = NULL;
	struct strata_catalog *cat = NULL;
	struct strata_error err;
	/* Frames the reply is sent from, in place (a non-sparse file). */
	struct strata_frame_view v[32];
	struct iovec iov[32];
	unsigned nv = 0;
	uint8_t *buf = NULL;
	size_t got = 0, n;
	uint64_t drop_from, drop_to;
	int64_t r = 0;
	int rc;

	busy(fs);

	if (off < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	rc = file_get(fs, ino, fi, &f);
	if (rc) {
		fuse_reply_err(req, rc);
		return;
	}
	if ((uint64_t)off >= f->e->size || size == 0) {
		fuse_reply_buf(req, NULL, 0);
		goto out;
	}
	n = size > MAX_IO ? MAX_IO : size;
	if (n > f->e->size - (uint64_t)off)
		n = (size_t)(f->e->size - (uint64_t)off);
	cat = fs_cat_get(fs);
	if (!cat) {
		fuse_reply_err(req, EIO);
		goto out;
	}
	strata_error_init(&err);
	/* Hint first: the worker starts on the next frames while this read
	 * decompresses its own. */
	pthread_mutex_lock(&f->lock);
	fs_prefetch_hint(fs, f, (uint64_t)off, n, &drop_from, &drop_to);
	pthread_mutex_unlock(&f->lock);
	/*
	 * Reply from the cached frames themselves (no copy into a buffer);
	 * a sparse file, or a range over more frames than v holds, is copied
	 * into this thread's buffer instead.
	 */
	while (!f->e->sparse_len && got < n && nv < sizeof(v) / sizeof(v[0])) {
		r = strata_reader_view(fs->reader, cat, f->e, (uint64_t)off + got, n - got, &v[nv],
				       &err);
		if (r <= 0)
			break;
		iov[nv].iov_base = (void *)v[nv].data;
		iov[nv].iov_len = v[nv].len;
		nv++;
		got += (size_t)r;
	}
	if (r >= 0 && got < n) {
		while (nv)
			strata_frame_view_release(&v[--nv]);
		got = 0;
		buf = read_buffer();
		if (!buf) {
			fuse_reply_err(req, ENOMEM);
			goto out;
		}
	}
	while (buf && got < n) {
		r = strata_reader_pread(fs->reader, cat, f->e, buf + got, n - got,
					(uint64_t)off + got, &err);
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	if (drop_from < drop_to)
		strata_reader_drop(fs->reader, cat, f->e, drop_from, drop_to - drop_from);
	if (r < 0) {
		bool was = false;

		if (atomic_compare_exchange_strong(&f->logged, &was, true)) {
			char path[2048];

			file_path(fs, cat, f, path, sizeof(path));
			fs_log(fs, "cannot read '%s': %s", path, err.msg);
		}
		fuse_reply_err(req, fs_errno((int)r) == ENOMEM ? ENOMEM : EIO);
		goto out;
	}
	if (buf)
		fuse_reply_buf(req, (const char *)buf, got);
	else
		fuse_reply_iov(req, iov, (int)nv);
out:
	while (nv)
		strata_frame_view_release(&v[--nv]);
	fs_cat_put(fs, cat);
	file_put(f, fi);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_file *f = (struct fs_file *)(uintptr_t)fi->fh;

	(void)ino;
	fs_file_unref(f);
	fuse_reply_err(req, 0);
}

/* SEEK_DATA and SEEK_HOLE from the sparse map, so cp and treestate see holes. */
static void lseek_reply(fuse_req_t req, const struct strata_entry *e, off_t off, int whence)
{
	uint64_t o = (uint64_t)off, pos, data;

	if (whence != SEEK_DATA && whence != SEEK_HOLE) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (off < 0 || o >= e->size) {
		fuse_reply_err(req, ENXIO);
		return;
	}
	if (!e->sparse) {
		fuse_reply_lseek(req, whence == SEEK_DATA ? off : (off_t)e->size);
		return;
	}
	if (!sparse_bytes(e, &data)) {
		fuse_reply_err(req, EIO);
		return;
	}
	pos = o;
	for (size_t i = 0; i < e->sparse_len; i += 16) {
		uint64_t so = strata_get_le64(e->sparse + i), sl = strata_get_le64(e->sparse + i + 8);

		if (sl == 0 || so + sl <= pos)
			continue;
		if (whence == SEEK_DATA) {
			fuse_reply_lseek(req, (off_t)(so > pos ? so : pos));
			return;
		}
		if (so > pos)
			break;       /* pos is in a hole */
		pos = so + sl;   /* skip this segment; the next may be adjacent */
	}
	if (whence == SEEK_DATA)
		fuse_reply_err(req, ENXIO);
	else
		fuse_reply_lseek(req, (off_t)(pos < e->size ? pos : e->size));
}

static void op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
		     struct fuse_file_info *fi)
{
	struct fs *fs = fuse_req_userdata(req);
	struct fs_file *f;
	int rc = file_get(fs, ino, fi, &f);

	if (rc) {
		fuse_reply_err(req, rc);
		return;
	}
	lseek_reply(req, f->e, off, whence);
	file_put(f, fi);
}

/* ---- extended attributes ---------------------------------------------------- */

/*
 * Walk the entry's xattr blob: calls cb for each (name, value); a
 * malformed blob is -EIO.  A non-zero cb return stops the walk.
 */
static int xattr_walk(const struct strata_entry *e,
		      int (*cb)(void *ctx, const char *name, uint32_t nl, const uint8_t *v,
				uint32_t vl),
		      void *ctx)
{
	size_t off = 0, len = e->xattrs ? e->xattrs_len : 0;
	const char *n;
	const uint8_t *v;
	uint32_t nl, vl;
	int r;

	while ((r = strata_xattrs_next(e->xattrs, len, &off, &n, &nl, &v, &vl)) > 0) {
		int rc = cb(ctx, n, nl, v, vl);

		if (rc)
			return rc;
	}
	return r < 0 ? -EIO : 0;
}

struct xattr_find {
	const char *name;
	size_t len;
	const uint8_t *v;
	uint32_t vl;
};

static int xattr_find_cb(void *ctx, const char *name, uint32_t nl, const uint8_t *v, uint32_t vl)
{
	struct xattr_find *x = ctx;

	if (nl != x->len || memcmp(name, x->name, nl))
		return 0;
	x->v = v;
	x->vl = vl;
	return 1;
}

struct xattr_list {
	char *buf;     /* NULL: only count */
	size_t len;
};

static int xattr_list_cb(void *ctx, const char *name, uint32_t nl, const uint8_t *v, uint32_t vl)
{
	struct xattr_list *x = ctx;

	(void)v;
	(void)vl;
	if (memchr(name, 0, nl))
		return 0;
	if (x->buf) {
		memcpy(x->buf + x->len, name, nl);
		x->buf[x->len + nl] = 0;
	}
	x->len += (size_t)nl + 1;
	return 0;
}

/* The entry behind a tree id for the xattr calls; top-level nodes have none. */
static int xattr_entry(fuse_req_t req, fuse_ino_t ino, struct strata_entry_list *list)
{
	struct fs *fs = fuse_req_userdata(req);
	struct strata_catalog *cat;
	struct fs_ino in;
	int rc;

	fs_ino_decode(fs, ino, &in);
	if (in.kind == FS_BAD)
		return ENOENT;
	if (is_top(&in))
		return -1;
	cat = fs_cat_get(fs);
	if (!cat)
		return EIO;
	rc = ino_entry(fs, cat, &in, list);
	fs_cat_put(fs, cat);
	return rc;
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct strata_entry_list list = { 0 };
	struct xattr_find x = { .name = name, .len = strlen(name) };
	int rc;

	rc = xattr_entry(req, ino, &list);
	if (rc) {
		fuse_reply_err(req, rc < 0 ? ENODATA : rc);
		goto out;
	}
	rc = xattr_walk(&list.v[0], xattr_find_cb, &x);
	if (rc < 0)
		fuse_reply_err(req, EIO);
	else if (!x.v)
		fuse_reply_err(req, ENODATA);
	else if (size == 0)
		fuse_reply_xattr(req, x.vl);
	else if (x.vl > size)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, (const char *)x.v, x.vl);
out:
	strata_entry_list_release(&list);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct strata_entry_list list = { 0 };
	struct xattr_list x = { 0 };
	int rc;

	rc = xattr_entry(req, ino, &list);
	if (rc) {
		if (rc < 0 && size == 0)
			fuse_reply_xattr(req, 0);
		else if (rc < 0)
			fuse_reply_buf(req, NULL, 0);
		else
			fuse_reply_err(req, rc);
		goto out;
	}
	if (xattr_walk(&list.v[0], xattr_list_cb, &x) < 0) {
		fuse_reply_err(req, EIO);
		goto out;
	}
	if (size == 0) {
		fuse_reply_xattr(req, x.len);
		goto out;
	}
	if (x.len > size) {
		fuse_reply_err(req, ERANGE);
		goto out;
	}
	x.buf = malloc(x.len ? x.len : 1);
	if (!x.buf) {
		fuse_reply_err(req, ENOMEM);
		goto out;
	}
	x.len = 0;
	xattr_walk(&list.v[0], xattr_list_cb, &x);
	fuse_reply_buf(req, x.buf, x.len);
	free(x.buf);
out:
	strata_entry_list_release(&list);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs sv;

	(void)ino;
	memset(&sv, 0, sizeof(sv));
	sv.f_bsize = 4096;
	sv.f_frsize = 4096;
	sv.f_namemax = NAME_MAX;
	sv.f_flag = ST_RDONLY;
	fuse_reply_statfs(req, &sv);
}

/* ---- every modifying call: EROFS ------------------------------------------ */

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	(void)ino; (void)attr; (void)to_set; (void)fi;
	fuse_reply_err(req, EROFS);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	(void)parent; (void)name; (void)mode; (void)rdev;
	fuse_reply_err(req, EROFS);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	(void)parent; (void)name; (void)mode;
	fuse_reply_err(req, EROFS);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	(void)parent; (void)name;
	fuse_reply_err(req, EROFS);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	(void)link; (void)parent; (void)name;
	fuse_reply_err(req, EROFS);
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		      const char *newname, unsigned int flags)
{
	(void)parent; (void)name; (void)newparent; (void)newname; (void)flags;
	fuse_reply_err(req, EROFS);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	(void)ino; (void)newparent; (void)newname;
	fuse_reply_err(req, EROFS);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	(void)ino; (void)buf; (void)size; (void)off; (void)fi;
	fuse_reply_err(req, EROFS);
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	(void)parent; (void)name; (void)mode; (void)fi;
	fuse_reply_err(req, EROFS);
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			size_t size, int flags)
{
	(void)ino; (void)name; (void)value; (void)size; (void)flags;
	fuse_reply_err(req, EROFS);
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	(void)ino; (void)name;
	fuse_reply_err(req, EROFS);
}

static void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
			 struct fuse_file_info *fi)
{
	(void)ino; (void)mode; (void)offset; (void)length; (void)fi;
	fuse_reply_err(req, EROFS);
}

static void op_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
			       struct fuse_file_info *fi_in, fuse_ino_t ino_out, off_t off_out,
			       struct fuse_file_info *fi_out, size_t len, int flags)
{
	(void)ino_in; (void)off_in; (void)fi_in; (void)ino_out; (void)off_out; (void)fi_out;
	(void)len; (void)flags;
	fuse_reply_err(req, EROFS);
}

const struct fuse_lowlevel_ops fs_ops = {
	.init = op_init,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.readlink = op_readlink,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.readdirplus = op_readdirplus,
	.releasedir = op_releasedir,
	.open = op_open,
	.read = op_read,
	.release = op_release,
	.lseek = op_lseek,
	.getxattr = op_getxattr,
	.listxattr = op_listxattr,
	.statfs = op_statfs,
	.setattr = op_setattr,
	.mknod = op_mknod,
	.mkdir = op_mkdir,
	.unlink = op_unlink,
	.rmdir = op_unlink,
	.symlink = op_symlink,
	.rename = op_rename,
	.link = op_link,
	.write = op_write,
	.create = op_create,
	.setxattr = op_setxattr,
	.removexattr = op_removexattr,
	.fallocate = op_fallocate,
	.copy_file_range = op_copy_file_range,
};
