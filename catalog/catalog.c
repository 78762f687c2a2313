/*
 * catalog.c - opening, creating and checking the SQLite catalog, SQLite
 * error translation, the prepared statement cache and repository metadata.
 * The schema and its reasons are described in catalog_int.h; the queries
 * live in catalog_read.c and catalog_write.c.
 *
 * Every statement is prepared once per handle (SQLITE_PREPARE_PERSISTENT)
 * and reset after each use, so no statement keeps a read transaction open
 * between calls: a long-lived read-only handle (the mount) sees each new
 * commit on its next query.
 */
#include "catalog_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Columns of every entry query, in enum catalog_entry_col order. */
#define ENTRY_COLS \
	"v.id, v.node, n.parent, n.name, v.first_snapshot, v.last_snapshot, " \
	"a.type, a.mode, a.uid, a.gid, a.uname, a.gname, v.size, v.mtime_ns, " \
	"v.ctime_ns, a.dev, v.ino, v.nlink, x.rdev, x.link, x.xattrs, " \
	"x.acl_access, x.acl_default, x.sparse, v.archive, v.data_offset, v.sha256"
#define ENTRY_JOINS \
	" LEFT JOIN attr a ON a.id = v.attr LEFT JOIN version_ext x ON x.version = v.id"
#define LIVE_AT(s) \
	" v.first_snapshot <= " s " AND (v.last_snapshot IS NULL OR v.last_snapshot >= " s ")"
#define SNAP_COLS \
	"SELECT s.id, st.name, s.set_id, s.name, s.kind, s.base, s.started_ns, " \
	"s.finished_ns, s.state, s.label, s.files, s.files_stored, s.bytes_read, " \
	"s.bytes_stored, s.warnings FROM snapshot s JOIN \"set\" st ON st.id = s.set_id"
#define ARCH_COLS \
	"SELECT a.id, a.snapshot, a.name, a.file_size, a.stream_size, a.sha256, " \
	"a.encrypted, a.salt, a.frames FROM archive a"
#define COMPLETE " s.state IN (1, 2)"
/*
 * Snapshot ?2 is a complete one of set ?1: part of a lookup's own query, so
 * a lookup is one statement (SQLite evaluates the constant subquery once).
 */
#define VISIBLE " AND EXISTS (SELECT 1 FROM snapshot s WHERE s.id = ?2 AND s.set_id = ?1 AND" \
	COMPLETE ")"

