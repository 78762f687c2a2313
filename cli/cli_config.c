/*
 * cli_config.c - the configuration file (INI, parsed with libinih) and the
 * command-line options that stand for its keys, plus `strata config check`.
 *
 *   [repository]          path, passphrase-file, passphrase-command
 *   [set NAME]            source, exclude, exclude-if-present (repeatable),
 *                         one-file-system, monthly/full/differential/
 *                         incremental (a calendar) and LEVEL-keep (a
 *                         duration), rpo, pre-hook, post-hook, hook-timeout,
 *                         compression
 *
 * Every problem is one usage error "FILE:LINE: key 'k': what is wrong".
 * inih does not tell the handler the line, so the file is fed through our
 * own reader, which counts lines, refuses lines inih would cut (over
 * INI_MAX_LINE) and notes each [section] header with its line (so an empty
 * [set NAME] is found too).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ini.h>

#include "cli.h"

#if !HAVE_INIH
#error "the strata command needs libinih for its configuration file"
#endif

const char *const cli_set_keys[] = {
	"source", "exclude", "exclude-if-present", "one-file-system",
	"monthly", "monthly-keep", "full", "full-keep", "differential", "differential-keep",
	"incremental", "incremental-keep", "rpo", "pre-hook", "post-hook", "hook-timeout",
	"compression", NULL,
};

#define NKEYS (sizeof(cli_set_keys) / sizeof(cli_set_keys[0]) - 1)

struct parse_state {
	struct cli_config *cfg;
	FILE *f;
	const char *path;
	unsigned line;
	bool too_long;
	char *linebuf;
	size_t linecap;
	struct strata_error *err;
	int r;
	/* per set: bitmask of the scalar keys seen, indexed like cfg->sets */
	uint32_t *seen;
	uint32_t repo_seen;
	unsigned repo_lines[3];
};

static int append(char ***v, size_t *n, const char *s)
{
	char **nv = realloc(*v, (*n + 2) * sizeof(*nv));

	if (!nv)
		return -ENOMEM;
	*v = nv;
	nv[*n] = strdup(s);
	if (!nv[*n])
		return -ENOMEM;
	(*n)++;
	nv[*n] = NULL;
	return 0;
}

static void free_list(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static void set_release(struct cli_set *s)
{
	free(s->name);
	free_list(s->sources, s->nsources);
	free_list(s->excludes, s->nexcludes);
	free_list(s->markers, s->nmarkers);
	free(s->pre_hook);
	free(s->post_hook);
}

void cli_config_release(struct cli_config *cfg)
{
	for (size_t i = 0; i < cfg->nsets; i++)
		set_release(&cfg->sets[i]);
	set_release(&cfg->any);
	free(cfg->sets);
	free(cfg->path);
	free(cfg->repo);
	free(cfg->passphrase_file);
	free(cfg->passphrase_command);
	memset(cfg, 0, sizeof(*cfg));
}

struct cli_set *cli_config_set(struct cli_config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->nsets; i++)
		if (strcmp(cfg->sets[i].name, name) == 0)
			return &cfg->sets[i];
	return NULL;
}

struct cli_set *cli_config_policy(struct cli_config *cfg, const char *name)
{
	struct cli_set *s = cli_config_set(cfg, name);

	if (s)
		return s;
	return cfg->path ? NULL : &cfg->any;
}

static bool set_name_ok(const char *s)
{
	size_t n = strlen(s);

	return n >= 1 && n <= 63 && strcmp(s, ".") != 0 && strcmp(s, "..") != 0 &&
	       strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

static struct cli_set *add_set(struct cli_config *cfg, const char *name, unsigned line)
{
	struct cli_set *nv = realloc(cfg->sets, (cfg->nsets + 1) * sizeof(*nv));

	if (!nv)
		return NULL;
	cfg->sets = nv;
	memset(&nv[cfg->nsets], 0, sizeof(nv[0]));
	cli_set_defaults(&nv[cfg->nsets]);
	nv[cfg->nsets].line = line;
	nv[cfg->nsets].name = strdup(name);
	if (!nv[cfg->nsets].name)
		return NULL;
	return &nv[cfg->nsets++];
}

int cli_compression_parse(const char *s, int *ret)
{
	uint64_t v;

	if (strata_parse_u64(s, &v) < 0 || v < 1 || v > 19)
		return -EINVAL;
	*ret = (int)v;
	return 0;
}

static int key_index(const char *key)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (strcmp(cli_set_keys[i], key) == 0)
			return (int)i;
	return -1;
}

