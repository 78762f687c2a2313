/*
 * cli.h - what the files of the strata command share: the parsed global
 * options (arg_...), the exit-code table, opening a repository the way
 * every command does, passphrases, output helpers and the commands.
 *
 * Convention: a command returns a negative errno with 'err' filled (main
 * prints "strata: <msg>" and maps err->kind through the exit table), or a
 * non-negative exit code it chose itself (0, CLI_EXIT_WARNING, or
 * CLI_EXIT_CORRUPT after it already reported every problem).
 */
#ifndef STRATA_CLI_H
#define STRATA_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"
#include "common.h"
#include "catalog.h"
#include "store.h"

#if !HAVE_JSON_C
#error "the strata command needs json-c for --json output (meson -Djson=enabled)"
#endif
#include <json-c/json.h>

/* ---- global options (cli_main.c) ---------------------------------------- */

extern const char *arg_repo;               /* -r / STRATA_REPOSITORY */
extern const char *arg_passphrase_file;    /* --passphrase-file */
extern const char *arg_passphrase_command; /* --passphrase-command */
extern bool arg_quiet;                     /* -q */
extern int arg_verbose;                    /* -v, repeatable */
extern bool arg_json;                      /* --json, before or after the command */
extern const char *arg_config;             /* --config FILE (NULL: the default, optional) */

/* ---- exit codes (cli_exit.c): the one table, documented in strata.1 ---- */

enum cli_exit {
	CLI_EXIT_OK = 0,
	CLI_EXIT_INTERNAL = 1,
	CLI_EXIT_USAGE = 2,
	CLI_EXIT_WARNING = 3,
	CLI_EXIT_NOT_FOUND = 4,
	CLI_EXIT_CORRUPT = 5,
	CLI_EXIT_AUTH = 6,
	CLI_EXIT_LOCKED = 7,
	CLI_EXIT_IO = 8,
	CLI_EXIT_RPO = 9,      /* status: a set's newest snapshot is older than its RPO */
};

/* The exit code for an error kind (STRATA_ERR_NONE gives CLI_EXIT_OK). */
int cli_exit_code(enum strata_error_kind kind);
/* Print the table as "CODE KIND" lines (hidden option --exit-codes). */
void cli_exit_print_table(FILE *f);

/* ---- commands and their usage ------------------------------------------- */

struct cli_command {
	const char *name;
	int (*run)(int argc, char **argv, struct strata_error *err);
	const char *usage;   /* the synopsis and option list printed by --help */
	const char *summary; /* one line for the general help */
};

/* NULL when unknown. */
const struct cli_command *cli_command_find(const char *name);
/* Print cmd's usage on f. */
void cli_command_usage(const struct cli_command *cmd, FILE *f);

int cli_cmd_init(int argc, char **argv, struct strata_error *err);
int cli_cmd_backup(int argc, char **argv, struct strata_error *err);
int cli_cmd_list(int argc, char **argv, struct strata_error *err);
int cli_cmd_ls(int argc, char **argv, struct strata_error *err);
int cli_cmd_diff(int argc, char **argv, struct strata_error *err);
int cli_cmd_restore(int argc, char **argv, struct strata_error *err);
int cli_cmd_verify(int argc, char **argv, struct strata_error *err);
int cli_cmd_run(int argc, char **argv, struct strata_error *err);
#if HAVE_FUSE
int cli_cmd_mount(int argc, char **argv, struct strata_error *err);
int cli_cmd_umount(int argc, char **argv, struct strata_error *err);
#endif
int cli_cmd_prune(int argc, char **argv, struct strata_error *err);
int cli_cmd_status(int argc, char **argv, struct strata_error *err);
int cli_cmd_config(int argc, char **argv, struct strata_error *err);

/*
 * Options every command accepts after its name: -h/--help, --json, -q, -v.
 * CLI_COMMON_SHORT goes into the optstring, CLI_COMMON_LONG into the
 * option array.  cli_common_option handles them: returns 1 when c was a
 * common option (handled), 0 when it is the command's own, and for help
 * prints the usage and returns CLI_HELP_SHOWN (the command then returns 0).  For '?'
 * and ':' it fills err (usage) and returns a negative errno.
 */
#define CLI_OPT_JSON 0x1000
#define CLI_HELP_SHOWN 2
#define CLI_COMMON_SHORT ":hqv"
#define CLI_COMMON_LONG \
	{ "help", no_argument, NULL, 'h' }, \
	{ "json", no_argument, NULL, CLI_OPT_JSON }, \
	{ "quiet", no_argument, NULL, 'q' }, \
	{ "verbose", no_argument, NULL, 'v' }
