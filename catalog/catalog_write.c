/*
 * catalog_write.c - writing a backup into the catalog: sets, the running
 * snapshot (one BEGIN IMMEDIATE transaction from backup_begin to
 * backup_commit or backup_rollback), nodes, versions and archives.
 *
 * The per-entry calls (node_get, version_add, version_close) use cached
 * prepared statements and, for the interned attr tuple, a one-entry cache
 * that is dropped whenever a transaction ends: a rolled back attr row must
 * not be handed out again.
 *
 * version_add keeps, per snapshot, the range of version ids it created
 * (snapshot.version_lo/hi, see catalog_int.h); for the running snapshot
 * the range is kept in memory and written by backup_commit.
 */
#include "catalog_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define LINK_MAX_BYTES 65536
#define OWNER_MAX_BYTES 255

static bool set_name_is_valid(const char *s)
{
	size_t n = strlen(s);

	return n >= 1 && n <= 63 && strcmp(s, ".") != 0 && strcmp(s, "..") != 0 &&
	       strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

static int step_done(struct strata_catalog *cat, enum catalog_stmt id, sqlite3_stmt *st,
		     struct strata_error *err, const char *what)
{
	int rc = sqlite3_step(st), r = 0;

	if (rc != SQLITE_DONE)
		r = catalog_sql_error(cat, rc, err, what);
	catalog_stmt_done(cat, id);
	return r;
}

int strata_catalog_set_get(struct strata_catalog *cat, const char *name, bool create,
			   int64_t *ret_id, struct strata_error *err)
{
	sqlite3_stmt *st;
	int rc, r;

	if (!name || !set_name_is_valid(name))
		return strata_error_set(err, -EINVAL, STRATA_ERR_USAGE,
					"invalid set name '%s': use 1 to 63 of A-Z a-z 0-9 . _ -",
					name ? name : "");
	r = catalog_stmt(cat, ST_SET_BY_NAME, &st, err);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*ret_id = sqlite3_column_int64(st, 0);
		catalog_stmt_done(cat, ST_SET_BY_NAME);
		return 0;
	}
	catalog_stmt_done(cat, ST_SET_BY_NAME);
	if (rc != SQLITE_DONE)
		return catalog_sql_error(cat, rc, err, "cannot read sets");
	if (!create)
		return strata_error_set(err, -ENOENT, STRATA_ERR_NOT_FOUND, "no set '%s'", name);
	r = catalog_stmt(cat, ST_SET_INSERT, &st, err);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	r = step_done(cat, ST_SET_INSERT, st, err, "cannot create set");
	if (r == 0)
		*ret_id = sqlite3_last_insert_rowid(cat->db);
	return r;
}

static int exec_stmt(struct strata_catalog *cat, enum catalog_stmt id, struct strata_error *err,
		     const char *what)
{
	sqlite3_stmt *st;
	int r = catalog_stmt(cat, id, &st, err);

	return r < 0 ? r : step_done(cat, id, st, err, what);
}

/* Free snapshot name: "TIME-kind", then "TIME.2-kind", "TIME.3-kind"... */
static int snapshot_name(struct strata_catalog *cat, int64_t started_ns, enum strata_level kind,
			 char *name, size_t size, struct strata_error *err)
{
	char ts[32];

	strata_format_time(ts, sizeof(ts), started_ns, false);
	for (unsigned k = 1; k < 100000; k++) {
		sqlite3_stmt *st;
		int rc, r;

		if (k == 1)
			snprintf(name, size, "%s-%s", ts, strata_level_name(kind));
		else
			snprintf(name, size, "%s.%u-%s", ts, k, strata_level_name(kind));
		r = catalog_stmt(cat, ST_SNAP_NAME_TAKEN, &st, err);
		if (r < 0)
			return r;
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
		catalog_stmt_done(cat, ST_SNAP_NAME_TAKEN);
		if (rc == SQLITE_DONE)
			return 0;
		if (rc != SQLITE_ROW)
			return catalog_sql_error(cat, rc, err, "cannot read snapshots");
	}
	return strata_error_set(err, -EEXIST, STRATA_ERR_INTERNAL,
				"catalog '%s': no free snapshot name for %s", cat->path, ts);
}

