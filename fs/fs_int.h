/*
 * fs_int.h - the FUSE driver's insides, shared by fs_mount.c (session,
 * catalog handle pool, snapshot list), fs_inode.c (node ids) and fs_ops.c
 * (the request handlers).  No other module includes it.
 */
#ifndef STRATA_FS_INT_H
#define STRATA_FS_INT_H

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "catalog.h"
#include "common.h"
#include "fs.h"
#include "restore.h"
#include "store.h"

/* Timeouts (seconds): snapshot contents never change; the listing of sets
 * and snapshots does. */
#define FS_TREE_TIMEOUT 86400.0
#define FS_TOP_TIMEOUT 0.5
/* Listings kept for readdir calls that come without an opendir. */
#define FS_DIR_CACHE 8
/* Files whose read state is kept for reads that come without an open. */
#define FS_FILE_CACHE 64
/* A file looked up by name and at most this big has its frames loaded
 * right after the reply: the read that usually follows finds them. */
#define FS_LOOKUP_PREFETCH_MAX (256u << 10)
/* The kernel's readahead for the mount (its default is 128 KiB). */
#define FS_READ_AHEAD_KB 4096
/* The warming thread fills the buffer pool only after this long without a request. */
#define FS_WARM_QUIET_NS (20 * 1000000LL)
/* The frame cache budget without options.cache_size. */
#define FS_DEFAULT_CACHE (256ull << 20)
/* How often the snapshot list may be reloaded from the catalog. */
#define FS_POLL_NS (200 * 1000000LL)
#define FS_RELOAD_NS (1000 * 1000000LL)
/* A catalog handle keeps its read transaction this long (strata_catalog_hold). */
#define FS_HOLD_NS (250 * 1000000LL)

/* ---- the snapshot list (fs_mount.c) ---------------------------------- */

struct fs_snap {
	int64_t id;
	int64_t set_id;
	int64_t finished_ns;
	char name[STRATA_SNAP_NAME_MAX];
	char set[STRATA_SET_NAME_MAX];
};

struct fs_set {
	int64_t id;
	char name[STRATA_SET_NAME_MAX];
	int64_t latest;          /* newest snapshot id of the set */
	int64_t newest_ns;       /* its finish time */
	int64_t listed_ns;       /* when its listing last changed: its mtime */
	char latest_name[STRATA_SNAP_NAME_MAX];
};

/* An immutable listing; replaced whole under fs->view_lock. */
struct fs_view {
	struct fs_snap *snaps;   /* sorted by id */
	size_t nsnaps;
	struct fs_set *sets;     /* sorted by name */
	size_t nsets;
	int64_t generation;
	int64_t newest_ns;
	int64_t listed_ns;       /* when the list of sets last changed */
};

/* ---- hardlink map (fs_inode.c) ---------------------------------------- */

struct fs_hl_slot {
	int64_t snap;            /* 0: empty */
	uint64_t dev, ino;
	uint64_t nodeid;
};

struct fs_hlmap {
	pthread_mutex_t lock;
	struct fs_hl_slot *v;
	size_t n, alloc;         /* alloc is a power of two (or 0) */
};

/* ---- open files and read-ahead (fs_prefetch.c) ---------------------------- */

struct fs_file {
	struct strata_entry_list list;  /* the one version; owns e's memory */
	const struct strata_entry *e;
	int64_t snap;
	atomic_bool logged;             /* one log line per open file */
	atomic_int refs;                /* the open file, plus a read-ahead job */
	/*
	 * Reads of one open file run in parallel (the kernel's readahead
	 * sends several requests at once; the frame cache loads a frame that
	 * several of them need only once).  The lock guards the read-ahead
	 * state below only.
	 */
	pthread_mutex_t lock;
	uint64_t next_off;              /* where a sequential read goes on */
	uint64_t ra_until;              /* decompression asked up to here */
	uint64_t io_until;              /* disk reads asked up to here */
	uint64_t drop_until;            /* frames before this left the cache */
};

struct fs_prefetch {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t thread;
	bool started, stop;
	uint64_t window;                /* bytes decompressed ahead; within the cache budget */
	struct fs_file *f;              /* the pending job (a reference), or NULL */
	uint64_t from, to;              /* decompress these bytes of f */
	uint64_t io_from, io_to;        /* and first start reading these from disk */
};

/* ---- the mount --------------------------------------------------------- */

struct fs_dir;   /* a directory listing (fs_ops.c) */

/* The key of a kept listing or file (fs_ops.c kept_slot); ino 0: an empty slot. */
struct fs_kept {
	fuse_ino_t ino;
	uint64_t used;           /* when last used (fs->dir_tick or file_tick) */
};

struct fs {
	struct strata_repo *repo;
	char *catalog_path;
	struct strata_fs_options opts;
	struct strata_frame_cache *cache;
	struct strata_reader *reader;
	struct fuse_session *se;
	uid_t uid;
	gid_t gid;
	int64_t mount_ns;

	/* catalog handle pool */
	pthread_mutex_t pool_lock;
	pthread_cond_t pool_cond;
	struct strata_catalog **pool;
	size_t pool_free, pool_open, pool_max;

	/* snapshot list */
	pthread_rwlock_t view_lock;
	struct fs_view *view;
	atomic_llong last_poll_ns;
	atomic_llong hold_floor_ns;   /* handles' transactions must be newer (view changed) */
	atomic_llong last_reload_ns;
	struct fs_snap single;   /* options.snapshot: the one snapshot */

