/*
 * check_catalog.c - unit tests of catalog/: three snapshots of one set with
 * additions, modifications, deletions, a directory rename and a
 * metadata-only change, then every reader query against each snapshot,
 * snapshot specs, diff both ways, archive dependencies, unique names,
 * readers during a write transaction, rollback, hostile files and the
 * space per entry of a full backup.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "catalog.h"

#define T0 1795000000000000000LL   /* 2026-11-17, any fixed time */
/* strata_catalog_generation of a catalog whose newest complete snapshot is
 * max, with n complete snapshots */
#define GEN(max, n) ((int64_t)(max) * (1 << 24) + (n))

struct fx {
	char dir[64];
	char path[128];
	struct strata_catalog *cat;
	int64_t set;
	int64_t s1, s2, s3;
	int64_t a1, a2;
	char long_name[256];
	size_t long_len;
};

static void rm_catalog(const char *dir)
{
	char p[256];
	const char *sfx[] = { "", "-wal", "-shm", "-journal" };

	/* the open test also makes a catalog called "garbage" */
	for (size_t i = 0; i < 4; i++) {
		snprintf(p, sizeof(p), "%s/catalog.db%s", dir, sfx[i]);
		unlink(p);
		snprintf(p, sizeof(p), "%s/garbage%s", dir, sfx[i]);
		unlink(p);
	}
	rmdir(dir);
}

