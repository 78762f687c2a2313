/*
 * catalog_prune.c - removing snapshots by retention without breaking the
 * ones that stay (DESIGN.md section 6: snapshots by policy, then versions
 * live in no remaining snapshot, then archives no remaining version points
 * into).
 *
 * Invariants this file relies on and keeps:
 * - A version points into the archive of the snapshot that created it
 *   (backup: one archive per snapshot, archive id = snapshot id), and the
 *   versions born in snapshot S have ids in [S.version_lo, S.version_hi]
 *   with first_snapshot = S.
 * - After every committed prune, every version was born in a snapshot that
 *   still exists.  The plan keeps any snapshot whose versions are still live
 *   in a later kept snapshot of its set (the smallest kept id K > S with
 *   last_snapshot >= K, or live), so the versions born in a removed
 *   snapshot are exactly the dead ones: deleting them by rowid range is the
 *   whole version garbage collection, and the removed snapshot's archive is
 *   then unreferenced.  diff (versions born between two snapshots) stays
 *   exact for the same reason.
 * - The newest snapshot of a set is never removed: the live versions
 *   (last_snapshot NULL) describe it, and the next backup compares with them.
 *
 * Crash safety: everything happens in one BEGIN IMMEDIATE transaction; the
 * archive files are unlinked by the caller after COMMIT, so a crash leaves
 * either the old catalog or orphan files the next backup or prune removes.
 * Readers (the mount) are never blocked: WAL.  Each prune that removes
 * something increments meta('prunes'), so a reader that polls the newest
 * snapshot id for additions can poll that for removals.
 */
#include "catalog_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int cmp_item(const void *a, const void *b)
{
	const struct strata_prune_item *x = a, *y = b;

	return x->snap.id < y->snap.id ? -1 : x->snap.id > y->snap.id;
}

static struct strata_prune_item *item_by_id(struct strata_prune_item *items, size_t n, int64_t id)
{
	struct strata_prune_item key;

	key.snap.id = id;
	return bsearch(&key, items, n, sizeof(*items), cmp_item);
}

static void keep(struct strata_prune_item *it, enum strata_prune_why why, int64_t because)
{
	it->keep = true;
	it->why = why;
	it->because = because;
}

/* Are versions born in snapshot s still live in snapshot k (> s) or later? */
static int born_live_at(struct strata_catalog *cat, sqlite3_stmt *st, int64_t s, int64_t k,
			bool *ret, struct strata_error *err)
{
	int rc;

	sqlite3_reset(st);
	sqlite3_bind_int64(st, 1, s);
	sqlite3_bind_int64(st, 2, k);
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return catalog_sql_error(cat, rc, err, "cannot plan prune");
	*ret = rc == SQLITE_ROW;
	sqlite3_reset(st);
	return 0;
}

int strata_catalog_prune_plan(struct strata_catalog *cat, struct strata_prune_item *items, size_t n,
			      struct strata_error *err)
{
	static const char sql[] =
		"SELECT 1 FROM snapshot s CROSS JOIN version v"
		" WHERE s.id = ?1 AND v.id BETWEEN s.version_lo AND s.version_hi"
		" AND v.first_snapshot = ?1 AND (v.last_snapshot IS NULL OR v.last_snapshot >= ?2)"
		" LIMIT 1";
	sqlite3_stmt *st = NULL;
	bool changed = true;
	int rc, r = 0;

	if (n == 0)
		return 0;
	qsort(items, n, sizeof(*items), cmp_item);

	/* The newest snapshot of each set. */
	for (size_t i = n; i-- > 0;) {
		bool newer = false;

		for (size_t j = i + 1; j < n && !newer; j++)
			newer = items[j].snap.set_id == items[i].snap.set_id;
		if (!newer && !items[i].keep)
			keep(&items[i], STRATA_PRUNE_NEWEST, 0);
	}

