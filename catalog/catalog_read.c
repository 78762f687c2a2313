/*
 * catalog_read.c - the reader queries: snapshots, the tree of a snapshot
 * (children, lookup, resolve, walk), diff between two snapshots, archives.
 *
 * Everything read from the file is treated as hostile: names, blobs and
 * enums are checked before they reach the caller (a bad value is -EBADMSG,
 * kind corrupt), and loops in the node tree are bounded by the path cap.
 * Tree queries only accept complete snapshots of the given set, so a
 * running backup is invisible even on the connection that runs it.
 */
#include "catalog_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define LINK_MAX_BYTES 65536
#define ACL_MAX_BYTES (1u << 20)
#define SPARSE_MAX_BYTES (16u << 20)
#define OWNER_MAX_BYTES 256

bool catalog_name_is_valid(const void *name, size_t len)
{
	const char *p = name;

	if (!p || len == 0 || len > STRATA_NAME_MAX)
		return false;
	if ((len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
		return false;
	return !memchr(p, '/', len) && !memchr(p, '\0', len);
}

static bool type_is_valid(int64_t t)
{
	switch (t) {
	case STRATA_T_REG: case STRATA_T_DIR: case STRATA_T_LNK: case STRATA_T_FIFO:
	case STRATA_T_CHR: case STRATA_T_BLK: case STRATA_T_SOCK:
		return true;
	}
	return false;
}

/* ---- entry lists ------------------------------------------------------ */

enum { OFS_NAME, OFS_UNAME, OFS_GNAME, OFS_LINK, OFS_XATTRS, OFS_ACL_A, OFS_ACL_D, OFS_SPARSE };

/* Copy column col into the arena (NUL-terminated); SIZE_MAX offset for NULL. */
static int arena_col(struct catalog_entries *b, sqlite3_stmt *st, int col, size_t cap,
		     size_t *ofs, size_t *len)
{
	const void *p;
	size_t n;
	int r;

	*ofs = SIZE_MAX;
	*len = 0;
	if (sqlite3_column_type(st, col) == SQLITE_NULL)
		return 0;
	p = sqlite3_column_blob(st, col);
	n = (size_t)sqlite3_column_bytes(st, col);
	if (n > cap)
		return -EBADMSG;
	*ofs = b->arena.len;
	*len = n;
	r = strata_buf_append(&b->arena, p, n);
	if (r == 0)
		r = strata_buf_append(&b->arena, "", 1);
	return r;
}

int catalog_entries_add_row(struct strata_catalog *cat, struct catalog_entries *b,
			    sqlite3_stmt *st, struct strata_error *err)
{
	struct strata_entry *e;
	size_t *ofs, len;
	int64_t type, first, last;
	const char *bad = NULL;
	int r;

	if (b->n == b->alloc) {
		size_t na = b->alloc ? b->alloc * 2 : 16;
		struct strata_entry *nv = realloc(b->v, na * sizeof(*nv));
		size_t (*no)[8];

		if (!nv)
			return strata_error_errno(err, ENOMEM, "catalog '%s'", cat->path);
		b->v = nv;
		no = realloc(b->ofs, na * sizeof(*no));
		if (!no)
			return strata_error_errno(err, ENOMEM, "catalog '%s'", cat->path);
		b->ofs = no;
		b->alloc = na;
	}
	e = &b->v[b->n];
	ofs = b->ofs[b->n];
	memset(e, 0, sizeof(*e));
	e->version_id = sqlite3_column_int64(st, EC_ID);
	e->node_id = sqlite3_column_int64(st, EC_NODE);
	e->parent_node = sqlite3_column_int64(st, EC_PARENT);
	first = sqlite3_column_int64(st, EC_FIRST);
	last = sqlite3_column_int64(st, EC_LAST);
	e->first_snapshot = first;
	e->last_snapshot = last;
	type = sqlite3_column_int64(st, EC_TYPE);
	if (!type_is_valid(type)) {
		bad = "invalid type";
		goto bad;
	}
	e->type = (char)type;
	e->mode = (uint32_t)sqlite3_column_int64(st, EC_MODE);
	e->uid = (uint32_t)sqlite3_column_int64(st, EC_UID);
	e->gid = (uint32_t)sqlite3_column_int64(st, EC_GID);
	e->size = (uint64_t)sqlite3_column_int64(st, EC_SIZE);
	e->mtime_ns = sqlite3_column_int64(st, EC_MTIME);
	/* stored as ctime - mtime; wrapping arithmetic, no overflow UB */
	e->ctime_ns = (int64_t)((uint64_t)e->mtime_ns + (uint64_t)sqlite3_column_int64(st, EC_CTIME));
	e->dev = (uint64_t)sqlite3_column_int64(st, EC_DEV);
	e->ino = (uint64_t)sqlite3_column_int64(st, EC_INO);
	e->nlink = (uint32_t)sqlite3_column_int64(st, EC_NLINK);
	e->rdev = (uint64_t)sqlite3_column_int64(st, EC_RDEV);
	e->archive = sqlite3_column_int64(st, EC_ARCHIVE);
	e->data_offset = (uint64_t)sqlite3_column_int64(st, EC_DATA_OFFSET);
	if (sqlite3_column_type(st, EC_SHA256) != SQLITE_NULL) {
		if (sqlite3_column_bytes(st, EC_SHA256) != 32) {
			bad = "invalid sha256";
			goto bad;
		}
		memcpy(e->sha256, sqlite3_column_blob(st, EC_SHA256), 32);
		e->has_sha256 = true;
	}

	r = arena_col(b, st, EC_NAME, STRATA_NAME_MAX, &ofs[OFS_NAME], &e->name_len);
	if (r == -EBADMSG || (r == 0 && (ofs[OFS_NAME] == SIZE_MAX ||
	    !catalog_name_is_valid(b->arena.data + ofs[OFS_NAME], e->name_len)))) {
		bad = "invalid name";
		goto bad;
	}
	if (r == 0)
		r = arena_col(b, st, EC_UNAME, OWNER_MAX_BYTES, &ofs[OFS_UNAME], &len);
	if (r == 0)
		r = arena_col(b, st, EC_GNAME, OWNER_MAX_BYTES, &ofs[OFS_GNAME], &len);
	if (r == 0)
		r = arena_col(b, st, EC_LINK, LINK_MAX_BYTES, &ofs[OFS_LINK], &e->link_len);
	if (r == 0)
		r = arena_col(b, st, EC_XATTRS, STRATA_XATTRS_MAX, &ofs[OFS_XATTRS], &e->xattrs_len);
	if (r == 0)
		r = arena_col(b, st, EC_ACL_ACCESS, ACL_MAX_BYTES, &ofs[OFS_ACL_A], &len);
	if (r == 0)
		r = arena_col(b, st, EC_ACL_DEFAULT, ACL_MAX_BYTES, &ofs[OFS_ACL_D], &len);
	if (r == 0)
		r = arena_col(b, st, EC_SPARSE, SPARSE_MAX_BYTES, &ofs[OFS_SPARSE], &e->sparse_len);
	if (r == 0 && e->sparse_len % 16 != 0)
		r = -EBADMSG;
	if (r == -EBADMSG) {
		bad = "oversized or malformed attribute";
		goto bad;
	}
	if (r < 0)
		return strata_error_errno(err, -r, "catalog '%s'", cat->path);
	b->n++;
	return 0;
bad:
	return catalog_corrupt(cat, err, "version %lld: %s", (long long)e->version_id, bad);
}

void catalog_entries_finish(struct catalog_entries *b, struct strata_entry_list *ret)
{
	char *base = (char *)b->arena.data;

	for (size_t i = 0; i < b->n; i++) {
		struct strata_entry *e = &b->v[i];
		size_t *o = b->ofs[i];

#define AT(k) (o[k] == SIZE_MAX ? NULL : base + o[k])
		e->name = AT(OFS_NAME);
		e->uname = AT(OFS_UNAME);
		e->gname = AT(OFS_GNAME);
		e->link = AT(OFS_LINK);
		e->xattrs = (const uint8_t *)AT(OFS_XATTRS);
		e->acl_access = AT(OFS_ACL_A);
		e->acl_default = AT(OFS_ACL_D);
		e->sparse = (const uint8_t *)AT(OFS_SPARSE);
#undef AT
	}
	ret->v = b->v;
	ret->n = b->n;
	ret->arena = b->arena.data;
	free(b->ofs);
	memset(b, 0, sizeof(*b));
}

void catalog_entries_release(struct catalog_entries *b)
{
	free(b->v);
	free(b->ofs);
	strata_buf_release(&b->arena);
	memset(b, 0, sizeof(*b));
}

void strata_entry_list_release(struct strata_entry_list *l)
{
	if (!l)
		return;
	free(l->v);
	free(l->arena);
	l->v = NULL;
	l->arena = NULL;
	l->n = 0;
}

/* Step st (bound by the caller) to the end, collecting entries; resets st. */
int catalog_query_entries(struct strata_catalog *cat, enum catalog_stmt id, sqlite3_stmt *st,
			  struct strata_entry_list *ret, struct strata_error *err)
{
	struct catalog_entries b = { 0 };
	int rc, r = 0;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		r = catalog_entries_add_row(cat, &b, st, err);
		if (r < 0)
			goto out;
	}
	if (rc != SQLITE_DONE) {
		r = catalog_sql_error(cat, rc, err, "cannot read entries");
		goto out;
	}
	catalog_entries_finish(&b, ret);
out:
	catalog_stmt_done(cat, id);
	catalog_entries_release(&b);
	return r;
}

/* ---- snapshots -------------------------------------------------------- */

static int copy_text(char *dst, size_t size, sqlite3_stmt *st, int col)
{
	const unsigned char *v = sqlite3_column_text(st, col);
	size_t n = (size_t)sqlite3_column_bytes(st, col);

	if (!v)
		n = 0;
	if (n >= size || (n && memchr(v, '\0', n)))
		return -EBADMSG;
	if (n)
		memcpy(dst, v, n);
	dst[n] = '\0';
	return 0;
}

int catalog_snapshot_row(struct strata_catalog *cat, sqlite3_stmt *st, struct strata_snapshot *s,
			 struct strata_error *err)
{
	int64_t kind, state;

	memset(s, 0, sizeof(*s));
	s->id = sqlite3_column_int64(st, 0);
	s->set_id = sqlite3_column_int64(st, 2);
	kind = sqlite3_column_int64(st, 4);
	state = sqlite3_column_int64(st, 8);
	if (copy_text(s->set, sizeof(s->set), st, 1) < 0 ||
	    copy_text(s->name, sizeof(s->name), st, 3) < 0 ||
	    copy_text(s->label, sizeof(s->label), st, 9) < 0 ||
	    kind < STRATA_LEVEL_FULL || kind > STRATA_LEVEL_DIFFERENTIAL ||
	    state < STRATA_SNAP_RUNNING || state > STRATA_SNAP_WARNING || !s->name[0] ||
	    strchr(s->name, '/'))
		return catalog_corrupt(cat, err, "snapshot %lld: invalid row", (long long)s->id);
	s->kind = (enum strata_level)kind;
	s->state = (enum strata_snapshot_state)state;
	s->base = sqlite3_column_int64(st, 5);
	s->started_ns = sqlite3_column_int64(st, 6);
	s->finished_ns = sqlite3_column_int64(st, 7);
	s->files = (uint64_t)sqlite3_column_int64(st, 10);
	s->files_stored = (uint64_t)sqlite3_column_int64(st, 11);
	s->bytes_read = (uint64_t)sqlite3_column_int64(st, 12);
	s->bytes_stored = (uint64_t)sqlite3_column_int64(st, 13);
	s->warnings = (uint64_t)sqlite3_column_int64(st, 14);
	return 0;
}

/* One snapshot row from a statement bound by the caller: -ENOENT (no error set) if none. */
static int snapshot_one(struct strata_catalog *cat, enum catalog_stmt id, sqlite3_stmt *st,
			struct strata_snapshot *ret, struct strata_error *err)
{
	int rc, r;

	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		r = catalog_snapshot_row(cat, st, ret, err);
	else if (rc == SQLITE_DONE)
		r = -ENOENT;
	else
		r = catalog_sql_error(cat, rc, err, "cannot read snapshots");
	catalog_stmt_done(cat, id);
	return r;
}

static int set_find(struct strata_catalog *cat, const char *name, size_t len, int64_t *ret,
		    struct strata_error *err)
{
	sqlite3_stmt *st;
	int rc, r;

	r = catalog_stmt(cat, ST_SET_BY_NAME, &st, err);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, name, (int)len, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*ret = sqlite3_column_int64(st, 0);
	else if (rc == SQLITE_DONE)
		r = -ENOENT;
	else
		r = catalog_sql_error(cat, rc, err, "cannot read sets");
	catalog_stmt_done(cat, ST_SET_BY_NAME);
	return r;
}

static int latest_of(struct strata_catalog *cat, int64_t set_id, int kind,
		     struct strata_snapshot *ret, struct strata_error *err)
{
	enum catalog_stmt id = kind < 0 ? ST_SNAP_LATEST : ST_SNAP_LATEST_KIND;
	sqlite3_stmt *st;
	int r;

	r = catalog_stmt(cat, id, &st, err);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, set_id);
	if (kind >= 0)
		sqlite3_bind_int(st, 2, kind);
	return snapshot_one(cat, id, st, ret, err);
}