int strata_catalog_backup_begin(struct strata_catalog *cat, int64_t set_id, enum strata_level kind,
				int64_t base, int64_t started_ns, const char *label,
				struct strata_snapshot *ret, struct strata_error *err)
{
	struct strata_snapshot s;
	sqlite3_stmt *st;
	int r;

	if (!label)
		label = "";
	if (cat->in_backup)
		return strata_error_set(err, -EBUSY, STRATA_ERR_INTERNAL,
					"catalog '%s': a backup is already running", cat->path);
	if (kind != STRATA_LEVEL_FULL && kind != STRATA_LEVEL_INCREMENTAL &&
	    kind != STRATA_LEVEL_DIFFERENTIAL)
		return strata_error_set(err, -EINVAL, STRATA_ERR_USAGE, "invalid level %d", (int)kind);
	if (strlen(label) >= STRATA_LABEL_MAX ||
	    strspn(label, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") !=
		    strlen(label))
		return strata_error_set(err, -EINVAL, STRATA_ERR_USAGE,
					"invalid label '%s': use up to %d of A-Z a-z 0-9 . _ -",
					label, STRATA_LABEL_MAX - 1);
	memset(&s, 0, sizeof(s));
	cat->attr.valid = false;
	strata_catalog_release(cat, INT64_MAX);
	r = exec_stmt(cat, ST_BEGIN, err, "cannot begin backup");
	if (r < 0)
		return r;
	cat->in_backup = true;
	r = snapshot_name(cat, started_ns, kind, s.name, sizeof(s.name), err);
	if (r < 0)
		goto out;
	r = catalog_stmt(cat, ST_SNAP_INSERT, &st, err);
	if (r < 0)
		goto out;
	sqlite3_bind_int64(st, 1, set_id);
	sqlite3_bind_text(st, 2, s.name, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 3, (int)kind);
	sqlite3_bind_int64(st, 4, base);
	sqlite3_bind_int64(st, 5, started_ns);
	sqlite3_bind_text(st, 6, label, -1, SQLITE_STATIC);
	r = step_done(cat, ST_SNAP_INSERT, st, err, "cannot begin backup");
	if (r < 0)
		goto out;
	s.id = sqlite3_last_insert_rowid(cat->db);
	s.set_id = set_id;
	s.kind = kind;
	s.base = base;
	s.started_ns = started_ns;
	s.state = STRATA_SNAP_RUNNING;
	snprintf(s.label, sizeof(s.label), "%s", label);
	cat->run_snap = s.id;
	cat->run_lo = INT64_MAX;
	cat->run_hi = 0;
	/* the largest node id (0 when none), inside the write transaction */
	r = catalog_stmt_int64(cat, ST_NODE_MAX, &cat->run_node_floor, "cannot read nodes", err);
out:
	if (r < 0) {
		strata_catalog_backup_rollback(cat);
		return r;
	}
	*ret = s;
	return 0;
}

int strata_catalog_live_children(struct strata_catalog *cat, int64_t set_id, int64_t parent,
				 struct strata_entry_list *ret, struct strata_error *err)
{
	enum catalog_stmt id = parent ? ST_LIVE : ST_LIVE_ROOT;
	sqlite3_stmt *st;
	int r;

	r = catalog_stmt(cat, id, &st, err);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, set_id);
	if (parent)
		sqlite3_bind_int64(st, 2, parent);
	return catalog_query_entries(cat, id, st, ret, err);
}