static const char *const stmt_sql[ST_MAX] = {
	[ST_SNAP_BY_ID] = SNAP_COLS " WHERE s.id = ?1 AND" COMPLETE,
	[ST_SNAP_BY_NAME] = SNAP_COLS " WHERE s.name = ?1 AND" COMPLETE,
	[ST_SNAP_LATEST] = SNAP_COLS " WHERE s.set_id = ?1 AND" COMPLETE
		" ORDER BY s.id DESC LIMIT 1",
	[ST_SNAP_LATEST_KIND] = SNAP_COLS " WHERE s.set_id = ?1 AND s.kind = ?2 AND" COMPLETE
		" ORDER BY s.id DESC LIMIT 1",
	[ST_SNAP_LIST_ALL] = SNAP_COLS " WHERE" COMPLETE " ORDER BY s.id",
	[ST_SNAP_LIST_SET] = SNAP_COLS " WHERE st.name = ?1 AND" COMPLETE " ORDER BY s.id",
	[ST_SNAP_CHECK] = "SELECT set_id, state FROM snapshot WHERE id = ?1",
	/* the newest id moves with every new snapshot, the count with every
	 * removed one (a prune leaves the newest) */
	[ST_GENERATION] = "SELECT coalesce(max(s.id), 0) * 16777216 + (count(*) & 16777215)"
		" FROM snapshot s WHERE" COMPLETE,
	[ST_SET_BY_NAME] = "SELECT id FROM \"set\" WHERE name = ?1",
	[ST_SET_INSERT] = "INSERT INTO \"set\"(name) VALUES (?1)",
	[ST_SETS_WITH_SNAPS] = "SELECT DISTINCT s.set_id FROM snapshot s WHERE" COMPLETE
		" LIMIT 2",
	[ST_CHILDREN_ROOT] = "SELECT " ENTRY_COLS " FROM node n CROSS JOIN version v"
		ENTRY_JOINS " WHERE n.parent IS NULL AND n.set_id = ?1 AND v.node = n.id AND"
		LIVE_AT("?2") " ORDER BY n.name",
	[ST_CHILDREN] = "SELECT " ENTRY_COLS " FROM node n CROSS JOIN version v"
		ENTRY_JOINS " WHERE n.parent = ?3 AND n.set_id = ?1 AND v.node = n.id AND"
		LIVE_AT("?2") " ORDER BY n.name",
	[ST_LOOKUP_ROOT] = "SELECT " ENTRY_COLS " FROM node n CROSS JOIN version v"
		ENTRY_JOINS " WHERE n.parent IS NULL AND n.set_id = ?1 AND n.name = ?4"
		" AND v.node = n.id AND" LIVE_AT("?2") VISIBLE,
	[ST_LOOKUP] = "SELECT " ENTRY_COLS " FROM node n CROSS JOIN version v"
		ENTRY_JOINS " WHERE n.parent = ?3 AND n.name = ?4 AND n.set_id = ?1"
		" AND v.node = n.id AND" LIVE_AT("?2") VISIBLE,
	/* Visibility (complete snapshot of the node's set) is part of the query. */
	[ST_NODE_ENTRY] = "SELECT " ENTRY_COLS " FROM node n CROSS JOIN version v"
		ENTRY_JOINS " WHERE n.id = ?1 AND v.node = n.id AND" LIVE_AT("?2")
		" AND n.set_id = (SELECT s.set_id FROM snapshot s WHERE s.id = ?2 AND"
		COMPLETE ")",
	[ST_VERSION_ENTRY] = "SELECT " ENTRY_COLS " FROM version v CROSS JOIN node n"
		ENTRY_JOINS " WHERE v.id = ?1 AND n.id = v.node AND EXISTS (SELECT 1"
		" FROM snapshot s WHERE s.set_id = n.set_id AND" COMPLETE " AND"
		" s.id >= v.first_snapshot AND (v.last_snapshot IS NULL OR"
		" s.id <= v.last_snapshot))",
	[ST_LIVE_ROOT] = "SELECT " ENTRY_COLS " FROM node n CROSS JOIN version v"
		ENTRY_JOINS " WHERE n.parent IS NULL AND n.set_id = ?1 AND v.node = n.id"
		" AND v.last_snapshot IS NULL ORDER BY n.name",
	[ST_LIVE] = "SELECT " ENTRY_COLS " FROM node n CROSS JOIN version v"
		ENTRY_JOINS " WHERE n.parent = ?2 AND n.set_id = ?1 AND v.node = n.id"
		" AND v.last_snapshot IS NULL ORDER BY n.name",
	[ST_NODE_FIND_ROOT] = "SELECT id FROM node WHERE parent IS NULL AND set_id = ?1"
		" AND name = ?2",
	[ST_NODE_FIND] = "SELECT id, set_id FROM node WHERE parent = ?1 AND name = ?2",
	[ST_NODE_INSERT] = "INSERT INTO node(set_id, parent, name) VALUES (?1, ?2, ?3)",
	[ST_NODE_MAX] = "SELECT coalesce(max(id), 0) FROM node",
	[ST_NODE_BY_ID] = "SELECT set_id, parent, name FROM node WHERE id = ?1",
	[ST_ATTR_FIND] = "SELECT id FROM attr WHERE mode = ?2 AND uid = ?3 AND gid = ?4"
		" AND type = ?1 AND uname IS ?5 AND gname IS ?6 AND dev = ?7",
	[ST_ATTR_INSERT] = "INSERT INTO attr(type, mode, uid, gid, uname, gname, dev)"
		" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
	[ST_VERSION_INSERT] = "INSERT INTO version(node, first_snapshot, attr, size,"
		" mtime_ns, ctime_ns, ino, nlink, archive, data_offset, sha256)"
		" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
	[ST_VEXT_INSERT] = "INSERT INTO version_ext(version, rdev, link, xattrs,"
		" acl_access, acl_default, sparse) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
	[ST_VERSION_CLOSE] = "UPDATE version SET last_snapshot = ?2"
		" WHERE id = ?1 AND last_snapshot IS NULL",
	[ST_SNAP_NAME_TAKEN] = "SELECT 1 FROM snapshot WHERE name = ?1",
	[ST_SNAP_INSERT] = "INSERT INTO snapshot(set_id, name, kind, base, started_ns,"
		" state, label) VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6)",
	[ST_SNAP_FINISH] = "UPDATE snapshot SET finished_ns = ?2, state = ?3, files = ?4,"
		" files_stored = ?5, bytes_read = ?6, bytes_stored = ?7, warnings = ?8,"
		" version_lo = min(coalesce(version_lo, ?9), ?9),"
		" version_hi = max(coalesce(version_hi, ?10), ?10) WHERE id = ?1",
	[ST_SNAP_RANGE] = "UPDATE snapshot SET version_lo = min(coalesce(version_lo, ?2), ?2),"
		" version_hi = max(coalesce(version_hi, ?2), ?2) WHERE id = ?1",
	[ST_ARCHIVE_INSERT] = "INSERT INTO archive(id, snapshot, name, file_size, stream_size,"
		" sha256, encrypted, salt, frames) VALUES (?9, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
	[ST_ARCHIVE_BY_ID] = ARCH_COLS " WHERE a.id = ?1",
	[ST_ARCHIVE_BY_NAME] = "SELECT 1 FROM archive WHERE name = ?1",
	[ST_ARCHIVES_ALL] = ARCH_COLS " ORDER BY a.id",
	/* Versions of other sets live at the same id point into other sets'
	 * archives, so filtering archives by set avoids joining node. */
	[ST_ARCHIVES_SNAP] = ARCH_COLS " WHERE a.snapshot IN (SELECT id FROM snapshot WHERE"
		" set_id = (SELECT set_id FROM snapshot WHERE id = ?1)) AND a.id IN"
		" (SELECT v.archive FROM version v WHERE v.archive > 0 AND" LIVE_AT("?1")
		") ORDER BY a.id",
	[ST_COUNT_VERSIONS] = "SELECT count(*) FROM version",
	[ST_META_GET] = "SELECT value FROM meta WHERE key = ?1",
	[ST_META_SET] = "INSERT OR REPLACE INTO meta(key, value) VALUES (?1, ?2)",
	/* Versions born in (a, b]: rowid ranges of the snapshots in between. */
	[ST_DIFF_BORN] = "SELECT " ENTRY_COLS " FROM snapshot s CROSS JOIN version v"
		" CROSS JOIN node n" ENTRY_JOINS " WHERE s.set_id = ?1 AND s.id > ?2"
		" AND s.id <= ?3 AND v.id BETWEEN s.version_lo AND s.version_hi"
		" AND +v.first_snapshot = s.id AND n.id = v.node",
	/* Versions closed in [a, b): the partial index on last_snapshot. */
	[ST_DIFF_DIED] = "SELECT " ENTRY_COLS " FROM version v CROSS JOIN node n"
		ENTRY_JOINS " WHERE v.last_snapshot >= ?2 AND v.last_snapshot < ?3"
		" AND n.id = v.node AND n.set_id = ?1",
	[ST_BEGIN] = "BEGIN IMMEDIATE",
	[ST_COMMIT] = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
};

