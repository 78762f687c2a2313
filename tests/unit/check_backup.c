/*
 * check_backup.c - unit tests of backup/ and restore/ through their public
 * headers: levels store what they must, unchanged entries cost no rows,
 * restore reproduces bytes and metadata (times to the nanosecond, modes,
 * hardlinks, symlinks, fifos, xattrs, holes), verify finds damage.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "backup.h"
#include "restore.h"

static char base[256], repo_path[300], src[300], cat_path[330];
static struct strata_repo *repo;
static struct strata_catalog *cat;

static void run(const char *cmd)
{
	ck_assert_msg(system(cmd) == 0, "command failed: %s", cmd);
}

static void write_file(const char *rel, const void *data, size_t n)
{
	char p[600];
	int fd;

	snprintf(p, sizeof(p), "%s/%s", src, rel);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, data, n), (ssize_t)n);
	close(fd);
}

static void set_mtime(const char *rel, long sec, long nsec)
{
	char p[600];
	struct timespec ts[2] = { { sec, nsec }, { sec, nsec } };

	snprintf(p, sizeof(p), "%s/%s", src, rel);
	ck_assert_int_eq(utimensat(AT_FDCWD, p, ts, AT_SYMLINK_NOFOLLOW), 0);
}

static void setup(void)
{
	struct strata_error err = { 0 };
	struct strata_repo_create_options ro = { 0 };
	struct strata_catalog_options co = { .create = true };
	char cmd[1200];

	snprintf(base, sizeof(base), "/tmp/check_backup.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(base));
	snprintf(repo_path, sizeof(repo_path), "%s/repo", base);
	snprintf(src, sizeof(src), "%s/src", base);
	snprintf(cat_path, sizeof(cat_path), "%s/catalog.db", repo_path);
	ck_assert_int_eq(strata_repo_create(repo_path, &ro, &err), 0);
	ck_assert_int_eq(strata_repo_open(repo_path, &repo, &err), 0);
	ck_assert_int_eq(strata_catalog_open(cat_path, &co, &cat, &err), 0);
	ck_assert_int_eq(mkdir(src, 0755), 0);
	snprintf(cmd, sizeof(cmd),
		 "cd %s && mkdir -p sub/deep empty && head -c 3000000 /dev/urandom > big && "
		 "seq 1 20000 > sub/text && ln sub/text sub/text.link && ln -s ../big sub/sym && "
		 "ln -s /nonexistent dangling && mkfifo fifo && truncate -s 10M sparse && "
		 "printf data | dd of=sparse bs=1 seek=5000000 conv=notrunc status=none && "
		 "chmod 4750 sub/deep && setfattr -n user.test -v value sub/text",
		 src);
	run(cmd);
	write_file("a.txt", "hello", 5);
	set_mtime("a.txt", 1600000000, 123456789);
}

static void teardown(void)
{
	char cmd[400];

	strata_catalog_close(cat);
	strata_repo_close(repo);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", base);
	run(cmd);
}

static void backup(enum strata_level level, struct strata_snapshot *snap)
{
	struct strata_error err = { 0 };
	const char *sources[] = { src, NULL };
	struct strata_backup_options o = { .level = level, .sources = sources, .threads = 2 };

	ck_assert_msg(strata_backup_run(repo, cat, &o, snap, &err) == 0, "backup: %s", err.msg);
}

static void restore(const struct strata_snapshot *snap, const char *to)
{
	struct strata_error err = { 0 };
	struct strata_restore_options o = { 0 };
	struct strata_restore_stats st;

	ck_assert_msg(strata_restore_run(repo, cat, snap, to, &o, &st, &err) == 0, "restore: %s",
		      err.msg);
}

/* Compare the restored tree with the source by a tree listing with find and cmp. */
static void compare(const char *restored)
{
	char cmd[4000];

	snprintf(cmd, sizeof(cmd),
		 "cd %s && find . -printf '%%p %%y %%m %%U %%G %%s %%T@ %%l %%n\\n' | sort > %s/a.lst && "
		 "cd %s%s && find . -printf '%%p %%y %%m %%U %%G %%s %%T@ %%l %%n\\n' | sort > %s/b.lst && "
		 "diff %s/a.lst %s/b.lst && diff -r --no-dereference -x fifo %s %s%s",
		 src, base, restored, src, base, base, base, src, restored, src);
	run(cmd);
}

