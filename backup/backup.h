/*
 * backup.h - one backup run (DESIGN.md section 6): walk the sources once,
 * compare each entry's stat with the version it is measured against,
 * write the content the level requires as a pax tar stream into a new
 * store archive, end it with .strata/manifest, and record everything in
 * the catalog in one transaction.
 *
 * A source file that cannot be read is a counted warning (the snapshot
 * completes with state "warning"); a file that changes while read is
 * retried, then reported, never stored torn.  Modules never print: the
 * run reports warnings and progress through the callbacks in the options.
 */
#ifndef STRATA_BACKUP_H
#define STRATA_BACKUP_H

#include <stdbool.h>
#include <stdint.h>

#include "catalog.h"
#include "common.h"
#include "store.h"

struct strata_backup_progress {
	uint64_t entries;      /* entries walked so far */
	uint64_t bytes_read;   /* content bytes read */
	uint64_t bytes_stored; /* compressed bytes written so far (approximate) */
	const char *path;      /* current path, borrowed */
};

struct strata_backup_options {
	const char *set;                 /* NULL = "default" */
	enum strata_level level;
	const char *const *sources;      /* absolute paths, NULL-terminated */
	const char *const *excludes;     /* fnmatch globs, NULL-terminated, may be NULL */
	/* file names, NULL-terminated, may be NULL: a directory holding one is
	 * excluded whole (e.g. ".nobackup", "CACHEDIR.TAG") */
	const char *const *exclude_if_present;
	const char *label;               /* NULL or e.g. "monthly" */
	int64_t now_ns;                  /* 0 = the clock; the snapshot's time */
	uint32_t frame_size;             /* frames inside large files; 0 = 1 MiB */
	uint32_t small_frame_size;       /* frames holding runs of small files; 0 = 32 KiB */
	int compression_level;           /* 0 = default */
	/* manifest bytes kept in memory before they go to a temporary file;
	 * 0 = 8 MiB (tests set a few bytes to exercise the file) */
	size_t manifest_mem;
	int threads;                     /* 0 = CPUs */
	bool one_file_system;
	/* Called once per warning with one line ("'/srv/x': Permission denied"). */
	void (*warn)(void *ctx, const char *msg);
	/* Called at most every 100 ms. */
	void (*progress)(void *ctx, const struct strata_backup_progress *p);
	void *ctx;
};

/*
 * Run a backup into repo/cat.  The caller holds the repository write lock
 * and has unlocked an encrypted repository.  A differential or incremental
 * without any earlier snapshot of the set becomes a full (ret->kind says
 * so).  On success fills *ret with the committed snapshot (state complete
 * or warning).  On failure nothing is committed and no archive is left.
 */
int strata_backup_run(struct strata_repo *repo, struct strata_catalog *cat,
		      const struct strata_backup_options *opts, struct strata_snapshot *ret,
		      struct strata_error *err);

/* Remove archive files (and temporaries) the catalog does not reference. Caller holds the lock. */
int strata_backup_remove_orphans(struct strata_repo *repo, struct strata_catalog *cat,
				 unsigned *ret_removed, struct strata_error *err);

#endif