static const char schema_sql[] =
	"CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;"
	"CREATE TABLE \"set\"(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);"
	"CREATE TABLE snapshot(id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" set_id INTEGER NOT NULL, name TEXT NOT NULL UNIQUE, kind INTEGER NOT NULL,"
	" base INTEGER NOT NULL DEFAULT 0, started_ns INTEGER NOT NULL,"
	" finished_ns INTEGER NOT NULL DEFAULT 0, state INTEGER NOT NULL DEFAULT 0,"
	" label TEXT NOT NULL DEFAULT '', files INTEGER NOT NULL DEFAULT 0,"
	" files_stored INTEGER NOT NULL DEFAULT 0, bytes_read INTEGER NOT NULL DEFAULT 0,"
	" bytes_stored INTEGER NOT NULL DEFAULT 0, warnings INTEGER NOT NULL DEFAULT 0,"
	" version_lo INTEGER, version_hi INTEGER);"
	"CREATE TABLE archive(id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" snapshot INTEGER NOT NULL, name TEXT NOT NULL UNIQUE,"
	" file_size INTEGER NOT NULL, stream_size INTEGER NOT NULL, sha256 BLOB,"
	" encrypted INTEGER NOT NULL DEFAULT 0, salt BLOB, frames BLOB);"
	"CREATE TABLE node(id INTEGER PRIMARY KEY AUTOINCREMENT, set_id INTEGER NOT NULL,"
	" parent INTEGER, name BLOB NOT NULL);"
	"CREATE UNIQUE INDEX node_key ON node(parent, name);"
	"CREATE UNIQUE INDEX node_root ON node(set_id, name) WHERE parent IS NULL;"
	"CREATE TABLE attr(id INTEGER PRIMARY KEY, type INTEGER NOT NULL,"
	" mode INTEGER NOT NULL, uid INTEGER NOT NULL, gid INTEGER NOT NULL,"
	" uname TEXT, gname TEXT, dev INTEGER NOT NULL);"
	"CREATE INDEX attr_key ON attr(mode, uid, gid);"
	"CREATE TABLE version(id INTEGER PRIMARY KEY AUTOINCREMENT, node INTEGER NOT NULL,"
	" first_snapshot INTEGER NOT NULL, last_snapshot INTEGER, attr INTEGER NOT NULL,"
	" size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL,"
	" ino INTEGER NOT NULL, nlink INTEGER NOT NULL,"
	" archive INTEGER, data_offset INTEGER, sha256 BLOB);"
	"CREATE INDEX version_node ON version(node);"
	"CREATE INDEX version_last ON version(last_snapshot) WHERE last_snapshot IS NOT NULL;"
	"CREATE TABLE version_ext(version INTEGER PRIMARY KEY, rdev INTEGER, link BLOB,"
	" xattrs BLOB, acl_access TEXT, acl_default TEXT, sparse BLOB);";