static void fx_open(struct fx *fx)
{
	struct strata_catalog_options o = { .create = true };
	struct strata_error err = { 0 };

	snprintf(fx->dir, sizeof(fx->dir), "/tmp/check_catalog.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(fx->dir));
	snprintf(fx->path, sizeof(fx->path), "%s/catalog.db", fx->dir);
	ck_assert_int_eq(strata_catalog_open(fx->path, &o, &fx->cat, &err), 0);
}

static void fx_close(struct fx *fx)
{
	strata_catalog_close(fx->cat);
	fx->cat = NULL;
	rm_catalog(fx->dir);
}

/* Add a version of (parent, name) live from snap; returns the node. */
static int64_t put(struct fx *fx, int64_t parent, const char *name, size_t len, int64_t snap,
		   char type, uint64_t size, uint32_t perm, int64_t archive, int64_t *ret_version)
{
	struct strata_error err = { 0 };
	struct strata_entry e = { 0 };
	int64_t node, version;

	ck_assert_int_eq(strata_catalog_node_get(fx->cat, fx->set, parent, name, len, &node, &err), 0);
	e.node_id = node;
	e.first_snapshot = snap;
	e.type = type;
	e.mode = (type == 'd' ? 0040000 : type == 'l' ? 0120000 : type == 'p' ? 0010000 : 0100000) | perm;
	e.uid = 1000;
	e.gid = 1000;
	e.uname = "erp";
	e.gname = "erp";
	e.size = size;
	e.mtime_ns = T0 + (int64_t)size * 1000 + 123;
	e.ctime_ns = e.mtime_ns + 5;
	e.dev = 2049;
	e.ino = (uint64_t)node + 100;
	e.nlink = type == 'd' ? 2 : 1;
	e.archive = archive;
	e.data_offset = archive ? 512 * (uint64_t)node : 0;
	if (type == 'f') {
		e.has_sha256 = true;
		memset(e.sha256, (int)(size & 0xff), 32);
	}
	if (type == 'l') {
		e.link = "../target\nwith newline";
		e.link_len = strlen(e.link);
	}
	ck_assert_int_eq(strata_catalog_version_add(fx->cat, &e, &version, &err), 0);
	if (ret_version)
		*ret_version = version;
	return node;
}

/* The live version of (parent, name) closed at 'last'. */
static void drop(struct fx *fx, int64_t parent, const char *name, int64_t last)
{
	struct strata_error err = { 0 };
	struct strata_entry_list l = { 0 };
	bool found = false;

	ck_assert_int_eq(strata_catalog_live_children(fx->cat, fx->set, parent, &l, &err), 0);
	for (size_t i = 0; i < l.n; i++) {
		if (l.v[i].name_len == strlen(name) && memcmp(l.v[i].name, name, l.v[i].name_len) == 0) {
			ck_assert_int_eq(strata_catalog_version_close(fx->cat, l.v[i].version_id, last,
								      &err), 0);
			found = true;
		}
	}
	ck_assert(found);
	strata_entry_list_release(&l);
}

static int64_t add_archive(struct fx *fx, int64_t snap, const char *name, int64_t want_id)
{
	struct strata_archive_row row = { 0 };
	struct strata_error err = { 0 };
	uint8_t frames[24] = { 1, 2, 3 };
	int64_t id;

	row.id = want_id;
	row.snapshot = snap;
	snprintf(row.name, sizeof(row.name), "%s", name);
	row.file_size = 1000;
	row.stream_size = 4000;
	row.frames = frames;
	row.frames_len = sizeof(frames);
	ck_assert_int_eq(strata_catalog_archive_add(fx->cat, &row, &id, &err), 0);
	if (want_id)
		ck_assert_int_eq(id, want_id);
	return id;
}

static void commit(struct fx *fx, struct strata_snapshot *s)
{
	struct strata_error err = { 0 };

	s->state = STRATA_SNAP_COMPLETE;
	s->finished_ns = s->started_ns + 1000000000;
	s->files = 10;
	ck_assert_int_eq(strata_catalog_backup_commit(fx->cat, s, &err), 0);
}

static const char weird[] = "we\nird\xff";
#define DEEP_LEVELS 60

/*
 * s1 (full):  etc/{a.conf, b.conf}  srv/old/x  srv/link  weird name  long name  deep/.../leaf
 * s2 (incr):  a.conf modified, b.conf deleted, c.conf added, srv/old/x chmod only
 * s3 (incr):  srv/old renamed to srv/new (x moves with it)
 */
static void fx_build(struct fx *fx)
{
	struct strata_error err = { 0 };
	struct strata_snapshot s;
	int64_t etc, srv, old, newdir, deep, xv;
	char seg[40];

	fx_open(fx);
	ck_assert_int_eq(strata_catalog_set_get(fx->cat, "erp", true, &fx->set, &err), 0);
	memset(fx->long_name, 'L', 255);
	fx->long_name[255] = '\0';
	fx->long_len = 255;

	ck_assert_int_eq(strata_catalog_backup_begin(fx->cat, fx->set, STRATA_LEVEL_FULL, 0, T0, "",
						     &s, &err), 0);
	fx->s1 = s.id;
	ck_assert_str_eq(s.name, "2026-11-18T110640Z-full");
	fx->a1 = add_archive(fx, s.id, "a1.tar.zst", 0);
	etc = put(fx, 0, "etc", 3, s.id, 'd', 0, 0755, 0, NULL);
	put(fx, etc, "a.conf", 6, s.id, 'f', 100, 0644, fx->a1, NULL);
	put(fx, etc, "b.conf", 6, s.id, 'f', 101, 0644, fx->a1, NULL);
	srv = put(fx, 0, "srv", 3, s.id, 'd', 0, 0755, 0, NULL);
	old = put(fx, srv, "old", 3, s.id, 'd', 0, 0755, 0, NULL);
	put(fx, old, "x", 1, s.id, 'f', 102, 0600, fx->a1, NULL);
	put(fx, srv, "link", 4, s.id, 'l', 0, 0777, 0, NULL);
	put(fx, 0, weird, sizeof(weird) - 1, s.id, 'f', 103, 0644, fx->a1, NULL);
	put(fx, 0, fx->long_name, fx->long_len, s.id, 'f', 104, 0644, fx->a1, NULL);
	deep = 0;
	for (int i = 0; i < DEEP_LEVELS; i++) {
		snprintf(seg, sizeof(seg), "deep-directory-level-%03d", i);
		deep = put(fx, deep, seg, strlen(seg), s.id, 'd', 0, 0755, 0, NULL);
	}
	put(fx, deep, "leaf", 4, s.id, 'f', 0, 0644, 0, NULL);
	commit(fx, &s);

	ck_assert_int_eq(strata_catalog_backup_begin(fx->cat, fx->set, STRATA_LEVEL_INCREMENTAL,
						     fx->s1, T0 + 3600000000000LL, "", &s, &err), 0);
	fx->s2 = s.id;
	fx->a2 = add_archive(fx, s.id, "a2.tar.zst", s.id + 100);  /* caller-chosen id */
	drop(fx, etc, "a.conf", fx->s1);
	put(fx, etc, "a.conf", 6, s.id, 'f', 200, 0644, fx->a2, NULL);
	drop(fx, etc, "b.conf", fx->s1);
	put(fx, etc, "c.conf", 6, s.id, 'f', 201, 0644, fx->a2, NULL);
	drop(fx, old, "x", fx->s1);
	put(fx, old, "x", 1, s.id, 'f', 102, 0640, fx->a1, &xv);  /* chmod: content stays in a1 */
	commit(fx, &s);

	ck_assert_int_eq(strata_catalog_backup_begin(fx->cat, fx->set, STRATA_LEVEL_INCREMENTAL,
						     fx->s2, T0 + 7200000000000LL, "monthly", &s,
						     &err), 0);
	fx->s3 = s.id;
	drop(fx, old, "x", fx->s2);
	drop(fx, srv, "old", fx->s2);
	newdir = put(fx, srv, "new", 3, s.id, 'd', 0, 0755, 0, NULL);
	put(fx, newdir, "x", 1, s.id, 'f', 102, 0640, fx->a1, NULL);
	commit(fx, &s);
	ck_assert_int_eq(err.code, 0);
}

/* ---- tree ------------------------------------------------------------- */

static void expect_children(struct fx *fx, int64_t snap, int64_t parent, const char *const *names,
			    size_t n)
{
	struct strata_error err = { 0 };
	struct strata_entry_list l = { 0 };

	ck_assert_int_eq(strata_catalog_children(fx->cat, fx->set, snap, parent, &l, &err), 0);
	ck_assert_uint_eq(l.n, n);
	for (size_t i = 0; i < n; i++) {
		ck_assert_uint_eq(l.v[i].name_len, strlen(names[i]));
		ck_assert(memcmp(l.v[i].name, names[i], l.v[i].name_len) == 0);
		ck_assert_int_eq(l.v[i].parent_node, parent);
	}
	strata_entry_list_release(&l);
}

static int64_t node_of(struct fx *fx, int64_t snap, const char *path)
{
	struct strata_error err = { 0 };
	struct strata_entry_list l = { 0 };
	int64_t node;

	ck_assert_int_eq(strata_catalog_resolve(fx->cat, fx->set, snap, path, &l, &err), 0);
	ck_assert_uint_eq(l.n, 1);
	node = l.v[0].node_id;
	strata_entry_list_release(&l);
	return node;
}

static uint64_t size_of(struct fx *fx, int64_t snap, const char *path)
{
	struct strata_error err = { 0 };
	struct strata_entry_list l = { 0 };
	uint64_t size;
	int r = strata_catalog_resolve(fx->cat, fx->set, snap, path, &l, &err);

	if (r == -ENOENT) {
		ck_assert_int_eq(err.kind, STRATA_ERR_NOT_FOUND);
		return UINT64_MAX;
	}
	ck_assert_int_eq(r, 0);
	size = l.v[0].size;
	strata_entry_list_release(&l);
	return size;
}

START_TEST(test_tree)
{
	struct fx fx = { 0 };
	struct strata_error err = { 0 };
	struct strata_entry_list l = { 0 };
	struct strata_buf b = STRATA_BUF_INIT(0);
	int64_t etc, srv;

	fx_build(&fx);
	{
		const char *root[] = { "L", "deep-directory-level-000", "etc", "srv", weird };

		root[0] = fx.long_name;
		expect_children(&fx, fx.s1, 0, root, 5);
		expect_children(&fx, fx.s3, 0, root, 5);
	}
	etc = node_of(&fx, fx.s1, "etc");
	srv = node_of(&fx, fx.s1, "/srv/");
	{
		const char *e1[] = { "a.conf", "b.conf" }, *e2[] = { "a.conf", "c.conf" };
		const char *v1[] = { "link", "old" }, *v3[] = { "link", "new" };

		expect_children(&fx, fx.s1, etc, e1, 2);
		expect_children(&fx, fx.s2, etc, e2, 2);
		expect_children(&fx, fx.s3, etc, e2, 2);
		expect_children(&fx, fx.s1, srv, v1, 2);
		expect_children(&fx, fx.s2, srv, v1, 2);
		expect_children(&fx, fx.s3, srv, v3, 2);
	}
	ck_assert_uint_eq(size_of(&fx, fx.s1, "etc/a.conf"), 100);
	ck_assert_uint_eq(size_of(&fx, fx.s2, "etc/a.conf"), 200);
	ck_assert_uint_eq(size_of(&fx, fx.s3, "etc/a.conf"), 200);
	ck_assert_uint_eq(size_of(&fx, fx.s1, "etc/b.conf"), 101);
	ck_assert_uint_eq(size_of(&fx, fx.s2, "etc/b.conf"), UINT64_MAX);
	ck_assert_uint_eq(size_of(&fx, fx.s1, "etc/c.conf"), UINT64_MAX);
	ck_assert_uint_eq(size_of(&fx, fx.s3, "srv/old/x"), UINT64_MAX);
	ck_assert_uint_eq(size_of(&fx, fx.s3, "srv/new/x"), 102);
	ck_assert_uint_eq(size_of(&fx, fx.s2, "srv/new"), UINT64_MAX);
	ck_assert_uint_eq(size_of(&fx, fx.s1, "etc/a.conf/x"), UINT64_MAX);
	ck_assert_uint_eq(size_of(&fx, fx.s1, weird), 103);

	/* resolve of the root is an empty list */
	ck_assert_int_eq(strata_catalog_resolve(fx.cat, fx.set, fx.s1, "/", &l, &err), 0);
	ck_assert_uint_eq(l.n, 0);
	strata_entry_list_release(&l);

	/* lookup, attributes, metadata-only change */
	ck_assert_int_eq(strata_catalog_resolve(fx.cat, fx.set, fx.s1, "srv/old/x", &l, &err), 0);
	ck_assert_uint_eq(l.v[0].mode, 0100600);
	ck_assert_int_eq(l.v[0].ctime_ns, l.v[0].mtime_ns + 5);
	ck_assert_str_eq(l.v[0].uname, "erp");
	ck_assert(l.v[0].has_sha256);
	ck_assert_int_eq(l.v[0].archive, fx.a1);
	ck_assert_int_eq(l.v[0].last_snapshot, fx.s1);
	strata_entry_list_release(&l);
	ck_assert_int_eq(strata_catalog_resolve(fx.cat, fx.set, fx.s2, "srv/old/x", &l, &err), 0);
	ck_assert_uint_eq(l.v[0].mode, 0100640);
	ck_assert_int_eq(l.v[0].first_snapshot, fx.s2);
	strata_entry_list_release(&l);
	ck_assert_int_eq(strata_catalog_resolve(fx.cat, fx.set, fx.s1, "srv/link", &l, &err), 0);
	ck_assert_int_eq(l.v[0].type, 'l');
	ck_assert_str_eq(l.v[0].link, "../target\nwith newline");
	ck_assert(!l.v[0].has_sha256);
	strata_entry_list_release(&l);
	ck_assert_int_eq(strata_catalog_lookup(fx.cat, fx.set, fx.s1, 0, fx.long_name, fx.long_len,
					       &l, &err), 0);
	ck_assert_uint_eq(l.v[0].size, 104);
	ck_assert_int_eq(strata_catalog_node_path(fx.cat, l.v[0].node_id, &b, &err), 0);
	ck_assert_uint_eq(b.len, 255);
	strata_entry_list_release(&l);
	ck_assert_int_eq(strata_catalog_lookup(fx.cat, fx.set, fx.s1, etc, "zz", 2, &l, &err), -ENOENT);
	ck_assert_int_eq(err.kind, STRATA_ERR_NOT_FOUND);
	/* visibility is part of the lookup: another set's id, or no such snapshot */
	ck_assert_int_eq(strata_catalog_lookup(fx.cat, fx.set, fx.s1, 0, "etc", 3, &l, &err), 0);
	strata_entry_list_release(&l);
	ck_assert_int_eq(strata_catalog_lookup(fx.cat, fx.set + 1, fx.s1, 0, "etc", 3, &l, &err),
			 -ENOENT);
	ck_assert_int_eq(strata_catalog_lookup(fx.cat, fx.set, fx.s3 + 100, 0, "etc", 3, &l, &err),
			 -ENOENT);
	ck_assert_uint_eq(l.n, 0);

	/* node_entry: the version of a node live in a snapshot */
	{
		int64_t a = node_of(&fx, fx.s1, "etc/a.conf"), bn = node_of(&fx, fx.s1, "etc/b.conf");

		ck_assert_int_eq(strata_catalog_node_entry(fx.cat, fx.s1, a, &l, &err), 0);
		ck_assert_uint_eq(l.n, 1);
		ck_assert_uint_eq(l.v[0].size, 100);
		strata_entry_list_release(&l);
		ck_assert_int_eq(strata_catalog_node_entry(fx.cat, fx.s3, a, &l, &err), 0);
		ck_assert_uint_eq(l.v[0].size, 200);
		strata_entry_list_release(&l);
		ck_assert_int_eq(strata_catalog_node_entry(fx.cat, fx.s2, bn, &l, &err), -ENOENT);
		ck_assert_int_eq(err.kind, STRATA_ERR_NOT_FOUND);
		memset(&err, 0, sizeof(err));
		ck_assert_int_eq(strata_catalog_node_entry(fx.cat, 999, a, &l, &err), -ENOENT);
		memset(&err, 0, sizeof(err));
	}

	/* node_path */
	ck_assert_int_eq(strata_catalog_node_path(fx.cat, node_of(&fx, fx.s3, "srv/new/x"), &b,
						  &err), 0);
	ck_assert_str_eq((char *)b.data, "srv/new/x");
	strata_buf_release(&b);

	/* invalid snapshot for the set, and names that can never exist */
	memset(&err, 0, sizeof(err));
	ck_assert_int_eq(strata_catalog_children(fx.cat, fx.set, 999, 0, &l, &err), -ENOENT);
	memset(&err, 0, sizeof(err));
	ck_assert_int_eq(strata_catalog_node_get(fx.cat, fx.set, 0, "a/b", 3, &etc, &err), -EINVAL);
	memset(&err, 0, sizeof(err));
	ck_assert_int_eq(strata_catalog_node_get(fx.cat, fx.set, 0, "..", 2, &etc, &err), -EINVAL);
	fx_close(&fx);
}
END_TEST

/* ---- walk ------------------------------------------------------------- */

struct walk_log {
	size_t n;
	char paths[128][1800];
	char types[128];
	size_t max_len;
	size_t stop_after;
};

static int walk_cb(void *ctx, const struct strata_entry *e, const char *path, size_t len)
{
	struct walk_log *w = ctx;

	ck_assert_uint_eq(strlen(path), len == 0 ? 0 : strlen(path));
	ck_assert(len < sizeof(w->paths[0]));
	memcpy(w->paths[w->n], path, len + 1);
	w->types[w->n] = e->type;
	if (len > w->max_len)
		w->max_len = len;
	w->n++;
	if (w->stop_after && w->n == w->stop_after)
		return 42;
	return 0;
}

static bool walked(const struct walk_log *w, const char *path, size_t *ret_i)
{
	for (size_t i = 0; i < w->n; i++) {
		if (strcmp(w->paths[i], path) == 0) {
			if (ret_i)
				*ret_i = i;
			return true;
		}
	}
	return false;
}

START_TEST(test_walk)
{
	static struct walk_log w;
	struct strata_error err = { 0 };
	struct fx fx = { 0 };
	size_t i, j;

	fx_build(&fx);
	/* s1: etc, a, b, srv, link, old, x, weird, long, 60 deep + leaf */
	memset(&w, 0, sizeof(w));
	ck_assert_int_eq(strata_catalog_walk(fx.cat, fx.set, fx.s1, 0, walk_cb, &w, &err), 0);
	ck_assert_uint_eq(w.n, 9 + DEEP_LEVELS + 1);
	ck_assert(w.max_len > 1000);
	ck_assert(walked(&w, "srv/old/x", &j) && walked(&w, "srv/old", &i) && i < j);
	ck_assert(walked(&w, "etc/b.conf", NULL) && !walked(&w, "etc/c.conf", NULL));
	ck_assert(walked(&w, weird, NULL));
	/* parents before children, children in name order */
	ck_assert(walked(&w, "etc", &i) && walked(&w, "etc/a.conf", &j) && j == i + 1);
	ck_assert(walked(&w, "etc/b.conf", &j) && j == i + 2);

	memset(&w, 0, sizeof(w));
	ck_assert_int_eq(strata_catalog_walk(fx.cat, fx.set, fx.s3, 0, walk_cb, &w, &err), 0);
	ck_assert_uint_eq(w.n, 9 + DEEP_LEVELS + 1);
	ck_assert(walked(&w, "srv/new/x", NULL) && !walked(&w, "srv/old", NULL));
	ck_assert(walked(&w, "etc/c.conf", NULL) && !walked(&w, "etc/b.conf", NULL));

	/* below a node, and a callback that stops */
	memset(&w, 0, sizeof(w));
	ck_assert_int_eq(strata_catalog_walk(fx.cat, fx.set, fx.s3, node_of(&fx, fx.s3, "srv"),
					     walk_cb, &w, &err), 0);
	ck_assert_uint_eq(w.n, 3);
	ck_assert_str_eq(w.paths[0], "srv/link");
	ck_assert_str_eq(w.paths[1], "srv/new");
	ck_assert_str_eq(w.paths[2], "srv/new/x");
	memset(&w, 0, sizeof(w));
	w.stop_after = 4;
	ck_assert_int_eq(strata_catalog_walk(fx.cat, fx.set, fx.s3, 0, walk_cb, &w, &err), 42);
	ck_assert_uint_eq(w.n, 4);
	fx_close(&fx);
}
END_TEST

/* ---- snapshots -------------------------------------------------------- */

START_TEST(test_snapshot_find)
{
	struct strata_error err = { 0 };
	struct strata_snapshot s, *list = NULL;
	struct fx fx = { 0 };
	char spec[128];
	int64_t other, gen;
	size_t n;

	fx_build(&fx);
	snprintf(spec, sizeof(spec), "%lld", (long long)fx.s2);
	ck_assert_int_eq(strata_catalog_snapshot_find(fx.cat, spec, NULL, &s, &err), 0);
	ck_assert_int_eq(s.id, fx.s2);
	ck_assert_str_eq(s.set, "erp");
	ck_assert_int_eq(s.kind, STRATA_LEVEL_INCREMENTAL);
	ck_assert_int_eq(s.base, fx.s1);
	ck_assert_int_eq(s.state, STRATA_SNAP_COMPLETE);
	ck_assert_uint_eq(s.files, 10);
	ck_assert_int_eq(strata_catalog_snapshot_find(fx.cat, "2026-11-18T110640Z-full", NULL, &s,
						      &err), 0);
	ck_assert_int_eq(s.id, fx.s1);
	ck_assert_int_eq(strata_catalog_snapshot_find(fx.cat, "latest", NULL, &s, &err), 0);
	ck_assert_int_eq(s.id, fx.s3);
	ck_assert_str_eq(s.label, "monthly");
	ck_assert_int_eq(strata_catalog_snapshot_find(fx.cat, "erp/latest", NULL, &s, &err), 0);
	ck_assert_int_eq(s.id, fx.s3);
	ck_assert_int_eq(strata_catalog_snapshot_find(fx.cat, "erp/2026-11-18T120640Z-incremental",
						      NULL, &s, &err), 0);
	ck_assert_int_eq(s.id, fx.s2);
	ck_assert_int_eq(strata_catalog_snapshot_latest(fx.cat, fx.set, STRATA_LEVEL_FULL, &s, &err), 0);
	ck_assert_int_eq(s.id, fx.s1);
	ck_assert_int_eq(strata_catalog_snapshot_latest(fx.cat, fx.set, -1, &s, &err), 0);
	ck_assert_int_eq(s.id, fx.s3);
	ck_assert_int_eq(strata_catalog_snapshot_latest(fx.cat, fx.set, STRATA_LEVEL_DIFFERENTIAL,
							&s, &err), -ENOENT);
	memset(&err, 0, sizeof(err));

	const char *bad[] = { "nope", "999", "erp/nope", "nope/latest", "", "erp/", "/latest",
			      "2026-11-18T110640Z-full/x" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&err, 0, sizeof(err));
		ck_assert_int_eq(strata_catalog_snapshot_find(fx.cat, bad[i], NULL, &s, &err), -ENOENT);
		ck_assert_int_eq(err.kind, STRATA_ERR_NOT_FOUND);
		ck_assert(strstr(err.msg, "no snapshot '") != NULL);
	}

	/* a second set: "latest" alone becomes ambiguous; two names in one second */
	memset(&err, 0, sizeof(err));
	ck_assert_int_eq(strata_catalog_set_get(fx.cat, "other", false, &other, &err), -ENOENT);
	memset(&err, 0, sizeof(err));
	ck_assert_int_eq(strata_catalog_set_get(fx.cat, "bad/name", true, &other, &err), -EINVAL);
	ck_assert_int_eq(err.kind, STRATA_ERR_USAGE);
	memset(&err, 0, sizeof(err));
	ck_assert_int_eq(strata_catalog_set_get(fx.cat, "other", true, &other, &err), 0);
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(strata_catalog_backup_begin(fx.cat, other, STRATA_LEVEL_FULL, 0,
							     T0 + 5, NULL, &s, &err), 0);
		if (i == 0)
			ck_assert_str_eq(s.name, "2026-11-18T110640Z.2-full");
		else if (i == 1)
			ck_assert_str_eq(s.name, "2026-11-18T110640Z.3-full");
		else
			ck_assert_str_eq(s.name, "2026-11-18T110640Z.4-full");
		commit(&fx, &s);
	}
	ck_assert_int_eq(strata_catalog_snapshot_find(fx.cat, "latest", NULL, &s, &err), -EINVAL);
	ck_assert_int_eq(err.kind, STRATA_ERR_USAGE);
	ck_assert(strstr(err.msg, "SET/latest") != NULL);
	memset(&err, 0, sizeof(err));
	ck_assert_int_eq(strata_catalog_snapshot_find(fx.cat, "latest", "erp", &s, &err), 0);
	ck_assert_int_eq(s.id, fx.s3);
	ck_assert_int_eq(strata_catalog_snapshot_find(fx.cat, "other/latest", "erp", &s, &err), 0);
	ck_assert_str_eq(s.name, "2026-11-18T110640Z.4-full");
	/* SET/NAME of another set's snapshot is not found */
	ck_assert_int_eq(strata_catalog_snapshot_find(fx.cat, "other/2026-11-18T110640Z-full", NULL,
						      &s, &err), -ENOENT);
	memset(&err, 0, sizeof(err));

	ck_assert_int_eq(strata_catalog_snapshot_list(fx.cat, NULL, &list, &n, &err), 0);
	ck_assert_uint_eq(n, 6);
	for (size_t i = 1; i < n; i++)
		ck_assert(list[i - 1].id < list[i].id);
	free(list);
	ck_assert_int_eq(strata_catalog_snapshot_list(fx.cat, "erp", &list, &n, &err), 0);
	ck_assert_uint_eq(n, 3);
	ck_assert_int_eq(list[2].id, fx.s3);
	free(list);
	ck_assert_int_eq(strata_catalog_generation(fx.cat, &gen, &err), 0);
	ck_assert_int_eq(gen, GEN(fx.s3 + 3, 6));
	fx_close(&fx);
}
END_TEST

