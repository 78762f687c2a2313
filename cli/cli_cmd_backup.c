/*
 * cli_cmd_backup.c - `strata backup`: parse the level, set, excludes and
 * tuning options, make the sources absolute (realpath; backup/ stores them
 * under that path minus the leading '/', as tar does), take the
 * repository's write lock (waiting unless --no-wait), run backup/ and print
 * a one-line summary or the snapshot as JSON.  Warnings go to stderr as
 * "warning: ..." lines; a snapshot in state warning exits with code 3.
 * STRATA_NOW (seconds since the epoch) fixes the snapshot's time for tests.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "backup.h"
#include "cli.h"

struct cli_backup_ctx {
	struct cli_progress progress;
	uint64_t warnings;
};

static void cli_backup_warn(void *vctx, const char *msg)
{
	struct cli_backup_ctx *ctx = vctx;

	ctx->warnings++;
	cli_progress_clear(&ctx->progress);
	fprintf(stderr, "warning: %s\n", msg);
}

static void cli_backup_progress(void *vctx, const struct strata_backup_progress *p)
{
	struct cli_backup_ctx *ctx = vctx;
	char read[32], stored[32], path[64] = "";

	if (!ctx->progress.enabled)
		return;
	cli_format_size(read, sizeof(read), p->bytes_read, true);
	cli_format_size(stored, sizeof(stored), p->bytes_stored, true);
	if (p->path) {
		size_t len = strlen(p->path);

		/* the tail of the path is what tells where we are */
		if (len > 40)
			strata_quote(path, sizeof(path), p->path + len - 40, 40);
		else
			strata_quote(path, sizeof(path), p->path, len);
	}
	cli_progress_update(&ctx->progress, "%llu files, %s read, %s stored  %s",
			    (unsigned long long)p->entries, read, stored, path);
}

/* Source arguments made absolute and canonical; an array of n + 1 (NULL end). */
static int cli_sources(char **args, int n, char ***ret, struct strata_error *err)
{
	char **v = calloc((size_t)n + 1, sizeof(*v));
	char quoted[512];
	int r = 0;

	if (!v)
		return strata_error_set(err, -ENOMEM, STRATA_ERR_INTERNAL, "out of memory");
	for (int i = 0; i < n; i++) {
		v[i] = realpath(args[i], NULL);
		if (!v[i]) {
			int e = errno;

			strata_quote(quoted, sizeof(quoted), args[i], strlen(args[i]));
			r = strata_error_set(err, -e, e == ENOENT ? STRATA_ERR_NOT_FOUND :
					     STRATA_ERR_IO, "cannot back up '%s': %s", quoted,
					     strerror(e));
			break;
		}
	}
	if (r < 0) {
		for (int i = 0; i < n; i++)
			free(v[i]);
		free(v);
		return r;
	}
	*ret = v;
	return 0;
}

static int cli_now(int64_t *ret, struct strata_error *err)
{
	const char *env = getenv("STRATA_NOW");
	int64_t s;

	*ret = 0;
	if (!env || !*env)
		return 0;
	if (strata_parse_i64(env, &s) < 0 || s < 0 || s > INT64_MAX / 1000000000)
		return strata_error_set(err, -EINVAL, STRATA_ERR_USAGE,
					"STRATA_NOW must be seconds since the epoch");
	*ret = s * 1000000000;
	return 0;
}

static void cli_backup_summary(const struct strata_snapshot *s)
{
	char read[32], stored[32], dur[32];

	cli_format_size(read, sizeof(read), s->bytes_read, false);
	cli_format_size(stored, sizeof(stored), s->bytes_stored, false);
	cli_format_duration(dur, sizeof(dur), s->finished_ns - s->started_ns);
	printf("snapshot %s (%s, set %s): %llu files (%llu stored), %s read, %s stored, %s",
	       s->name, strata_level_name(s->kind), s->set, (unsigned long long)s->files,
	       (unsigned long long)s->files_stored, read, stored, dur);
	if (s->state == STRATA_SNAP_WARNING)
		printf(", %llu warning%s", (unsigned long long)s->warnings,
		       s->warnings == 1 ? "" : "s");
	putchar('\n');
}