/* What open and check insist on finding in sqlite_schema. */
static const char *const schema_objects[][2] = {
	{ "table", "meta" }, { "table", "set" }, { "table", "snapshot" },
	{ "table", "archive" }, { "table", "node" }, { "table", "attr" },
	{ "table", "version" }, { "table", "version_ext" },
	{ "index", "node_key" }, { "index", "node_root" }, { "index", "attr_key" },
	{ "index", "version_node" }, { "index", "version_last" },
};

static int errno_of(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_CORRUPT: case SQLITE_NOTADB: return -EBADMSG;
	case SQLITE_BUSY: case SQLITE_LOCKED: return -EAGAIN;
	case SQLITE_NOMEM: return -ENOMEM;
	case SQLITE_FULL: return -ENOSPC;
	case SQLITE_READONLY: return -EROFS;
	case SQLITE_PERM: case SQLITE_AUTH: return -EACCES;
	case SQLITE_CANTOPEN: return -ENOENT;
	case SQLITE_TOOBIG: return -E2BIG;
	case SQLITE_CONSTRAINT: return -EEXIST;
	default: return -EIO;
	}
}

/*
 * Copy SQLite's message at once (it keeps only the latest one): corrupt
 * for SQLITE_CORRUPT/NOTADB, locked for SQLITE_BUSY/LOCKED, io otherwise.
 */
int catalog_sql_error(struct strata_catalog *cat, int rc, struct strata_error *err,
		      const char *what)
{
	const char *msg = cat && cat->db ? sqlite3_errmsg(cat->db) : sqlite3_errstr(rc);
	const char *path = cat && cat->path ? cat->path : "?";
	enum strata_error_kind kind = STRATA_ERR_IO;
	int code = errno_of(rc);

	if (code == -EBADMSG)
		kind = STRATA_ERR_CORRUPT;
	else if (code == -EAGAIN)
		kind = STRATA_ERR_LOCKED;
	if (what)
		return strata_error_set(err, code, kind, "catalog '%s': %s: %s", path, what, msg);
	return strata_error_set(err, code, kind, "catalog '%s': %s", path, msg);
}

int catalog_corrupt(struct strata_catalog *cat, struct strata_error *err, const char *fmt, ...)
{
	char what[STRATA_ERROR_MSG_MAX / 2];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	return strata_error_set(err, -EBADMSG, STRATA_ERR_CORRUPT, "catalog '%s': %s",
				cat && cat->path ? cat->path : "?", what);
}

int catalog_stmt(struct strata_catalog *cat, enum catalog_stmt id, sqlite3_stmt **ret,
		 struct strata_error *err)
{
	int rc;

	if (!cat->st[id]) {
		rc = sqlite3_prepare_v3(cat->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
					&cat->st[id], NULL);
		if (rc != SQLITE_OK) {
			cat->st[id] = NULL;
			/* Our SQL is fixed: a table or column is missing or wrong. */
			if ((rc & 0xff) == SQLITE_ERROR)
				return catalog_corrupt(cat, err, "damaged schema: %s",
						       sqlite3_errmsg(cat->db));
			return catalog_sql_error(cat, rc, err, "cannot prepare query");
		}
	} else {
		sqlite3_reset(cat->st[id]);
		sqlite3_clear_bindings(cat->st[id]);
	}
	*ret = cat->st[id];
	return 0;
}