	rc = sqlite3_prepare_v2(cat->db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK) {
		r = catalog_sql_error(cat, rc, err, "cannot plan prune");
		goto out;
	}
	while (changed) {
		changed = false;
		/* Bases, newest first so a chain closes in one pass. */
		for (size_t i = n; i-- > 0;) {
			struct strata_prune_item *b;

			if (!items[i].keep || items[i].snap.base <= 0)
				continue;
			b = item_by_id(items, n, items[i].snap.base);
			if (b && !b->keep) {
				keep(b, STRATA_PRUNE_BASE, items[i].snap.id);
				changed = true;
			}
		}
		/* Snapshots whose versions a later kept snapshot still shows. */
		for (size_t i = 0; i < n; i++) {
			int64_t next = 0;
			bool live = false;

			if (items[i].keep)
				continue;
			for (size_t j = i + 1; j < n && !next; j++)
				if (items[j].keep && items[j].snap.set_id == items[i].snap.set_id)
					next = items[j].snap.id;
			if (!next)
				continue;
			r = born_live_at(cat, st, items[i].snap.id, next, &live, err);
			if (r < 0)
				goto out;
			if (live) {
				keep(&items[i], STRATA_PRUNE_DATA, next);
				changed = true;
			}
		}
	}
out:
	sqlite3_finalize(st);
	return r;
}

void strata_prune_result_release(struct strata_prune_result *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n_archive_names; i++)
		free(r->archive_names[i]);
	free(r->archive_names);
	memset(r, 0, sizeof(*r));
}

/* Run one statement with up to two int64 parameters; *changes gets sqlite3_changes. */
static int run_sql(struct strata_catalog *cat, const char *sql, int nparams, int64_t a, int64_t b,
		   uint64_t *changes, struct strata_error *err)
{
	sqlite3_stmt *st = NULL;
	int rc, r = 0;

	rc = sqlite3_prepare_v2(cat->db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK) {
		r = catalog_sql_error(cat, rc, err, "cannot prune");
		goto out;
	}
	if (nparams >= 1)
		sqlite3_bind_int64(st, 1, a);
	if (nparams >= 2)
		sqlite3_bind_int64(st, 2, b);
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		r = catalog_sql_error(cat, rc, err, "cannot prune");
		goto out;
	}
	if (changes)
		*changes += (uint64_t)sqlite3_changes(cat->db);
out:
	sqlite3_finalize(st);
	return r;
}

/* Append the archive file names of snapshot s to ret. */
static int collect_archives(struct strata_catalog *cat, int64_t s, struct strata_prune_result *ret,
			    struct strata_error *err)
{
	sqlite3_stmt *st = NULL;
	int rc, r = 0;

	rc = sqlite3_prepare_v2(cat->db, "SELECT name FROM archive WHERE snapshot = ?1", -1, &st,
				NULL);
	if (rc != SQLITE_OK) {
		r = catalog_sql_error(cat, rc, err, "cannot prune");
		goto out;
	}
	sqlite3_bind_int64(st, 1, s);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(st, 0);
		char **nv;

		/* Only plain names reach unlinkat(): a hostile row cannot point elsewhere. */
		if (!name || !*name || name[0] == '.' || strchr(name, '/')) {
			r = catalog_corrupt(cat, err, "archive of snapshot %lld: invalid name",
					    (long long)s);
			goto out;
		}
		nv = realloc(ret->archive_names, (ret->n_archive_names + 1) * sizeof(*nv));
		if (!nv) {
			r = strata_error_errno(err, ENOMEM, "catalog '%s'", cat->path);
			goto out;
		}
		ret->archive_names = nv;
		nv[ret->n_archive_names] = strdup(name);
		if (!nv[ret->n_archive_names]) {
			r = strata_error_errno(err, ENOMEM, "catalog '%s'", cat->path);
			goto out;
		}
		ret->n_archive_names++;
	}
	if (rc != SQLITE_DONE)
		r = catalog_sql_error(cat, rc, err, "cannot prune");
out:
	sqlite3_finalize(st);
	return r;
}

int strata_catalog_prune_apply(struct strata_catalog *cat, struct strata_prune_item *items, size_t n,
			       void (*step)(void *ctx, const char *stage), void *ctx,
			       struct strata_prune_result *ret, struct strata_error *err)
{
	/* Versions born in ?1: its rowid range, then the exact test. */
#define BORN_IN " FROM version WHERE id BETWEEN (SELECT version_lo FROM snapshot WHERE id = ?1)" \
		" AND (SELECT version_hi FROM snapshot WHERE id = ?1) AND first_snapshot = ?1"
	struct strata_prune_result res;
	size_t nremove = 0;
	bool in_tx = false;
	int r;

