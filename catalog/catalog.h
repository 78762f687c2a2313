/*
 * catalog.h - the SQLite catalog (DESIGN.md section 5): snapshots, archives,
 * the path tree of each set and one row per *version* of an entry with the
 * range of snapshots [first_snapshot, last_snapshot] in which it is live
 * (last_snapshot = 0 in this API, NULL in SQL, while it is the live one).
 *
 * The entries of directory node D in snapshot S are the versions of D's
 * children with first <= S and (last IS NULL or last >= S).  Snapshot ids
 * are global and grow with time; a node belongs to one set.
 *
 * Only this module runs SQL.  A handle is used by one thread at a time; the
 * mount opens one read-only handle per worker thread.  Readers never block
 * a writer (WAL) and never see a snapshot before its backup committed:
 * queries that take a snapshot spec only resolve complete snapshots.
 */
#ifndef STRATA_CATALOG_H
#define STRATA_CATALOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"

struct strata_catalog;

enum strata_level {
	STRATA_LEVEL_FULL = 0,
	STRATA_LEVEL_INCREMENTAL = 1,
	STRATA_LEVEL_DIFFERENTIAL = 2,
};
/* "full", "incremental", "differential"; parse returns -EINVAL on anything else. */
const char *strata_level_name(enum strata_level level);
int strata_level_parse(const char *s, enum strata_level *ret);

enum strata_snapshot_state {
	STRATA_SNAP_RUNNING = 0,   /* never visible to readers */
	STRATA_SNAP_COMPLETE = 1,
	STRATA_SNAP_WARNING = 2,   /* complete, but some sources could not be read */
};
const char *strata_snapshot_state_name(enum strata_snapshot_state s);

#define STRATA_SET_NAME_MAX 64
#define STRATA_SNAP_NAME_MAX 64
#define STRATA_LABEL_MAX 32

struct strata_snapshot {
	int64_t id;
	char set[STRATA_SET_NAME_MAX];
	int64_t set_id;
	/* "2026-11-23T020000Z-full"; a second one in the same second of the
	 * same set gets "2026-11-23T020000Z.2-incremental" (sorts after). */
	char name[STRATA_SNAP_NAME_MAX];
	enum strata_level kind;
	int64_t base;              /* snapshot compared against, 0 for a full */
	int64_t started_ns;
	int64_t finished_ns;
	enum strata_snapshot_state state;
	char label[STRATA_LABEL_MAX];  /* "" or e.g. "monthly" */
	uint64_t files;            /* entries in the snapshot's tree */
	uint64_t files_stored;     /* entries whose content/metadata this snapshot stored */
	uint64_t bytes_read;       /* content bytes read from the sources */
	uint64_t bytes_stored;     /* archive bytes on disk */
	uint64_t warnings;
};

/* Entry types, as in tar: */
enum strata_entry_type {
	STRATA_T_REG = 'f', STRATA_T_DIR = 'd', STRATA_T_LNK = 'l', STRATA_T_FIFO = 'p',
	STRATA_T_CHR = 'c', STRATA_T_BLK = 'b', STRATA_T_SOCK = 's',
};

#define STRATA_NAME_MAX 4096        /* one path component, bytes */
#define STRATA_XATTRS_MAX (1u << 20) /* encoded xattr blob */

/*
 * One version of one entry.  Pointers are borrowed: owned by the array
 * they came in (strata_entries_free) or by the caller on input.
 *
 * xattrs: sorted by name, encoded as repeated
 *   [u32le name length][name bytes][u32le value length][value bytes].
 * acl: libarchive's text form (ARCHIVE_ENTRY_ACL_STYLE_EXTRA_ID), access
 *   and default ACLs as two strings; NULL when the entry has none beyond mode.
 * sparse: NULL for a dense file, else data segments of the logical file,
 *   packed u64le (offset, length) pairs, ascending; the tar stream holds the
 *   segments' bytes back to back from data_offset (pax GNU.sparse 1.0, the
 *   map block itself precedes data_offset).
 * Content of a regular file lives in archive 'archive' (catalog row id)
 * at 'data_offset' of its uncompressed stream: 'size' bytes, or the sum of
 * the sparse segment lengths.  archive = 0 for entries without content
 * (directories, links, fifos, empty files).
 */