int strata_catalog_snapshot_find(struct strata_catalog *cat, const char *spec,
				 const char *default_set, struct strata_snapshot *ret,
				 struct strata_error *err)
{
	struct strata_snapshot s;
	const char *slash = strchr(spec, '/');
	int64_t id, set_id = 0;
	sqlite3_stmt *st;
	int rc, r;

	if (!*spec) {
		r = -ENOENT;
	} else if (strspn(spec, "0123456789") == strlen(spec)) {
		if (strata_parse_i64(spec, &id) < 0) {
			r = -ENOENT;
		} else if ((r = catalog_stmt(cat, ST_SNAP_BY_ID, &st, err)) == 0) {
			sqlite3_bind_int64(st, 1, id);
			r = snapshot_one(cat, ST_SNAP_BY_ID, st, &s, err);
		}
	} else if (slash || strcmp(spec, "latest") == 0) {
		const char *set = slash ? spec : default_set;
		size_t set_len = slash ? (size_t)(slash - spec) : (set ? strlen(set) : 0);
		const char *rest = slash ? slash + 1 : spec;

		if (!set) {
			/* "latest" alone: only unambiguous with one set. */
			int64_t sets[2];
			int n = 0;

			r = catalog_stmt(cat, ST_SETS_WITH_SNAPS, &st, err);
			if (r < 0)
				return r;
			while ((rc = sqlite3_step(st)) == SQLITE_ROW && n < 2)
				sets[n++] = sqlite3_column_int64(st, 0);
			catalog_stmt_done(cat, ST_SETS_WITH_SNAPS);
			if (rc != SQLITE_ROW && rc != SQLITE_DONE)
				return catalog_sql_error(cat, rc, err, "cannot read snapshots");
			if (n > 1)
				return strata_error_set(err, -EINVAL, STRATA_ERR_USAGE,
							"'latest' is ambiguous with several sets: use SET/latest");
			r = n == 1 ? latest_of(cat, sets[0], -1, &s, err) : -ENOENT;
		} else if ((r = set_find(cat, set, set_len, &set_id, err)) == 0) {
			if (strcmp(rest, "latest") == 0) {
				r = latest_of(cat, set_id, -1, &s, err);
			} else if ((r = catalog_stmt(cat, ST_SNAP_BY_NAME, &st, err)) == 0) {
				sqlite3_bind_text(st, 1, rest, -1, SQLITE_STATIC);
				r = snapshot_one(cat, ST_SNAP_BY_NAME, st, &s, err);
				if (r == 0 && s.set_id != set_id)
					r = -ENOENT;
			}
		}
	} else if ((r = catalog_stmt(cat, ST_SNAP_BY_NAME, &st, err)) == 0) {
		sqlite3_bind_text(st, 1, spec, -1, SQLITE_STATIC);
		r = snapshot_one(cat, ST_SNAP_BY_NAME, st, &s, err);
	}
	if (r == -ENOENT) {
		char q[256];

		return strata_error_set(err, -ENOENT, STRATA_ERR_NOT_FOUND, "no snapshot '%s'",
					strata_quote(q, sizeof(q), spec, strlen(spec)));
	}
	if (r == 0)
		*ret = s;
	return r;
}

