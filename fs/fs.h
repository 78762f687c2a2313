/*
 * fs.h - the FUSE driver (DESIGN.md section 7): every complete snapshot of
 * a repository as a read-only directory tree.
 *
 *   MOUNT/<set>/<snapshot name>/<source paths...>
 *   MOUNT/<set>/latest -> <newest complete snapshot name of the set>
 *
 * or, with options.snapshot, that one snapshot's tree at MOUNT itself.
 * Snapshots that complete while mounted appear within a second, pruned ones
 * disappear, `latest` moves; a running backup is never shown.
 *
 * Only fs/ includes fuse_lowlevel.h.
 */
#ifndef STRATA_FS_H
#define STRATA_FS_H

#include <stdbool.h>
#include <stdint.h>

#include "common.h"
#include "store.h"

struct strata_fs_options {
	const char *mountpoint;
	/*
	 * false: once the mount answers (the kernel's INIT is processed),
	 * detach from the terminal: setsid(), chdir("/"), stdin/stdout/stderr
	 * to /dev/null, and log through syslog (or 'log').  The caller forks
	 * before calling strata_fs_mount in the child and waits in the parent
	 * for the byte on ready_fd (EOF without it: the child failed, reap it
	 * and exit with its status; the child printed its error on the still
	 * shared stderr).  true: stay attached, log to stderr.
	 */
	bool foreground;
	bool allow_other;   /* -o allow_other: other users, the kernel enforces backed-up modes */
	int64_t snapshot;   /* 0: every snapshot of every set; else this one at the root */
	uint64_t cache_size;/* frame cache budget in bytes; 0 = 256 MiB */
	const char *set;    /* NULL: all sets; else only this one */
	/* -1, or an fd the driver writes one byte ('1') to and closes once the
	 * mount answers.  Closed unwritten when mounting fails. */
	int ready_fd;
	bool debug;         /* libfuse -d (implies foreground) */
	/* One line per problem (damaged frame, catalog error), without a
	 * newline.  NULL: stderr, or syslog after detaching.  Called from
	 * any worker thread; must be thread-safe. */
	void (*log)(void *ctx, const char *msg);
	void *log_ctx;
};

/*
 * Mount repository 'repo' (opened, and unlocked when encrypted; borrowed for
 * the call) using its catalog at 'catalog_path' (opened read-only, one
 * handle per worker thread) and serve requests until the file system is
 * unmounted (fusermount3 -u, umount) or SIGINT, SIGTERM or SIGHUP arrives,
 * then unmount cleanly.  Returns 0 after a clean session; -ENOENT
 * (not-found) for an unknown options.snapshot or set, -ENOTCONN/-EIO (io)
 * when /dev/fuse or the mount itself fails, -EINVAL (usage) for bad
 * options.  Call from the main thread of a process with no other threads
 * running (signal handlers are installed for the duration of the call).
 */
int strata_fs_mount(struct strata_repo *repo, const char *catalog_path,
		    const struct strata_fs_options *opts, struct strata_error *err);

#endif