struct strata_entry {
	int64_t version_id;
	int64_t node_id;
	int64_t parent_node;        /* 0 for a child of the set's root */
	const char *name;           /* not NUL-terminated necessarily: use name_len */
	size_t name_len;
	int64_t first_snapshot;
	int64_t last_snapshot;      /* 0 while live */
	char type;                  /* enum strata_entry_type */
	uint32_t mode;              /* full st_mode, type bits included */
	uint32_t uid, gid;
	const char *uname, *gname;  /* NUL-terminated, may be NULL */
	uint64_t size;              /* logical size (st_size) */
	int64_t mtime_ns, ctime_ns;
	uint64_t dev, ino;
	uint32_t nlink;
	uint64_t rdev;
	const char *link;           /* symlink target, NUL-terminated, or NULL */
	size_t link_len;
	const uint8_t *xattrs; size_t xattrs_len;
	const char *acl_access;     /* NULL when none */
	const char *acl_default;    /* NULL when none */
	const uint8_t *sparse; size_t sparse_len;
	int64_t archive;
	uint64_t data_offset;
	bool has_sha256;
	uint8_t sha256[32];         /* of the content, for regular files */
};

/*
 * Walk an xattr blob (the format above): start with *off = 0.  Returns 1
 * and the next attribute (name not NUL-terminated, 1..255 bytes without
 * NUL; pointers into blob), 0 at the end, -EBADMSG when the blob is
 * malformed.  The one parser of this format: backup, restore and the mount
 * all use it.
 */
int strata_xattrs_next(const uint8_t *blob, size_t len, size_t *off, const char **ret_name,
		       uint32_t *ret_name_len, const uint8_t **ret_value, uint32_t *ret_value_len);

/* An array of entries and the memory their pointers point into. */
struct strata_entry_list {
	struct strata_entry *v;
	size_t n;
	void *arena;                /* internal */
};
void strata_entry_list_release(struct strata_entry_list *l);

struct strata_archive_row {
	int64_t id;
	int64_t snapshot;
	char name[64];
	uint64_t file_size;
	uint64_t stream_size;
	uint8_t sha256[32];
	bool encrypted;
	uint8_t salt[32];
	uint8_t *frames; size_t frames_len;  /* strata_frames_encode format, owned */
};
void strata_archive_rows_free(struct strata_archive_row *rows, size_t n);

struct strata_catalog_options {
	bool readonly;      /* open read-only (mount, list, restore) */
	bool create;        /* create the file and schema if missing (init) */
	int busy_timeout_ms;/* 0 = 10000 */
};

/*
 * Open REPO/catalog.db (the path is given whole).  Creates it 0600 with the
 * schema when opts->create; migrates an older schema version when
 * writable; -ENOENT (not-found) when missing and !create; -EBADMSG
 * (corrupt) when it is not a strata catalog.
 */
int strata_catalog_open(const char *path, const struct strata_catalog_options *opts,
			struct strata_catalog **ret, struct strata_error *err);
void strata_catalog_close(struct strata_catalog *cat);

/* PRAGMA integrity_check (quick=false) plus schema checks. -EBADMSG with the first problem. */
int strata_catalog_check(struct strata_catalog *cat, struct strata_error *err);

/* ---- snapshots (readers) --------------------------------------------- */

/*
 * Resolve a snapshot spec among complete snapshots: a decimal id, a name,
 * "latest" (the newest of any set; -EINVAL/usage when several sets exist
 * and 'default_set' is NULL), "SET/latest", or "SET/NAME".  -ENOENT
 * (not-found) with "no snapshot '<spec>'" when nothing matches.
 */