int strata_catalog_snapshot_list(struct strata_catalog *cat, const char *set,
				 struct strata_snapshot **ret, size_t *ret_n,
				 struct strata_error *err)
{
	enum catalog_stmt id = set ? ST_SNAP_LIST_SET : ST_SNAP_LIST_ALL;
	struct strata_snapshot *v = NULL;
	size_t n = 0, alloc = 0;
	sqlite3_stmt *st;
	int rc, r;

	r = catalog_stmt(cat, id, &st, err);
	if (r < 0)
		return r;
	if (set)
		sqlite3_bind_text(st, 1, set, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (strata_grow(&v, &alloc, n + 1, sizeof(*v)) < 0) {
			r = strata_error_errno(err, ENOMEM, "catalog '%s'", cat->path);
			goto out;
		}
		r = catalog_snapshot_row(cat, st, &v[n], err);
		if (r < 0)
			goto out;
		n++;
	}
	if (rc != SQLITE_DONE)
		r = catalog_sql_error(cat, rc, err, "cannot list snapshots");
out:
	catalog_stmt_done(cat, id);
	if (r < 0) {
		free(v);
		return r;
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

int strata_catalog_snapshot_latest(struct strata_catalog *cat, int64_t set_id, int kind,
				   struct strata_snapshot *ret, struct strata_error *err)
{
	struct strata_snapshot s;
	int r = latest_of(cat, set_id, kind, &s, err);

	if (r == -ENOENT)
		return strata_error_set(err, -ENOENT, STRATA_ERR_NOT_FOUND,
					"no %s snapshot in set %lld",
					kind < 0 ? "complete" : strata_level_name((enum strata_level)kind),
					(long long)set_id);
	if (r == 0)
		*ret = s;
	return r;
}

int strata_catalog_generation(struct strata_catalog *cat, int64_t *ret, struct strata_error *err)
{
	return catalog_stmt_int64(cat, ST_GENERATION, ret, "cannot read snapshots", err);
}

/* ---- the tree --------------------------------------------------------- */

/* snap must be a complete snapshot of set_id: readers never see a running one. */
static int snapshot_visible(struct strata_catalog *cat, int64_t set_id, int64_t snap,
			    struct strata_error *err)
{
	sqlite3_stmt *st;
	int rc, r;

	r = catalog_stmt(cat, ST_SNAP_CHECK, &st, err);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, snap);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		int64_t state = sqlite3_column_int64(st, 1);

		if (sqlite3_column_int64(st, 0) != set_id ||
		    (state != STRATA_SNAP_COMPLETE && state != STRATA_SNAP_WARNING))
			rc = SQLITE_DONE;
	}
	if (rc == SQLITE_DONE)
		r = strata_error_set(err, -ENOENT, STRATA_ERR_NOT_FOUND,
				     "no snapshot %lld in set %lld", (long long)snap,
				     (long long)set_id);
	else if (rc != SQLITE_ROW)
		r = catalog_sql_error(cat, rc, err, "cannot read snapshots");
	catalog_stmt_done(cat, ST_SNAP_CHECK);
	return r;
}