START_TEST(test_full_roundtrip)
{
	struct strata_snapshot s;
	char to[400], p[800], v[32];
	struct stat a, b;

	backup(STRATA_LEVEL_FULL, &s);
	ck_assert_int_eq(s.kind, STRATA_LEVEL_FULL);
	ck_assert_int_eq(s.state, STRATA_SNAP_COMPLETE);
	ck_assert_uint_gt(s.bytes_stored, 0);
	snprintf(to, sizeof(to), "%s/r1", base);
	restore(&s, to);
	compare(to);
	snprintf(p, sizeof(p), "%s%s/sub/text", to, src);
	ck_assert_int_eq(lgetxattr(p, "user.test", v, sizeof(v)), 5);
	ck_assert_int_eq(memcmp(v, "value", 5), 0);
	ck_assert_int_eq(stat(p, &a), 0);
	snprintf(p, sizeof(p), "%s%s/sub/text.link", to, src);
	ck_assert_int_eq(stat(p, &b), 0);
	ck_assert_uint_eq(a.st_ino, b.st_ino);
	snprintf(p, sizeof(p), "%s%s/sparse", to, src);
	ck_assert_int_eq(stat(p, &a), 0);
	ck_assert_int_eq(a.st_size, 10 << 20);
	ck_assert_int_lt(a.st_blocks * 512, 1 << 20);
	snprintf(p, sizeof(p), "%s%s/a.txt", to, src);
	ck_assert_int_eq(stat(p, &a), 0);
	ck_assert_int_eq(a.st_mtim.tv_nsec, 123456789);
}
END_TEST

/*
 * Small frames: file data read straight into the writer's frame buffers
 * is cut at frame ends, and files straddle frames; the restored tree,
 * the archive and every file's SHA-256 must still match.
 */
START_TEST(test_small_frames)
{
	struct strata_error err = { 0 };
	const char *sources[] = { src, NULL };
	struct strata_backup_options o = { .level = STRATA_LEVEL_FULL, .sources = sources,
					   .threads = 2, .frame_size = 96u << 10,
					   .small_frame_size = 16u << 10 };
	struct strata_verify_options vo = { .read_data = true };
	struct strata_verify_stats vs;
	struct strata_snapshot s;
	char cmd[1200], to[400];

	snprintf(cmd, sizeof(cmd),
		 "cd %s && mkdir many && for i in $(seq 1 60); do "
		 "head -c $((i * 1531)) /dev/urandom > many/f$i; done && "
		 "head -c 1000003 /dev/urandom > odd && head -c 98304 /dev/urandom > exact",
		 src);
	run(cmd);
	ck_assert_msg(strata_backup_run(repo, cat, &o, &s, &err) == 0, "backup: %s", err.msg);
	ck_assert_int_eq(s.state, STRATA_SNAP_COMPLETE);
	ck_assert_msg(strata_verify_run(repo, cat, &vo, &vs, &err) == 0, "verify: %s", err.msg);
	ck_assert_uint_eq(vs.problems, 0);
	snprintf(to, sizeof(to), "%s/r1", base);
	restore(&s, to);
	compare(to);
}
END_TEST

/*
 * The manifest is the same whether its lines stay in memory or go through
 * the temporary file (a tree of more than ~70,000 entries): the same tree
 * backed up both ways into two repositories gives byte-identical
 * .strata/manifest members, one line per entry.
 */