int strata_catalog_snapshot_find(struct strata_catalog *cat, const char *spec,
				 const char *default_set, struct strata_snapshot *ret,
				 struct strata_error *err);
/* Complete snapshots, oldest first; set NULL for every set. Caller frees *ret. */
int strata_catalog_snapshot_list(struct strata_catalog *cat, const char *set,
				 struct strata_snapshot **ret, size_t *ret_n,
				 struct strata_error *err);
/* Newest complete snapshot of set_id with that kind (or any kind when kind < 0); -ENOENT if none. */
int strata_catalog_snapshot_latest(struct strata_catalog *cat, int64_t set_id, int kind,
				   struct strata_snapshot *ret, struct strata_error *err);
/*
 * A value that changes whenever a complete snapshot is added or removed:
 * the newest complete id << 24 | the count of complete snapshots (0 if
 * none).  Cheap; the mount polls it.
 */
int strata_catalog_generation(struct strata_catalog *cat, int64_t *ret, struct strata_error *err);

/*
 * Each of a reader's calls runs in a read transaction of its own, and
 * beginning one (the WAL's locks) costs about as much as the lookup in it.
 * strata_catalog_hold keeps one read transaction open across calls: it
 * keeps the held one if that began at or after not_before_ns (wall clock,
 * strata_now_ns), else ends it and begins another, so the reader then sees
 * what was committed since.  strata_catalog_release ends a held
 * transaction that began before not_before_ns (INT64_MAX: any).  A held
 * transaction keeps WAL checkpoints from finishing: release handles that
 * go idle.  Neither touches a handle inside a backup.  0 or -errno.
 */
int strata_catalog_hold(struct strata_catalog *cat, int64_t not_before_ns, struct strata_error *err);
void strata_catalog_release(struct strata_catalog *cat, int64_t not_before_ns);

/* ---- the tree of a snapshot (readers) --------------------------------- */

/*
 * The entries of directory node 'parent' (0 = the set's root) in snapshot
 * 'snap' of set 'set_id', sorted by name bytes (memcmp, shorter first).
 */
int strata_catalog_children(struct strata_catalog *cat, int64_t set_id, int64_t snap,
			    int64_t parent, struct strata_entry_list *ret, struct strata_error *err);
/* One child by name; -ENOENT when absent in that snapshot. */
int strata_catalog_lookup(struct strata_catalog *cat, int64_t set_id, int64_t snap, int64_t parent,
			  const char *name, size_t len, struct strata_entry_list *ret,
			  struct strata_error *err);
/* The version of node 'node' live in snapshot 'snap' (the mount's getattr by inode); -ENOENT if none. */
int strata_catalog_node_entry(struct strata_catalog *cat, int64_t snap, int64_t node,
			      struct strata_entry_list *ret, struct strata_error *err);
/*
 * Version 'version' by its id (the mount's getattr of a file, whose inode
 * names a version); -ENOENT when no complete snapshot shows it any more.
 */
int strata_catalog_version_entry(struct strata_catalog *cat, int64_t version,
				 struct strata_entry_list *ret, struct strata_error *err);
/* Resolve "etc/erp/settings.ini" (no leading slash needed; "" or "/" is the root, returning n=0). */
int strata_catalog_resolve(struct strata_catalog *cat, int64_t set_id, int64_t snap, const char *path,
			   struct strata_entry_list *ret, struct strata_error *err);
/* The path of a node from the set's root, "srv/erp/x", into out (reset first). */
int strata_catalog_node_path(struct strata_catalog *cat, int64_t node, struct strata_buf *out,
			     struct strata_error *err);

