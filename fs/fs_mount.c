/*
 * fs_mount.c - strata_fs_mount: the FUSE session (mount options, the
 * request loop of fs_loop.c, signals, detaching), the pool of read-only catalog
 * handles the worker threads share, and the snapshot list behind the top
 * two levels of the tree, reloaded from the catalog while mounted.
 *
 * Locking: pool_lock guards the handle pool (a handle is used by one
 * request at a time); view_lock guards the view pointer (handlers copy
 * what they need under the read lock, a reload swaps the pointer under the
 * write lock); the hardlink map has its own mutex (fs_inode.c).  The frame
 * cache and the content reader lock themselves.
 */
#include "fs_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <syslog.h>
#include <unistd.h>

#define MAX_IO (1u << 20)

int fs_errno(int rc)
{
	switch (rc) {
	case -ENOENT:
	case -ENOMEM:
	case -EACCES:
	case -ENAMETOOLONG:
	case -ENODATA:
	case -ERANGE:
		return -rc;
	default:
		return EIO;
	}
}

void fs_log(struct fs *fs, const char *fmt, ...)
{
	char msg[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (fs->opts.log)
		fs->opts.log(fs->opts.log_ctx, msg);
	else if (atomic_load(&fs->detached))
		syslog(LOG_ERR, "%s", msg);
	else
		fprintf(stderr, "strata: %s\n", msg);
}

/* ---- catalog handle pool ------------------------------------------------ */

/*
 * Requests on a handle share one read transaction for up to FS_HOLD_NS
 * (strata_catalog_hold): beginning one per query was 40% of a lookup's
 * time in the catalog.  A new snapshot list (fs_refresh) makes every
 * handle begin a fresh one, so lookups see what the listing shows.
 */
static void cat_hold(struct fs *fs, struct strata_catalog *cat)
{
	int64_t floor = strata_now_ns() - FS_HOLD_NS, changed = atomic_load(&fs->hold_floor_ns);
	struct strata_error err;

	strata_error_init(&err);
	if (strata_catalog_hold(cat, changed > floor ? changed : floor, &err) < 0)
		fs_log(fs, "%s", err.msg);
}

/* Once a second: idle handles end their read transactions (checkpoints). */
static void pool_tick(void *arg)
{
	struct fs *fs = arg;
	int64_t floor = strata_now_ns() - FS_HOLD_NS;

	pthread_mutex_lock(&fs->pool_lock);
	for (size_t i = 0; i < fs->pool_free; i++)
		strata_catalog_release(fs->pool[i], floor);
	pthread_mutex_unlock(&fs->pool_lock);
}

struct strata_catalog *fs_cat_get(struct fs *fs)
{
	struct strata_catalog_options copts = { .readonly = true };
	struct strata_catalog *cat = NULL;
	struct strata_error err;

	pthread_mutex_lock(&fs->pool_lock);
	if (!fs->pool_free && fs->pool_open >= fs->pool_max) {
		pthread_mutex_unlock(&fs->pool_lock);
		strata_will_block();
		pthread_mutex_lock(&fs->pool_lock);
	}
	while (!fs->pool_free && fs->pool_open >= fs->pool_max)
		pthread_cond_wait(&fs->pool_cond, &fs->pool_lock);
	if (fs->pool_free) {
		cat = fs->pool[--fs->pool_free];
		pthread_mutex_unlock(&fs->pool_lock);
		cat_hold(fs, cat);
		return cat;
	}
	fs->pool_open++;
	pthread_mutex_unlock(&fs->pool_lock);

	strata_error_init(&err);
	if (strata_catalog_open(fs->catalog_path, &copts, &cat, &err) < 0) {
		fs_log(fs, "%s", err.msg);
		pthread_mutex_lock(&fs->pool_lock);
		fs->pool_open--;
		pthread_cond_signal(&fs->pool_cond);
		pthread_mutex_unlock(&fs->pool_lock);
		return NULL;
	}
	cat_hold(fs, cat);
	return cat;
}

void fs_cat_put(struct fs *fs, struct strata_catalog *cat)
{
	if (!cat)
		return;
	pthread_mutex_lock(&fs->pool_lock);
	fs->pool[fs->pool_free++] = cat;
	pthread_cond_signal(&fs->pool_cond);
	pthread_mutex_unlock(&fs->pool_lock);
}

/* ---- the snapshot list -------------------------------------------------- */

static void view_free(struct fs_view *v)
{
	if (!v)
		return;
	free(v->snaps);
	free(v->sets);
	free(v);
}

static int cmp_snap_id(const void *a, const void *b)
{
	const struct fs_snap *x = a, *y = b;

	return x->id < y->id ? -1 : x->id > y->id;
}

static int cmp_set_name(const void *a, const void *b)
{
	const struct fs_set *x = a, *y = b;

	return strcmp(x->name, y->name);
}

/* A set or snapshot name that can be a directory entry. */
static bool name_ok(const char *s)
{
	size_t n = strnlen(s, NAME_MAX + 1);

	return n > 0 && n <= NAME_MAX && strcmp(s, ".") && strcmp(s, "..") && !strchr(s, '/');
}

static int view_load(struct fs *fs, struct strata_catalog *cat, int64_t generation,
		     struct fs_view **ret, struct strata_error *err)
{
	struct strata_snapshot *list = NULL;
	size_t n = 0;
	struct fs_view *v = NULL;
	int rc;

	rc = strata_catalog_snapshot_list(cat, fs->opts.set, &list, &n, err);
	if (rc < 0)
		goto out;
	rc = -ENOMEM;
	v = calloc(1, sizeof(*v));
	if (!v || (n && (!(v->snaps = calloc(n, sizeof(*v->snaps))) ||
			 !(v->sets = calloc(n, sizeof(*v->sets))))))
		goto out;
	v->generation = generation;
	for (size_t i = 0; i < n; i++) {
		struct fs_snap *s;
		struct fs_set *set = NULL;

		if (list[i].state == STRATA_SNAP_RUNNING || !name_ok(list[i].name) ||
		    !name_ok(list[i].set) || list[i].id <= 0 ||
		    (uint64_t)list[i].id >> FS_SNAP_BITS || list[i].set_id <= 0 ||
		    (uint64_t)list[i].set_id >> (FS_NODE_BITS - 2))
			continue;
		s = &v->snaps[v->nsnaps++];
		s->id = list[i].id;
		s->set_id = list[i].set_id;
		s->finished_ns = list[i].finished_ns;
		snprintf(s->name, sizeof(s->name), "%s", list[i].name);
		snprintf(s->set, sizeof(s->set), "%s", list[i].set);
		for (size_t j = 0; j < v->nsets; j++)
			if (v->sets[j].id == s->set_id)
				set = &v->sets[j];
		if (!set) {
			set = &v->sets[v->nsets++];
			set->id = s->set_id;
			snprintf(set->name, sizeof(set->name), "%s", s->set);
		}
		if (s->id > set->latest) {
			set->latest = s->id;
			set->newest_ns = s->finished_ns;
			snprintf(set->latest_name, sizeof(set->latest_name), "%s", s->name);
		}
		if (s->finished_ns > v->newest_ns)
			v->newest_ns = s->finished_ns;
	}
	qsort(v->snaps, v->nsnaps, sizeof(*v->snaps), cmp_snap_id);
	qsort(v->sets, v->nsets, sizeof(*v->sets), cmp_set_name);
	*ret = v;
	v = NULL;
	rc = 0;
out:
	if (rc == -ENOMEM)
		strata_error_set(err, rc, STRATA_ERR_INTERNAL, "out of memory");
	view_free(v);
	free(list);
	return rc;
}

static const struct fs_set *view_set(const struct fs_view *v, int64_t id)
{
	for (size_t i = 0; v && i < v->nsets; i++)
		if (v->sets[i].id == id)
			return &v->sets[i];
	return NULL;
}

static bool view_has_snap(const struct fs_view *v, int64_t id)
{
	struct fs_snap key = { .id = id };

	return bsearch(&key, v->snaps, v->nsnaps, sizeof(key), cmp_snap_id) != NULL;
}

/*
 * The mtime of the root and of each set directory: when its listing last
 * changed.  A new snapshot brings its own (later) finish time; a snapshot
 * or set that went away (prune) is dated when this mount saw it go.  The
 * kernel keeps every listing (no-opendir) and drops it when this mtime
 * moves, so it must move on every change.
 */
static void view_date(struct fs_view *v, const struct fs_view *old, int64_t now)
{
	v->listed_ns = v->newest_ns;
	for (size_t i = 0; i < v->nsets; i++) {
		const struct fs_set *o = view_set(old, v->sets[i].id);

		v->sets[i].listed_ns = v->sets[i].newest_ns;
		if (o && o->listed_ns > v->sets[i].listed_ns)
			v->sets[i].listed_ns = o->listed_ns;
	}
	if (old && old->listed_ns > v->listed_ns)
		v->listed_ns = old->listed_ns;
	for (size_t i = 0; old && i < old->nsnaps; i++) {
		const struct fs_snap *s = &old->snaps[i];
		struct fs_set *set = (struct fs_set *)view_set(v, s->set_id);

		if (view_has_snap(v, s->id))
			continue;
		if (set)
			set->listed_ns = now;
		else
			v->listed_ns = now;  /* the whole set went */
	}
}

void fs_refresh(struct fs *fs, struct strata_catalog *cat)
{
	int64_t now = strata_now_ns(), last = atomic_load(&fs->last_poll_ns), gen = 0, cur;
	struct fs_view *v = NULL, *old;
	struct strata_error err;

	if (fs->opts.snapshot > 0 || now - last < FS_POLL_NS)
		return;
	/* One thread polls; the others go on with the current list. */
	if (!atomic_compare_exchange_strong(&fs->last_poll_ns, &last, now))
		return;
	strata_error_init(&err);
	/* the poll itself must see the newest commit */
	if (strata_catalog_hold(cat, now, &err) < 0) {
		fs_log(fs, "cannot poll the catalog: %s", err.msg);
		return;
	}
	if (strata_catalog_generation(cat, &gen, &err) < 0) {
		fs_log(fs, "cannot poll the catalog: %s", err.msg);
		return;
	}
	pthread_rwlock_rdlock(&fs->view_lock);
	cur = fs->view ? fs->view->generation : -1;
	pthread_rwlock_unlock(&fs->view_lock);
	/* A new snapshot changes the generation; a prune may not, so reload
	 * anyway once a second while the top of the tree is being looked at. */
	if (gen == cur && now - atomic_load(&fs->last_reload_ns) < FS_RELOAD_NS)
		return;
	if (view_load(fs, cat, gen, &v, &err) < 0) {
		fs_log(fs, "cannot list snapshots: %s", err.msg);
		return;
	}
	atomic_store(&fs->last_reload_ns, now);
	pthread_rwlock_wrlock(&fs->view_lock);
	view_date(v, fs->view, now);
	old = fs->view;
	fs->view = v;
	pthread_rwlock_unlock(&fs->view_lock);
	atomic_store(&fs->hold_floor_ns, now);
	view_free(old);
}

bool fs_snap_find(struct fs *fs, int64_t id, struct fs_snap *ret)
{
	bool found = false;

	if (fs->opts.snapshot > 0) {
		if (id != fs->single.id)
			return false;
		*ret = fs->single;
		return true;
	}
	pthread_rwlock_rdlock(&fs->view_lock);
	if (fs->view) {
		struct fs_snap key = { .id = id };
		const struct fs_snap *s = bsearch(&key, fs->view->snaps, fs->view->nsnaps,
						  sizeof(key), cmp_snap_id);

		if (s) {
			*ret = *s;
			found = true;
		}
	}
	pthread_rwlock_unlock(&fs->view_lock);
	return found;
}

/* ---- the catalog kept in memory ---------------------------------------------- */

/*
 * restic and borg keep their whole index in process memory; the catalog is
 * ours.  Once the mount answers, a background thread maps the catalog file
 * and faults every page in (MAP_POPULATE): the pages then belong to the
 * mount process (they count in its RSS, a cache drop leaves mapped pages
 * alone), so lookups and opens after a cold start read no catalog page from
 * disk.  The mapping is never read: SQLite goes on reading with pread and
 * finds the pages in memory, and a catalog that shrinks under a running
 * mount cannot fault.  Only a catalog within a quarter of the cache budget
 * is kept, and its size comes out of the frame cache's share.
 */
static void warm_catalog(struct fs *fs)
{
	int fd = open(fs->catalog_path, O_RDONLY | O_CLOEXEC);
	void *m;

	if (fd < 0)
		return;
	m = mmap(NULL, fs->warm_len, PROT_READ, MAP_SHARED | MAP_POPULATE, fd, 0);
	/*
	 * Not closed until the catalog handles are: closing any descriptor of
	 * catalog.db drops every POSIX lock this process holds on it, SQLite's
	 * shared lock included.  The next backup to close would then take
	 * itself for the last connection, checkpoint, and delete the -wal and
	 * -shm files under the mount's handles, which would go on reading a
	 * deleted WAL and never see another change.
	 */
	fs->warm_fd = fd;
	if (m != MAP_FAILED)
		fs->warm_map = m;
}

/*
 * Once the mount answers: the catalog into memory (above), then a quarter
 * of the frame cache's budget as buffers for small frames, mapped and
 * touched (strata_frame_cache_warm_one).  On this kind of VM a page's first
 * touch costs ~14 us; 1,000 random small files through a mount started a
 * second before took 0.91-0.93 s decompressing into fresh memory, 0.56 s
 * into touched memory (docs/FORMAT.md).
 */
static void *warm_main(void *arg)
{
	struct fs *fs = arg;

	if (fs->warm_len)
		warm_catalog(fs);
	/*
	 * The pool only while no request is being served: filling it takes
	 * the CPU, and the memory map's lock, from the threads a user waits
	 * on (started at once, it slowed the first answers by 40 ms).
	 */
	strata_thread_nice(19);
	for (uint64_t done = 0; done < fs->warm_pool && !atomic_load(&fs->warm_stop);) {
		int64_t quiet = strata_now_ns() - atomic_load(&fs->last_request_ns);
		int r;

		if (quiet < FS_WARM_QUIET_NS) {
			struct timespec ts = { 0, FS_WARM_QUIET_NS - quiet };

			nanosleep(&ts, NULL);
			continue;
		}
		r = strata_frame_cache_warm_one(fs->cache);
		if (r < 0)
			break;
		done += (uint64_t)r;
	}
	return NULL;
}

/* How much of the budget the catalog takes; sets fs->warm_len. */
static uint64_t warm_plan(struct fs *fs, uint64_t budget)
{
	struct stat st;

	fs->warm_len = 0;
	if (stat(fs->catalog_path, &st) < 0 || st.st_size <= 0 ||
	    (uint64_t)st.st_size > budget / 4 || (uint64_t)st.st_size > SIZE_MAX)
		return 0;
	fs->warm_len = (size_t)st.st_size;
	return fs->warm_len;
}

static void warm_start(struct fs *fs)
{
	if ((fs->warm_len || fs->warm_pool) && !fs->warm_started &&
	    pthread_create(&fs->warm_thread, NULL, warm_main, fs) == 0)
		fs->warm_started = true;
}

static void warm_release(struct fs *fs)
{
	atomic_store(&fs->warm_stop, true);
	if (fs->warm_started)
		pthread_join(fs->warm_thread, NULL);
	fs->warm_started = false;
	if (fs->warm_map)
		munmap(fs->warm_map, fs->warm_len);
	fs->warm_map = NULL;
	if (fs->warm_fd >= 0)
		close(fs->warm_fd);  /* after the catalog handles (see warm_main) */
	fs->warm_fd = -1;
}

/* ---- readiness and detaching ----------------------------------------------- */

/* Called once, from the INIT handler: the mount answers from now on. */
void fs_ready(struct fs *fs)
{
	int fd = fs->ready_fd;

	fs->ready_fd = -1;
	if (!fs->opts.foreground && !fs->opts.debug) {
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);

		openlog("strata", LOG_PID, LOG_DAEMON);
		atomic_store(&fs->detached, true);
		if (null >= 0) {
			dup2(null, STDIN_FILENO);
			dup2(null, STDOUT_FILENO);
			dup2(null, STDERR_FILENO);
			if (null > STDERR_FILENO)
				close(null);
		}
		(void)setsid();
		if (chdir("/") < 0) {
			/* harmless: every path the driver uses is absolute or an fd */
		}
	}
	if (fd >= 0) {
		(void)strata_write_full(fd, "1", 1);
		close(fd);
	}
	warm_start(fs);
}