void catalog_stmt_done(struct strata_catalog *cat, enum catalog_stmt id)
{
	if (cat->st[id]) {
		sqlite3_reset(cat->st[id]);
		sqlite3_clear_bindings(cat->st[id]);
	}
}

/* Run SQL without results (pragmas, schema). */
static int exec(struct strata_catalog *cat, const char *sql, struct strata_error *err,
		const char *what)
{
	int rc = sqlite3_exec(cat->db, sql, NULL, NULL, NULL);

	if (rc != SQLITE_OK)
		return catalog_sql_error(cat, rc, err, what);
	return 0;
}

/* One integer from a one-row query; *ret untouched when no row. */
static int query_int(struct strata_catalog *cat, const char *sql, int64_t *ret, bool *found,
		     struct strata_error *err)
{
	sqlite3_stmt *st = NULL;
	int rc, r = 0;

	rc = sqlite3_prepare_v2(cat->db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK) {
		r = catalog_sql_error(cat, rc, err, "cannot read schema");
		goto out;
	}
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*ret = sqlite3_column_int64(st, 0);
		if (found)
			*found = true;
	} else if (rc == SQLITE_DONE) {
		if (found)
			*found = false;
	} else {
		r = catalog_sql_error(cat, rc, err, "cannot read schema");
	}
out:
	sqlite3_finalize(st);
	return r;
}

static int schema_create(struct strata_catalog *cat, struct strata_error *err)
{
	char sql[256];
	int r;

	r = exec(cat, "BEGIN IMMEDIATE", err, "cannot create schema");
	if (r < 0)
		return r;
	r = exec(cat, schema_sql, err, "cannot create schema");
	if (r < 0)
		goto out;
	snprintf(sql, sizeof(sql),
		 "INSERT INTO meta(key, value) VALUES ('format', '%s'), ('schema', '%d');"
		 "PRAGMA user_version = %d;",
		 STRATA_CATALOG_FORMAT, STRATA_CATALOG_SCHEMA, STRATA_CATALOG_SCHEMA);
	r = exec(cat, sql, err, "cannot create schema");
	if (r < 0)
		goto out;
	r = exec(cat, "COMMIT", err, "cannot create schema");
out:
	if (r < 0)
		sqlite3_exec(cat->db, "ROLLBACK", NULL, NULL, NULL);
	return r;
}

/* The tables and indexes we rely on exist with the right type (not views). */
static int schema_verify(struct strata_catalog *cat, struct strata_error *err)
{
	sqlite3_stmt *st = NULL;
	char fmt[64] = "";
	int rc, r = 0;

	rc = sqlite3_prepare_v2(cat->db, "SELECT type FROM sqlite_schema WHERE name = ?1", -1,
				&st, NULL);
	if (rc != SQLITE_OK) {
		r = catalog_sql_error(cat, rc, err, "cannot read schema");
		goto out;
	}
	for (size_t i = 0; i < sizeof(schema_objects) / sizeof(schema_objects[0]); i++) {
		const unsigned char *type;

		sqlite3_reset(st);
		sqlite3_bind_text(st, 1, schema_objects[i][1], -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
		if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
			r = catalog_sql_error(cat, rc, err, "cannot read schema");
			goto out;
		}
		type = rc == SQLITE_ROW ? sqlite3_column_text(st, 0) : NULL;
		if (!type || strcmp((const char *)type, schema_objects[i][0]) != 0) {
			r = catalog_corrupt(cat, err, "not a strata catalog: %s '%s' missing",
					    schema_objects[i][0], schema_objects[i][1]);
			goto out;
		}
	}
	sqlite3_finalize(st);
	st = NULL;
	rc = sqlite3_prepare_v2(cat->db, "SELECT value FROM meta WHERE key = 'format'", -1,
				&st, NULL);
	if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		const unsigned char *v = sqlite3_column_text(st, 0);

		if (v)
			snprintf(fmt, sizeof(fmt), "%s", (const char *)v);
	} else if (rc != SQLITE_DONE) {
		r = catalog_sql_error(cat, rc, err, "cannot read schema");
		goto out;
	}
	if (strcmp(fmt, STRATA_CATALOG_FORMAT) != 0)
		r = catalog_corrupt(cat, err, "not a strata catalog: no format mark");
out:
	sqlite3_finalize(st);
	return r;
}

/*
 * The last writer to close keeps catalog.db-wal and -shm instead of
 * deleting them, and truncates the WAL to nothing after its checkpoint
 * (journal_size_limit 0): catalog.db alone is still the whole catalog, but
 * the next command neither creates two files nor later unlinks them (an
 * hourly `strata run` spent ~0.8 ms on that).  Best effort.
 */