/* ---- diff ------------------------------------------------------------- */

struct diff_log {
	size_t n;
	char paths[32][64];
	int64_t va[32], vb[32];   /* first_snapshot of ea / eb, -1 when absent */
	uint64_t size_a[32], size_b[32];
};

static int diff_cb(void *ctx, const struct strata_entry *ea, const struct strata_entry *eb,
		   const char *path, size_t len)
{
	struct diff_log *d = ctx;

	ck_assert(ea || eb);
	ck_assert_uint_lt(d->n, 32);
	ck_assert_uint_lt(len, 64);
	memcpy(d->paths[d->n], path, len + 1);
	d->va[d->n] = ea ? ea->first_snapshot : -1;
	d->vb[d->n] = eb ? eb->first_snapshot : -1;
	d->size_a[d->n] = ea ? ea->size : 0;
	d->size_b[d->n] = eb ? eb->size : 0;
	d->n++;
	return 0;
}

static size_t diff_find(const struct diff_log *d, const char *path)
{
	for (size_t i = 0; i < d->n; i++)
		if (strcmp(d->paths[i], path) == 0)
			return i;
	ck_abort_msg("no change for %s", path);
	return 0;
}

START_TEST(test_diff)
{
	struct strata_error err = { 0 };
	struct diff_log d;
	struct fx fx = { 0 };
	size_t i;

	fx_build(&fx);
	/* s1 -> s3: a modified, b removed, c added, srv/old{,/x} removed, srv/new{,/x} added */
	memset(&d, 0, sizeof(d));
	ck_assert_int_eq(strata_catalog_diff(fx.cat, fx.set, fx.s1, fx.s3, diff_cb, &d, &err), 0);
	ck_assert_uint_eq(d.n, 7);
	const char *order[] = { "etc/a.conf", "etc/b.conf", "etc/c.conf", "srv/new", "srv/new/x",
				"srv/old", "srv/old/x" };
	for (i = 0; i < 7; i++)
		ck_assert_str_eq(d.paths[i], order[i]);
	i = diff_find(&d, "etc/a.conf");
	ck_assert(d.va[i] == fx.s1 && d.vb[i] == fx.s2 && d.size_a[i] == 100 && d.size_b[i] == 200);
	i = diff_find(&d, "etc/b.conf");
	ck_assert(d.va[i] == fx.s1 && d.vb[i] == -1);
	i = diff_find(&d, "etc/c.conf");
	ck_assert(d.va[i] == -1 && d.vb[i] == fx.s2);
	i = diff_find(&d, "srv/old/x");
	ck_assert(d.va[i] == fx.s1 && d.vb[i] == -1);
	i = diff_find(&d, "srv/new/x");
	ck_assert(d.va[i] == -1 && d.vb[i] == fx.s3);

	/* the other way round: ea is always the version in a */
	memset(&d, 0, sizeof(d));
	ck_assert_int_eq(strata_catalog_diff(fx.cat, fx.set, fx.s3, fx.s1, diff_cb, &d, &err), 0);
	ck_assert_uint_eq(d.n, 7);
	i = diff_find(&d, "etc/a.conf");
	ck_assert(d.va[i] == fx.s2 && d.vb[i] == fx.s1 && d.size_a[i] == 200 && d.size_b[i] == 100);
	i = diff_find(&d, "etc/b.conf");
	ck_assert(d.va[i] == -1 && d.vb[i] == fx.s1);
	i = diff_find(&d, "srv/new");
	ck_assert(d.va[i] == fx.s3 && d.vb[i] == -1);

	/* s1 -> s2: the metadata-only change is a change; s2 -> s3 only the rename */
	memset(&d, 0, sizeof(d));
	ck_assert_int_eq(strata_catalog_diff(fx.cat, fx.set, fx.s1, fx.s2, diff_cb, &d, &err), 0);
	ck_assert_uint_eq(d.n, 4);
	i = diff_find(&d, "srv/old/x");
	ck_assert(d.va[i] == fx.s1 && d.vb[i] == fx.s2);
	memset(&d, 0, sizeof(d));
	ck_assert_int_eq(strata_catalog_diff(fx.cat, fx.set, fx.s2, fx.s3, diff_cb, &d, &err), 0);
	ck_assert_uint_eq(d.n, 4);
	memset(&d, 0, sizeof(d));
	ck_assert_int_eq(strata_catalog_diff(fx.cat, fx.set, fx.s2, fx.s2, diff_cb, &d, &err), 0);
	ck_assert_uint_eq(d.n, 0);
	ck_assert_int_eq(strata_catalog_diff(fx.cat, fx.set, fx.s2, 12345, diff_cb, &d, &err), -ENOENT);
	fx_close(&fx);
}
END_TEST