/* ---- kernel readahead ----------------------------------------------------- */

/* Undo mountinfo's octal escapes (\040 for a space) in place. */
static void unescape_octal(char *s)
{
	char *w = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*w++ = (char)((s[1] - '0') << 6 | (s[2] - '0') << 3 | (s[3] - '0'));
			s += 3;
		} else {
			*w++ = *s;
		}
	}
	*w = '\0';
}

/*
 * The device (MAJ:MIN) of the FUSE mount on top at path 'want' (a
 * realpath) into dev, from /proc/self/mountinfo; false if there is none.
 */
static bool fuse_mount_find(const char *want, char dev[32])
{
	char *line = NULL;
	size_t cap = 0;
	FILE *f;

	dev[0] = '\0';
	f = fopen("/proc/self/mountinfo", "re");
	while (f && getline(&line, &cap, f) > 0) {
		char mdev[32], mnt[PATH_MAX + 1], *fstype = strstr(line, " - ");

		/* id parent MAJ:MIN root mountpoint ... - fstype source options */
		if (!fstype || strncmp(fstype, " - fuse", 7) ||
		    sscanf(line, "%*s %*s %31s %*s %4096s", mdev, mnt) != 2)
			continue;
		unescape_octal(mnt);
		if (!strcmp(mnt, want))
			snprintf(dev, 32, "%s", mdev);  /* the last one is on top */
	}
	if (f)
		fclose(f);
	free(line);
	return dev[0] != '\0';
}

