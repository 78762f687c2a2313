/*
 * catalog_int.h - the insides of struct strata_catalog, shared by the
 * catalog_*.c files and by nothing else (SQLite's btreeInt.h habit).
 *
 * Schema (version STRATA_CATALOG_SCHEMA, also in PRAGMA user_version and
 * meta('format')).  Space per entry is the constraint (<= 150 bytes per
 * node + version + index entries after a full backup, measured by
 * check_catalog), hence:
 *
 *   "set"(id, name UNIQUE)
 *   snapshot(id, set_id, name UNIQUE, kind, base, started_ns, finished_ns,
 *            state, label, files, files_stored, bytes_read, bytes_stored,
 *            warnings, version_lo, version_hi)
 *       version_lo/hi: the rowid range holding every version whose
 *       first_snapshot is this snapshot (version ids only grow,
 *       AUTOINCREMENT), so diff finds the versions born in (a, b] with
 *       rowid range scans instead of an index on first_snapshot.
 *   archive(id, snapshot, name UNIQUE, file_size, stream_size, sha256,
 *           encrypted, salt, frames)
 *   node(id, set_id, parent NULL for the set root's children, name BLOB)
 *       UNIQUE (parent, name) serves lookups and sorted children; the
 *       root's children are unique through a partial index on
 *       (set_id, name) WHERE parent IS NULL that costs nothing per entry.
 *   attr(id, type, mode, uid, gid, uname, gname, dev): interned, a server
 *       has a few hundred distinct tuples (a dev is one file system); a
 *       version stores one small id instead of eight columns.
 *   version(id AUTOINCREMENT, node, first_snapshot, last_snapshot NULL while
 *           live, attr, size, mtime_ns, ctime_ns, ino, nlink, archive,
 *           data_offset, sha256 NULL unless a regular file)
 *       ctime_ns holds ctime - mtime (often 0, which SQLite stores in no
 *       bytes); the API always sees the real ctime.
 *       Indexes: (node) for the tree queries; (last_snapshot) partial
 *       WHERE last_snapshot IS NOT NULL for diff (only closed versions
 *       pay for it).
 *   version_ext(version PRIMARY KEY, rdev, link, xattrs, acl_access,
 *               acl_default, sparse): the rarely present attributes, one
 *       row only for versions that have any of them.
 *   meta(key PRIMARY KEY, value) WITHOUT ROWID.
 */
#ifndef STRATA_CATALOG_INT_H
#define STRATA_CATALOG_INT_H

#include <sqlite3.h>

#include "catalog.h"

#define STRATA_CATALOG_SCHEMA 1
#define STRATA_CATALOG_FORMAT "strata-catalog"
/* Longest path walk, diff or node_path builds: a loop guard for hostile files. */
#define STRATA_CATALOG_PATH_CAP ((size_t)1 << 20)

enum catalog_stmt {
	ST_SNAP_BY_ID,
	ST_SNAP_BY_NAME,
	ST_SNAP_LATEST,
	ST_SNAP_LATEST_KIND,
	ST_SNAP_LIST_ALL,
	ST_SNAP_LIST_SET,
	ST_SNAP_CHECK,
	ST_GENERATION,
	ST_SET_BY_NAME,
	ST_SET_INSERT,
	ST_SETS_WITH_SNAPS,
	ST_CHILDREN_ROOT,
	ST_CHILDREN,
	ST_LOOKUP_ROOT,
	ST_LOOKUP,
	ST_NODE_ENTRY,
	ST_VERSION_ENTRY,
	ST_LIVE_ROOT,
	ST_LIVE,
	ST_NODE_FIND_ROOT,
	ST_NODE_FIND,
	ST_NODE_INSERT,
	ST_NODE_BY_ID,
	ST_NODE_MAX,
	ST_ATTR_FIND,
	ST_ATTR_INSERT,
	ST_VERSION_INSERT,
	ST_VEXT_INSERT,
	ST_VERSION_CLOSE,
	ST_SNAP_NAME_TAKEN,
	ST_SNAP_INSERT,
	ST_SNAP_FINISH,
	ST_SNAP_RANGE,
	ST_ARCHIVE_INSERT,
	ST_ARCHIVE_BY_ID,
	ST_ARCHIVE_BY_NAME,
	ST_ARCHIVES_ALL,
	ST_ARCHIVES_SNAP,
	ST_COUNT_VERSIONS,
	ST_META_GET,
	ST_META_SET,
	ST_DIFF_BORN,
	ST_DIFF_DIED,
	ST_BEGIN,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_MAX,
};