int cli_common_option(int c, const char *cmd, char **argv, struct strata_error *err);
/* Reset getopt for a new argument vector (glibc: optind = 0). */
void cli_getopt_reset(void);

/* ---- opening a repository (cli_repo.c) -------------------------------- */

struct cli_repo {
	struct strata_repo *repo;
	struct strata_catalog *cat;
};

enum cli_repo_flags {
	CLI_REPO_WRITE = 1 << 0,     /* catalog read-write (backup) */
	CLI_REPO_KEY = 1 << 1,       /* unlock: the command reads or writes archives */
	CLI_REPO_KEY_IF_GIVEN = 1 << 2, /* unlock only when a passphrase source is given */
};

/*
 * Open arg_repo (error "no repository given" when unset, and "no repository
 * at '<path>' (use -r or STRATA_REPOSITORY)" when there is none), unlock
 * it as flags say and open REPO/catalog.db.  On failure *r is released.
 */
int cli_repo_open(struct cli_repo *r, unsigned flags, struct strata_error *err);
void cli_repo_close(struct cli_repo *r);
/* Resolve a snapshot spec in r (default_set may be NULL). */
int cli_snapshot_find(struct cli_repo *r, const char *spec, const char *default_set,
		      struct strata_snapshot *ret, struct strata_error *err);

/* ---- passphrases (cli_passphrase.c) ------------------------------------- */

/* True when --passphrase-file, --passphrase-command or STRATA_PASSPHRASE is set. */
bool cli_passphrase_given(void);
/*
 * Get the passphrase from --passphrase-file, --passphrase-command or
 * STRATA_PASSPHRASE (in that order); otherwise, when stdin is a terminal,
 * ask for it without echo (twice when confirm).  Else an auth error whose
 * message names 'what' (the repository).  *ret is malloc'ed and must be
 * released with cli_passphrase_free (wipes it).
 */
int cli_passphrase_get(const char *what, bool confirm, char **ret, size_t *ret_len,
		       struct strata_error *err);
void cli_passphrase_free(char *p, size_t len);

/* ---- output helpers (cli_output.c) -------------------------------------- */

/* "512 B", "4.5 KiB" (compact=false) or "512", "4.5K" (compact). */
void cli_format_size(char *dst, size_t size, uint64_t bytes, bool compact);
/* "0.8s", "12s", "3m02s", "2h05m". */
void cli_format_duration(char *dst, size_t size, int64_t ns);
/* ISO 8601 UTC, "-" for 0. */
void cli_format_time(char *dst, size_t size, int64_t ns);
/* ls -l mode string "drwxr-xr-x" from type and mode (11 bytes). */
void cli_format_mode(char dst[11], char type, uint32_t mode);
/* strata_quote into a malloc'ed string; NULL on ENOMEM. */
char *cli_quote(const char *s, size_t len);

/* Print a json-c object on stdout (pretty) and drop the reference. */
void cli_json_print(struct json_object *o);
/* Add s (quoted with strata_quote) under key, or json null when s is NULL. */
int cli_json_add_quoted(struct json_object *o, const char *key, const char *s, size_t len);
/* A snapshot as the object list --json and backup --json print. */
struct json_object *cli_json_snapshot(const struct strata_snapshot *s);

/* A table: cells are copied; columns aligned; numeric columns right aligned. */
struct cli_table;
struct cli_table *cli_table_new(size_t ncols, const char *const *headers, const bool *right);
int cli_table_add(struct cli_table *t, const char *const *cells);
void cli_table_print(const struct cli_table *t, FILE *f);
void cli_table_free(struct cli_table *t);

/*
 * A progress line on stderr: enabled only when stderr is a terminal and
 * not --quiet; at most 10 updates a second, each replacing the last (\r).
 */