/*
 * Raise the kernel's readahead for this mount to FS_READ_AHEAD_KB: with the
 * default 128 KiB a sequential reader has one small request in flight at a
 * time and waits for every round trip; with a few MiB the kernel sends
 * max_read-sized requests ahead, which the worker threads serve in
 * parallel.  The knob is the mount's own backing device
 * (/sys/class/bdi/MAJ:MIN, found in /proc/self/mountinfo: nothing may
 * touch the mount point itself before the session serves).  'want' is the
 * mount point's realpath, taken before mounting.  Best effort: only root
 * may write the knob.
 */
static void fs_tune_readahead(struct fs *fs, const char *want)
{
	char dev[32];

	if (want && fuse_mount_find(want, dev)) {
		char path[64], cur[32] = "";
		int fd;

		snprintf(path, sizeof(path), "/sys/class/bdi/%s/read_ahead_kb", dev);
		fd = open(path, O_RDWR | O_CLOEXEC);
		if (fd < 0)
			return;
		if (read(fd, cur, sizeof(cur) - 1) > 0 && strtol(cur, NULL, 10) < FS_READ_AHEAD_KB) {
			int k = snprintf(cur, sizeof(cur), "%d", FS_READ_AHEAD_KB);

			if (pwrite(fd, cur, (size_t)k, 0) != k && fs->opts.debug)
				fs_log(fs, "cannot raise the readahead of %s", path);
		}
		close(fd);
	}
}

