/*
 * fuzz_catalog.c - a hostile catalog file must never crash the catalog:
 * write the input to a temporary file, open it read-only, then check it,
 * list its snapshots, walk each one (bounded) and diff the first and last
 * snapshot of each set.  Errors are expected; crashes, leaks and hangs are
 * not.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "catalog.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define WALK_MAX 5000

static int walk_cb(void *ctx, const struct strata_entry *e, const char *path, size_t len)
{
	size_t *n = ctx;

	(void)e;
	if (path[len] != '\0')
		abort();
	return ++*n >= WALK_MAX ? 1 : 0;
}

static int diff_cb(void *ctx, const struct strata_entry *ea, const struct strata_entry *eb,
		   const char *path, size_t len)
{
	size_t *n = ctx;

	if ((!ea && !eb) || path[len] != '\0')
		abort();
	return ++*n >= WALK_MAX ? 1 : 0;
}

static void remove_all(const char *path)
{
	char p[4200];

	unlink(path);
	snprintf(p, sizeof(p), "%s-wal", path);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", path);
	unlink(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct strata_catalog_options o = { .readonly = true, .busy_timeout_ms = 10 };
	char path[] = "/tmp/fuzz_catalog.XXXXXX";
	struct strata_catalog *cat = NULL;
	struct strata_snapshot *snaps = NULL;
	struct strata_error err = { 0 };
	size_t n = 0;
	int fd;

	fd = mkstemp(path);
	if (fd < 0)
		return 0;
	if (write(fd, data, size) != (ssize_t)size) {
		close(fd);
		remove_all(path);
		return 0;
	}
	close(fd);
	if (strata_catalog_open(path, &o, &cat, &err) < 0)
		goto out;
	strata_catalog_check(cat, &err);
	if (strata_catalog_snapshot_list(cat, NULL, &snaps, &n, &err) < 0)
		goto out;
	for (size_t i = 0; i < n && i < 16; i++) {
		struct strata_archive_row *rows = NULL;
		size_t walked = 0, nrows = 0;

		strata_error_init(&err);
		strata_catalog_walk(cat, snaps[i].set_id, snaps[i].id, 0, walk_cb, &walked, &err);
		strata_error_init(&err);
		if (strata_catalog_archives(cat, snaps[i].id, &rows, &nrows, &err) == 0)
			strata_archive_rows_free(rows, nrows);
	}
	if (n >= 2) {
		size_t changes = 0;

		strata_error_init(&err);
		strata_catalog_diff(cat, snaps[0].set_id, snaps[0].id, snaps[n - 1].id, diff_cb,
				    &changes, &err);
		changes = 0;
		strata_catalog_diff(cat, snaps[0].set_id, snaps[n - 1].id, snaps[0].id, diff_cb,
				    &changes, &err);
	}
	for (size_t i = 0; i < n && i < 4; i++) {
		struct strata_entry_list l = { 0 };
		struct strata_snapshot s;

		strata_error_init(&err);
		if (strata_catalog_resolve(cat, snaps[i].set_id, snaps[i].id, "etc/a\nb", &l, &err) == 0)
			strata_entry_list_release(&l);
		strata_catalog_snapshot_find(cat, snaps[i].name, NULL, &s, &err);
	}
out:
	free(snaps);
	strata_catalog_close(cat);
	remove_all(path);
	return 0;
}