struct cli_progress {
	bool enabled;
	int64_t last_ns;
	size_t last_len;
};
void cli_progress_init(struct cli_progress *p);
void cli_progress_update(struct cli_progress *p, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Erase the line (before a warning, and at the end). */
void cli_progress_clear(struct cli_progress *p);

/* ---- configuration and schedule (cli_config.c, cli_schedule.c) ---------- */

#define CLI_CONFIG_DEFAULT "/etc/strata/strata.conf"

/* When a level is due: a calendar in local time (TZ). */
enum cli_cal_type {
	CLI_CAL_NEVER = 0,
	CLI_CAL_HOURLY,     /* every hour at :minute */
	CLI_CAL_DAYS,       /* on the weekdays in 'weekdays' at hour:minute */
	CLI_CAL_MONTHDAY,   /* on day 'mday' of each month (months without it: none) */
	CLI_CAL_LASTDAY,    /* on the last day of each month */
};
struct cli_calendar {
	enum cli_cal_type type;
	unsigned weekdays;  /* bit 0 = Sunday .. bit 6 = Saturday */
	int mday, hour, minute;
};
/* Parse "hourly", "hourly :30", "daily 02:00", "sun 01:00", "mon,thu 03:00",
 * "last-day 01:00", "day 15 03:00", "never".  -EINVAL on anything else. */
int cli_calendar_parse(const char *s, struct cli_calendar *ret);
/* Back to text, the canonical form of cli_calendar_parse. */
void cli_calendar_format(const struct cli_calendar *c, char *dst, size_t size);
/* The most recent scheduled time at or before now (seconds); false if none
 * (never, or none in the last 400 days). */
bool cli_calendar_last(const struct cli_calendar *c, int64_t now, int64_t *ret);
/* The next scheduled time after now; false if none. */
bool cli_calendar_next(const struct cli_calendar *c, int64_t now, int64_t *ret);

/* "90s", "30min", "24h", "7d", "2w", "1y" (365 days), "forever" (0). */
int cli_duration_parse(const char *s, int64_t *ret);
void cli_duration_format(int64_t seconds, char *dst, size_t size);

/* The levels of a policy, highest priority first. */
enum cli_level_id {
	CLI_LV_MONTHLY = 0,
	CLI_LV_FULL,
	CLI_LV_DIFFERENTIAL,
	CLI_LV_INCREMENTAL,
	CLI_LV_COUNT,
};
struct cli_level_policy {
	const char *name;          /* "monthly", "full", "differential", "incremental" */
	enum strata_level kind;
	const char *label;         /* "monthly" or NULL */
	struct cli_calendar when;
	int64_t keep;              /* seconds; 0 = forever */
};

struct cli_set {
	char *name;
	char **sources;  size_t nsources;      /* NULL-terminated arrays */
	char **excludes; size_t nexcludes;
	char **markers;  size_t nmarkers;      /* exclude-if-present */
	bool one_file_system;
	int compression;                       /* zstd level; 0 = strata's default */
	struct cli_level_policy levels[CLI_LV_COUNT];
	int64_t rpo;                           /* seconds */
	char *pre_hook, *post_hook;
	int64_t hook_timeout;                  /* seconds */
	unsigned line;                         /* of its [set NAME] header, 0 from flags */
};

struct cli_config {
	char *path;                /* the file read, NULL when none */
	char *repo;                /* [repository] path */
	char *passphrase_file, *passphrase_command;
	struct cli_set *sets;
	size_t nsets;
	/* With no file: the policy (defaults + command-line keys) for every set
	 * found in the repository. */
	struct cli_set any;
};

/* A zstd compression level for --compression / compression =: 1 to 19. */
int cli_compression_parse(const char *s, int *ret);

/* Fill s with the default policy (the one in examples/strata.conf). */
void cli_set_defaults(struct cli_set *s);

/*
 * Read the configuration: arg_config, or CLI_CONFIG_DEFAULT when that
 * exists.  required: a missing default file is an error too.  Every
 * problem is a usage error naming "FILE:LINE: key 'k': ...".  Then the
 * command-line overrides in 'ov' apply to every set (and make one set
 * "NAME" from --set/--source when the file defines none).  Fills the
 * globals arg_repo and the passphrase sources when the command line left
 * them unset.
 */
struct cli_overrides {
	const char *const *keys;   /* set keys given on the command line ... */
	const char *const *values; /* ... and their values, n of each */
	size_t n;
	const char *const *only_sets; /* --set NAME (repeatable), NULL-terminated or NULL */
};
int cli_config_load(struct cli_config *cfg, bool required, const struct cli_overrides *ov,
		    struct strata_error *err);
void cli_config_release(struct cli_config *cfg);
/* A set by name, NULL when the configuration does not define it. */
struct cli_set *cli_config_set(struct cli_config *cfg, const char *name);
/* The policy for a set of the repository: its section, else with no file
 * cfg->any, else NULL (a set the file does not manage). */
struct cli_set *cli_config_policy(struct cli_config *cfg, const char *name);
/* The long options for every set key (--source, --full-keep, ...), for run/prune/status. */
extern const char *const cli_set_keys[];
/* STRATA_NOW (seconds) or the clock. */
int cli_now_seconds(int64_t *ret, struct strata_error *err);

#endif