/* ---- the mount ------------------------------------------------------------- */

static int fs_init_state(struct fs *fs, struct strata_repo *repo, const char *catalog_path,
			 const struct strata_fs_options *opts, struct strata_error *err)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	char *abs;

	memset(fs, 0, sizeof(*fs));
	fs->repo = repo;
	fs->opts = *opts;
	fs->ready_fd = opts->ready_fd;
	fs->warm_fd = -1;
	fs->uid = getuid();
	fs->gid = getgid();
	fs->mount_ns = strata_now_ns();
	pthread_mutex_init(&fs->pool_lock, NULL);
	pthread_cond_init(&fs->pool_cond, NULL);
	pthread_rwlock_init(&fs->view_lock, NULL);
	pthread_mutex_init(&fs->dir_lock, NULL);
	pthread_mutex_init(&fs->file_lock, NULL);
	fs_hlmap_init(&fs->hl);
	fs_prefetch_init(fs);
	atomic_init(&fs->last_poll_ns, 0);
	atomic_init(&fs->last_reload_ns, 0);
	atomic_init(&fs->warm_stop, false);
	atomic_init(&fs->last_request_ns, strata_now_ns());
	atomic_init(&fs->detached, false);
	/* Enough handles to keep every CPU busy decompressing, few enough that
	 * their SQLite page caches and the threads' read buffers (1 MiB each)
	 * stay well inside the memory budget. */
	fs->pool_max = ncpu > 2 ? (size_t)ncpu * 2 : 4;
	if (fs->pool_max > 8)
		fs->pool_max = 8;
	fs->pool = calloc(fs->pool_max, sizeof(*fs->pool));
	if (!fs->pool)
		return strata_error_set(err, -ENOMEM, STRATA_ERR_INTERNAL, "out of memory");
	/* Detaching changes the working directory. */
	abs = realpath(catalog_path, NULL);
	fs->catalog_path = abs ? abs : strdup(catalog_path);
	if (!fs->catalog_path)
		return strata_error_set(err, -ENOMEM, STRATA_ERR_INTERNAL, "out of memory");
	return 0;
}