static int node_insert(struct strata_catalog *cat, int64_t set_id, int64_t parent,
		       const char *name, size_t len, int64_t *ret_node, struct strata_error *err)
{
	sqlite3_stmt *st;
	int r;

	r = catalog_stmt(cat, ST_NODE_INSERT, &st, err);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, set_id);
	if (parent)
		sqlite3_bind_int64(st, 2, parent);
	sqlite3_bind_blob(st, 3, name, (int)len, SQLITE_STATIC);
	r = step_done(cat, ST_NODE_INSERT, st, err, "cannot add node");
	if (r == 0)
		*ret_node = sqlite3_last_insert_rowid(cat->db);
	return r;
}

int strata_catalog_node_get(struct strata_catalog *cat, int64_t set_id, int64_t parent,
			    const char *name, size_t len, int64_t *ret_node, struct strata_error *err)
{
	enum catalog_stmt id = parent ? ST_NODE_FIND : ST_NODE_FIND_ROOT;
	sqlite3_stmt *st;
	int rc, r;

	if (!catalog_name_is_valid(name, len)) {
		char q[256];

		return strata_error_set(err, -EINVAL, STRATA_ERR_USAGE, "invalid entry name '%s'",
					strata_quote(q, sizeof(q), name ? name : "", name ? len : 0));
	}
	/* A directory this backup added has no children yet: skip the search
	 * (one query per entry of every new directory, ~4% of a full). */
	if (cat->in_backup && parent > cat->run_node_floor)
		return node_insert(cat, set_id, parent, name, len, ret_node, err);
	r = catalog_stmt(cat, id, &st, err);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, parent ? parent : set_id);
	sqlite3_bind_blob(st, 2, name, (int)len, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		int64_t node = sqlite3_column_int64(st, 0);

		if (parent && sqlite3_column_int64(st, 1) != set_id)
			r = strata_error_set(err, -EINVAL, STRATA_ERR_INTERNAL,
					     "catalog '%s': node %lld is not in set %lld",
					     cat->path, (long long)parent, (long long)set_id);
		else
			*ret_node = node;
		catalog_stmt_done(cat, id);
		return r;
	}
	catalog_stmt_done(cat, id);
	if (rc != SQLITE_DONE)
		return catalog_sql_error(cat, rc, err, "cannot read nodes");
	return node_insert(cat, set_id, parent, name, len, ret_node, err);
}

int strata_catalog_version_close(struct strata_catalog *cat, int64_t version_id, int64_t last,
				 struct strata_error *err)
{
	sqlite3_stmt *st;
	int r;

	r = catalog_stmt(cat, ST_VERSION_CLOSE, &st, err);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, version_id);
	sqlite3_bind_int64(st, 2, last);
	r = step_done(cat, ST_VERSION_CLOSE, st, err, "cannot close version");
	if (r == 0 && sqlite3_changes(cat->db) != 1)
		r = strata_error_set(err, -ENOENT, STRATA_ERR_INTERNAL,
				     "catalog '%s': version %lld is not live", cat->path,
				     (long long)version_id);
	return r;
}

static bool attr_cache_hit(const struct catalog_attr_cache *c, const struct strata_entry *e)
{
	return c->valid && c->type == e->type && c->mode == e->mode && c->uid == e->uid &&
	       c->dev == e->dev &&
	       c->gid == e->gid && c->has_uname == (e->uname != NULL) &&
	       c->has_gname == (e->gname != NULL) &&
	       (!e->uname || strcmp(c->uname, e->uname) == 0) &&
	       (!e->gname || strcmp(c->gname, e->gname) == 0);
}

static void bind_text_or_null(sqlite3_stmt *st, int i, const char *s)
{
	if (s)
		sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, i);
}

/* The interned (type, mode, uid, gid, uname, gname) row of e. */
static int attr_get(struct strata_catalog *cat, const struct strata_entry *e, int64_t *ret,
		    struct strata_error *err)
{
	struct catalog_attr_cache *c = &cat->attr;
	enum catalog_stmt id = ST_ATTR_FIND;
	sqlite3_stmt *st;
	int rc, r;