static bool is_list_key(const char *key)
{
	return strcmp(key, "source") == 0 || strcmp(key, "exclude") == 0 ||
	       strcmp(key, "exclude-if-present") == 0;
}

/*
 * Apply one set key.  Returns 0, -ENOMEM, or -EINVAL with 'why' filled
 * (what a good value looks like).
 */
static int set_key(struct cli_set *s, const char *key, const char *value, char *why, size_t wsize)
{
	int r;

	if (strcmp(key, "source") == 0) {
		if (value[0] != '/') {
			snprintf(why, wsize, "'%s' is not an absolute path", value);
			return -EINVAL;
		}
		return append(&s->sources, &s->nsources, value);
	}
	if (strcmp(key, "exclude") == 0) {
		if (!*value) {
			snprintf(why, wsize, "an empty glob");
			return -EINVAL;
		}
		return append(&s->excludes, &s->nexcludes, value);
	}
	if (strcmp(key, "exclude-if-present") == 0) {
		if (!*value || strchr(value, '/') || strcmp(value, ".") == 0 ||
		    strcmp(value, "..") == 0) {
			snprintf(why, wsize, "'%s' is not a file name", value);
			return -EINVAL;
		}
		return append(&s->markers, &s->nmarkers, value);
	}
	if (strcmp(key, "one-file-system") == 0) {
		if (strcmp(value, "yes") == 0 || strcmp(value, "true") == 0 || strcmp(value, "1") == 0) {
			s->one_file_system = true;
		} else if (strcmp(value, "no") == 0 || strcmp(value, "false") == 0 ||
			   strcmp(value, "0") == 0) {
			s->one_file_system = false;
		} else {
			snprintf(why, wsize, "'%s' is not yes or no", value);
			return -EINVAL;
		}
		return 0;
	}
	for (int l = 0; l < CLI_LV_COUNT; l++) {
		const char *name = s->levels[l].name;
		size_t n = strlen(name);

		if (strcmp(key, name) == 0) {
			if (cli_calendar_parse(value, &s->levels[l].when) < 0) {
				snprintf(why, wsize, "'%s' is not a schedule (e.g. \"hourly\", \"daily 02:00\","
					 " \"sun 01:00\", \"last-day 01:00\", \"day 1 03:00\", \"never\")",
					 value);
				return -EINVAL;
			}
			return 0;
		}
		if (strncmp(key, name, n) == 0 && strcmp(key + n, "-keep") == 0) {
			if (cli_duration_parse(value, &s->levels[l].keep) < 0) {
				snprintf(why, wsize, "'%s' is not a duration (e.g. 24h, 7d, 30d, 1y, forever)",
					 value);
				return -EINVAL;
			}
			return 0;
		}
	}
	if (strcmp(key, "compression") == 0) {
		if (cli_compression_parse(value, &s->compression) < 0) {
			snprintf(why, wsize, "'%s' is not a zstd level from 1 to 19", value);
			return -EINVAL;
		}
		return 0;
	}
	if (strcmp(key, "rpo") == 0 || strcmp(key, "hook-timeout") == 0) {
		int64_t v;

		if (cli_duration_parse(value, &v) < 0 || v == 0) {
			snprintf(why, wsize, "'%s' is not a duration (e.g. 90s, 30min, 1h, 1d)", value);
			return -EINVAL;
		}
		if (key[0] == 'r')
			s->rpo = v;
		else
			s->hook_timeout = v;
		return 0;
	}
	if (strcmp(key, "pre-hook") == 0 || strcmp(key, "post-hook") == 0) {
		char **p = key[1] == 'r' ? &s->pre_hook : &s->post_hook;

		if (!*value) {
			snprintf(why, wsize, "an empty command");
			return -EINVAL;
		}
		free(*p);
		*p = strdup(value);
		r = *p ? 0 : -ENOMEM;
		return r;
	}
	snprintf(why, wsize, "unknown key");
	return -ENOENT;
}