static int children(struct strata_catalog *cat, int64_t set_id, int64_t snap, int64_t parent,
		    struct strata_entry_list *ret, struct strata_error *err)
{
	enum catalog_stmt id = parent ? ST_CHILDREN : ST_CHILDREN_ROOT;
	sqlite3_stmt *st;
	int r;

	r = catalog_stmt(cat, id, &st, err);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, set_id);
	sqlite3_bind_int64(st, 2, snap);
	if (parent)
		sqlite3_bind_int64(st, 3, parent);
	return catalog_query_entries(cat, id, st, ret, err);
}

int strata_catalog_children(struct strata_catalog *cat, int64_t set_id, int64_t snap,
			    int64_t parent, struct strata_entry_list *ret, struct strata_error *err)
{
	int r = snapshot_visible(cat, set_id, snap, err);

	return r < 0 ? r : children(cat, set_id, snap, parent, ret, err);
}

static int lookup(struct strata_catalog *cat, int64_t set_id, int64_t snap, int64_t parent,
		  const char *name, size_t len, struct strata_entry_list *ret,
		  struct strata_error *err)
{
	enum catalog_stmt id = parent ? ST_LOOKUP : ST_LOOKUP_ROOT;
	struct strata_entry_list l = { 0 };
	sqlite3_stmt *st;
	int r;