	if (attr_cache_hit(c, e)) {
		*ret = c->id;
		return 0;
	}
	for (int pass = 0; pass < 2; pass++) {
		r = catalog_stmt(cat, id, &st, err);
		if (r < 0)
			return r;
		sqlite3_bind_int(st, 1, (unsigned char)e->type);
		sqlite3_bind_int64(st, 2, e->mode);
		sqlite3_bind_int64(st, 3, e->uid);
		sqlite3_bind_int64(st, 4, e->gid);
		bind_text_or_null(st, 5, e->uname);
		bind_text_or_null(st, 6, e->gname);
		sqlite3_bind_int64(st, 7, (int64_t)e->dev);
		rc = sqlite3_step(st);
		if (id == ST_ATTR_FIND && rc == SQLITE_ROW) {
			*ret = sqlite3_column_int64(st, 0);
			catalog_stmt_done(cat, id);
			break;
		}
		catalog_stmt_done(cat, id);
		if (rc != SQLITE_DONE)
			return catalog_sql_error(cat, rc, err, "cannot intern attributes");
		if (id == ST_ATTR_INSERT) {
			*ret = sqlite3_last_insert_rowid(cat->db);
			break;
		}
		id = ST_ATTR_INSERT;
	}
	c->valid = (!e->uname || strlen(e->uname) < sizeof(c->uname)) &&
		   (!e->gname || strlen(e->gname) < sizeof(c->gname));
	if (c->valid) {
		c->id = *ret;
		c->type = e->type;
		c->mode = e->mode;
		c->uid = e->uid;
		c->gid = e->gid;
		c->dev = e->dev;
		c->has_uname = e->uname != NULL;
		c->has_gname = e->gname != NULL;
		snprintf(c->uname, sizeof(c->uname), "%s", e->uname ? e->uname : "");
		snprintf(c->gname, sizeof(c->gname), "%s", e->gname ? e->gname : "");
	}
	return 0;
}

static int check_entry(struct strata_catalog *cat, const struct strata_entry *e,
		       struct strata_error *err)
{
	const char *bad = NULL;

	switch (e->type) {
	case STRATA_T_REG: case STRATA_T_DIR: case STRATA_T_LNK: case STRATA_T_FIFO:
	case STRATA_T_CHR: case STRATA_T_BLK: case STRATA_T_SOCK:
		break;
	default:
		bad = "invalid type";
	}
	if (e->node_id <= 0 || e->first_snapshot <= 0)
		bad = "node and first snapshot must be set";
	else if (e->xattrs_len > STRATA_XATTRS_MAX || (e->xattrs_len && !e->xattrs))
		bad = "xattrs too large";
	else if (e->link_len > LINK_MAX_BYTES || (e->link_len && !e->link))
		bad = "link target too long";
	else if (e->sparse_len % 16 != 0 || (e->sparse_len && !e->sparse))
		bad = "malformed sparse map";
	else if ((e->uname && strlen(e->uname) > OWNER_MAX_BYTES) ||
		 (e->gname && strlen(e->gname) > OWNER_MAX_BYTES))
		bad = "owner name too long";
	if (bad)
		return strata_error_set(err, -EINVAL, STRATA_ERR_INTERNAL,
					"catalog '%s': node %lld: %s", cat->path,
					(long long)e->node_id, bad);
	return 0;
}

static int note_range(struct strata_catalog *cat, int64_t snap, int64_t version,
		      struct strata_error *err)
{
	sqlite3_stmt *st;
	int r;

	if (cat->in_backup && snap == cat->run_snap) {
		if (version < cat->run_lo)
			cat->run_lo = version;
		if (version > cat->run_hi)
			cat->run_hi = version;
		return 0;
	}
	r = catalog_stmt(cat, ST_SNAP_RANGE, &st, err);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, snap);
	sqlite3_bind_int64(st, 2, version);
	return step_done(cat, ST_SNAP_RANGE, st, err, "cannot add version");
}