/*
 * Visit every entry of snapshot 'snap' below node 'top' (0 = root; top
 * itself is not visited), depth first, parents before children, children
 * in name order.  'path' is the full path from the set root, NUL-terminated
 * (names may hold any byte but '/' and NUL), valid during the call.  A
 * non-zero return from cb stops the walk and is returned.
 */
typedef int (*strata_walk_fn)(void *ctx, const struct strata_entry *e, const char *path,
			      size_t path_len);
int strata_catalog_walk(struct strata_catalog *cat, int64_t set_id, int64_t snap, int64_t top,
			strata_walk_fn cb, void *ctx, struct strata_error *err);

/*
 * Changes between snapshots a and b of one set, from versions alone (no
 * archive read).  For each node whose version differs: ea is its version in
 * a (NULL if absent), eb in b (NULL if absent).  Order: by path.
 */
typedef int (*strata_diff_fn)(void *ctx, const struct strata_entry *ea,
			      const struct strata_entry *eb, const char *path, size_t path_len);
int strata_catalog_diff(struct strata_catalog *cat, int64_t set_id, int64_t a, int64_t b,
			strata_diff_fn cb, void *ctx, struct strata_error *err);

/* ---- archives --------------------------------------------------------- */

/* All archives (snap = 0), or the archives snapshot 'snap' needs (every archive
 * a version live in it points into). Caller frees with strata_archive_rows_free. */
int strata_catalog_archives(struct strata_catalog *cat, int64_t snap,
			    struct strata_archive_row **ret, size_t *ret_n, struct strata_error *err);
int strata_catalog_archive_get(struct strata_catalog *cat, int64_t id,
			       struct strata_archive_row *ret, struct strata_error *err);
/* True when archives/name is referenced by the catalog. */
int strata_catalog_archive_known(struct strata_catalog *cat, const char *name, bool *ret,
				 struct strata_error *err);

/* ---- writing a backup (one transaction) ------------------------------- */

/* Find or create a set by name ([A-Za-z0-9._-]{1,63}, else -EINVAL/usage). */
int strata_catalog_set_get(struct strata_catalog *cat, const char *name, bool create,
			   int64_t *ret_id, struct strata_error *err);

/*
 * Begin a backup: BEGIN IMMEDIATE, insert a running snapshot with a unique
 * name made from started_ns and kind.  Fills ret->id and ret->name.
 */
int strata_catalog_backup_begin(struct strata_catalog *cat, int64_t set_id, enum strata_level kind,
				int64_t base, int64_t started_ns, const char *label,
				struct strata_snapshot *ret, struct strata_error *err);

/* The live versions (last IS NULL) of parent's children in the set, sorted by name as above. */
int strata_catalog_live_children(struct strata_catalog *cat, int64_t set_id, int64_t parent,
				 struct strata_entry_list *ret, struct strata_error *err);

/* Find or create node (set, parent, name). */
int strata_catalog_node_get(struct strata_catalog *cat, int64_t set_id, int64_t parent,
			    const char *name, size_t len, int64_t *ret_node, struct strata_error *err);

/* Close a live version: last_snapshot = last. */
int strata_catalog_version_close(struct strata_catalog *cat, int64_t version_id, int64_t last,
				 struct strata_error *err);

/* Insert a new live version; e->node_id and e->first_snapshot must be set. */
int strata_catalog_version_add(struct strata_catalog *cat, const struct strata_entry *e,
			       int64_t *ret_version, struct strata_error *err);

/*
 * Record an archive of the running snapshot; frames in strata_frames_encode
 * format.  When row->id is non-zero the row gets that id: backup uses the
 * snapshot's id (one archive per snapshot), so the version rows written
 * during the walk can point at the archive before it is finished.
 */
int strata_catalog_archive_add(struct strata_catalog *cat, const struct strata_archive_row *row,
			       int64_t *ret_id, struct strata_error *err);

/* Store final stats and state, set finished_ns, COMMIT. */
int strata_catalog_backup_commit(struct strata_catalog *cat, const struct strata_snapshot *snap,
				 struct strata_error *err);