	if (!catalog_name_is_valid(name, len))
		goto absent;
	r = catalog_stmt(cat, id, &st, err);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, set_id);
	sqlite3_bind_int64(st, 2, snap);
	if (parent)
		sqlite3_bind_int64(st, 3, parent);
	sqlite3_bind_blob(st, 4, name, (int)len, SQLITE_STATIC);
	r = catalog_query_entries(cat, id, st, &l, err);
	if (r < 0)
		return r;
	if (l.n == 0) {
		strata_entry_list_release(&l);
		goto absent;
	}
	if (l.n > 1) {
		int64_t node = l.v[0].node_id;

		strata_entry_list_release(&l);
		return catalog_corrupt(cat, err, "node %lld: several versions live in snapshot %lld",
				       (long long)node, (long long)snap);
	}
	*ret = l;
	return 0;
absent:
	{
		char q[256];

		return strata_error_set(err, -ENOENT, STRATA_ERR_NOT_FOUND,
					"no '%s' in snapshot %lld",
					strata_quote(q, sizeof(q), name, len), (long long)snap);
	}
}

/* Visibility is part of the lookup's query: one statement per name (the mount's hot path). */
int strata_catalog_lookup(struct strata_catalog *cat, int64_t set_id, int64_t snap, int64_t parent,
			  const char *name, size_t len, struct strata_entry_list *ret,
			  struct strata_error *err)
{
	return lookup(cat, set_id, snap, parent, name, len, ret, err);
}

/*
 * Run an entry query that must give one row: 1 and *ret, 0 for none, or
 * 2 (with *ret empty) for several; negative on an error.
 */
static int query_one(struct strata_catalog *cat, enum catalog_stmt id, sqlite3_stmt *st,
		     struct strata_entry_list *ret, struct strata_error *err)
{
	struct strata_entry_list l = { 0 };
	size_t n;
	int r;

	r = catalog_query_entries(cat, id, st, &l, err);
	if (r < 0)
		return r;
	n = l.n;
	if (n == 1) {
		*ret = l;
		return 1;
	}
	strata_entry_list_release(&l);
	return n ? 2 : 0;
}

int strata_catalog_node_entry(struct strata_catalog *cat, int64_t snap, int64_t node,
			      struct strata_entry_list *ret, struct strata_error *err)
{
	sqlite3_stmt *st;
	int r;

	r = catalog_stmt(cat, ST_NODE_ENTRY, &st, err);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, node);
	sqlite3_bind_int64(st, 2, snap);
	r = query_one(cat, ST_NODE_ENTRY, st, ret, err);
	if (r == 2)
		return catalog_corrupt(cat, err, "node %lld: several versions live in snapshot %lld",
				       (long long)node, (long long)snap);
	if (r == 0)
		return strata_error_set(err, -ENOENT, STRATA_ERR_NOT_FOUND,
					"catalog '%s': node %lld is not in snapshot %lld", cat->path,
					(long long)node, (long long)snap);
	return r < 0 ? r : 0;
}

int strata_catalog_version_entry(struct strata_catalog *cat, int64_t version,
				 struct strata_entry_list *ret, struct strata_error *err)
{
	sqlite3_stmt *st;
	int r;

	r = catalog_stmt(cat, ST_VERSION_ENTRY, &st, err);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, version);
	r = query_one(cat, ST_VERSION_ENTRY, st, ret, err);
	if (r == 2)
		return catalog_corrupt(cat, err, "version %lld: several rows", (long long)version);
	if (r == 0)
		return strata_error_set(err, -ENOENT, STRATA_ERR_NOT_FOUND,
					"catalog '%s': version %lld is in no snapshot", cat->path,
					(long long)version);
	return r < 0 ? r : 0;
}

int strata_catalog_resolve(struct strata_catalog *cat, int64_t set_id, int64_t snap, const char *path,
			   struct strata_entry_list *ret, struct strata_error *err)
{
	struct strata_entry_list cur = { 0 };
	const char *p = path;
	int64_t parent = 0;
	int r;

	r = snapshot_visible(cat, set_id, snap, err);
	if (r < 0)
		return r;
	for (;;) {
		const char *slash;
		size_t len;

		while (*p == '/')
			p++;
		if (!*p)
			break;
		slash = strchr(p, '/');
		len = slash ? (size_t)(slash - p) : strlen(p);
		if (cur.n && cur.v[0].type != STRATA_T_DIR) {
			char q[256];

			strata_entry_list_release(&cur);
			r = strata_error_set(err, -ENOENT, STRATA_ERR_NOT_FOUND,
					     "no '%s' in snapshot %lld: not a directory",
					     strata_quote(q, sizeof(q), path, strlen(path)),
					     (long long)snap);
			goto out;
		}
		strata_entry_list_release(&cur);
		r = lookup(cat, set_id, snap, parent, p, len, &cur, err);
		if (r < 0)
			goto out;
		parent = cur.v[0].node_id;
		p += len;
	}
	*ret = cur;
	cur = (struct strata_entry_list){ 0 };
out:
	strata_entry_list_release(&cur);
	return r;
}

/* Collect the names from the node up to the root, then join them in reverse. */
int strata_catalog_node_path(struct strata_catalog *cat, int64_t node, struct strata_buf *out,
			     struct strata_error *err)
{
	struct strata_buf names = STRATA_BUF_INIT(STRATA_CATALOG_PATH_CAP);
	size_t *ends = NULL, nends = 0, aends = 0, steps = 0, lap = 1;
	int64_t cur = node, mark = node;
	sqlite3_stmt *st;
	int rc, r = 0;

