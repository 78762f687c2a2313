/*
 * cli_cmd_mount.c - `strata mount` and `strata umount`: the FUSE driver
 * (fs/fs.h) behind the command line.  Without --foreground the command forks:
 * the child mounts and serves, the parent waits for the byte the driver
 * writes on ready_fd once the mount answers, then exits 0; if the pipe
 * closes without it, the child failed (and printed its error on the shared
 * stderr): the parent exits with the child's status.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "fs.h"

int cli_cmd_mount(int argc, char **argv, struct strata_error *err)
{
	enum { OPT_FG = 0x100, OPT_ALLOW_OTHER, OPT_SNAPSHOT, OPT_CACHE, OPT_SET, OPT_DEBUG };
	static const struct option longopts[] = {
		{ "foreground", no_argument, NULL, OPT_FG },
		{ "allow-other", no_argument, NULL, OPT_ALLOW_OTHER },
		{ "snapshot", required_argument, NULL, OPT_SNAPSHOT },
		{ "cache-size", required_argument, NULL, OPT_CACHE },
		{ "set", required_argument, NULL, OPT_SET },
		{ "debug", no_argument, NULL, OPT_DEBUG },
		CLI_COMMON_LONG,
		{ NULL, 0, NULL, 0 },
	};
	struct strata_fs_options o = { .ready_fd = -1 };
	struct cli_repo r = { 0 };
	struct strata_buf cat = STRATA_BUF_INIT(0);
	const char *snap_spec = NULL;
	int c, ret, pfd[2] = { -1, -1 };

	cli_getopt_reset();
	while ((c = getopt_long(argc, argv, CLI_COMMON_SHORT, longopts, NULL)) != -1) {
		ret = cli_common_option(c, "mount", argv, err);
		if (ret == CLI_HELP_SHOWN)
			return 0;
		if (ret < 0)
			return ret;
		if (ret == 1)
			continue;
		switch (c) {
		case OPT_FG: o.foreground = true; break;
		case OPT_ALLOW_OTHER: o.allow_other = true; break;
		case OPT_SNAPSHOT: snap_spec = optarg; break;
		case OPT_SET: o.set = optarg; break;
		case OPT_DEBUG: o.debug = o.foreground = true; break;
		case OPT_CACHE:
			if (strata_parse_size(optarg, &o.cache_size) < 0 || o.cache_size < (1u << 20))
				return strata_error_set(err, -EINVAL, STRATA_ERR_USAGE,
							"invalid --cache-size '%s'", optarg);
			break;
		}
	}
	if (optind + 1 != argc)
		return strata_error_set(err, -EINVAL, STRATA_ERR_USAGE,
					"mount needs exactly one MOUNTPOINT");
	o.mountpoint = argv[optind];

	ret = cli_repo_open(&r, CLI_REPO_KEY, err);   /* asks for the passphrase here */
	if (ret < 0)
		return ret;
	if (snap_spec) {
		struct strata_snapshot s;

		ret = cli_snapshot_find(&r, snap_spec, o.set, &s, err);
		if (ret < 0)
			goto out;
		o.snapshot = s.id;
	}
	/* The driver opens its own catalog handles; none may cross the fork. */
	strata_catalog_close(r.cat);
	r.cat = NULL;
	ret = strata_buf_printf(&cat, "%s/catalog.db", strata_repo_path(r.repo));
	if (ret < 0) {
		ret = strata_error_set(err, ret, STRATA_ERR_INTERNAL, "out of memory");
		goto out;
	}
	if (!o.foreground) {
		pid_t pid;
		char b;

		fflush(NULL);
		if (pipe(pfd) < 0 || (pid = fork()) < 0) {
			ret = strata_error_errno(err, errno, "cannot start the mount process");
			goto out;
		}
		if (pid > 0) {
			int st = 0;

			close(pfd[1]);
			pfd[1] = -1;
			if (read(pfd[0], &b, 1) == 1) {
				ret = 0;            /* the mount answers; the child serves it */
				goto out;
			}
			while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
				;
			/* the child printed its error already */
			ret = WIFEXITED(st) && WEXITSTATUS(st) ? WEXITSTATUS(st) : CLI_EXIT_INTERNAL;
			goto out;
		}
		close(pfd[0]);
		pfd[0] = -1;
		o.ready_fd = pfd[1];
		pfd[1] = -1;                /* the driver owns and closes it */
	}
	ret = strata_fs_mount(r.repo, (const char *)cat.data, &o, err);
out:
	if (pfd[0] >= 0)
		close(pfd[0]);
	if (pfd[1] >= 0)
		close(pfd[1]);
	strata_buf_release(&cat);
	cli_repo_close(&r);
	return ret;
}

int cli_cmd_umount(int argc, char **argv, struct strata_error *err)
{
	static const struct option longopts[] = {
		CLI_COMMON_LONG,
		{ NULL, 0, NULL, 0 },
	};
	int c, ret;

	cli_getopt_reset();
	while ((c = getopt_long(argc, argv, CLI_COMMON_SHORT, longopts, NULL)) != -1) {
		ret = cli_common_option(c, "umount", argv, err);
		if (ret == CLI_HELP_SHOWN)
			return 0;
		if (ret < 0)
			return ret;
	}
	if (optind + 1 != argc)
		return strata_error_set(err, -EINVAL, STRATA_ERR_USAGE,
					"usage: strata umount MOUNTPOINT");
	fflush(NULL);
	execlp("fusermount3", "fusermount3", "-u", "--", argv[optind], (char *)NULL);
	execlp("umount", "umount", "--", argv[optind], (char *)NULL);
	return strata_error_errno(err, errno, "cannot run fusermount3");
}