int strata_catalog_version_add(struct strata_catalog *cat, const struct strata_entry *e,
			       int64_t *ret_version, struct strata_error *err)
{
	int64_t attr = 0, id;
	sqlite3_stmt *st;
	int rc = SQLITE_OK, r;

	r = check_entry(cat, e, err);
	if (r == 0)
		r = attr_get(cat, e, &attr, err);
	if (r == 0)
		r = catalog_stmt(cat, ST_VERSION_INSERT, &st, err);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, e->node_id);
	sqlite3_bind_int64(st, 2, e->first_snapshot);
	sqlite3_bind_int64(st, 3, attr);
	sqlite3_bind_int64(st, 4, (int64_t)e->size);
	sqlite3_bind_int64(st, 5, e->mtime_ns);
	sqlite3_bind_int64(st, 6, (int64_t)((uint64_t)e->ctime_ns - (uint64_t)e->mtime_ns));
	sqlite3_bind_int64(st, 7, (int64_t)e->ino);
	sqlite3_bind_int64(st, 8, e->nlink);
	if (e->archive)
		sqlite3_bind_int64(st, 9, e->archive);
	sqlite3_bind_int64(st, 10, (int64_t)e->data_offset);
	if (e->has_sha256)
		rc = sqlite3_bind_blob(st, 11, e->sha256, 32, SQLITE_STATIC);
	if (rc != SQLITE_OK) {
		catalog_stmt_done(cat, ST_VERSION_INSERT);
		return catalog_sql_error(cat, rc, err, "cannot add version");
	}
	r = step_done(cat, ST_VERSION_INSERT, st, err, "cannot add version");
	if (r < 0)
		return r;
	id = sqlite3_last_insert_rowid(cat->db);
	if (e->rdev || e->link || e->xattrs || e->acl_access || e->acl_default || e->sparse) {
		r = catalog_stmt(cat, ST_VEXT_INSERT, &st, err);
		if (r < 0)
			return r;
		sqlite3_bind_int64(st, 1, id);
		if (e->rdev)
			sqlite3_bind_int64(st, 2, (int64_t)e->rdev);
		if (e->link)
			rc = sqlite3_bind_blob(st, 3, e->link, (int)e->link_len, SQLITE_STATIC);
		if (rc == SQLITE_OK && e->xattrs)
			rc = sqlite3_bind_blob(st, 4, e->xattrs, (int)e->xattrs_len, SQLITE_STATIC);
		if (rc == SQLITE_OK && e->acl_access)
			rc = sqlite3_bind_text(st, 5, e->acl_access, -1, SQLITE_STATIC);
		if (rc == SQLITE_OK && e->acl_default)
			rc = sqlite3_bind_text(st, 6, e->acl_default, -1, SQLITE_STATIC);
		if (rc == SQLITE_OK && e->sparse)
			rc = sqlite3_bind_blob(st, 7, e->sparse, (int)e->sparse_len, SQLITE_STATIC);
		if (rc != SQLITE_OK) {
			catalog_stmt_done(cat, ST_VEXT_INSERT);
			return catalog_sql_error(cat, rc, err, "cannot add version");
		}
		r = step_done(cat, ST_VEXT_INSERT, st, err, "cannot add version");
		if (r < 0)
			return r;
	}
	r = note_range(cat, e->first_snapshot, id, err);
	if (r == 0 && ret_version)
		*ret_version = id;
	return r;
}

