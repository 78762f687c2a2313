/*
 * cli_cmd_restore.c - the commands that read archives back through
 * restore/: `restore` (a snapshot or some of its paths into a directory)
 * and `verify` (catalog, archives, and with --read-data every frame and
 * file hash).  Damaged content is reported one line at a time and the rest
 * still runs; the exit code is then the corrupt one.
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "restore.h"

struct cli_restore_ctx {
	struct cli_progress progress;
	struct json_object *problems;  /* --json: collected instead of printed */
	uint64_t nproblems;
};

static void cli_restore_warn(void *vctx, const char *msg)
{
	struct cli_restore_ctx *ctx = vctx;

	ctx->nproblems++;
	cli_progress_clear(&ctx->progress);
	fprintf(stderr, "warning: %s\n", msg);
}

static void cli_restore_progress(void *vctx, uint64_t entries, uint64_t bytes, const char *path)
{
	struct cli_restore_ctx *ctx = vctx;
	char size[32], shown[64] = "";

	if (!ctx->progress.enabled)
		return;
	cli_format_size(size, sizeof(size), bytes, true);
	if (path) {
		size_t len = strlen(path);

		if (len > 40)
			strata_quote(shown, sizeof(shown), path + len - 40, 40);
		else
			strata_quote(shown, sizeof(shown), path, len);
	}
	cli_progress_update(&ctx->progress, "restored %llu entries, %s  %s",
			    (unsigned long long)entries, size, shown);
}

int cli_cmd_restore(int argc, char **argv, struct strata_error *err)
{
	enum { OPT_NO_OWNER = 0x100, OPT_OVERWRITE };
	static const struct option options[] = {
		CLI_COMMON_LONG,
		{ "to", required_argument, NULL, 't' },
		{ "set", required_argument, NULL, 's' },
		{ "no-owner", no_argument, NULL, OPT_NO_OWNER },
		{ "overwrite", no_argument, NULL, OPT_OVERWRITE },
		{ NULL, 0, NULL, 0 },
	};
	struct strata_restore_options ropts = { 0 };
	struct strata_restore_stats stats = { 0 };
	struct cli_restore_ctx ctx = { 0 };
	struct cli_repo repo = { 0 };
	struct strata_snapshot snap;
	const char *arg_to = NULL, *arg_set = NULL;
	const char **paths = NULL;
	char quoted[512];
	int c, r;

	cli_getopt_reset();
	while ((c = getopt_long(argc, argv, CLI_COMMON_SHORT "t:s:", options, NULL)) != -1) {
		r = cli_common_option(c, "restore", argv, err);
		if (r < 0)
			return r;
		if (r == CLI_HELP_SHOWN)
			return 0;
		if (r > 0)
			continue;
		switch (c) {
		case 't':
			arg_to = optarg;
			break;
		case 's':
			arg_set = optarg;
			break;
		case OPT_NO_OWNER:
			ropts.no_owner = true;
			break;
		case OPT_OVERWRITE:
			ropts.overwrite = true;
			break;
		default:
			return strata_error_set(err, -EINVAL, STRATA_ERR_INTERNAL,
						"restore: unhandled option");
		}
	}
	if (optind >= argc)
		return strata_error_set(err, -EINVAL, STRATA_ERR_USAGE,
					"restore: no SNAPSHOT given (see strata restore --help)");
	if (!arg_to || !*arg_to)
		return strata_error_set(err, -EINVAL, STRATA_ERR_USAGE,
					"restore: --to DIR is required");

	if (argc - optind > 1) {
		int n = argc - optind - 1;

		paths = calloc((size_t)n + 1, sizeof(*paths));
		if (!paths)
			return strata_error_set(err, -ENOMEM, STRATA_ERR_INTERNAL, "out of memory");
		for (int i = 0; i < n; i++) {
			const char *p = argv[optind + 1 + i];

			/* paths in a snapshot are relative to its root, as tar stores them */
			while (*p == '/')
				p++;
			if (!*p) {
				r = strata_error_set(err, -EINVAL, STRATA_ERR_USAGE,
						     "restore: PATH '%s' names the whole snapshot: leave it out",
						     strata_quote(quoted, sizeof(quoted),
								  argv[optind + 1 + i],
								  strlen(argv[optind + 1 + i])));
				goto out;
			}
			paths[i] = p;
		}
	}

	r = cli_repo_open(&repo, CLI_REPO_KEY, err);
	if (r < 0)
		goto out;
	r = cli_snapshot_find(&repo, argv[optind], arg_set, &snap, err);
	if (r < 0)
		goto out;

	cli_progress_init(&ctx.progress);
	ropts.paths = paths;
	ropts.warn = cli_restore_warn;
	ropts.progress = cli_restore_progress;
	ropts.ctx = &ctx;
	r = strata_restore_run(repo.repo, repo.cat, &snap, arg_to, &ropts, &stats, err);
	cli_progress_clear(&ctx.progress);
	if (r < 0 && !(err->kind == STRATA_ERR_CORRUPT && ctx.nproblems))
		goto out;

	strata_quote(quoted, sizeof(quoted), arg_to, strlen(arg_to));
	if (arg_json) {
		struct json_object *o = json_object_new_object();

		if (o) {
			json_object_object_add(o, "snapshot", json_object_new_string(snap.name));
			json_object_object_add(o, "target", json_object_new_string(quoted));
			json_object_object_add(o, "entries", json_object_new_uint64(stats.entries));
			json_object_object_add(o, "bytes", json_object_new_uint64(stats.bytes));
			json_object_object_add(o, "errors", json_object_new_uint64(stats.errors));
			cli_json_print(o);
		}
	} else if (!arg_quiet) {
		char size[32];

		cli_format_size(size, sizeof(size), stats.bytes, false);
		printf("restored %s: %llu entries, %s to '%s'", snap.name,
		       (unsigned long long)stats.entries, size, quoted);
		if (stats.errors)
			printf(", %llu damaged", (unsigned long long)stats.errors);
		putchar('\n');
	}
	if (r < 0) {
		/* damaged content: every damaged file was printed already */
		strata_error_init(err);
		r = CLI_EXIT_CORRUPT;
	}
out:
	cli_repo_close(&repo);
	free(paths);
	return r;
}