static void keep_wal(struct strata_catalog *cat)
{
	int on = 1;

	sqlite3_file_control(cat->db, "main", SQLITE_FCNTL_PERSIST_WAL, &on);
}

static int catalog_setup(struct strata_catalog *cat, const struct strata_catalog_options *o,
			 struct strata_error *err)
{
	int64_t version = 0, nobj = 0;
	int r;

	/* Defence against hostile files: no functions with side effects from the schema. */
	sqlite3_db_config(cat->db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);
	sqlite3_db_config(cat->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
	/* Plans must come from our indexes: never a hidden full-table build. */
	r = exec(cat, "PRAGMA automatic_index = OFF", err, "cannot configure");
	if (r < 0)
		return r;
	r = query_int(cat, "PRAGMA user_version", &version, NULL, err);
	if (r < 0)
		return r;
	r = query_int(cat, "SELECT count(*) FROM sqlite_schema", &nobj, NULL, err);
	if (r < 0)
		return r;
	if (version == 0 && nobj == 0 && o->create && !cat->readonly) {
		r = exec(cat, "PRAGMA journal_mode = WAL", err, "cannot enable WAL");
		if (r < 0)
			return r;
		r = schema_create(cat, err);
		if (r < 0)
			return r;
		version = STRATA_CATALOG_SCHEMA;
	}
	if (version == 0)
		return catalog_corrupt(cat, err, "not a strata catalog");
	if (version > STRATA_CATALOG_SCHEMA || version < 0)
		return catalog_corrupt(cat, err, "schema version %lld is not supported (newest %d)",
				       (long long)version, STRATA_CATALOG_SCHEMA);
	/* NEEDSWORK: migrations go here once STRATA_CATALOG_SCHEMA > 1. */
	r = schema_verify(cat, err);
	if (r < 0)
		return r;
	if (!cat->readonly) {
		r = exec(cat, "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;"
			 "PRAGMA foreign_keys = OFF; PRAGMA cache_size = -16384;"
			 "PRAGMA journal_size_limit = 0;", err, "cannot configure");
		if (r < 0)
			return r;
		keep_wal(cat);
	}
	return 0;
}

int strata_catalog_open(const char *path, const struct strata_catalog_options *opts,
			struct strata_catalog **ret, struct strata_error *err)
{
	static const struct strata_catalog_options defaults;
	const struct strata_catalog_options *o = opts ? opts : &defaults;
	struct strata_catalog *cat = NULL;
	struct stat sb;
	int rc, r = 0;

	cat = calloc(1, sizeof(*cat));
	if (!cat || !(cat->path = strdup(path))) {
		r = strata_error_errno(err, ENOMEM, "cannot open catalog '%s'", path);
		goto out;
	}
	cat->readonly = o->readonly;
	if (stat(path, &sb) < 0) {
		int fd;

		if (errno != ENOENT || !o->create || o->readonly) {
			if (errno == ENOENT)
				r = strata_error_set(err, -ENOENT, STRATA_ERR_NOT_FOUND,
						     "catalog '%s' does not exist", path);
			else
				r = strata_error_errno(err, errno, "cannot open catalog '%s'", path);
			goto out;
		}
		fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fd < 0 || fchmod(fd, 0600) < 0) {
			r = strata_error_errno(err, errno, "cannot create catalog '%s'", path);
			if (fd >= 0)
				close(fd);
			goto out;
		}
		close(fd);
	} else if (!S_ISREG(sb.st_mode)) {
		r = strata_error_set(err, -EBADMSG, STRATA_ERR_CORRUPT,
				     "catalog '%s': not a regular file", path);
		goto out;
	}
	rc = sqlite3_open_v2(path, &cat->db,
			     (o->readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE) |
			     SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW, NULL);
	if (rc != SQLITE_OK) {
		r = catalog_sql_error(cat, rc, err, "cannot open");
		goto out;
	}
	sqlite3_extended_result_codes(cat->db, 1);
	sqlite3_busy_timeout(cat->db, o->busy_timeout_ms > 0 ? o->busy_timeout_ms : 10000);
	r = catalog_setup(cat, o, err);
out:
	if (r < 0) {
		strata_catalog_close(cat);
		return r;
	}
	*ret = cat;
	return 0;
}