	memset(&res, 0, sizeof(res));
	if (cat->readonly)
		return strata_error_set(err, -EROFS, STRATA_ERR_INTERNAL,
					"catalog '%s': opened read-only", cat->path);
	if (cat->in_backup)
		return strata_error_set(err, -EBUSY, STRATA_ERR_INTERNAL,
					"catalog '%s': a backup is running", cat->path);
	strata_catalog_release(cat, INT64_MAX);
	r = run_sql(cat, "BEGIN IMMEDIATE", 0, 0, 0, NULL, err);
	if (r < 0)
		goto out;
	in_tx = true;
	if (step)
		step(ctx, "begin");
	r = strata_catalog_prune_plan(cat, items, n, err);
	if (r < 0)
		goto out;
	/* Most runs of an hourly schedule expire nothing: then there is no
	 * node to sweep either, and the transaction ends here unchanged. */
	for (size_t i = 0; i < n; i++)
		nremove += !items[i].keep;
	if (nremove == 0)
		goto commit;
	r = run_sql(cat, "CREATE TEMP TABLE IF NOT EXISTS prune_node(id INTEGER PRIMARY KEY)", 0, 0,
		    0, NULL, err);
	if (r == 0)
		r = run_sql(cat, "DELETE FROM temp.prune_node", 0, 0, 0, NULL, err);
	if (r < 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		int64_t s = items[i].snap.id;

		if (items[i].keep)
			continue;
		r = run_sql(cat, "INSERT OR IGNORE INTO temp.prune_node SELECT node" BORN_IN, 1, s, 0,
			    NULL, err);
		if (r == 0)
			r = run_sql(cat, "DELETE FROM version_ext WHERE version IN (SELECT id" BORN_IN ")",
				    1, s, 0, NULL, err);
		if (r == 0)
			r = run_sql(cat, "DELETE" BORN_IN, 1, s, 0, &res.versions, err);
		if (r == 0)
			r = collect_archives(cat, s, &res, err);
		if (r == 0)
			r = run_sql(cat, "DELETE FROM archive WHERE snapshot = ?1", 1, s, 0,
				    &res.archives, err);
		if (r == 0)
			r = run_sql(cat, "DELETE FROM snapshot WHERE id = ?1 AND state IN (1, 2)", 1, s,
				    0, &res.snapshots, err);
		if (r < 0)
			goto out;
		if (step)
			step(ctx, "snapshot");
	}
	/* Nodes no version uses and no node hangs below, leaves first. */
	for (unsigned pass = 0; pass < 4096; pass++) {
		uint64_t gone = 0;

		r = run_sql(cat, "DELETE FROM node WHERE id IN (SELECT id FROM temp.prune_node)"
			    " AND NOT EXISTS (SELECT 1 FROM version v WHERE v.node = node.id)"
			    " AND NOT EXISTS (SELECT 1 FROM node c WHERE c.parent = node.id)",
			    0, 0, 0, &gone, err);
		if (r < 0)
			goto out;
		res.nodes += gone;
		if (gone == 0)
			break;
	}
	r = run_sql(cat, "DELETE FROM temp.prune_node", 0, 0, 0, NULL, err);
	/* A counter readers (the mount) can poll to notice removals: the
	 * newest snapshot id, which they watch for additions, does not change. */
	if (r == 0 && res.snapshots)
		r = run_sql(cat, "INSERT INTO meta(key, value) VALUES ('prunes', '1') ON CONFLICT(key)"
			    " DO UPDATE SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT)", 0, 0, 0,
			    NULL, err);
	if (r < 0)
		goto out;
commit:
	if (step)
		step(ctx, "commit");
	r = run_sql(cat, "COMMIT", 0, 0, 0, NULL, err);
	if (r == 0)
		in_tx = false;
#undef BORN_IN
out:
	if (in_tx)
		sqlite3_exec(cat->db, "ROLLBACK", NULL, NULL, NULL);
	if (r < 0) {
		strata_prune_result_release(&res);
		return r;
	}
	*ret = res;
	return 0;
}