	struct fs_hlmap hl;
	struct fs_prefetch pf;

	/*
	 * Directories are not opened (FUSE no-opendir, when the kernel has
	 * it): the kernel caches every listing and sends readdir with no
	 * handle.  A listing read in several calls is kept here between them.
	 */
	bool no_opendir;
	pthread_mutex_t dir_lock;
	struct fs_dir *dirs[FS_DIR_CACHE];
	struct fs_kept dir_keys[FS_DIR_CACHE];
	uint64_t dir_tick;
	/* Files are not opened either (no-open): a read finds the file's
	 * state here by inode, made on the first read. */
	bool no_open;
	pthread_mutex_t file_lock;
	struct fs_file *files[FS_FILE_CACHE];
	struct fs_kept file_keys[FS_FILE_CACHE];
	uint64_t file_tick;

	atomic_bool detached;
	int ready_fd;

	/* The catalog file kept mapped (fs_mount.c: catalog warming). */
	pthread_t warm_thread;
	bool warm_started;
	size_t warm_len;         /* bytes to keep; 0: none (over the budget) */
	void *warm_map;          /* set by the warm thread; joined before it is read */
	int warm_fd;             /* its descriptor, open while SQLite's are (fs_mount.c) */
	uint64_t warm_pool;      /* bytes of small-frame buffers to touch in advance */
	atomic_bool warm_stop;
	atomic_llong last_request_ns;  /* set by the request handlers (fs_ops.c) */
};

/* fs_mount.c */
struct strata_catalog *fs_cat_get(struct fs *fs);
void fs_cat_put(struct fs *fs, struct strata_catalog *cat);
/* Reload the snapshot list if it may be stale (at most every FS_POLL_NS). */
void fs_refresh(struct fs *fs, struct strata_catalog *cat);
/* Copy the snapshot 'id' out of the current view; false when absent. */
bool fs_snap_find(struct fs *fs, int64_t id, struct fs_snap *ret);
void fs_log(struct fs *fs, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void fs_ready(struct fs *fs);
int fs_errno(int rc);

/* fs_ops.c: drop the listings and files kept for handle-less requests */
void fs_dirs_release(struct fs *fs);
void fs_files_release(struct fs *fs);

/* ---- node ids (fs_inode.c) --------------------------------------------- */

enum fs_kind {
	FS_BAD = 0,
	FS_ROOT,      /* MOUNT (all-snapshots mode) */
	FS_SET,       /* MOUNT/<set> */
	FS_LATEST,    /* MOUNT/<set>/latest */
	FS_TREE,      /* a directory of snapshot 'snap'; node 0 is the snapshot's root */
	FS_FILE,      /* any other entry: one catalog version, in every snapshot it spans */
};

struct fs_ino {
	enum fs_kind kind;
	int64_t set_id;   /* FS_SET, FS_LATEST */
	int64_t snap;     /* FS_TREE; FS_LATEST: the snapshot it points to */
	int64_t node;     /* FS_TREE */
	int64_t version;  /* FS_FILE */
};

#define FS_SET_BITS 17
#define FS_SNAP_BITS 22
#define FS_NODE_BITS 40
#define FS_FILE_BIT 62

void fs_ino_decode(const struct fs *fs, fuse_ino_t nodeid, struct fs_ino *ret);
/* 0 when the ids do not fit the encoding. */
fuse_ino_t fs_ino_set(int64_t set_id);
fuse_ino_t fs_ino_latest(int64_t set_id, int64_t snap);
/* 0 when (snap, node) does not fit the encoding. */
fuse_ino_t fs_ino_tree(const struct fs *fs, int64_t snap, int64_t node);
/* 0 when the version id does not fit. */
fuse_ino_t fs_ino_version(int64_t version);
/*
 * The node id every name of entry e in snapshot snap answers with: for a
 * directory the tree encoding of (snap, node); for anything else its
 * version's id, or for a regular file with nlink > 1 the id the first name
 * of its (dev, ino) group was given in that snapshot.  0 when it does not
 * fit.
 */
fuse_ino_t fs_ino_entry(struct fs *fs, int64_t snap, const struct strata_entry *e);
void fs_hlmap_init(struct fs_hlmap *m);
void fs_hlmap_release(struct fs_hlmap *m);

void fs_file_unref(struct fs_file *f);
/* Serve the session until it ends (fs_loop.c): 0 or -errno.  tick(arg)
 * runs about once a second in the calling thread. */
int fs_loop_run(struct fuse_session *se, unsigned max_threads, void (*tick)(void *), void *arg);
void fs_prefetch_init(struct fs *fs);
/* Stop the worker and drop a pending job; before the reader is freed. */
void fs_prefetch_release(struct fs *fs);
/* Called under f->lock when a read of [off, off+n) starts: on a sequential
 * run, start reading the next frames from disk and decompress the nearest
 * of them on the worker thread, and return in [*ret_drop_from,
 * *ret_drop_to) the bytes the run has left behind, whose frames the caller
 * drops from the cache (strata_reader_drop) after its read. */
void fs_prefetch_hint(struct fs *fs, struct fs_file *f, uint64_t off, size_t n,
		      uint64_t *ret_drop_from, uint64_t *ret_drop_to);

/* ---- handlers (fs_ops.c) ------------------------------------------------- */

extern const struct fuse_lowlevel_ops fs_ops;

#endif