int strata_catalog_hold(struct strata_catalog *cat, int64_t not_before_ns, struct strata_error *err)
{
	int64_t now = strata_now_ns();

	if (cat->in_backup || (cat->held_since && cat->held_since >= not_before_ns))
		return 0;
	strata_catalog_release(cat, INT64_MAX);
	if (!sqlite3_get_autocommit(cat->db))
		return strata_error_set(err, -EBUSY, STRATA_ERR_INTERNAL,
					"catalog '%s': a transaction is open", cat->path);
	/* deferred: the read transaction itself starts with the next query */
	if (exec(cat, "BEGIN", err, "cannot begin a read transaction") < 0)
		return -EIO;
	cat->held_since = now;
	return 0;
}

void strata_catalog_release(struct strata_catalog *cat, int64_t not_before_ns)
{
	if (!cat || cat->in_backup || !cat->held_since || cat->held_since >= not_before_ns)
		return;
	cat->held_since = 0;
	if (!sqlite3_get_autocommit(cat->db) &&
	    sqlite3_exec(cat->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		(void)sqlite3_exec(cat->db, "ROLLBACK", NULL, NULL, NULL);
}

void strata_catalog_close(struct strata_catalog *cat)
{
	if (!cat)
		return;
	strata_catalog_release(cat, INT64_MAX);
	if (cat->in_backup)
		strata_catalog_backup_rollback(cat);
	for (int i = 0; i < ST_MAX; i++)
		sqlite3_finalize(cat->st[i]);
	sqlite3_close_v2(cat->db);
	free(cat->path);
	free(cat);
}

int strata_catalog_check(struct strata_catalog *cat, struct strata_error *err)
{
	sqlite3_stmt *st = NULL;
	int rc, r;

	rc = sqlite3_prepare_v2(cat->db, "PRAGMA integrity_check", -1, &st, NULL);
	if (rc != SQLITE_OK) {
		r = catalog_sql_error(cat, rc, err, "integrity check");
		goto out;
	}
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const unsigned char *v = sqlite3_column_text(st, 0);

		if (!v || strcmp((const char *)v, "ok") != 0) {
			r = catalog_corrupt(cat, err, "integrity check: %s",
					    v ? (const char *)v : "?");
			goto out;
		}
	} else if (rc != SQLITE_DONE) {
		r = catalog_sql_error(cat, rc, err, "integrity check");
		goto out;
	}
	sqlite3_finalize(st);
	st = NULL;
	r = schema_verify(cat, err);
	if (r < 0)
		goto out;
	/* Referential checks the schema does not enforce (foreign keys are off). */
	static const char *const orphans[][3] = {
		{ "SELECT v.id FROM version v LEFT JOIN node n ON n.id = v.node"
		  " WHERE n.id IS NULL LIMIT 1", "version", "no such node" },
		{ "SELECT v.id FROM version v LEFT JOIN attr a ON a.id = v.attr"
		  " WHERE a.id IS NULL LIMIT 1", "version", "no such attributes" },
		{ "SELECT n.id FROM node n LEFT JOIN node p ON p.id = n.parent"
		  " WHERE n.parent IS NOT NULL AND (p.id IS NULL OR p.set_id <> n.set_id)"
		  " LIMIT 1", "node", "bad parent" },
		{ "SELECT s.id FROM snapshot s LEFT JOIN \"set\" t ON t.id = s.set_id"
		  " WHERE t.id IS NULL LIMIT 1", "snapshot", "no such set" },
		{ "SELECT v.id FROM version v WHERE v.last_snapshot < v.first_snapshot"
		  " LIMIT 1", "version", "closed before it began" },
	};
	for (size_t i = 0; i < sizeof(orphans) / sizeof(orphans[0]); i++) {
		int64_t id = 0;
		bool found = false;

		r = query_int(cat, orphans[i][0], &id, &found, err);
		if (r < 0)
			goto out;
		if (found) {
			r = catalog_corrupt(cat, err, "%s %lld: %s", orphans[i][1],
					    (long long)id, orphans[i][2]);
			goto out;
		}
	}
	rc = sqlite3_prepare_v2(cat->db, "SELECT id, name FROM node", -1, &st, NULL);
	if (rc != SQLITE_OK) {
		r = catalog_sql_error(cat, rc, err, "integrity check");
		goto out;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const void *name = sqlite3_column_blob(st, 1);
		size_t len = (size_t)sqlite3_column_bytes(st, 1);

		if (!catalog_name_is_valid(name, len)) {
			r = catalog_corrupt(cat, err, "node %lld: invalid name",
					    (long long)sqlite3_column_int64(st, 0));
			goto out;
		}
	}
	if (rc != SQLITE_DONE)
		r = catalog_sql_error(cat, rc, err, "integrity check");
out:
	sqlite3_finalize(st);
	return r;
}

int catalog_stmt_int64(struct strata_catalog *cat, enum catalog_stmt id, int64_t *ret,
		       const char *what, struct strata_error *err)
{
	sqlite3_stmt *st;
	int rc, r;

	r = catalog_stmt(cat, id, &st, err);
	if (r < 0)
		return r;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*ret = sqlite3_column_int64(st, 0);
	else
		r = catalog_sql_error(cat, rc, err, what);
	catalog_stmt_done(cat, id);
	return r;
}

int strata_catalog_count_versions(struct strata_catalog *cat, int64_t *ret,
				  struct strata_error *err)
{
	return catalog_stmt_int64(cat, ST_COUNT_VERSIONS, ret, "cannot count versions", err);
}

int strata_catalog_meta_get(struct strata_catalog *cat, const char *key, char *buf, size_t size,
			    struct strata_error *err)
{
	sqlite3_stmt *st;
	int rc, r;

	r = catalog_stmt(cat, ST_META_GET, &st, err);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const unsigned char *v = sqlite3_column_text(st, 0);
		size_t n = (size_t)sqlite3_column_bytes(st, 0);

		if (!v)
			v = (const unsigned char *)"";
		if (n >= size)
			r = strata_error_set(err, -E2BIG, STRATA_ERR_INTERNAL,
					     "catalog '%s': meta '%s' is too long", cat->path, key);
		else
			memcpy(buf, v, n + 1);
	} else if (rc == SQLITE_DONE) {
		r = strata_error_set(err, -ENOENT, STRATA_ERR_NOT_FOUND,
				     "catalog '%s': no meta '%s'", cat->path, key);
	} else {
		r = catalog_sql_error(cat, rc, err, "cannot read meta");
	}
	catalog_stmt_done(cat, ST_META_GET);
	return r;
}

