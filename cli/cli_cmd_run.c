/*
 * cli_cmd_run.c - the scheduled side of strata: `strata run` (decide per
 * set which level is due from the policy and the catalog, run the hooks,
 * back up, prune), `strata prune` (retention with dependencies) and
 * `strata status` (newest snapshot per set and level against the RPO).
 *
 * What is due never depends on when run happens to be called: for each
 * level (monthly > full > differential > incremental) the most recent
 * scheduled time at or before now (STRATA_NOW, or the clock) is compared
 * with the newest complete snapshot that covers that level: any snapshot
 * covers an incremental, a differential or full covers a differential, a
 * full covers a full, and a full labelled "monthly" covers the monthly.  The
 * highest level not covered since its scheduled time is taken, so a run
 * that was missed is caught up by the next one, and one backup satisfies
 * every level it covers.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backup.h"
#include "cli.h"

#define NS 1000000000LL

/* ---- arguments shared by run, prune and status ----------------------- */

enum {
	OPT_NO_WAIT = 0x200,
	OPT_DRY_RUN,
	OPT_NO_PRUNE,
	OPT_KEY_BASE = 0x300,
};

enum sched_allow {
	ALLOW_NO_WAIT = 1 << 0,
	ALLOW_DRY_RUN = 1 << 1,
	ALLOW_NO_PRUNE = 1 << 2,
};

struct sched_args {
	const char **keys, **values;
	size_t n;
	const char **sets;   /* NULL-terminated, or NULL when none given */
	size_t nsets;
	bool no_wait, dry_run, no_prune;
	struct cli_overrides ov;
};

static void sched_args_release(struct sched_args *a)
{
	free(a->keys);
	free(a->values);
	free(a->sets);
}

static int sched_args_parse(const char *cmd, int argc, char **argv, unsigned allow,
			    struct sched_args *a, struct strata_error *err)
{
	struct option options[64];
	size_t no = 0;
	int c, r = 0;

	memset(a, 0, sizeof(*a));
	{
		static const struct option common[] = { CLI_COMMON_LONG };

		for (size_t i = 0; i < sizeof(common) / sizeof(common[0]); i++)
			options[no++] = common[i];
	}
	options[no++] = (struct option){ "set", required_argument, NULL, 's' };
	if (allow & ALLOW_NO_WAIT)
		options[no++] = (struct option){ "no-wait", no_argument, NULL, OPT_NO_WAIT };
	if (allow & ALLOW_DRY_RUN)
		options[no++] = (struct option){ "dry-run", no_argument, NULL, OPT_DRY_RUN };
	if (allow & ALLOW_NO_PRUNE)
		options[no++] = (struct option){ "no-prune", no_argument, NULL, OPT_NO_PRUNE };
	for (int i = 0; cli_set_keys[i]; i++)
		options[no++] = (struct option){ cli_set_keys[i], required_argument, NULL,
						 OPT_KEY_BASE + i };
	options[no] = (struct option){ NULL, 0, NULL, 0 };

	a->keys = calloc((size_t)argc + 1, sizeof(*a->keys));
	a->values = calloc((size_t)argc + 1, sizeof(*a->values));
	a->sets = calloc((size_t)argc + 1, sizeof(*a->sets));
	if (!a->keys || !a->values || !a->sets)
		return strata_error_set(err, -ENOMEM, STRATA_ERR_INTERNAL, "out of memory");
	cli_getopt_reset();
	while ((c = getopt_long(argc, argv, CLI_COMMON_SHORT "s:", options, NULL)) != -1) {
		r = cli_common_option(c, cmd, argv, err);
		if (r < 0 || r == CLI_HELP_SHOWN)
			return r;
		if (r > 0)
			continue;
		r = 0;
		if (c == 's') {
			a->sets[a->nsets++] = optarg;
		} else if (c == OPT_NO_WAIT) {
			a->no_wait = true;
		} else if (c == OPT_DRY_RUN) {
			a->dry_run = true;
		} else if (c == OPT_NO_PRUNE) {
			a->no_prune = true;
		} else if (c >= OPT_KEY_BASE && c < OPT_KEY_BASE + 32) {
			a->keys[a->n] = cli_set_keys[c - OPT_KEY_BASE];
			a->values[a->n++] = optarg;
		} else {
			return strata_error_set(err, -EINVAL, STRATA_ERR_INTERNAL,
						"%s: unhandled option", cmd);
		}
	}
	if (optind < argc) {
		char q[256];

		return strata_error_set(err, -EINVAL, STRATA_ERR_USAGE,
					"%s: unexpected argument '%s' (see strata %s --help)", cmd,
					strata_quote(q, sizeof(q), argv[optind], strlen(argv[optind])),
					cmd);
	}
	a->ov.keys = a->keys;
	a->ov.values = a->values;
	a->ov.n = a->n;
	a->ov.only_sets = a->nsets ? a->sets : NULL;
	return 0;
}