int strata_catalog_archive_add(struct strata_catalog *cat, const struct strata_archive_row *row,
			       int64_t *ret_id, struct strata_error *err)
{
	int64_t snap = row->snapshot ? row->snapshot : cat->run_snap;
	size_t n = strnlen(row->name, sizeof(row->name));
	sqlite3_stmt *st;
	int rc = SQLITE_OK, r;

	if (n == 0 || n == sizeof(row->name) || row->name[0] == '.' ||
	    strspn(row->name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") != n)
		return strata_error_set(err, -EINVAL, STRATA_ERR_INTERNAL,
					"catalog '%s': invalid archive name", cat->path);
	if (snap <= 0)
		return strata_error_set(err, -EINVAL, STRATA_ERR_INTERNAL,
					"catalog '%s': archive '%s' has no snapshot", cat->path,
					row->name);
	r = catalog_stmt(cat, ST_ARCHIVE_INSERT, &st, err);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, snap);
	sqlite3_bind_text(st, 2, row->name, (int)n, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, (int64_t)row->file_size);
	sqlite3_bind_int64(st, 4, (int64_t)row->stream_size);
	sqlite3_bind_blob(st, 5, row->sha256, 32, SQLITE_STATIC);
	sqlite3_bind_int(st, 6, row->encrypted ? 1 : 0);
	if (row->encrypted)
		sqlite3_bind_blob(st, 7, row->salt, 32, SQLITE_STATIC);
	if (row->frames_len)
		rc = sqlite3_bind_blob64(st, 8, row->frames, row->frames_len, SQLITE_STATIC);
	if (row->id)    /* else NULL: SQLite picks the next id */
		sqlite3_bind_int64(st, 9, row->id);
	if (rc != SQLITE_OK) {
		catalog_stmt_done(cat, ST_ARCHIVE_INSERT);
		return catalog_sql_error(cat, rc, err, "cannot add archive");
	}
	r = step_done(cat, ST_ARCHIVE_INSERT, st, err, "cannot add archive");
	if (r == 0)
		*ret_id = sqlite3_last_insert_rowid(cat->db);
	return r;
}

int strata_catalog_backup_commit(struct strata_catalog *cat, const struct strata_snapshot *snap,
				 struct strata_error *err)
{
	enum strata_snapshot_state state = snap->state;
	sqlite3_stmt *st;
	int r;

	if (!cat->in_backup || snap->id != cat->run_snap)
		return strata_error_set(err, -EINVAL, STRATA_ERR_INTERNAL,
					"catalog '%s': snapshot %lld is not the running backup",
					cat->path, (long long)snap->id);
	/* A caller that filled only the stats means "complete". */
	if (state != STRATA_SNAP_WARNING)
		state = STRATA_SNAP_COMPLETE;
	r = catalog_stmt(cat, ST_SNAP_FINISH, &st, err);
	if (r < 0)
		goto out;
	sqlite3_bind_int64(st, 1, snap->id);
	sqlite3_bind_int64(st, 2, snap->finished_ns ? snap->finished_ns : strata_now_ns());
	sqlite3_bind_int(st, 3, (int)state);
	sqlite3_bind_int64(st, 4, (int64_t)snap->files);
	sqlite3_bind_int64(st, 5, (int64_t)snap->files_stored);
	sqlite3_bind_int64(st, 6, (int64_t)snap->bytes_read);
	sqlite3_bind_int64(st, 7, (int64_t)snap->bytes_stored);
	sqlite3_bind_int64(st, 8, (int64_t)snap->warnings);
	if (cat->run_lo <= cat->run_hi) {
		sqlite3_bind_int64(st, 9, cat->run_lo);
		sqlite3_bind_int64(st, 10, cat->run_hi);
	}
	r = step_done(cat, ST_SNAP_FINISH, st, err, "cannot finish snapshot");
	if (r == 0)
		r = exec_stmt(cat, ST_COMMIT, err, "cannot commit backup");
out:
	if (r < 0) {
		strata_catalog_backup_rollback(cat);
		return r;
	}
	cat->in_backup = false;
	cat->run_snap = 0;
	cat->attr.valid = false;
	return 0;
}

void strata_catalog_backup_rollback(struct strata_catalog *cat)
{
	if (!cat)
		return;
	cat->attr.valid = false;
	if (cat->db && !sqlite3_get_autocommit(cat->db)) {
		for (int i = 0; i < ST_MAX; i++)
			if (cat->st[i])
				sqlite3_reset(cat->st[i]);
		sqlite3_exec(cat->db, "ROLLBACK", NULL, NULL, NULL);
	}
	cat->in_backup = false;
	cat->run_snap = 0;
}