int strata_catalog_meta_set(struct strata_catalog *cat, const char *key, const char *value,
			    struct strata_error *err)
{
	sqlite3_stmt *st;
	int rc, r;

	r = catalog_stmt(cat, ST_META_SET, &st, err);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		r = catalog_sql_error(cat, rc, err, "cannot write meta");
	catalog_stmt_done(cat, ST_META_SET);
	return r;
}

const char *strata_level_name(enum strata_level level)
{
	switch (level) {
	case STRATA_LEVEL_FULL: return "full";
	case STRATA_LEVEL_INCREMENTAL: return "incremental";
	case STRATA_LEVEL_DIFFERENTIAL: return "differential";
	}
	return "unknown";
}

int strata_level_parse(const char *s, enum strata_level *ret)
{
	static const enum strata_level all[] = {
		STRATA_LEVEL_FULL, STRATA_LEVEL_INCREMENTAL, STRATA_LEVEL_DIFFERENTIAL,
	};

	for (size_t i = 0; s && i < sizeof(all) / sizeof(all[0]); i++) {
		if (strcmp(s, strata_level_name(all[i])) == 0) {
			*ret = all[i];
			return 0;
		}
	}
	return -EINVAL;
}

const char *strata_snapshot_state_name(enum strata_snapshot_state s)
{
	switch (s) {
	case STRATA_SNAP_RUNNING: return "running";
	case STRATA_SNAP_COMPLETE: return "complete";
	case STRATA_SNAP_WARNING: return "warning";
	}
	return "unknown";
}

int strata_xattrs_next(const uint8_t *blob, size_t len, size_t *off, const char **ret_name,
		       uint32_t *ret_name_len, const uint8_t **ret_value, uint32_t *ret_value_len)
{
	size_t o = *off;
	uint32_t nl, vl;

	if (o >= len)
		return 0;
	if (len - o < 8)
		return -EBADMSG;
	nl = strata_get_le32(blob + o);
	if (nl == 0 || nl > 255 || nl > len - o - 8 || memchr(blob + o + 4, 0, nl))
		return -EBADMSG;
	vl = strata_get_le32(blob + o + 4 + nl);
	if (vl > len - o - 8 - nl)
		return -EBADMSG;
	*ret_name = (const char *)blob + o + 4;
	*ret_name_len = nl;
	*ret_value = blob + o + 8 + nl;
	*ret_value_len = vl;
	*off = o + 8 + (size_t)nl + vl;
	return 1;
}