static int perr(struct parse_state *ps, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int perr(struct parse_state *ps, const char *fmt, ...)
{
	char msg[STRATA_ERROR_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (ps->r == 0)
		ps->r = strata_error_set(ps->err, -EINVAL, STRATA_ERR_USAGE, "%s:%u: %s", ps->path,
					 ps->line, msg);
	return 0;
}

static char *trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n'))
		*--e = '\0';
	return s;
}

/* inih's reader: one line per call, counted; section headers noted. */
static char *reader(char *str, int num, void *stream)
{
	struct parse_state *ps = stream;
	ssize_t len = getline(&ps->linebuf, &ps->linecap, ps->f);
	char *p;

	if (len < 0 || ps->r < 0)
		return NULL;
	ps->line++;
	if ((size_t)len >= (size_t)num - 1) {
		perr(ps, "line longer than %d bytes", num - 2);
		return NULL;
	}
	memcpy(str, ps->linebuf, (size_t)len + 1);
	p = trim(ps->linebuf);
	if (*p == '[') {
		char *end = strchr(p, ']');
		char *name;

		if (!end)
			return str;  /* inih reports it */
		*end = '\0';
		name = trim(p + 1);
		if (strncmp(name, "set", 3) == 0 && (name[3] == ' ' || name[3] == '\t')) {
			name = trim(name + 4);
			if (!set_name_ok(name)) {
				perr(ps, "invalid set name '%s': use 1 to 63 of A-Z a-z 0-9 . _ -", name);
				return NULL;
			}
			if (cli_config_set(ps->cfg, name)) {
				perr(ps, "set '%s' is defined twice", name);
				return NULL;
			}
			if (!add_set(ps->cfg, name, ps->line)) {
				ps->r = strata_error_set(ps->err, -ENOMEM, STRATA_ERR_INTERNAL, "out of memory");
				return NULL;
			}
			uint32_t *ns = realloc(ps->seen, ps->cfg->nsets * sizeof(*ns));
			if (!ns) {
				ps->r = strata_error_set(ps->err, -ENOMEM, STRATA_ERR_INTERNAL, "out of memory");
				return NULL;
			}
			ps->seen = ns;
			ns[ps->cfg->nsets - 1] = 0;
		} else if (strcmp(name, "repository") != 0) {
			perr(ps, "unknown section '[%s]' (use [repository] or [set NAME])", name);
			return NULL;
		}
	}
	return str;
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
	struct parse_state *ps = user;
	char why[512];
	int r;

	if (ps->r < 0)
		return 0;
	if (strcmp(section, "repository") == 0) {
		static const char *const keys[] = { "path", "passphrase-file", "passphrase-command" };
		char **dst[] = { &ps->cfg->repo, &ps->cfg->passphrase_file, &ps->cfg->passphrase_command };

		for (int i = 0; i < 3; i++) {
			if (strcmp(name, keys[i]) != 0)
				continue;
			if (ps->repo_seen & (1u << i))
				return perr(ps, "key '%s' is given twice", name);
			if (!*value)
				return perr(ps, "key '%s': empty value", name);
			ps->repo_seen |= 1u << i;
			ps->repo_lines[i] = ps->line;
			*dst[i] = strdup(value);
			if (!*dst[i])
				ps->r = strata_error_set(ps->err, -ENOMEM, STRATA_ERR_INTERNAL,
							 "out of memory");
			return ps->r == 0;
		}
		return perr(ps, "unknown key '%s' in [repository] (path, passphrase-file,"
			    " passphrase-command)", name);
	}
	if (strncmp(section, "set", 3) == 0) {
		char sec[256];
		struct cli_set *s;
		int k;

		snprintf(sec, sizeof(sec), "%s", section + 3);
		s = cli_config_set(ps->cfg, trim(sec));
		if (!s)
			return perr(ps, "key '%s' outside a known section", name);
		k = key_index(name);
		if (k < 0)
			return perr(ps, "unknown key '%s' in [set %s]", name, s->name);
		if (!is_list_key(name)) {
			uint32_t *seen = &ps->seen[s - ps->cfg->sets];

			if (*seen & (1u << k))
				return perr(ps, "key '%s' is given twice in [set %s]", name, s->name);
			*seen |= 1u << k;
		}
		r = set_key(s, name, value, why, sizeof(why));
		if (r == -ENOMEM) {
			ps->r = strata_error_set(ps->err, -ENOMEM, STRATA_ERR_INTERNAL, "out of memory");
			return 0;
		}
		if (r < 0)
			return perr(ps, "key '%s': %s", name, why);
		return 1;
	}
	return perr(ps, "key '%s' outside a section ([repository] or [set NAME])", name);
}

static int check_readable(const char *path, const char *cfgpath, unsigned line, const char *key,
			  struct strata_error *err)
{
	if (access(path, R_OK) < 0)
		return strata_error_set(err, -EINVAL, STRATA_ERR_USAGE, "%s:%u: key '%s': cannot read '%s': %s",
					cfgpath, line, key, path, strerror(errno));
	return 0;
}

static int parse_file(struct cli_config *cfg, const char *path, struct strata_error *err)
{
	struct parse_state ps = { 0 };
	int rc;

	ps.cfg = cfg;
	ps.path = path;
	ps.err = err;
	ps.f = fopen(path, "re");
	if (!ps.f)
		return strata_error_set(err, -errno, STRATA_ERR_USAGE, "cannot read configuration '%s': %s",
					path, strerror(errno));
	rc = ini_parse_stream(reader, &ps, handler, &ps);
	if (ps.r == 0 && rc == -2)
		ps.r = strata_error_set(err, -ENOMEM, STRATA_ERR_INTERNAL, "out of memory");
	else if (ps.r == 0 && rc > 0)
		ps.r = strata_error_set(err, -EINVAL, STRATA_ERR_USAGE,
					"%s:%d: syntax error (expected '[section]' or 'key = value')",
					path, rc);
	else if (ps.r == 0 && ferror(ps.f))
		ps.r = strata_error_set(err, -EIO, STRATA_ERR_USAGE, "cannot read configuration '%s'",
					path);
	if (ps.r == 0 && cfg->passphrase_file)
		ps.r = check_readable(cfg->passphrase_file, path, ps.repo_lines[1], "passphrase-file",
				      err);
	if (ps.r == 0 && cfg->passphrase_file && cfg->passphrase_command)
		ps.r = strata_error_set(err, -EINVAL, STRATA_ERR_USAGE,
					"%s:%u: key 'passphrase-command': give passphrase-file or"
					" passphrase-command, not both", path, ps.repo_lines[2]);
	if (ps.r == 0 && cfg->repo && cfg->repo[0] != '/')
		ps.r = strata_error_set(err, -EINVAL, STRATA_ERR_USAGE,
					"%s:%u: key 'path': '%s' is not an absolute path", path,
					ps.repo_lines[0], cfg->repo);
	for (size_t i = 0; ps.r == 0 && i < cfg->nsets; i++)
		if (cfg->sets[i].nsources == 0)
			ps.r = strata_error_set(err, -EINVAL, STRATA_ERR_USAGE,
						"%s:%u: [set %s] has no key 'source'", path,
						cfg->sets[i].line, cfg->sets[i].name);
	fclose(ps.f);
	free(ps.linebuf);
	free(ps.seen);
	return ps.r;
}

/* A set key given on the command line (--KEY VALUE), applied to s. */
static int override_key(struct cli_set *s, const char *key, const char *value,
			struct strata_error *err)
{
	char why[512];
	int r = set_key(s, key, value, why, sizeof(why));

	if (r == -ENOMEM)
		return strata_error_set(err, r, STRATA_ERR_INTERNAL, "out of memory");
	if (r < 0)
		return strata_error_set(err, -EINVAL, STRATA_ERR_USAGE, "option '--%s': %s", key,
					why);
	return 0;
}

int cli_config_load(struct cli_config *cfg, bool required, const struct cli_overrides *ov,
		    struct strata_error *err)
{
	const char *path = arg_config;
	int r = 0;

	memset(cfg, 0, sizeof(*cfg));
	cli_set_defaults(&cfg->any);
	if (!path) {
		const char *env = getenv("STRATA_CONFIG");

		path = env && *env ? env : CLI_CONFIG_DEFAULT;
		if (!required && access(path, F_OK) < 0 && errno == ENOENT)
			path = NULL;
	}
	if (path) {
		cfg->path = strdup(path);
		if (!cfg->path)
			return strata_error_set(err, -ENOMEM, STRATA_ERR_INTERNAL, "out of memory");
		r = parse_file(cfg, path, err);
		if (r < 0)
			goto out;
	}
	if (ov && ov->only_sets) {
		for (const char *const *n = ov->only_sets; *n; n++) {
			if (!set_name_ok(*n)) {
				r = strata_error_set(err, -EINVAL, STRATA_ERR_USAGE,
						     "invalid set name '%s': use 1 to 63 of A-Z a-z 0-9 . _ -",
						     *n);
				goto out;
			}
			if (!cli_config_set(cfg, *n) && !add_set(cfg, *n, 0)) {
				r = strata_error_set(err, -ENOMEM, STRATA_ERR_INTERNAL, "out of memory");
				goto out;
			}
		}
	}
	/* Command-line keys: lists given there replace the file's lists. */
	for (size_t i = 0; ov && i < ov->n; i++) {
		bool first = true;  /* the key's first value replaces the file's list */

		for (size_t j = 0; j < i; j++)
			if (strcmp(ov->keys[j], ov->keys[i]) == 0)
				first = false;
		if (cfg->nsets == 0 && strcmp(ov->keys[i], "source") == 0 &&
		    !add_set(cfg, "default", 0)) {
			r = strata_error_set(err, -ENOMEM, STRATA_ERR_INTERNAL, "out of memory");
			goto out;
		}
		for (size_t s = 0; s < cfg->nsets; s++) {
			struct cli_set *set = &cfg->sets[s];

			if (ov->only_sets) {
				bool in = false;

				for (const char *const *n = ov->only_sets; *n; n++)
					in = in || strcmp(*n, set->name) == 0;
				if (!in)
					continue;
			}
			if (first && strcmp(ov->keys[i], "source") == 0) {
				free_list(set->sources, set->nsources);
				set->sources = NULL;
				set->nsources = 0;
			} else if (first && strcmp(ov->keys[i], "exclude") == 0) {
				free_list(set->excludes, set->nexcludes);
				set->excludes = NULL;
				set->nexcludes = 0;
			} else if (first && strcmp(ov->keys[i], "exclude-if-present") == 0) {
				free_list(set->markers, set->nmarkers);
				set->markers = NULL;
				set->nmarkers = 0;
			}
			r = override_key(set, ov->keys[i], ov->values[i], err);
			if (r < 0)
				goto out;
		}
		if (!cfg->path) {
			r = override_key(&cfg->any, ov->keys[i], ov->values[i], err);
			if (r < 0)
				goto out;
		}
	}
	if (!arg_repo && cfg->repo)
		arg_repo = cfg->repo;
	if (!arg_passphrase_file && !arg_passphrase_command && !getenv("STRATA_PASSPHRASE")) {
		arg_passphrase_file = cfg->passphrase_file;
		arg_passphrase_command = cfg->passphrase_command;
	}
out:
	if (r < 0)
		cli_config_release(cfg);
	return r;
}

/* `strata config check`: parse and validate, print what was understood. */
int cli_cmd_config(int argc, char **argv, struct strata_error *err)
{
	static const struct option options[] = {
		CLI_COMMON_LONG,
		{ NULL, 0, NULL, 0 },
	};
	struct cli_config cfg;
	int c, r;

	cli_getopt_reset();
	while ((c = getopt_long(argc, argv, CLI_COMMON_SHORT, options, NULL)) != -1) {
		r = cli_common_option(c, "config", argv, err);
		if (r < 0)
			return r;
		if (r == CLI_HELP_SHOWN)
			return 0;
	}
	if (optind >= argc || strcmp(argv[optind], "check") != 0 || optind + 1 != argc)
		return strata_error_set(err, -EINVAL, STRATA_ERR_USAGE,
					"config: usage: strata [--config FILE] config check");
	r = cli_config_load(&cfg, true, NULL, err);
	if (r < 0)
		return r;
	if (!cfg.repo && !arg_repo) {
		r = strata_error_set(err, -EINVAL, STRATA_ERR_USAGE,
				     "%s: no [repository] key 'path'", cfg.path);
		goto out;
	}
	if (cfg.nsets == 0) {
		r = strata_error_set(err, -EINVAL, STRATA_ERR_USAGE, "%s: no [set NAME] section",
				     cfg.path);
		goto out;
	}
	for (size_t i = 0; i < cfg.nsets; i++) {
		struct stat st;

		for (size_t j = 0; j < cfg.sets[i].nsources; j++)
			if (lstat(cfg.sets[i].sources[j], &st) < 0) {
				r = strata_error_set(err, -EINVAL, STRATA_ERR_USAGE,
						     "%s: [set %s] source '%s': %s", cfg.path,
						     cfg.sets[i].name, cfg.sets[i].sources[j],
						     strerror(errno));
				goto out;
			}
	}
	if (arg_json) {
		struct json_object *o = json_object_new_object(), *sets = json_object_new_array();

		json_object_object_add(o, "file", json_object_new_string(cfg.path));
		json_object_object_add(o, "repository", json_object_new_string(arg_repo));
		for (size_t i = 0; i < cfg.nsets; i++) {
			struct cli_set *s = &cfg.sets[i];
			struct json_object *so = json_object_new_object(), *a;
			char buf[128];

			json_object_object_add(so, "name", json_object_new_string(s->name));
			a = json_object_new_array();
			for (size_t j = 0; j < s->nsources; j++)
				json_object_array_add(a, json_object_new_string(s->sources[j]));
			json_object_object_add(so, "sources", a);
			a = json_object_new_array();
			for (size_t j = 0; j < s->nexcludes; j++)
				json_object_array_add(a, json_object_new_string(s->excludes[j]));
			json_object_object_add(so, "excludes", a);
			a = json_object_new_array();
			for (size_t j = 0; j < s->nmarkers; j++)
				json_object_array_add(a, json_object_new_string(s->markers[j]));
			json_object_object_add(so, "exclude_if_present", a);
			json_object_object_add(so, "one_file_system",
					       json_object_new_boolean(s->one_file_system));
			for (int l = 0; l < CLI_LV_COUNT; l++) {
				struct json_object *lo = json_object_new_object();

				cli_calendar_format(&s->levels[l].when, buf, sizeof(buf));
				json_object_object_add(lo, "schedule", json_object_new_string(buf));
				json_object_object_add(lo, "keep_seconds",
						       json_object_new_int64(s->levels[l].keep));
				json_object_object_add(so, s->levels[l].name, lo);
			}
			json_object_object_add(so, "rpo_seconds", json_object_new_int64(s->rpo));
			json_object_object_add(so, "compression",
					       json_object_new_int(s->compression ? s->compression
										  : STRATA_COMPRESSION_DEFAULT));
			json_object_array_add(sets, so);
		}
		json_object_object_add(o, "sets", sets);
		cli_json_print(o);
	} else if (!arg_quiet) {
		printf("%s: ok (repository %s, %zu set%s)\n", cfg.path, arg_repo, cfg.nsets,
		       cfg.nsets == 1 ? "" : "s");
		for (size_t i = 0; i < cfg.nsets; i++) {
			struct cli_set *s = &cfg.sets[i];
			char when[128], keep[32], rpo[32];

			cli_duration_format(s->rpo, rpo, sizeof(rpo));
			printf("set %s: %zu source%s, %zu exclude%s, rpo %s\n", s->name, s->nsources,
			       s->nsources == 1 ? "" : "s", s->nexcludes, s->nexcludes == 1 ? "" : "s",
			       rpo);
			for (int l = 0; l < CLI_LV_COUNT; l++) {
				cli_calendar_format(&s->levels[l].when, when, sizeof(when));
				cli_duration_format(s->levels[l].keep, keep, sizeof(keep));
				printf("  %-12s %-20s keep %s\n", s->levels[l].name, when, keep);
			}
		}
	}
	r = 0;
out:
	cli_config_release(&cfg);
	arg_repo = NULL;
	return r;
}
