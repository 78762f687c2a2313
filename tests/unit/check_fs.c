/*
 * check_fs.c - unit tests for fs/ without mounting: the node id encoding
 * of fs_inode.c (round trips, no collisions between kinds, ids that do not
 * fit, one id per version across snapshots, one per directory per
 * snapshot) and the hardlink map (every name of a group answers with the
 * first name's id, per snapshot).  The mount itself is tested for real by
 * tests/integration/mount.sh.
 *
 * Run one test under a debugger or valgrind with CK_FORK=no.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "fs_int.h"

static struct fs fs;

static void setup(void)
{
	memset(&fs, 0, sizeof(fs));
	fs_hlmap_init(&fs.hl);
}

static void teardown(void)
{
	fs_hlmap_release(&fs.hl);
}

static struct strata_entry reg(int64_t node, uint64_t dev, uint64_t ino, uint32_t nlink)
{
	struct strata_entry e;

	memset(&e, 0, sizeof(e));
	e.node_id = node;
	e.version_id = node + 1000;   /* any id distinct from the node's */
	e.type = STRATA_T_REG;
	e.dev = dev;
	e.ino = ino;
	e.nlink = nlink;
	return e;
}

START_TEST(test_roundtrip_all)
{
	struct fs_ino in;
	static const int64_t snaps[] = { 1, 2, 77, (1 << 22) - 1 };
	static const int64_t versions[] = { 1, 2, 12345, (INT64_C(1) << 62) - 1 };
	static const int64_t nodes[] = { 0, 1, 12345, (INT64_C(1) << 40) - 1 };

	fs_ino_decode(&fs, FUSE_ROOT_ID, &in);
	ck_assert_int_eq(in.kind, FS_ROOT);
	for (int64_t set = 1; set < (1 << 17); set += 3701) {
		fs_ino_decode(&fs, fs_ino_set(set), &in);
		ck_assert_int_eq(in.kind, FS_SET);
		ck_assert_int_eq(in.set_id, set);
		for (size_t i = 0; i < sizeof(snaps) / sizeof(snaps[0]); i++) {
			fuse_ino_t id = fs_ino_latest(set, snaps[i]);

			fs_ino_decode(&fs, id, &in);
			ck_assert_int_eq(in.kind, FS_LATEST);
			ck_assert_int_eq(in.set_id, set);
			ck_assert_int_eq(in.snap, snaps[i]);
			ck_assert_uint_ne(fs_ino_set(set), id);
			ck_assert_uint_lt(id, UINT64_C(1) << 40);
			/* a latest that moved is another inode */
			ck_assert_uint_ne(id, fs_ino_latest(set, snaps[i] + 1));
		}
	}
	/* ids that do not fit are refused, not wrapped into another kind */
	ck_assert_uint_eq(fs_ino_set(INT64_C(1) << 17), 0);
	ck_assert_uint_eq(fs_ino_set(0), 0);
	ck_assert_uint_eq(fs_ino_latest(1, INT64_C(1) << 22), 0);
	ck_assert_uint_eq(fs_ino_latest(INT64_C(1) << 17, 1), 0);
	ck_assert_uint_eq(fs_ino_latest(1, 0), 0);
	for (size_t i = 0; i < sizeof(snaps) / sizeof(snaps[0]); i++) {
		for (size_t j = 0; j < sizeof(nodes) / sizeof(nodes[0]); j++) {
			fuse_ino_t id = fs_ino_tree(&fs, snaps[i], nodes[j]);

			ck_assert_uint_ge(id, UINT64_C(1) << 40);
			ck_assert_uint_lt(id, UINT64_C(1) << 62);
			fs_ino_decode(&fs, id, &in);
			ck_assert_int_eq(in.kind, FS_TREE);
			ck_assert_int_eq(in.snap, snaps[i]);
			ck_assert_int_eq(in.node, nodes[j]);
		}
	}
	for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
		fuse_ino_t id = fs_ino_version(versions[i]);

		ck_assert_uint_ge(id, UINT64_C(1) << 62);
		ck_assert_uint_lt(id, UINT64_C(1) << 63);
		fs_ino_decode(&fs, id, &in);
		ck_assert_int_eq(in.kind, FS_FILE);
		ck_assert_int_eq(in.version, versions[i]);
	}
}
END_TEST

START_TEST(test_overflow_and_bad)
{
	struct fs_ino in;

	ck_assert_uint_eq(fs_ino_tree(&fs, INT64_C(1) << 22, 1), 0);
	ck_assert_uint_eq(fs_ino_version(0), 0);
	ck_assert_uint_eq(fs_ino_version(-1), 0);
	ck_assert_uint_eq(fs_ino_version(INT64_C(1) << 62), 0);
	ck_assert_uint_eq(fs_ino_tree(&fs, 1, INT64_C(1) << 40), 0);
	ck_assert_uint_eq(fs_ino_tree(&fs, 0, 1), 0);
	ck_assert_uint_eq(fs_ino_tree(&fs, -1, 1), 0);
	ck_assert_uint_eq(fs_ino_tree(&fs, 1, -1), 0);
	fs_ino_decode(&fs, 0, &in);
	ck_assert_int_eq(in.kind, FS_BAD);
	fs_ino_decode(&fs, 2, &in);
	ck_assert_int_eq(in.kind, FS_BAD);
	fs_ino_decode(&fs, 3, &in);
	ck_assert_int_eq(in.kind, FS_BAD);
	fs_ino_decode(&fs, UINT64_C(1) << 63 | 5, &in);
	ck_assert_int_eq(in.kind, FS_BAD);
	fs_ino_decode(&fs, UINT64_C(1) << 62, &in);  /* version 0 */
	ck_assert_int_eq(in.kind, FS_BAD);
}
END_TEST