/* ROLLBACK whatever the running backup wrote; safe to call when none is running. */
void strata_catalog_backup_rollback(struct strata_catalog *cat);

/* Rows in the version table (tests assert that an unchanged backup adds none). */
int strata_catalog_count_versions(struct strata_catalog *cat, int64_t *ret, struct strata_error *err);

/* Repository-wide key/value metadata (catalog format, repository id). */
int strata_catalog_meta_get(struct strata_catalog *cat, const char *key, char *buf, size_t size,
			    struct strata_error *err);
int strata_catalog_meta_set(struct strata_catalog *cat, const char *key, const char *value,
			    struct strata_error *err);

/* ---- retention and prune ---- */

/*
 * Why prune keeps or removes a snapshot.  The caller (its retention policy)
 * decides EXPIRED, RETAINED or UNMANAGED; strata_catalog_prune_plan adds the
 * keeps the catalog needs.
 */
enum strata_prune_why {
	STRATA_PRUNE_EXPIRED = 0,   /* remove: older than its retention period */
	STRATA_PRUNE_RETAINED,      /* keep: within its retention period */
	STRATA_PRUNE_UNMANAGED,     /* keep: no policy applies (e.g. a set not configured) */
	STRATA_PRUNE_NEWEST,        /* keep: the newest complete snapshot of its set */
	STRATA_PRUNE_BASE,          /* keep: the base of 'because', which is kept */
	STRATA_PRUNE_DATA,          /* keep: entries it recorded are still live in 'because' */
};

struct strata_prune_item {
	struct strata_snapshot snap;
	bool keep;
	enum strata_prune_why why;
	int64_t because;            /* snapshot id for NEWEST/BASE/DATA reasons, else 0 */
};

/*
 * Complete the caller's keep/remove decisions over 'items' (complete
 * snapshots, e.g. from strata_catalog_snapshot_list; sorted here by id)
 * until they are closed under what the catalog needs:
 *   - the newest snapshot of each set stays (its tree is the live versions);
 *   - the base of a kept snapshot stays, transitively (a differential's
 *     full, an incremental's predecessor);
 *   - a snapshot whose recorded versions (and so its archive) are still
 *     live in a later kept snapshot of its set stays.
 * Only turns removes into keeps.  Reads the catalog; changes nothing.
 */
int strata_catalog_prune_plan(struct strata_catalog *cat, struct strata_prune_item *items, size_t n,
			      struct strata_error *err);

struct strata_prune_result {
	uint64_t snapshots;         /* snapshot rows removed */
	uint64_t versions;          /* version rows removed */
	uint64_t archives;          /* archive rows removed */
	uint64_t nodes;             /* path nodes removed */
	char **archive_names;       /* files to unlink from archives/ after the commit, owned */
	size_t n_archive_names;
};
void strata_prune_result_release(struct strata_prune_result *r);

/*
 * Remove, in one write transaction, the snapshots 'items' does not keep
 * (after strata_catalog_prune_plan, which this runs again inside the
 * transaction), the versions born in them (none is live in a kept snapshot
 * once the plan is closed), their archive rows and the path nodes no
 * version uses any more.  The caller holds the repository write lock and,
 * after a successful return, unlinks ret->archive_names: a crash before the
 * commit changes nothing, a crash after it leaves orphan files that
 * strata_backup_remove_orphans removes.  A prune that removes snapshots
 * increments the meta key "prunes" (strata_catalog_meta_get), which a
 * mount can poll to drop them.  'step', when not NULL, is called
 * with a stage name ("begin", "snapshot", "commit") for tests.
 */
int strata_catalog_prune_apply(struct strata_catalog *cat, struct strata_prune_item *items, size_t n,
			       void (*step)(void *ctx, const char *stage), void *ctx,
			       struct strata_prune_result *ret, struct strata_error *err);

#endif