static void fs_release_state(struct fs *fs)
{
	fs_prefetch_release(fs);  /* its worker may hold a pooled handle */
	fs_files_release(fs);
	for (size_t i = 0; i < fs->pool_free; i++)
		strata_catalog_close(fs->pool[i]);
	free(fs->pool);
	warm_release(fs);
	strata_reader_free(fs->reader);
	strata_frame_cache_free(fs->cache);
	fs_dirs_release(fs);
	view_free(fs->view);
	fs_hlmap_release(&fs->hl);
	pthread_mutex_destroy(&fs->dir_lock);
	pthread_mutex_destroy(&fs->file_lock);
	pthread_rwlock_destroy(&fs->view_lock);
	pthread_cond_destroy(&fs->pool_cond);
	pthread_mutex_destroy(&fs->pool_lock);
	free(fs->catalog_path);
	if (fs->ready_fd >= 0)
		close(fs->ready_fd);
}

/* Check the options against the catalog before mounting, so mistakes are
 * reported on the terminal: the snapshot exists, the set exists. */
static int fs_precheck(struct fs *fs, struct strata_error *err)
{
	struct strata_catalog_options copts = { .readonly = true };
	struct strata_catalog *cat = NULL;
	int rc;

	rc = strata_catalog_open(fs->catalog_path, &copts, &cat, err);
	if (rc < 0)
		goto out;
	if (fs->opts.snapshot > 0) {
		struct strata_snapshot s;
		char spec[32];

		snprintf(spec, sizeof(spec), "%lld", (long long)fs->opts.snapshot);
		rc = strata_catalog_snapshot_find(cat, spec, NULL, &s, err);
		if (rc < 0)
			goto out;
		if ((uint64_t)s.id >> FS_SNAP_BITS) {
			rc = strata_error_set(err, -EOVERFLOW, STRATA_ERR_USAGE,
					      "snapshot id %lld is too large to mount",
					      (long long)s.id);
			goto out;
		}
		fs->single.id = s.id;
		fs->single.set_id = s.set_id;
		fs->single.finished_ns = s.finished_ns;
		snprintf(fs->single.name, sizeof(fs->single.name), "%s", s.name);
		snprintf(fs->single.set, sizeof(fs->single.set), "%s", s.set);
	} else {
		int64_t gen = 0;

		rc = strata_catalog_generation(cat, &gen, err);
		if (rc < 0)
			goto out;
		if (fs->opts.set) {
			int64_t set_id;

			rc = strata_catalog_set_get(cat, fs->opts.set, false, &set_id, err);
			if (rc < 0)
				goto out;
		}
		rc = view_load(fs, cat, gen, &fs->view, err);
		if (rc < 0)
			goto out;
		view_date(fs->view, NULL, 0);
		atomic_store(&fs->last_poll_ns, strata_now_ns());
		atomic_store(&fs->last_reload_ns, strata_now_ns());
	}
out:
	/* The first request then needs no new connection; this runs in the
	 * process that serves (the caller forked before), so the handle never
	 * crosses a fork. */
	if (rc == 0 && cat) {
		fs->pool[fs->pool_free++] = cat;
		fs->pool_open++;
	} else {
		strata_catalog_close(cat);
	}
	return rc;
}