	strata_buf_reset(out);
	r = catalog_stmt(cat, ST_NODE_BY_ID, &st, err);
	if (r < 0)
		return r;
	while (cur) {
		const void *name;
		size_t len;

		sqlite3_reset(st);
		sqlite3_bind_int64(st, 1, cur);
		rc = sqlite3_step(st);
		if (rc == SQLITE_DONE) {
			r = cur == node ? strata_error_set(err, -ENOENT, STRATA_ERR_NOT_FOUND,
							   "catalog '%s': no node %lld",
							   cat->path, (long long)node)
					: catalog_corrupt(cat, err, "node %lld: missing parent",
							  (long long)node);
			goto out;
		}
		if (rc != SQLITE_ROW) {
			r = catalog_sql_error(cat, rc, err, "cannot read nodes");
			goto out;
		}
		name = sqlite3_column_blob(st, 2);
		len = (size_t)sqlite3_column_bytes(st, 2);
		if (!catalog_name_is_valid(name, len)) {
			r = catalog_corrupt(cat, err, "node %lld: invalid name", (long long)cur);
			goto out;
		}
		if (nends == aends) {
			size_t na = aends ? aends * 2 : 32;
			size_t *ne = realloc(ends, na * sizeof(*ne));

			if (!ne) {
				r = strata_error_errno(err, ENOMEM, "catalog '%s'", cat->path);
				goto out;
			}
			ends = ne;
			aends = na;
		}
		r = strata_buf_append(&names, name, len);
		if (r < 0) {
			r = r == -E2BIG ? catalog_corrupt(cat, err, "node %lld: path too long or a loop",
							  (long long)node)
					: strata_error_errno(err, -r, "catalog '%s'", cat->path);
			goto out;
		}
		ends[nends++] = names.len;
		cur = sqlite3_column_int64(st, 1);
		/* Brent's cycle check: a loop is found within twice its length,
		 * long before the path cap would stop it. */
		if (cur == mark) {
			r = catalog_corrupt(cat, err, "node %lld: its parents form a loop",
					    (long long)node);
			goto out;
		}
		if (++steps == lap) {
			mark = cur;
			lap *= 2;
			steps = 0;
		}
	}
	for (size_t i = nends; i-- > 0;) {
		size_t start = i ? ends[i - 1] : 0;

		r = strata_buf_append(out, "/", out->len ? 1 : 0);
		if (r == 0)
			r = strata_buf_append(out, names.data + start, ends[i] - start);
		if (r < 0) {
			r = strata_error_errno(err, -r, "catalog '%s': node %lld", cat->path,
					       (long long)node);
			goto out;
		}
	}
	if (!out->data)
		r = strata_buf_append(out, "", 0);
out:
	catalog_stmt_done(cat, ST_NODE_BY_ID);
	strata_buf_release(&names);
	free(ends);
	return r;
}

/* ---- walk ------------------------------------------------------------- */

struct walk_frame {
	struct strata_entry_list l;
	size_t next;
	size_t path_len;     /* length of the directory's path (prefix for children) */
};

int strata_catalog_walk(struct strata_catalog *cat, int64_t set_id, int64_t snap, int64_t top,
			strata_walk_fn cb, void *ctx, struct strata_error *err)
{
	struct strata_buf path = STRATA_BUF_INIT(STRATA_CATALOG_PATH_CAP);
	struct walk_frame *stack = NULL;
	size_t depth = 0, alloc = 0;
	int r;

	r = snapshot_visible(cat, set_id, snap, err);
	if (r < 0)
		return r;
	if (top) {
		r = strata_catalog_node_path(cat, top, &path, err);
		if (r < 0)
			goto out;
	}
	r = strata_buf_append(&path, "", 0);
	if (r < 0) {
		r = strata_error_errno(err, -r, "catalog '%s'", cat->path);
		goto out;
	}
	stack = calloc(16, sizeof(*stack));
	if (!stack) {
		r = strata_error_errno(err, ENOMEM, "catalog '%s'", cat->path);
		goto out;
	}
	alloc = 16;
	r = children(cat, set_id, snap, top, &stack[0].l, err);
	if (r < 0)
		goto out;
	stack[0].path_len = path.len;
	depth = 1;
	while (depth) {
		struct walk_frame *f = &stack[depth - 1];
		const struct strata_entry *e;

		if (f->next == f->l.n) {
			strata_entry_list_release(&f->l);
			depth--;
			continue;
		}
		e = &f->l.v[f->next++];
		path.len = f->path_len;
		r = strata_buf_append(&path, "/", path.len ? 1 : 0);
		if (r == 0)
			r = strata_buf_append(&path, e->name, e->name_len);
		if (r < 0) {
			r = r == -E2BIG ? catalog_corrupt(cat, err, "node %lld: path too long or a loop",
							  (long long)e->node_id)
					: strata_error_errno(err, -r, "catalog '%s'", cat->path);
			goto out;
		}
		r = cb(ctx, e, (const char *)path.data, path.len);
		if (r != 0)
			goto out;
		if (e->type != STRATA_T_DIR)
			continue;
		if (depth == alloc) {
			struct walk_frame *ns = realloc(stack, 2 * alloc * sizeof(*ns));

			if (!ns) {
				r = strata_error_errno(err, ENOMEM, "catalog '%s'", cat->path);
				goto out;
			}
			stack = ns;
			alloc *= 2;
			f = &stack[depth - 1];
			e = &f->l.v[f->next - 1];
		}
		memset(&stack[depth], 0, sizeof(stack[depth]));
		stack[depth].path_len = path.len;
		r = children(cat, set_id, snap, e->node_id, &stack[depth].l, err);
		if (r < 0)
			goto out;
		depth++;
	}
out:
	for (size_t i = 0; i < depth; i++)
		strata_entry_list_release(&stack[i].l);
	free(stack);
	strata_buf_release(&path);
	return r;
}