/* Column order of every entry query (ENTRY_COLS in catalog_read.c). */
enum catalog_entry_col {
	EC_ID, EC_NODE, EC_PARENT, EC_NAME, EC_FIRST, EC_LAST, EC_TYPE, EC_MODE,
	EC_UID, EC_GID, EC_UNAME, EC_GNAME, EC_SIZE, EC_MTIME, EC_CTIME, EC_DEV,
	EC_INO, EC_NLINK, EC_RDEV, EC_LINK, EC_XATTRS, EC_ACL_ACCESS,
	EC_ACL_DEFAULT, EC_SPARSE, EC_ARCHIVE, EC_DATA_OFFSET, EC_SHA256,
	EC_NCOLS
};

/* The last interned attr tuple, so a backup rarely queries attr. */
struct catalog_attr_cache {
	bool valid;
	int64_t id;
	char type;
	uint32_t mode, uid, gid;
	uint64_t dev;
	bool has_uname, has_gname;
	char uname[64], gname[64];
};

struct strata_catalog {
	sqlite3 *db;
	char *path;
	bool readonly;
	sqlite3_stmt *st[ST_MAX];
	/* The running backup (BEGIN IMMEDIATE .. COMMIT/ROLLBACK). */
	bool in_backup;
	int64_t run_snap;
	int64_t run_lo, run_hi;     /* version ids born in run_snap; lo > hi when none */
	int64_t run_node_floor;     /* node ids above it were added by the running backup */
	struct catalog_attr_cache attr;
	int64_t held_since;         /* strata_catalog_hold's transaction began, or 0 */
};

/* catalog.c */
int catalog_sql_error(struct strata_catalog *cat, int rc, struct strata_error *err,
		      const char *what);
int catalog_stmt(struct strata_catalog *cat, enum catalog_stmt id, sqlite3_stmt **ret,
		 struct strata_error *err);
void catalog_stmt_done(struct strata_catalog *cat, enum catalog_stmt id);
/* Run statement 'id' (no parameters) and read its one int64; 'what' names
 * the failure ("cannot count versions"). */
int catalog_stmt_int64(struct strata_catalog *cat, enum catalog_stmt id, int64_t *ret,
		       const char *what, struct strata_error *err);
int catalog_corrupt(struct strata_catalog *cat, struct strata_error *err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* catalog_read.c */
struct catalog_entries {            /* builder for a strata_entry_list */
	struct strata_entry *v;
	size_t n, alloc;
	size_t (*ofs)[8];           /* per entry: offsets of the 8 pointers, SIZE_MAX = NULL */
	struct strata_buf arena;
};
int catalog_entries_add_row(struct strata_catalog *cat, struct catalog_entries *b,
			    sqlite3_stmt *st, struct strata_error *err);
void catalog_entries_finish(struct catalog_entries *b, struct strata_entry_list *ret);
void catalog_entries_release(struct catalog_entries *b);
int catalog_snapshot_row(struct strata_catalog *cat, sqlite3_stmt *st, struct strata_snapshot *s,
			 struct strata_error *err);
int catalog_query_entries(struct strata_catalog *cat, enum catalog_stmt id, sqlite3_stmt *st,
			  struct strata_entry_list *ret, struct strata_error *err);
bool catalog_name_is_valid(const void *name, size_t len);

#endif