static int dead_mount(const char *q, struct strata_error *err)
{
	return strata_error_set(err, -ENOTCONN, STRATA_ERR_USAGE,
				"mount point '%s' is a FUSE mount whose process has ended;"
				" unmount it first (fusermount3 -u)", q);
}

/*
 * The mount point (its realpath 'real') is a directory that is not
 * already a FUSE mount.  The kernel would stack a second strata mount over
 * a first one (each then needs its own unmount), and a mount whose process
 * died answers every call with ENOTCONN; both are named here, with the
 * remedy, rather than as a failed mount.  statfs tells the two apart: stat
 * may answer from the kernel's attribute cache.
 */
static int mountpoint_check(const char *mnt, const char *real, struct strata_error *err)
{
	struct stat st;
	struct statfs sf;
	char q[512], dev[32];

	strata_quote(q, sizeof(q), mnt, strlen(mnt));
	if (stat(mnt, &st) < 0) {
		if (errno == ENOTCONN)
			return dead_mount(q, err);
		if (errno == ENOENT)
			return strata_error_set(err, -ENOENT, STRATA_ERR_NOT_FOUND,
						"mount point '%s' does not exist", q);
		return strata_error_errno(err, errno, "cannot use mount point '%s'", q);
	}
	if (!S_ISDIR(st.st_mode))
		return strata_error_set(err, -ENOTDIR, STRATA_ERR_USAGE,
					"mount point '%s' is not a directory", q);
	if (!real || !fuse_mount_find(real, dev))
		return 0;
	if (statfs(mnt, &sf) < 0 && errno == ENOTCONN)
		return dead_mount(q, err);
	return strata_error_set(err, -EBUSY, STRATA_ERR_USAGE,
				"mount point '%s' is already a FUSE mount; unmount it first"
				" (strata umount)", q);
}