/* ---- verify -------------------------------------------------------------- */

static void cli_verify_problem(void *vctx, const char *msg)
{
	struct cli_restore_ctx *ctx = vctx;

	ctx->nproblems++;
	cli_progress_clear(&ctx->progress);
	if (ctx->problems) {
		char *q = cli_quote(msg, strlen(msg));
		struct json_object *s = q ? json_object_new_string(q) : NULL;

		free(q);
		if (!s || json_object_array_add(ctx->problems, s) < 0)
			json_object_put(s);
		return;
	}
	printf("%s\n", msg);
	fflush(stdout);
}

static void cli_verify_progress(void *vctx, uint64_t done, uint64_t total)
{
	struct cli_restore_ctx *ctx = vctx;

	if (total)
		cli_progress_update(&ctx->progress, "verifying: %llu/%llu (%.0f%%)",
				    (unsigned long long)done, (unsigned long long)total,
				    100.0 * (double)done / (double)total);
	else
		cli_progress_update(&ctx->progress, "verifying: %llu", (unsigned long long)done);
}

int cli_cmd_verify(int argc, char **argv, struct strata_error *err)
{
	enum { OPT_READ_DATA = 0x100 };
	static const struct option options[] = {
		CLI_COMMON_LONG,
		{ "read-data", no_argument, NULL, OPT_READ_DATA },
		{ "set", required_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 },
	};
	struct strata_verify_options vopts = { 0 };
	struct strata_verify_stats stats = { 0 };
	struct cli_restore_ctx ctx = { 0 };
	struct cli_repo repo = { 0 };
	struct strata_snapshot snap;
	const char *arg_set = NULL;
	int c, r;

	cli_getopt_reset();
	while ((c = getopt_long(argc, argv, CLI_COMMON_SHORT "s:", options, NULL)) != -1) {
		r = cli_common_option(c, "verify", argv, err);
		if (r < 0)
			return r;
		if (r == CLI_HELP_SHOWN)
			return 0;
		if (r > 0)
			continue;
		switch (c) {
		case OPT_READ_DATA:
			vopts.read_data = true;
			break;
		case 's':
			arg_set = optarg;
			break;
		default:
			return strata_error_set(err, -EINVAL, STRATA_ERR_INTERNAL,
						"verify: unhandled option");
		}
	}
	if (argc - optind > 1)
		return strata_error_set(err, -EINVAL, STRATA_ERR_USAGE,
					"verify: too many arguments (see strata verify --help)");

	/* frames of sealed archives can only be opened with the key */
	r = cli_repo_open(&repo, vopts.read_data ? CLI_REPO_KEY : CLI_REPO_KEY_IF_GIVEN, err);
	if (r < 0)
		goto out;
	if (optind < argc) {
		r = cli_snapshot_find(&repo, argv[optind], arg_set, &snap, err);
		if (r < 0)
			goto out;
		vopts.snapshot = snap.id;
	}
	if (arg_json) {
		ctx.problems = json_object_new_array();
		if (!ctx.problems) {
			r = strata_error_set(err, -ENOMEM, STRATA_ERR_INTERNAL, "out of memory");
			goto out;
		}
	}

	cli_progress_init(&ctx.progress);
	vopts.problem = cli_verify_problem;
	vopts.progress = cli_verify_progress;
	vopts.ctx = &ctx;
	r = strata_verify_run(repo.repo, repo.cat, &vopts, &stats, err);
	cli_progress_clear(&ctx.progress);
	if (r < 0 && !(err->kind == STRATA_ERR_CORRUPT && ctx.nproblems))
		goto out;
	if (stats.problems < ctx.nproblems)
		stats.problems = ctx.nproblems;

	if (ctx.problems) {
		struct json_object *o = json_object_new_object();

		if (!o) {
			r = strata_error_set(err, -ENOMEM, STRATA_ERR_INTERNAL, "out of memory");
			goto out;
		}
		json_object_object_add(o, "ok", json_object_new_boolean(r == 0 && !stats.problems));
		json_object_object_add(o, "read_data", json_object_new_boolean(vopts.read_data));
		json_object_object_add(o, "archives", json_object_new_uint64(stats.archives));
		json_object_object_add(o, "frames", json_object_new_uint64(stats.frames));
		json_object_object_add(o, "files", json_object_new_uint64(stats.files));
		json_object_object_add(o, "bytes", json_object_new_uint64(stats.bytes));
		json_object_object_add(o, "problems", ctx.problems);
		ctx.problems = NULL;
		cli_json_print(o);
	} else if (!arg_quiet || stats.problems) {
		printf("verified %llu archives, %llu frames, %llu files: ",
		       (unsigned long long)stats.archives, (unsigned long long)stats.frames,
		       (unsigned long long)stats.files);
		if (stats.problems)
			printf("%llu problem%s\n", (unsigned long long)stats.problems,
			       stats.problems == 1 ? "" : "s");
		else
			printf("OK\n");
	}
	if (r < 0 || stats.problems) {
		/* every problem is printed already: no extra error line */
		strata_error_init(err);
		r = CLI_EXIT_CORRUPT;
	}
out:
	json_object_put(ctx.problems);
	cli_repo_close(&repo);
	return r;
}