int cli_cmd_backup(int argc, char **argv, struct strata_error *err)
{
	enum {
		OPT_LABEL = 0x100,
		OPT_FRAME_SIZE,
		OPT_THREADS,
		OPT_NO_WAIT,
		OPT_COMPRESSION,
	};
	static const struct option options[] = {
		CLI_COMMON_LONG,
		{ "level", required_argument, NULL, 'l' },
		{ "set", required_argument, NULL, 's' },
		{ "exclude", required_argument, NULL, 'e' },
		{ "label", required_argument, NULL, OPT_LABEL },
		{ "one-file-system", no_argument, NULL, 'x' },
		{ "frame-size", required_argument, NULL, OPT_FRAME_SIZE },
		{ "threads", required_argument, NULL, OPT_THREADS },
		{ "no-wait", no_argument, NULL, OPT_NO_WAIT },
		{ "compression", required_argument, NULL, OPT_COMPRESSION },
		{ NULL, 0, NULL, 0 },
	};
	const char *arg_level = NULL, *arg_set = NULL, *arg_label = NULL;
	const char **arg_excludes = NULL;
	size_t n_excludes = 0;
	uint64_t arg_frame_size = 0, arg_threads = 0;
	int arg_compression = 0;
	bool arg_one_file_system = false, arg_no_wait = false;
	struct strata_backup_options bopts = { 0 };
	struct cli_backup_ctx ctx = { 0 };
	struct strata_snapshot snap = { 0 };
	struct cli_repo repo = { 0 };
	char **sources = NULL;
	int nsources = 0;
	char quoted[256];
	int c, r = 0;

	arg_excludes = calloc((size_t)argc + 1, sizeof(*arg_excludes));
	if (!arg_excludes)
		return strata_error_set(err, -ENOMEM, STRATA_ERR_INTERNAL, "out of memory");
	cli_getopt_reset();
	while ((c = getopt_long(argc, argv, CLI_COMMON_SHORT "l:s:e:x", options, NULL)) != -1) {
		r = cli_common_option(c, "backup", argv, err);
		if (r < 0)
			goto out;
		if (r == CLI_HELP_SHOWN) {
			r = 0;
			goto out;
		}
		if (r > 0)
			continue;
		switch (c) {
		case 'l':
			arg_level = optarg;
			break;
		case 's':
			arg_set = optarg;
			break;
		case 'e':
			arg_excludes[n_excludes++] = optarg;
			break;
		case OPT_LABEL:
			arg_label = optarg;
			break;
		case 'x':
			arg_one_file_system = true;
			break;
		case OPT_FRAME_SIZE:
			if (strata_parse_size(optarg, &arg_frame_size) < 0 || arg_frame_size == 0 ||
			    arg_frame_size > STRATA_FRAME_MAX) {
				r = strata_error_set(err, -EINVAL, STRATA_ERR_USAGE,
						     "backup: --frame-size '%s': a size from 1 to 8M, e.g. 256K",
						     strata_quote(quoted, sizeof(quoted), optarg,
								  strlen(optarg)));
				goto out;
			}
			break;
		case OPT_THREADS:
			if (strata_parse_u64(optarg, &arg_threads) < 0 || arg_threads == 0 ||
			    arg_threads > 1024) {
				r = strata_error_set(err, -EINVAL, STRATA_ERR_USAGE,
						     "backup: --threads '%s': a number from 1 to 1024",
						     strata_quote(quoted, sizeof(quoted), optarg,
								  strlen(optarg)));
				goto out;
			}
			break;
		case OPT_NO_WAIT:
			arg_no_wait = true;
			break;
		case OPT_COMPRESSION:
			if (cli_compression_parse(optarg, &arg_compression) < 0) {
				r = strata_error_set(err, -EINVAL, STRATA_ERR_USAGE,
						     "backup: --compression '%s': a zstd level from 1 to 19",
						     strata_quote(quoted, sizeof(quoted), optarg,
								  strlen(optarg)));
				goto out;
			}
			break;
		default:
			r = strata_error_set(err, -EINVAL, STRATA_ERR_INTERNAL,
					     "backup: unhandled option");
			goto out;
		}
	}
	r = 0;
	if (!arg_level) {
		r = strata_error_set(err, -EINVAL, STRATA_ERR_USAGE,
				     "backup: --level is required (full, incremental or differential)");
		goto out;
	}
	if (strata_level_parse(arg_level, &bopts.level) < 0) {
		r = strata_error_set(err, -EINVAL, STRATA_ERR_USAGE,
				     "backup: unknown level '%s' (full, incremental or differential)",
				     strata_quote(quoted, sizeof(quoted), arg_level, strlen(arg_level)));
		goto out;
	}
	if (arg_label && strlen(arg_label) >= STRATA_LABEL_MAX) {
		r = strata_error_set(err, -EINVAL, STRATA_ERR_USAGE,
				     "backup: --label is longer than %d bytes", STRATA_LABEL_MAX - 1);
		goto out;
	}
	if (optind >= argc) {
		r = strata_error_set(err, -EINVAL, STRATA_ERR_USAGE,
				     "backup: no SOURCE given (see strata backup --help)");
		goto out;
	}
	nsources = argc - optind;
	r = cli_sources(argv + optind, nsources, &sources, err);
	if (r < 0) {
		sources = NULL;
		goto out;
	}
	r = cli_now(&bopts.now_ns, err);
	if (r < 0)
		goto out;

	strata_heap_prefault(1u << 20);
	r = cli_repo_open(&repo, CLI_REPO_WRITE | CLI_REPO_KEY, err);
	if (r < 0)
		goto out;
	r = strata_repo_lock_write(repo.repo, false, err);
	if (r < 0 && err->kind == STRATA_ERR_LOCKED && !arg_no_wait) {
		strata_error_init(err);
		if (!arg_quiet)
			fputs("waiting for the repository lock held by another process\n", stderr);
		r = strata_repo_lock_write(repo.repo, true, err);
	}
	if (r < 0)
		goto out;

	cli_progress_init(&ctx.progress);
	bopts.set = arg_set ? arg_set : "default";
	bopts.sources = (const char *const *)sources;
	bopts.excludes = n_excludes ? arg_excludes : NULL;
	bopts.label = arg_label;
	bopts.frame_size = (uint32_t)arg_frame_size;
	bopts.threads = (int)arg_threads;
	bopts.compression_level = arg_compression;
	bopts.one_file_system = arg_one_file_system;
	bopts.warn = cli_backup_warn;
	bopts.progress = cli_backup_progress;
	bopts.ctx = &ctx;
	r = strata_backup_run(repo.repo, repo.cat, &bopts, &snap, err);
	cli_progress_clear(&ctx.progress);
	if (r < 0)
		goto out;

	if (snap.kind != bopts.level && !arg_quiet && !arg_json)
		fprintf(stderr, "note: no earlier snapshot to compare with in set '%s': made a %s backup\n",
			snap.set, strata_level_name(snap.kind));
	if (arg_json) {
		struct json_object *o = cli_json_snapshot(&snap);

		if (!o) {
			r = strata_error_set(err, -ENOMEM, STRATA_ERR_INTERNAL, "out of memory");
			goto out;
		}
		cli_json_print(o);
	} else if (!arg_quiet) {
		cli_backup_summary(&snap);
	}
	r = snap.state == STRATA_SNAP_WARNING ? CLI_EXIT_WARNING : 0;
out:
	cli_repo_close(&repo);
	if (sources) {
		for (int i = 0; i < nsources; i++)
			free(sources[i]);
		free(sources);
	}
	free(arg_excludes);
	return r;
}