/* ---- diff ------------------------------------------------------------- */

struct diff_change {
	const struct strata_entry *lo, *hi;  /* version live in the older / newer snapshot */
	const char *path;                    /* set once all paths are collected */
	size_t path_ofs, path_len;
};

static int entry_by_node(const void *a, const void *b)
{
	const struct strata_entry *x = a, *y = b;

	if (x->node_id != y->node_id)
		return x->node_id < y->node_id ? -1 : 1;
	if (x->version_id != y->version_id)
		return x->version_id < y->version_id ? -1 : 1;
	return 0;
}

/* Component-wise: "a" < "a/b" < "a.txt", the order walk visits them. */
static int change_by_path(const void *a, const void *b)
{
	const struct diff_change *x = a, *y = b;
	const char *p = x->path, *q = y->path;
	size_t pl = x->path_len, ql = y->path_len;

	while (pl && ql) {
		const char *ps = memchr(p, '/', pl), *qs = memchr(q, '/', ql);
		size_t pn = ps ? (size_t)(ps - p) : pl, qn = qs ? (size_t)(qs - q) : ql;
		int c = memcmp(p, q, pn < qn ? pn : qn);

		if (c)
			return c;
		if (pn != qn)
			return pn < qn ? -1 : 1;
		p += pn + (ps ? 1 : 0);
		q += qn + (qs ? 1 : 0);
		pl -= pn + (ps ? 1 : 0);
		ql -= qn + (qs ? 1 : 0);
	}
	return pl == ql ? 0 : (pl < ql ? -1 : 1);
}

static bool live_in(const struct strata_entry *e, int64_t s)
{
	return e->first_snapshot <= s && (e->last_snapshot == 0 || e->last_snapshot >= s);
}

static int diff_collect(struct strata_catalog *cat, enum catalog_stmt id, int64_t set_id,
			int64_t lo, int64_t hi, struct catalog_entries *b, struct strata_error *err)
{
	sqlite3_stmt *st;
	int rc, r;

	r = catalog_stmt(cat, id, &st, err);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, set_id);
	sqlite3_bind_int64(st, 2, lo);
	sqlite3_bind_int64(st, 3, hi);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		r = catalog_entries_add_row(cat, b, st, err);
		if (r < 0)
			goto out;
	}
	if (rc != SQLITE_DONE)
		r = catalog_sql_error(cat, rc, err, "cannot compare snapshots");
out:
	catalog_stmt_done(cat, id);
	return r;
}

int strata_catalog_diff(struct strata_catalog *cat, int64_t set_id, int64_t a, int64_t b,
			strata_diff_fn cb, void *ctx, struct strata_error *err)
{
	struct catalog_entries coll = { 0 };
	struct strata_entry_list l = { 0 };
	struct strata_buf paths = STRATA_BUF_INIT(0), one = STRATA_BUF_INIT(0);
	struct diff_change *ch = NULL;
	int64_t lo = a < b ? a : b, hi = a < b ? b : a;
	size_t nch = 0;
	int r;

	r = snapshot_visible(cat, set_id, a, err);
	if (r == 0)
		r = snapshot_visible(cat, set_id, b, err);
	if (r < 0 || a == b)
		return r;
	/* Only versions live in exactly one of lo, hi: born in (lo, hi] or closed in [lo, hi). */
	r = diff_collect(cat, ST_DIFF_BORN, set_id, lo, hi, &coll, err);
	if (r == 0)
		r = diff_collect(cat, ST_DIFF_DIED, set_id, lo, hi, &coll, err);
	if (r < 0)
		goto out;
	catalog_entries_finish(&coll, &l);
	if (l.n > 1)
		qsort(l.v, l.n, sizeof(*l.v), entry_by_node);
	ch = calloc(l.n ? l.n : 1, sizeof(*ch));
	if (!ch) {
		r = strata_error_errno(err, ENOMEM, "catalog '%s'", cat->path);
		goto out;
	}
	for (size_t i = 0; i < l.n;) {
		size_t j = i;
		struct diff_change c = { 0 };

		for (; j < l.n && l.v[j].node_id == l.v[i].node_id; j++) {
			if (live_in(&l.v[j], lo) && !c.lo)
				c.lo = &l.v[j];
			if (live_in(&l.v[j], hi) && !c.hi)
				c.hi = &l.v[j];
		}
		i = j;
		if ((!c.lo && !c.hi) || c.lo == c.hi)
			continue;
		r = strata_catalog_node_path(cat, (c.lo ? c.lo : c.hi)->node_id, &one, err);
		if (r < 0)
			goto out;
		c.path_ofs = paths.len;
		c.path_len = one.len;
		r = strata_buf_append(&paths, one.data, one.len);
		if (r == 0)
			r = strata_buf_append(&paths, "", 1);
		if (r < 0) {
			r = strata_error_errno(err, -r, "catalog '%s'", cat->path);
			goto out;
		}
		ch[nch++] = c;
	}
	for (size_t i = 0; i < nch; i++)
		ch[i].path = (const char *)paths.data + ch[i].path_ofs;
	if (nch > 1)
		qsort(ch, nch, sizeof(*ch), change_by_path);
	for (size_t i = 0; i < nch; i++) {
		const struct strata_entry *ea = a < b ? ch[i].lo : ch[i].hi;
		const struct strata_entry *eb = a < b ? ch[i].hi : ch[i].lo;

		r = cb(ctx, ea, eb, ch[i].path, ch[i].path_len);
		if (r != 0)
			goto out;
	}
out:
	catalog_entries_release(&coll);
	strata_entry_list_release(&l);
	strata_buf_release(&paths);
	strata_buf_release(&one);
	free(ch);
	return r;
}