int strata_fs_mount(struct strata_repo *repo, const char *catalog_path,
		    const struct strata_fs_options *opts, struct strata_error *err)
{
	struct fs fs;
	char mopts[256];
	char *argv[4];
	int argc = 0;
	struct fuse_args args;
	bool handlers = false, mounted = false;
	char *mnt_real = NULL;
	uint64_t budget;
	int rc;

	rc = fs_init_state(&fs, repo, catalog_path, opts, err);
	if (rc < 0)
		goto out;
	if (!opts->mountpoint || !*opts->mountpoint) {
		rc = strata_error_set(err, -EINVAL, STRATA_ERR_USAGE, "no mount point given");
		goto out;
	}
	mnt_real = realpath(opts->mountpoint, NULL);
	rc = mountpoint_check(opts->mountpoint, mnt_real, err);
	if (rc < 0)
		goto out;
	rc = fs_precheck(&fs, err);
	if (rc < 0)
		goto out;
	/*
	 * The mount process's memory must stay within the frame cache budget
	 * plus a little (issue 3): decompressed frames of many sizes come and
	 * go, and glibc's default of one arena per thread and its lazy trimming
	 * kept ~80 MiB of freed frames resident.  Two arenas and a 1 MiB trim
	 * threshold keep that under 20 MiB.  This is the process the driver
	 * serves from, so process-wide tuning is ours to do.
	 */
	mallopt(M_ARENA_MAX, 2);
	mallopt(M_TRIM_THRESHOLD, 1 << 20);
	/*
	 * Setting the trim threshold also freezes the mmap threshold at 128
	 * KiB, which made every decompressed frame and every compressed
	 * input buffer a fresh mmap: a page fault per 4 KiB copied, a third
	 * of a cold sequential read's CPU time.  Frames come from the heap,
	 * where freed ones are reused.
	 */
	mallopt(M_MMAP_THRESHOLD, 2 * STRATA_FRAME_MAX);
	budget = opts->cache_size ? opts->cache_size : FS_DEFAULT_CACHE;
	budget -= warm_plan(&fs, budget);
	fs.warm_pool = budget / 4;
	rc = strata_frame_cache_new(budget, &fs.cache);
	if (rc < 0) {
		strata_error_set(err, rc, STRATA_ERR_INTERNAL, "cannot create the frame cache");
		goto out;
	}
	rc = strata_reader_new(repo, fs.cache, &fs.reader, err);
	if (rc < 0)
		goto out;

	snprintf(mopts, sizeof(mopts),
		 "ro,default_permissions,fsname=strata,subtype=strata,max_read=%u%s",
		 MAX_IO, opts->allow_other ? ",allow_other" : "");
	argv[argc++] = (char *)"strata";
	argv[argc++] = (char *)"-o";
	argv[argc++] = mopts;
	if (opts->debug)
		argv[argc++] = (char *)"-d";
	args = (struct fuse_args)FUSE_ARGS_INIT(argc, argv);
	fs.se = fuse_session_new(&args, &fs_ops, sizeof(fs_ops), &fs);
	fuse_opt_free_args(&args);
	if (!fs.se) {
		rc = strata_error_set(err, -EINVAL, STRATA_ERR_USAGE,
				      "cannot create the FUSE session (bad mount options)");
		goto out;
	}
	if (fuse_set_signal_handlers(fs.se) != 0) {
		rc = strata_error_set(err, -EIO, STRATA_ERR_IO, "cannot install signal handlers");
		goto out;
	}
	handlers = true;
	if (fuse_session_mount(fs.se, opts->mountpoint) != 0) {
		char q[512];

		strata_quote(q, sizeof(q), opts->mountpoint, strlen(opts->mountpoint));
		rc = strata_error_set(err, -EIO, STRATA_ERR_IO,
				      "cannot mount on '%s' (is /dev/fuse usable and the directory empty?)",
				      q);
		goto out;
	}
	mounted = true;
	fs_tune_readahead(&fs, mnt_real);

	/* A few threads more than handles, for requests that need none
	 * (forget, release, statfs, xattrs of the top level). */
	rc = fs_loop_run(fs.se, (unsigned)fs.pool_max + 4, pool_tick, &fs);
	if (rc < 0) {
		rc = strata_error_set(err, -EIO, STRATA_ERR_IO, "the FUSE session failed: %s",
				      strerror(-rc));
		goto out;
	}
	rc = 0;
out:
	free(mnt_real);
	if (mounted)
		fuse_session_unmount(fs.se);
	if (handlers)
		fuse_remove_signal_handlers(fs.se);
	if (fs.se)
		fuse_session_destroy(fs.se);
	fs_release_state(&fs);
	return rc;
}