static bool set_selected(const struct sched_args *a, const char *name)
{
	if (!a->nsets)
		return true;
	for (size_t i = 0; i < a->nsets; i++)
		if (strcmp(a->sets[i], name) == 0)
			return true;
	return false;
}

/* ---- policy ------------------------------------------------------------ */

static int level_rank(enum strata_level k)
{
	return k == STRATA_LEVEL_FULL ? 2 : k == STRATA_LEVEL_DIFFERENTIAL ? 1 : 0;
}

/* Does snapshot s cover level l (see the top of the file)? */
static bool covers(const struct cli_level_policy *l, const struct strata_snapshot *s)
{
	return level_rank(s->kind) >= level_rank(l->kind) &&
	       (!l->label || strcmp(s->label, l->label) == 0);
}

/* The policy level a snapshot is retained by: its label's, else its kind's. */
static const struct cli_level_policy *level_of(const struct cli_set *set,
					       const struct strata_snapshot *s)
{
	for (int l = 0; s->label[0] && l < CLI_LV_COUNT; l++)
		if (set->levels[l].label && strcmp(set->levels[l].label, s->label) == 0 &&
		    set->levels[l].kind == s->kind)
			return &set->levels[l];
	for (int l = 0; l < CLI_LV_COUNT; l++)
		if (!set->levels[l].label && set->levels[l].kind == s->kind)
			return &set->levels[l];
	return NULL;
}

/* Newest snapshot (of snaps, oldest first) covering level l, or NULL. */
static const struct strata_snapshot *newest_covering(const struct cli_level_policy *l,
						     const struct strata_snapshot *snaps, size_t n)
{
	for (size_t i = n; i-- > 0;)
		if (covers(l, &snaps[i]))
			return &snaps[i];
	return NULL;
}

/* The highest level due at 'now', or -1; *ret_sched its scheduled time. */
static int due_level(const struct cli_set *set, const struct strata_snapshot *snaps, size_t n,
		     int64_t now, int64_t *ret_sched)
{
	for (int l = 0; l < CLI_LV_COUNT; l++) {
		const struct strata_snapshot *s;
		int64_t t;

		if (!cli_calendar_last(&set->levels[l].when, now, &t))
			continue;
		s = newest_covering(&set->levels[l], snaps, n);
		if (!s || s->started_ns < t * NS) {
			*ret_sched = t;
			return l;
		}
	}
	return -1;
}

static void fmt_local(int64_t t, char *dst, size_t size)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (localtime_r(&tt, &tm))
		strftime(dst, size, "%Y-%m-%d %H:%M", &tm);
	else
		snprintf(dst, size, "?");
}

/* ---- hooks ------------------------------------------------------------- */

/*
 * Run cmd with /bin/sh in its own process group, stdout to our stderr,
 * with STRATA_SET, STRATA_LEVEL and (post) STRATA_RESULT/STRATA_SNAPSHOT
 * in its environment.  Killed (TERM, then KILL) after timeout seconds.
 */