/* ---- archives --------------------------------------------------------- */

static bool archive_name_is_valid(const char *s)
{
	return s[0] && s[0] != '.' &&
	       strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") ==
		       strlen(s);
}

static int archive_row(struct strata_catalog *cat, sqlite3_stmt *st, struct strata_archive_row *a,
		       struct strata_error *err)
{
	size_t n;

	memset(a, 0, sizeof(*a));
	a->id = sqlite3_column_int64(st, 0);
	a->snapshot = sqlite3_column_int64(st, 1);
	if (copy_text(a->name, sizeof(a->name), st, 2) < 0 || !archive_name_is_valid(a->name))
		return catalog_corrupt(cat, err, "archive %lld: invalid name", (long long)a->id);
	a->file_size = (uint64_t)sqlite3_column_int64(st, 3);
	a->stream_size = (uint64_t)sqlite3_column_int64(st, 4);
	if (sqlite3_column_bytes(st, 5) == 32)
		memcpy(a->sha256, sqlite3_column_blob(st, 5), 32);
	else if (sqlite3_column_type(st, 5) != SQLITE_NULL)
		return catalog_corrupt(cat, err, "archive %lld: invalid sha256", (long long)a->id);
	a->encrypted = sqlite3_column_int64(st, 6) != 0;
	if (sqlite3_column_bytes(st, 7) == 32)
		memcpy(a->salt, sqlite3_column_blob(st, 7), 32);
	else if (sqlite3_column_type(st, 7) != SQLITE_NULL || a->encrypted)
		return catalog_corrupt(cat, err, "archive %lld: invalid salt", (long long)a->id);
	n = (size_t)sqlite3_column_bytes(st, 8);
	if (n) {
		a->frames = malloc(n);
		if (!a->frames)
			return strata_error_errno(err, ENOMEM, "catalog '%s'", cat->path);
		memcpy(a->frames, sqlite3_column_blob(st, 8), n);
		a->frames_len = n;
	}
	return 0;
}

void strata_archive_rows_free(struct strata_archive_row *rows, size_t n)
{
	if (!rows)
		return;
	for (size_t i = 0; i < n; i++)
		free(rows[i].frames);
	free(rows);
}

int strata_catalog_archives(struct strata_catalog *cat, int64_t snap,
			    struct strata_archive_row **ret, size_t *ret_n, struct strata_error *err)
{
	enum catalog_stmt id = snap ? ST_ARCHIVES_SNAP : ST_ARCHIVES_ALL;
	struct strata_archive_row *v = NULL;
	size_t n = 0, alloc = 0;
	sqlite3_stmt *st;
	int rc, r;

	r = catalog_stmt(cat, id, &st, err);
	if (r < 0)
		return r;
	if (snap)
		sqlite3_bind_int64(st, 1, snap);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (strata_grow(&v, &alloc, n + 1, sizeof(*v)) < 0) {
			r = strata_error_errno(err, ENOMEM, "catalog '%s'", cat->path);
			goto out;
		}
		r = archive_row(cat, st, &v[n], err);
		if (r < 0) {
			free(v[n].frames);
			goto out;
		}
		n++;
	}
	if (rc != SQLITE_DONE)
		r = catalog_sql_error(cat, rc, err, "cannot list archives");
out:
	catalog_stmt_done(cat, id);
	if (r < 0) {
		strata_archive_rows_free(v, n);
		return r;
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

int strata_catalog_archive_get(struct strata_catalog *cat, int64_t id,
			       struct strata_archive_row *ret, struct strata_error *err)
{
	struct strata_archive_row a;
	sqlite3_stmt *st;
	int rc, r;

	r = catalog_stmt(cat, ST_ARCHIVE_BY_ID, &st, err);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		r = archive_row(cat, st, &a, err);
	else if (rc == SQLITE_DONE)
		r = strata_error_set(err, -ENOENT, STRATA_ERR_NOT_FOUND,
				     "catalog '%s': no archive %lld", cat->path, (long long)id);
	else
		r = catalog_sql_error(cat, rc, err, "cannot read archives");
	catalog_stmt_done(cat, ST_ARCHIVE_BY_ID);
	if (r == 0)
		*ret = a;
	return r;
}

int strata_catalog_archive_known(struct strata_catalog *cat, const char *name, bool *ret,
				 struct strata_error *err)
{
	sqlite3_stmt *st;
	int rc, r;

	r = catalog_stmt(cat, ST_ARCHIVE_BY_NAME, &st, err);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW || rc == SQLITE_DONE)
		*ret = rc == SQLITE_ROW;
	else
		r = catalog_sql_error(cat, rc, err, "cannot read archives");
	catalog_stmt_done(cat, ST_ARCHIVE_BY_NAME);
	return r;
}