START_TEST(test_manifest_spill)
{
	struct strata_error err = { 0 };
	const char *sources[] = { src, NULL };
	struct strata_backup_options o = { .level = STRATA_LEVEL_FULL, .sources = sources,
					   .threads = 2, .manifest_mem = 7 };
	struct strata_repo_create_options ro = { 0 };
	struct strata_catalog_options co = { .create = true };
	struct strata_repo *repo2;
	struct strata_catalog *cat2;
	struct strata_snapshot s1, s2;
	char repo2_path[400], cat2_path[450], cmd[4000];

	snprintf(cmd, sizeof(cmd), "cd %s && mkdir many && for i in $(seq 1 300); do "
		 "printf '%%s' $i > \"many/f $i\"; done", src);
	run(cmd);
	snprintf(repo2_path, sizeof(repo2_path), "%s/repo2", base);
	snprintf(cat2_path, sizeof(cat2_path), "%s/catalog.db", repo2_path);
	ck_assert_int_eq(strata_repo_create(repo2_path, &ro, &err), 0);
	ck_assert_int_eq(strata_repo_open(repo2_path, &repo2, &err), 0);
	ck_assert_int_eq(strata_catalog_open(cat2_path, &co, &cat2, &err), 0);
	o.now_ns = 1700000000000000000LL;
	ck_assert_msg(strata_backup_run(repo2, cat2, &o, &s2, &err) == 0, "backup: %s", err.msg);
	o.manifest_mem = 0;
	ck_assert_msg(strata_backup_run(repo, cat, &o, &s1, &err) == 0, "backup: %s", err.msg);
	strata_catalog_close(cat2);
	strata_repo_close(repo2);
	snprintf(cmd, sizeof(cmd),
		 "for r in repo repo2; do zstd -dcq %s/$r/archives/*.tar.zst | "
		 "tar --warning=none -xOf - .strata/manifest | grep -v ' tmp$' > %s/$r.manifest "
		 "|| exit 1; done && "
		 "cmp %s/repo.manifest %s/repo2.manifest && "
		 "test $(wc -l < %s/repo.manifest) -gt 300 && grep -q ' %s/many/f%%20300$' %s/repo.manifest",
		 base, base, base, base, base, src + 1, base);
	run(cmd);
}
END_TEST

START_TEST(test_levels)
{
	struct strata_snapshot full, inc, inc2, diff, inc3;
	struct strata_error err = { 0 };
	int64_t before, after;
	char to[400], p[800];

	backup(STRATA_LEVEL_FULL, &full);
	ck_assert_int_eq(strata_catalog_count_versions(cat, &before, &err), 0);
	backup(STRATA_LEVEL_INCREMENTAL, &inc);
	ck_assert_int_eq(strata_catalog_count_versions(cat, &after, &err), 0);
	ck_assert_int_eq(before, after);
	ck_assert_uint_eq(inc.files_stored, 0);
	ck_assert_uint_eq(inc.bytes_stored, 0);
	ck_assert_int_eq(inc.base, full.id);

	write_file("a.txt", "HELLO", 5);
	set_mtime("a.txt", 1600000001, 1);
	backup(STRATA_LEVEL_INCREMENTAL, &inc2);
	ck_assert_uint_eq(inc2.files_stored, 1);
	ck_assert_uint_eq(inc2.bytes_read, 5);

	/* differential: everything changed since the full, here a.txt and b.txt */
	write_file("b.txt", "new file", 8);
	backup(STRATA_LEVEL_DIFFERENTIAL, &diff);
	ck_assert_int_eq(diff.base, full.id);
	ck_assert_uint_eq(diff.bytes_read, 5 + 8);

	snprintf(p, sizeof(p), "%s/sub/text", src);
	ck_assert_int_eq(unlink(p), 0);
	snprintf(p, sizeof(p), "%s/sub/text.link", src);
	ck_assert_int_eq(unlink(p), 0);
	backup(STRATA_LEVEL_INCREMENTAL, &inc3);
	snprintf(to, sizeof(to), "%s/r3", base);
	restore(&inc3, to);
	compare(to);
	snprintf(p, sizeof(p), "%s%s/sub/text", to, src);
	ck_assert_int_ne(access(p, F_OK), 0);
}
END_TEST

START_TEST(test_old_snapshot_restores)
{
	struct strata_snapshot full, inc;
	char to[400], cmd[1200];

	backup(STRATA_LEVEL_FULL, &full);
	snprintf(cmd, sizeof(cmd), "cp -a %s %s/src0", src, base);
	run(cmd);
	write_file("a.txt", "changed!", 8);
	backup(STRATA_LEVEL_INCREMENTAL, &inc);
	snprintf(to, sizeof(to), "%s/r0", base);
	restore(&full, to);
	snprintf(cmd, sizeof(cmd), "diff -r --no-dereference -x fifo %s/src0 %s%s", base, to, src);
	run(cmd);
}
END_TEST