START_TEST(test_single_snapshot)
{
	struct fs_ino in;

	fs.opts.snapshot = 9;
	fs_ino_decode(&fs, FUSE_ROOT_ID, &in);
	ck_assert_int_eq(in.kind, FS_TREE);
	ck_assert_int_eq(in.snap, 9);
	ck_assert_int_eq(in.node, 0);
	ck_assert_uint_eq(fs_ino_tree(&fs, 9, 0), FUSE_ROOT_ID);
	fs_ino_decode(&fs, fs_ino_tree(&fs, 9, 5), &in);
	ck_assert_int_eq(in.kind, FS_TREE);
	ck_assert_int_eq(in.node, 5);
	/* other snapshots, sets and latest do not exist in this mode */
	fs_ino_decode(&fs, fs_ino_tree(&fs, 8, 5), &in);
	ck_assert_int_eq(in.kind, FS_BAD);
	fs_ino_decode(&fs, fs_ino_set(1), &in);
	ck_assert_int_eq(in.kind, FS_BAD);
	/* files are named by version here too */
	fs_ino_decode(&fs, fs_ino_version(42), &in);
	ck_assert_int_eq(in.kind, FS_FILE);
	ck_assert_int_eq(in.version, 42);
}
END_TEST

START_TEST(test_hardlinks)
{
	struct strata_entry a = reg(10, 1, 500, 3), b = reg(20, 1, 500, 3), c = reg(30, 1, 500, 3);
	struct strata_entry solo = reg(40, 1, 600, 1), dir = reg(50, 1, 500, 3);
	fuse_ino_t ia, ib, ic;

	/* first name handed out wins, in any order */
	ib = fs_ino_entry(&fs, 4, &b);
	ia = fs_ino_entry(&fs, 4, &a);
	ic = fs_ino_entry(&fs, 4, &c);
	ck_assert_uint_eq(ib, fs_ino_version(b.version_id));
	ck_assert_uint_eq(ia, ib);
	ck_assert_uint_eq(ic, ib);
	/* stable */
	ck_assert_uint_eq(fs_ino_entry(&fs, 4, &a), ib);
	/* another snapshot is another group */
	ck_assert_uint_eq(fs_ino_entry(&fs, 5, &a), fs_ino_version(a.version_id));
	ck_assert_uint_eq(fs_ino_entry(&fs, 5, &c), fs_ino_version(a.version_id));
	/* nlink 1 and non-regular entries keep their own ids */
	ck_assert_uint_eq(fs_ino_entry(&fs, 4, &solo), fs_ino_version(solo.version_id));
	dir.type = STRATA_T_DIR;
	ck_assert_uint_eq(fs_ino_entry(&fs, 4, &dir), fs_ino_tree(&fs, 4, 50));
	/* another device, same inode number */
	b.dev = 2;
	ck_assert_uint_eq(fs_ino_entry(&fs, 4, &b), fs_ino_version(b.version_id));
}
END_TEST

START_TEST(test_versions_across_snapshots)
{
	struct strata_entry f = reg(10, 1, 700, 1), dir = reg(11, 1, 701, 1), lnk = reg(12, 1, 702, 1);
	struct strata_entry changed = f;

	dir.type = STRATA_T_DIR;
	lnk.type = STRATA_T_LNK;
	/* an unchanged file or symlink is one inode in every snapshot */
	ck_assert_uint_eq(fs_ino_entry(&fs, 1, &f), fs_ino_entry(&fs, 2, &f));
	ck_assert_uint_eq(fs_ino_entry(&fs, 1, &lnk), fs_ino_entry(&fs, 9, &lnk));
	/* a directory is one per snapshot: the kernel gives a directory one name */
	ck_assert_uint_ne(fs_ino_entry(&fs, 1, &dir), fs_ino_entry(&fs, 2, &dir));
	/* a new version of the same node is another inode */
	changed.version_id = f.version_id + 1;
	ck_assert_uint_ne(fs_ino_entry(&fs, 2, &changed), fs_ino_entry(&fs, 1, &f));
	/* file and directory ids never meet */
	ck_assert_uint_ne(fs_ino_entry(&fs, 1, &f), fs_ino_tree(&fs, 1, 10));
}
END_TEST

START_TEST(test_hardlinks_many)
{
	/* the map grows past its first size and keeps every group */
	for (int pass = 0; pass < 2; pass++) {
		for (int64_t i = 1; i <= 5000; i++) {
			struct strata_entry first = reg(i, 7, (uint64_t)i, 2);
			struct strata_entry second = reg(100000 + i, 7, (uint64_t)i, 2);

			if (pass == 0) {
				ck_assert_uint_eq(fs_ino_entry(&fs, 3, &first),
						  fs_ino_version(first.version_id));
			} else {
				ck_assert_uint_eq(fs_ino_entry(&fs, 3, &second),
						  fs_ino_version(first.version_id));
			}
		}
	}
	ck_assert_uint_eq(fs.hl.n, 5000);
}
END_TEST

static Suite *fs_suite(void)
{
	Suite *s = suite_create("fs");
	TCase *tc = tcase_create("inode");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_roundtrip_all);
	tcase_add_test(tc, test_overflow_and_bad);
	tcase_add_test(tc, test_single_snapshot);
	tcase_add_test(tc, test_hardlinks);
	tcase_add_test(tc, test_hardlinks_many);
	tcase_add_test(tc, test_versions_across_snapshots);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(fs_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