static int run_hook(const char *what, const char *cmd, int64_t timeout, const char *set,
		    const char *level, const char *result, const char *snapshot,
		    struct strata_error *err)
{
	struct timespec tick = { 0, 20 * 1000 * 1000 };
	int64_t waited_ms = 0;
	int status = 0;
	pid_t pid, w;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0)
		return strata_error_errno(err, errno, "set '%s': cannot run %s", set, what);
	if (pid == 0) {
		setpgid(0, 0);
		if (dup2(STDERR_FILENO, STDOUT_FILENO) < 0)
			_exit(127);
		setenv("STRATA_SET", set, 1);
		setenv("STRATA_LEVEL", level, 1);
		if (arg_repo)
			setenv("STRATA_REPOSITORY", arg_repo, 1);
		if (result)
			setenv("STRATA_RESULT", result, 1);
		if (snapshot)
			setenv("STRATA_SNAPSHOT", snapshot, 1);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	setpgid(pid, pid);
	for (;;) {
		w = waitpid(pid, &status, WNOHANG);
		if (w == pid)
			break;
		if (w < 0 && errno != EINTR)
			return strata_error_errno(err, errno, "set '%s': %s", set, what);
		if (waited_ms >= timeout * 1000) {
			kill(-pid, SIGTERM);
			for (int i = 0; i < 100 && waitpid(pid, &status, WNOHANG) == 0; i++)
				nanosleep(&tick, NULL);
			kill(-pid, SIGKILL);
			waitpid(pid, &status, 0);
			return strata_error_set(err, -ETIMEDOUT, STRATA_ERR_IO,
						"set '%s': %s timed out after %llds and was killed", set,
						what, (long long)timeout);
		}
		nanosleep(&tick, NULL);
		waited_ms += 20;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (WIFSIGNALED(status))
		return strata_error_set(err, -EIO, STRATA_ERR_IO, "set '%s': %s killed by signal %d",
					set, what, WTERMSIG(status));
	return strata_error_set(err, -EIO, STRATA_ERR_IO, "set '%s': %s failed with exit status %d",
				set, what, WEXITSTATUS(status));
}

/* ---- prune ------------------------------------------------------------- */

/*
 * Test hook, never set in production: STRATA_TEST_PRUNE_KILL=STAGE[:N]
 * kills this process with SIGKILL at the N-th (default first) prune stage
 * named STAGE ("begin", "snapshot", "commit", "unlink"), so tests can prove
 * that a prune killed anywhere leaves a repository verify accepts.
 */
static void prune_step(void *ctx, const char *stage)
{
	static unsigned count;
	const char *env = getenv("STRATA_TEST_PRUNE_KILL");
	size_t n;
	uint64_t want = 1;

	(void)ctx;
	if (!env || !*env)
		return;
	n = strcspn(env, ":");
	if (strlen(stage) != n || strncmp(stage, env, n) != 0)
		return;
	if (env[n] == ':' && strata_parse_u64(env + n + 1, &want) < 0)
		want = 1;
	if (++count == want) {
		fflush(stdout);
		raise(SIGKILL);
	}
}

static void prune_reason(const struct strata_prune_item *it, const struct strata_prune_item *items,
			 size_t n, const struct cli_level_policy *lp, char *dst, size_t size)
{
	char keep[32];
	const struct strata_prune_item *b = NULL;

	for (size_t i = 0; it->because && i < n; i++)
		if (items[i].snap.id == it->because)
			b = &items[i];
	if (lp)
		cli_duration_format(lp->keep, keep, sizeof(keep));
	switch (it->why) {
	case STRATA_PRUNE_EXPIRED:
		snprintf(dst, size, "removed: %s older than %s", lp ? lp->name : "?", keep);
		return;
	case STRATA_PRUNE_RETAINED:
		if (lp && lp->keep == 0)
			snprintf(dst, size, "kept: %s kept forever", lp->name);
		else
			snprintf(dst, size, "kept: %s within %s", lp ? lp->name : "?", keep);
		return;
	case STRATA_PRUNE_UNMANAGED:
		snprintf(dst, size, "kept: set '%s' is not in the configuration", it->snap.set);
		return;
	case STRATA_PRUNE_NEWEST:
		snprintf(dst, size, "kept: newest snapshot of set '%s'", it->snap.set);
		return;
	case STRATA_PRUNE_BASE:
		snprintf(dst, size, "kept: base of %s %s", b ? strata_level_name(b->snap.kind) : "?",
			 b ? b->snap.name : "?");
		return;
	case STRATA_PRUNE_DATA:
		snprintf(dst, size, "kept: entries it stored are still in %s", b ? b->snap.name : "?");
		return;
	}
	snprintf(dst, size, "?");
}

struct prune_totals {
	uint64_t kept, removed, archives, versions;
};

/*
 * Decide and (unless dry_run) apply retention over every complete
 * snapshot of the repository.  The caller holds the write lock unless
 * dry_run.  Prints one line per snapshot when 'print' (or adds them to
 * jarr when not NULL).
 */
static int prune_repo(struct cli_repo *repo, struct cli_config *cfg, const struct sched_args *a,
		      int64_t now, bool dry_run, bool print, struct json_object *jarr,
		      struct prune_totals *tot, struct strata_error *err)
{
	struct strata_snapshot *snaps = NULL;
	struct strata_prune_item *items = NULL;
	struct strata_prune_result res = { 0 };
	size_t n = 0;
	int r;

	memset(tot, 0, sizeof(*tot));
	r = strata_catalog_snapshot_list(repo->cat, NULL, &snaps, &n, err);
	if (r < 0)
		return r;
	items = calloc(n ? n : 1, sizeof(*items));
	if (!items) {
		r = strata_error_set(err, -ENOMEM, STRATA_ERR_INTERNAL, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		const struct cli_set *set = set_selected(a, snaps[i].set) ?
						    cli_config_policy(cfg, snaps[i].set) : NULL;
		const struct cli_level_policy *lp = set ? level_of(set, &snaps[i]) : NULL;

		items[i].snap = snaps[i];
		if (!lp) {
			items[i].keep = true;
			items[i].why = STRATA_PRUNE_UNMANAGED;
		} else if (lp->keep == 0 || now * NS - snaps[i].started_ns <= lp->keep * NS) {
			items[i].keep = true;
			items[i].why = STRATA_PRUNE_RETAINED;
		} else {
			items[i].why = STRATA_PRUNE_EXPIRED;
		}
	}
	if (dry_run)
		r = strata_catalog_prune_plan(repo->cat, items, n, err);
	else
		r = strata_catalog_prune_apply(repo->cat, items, n, prune_step, NULL, &res, err);
	if (r < 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		const struct strata_prune_item *it = &items[i];
		const struct cli_set *set = cli_config_policy(cfg, it->snap.set);
		char reason[256];

		prune_reason(it, items, n, set ? level_of(set, &it->snap) : NULL, reason,
			     sizeof(reason));
		if (it->keep)
			tot->kept++;
		else
			tot->removed++;
		if (jarr) {
			struct json_object *o = json_object_new_object();

			json_object_object_add(o, "id", json_object_new_int64(it->snap.id));
			json_object_object_add(o, "set", json_object_new_string(it->snap.set));
			json_object_object_add(o, "name", json_object_new_string(it->snap.name));
			json_object_object_add(o, "kind",
					       json_object_new_string(strata_level_name(it->snap.kind)));
			json_object_object_add(o, "label", it->snap.label[0] ?
					       json_object_new_string(it->snap.label) : NULL);
			json_object_object_add(o, "action",
					       json_object_new_string(it->keep ? "keep" : "remove"));
			json_object_object_add(o, "reason", json_object_new_string(reason));
			json_object_array_add(jarr, o);
		} else if (print) {
			printf("%s/%s  %s\n", it->snap.set, it->snap.name, reason);
		}
	}
	if (!dry_run) {
		int dfd = strata_repo_archives_fd(repo->repo);
		unsigned orphans = 0;

		tot->archives = res.archives;
		tot->versions = res.versions;
		for (size_t i = 0; i < res.n_archive_names; i++) {
			prune_step(NULL, "unlink");
			if (unlinkat(dfd, res.archive_names[i], 0) < 0 && errno != ENOENT) {
				r = strata_error_errno(err, errno, "cannot remove archive '%s'",
						       res.archive_names[i]);
				goto out;
			}
		}
		if (res.n_archive_names)
			fsync(dfd);
		/* Files left by a prune or backup that was killed. */
		r = strata_backup_remove_orphans(repo->repo, repo->cat, &orphans, err);
		if (r < 0)
			goto out;
	}
out:
	strata_prune_result_release(&res);
	free(items);
	free(snaps);
	return r;
}

/* Open read-write and take the write lock, waiting with a message unless no_wait. */
static int open_locked(struct cli_repo *repo, unsigned flags, bool no_wait, struct strata_error *err)
{
	int r = cli_repo_open(repo, flags | CLI_REPO_WRITE, err);

	if (r < 0)
		return r;
	r = strata_repo_lock_write(repo->repo, false, err);
	if (r < 0 && err->kind == STRATA_ERR_LOCKED && !no_wait) {
		strata_error_init(err);
		if (!arg_quiet)
			fputs("waiting for the repository lock held by another process\n", stderr);
		r = strata_repo_lock_write(repo->repo, true, err);
	}
	return r;
}

int cli_cmd_prune(int argc, char **argv, struct strata_error *err)
{
	struct sched_args a;
	struct cli_config cfg = { 0 };
	struct cli_repo repo = { 0 };
	struct prune_totals tot;
	struct json_object *jarr = NULL;
	int64_t now;
	int r;

	r = sched_args_parse("prune", argc, argv, ALLOW_NO_WAIT | ALLOW_DRY_RUN, &a, err);
	if (r != 0)
		goto out_args;
	r = cli_config_load(&cfg, false, &a.ov, err);
	if (r < 0)
		goto out_args;
	r = cli_now_seconds(&now, err);
	if (r < 0)
		goto out;
	if (a.dry_run)
		r = cli_repo_open(&repo, 0, err);
	else
		r = open_locked(&repo, 0, a.no_wait, err);
	if (r < 0)
		goto out;
	if (arg_json)
		jarr = json_object_new_array();
	r = prune_repo(&repo, &cfg, &a, now, a.dry_run, a.dry_run || arg_verbose > 0, jarr, &tot, err);
	if (r < 0)
		goto out;
	if (jarr) {
		struct json_object *o = json_object_new_object();

		json_object_object_add(o, "dry_run", json_object_new_boolean(a.dry_run));
		json_object_object_add(o, "kept", json_object_new_int64((int64_t)tot.kept));
		json_object_object_add(o, "removed", json_object_new_int64((int64_t)tot.removed));
		json_object_object_add(o, "archives_removed",
				       json_object_new_int64((int64_t)tot.archives));
		json_object_object_add(o, "snapshots", jarr);
		jarr = NULL;
		cli_json_print(o);
	} else if (!arg_quiet) {
		printf("%s %llu snapshot%s, kept %llu\n", a.dry_run ? "would remove" : "removed",
		       (unsigned long long)tot.removed, tot.removed == 1 ? "" : "s",
		       (unsigned long long)tot.kept);
	}
out:
	json_object_put(jarr);
	cli_repo_close(&repo);
	cli_config_release(&cfg);
	arg_repo = NULL;
out_args:
	sched_args_release(&a);
	return r == CLI_HELP_SHOWN ? 0 : r;
}

/* ---- run --------------------------------------------------------------- */

struct run_warn_ctx {
	uint64_t warnings;
};

static void run_warn(void *vctx, const char *msg)
{
	struct run_warn_ctx *ctx = vctx;

	ctx->warnings++;
	fprintf(stderr, "warning: %s\n", msg);
}

/* Canonical sources (backup wants absolute real paths). */
static int real_sources(const struct cli_set *s, char ***ret, struct strata_error *err)
{
	char **v = calloc(s->nsources + 1, sizeof(*v));

	if (!v)
		return strata_error_set(err, -ENOMEM, STRATA_ERR_INTERNAL, "out of memory");
	for (size_t i = 0; i < s->nsources; i++) {
		v[i] = realpath(s->sources[i], NULL);
		if (!v[i]) {
			int e = errno;

			for (size_t j = 0; j < i; j++)
				free(v[j]);
			free(v);
			return strata_error_set(err, -e, e == ENOENT ? STRATA_ERR_NOT_FOUND : STRATA_ERR_IO,
						"set '%s': cannot back up '%s': %s", s->name,
						s->sources[i], strerror(e));
		}
	}
	*ret = v;
	return 0;
}

static void free_sources(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

/* One set: what is due, hooks, backup.  Returns 0 or a negative errno (err filled). */
static int run_set(struct cli_repo *repo, const struct cli_set *set, int64_t now,
		   struct json_object *jo, struct strata_snapshot *ret_snap, bool *ret_ran,
		   struct strata_error *err)
{
	struct strata_snapshot *snaps = NULL, snap = { 0 };
	struct strata_backup_options bopts = { 0 };
	struct run_warn_ctx wctx = { 0 };
	struct strata_error herr;
	const struct cli_level_policy *lp;
	char **sources = NULL;
	char when[64];
	int64_t sched = 0;
	size_t n = 0;
	bool have_full = false;
	int l, r;

	*ret_ran = false;
	r = strata_catalog_snapshot_list(repo->cat, set->name, &snaps, &n, err);
	if (r < 0)
		return r;
	l = due_level(set, snaps, n, now, &sched);
	if (l < 0) {
		int64_t next = INT64_MAX, t;
		char nextbuf[64] = "never";
		int nl = -1;

		for (int i = 0; i < CLI_LV_COUNT; i++)
			if (cli_calendar_next(&set->levels[i].when, now, &t) && t < next) {
				next = t;
				nl = i;
			}
		if (nl >= 0)
			fmt_local(next, nextbuf, sizeof(nextbuf));
		if (!arg_quiet && !arg_json)
			printf("set %s: nothing due (next: %s at %s)\n", set->name,
			       nl >= 0 ? set->levels[nl].name : "none", nextbuf);
		json_object_object_add(jo, "due", NULL);
		r = 0;
		goto out;
	}
	lp = &set->levels[l];
	fmt_local(sched, when, sizeof(when));
	json_object_object_add(jo, "due", json_object_new_string(lp->name));
	json_object_object_add(jo, "scheduled", json_object_new_int64(sched));
	for (size_t i = 0; i < n; i++)
		have_full = have_full || snaps[i].kind == STRATA_LEVEL_FULL;
	if (arg_verbose > 0 && !arg_json)
		printf("set %s: %s due (scheduled %s)\n", set->name, lp->name, when);

	if (set->pre_hook) {
		r = run_hook("pre-hook", set->pre_hook, set->hook_timeout, set->name, lp->name, NULL,
			     NULL, err);
		if (r < 0) {
			if (set->post_hook) {
				strata_error_init(&herr);
				if (run_hook("post-hook", set->post_hook, set->hook_timeout, set->name,
					     lp->name, "failure", NULL, &herr) < 0)
					fprintf(stderr, "strata: %s\n", herr.msg);
			}
			goto out;
		}
	}
	r = real_sources(set, &sources, err);
	if (r == 0) {
		bopts.set = set->name;
		bopts.level = lp->kind;
		bopts.sources = (const char *const *)sources;
		bopts.excludes = set->nexcludes ? (const char *const *)set->excludes : NULL;
		bopts.exclude_if_present = set->nmarkers ? (const char *const *)set->markers : NULL;
		bopts.one_file_system = set->one_file_system;
		bopts.compression_level = set->compression;
		bopts.label = lp->label;
		bopts.now_ns = now * NS;
		bopts.warn = run_warn;
		bopts.ctx = &wctx;
		r = strata_backup_run(repo->repo, repo->cat, &bopts, &snap, err);
	}
	if (set->post_hook) {
		strata_error_init(&herr);
		if (run_hook("post-hook", set->post_hook, set->hook_timeout, set->name, lp->name,
			     r < 0 ? "failure" : snap.state == STRATA_SNAP_WARNING ? "warning" : "success",
			     r < 0 ? NULL : snap.name, &herr) < 0) {
			fprintf(stderr, "strata: %s\n", herr.msg);
			if (r == 0 && !arg_quiet)
				fprintf(stderr, "warning: set '%s': the snapshot %s is kept\n", set->name,
					snap.name);
		}
	}
	if (r < 0)
		goto out;
	*ret_ran = true;
	*ret_snap = snap;
	if (snap.kind != lp->kind && !arg_quiet && !arg_json)
		fprintf(stderr, "note: set '%s': no full backup to base the %s on: made a full backup\n",
			set->name, lp->name);
	else if (lp->kind != STRATA_LEVEL_FULL && !have_full && !arg_quiet && !arg_json)
		fprintf(stderr, "note: set '%s': no full backup before: made a full backup\n", set->name);
	if (!arg_quiet && !arg_json) {
		char stored[32], dur[32];

		cli_format_size(stored, sizeof(stored), snap.bytes_stored, false);
		cli_format_duration(dur, sizeof(dur), snap.finished_ns - snap.started_ns);
		printf("set %s: %s (scheduled %s): snapshot %s, %llu files (%llu stored), %s stored, %s%s\n",
		       set->name, lp->name, when, snap.name, (unsigned long long)snap.files,
		       (unsigned long long)snap.files_stored, stored, dur,
		       snap.state == STRATA_SNAP_WARNING ? ", with warnings" : "");
	}
out:
	free_sources(sources);
	free(snaps);
	return r;
}

int cli_cmd_run(int argc, char **argv, struct strata_error *err)
{
	struct sched_args a;
	struct cli_config cfg = { 0 };
	struct cli_repo repo = { 0 };
	struct json_object *jsets = NULL, *jprune = NULL;
	struct prune_totals tot = { 0 };
	int64_t now;
	int r, exit_code = 0;
	bool any = false, warned = false;

	r = sched_args_parse("run", argc, argv, ALLOW_NO_WAIT | ALLOW_NO_PRUNE, &a, err);
	if (r != 0)
		goto out_args;
	strata_heap_prefault(1u << 20);
	r = cli_config_load(&cfg, arg_config != NULL, &a.ov, err);
	if (r < 0)
		goto out_args;
	if (cfg.nsets == 0) {
		r = strata_error_set(err, -EINVAL, STRATA_ERR_USAGE,
				     cfg.path ? "run: no [set NAME] in '%s'" :
				     "run: no configuration '%s' and no --source",
				     cfg.path ? cfg.path : CLI_CONFIG_DEFAULT);
		goto out;
	}
	for (size_t i = 0; i < a.nsets; i++)
		if (!cli_config_set(&cfg, a.sets[i]) || cli_config_set(&cfg, a.sets[i])->nsources == 0) {
			r = strata_error_set(err, -EINVAL, STRATA_ERR_USAGE,
					     "run: set '%s' has no source (not in the configuration)",
					     a.sets[i]);
			goto out;
		}
	r = cli_now_seconds(&now, err);
	if (r < 0)
		goto out;
	r = open_locked(&repo, CLI_REPO_KEY, a.no_wait, err);
	if (r < 0)
		goto out;
	if (arg_json)
		jsets = json_object_new_array();
	for (size_t i = 0; i < cfg.nsets; i++) {
		const struct cli_set *set = &cfg.sets[i];
		struct json_object *jo = json_object_new_object();
		struct strata_snapshot snap;
		struct strata_error serr;
		bool ran = false;

		if (!set_selected(&a, set->name) || set->nsources == 0) {
			json_object_put(jo);
			continue;
		}
		any = true;
		strata_error_init(&serr);
		json_object_object_add(jo, "set", json_object_new_string(set->name));
		r = run_set(&repo, set, now, jo, &snap, &ran, &serr);
		if (r < 0) {
			if (serr.kind == STRATA_ERR_NONE)
				strata_error_set(&serr, r, STRATA_ERR_INTERNAL, "%s", strerror(-r));
			fprintf(stderr, "strata: %s\n", serr.msg);
			if (!exit_code)
				exit_code = cli_exit_code(serr.kind);
			json_object_object_add(jo, "error", json_object_new_string(serr.msg));
		} else if (ran) {
			warned = warned || snap.state == STRATA_SNAP_WARNING;
			json_object_object_add(jo, "snapshot", cli_json_snapshot(&snap));
		}
		if (jsets)
			json_object_array_add(jsets, jo);
		else
			json_object_put(jo);
	}
	r = 0;
	if (any && !a.no_prune) {
		if (arg_json)
			jprune = json_object_new_array();
		r = prune_repo(&repo, &cfg, &a, now, false, arg_verbose > 0 && !arg_json, jprune, &tot,
			       err);
		if (r < 0)
			goto out;
		if (!arg_quiet && !arg_json && tot.removed)
			printf("pruned %llu snapshot%s (%llu archive%s), kept %llu\n",
			       (unsigned long long)tot.removed, tot.removed == 1 ? "" : "s",
			       (unsigned long long)tot.archives, tot.archives == 1 ? "" : "s",
			       (unsigned long long)tot.kept);
	}
	if (jsets) {
		struct json_object *o = json_object_new_object();

		json_object_object_add(o, "time", json_object_new_int64(now));
		json_object_object_add(o, "sets", jsets);
		jsets = NULL;
		if (jprune) {
			json_object_object_add(o, "pruned", jprune);
			jprune = NULL;
		}
		cli_json_print(o);
	}
	r = exit_code ? exit_code : warned ? CLI_EXIT_WARNING : 0;
out:
	json_object_put(jsets);
	json_object_put(jprune);
	cli_repo_close(&repo);
	cli_config_release(&cfg);
	arg_repo = NULL;
out_args:
	sched_args_release(&a);
	return r == CLI_HELP_SHOWN ? 0 : r;
}

/* ---- status ------------------------------------------------------------ */

int cli_cmd_status(int argc, char **argv, struct strata_error *err)
{
	static const char *const headers[] = { "SET", "LEVEL", "NEWEST", "AGE", "DUE" };
	static const bool right[] = { false, false, false, true, false };
	struct sched_args a;
	struct cli_config cfg = { 0 };
	struct cli_repo repo = { 0 };
	struct strata_snapshot *all = NULL;
	struct json_object *jarr = NULL;
	struct cli_table *table = NULL;
	char **names = NULL;
	size_t nall = 0, nnames = 0;
	int64_t now;
	bool breached = false;
	int r;

	r = sched_args_parse("status", argc, argv, 0, &a, err);
	if (r != 0)
		goto out_args;
	r = cli_config_load(&cfg, arg_config != NULL, &a.ov, err);
	if (r < 0)
		goto out_args;
	r = cli_now_seconds(&now, err);
	if (r < 0)
		goto out;
	r = cli_repo_open(&repo, 0, err);
	if (r < 0)
		goto out;
	r = strata_catalog_snapshot_list(repo.cat, NULL, &all, &nall, err);
	if (r < 0)
		goto out;
	/* Sets: the configured ones, else those in the repository. */
	names = calloc(cfg.nsets + nall + 1, sizeof(*names));
	if (!names) {
		r = strata_error_set(err, -ENOMEM, STRATA_ERR_INTERNAL, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < cfg.nsets; i++)
		if (set_selected(&a, cfg.sets[i].name))
			names[nnames++] = cfg.sets[i].name;
	if (!cfg.path) {
		for (size_t i = 0; i < nall; i++) {
			bool seen = false;

			for (size_t j = 0; j < nnames && !seen; j++)
				seen = strcmp(names[j], all[i].set) == 0;
			if (!seen && set_selected(&a, all[i].set))
				names[nnames++] = all[i].set;
		}
	}
	if (arg_json)
		jarr = json_object_new_array();
	else
		table = cli_table_new(5, headers, right);
	for (size_t k = 0; k < nnames; k++) {
		const struct cli_set *set = cli_config_policy(&cfg, names[k]);
		struct strata_snapshot *snaps = NULL;
		const struct strata_snapshot *newest;
		struct json_object *jo = NULL, *jl = NULL;
		size_t n = 0;
		int64_t sched = 0, age = -1;
		int due;
		bool bad;

		/* all[] is ordered by id, not by set: gather this set's ones */
		snaps = calloc(nall ? nall : 1, sizeof(*snaps));
		if (!snaps) {
			r = strata_error_set(err, -ENOMEM, STRATA_ERR_INTERNAL, "out of memory");
			goto out;
		}
		for (size_t i = 0; i < nall; i++)
			if (strcmp(all[i].set, names[k]) == 0)
				snaps[n++] = all[i];
		newest = n ? &snaps[n - 1] : NULL;
		if (newest)
			age = now - newest->started_ns / NS;
		bad = !newest || age > set->rpo;
		breached = breached || bad;
		due = due_level(set, snaps, n, now, &sched);
		if (jarr) {
			jo = json_object_new_object();
			jl = json_object_new_array();
			json_object_object_add(jo, "set", json_object_new_string(names[k]));
			json_object_object_add(jo, "rpo_seconds", json_object_new_int64(set->rpo));
			json_object_object_add(jo, "newest", newest ? cli_json_snapshot(newest) : NULL);
			json_object_object_add(jo, "age_seconds",
					       newest ? json_object_new_int64(age) : NULL);
			json_object_object_add(jo, "rpo_breached", json_object_new_boolean(bad));
			json_object_object_add(jo, "due", due >= 0 ?
					       json_object_new_string(set->levels[due].name) : NULL);
		}
		for (int l = 0; l < CLI_LV_COUNT; l++) {
			const struct strata_snapshot *s = newest_covering(&set->levels[l], snaps, n);
			char agebuf[32] = "-", duebuf[64] = "-";
			int64_t t;

			if (s)
				cli_format_duration(agebuf, sizeof(agebuf),
						    (now - s->started_ns / NS) * NS);
			if (set->levels[l].when.type == CLI_CAL_NEVER)
				snprintf(duebuf, sizeof(duebuf), "never");
			else if (due == l)
				snprintf(duebuf, sizeof(duebuf), "now");
			else if (cli_calendar_next(&set->levels[l].when, now, &t))
				fmt_local(t, duebuf, sizeof(duebuf));
			if (jl) {
				struct json_object *o = json_object_new_object();

				json_object_object_add(o, "level",
						       json_object_new_string(set->levels[l].name));
				json_object_object_add(o, "newest", s ?
						       json_object_new_string(s->name) : NULL);
				json_object_object_add(o, "age_seconds", s ?
						       json_object_new_int64(now - s->started_ns / NS) :
						       NULL);
				json_object_object_add(o, "due_now", json_object_new_boolean(due == l));
				json_object_array_add(jl, o);
			} else if (table) {
				const char *cells[] = { names[k], set->levels[l].name,
							s ? s->name : "-", agebuf, duebuf };

				cli_table_add(table, cells);
			}
		}
		if (jo) {
			json_object_object_add(jo, "levels", jl);
			json_object_array_add(jarr, jo);
		}
		free(snaps);
	}
	if (jarr) {
		cli_json_print(jarr);
		jarr = NULL;
	} else if (!arg_quiet) {
		cli_table_print(table, stdout);
		for (size_t k = 0; k < nnames; k++) {
			const struct cli_set *set = cli_config_policy(&cfg, names[k]);
			const struct strata_snapshot *newest = NULL;
			char rpo[32], agebuf[32];

			for (size_t i = 0; i < nall; i++)
				if (strcmp(all[i].set, names[k]) == 0)
					newest = &all[i];
			cli_duration_format(set->rpo, rpo, sizeof(rpo));
			if (!newest) {
				printf("set %s: no snapshot, RPO %s breached\n", names[k], rpo);
				continue;
			}
			cli_format_duration(agebuf, sizeof(agebuf), (now - newest->started_ns / NS) * NS);
			printf("set %s: newest %s, %s old: %s (RPO %s)\n", names[k], newest->name, agebuf,
			       now - newest->started_ns / NS > set->rpo ? "RPO BREACHED" : "ok", rpo);
		}
	}
	if (nnames == 0 && !arg_json && !arg_quiet)
		printf("no sets\n");
	r = breached ? CLI_EXIT_RPO : 0;
out:
	cli_table_free(table);
	json_object_put(jarr);
	free(names);
	free(all);
	cli_repo_close(&repo);
	cli_config_release(&cfg);
	arg_repo = NULL;
out_args:
	sched_args_release(&a);
	return r == CLI_HELP_SHOWN ? 0 : r;
}