/* ---- archives --------------------------------------------------------- */

START_TEST(test_archives)
{
	struct strata_error err = { 0 };
	struct strata_archive_row *rows = NULL, a;
	struct fx fx = { 0 };
	size_t n;
	bool known;

	fx_build(&fx);
	ck_assert_int_eq(strata_catalog_archives(fx.cat, 0, &rows, &n, &err), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(rows[0].name, "a1.tar.zst");
	ck_assert_uint_eq(rows[0].frames_len, 24);
	ck_assert_int_eq(rows[0].frames[2], 3);
	strata_archive_rows_free(rows, n);
	ck_assert_int_eq(strata_catalog_archives(fx.cat, fx.s1, &rows, &n, &err), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_int_eq(rows[0].id, fx.a1);
	strata_archive_rows_free(rows, n);
	/* s3 still needs a1 (unchanged files, the moved x) and a2 */
	ck_assert_int_eq(strata_catalog_archives(fx.cat, fx.s3, &rows, &n, &err), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_int_eq(rows[0].id, fx.a1);
	ck_assert_int_eq(rows[1].id, fx.a2);
	strata_archive_rows_free(rows, n);
	ck_assert_int_eq(strata_catalog_archive_get(fx.cat, fx.a2, &a, &err), 0);
	ck_assert_str_eq(a.name, "a2.tar.zst");
	ck_assert_int_eq(a.snapshot, fx.s2);
	free(a.frames);
	ck_assert_int_eq(strata_catalog_archive_known(fx.cat, "a2.tar.zst", &known, &err), 0);
	ck_assert(known);
	ck_assert_int_eq(strata_catalog_archive_known(fx.cat, "a3.tar.zst", &known, &err), 0);
	ck_assert(!known);
	ck_assert_int_eq(strata_catalog_archive_get(fx.cat, 99, &a, &err), -ENOENT);
	fx_close(&fx);
}
END_TEST

/* ---- transactions ----------------------------------------------------- */

START_TEST(test_reader_during_backup_and_rollback)
{
	struct strata_catalog_options ro = { .readonly = true, .busy_timeout_ms = 200 };
	struct strata_error err = { 0 };
	struct strata_catalog *rd = NULL;
	struct strata_snapshot s, *list = NULL;
	struct strata_entry_list l = { 0 };
	struct fx fx = { 0 };
	int64_t before, after, gen, node;
	struct timespec t0, t1;
	size_t n;

	fx_build(&fx);
	ck_assert_int_eq(strata_catalog_count_versions(fx.cat, &before, &err), 0);
	ck_assert_int_eq(strata_catalog_backup_begin(fx.cat, fx.set, STRATA_LEVEL_FULL, 0,
						     T0 + 9000000000000LL, NULL, &s, &err), 0);
	put(&fx, 0, "new-in-running", 14, s.id, 'f', 7, 0644, 0, NULL);
	drop(&fx, 0, "etc", s.id - 1);

	/* the writer's own connection: the running snapshot is invisible */
	ck_assert_int_eq(strata_catalog_children(fx.cat, fx.set, s.id, 0, &l, &err), -ENOENT);
	memset(&err, 0, sizeof(err));
	ck_assert_int_eq(strata_catalog_lookup(fx.cat, fx.set, s.id, 0, "new-in-running", 14, &l,
					       &err), -ENOENT);
	memset(&err, 0, sizeof(err));
	ck_assert_int_eq(strata_catalog_snapshot_find(fx.cat, s.name, NULL, &s, &err), -ENOENT);
	memset(&err, 0, sizeof(err));

	/* a reader opened now does not wait and sees only committed data */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ck_assert_int_eq(strata_catalog_open(fx.path, &ro, &rd, &err), 0);
	ck_assert_int_eq(strata_catalog_snapshot_list(rd, NULL, &list, &n, &err), 0);
	ck_assert_uint_eq(n, 3);
	free(list);
	ck_assert_int_eq(strata_catalog_generation(rd, &gen, &err), 0);
	ck_assert_int_eq(gen, GEN(fx.s3, 3));
	ck_assert_int_eq(strata_catalog_children(rd, fx.set, fx.s3, 0, &l, &err), 0);
	ck_assert_uint_eq(l.n, 5);
	strata_entry_list_release(&l);
	ck_assert_int_eq(strata_catalog_count_versions(rd, &after, &err), 0);
	ck_assert_int_eq(after, before);
	ck_assert_int_eq(strata_catalog_check(rd, &err), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ck_assert((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 < 150);
	/* a second writer is refused with "locked" while the backup runs */
	{
		struct strata_catalog_options rw = { .busy_timeout_ms = 50 };
		struct strata_catalog *w2 = NULL;
		struct strata_snapshot s2;

		ck_assert_int_eq(strata_catalog_open(fx.path, &rw, &w2, &err), 0);
		ck_assert_int_eq(strata_catalog_backup_begin(w2, fx.set, STRATA_LEVEL_FULL, 0, T0, NULL,
							     &s2, &err), -EAGAIN);
		ck_assert_int_eq(err.kind, STRATA_ERR_LOCKED);
		memset(&err, 0, sizeof(err));
		strata_catalog_close(w2);
	}

	strata_catalog_backup_rollback(&*fx.cat);
	strata_catalog_backup_rollback(fx.cat);   /* twice is harmless */
	ck_assert_int_eq(strata_catalog_count_versions(fx.cat, &after, &err), 0);
	ck_assert_int_eq(after, before);
	ck_assert_int_eq(strata_catalog_snapshot_list(fx.cat, NULL, &list, &n, &err), 0);
	ck_assert_uint_eq(n, 3);
	free(list);
	ck_assert_int_eq(strata_catalog_lookup(fx.cat, fx.set, fx.s3, 0, "new-in-running", 14, &l,
					       &err), -ENOENT);
	memset(&err, 0, sizeof(err));
	/* the rolled-back node is gone too: node_get creates it afresh */
	ck_assert_int_eq(strata_catalog_live_children(fx.cat, fx.set, 0, &l, &err), 0);
	ck_assert_uint_eq(l.n, 5);
	strata_entry_list_release(&l);
	/* the handle works after a rollback, and the attr cache did not survive it */
	ck_assert_int_eq(strata_catalog_backup_begin(fx.cat, fx.set, STRATA_LEVEL_INCREMENTAL, fx.s3,
						     T0 + 9000000000000LL, NULL, &s, &err), 0);
	node = put(&fx, 0, "z", 1, s.id, 'p', 0, 0600, 0, NULL);
	ck_assert(node > 0);
	commit(&fx, &s);
	ck_assert_int_eq(strata_catalog_generation(rd, &gen, &err), 0);
	ck_assert_int_eq(gen, GEN(s.id, 4));
	ck_assert_int_eq(strata_catalog_lookup(rd, fx.set, s.id, 0, "z", 1, &l, &err), 0);
	ck_assert_int_eq(l.v[0].type, 'p');
	ck_assert_uint_eq(l.v[0].mode, 0010600);
	strata_entry_list_release(&l);
	ck_assert_int_eq(strata_catalog_check(fx.cat, &err), 0);
	strata_catalog_close(rd);
	fx_close(&fx);
}
END_TEST

/* A held read transaction sees the catalog as it was, until renewed or released. */
START_TEST(test_reader_hold)
{
	struct strata_catalog_options ro = { .readonly = true, .busy_timeout_ms = 200 };
	struct strata_error err = { 0 };
	struct strata_catalog *rd = NULL;
	struct strata_snapshot s;
	struct strata_entry_list l = { 0 };
	struct fx fx = { 0 };
	int64_t gen, t;

	fx_build(&fx);
	ck_assert_int_eq(strata_catalog_open(fx.path, &ro, &rd, &err), 0);
	t = strata_now_ns();
	ck_assert_int_eq(strata_catalog_hold(rd, t, &err), 0);
	ck_assert_int_eq(strata_catalog_generation(rd, &gen, &err), 0);
	ck_assert_int_eq(gen, GEN(fx.s3, 3));

	/* a backup commits while the reader holds: not seen, even with a
	 * hold whose floor the held transaction meets */
	ck_assert_int_eq(strata_catalog_hold(fx.cat, t, &err), 0);   /* released by backup_begin */
	ck_assert_int_eq(strata_catalog_backup_begin(fx.cat, fx.set, STRATA_LEVEL_INCREMENTAL, fx.s3,
						     T0 + 9000000000000LL, NULL, &s, &err), 0);
	ck_assert(put(&fx, 0, "held", 4, s.id, 'f', 1, 0644, 0, NULL) > 0);
	commit(&fx, &s);
	ck_assert_int_eq(strata_catalog_hold(rd, t, &err), 0);
	ck_assert_int_eq(strata_catalog_generation(rd, &gen, &err), 0);
	ck_assert_int_eq(gen, GEN(fx.s3, 3));
	ck_assert_int_eq(strata_catalog_lookup(rd, fx.set, s.id, 0, "held", 4, &l, &err), -ENOENT);
	memset(&err, 0, sizeof(err));

	/* a later floor renews it */
	ck_assert_int_eq(strata_catalog_hold(rd, strata_now_ns() + 1, &err), 0);
	ck_assert_int_eq(strata_catalog_generation(rd, &gen, &err), 0);
	ck_assert_int_eq(gen, GEN(s.id, 4));
	ck_assert_int_eq(strata_catalog_lookup(rd, fx.set, s.id, 0, "held", 4, &l, &err), 0);
	strata_entry_list_release(&l);

	/* released (a floor it does not meet): each call sees the newest commit */
	strata_catalog_release(rd, 0);   /* began after 0: kept */
	ck_assert_int_eq(strata_catalog_backup_begin(fx.cat, fx.set, STRATA_LEVEL_INCREMENTAL, s.id,
						     T0 + 9100000000000LL, NULL, &s, &err), 0);
	commit(&fx, &s);
	ck_assert_int_eq(strata_catalog_generation(rd, &gen, &err), 0);
	ck_assert_int_eq(gen, GEN(s.id - 1, 4));
	strata_catalog_release(rd, INT64_MAX);
	ck_assert_int_eq(strata_catalog_generation(rd, &gen, &err), 0);
	ck_assert_int_eq(gen, GEN(s.id, 5));
	strata_catalog_release(rd, INT64_MAX);   /* twice is harmless */
	ck_assert_int_eq(strata_catalog_check(rd, &err), 0);
	strata_catalog_close(rd);
	fx_close(&fx);
}
END_TEST

/* ---- files ------------------------------------------------------------ */

START_TEST(test_open_errors_and_meta)
{
	struct strata_catalog_options none = { 0 }, ro = { .readonly = true };
	struct strata_error err = { 0 };
	struct strata_catalog *c = NULL;
	struct fx fx = { 0 };
	char garbage[128], buf[64];
	struct stat sb;
	FILE *f;

	fx_open(&fx);
	ck_assert_int_eq(stat(fx.path, &sb), 0);
	ck_assert_uint_eq(sb.st_mode & 0777, 0600);
	ck_assert_int_eq(strata_catalog_meta_get(fx.cat, "format", buf, sizeof(buf), &err), 0);
	ck_assert_str_eq(buf, "strata-catalog");
	ck_assert_int_eq(strata_catalog_meta_set(fx.cat, "repo-id", "abc", &err), 0);
	ck_assert_int_eq(strata_catalog_meta_get(fx.cat, "repo-id", buf, sizeof(buf), &err), 0);
	ck_assert_str_eq(buf, "abc");
	ck_assert_int_eq(strata_catalog_meta_get(fx.cat, "repo-id", buf, 3, &err), -E2BIG);
	memset(&err, 0, sizeof(err));
	ck_assert_int_eq(strata_catalog_meta_get(fx.cat, "nope", buf, sizeof(buf), &err), -ENOENT);
	memset(&err, 0, sizeof(err));
	ck_assert_int_eq(strata_catalog_check(fx.cat, &err), 0);
	strata_catalog_close(fx.cat);
	fx.cat = NULL;

	/* reopen existing, read-only refuses writes */
	ck_assert_int_eq(strata_catalog_open(fx.path, &ro, &c, &err), 0);
	ck_assert_int_eq(strata_catalog_meta_set(c, "k", "v", &err), -EROFS);
	memset(&err, 0, sizeof(err));
	strata_catalog_close(c);

	snprintf(garbage, sizeof(garbage), "%s/garbage", fx.dir);
	ck_assert_int_eq(strata_catalog_open(garbage, &none, &c, &err), -ENOENT);
	ck_assert_int_eq(err.kind, STRATA_ERR_NOT_FOUND);
	memset(&err, 0, sizeof(err));
	f = fopen(garbage, "w");
	for (int i = 0; i < 2000; i++)
		fputs("this is not a database\n", f);
	fclose(f);
	ck_assert_int_eq(strata_catalog_open(garbage, &none, &c, &err), -EBADMSG);
	ck_assert_int_eq(err.kind, STRATA_ERR_CORRUPT);
	ck_assert(strstr(err.msg, garbage) != NULL);
	memset(&err, 0, sizeof(err));
	ck_assert_int_eq(strata_catalog_open(garbage, &ro, &c, &err), -EBADMSG);
	memset(&err, 0, sizeof(err));
	/* an empty file and an SQLite file of someone else */
	f = fopen(garbage, "w");
	fclose(f);
	ck_assert_int_eq(strata_catalog_open(garbage, &none, &c, &err), -EBADMSG);
	memset(&err, 0, sizeof(err));
	unlink(garbage);
	{
		struct strata_catalog_options cr = { .create = true };
		int64_t set;

		ck_assert_int_eq(strata_catalog_open(garbage, &cr, &c, &err), 0);
		ck_assert_int_eq(strata_catalog_set_get(c, "x", true, &set, &err), 0);
		strata_catalog_close(c);
	}
	/* truncated: the header survives, the pages do not */
	ck_assert_int_eq(truncate(garbage, 4096), 0);
	if (strata_catalog_open(garbage, &ro, &c, &err) == 0) {
		ck_assert_int_eq(strata_catalog_check(c, &err), -EBADMSG);
		strata_catalog_close(c);
	} else {
		ck_assert_int_eq(err.code, -EBADMSG);
	}
	fx_close(&fx);
}
END_TEST

/* ---- space ------------------------------------------------------------ */

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

START_TEST(test_bytes_per_entry)
{
	static const char *const stems[] = { "report", "invoice", "data", "config", "log", "img",
					     "module" };
	static const char *const exts[] = { "txt", "php", "json", "xml", "jpg", "py" };
	enum { N = 50000 };
	struct strata_error err = { 0 };
	struct strata_snapshot s;
	struct fx fx = { 0 };
	int64_t *dirs, ndirs = 1, a;
	uint64_t rnd = 88172645463325252ULL, off = 0;
	struct stat sb;
	double per;

	fx_open(&fx);
	dirs = calloc(N, sizeof(*dirs));
	ck_assert_int_eq(strata_catalog_set_get(fx.cat, "erp", true, &fx.set, &err), 0);
	ck_assert_int_eq(strata_catalog_backup_begin(fx.cat, fx.set, STRATA_LEVEL_FULL, 0, T0, NULL,
						     &s, &err), 0);
	a = add_archive(&fx, s.id, "a1.tar.zst", 0);
	for (int i = 0; i < N; i++) {
		struct strata_entry e = { 0 };
		char name[64];
		int64_t parent, v;
		bool dir;

		parent = dirs[(ndirs > 50 ? ndirs - 50 : 0) + (int64_t)(xorshift(&rnd) % (uint64_t)(ndirs > 50 ? 50 : ndirs))];
		dir = xorshift(&rnd) % 10 == 0;
		if (dir)
			snprintf(name, sizeof(name), "dir_%d", i);
		else
			snprintf(name, sizeof(name), "%s_%d.%s", stems[xorshift(&rnd) % 7], i, exts[xorshift(&rnd) % 6]);
		ck_assert_int_eq(strata_catalog_node_get(fx.cat, fx.set, parent, name, strlen(name),
							 &e.node_id, &err), 0);
		if (dir)
			dirs[ndirs++] = e.node_id;
		e.first_snapshot = s.id;
		e.type = dir ? 'd' : 'f';
		e.mode = dir ? 040755 : 0100644;
		e.uid = e.gid = 1000;
		e.uname = e.gname = "erp";
		e.size = dir ? 4096 : 100 + xorshift(&rnd) % 200000;
		e.mtime_ns = T0 - (int64_t)(xorshift(&rnd) % 100000000000000000ULL);
		e.ctime_ns = xorshift(&rnd) % 2 ? e.mtime_ns : T0 - (int64_t)(xorshift(&rnd) % 100000000000000000ULL);
		e.dev = 2049;
		e.ino = 1000000 + (uint64_t)i;
		e.nlink = dir ? 2 : 1;
		if (!dir) {
			e.archive = a;
			e.data_offset = off;
			off += (e.size + 1023) / 512 * 512;
			e.has_sha256 = true;
			for (int k = 0; k < 4; k++) {
				uint64_t x = xorshift(&rnd);

				memcpy(e.sha256 + 8 * k, &x, 8);
			}
		}
		ck_assert_int_eq(strata_catalog_version_add(fx.cat, &e, &v, &err), 0);
	}
	commit(&fx, &s);
	strata_catalog_close(fx.cat);   /* last connection: checkpoints the WAL */
	fx.cat = NULL;
	ck_assert_int_eq(stat(fx.path, &sb), 0);
	per = (double)sb.st_size / N;
	printf("catalog: %.1f bytes per entry (%lld bytes for %d entries)\n", per,
	       (long long)sb.st_size, N);
	ck_assert_msg(per <= 150.0, "%.1f bytes per entry", per);
	free(dirs);
	fx_close(&fx);
}
END_TEST

/* ---- prune ------------------------------------------------------------ */

static struct strata_snapshot begin_snap(struct fx *fx, enum strata_level kind, int64_t base,
					 int64_t t)
{
	struct strata_error err = { 0 };
	struct strata_snapshot sn;

	ck_assert_int_eq(strata_catalog_backup_begin(fx->cat, fx->set, kind, base, t, NULL, &sn, &err), 0);
	return sn;
}

static struct strata_prune_item *find_item(struct strata_prune_item *it, size_t n, int64_t id)
{
	for (size_t i = 0; i < n; i++)
		if (it[i].snap.id == id)
			return &it[i];
	ck_abort_msg("snapshot %lld not in the items", (long long)id);
	return NULL;
}

/* Items for every complete snapshot; 'expired' ones are marked for removal. */
static struct strata_prune_item *prune_items(struct fx *fx, const int64_t *expired, size_t ne,
					     size_t *ret_n)
{
	struct strata_error err = { 0 };
	struct strata_snapshot *snaps;
	struct strata_prune_item *it;
	size_t n;

	ck_assert_int_eq(strata_catalog_snapshot_list(fx->cat, NULL, &snaps, &n, &err), 0);
	it = calloc(n, sizeof(*it));
	ck_assert_ptr_nonnull(it);
	for (size_t i = 0; i < n; i++) {
		it[i].snap = snaps[i];
		it[i].keep = true;
		it[i].why = STRATA_PRUNE_RETAINED;
		for (size_t j = 0; j < ne; j++)
			if (snaps[i].id == expired[j]) {
				it[i].keep = false;
				it[i].why = STRATA_PRUNE_EXPIRED;
			}
	}
	free(snaps);
	*ret_n = n;
	return it;
}

/* A prune 'step' callback that appends each stage name to a string. */
static void record_stage(void *ctx, const char *stage)
{
	char *buf = ctx;

	strncat(buf, stage, 63 - strlen(buf));
	strncat(buf, " ", 63 - strlen(buf));
}

/*
 * s1 full {a, b}; s2 incremental {a', c, d}; s3 differential of s1 {a', c}
 * (d is not stored again, as when it could not be read); s4 incremental {b'};
 * s5 full of another set.  Policy: s1, s2, s5 expired.
 */
START_TEST(test_prune)
{
	struct strata_error err = { 0 };
	struct strata_prune_result res = { 0 };
	struct strata_prune_item *it;
	struct strata_snapshot s1, s2, s3, s4, s5;
	struct strata_entry_list l = { 0 };
	struct fx fx = { 0 };
	int64_t set1, v_before, v_after, dnode;
	char stages[64];
	size_t n;

	fx_open(&fx);
	ck_assert_int_eq(strata_catalog_set_get(fx.cat, "one", true, &set1, &err), 0);
	fx.set = set1;
	s1 = begin_snap(&fx, STRATA_LEVEL_FULL, 0, T0);
	put(&fx, 0, "a", 1, s1.id, 'f', 10, 0644, s1.id, NULL);
	put(&fx, 0, "b", 1, s1.id, 'f', 11, 0644, s1.id, NULL);
	add_archive(&fx, s1.id, "s1.tar.zst", s1.id);
	commit(&fx, &s1);
	s2 = begin_snap(&fx, STRATA_LEVEL_INCREMENTAL, s1.id, T0 + 3600000000000LL);
	drop(&fx, 0, "a", s2.id - 1);
	put(&fx, 0, "a", 1, s2.id, 'f', 12, 0644, s2.id, NULL);
	put(&fx, 0, "c", 1, s2.id, 'f', 13, 0644, s2.id, NULL);
	dnode = put(&fx, 0, "d", 1, s2.id, 'f', 14, 0644, s2.id, NULL);
	add_archive(&fx, s2.id, "s2.tar.zst", s2.id);
	commit(&fx, &s2);
	s3 = begin_snap(&fx, STRATA_LEVEL_DIFFERENTIAL, s1.id, T0 + 7200000000000LL);
	drop(&fx, 0, "a", s3.id - 1);
	drop(&fx, 0, "c", s3.id - 1);
	put(&fx, 0, "a", 1, s3.id, 'f', 12, 0644, s3.id, NULL);
	put(&fx, 0, "c", 1, s3.id, 'f', 13, 0644, s3.id, NULL);
	add_archive(&fx, s3.id, "s3.tar.zst", s3.id);
	commit(&fx, &s3);
	s4 = begin_snap(&fx, STRATA_LEVEL_INCREMENTAL, s3.id, T0 + 10800000000000LL);
	drop(&fx, 0, "b", s4.id - 1);
	put(&fx, 0, "b", 1, s4.id, 'f', 15, 0644, s4.id, NULL);
	add_archive(&fx, s4.id, "s4.tar.zst", s4.id);
	commit(&fx, &s4);
	ck_assert_int_eq(strata_catalog_set_get(fx.cat, "two", true, &fx.set, &err), 0);
	s5 = begin_snap(&fx, STRATA_LEVEL_FULL, 0, T0);
	put(&fx, 0, "z", 1, s5.id, 'f', 16, 0644, s5.id, NULL);
	add_archive(&fx, s5.id, "s5.tar.zst", s5.id);
	commit(&fx, &s5);
	fx.set = set1;

	/* d, stored by s2 only, is still live in s3 and s4: s2 must stay. */
	it = prune_items(&fx, (int64_t[]){ s1.id, s2.id, s5.id }, 3, &n);
	ck_assert_int_eq(n, 5);
	ck_assert_int_eq(strata_catalog_prune_plan(fx.cat, it, n, &err), 0);
	ck_assert(find_item(it, n, s1.id)->keep);
	ck_assert_int_eq(find_item(it, n, s1.id)->why, STRATA_PRUNE_BASE);
	ck_assert_int_eq(find_item(it, n, s1.id)->because, s3.id);
	ck_assert(find_item(it, n, s2.id)->keep);
	ck_assert_int_eq(find_item(it, n, s2.id)->why, STRATA_PRUNE_DATA);
	ck_assert_int_eq(find_item(it, n, s2.id)->because, s3.id);
	ck_assert_int_eq(find_item(it, n, s5.id)->why, STRATA_PRUNE_NEWEST);
	ck_assert_int_eq(find_item(it, n, s4.id)->why, STRATA_PRUNE_RETAINED);
	free(it);

	/* Once d is gone from s3 on, s2 is free to go; s1 stays for s3. */
	drop(&fx, 0, "d", s2.id);
	ck_assert_int_eq(strata_catalog_count_versions(fx.cat, &v_before, &err), 0);
	it = prune_items(&fx, (int64_t[]){ s1.id, s2.id, s5.id }, 3, &n);
	ck_assert_int_eq(strata_catalog_prune_plan(fx.cat, it, n, &err), 0);
	ck_assert(!find_item(it, n, s2.id)->keep);
	ck_assert_int_eq(strata_catalog_prune_apply(fx.cat, it, n, NULL, NULL, &res, &err), 0);
	ck_assert_int_eq(res.snapshots, 1);
	ck_assert_int_eq(res.versions, 3);   /* a', c, d born in s2 */
	ck_assert_int_eq(res.archives, 1);
	ck_assert_int_eq(res.nodes, 1);      /* d */
	ck_assert_int_eq(res.n_archive_names, 1);
	ck_assert_str_eq(res.archive_names[0], "s2.tar.zst");
	strata_prune_result_release(&res);
	free(it);
	ck_assert_int_eq(strata_catalog_count_versions(fx.cat, &v_after, &err), 0);
	ck_assert_int_eq(v_after, v_before - 3);
	ck_assert_int_eq(strata_catalog_check(fx.cat, &err), 0);
	{
		char buf[32];

		ck_assert_int_eq(strata_catalog_meta_get(fx.cat, "prunes", buf, sizeof(buf), &err), 0);
		ck_assert_str_eq(buf, "1");
	}

	/* What stays reads as before; s2 is gone. */
	ck_assert_int_eq(strata_catalog_children(fx.cat, set1, s4.id, 0, &l, &err), 0);
	ck_assert_int_eq(l.n, 3);
	ck_assert_int_eq(l.v[0].archive, s3.id);   /* a */
	ck_assert_int_eq(l.v[1].archive, s4.id);   /* b */
	ck_assert_int_eq(l.v[2].archive, s3.id);   /* c */
	strata_entry_list_release(&l);
	ck_assert_int_eq(strata_catalog_children(fx.cat, set1, s1.id, 0, &l, &err), 0);
	ck_assert_int_eq(l.n, 2);
	strata_entry_list_release(&l);
	ck_assert_int_eq(strata_catalog_snapshot_find(fx.cat, s2.name, NULL, &s5, &err), -ENOENT);
	strata_error_init(&err);
	{
		bool known = true;

		ck_assert_int_eq(strata_catalog_archive_known(fx.cat, "s2.tar.zst", &known, &err), 0);
		ck_assert(!known);
	}
	(void)dnode;

	/* A second prune with the same policy has nothing left to do: the
	 * plan keeps both, the catalog is unchanged, the transaction is over. */
	it = prune_items(&fx, (int64_t[]){ s1.id, s5.id }, 2, &n);
	stages[0] = '\0';
	ck_assert_int_eq(strata_catalog_prune_apply(fx.cat, it, n, record_stage, stages, &res,
						    &err), 0);
	ck_assert_str_eq(stages, "begin commit ");
	ck_assert_int_eq(res.snapshots, 0);
	ck_assert_int_eq(res.versions, 0);
	ck_assert_int_eq(res.archives, 0);
	ck_assert_int_eq(res.nodes, 0);
	ck_assert_int_eq(res.n_archive_names, 0);
	ck_assert_int_eq(find_item(it, n, s1.id)->why, STRATA_PRUNE_BASE);
	ck_assert_int_eq(find_item(it, n, s5.id)->why, STRATA_PRUNE_NEWEST);
	strata_prune_result_release(&res);
	free(it);
	ck_assert_int_eq(strata_catalog_count_versions(fx.cat, &v_before, &err), 0);
	ck_assert_int_eq(v_before, v_after);
	{
		char buf[32];

		ck_assert_int_eq(strata_catalog_meta_get(fx.cat, "prunes", buf, sizeof(buf), &err), 0);
		ck_assert_str_eq(buf, "1");
	}
	/* No transaction left open: the next write transaction can begin. */
	it = prune_items(&fx, (int64_t[]){ s1.id, s5.id }, 2, &n);
	ck_assert_int_eq(strata_catalog_prune_apply(fx.cat, it, n, NULL, NULL, &res, &err), 0);
	strata_prune_result_release(&res);
	free(it);
	fx_close(&fx);
}
END_TEST

static Suite *catalog_suite(void)
{
	Suite *s = suite_create("catalog");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_tree);
	tcase_add_test(tc, test_walk);
	tcase_add_test(tc, test_snapshot_find);
	tcase_add_test(tc, test_diff);
	tcase_add_test(tc, test_archives);
	tcase_add_test(tc, test_reader_during_backup_and_rollback);
	tcase_add_test(tc, test_reader_hold);
	tcase_add_test(tc, test_open_errors_and_meta);
	tcase_add_test(tc, test_bytes_per_entry);
	suite_add_tcase(s, tc);
	tc = tcase_create("prune");
	tcase_add_test(tc, test_prune);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(catalog_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