START_TEST(test_verify_finds_damage)
{
	struct strata_snapshot s;
	struct strata_error err = { 0 };
	struct strata_verify_options vo = { .read_data = true };
	struct strata_verify_stats vs;
	char cmd[1200];

	backup(STRATA_LEVEL_FULL, &s);
	ck_assert_msg(strata_verify_run(repo, cat, &vo, &vs, &err) == 0, "verify: %s", err.msg);
	ck_assert_uint_eq(vs.problems, 0);
	ck_assert_uint_gt(vs.files, 3);
	/* flip one byte in the middle of the archive */
	snprintf(cmd, sizeof(cmd),
		 "f=$(ls %s/archives/*.tar.zst) && s=$(stat -c %%s $f) && "
		 "printf '\\x55' | dd of=$f bs=1 seek=$((s/2)) conv=notrunc status=none",
		 repo_path);
	run(cmd);
	strata_error_init(&err);
	ck_assert_int_eq(strata_verify_run(repo, cat, &vo, &vs, &err), -EBADMSG);
	ck_assert_uint_gt(vs.problems, 0);
	ck_assert_ptr_nonnull(strstr(err.msg, "archive"));
}
END_TEST

START_TEST(test_excludes)
{
	struct strata_snapshot s;
	struct strata_error err = { 0 };
	const char *sources[] = { src, NULL };
	const char *ex[] = { "*.txt", "empty/", NULL };
	const char *markers[] = { ".nobackup", NULL };
	struct strata_backup_options o = { .level = STRATA_LEVEL_FULL, .sources = sources,
					   .excludes = ex, .exclude_if_present = markers };
	struct strata_entry_list l = { 0 };
	char p[600];

	snprintf(p, sizeof(p), "%s/sub/deep/.nobackup", src);
	ck_assert_int_ge(creat(p, 0644), 0);
	ck_assert_msg(strata_backup_run(repo, cat, &o, &s, &err) == 0, "backup: %s", err.msg);
	snprintf(p, sizeof(p), "%s/a.txt", src + 1);
	ck_assert_int_eq(strata_catalog_resolve(cat, s.set_id, s.id, p, &l, &err), -ENOENT);
	strata_entry_list_release(&l);
	snprintf(p, sizeof(p), "%s/empty", src + 1);
	strata_error_init(&err);
	ck_assert_int_eq(strata_catalog_resolve(cat, s.set_id, s.id, p, &l, &err), -ENOENT);
	strata_entry_list_release(&l);
	snprintf(p, sizeof(p), "%s/sub/deep", src + 1);
	strata_error_init(&err);
	ck_assert_int_eq(strata_catalog_resolve(cat, s.set_id, s.id, p, &l, &err), -ENOENT);
	strata_entry_list_release(&l);
	snprintf(p, sizeof(p), "%s/sub/text", src + 1);
	strata_error_init(&err);
	ck_assert_int_eq(strata_catalog_resolve(cat, s.set_id, s.id, p, &l, &err), 0);
	strata_entry_list_release(&l);
}
END_TEST

START_TEST(test_missing_source)
{
	struct strata_snapshot s;
	struct strata_error err = { 0 };
	const char *sources[] = { "/nonexistent/strata-source", NULL };
	struct strata_backup_options o = { .level = STRATA_LEVEL_FULL, .sources = sources };

	ck_assert_int_eq(strata_backup_run(repo, cat, &o, &s, &err), -ENOENT);
	ck_assert_int_eq(err.kind, STRATA_ERR_NOT_FOUND);
	ck_assert_ptr_nonnull(strstr(err.msg, "/nonexistent/strata-source"));
}
END_TEST

static Suite *backup_suite(void)
{
	Suite *s = suite_create("backup");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_full_roundtrip);
	tcase_add_test(tc, test_small_frames);
	tcase_add_test(tc, test_manifest_spill);
	tcase_add_test(tc, test_levels);
	tcase_add_test(tc, test_old_snapshot_restores);
	tcase_add_test(tc, test_verify_finds_damage);
	tcase_add_test(tc, test_excludes);
	tcase_add_test(tc, test_missing_source);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(backup_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
