/*
 * cli_main.c - entry point of the strata command: parses the global
 * options (those before the command name), finds the command, runs it and
 * turns its result into one error line on stderr and an exit code from the
 * table in cli_exit.c.  Also holds every command's usage text, so help and
 * the man page can be kept side by side.
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

const char *arg_repo;
const char *arg_passphrase_file;
const char *arg_passphrase_command;
bool arg_quiet;
int arg_verbose;
bool arg_json;
const char *arg_config;

/* run, prune and status take every set key of the configuration as an option. */
#define SET_KEYS_HELP \
	"\nSet keys of the configuration, for every selected set (lists replace the file's):\n" \
	"      --source PATH, --exclude GLOB, --exclude-if-present NAME (repeatable)\n" \
	"      --one-file-system yes|no, --rpo DURATION, --compression LEVEL\n" \
	"      --monthly|--full|--differential|--incremental SCHEDULE\n" \
	"      --monthly-keep|--full-keep|--differential-keep|--incremental-keep DURATION\n" \
	"      --pre-hook CMD, --post-hook CMD, --hook-timeout DURATION\n"

static const struct cli_command cli_commands[] = {
	{ "init", cli_cmd_init,
	  "usage: strata -r REPO init [--encrypt]\n"
	  "\n"
	  "Create a repository at REPO.\n"
	  "\n"
	  "  --encrypt    seal archives with AES-256-GCM under a key protected by a\n"
	  "               passphrase (--passphrase-file, --passphrase-command,\n"
	  "               STRATA_PASSPHRASE, or asked twice on a terminal)\n",
	  "create a repository" },
	{ "backup", cli_cmd_backup,
	  "usage: strata -r REPO backup --level full|incremental|differential [OPTION...] SOURCE...\n"
	  "\n"
	  "Back up the SOURCE paths into a new snapshot.\n"
	  "\n"
	  "  -l, --level LEVEL     full, incremental or differential (required)\n"
	  "  -s, --set NAME        backup set (default: \"default\")\n"
	  "  -e, --exclude GLOB    skip paths matching GLOB (repeatable)\n"
	  "      --label LABEL     mark the snapshot, e.g. \"monthly\"\n"
	  "  -x, --one-file-system stay on the file system of each source\n"
	  "      --frame-size SIZE target frame size, e.g. 256K, 1M\n"
	  "      --threads N       compression threads (default: CPUs)\n"
	  "      --compression N   zstd level, 1 (fastest) to 19 (default: " STRATA_STR(STRATA_COMPRESSION_DEFAULT) ")\n"
	  "      --no-wait         fail instead of waiting for the repository lock\n"
	  "      --json            print the snapshot as JSON\n",
	  "back up paths into a new snapshot" },
	{ "list", cli_cmd_list,
	  "usage: strata -r REPO list [--set NAME] [--json]\n"
	  "\n"
	  "List the complete snapshots, oldest first.\n"
	  "\n"
	  "  -s, --set NAME   only the snapshots of set NAME\n"
	  "      --json       a JSON array of snapshot objects\n",
	  "list snapshots" },
	{ "ls", cli_cmd_ls,
	  "usage: strata -r REPO ls [-R] [--set NAME] [--json] SNAPSHOT [PATH]\n"
	  "\n"
	  "List a directory of a snapshot (or one entry) like ls -l, from the catalog.\n"
	  "\n"
	  "  -R, --recursive  list the whole subtree, one full path per line\n"
	  "  -s, --set NAME   default set for \"latest\"\n"
	  "      --json       a JSON array of entries\n",
	  "list the entries of a snapshot" },
	{ "diff", cli_cmd_diff,
	  "usage: strata -r REPO diff [--set NAME] [--json] SNAP_A SNAP_B\n"
	  "\n"
	  "Show what changed from SNAP_A to SNAP_B, from the catalog alone:\n"
	  "\"+\" added, \"-\" removed, \"M\" content modified, \"m\" metadata only.\n"
	  "\n"
	  "  -s, --set NAME   default set for \"latest\"\n"
	  "      --json       {\"added\":[...],\"removed\":[...],\"modified\":[...],\"metadata\":[...]}\n",
	  "compare two snapshots" },
	{ "restore", cli_cmd_restore,
	  "usage: strata -r REPO restore SNAPSHOT [PATH...] --to DIR [OPTION...]\n"
	  "\n"
	  "Restore a snapshot, or the PATHs of it, into DIR with their metadata.\n"
	  "\n"
	  "  -t, --to DIR     target directory (required; created if missing)\n"
	  "      --no-owner   do not restore owners (default: restore them as root)\n"
	  "      --overwrite  replace files that exist in DIR\n"
	  "  -s, --set NAME   default set for \"latest\"\n"
	  "      --json       print the totals as JSON\n",
	  "restore a snapshot to a directory" },
	{ "verify", cli_cmd_verify,
	  "usage: strata -r REPO verify [--read-data] [--set NAME] [--json] [SNAPSHOT]\n"
	  "\n"
	  "Check the catalog and that every archive (of SNAPSHOT, or all) is present\n"
	  "with its recorded size.\n"
	  "\n"
	  "      --read-data  also check each archive's SHA-256, every frame and every\n"
	  "                   file's content hash\n"
	  "  -s, --set NAME   default set for \"latest\"\n"
	  "      --json       print the result as JSON\n",
	  "check the repository's integrity" },
#if HAVE_FUSE
	{ "mount", cli_cmd_mount,
	  "usage: strata -r REPO mount MOUNTPOINT [OPTION...]\n"
	  "\n"
	  "Show every complete snapshot as a read-only directory tree:\n"
	  "MOUNTPOINT/SET/SNAPSHOT-NAME/<source paths> and MOUNTPOINT/SET/latest.\n"
	  "Snapshots that complete while mounted appear; pruned ones disappear.\n"
	  "Returns once the mount answers, unless --foreground.\n"
	  "\n"
	  "      --foreground     stay in the foreground (stop with Ctrl-C or SIGTERM)\n"
	  "      --allow-other    let other users in; the kernel enforces the backed-up permissions\n"
	  "      --snapshot SPEC  mount one snapshot's tree at MOUNTPOINT (id, name, latest, SET/latest)\n"
	  "      --set NAME       only this set\n"
	  "      --cache-size SIZE  decompressed frame cache (default 256M)\n"
	  "      --debug          log every request (implies --foreground)\n"
	  , "mount the snapshots read-only (FUSE)" },
	{ "umount", cli_cmd_umount,
	  "usage: strata umount MOUNTPOINT\n"
	  "\n"
	  "Unmount a strata mount (fusermount3 -u).\n"
	  , "unmount a strata mount" },
#endif
	{ "run", cli_cmd_run,
	  "usage: strata [--config FILE] run [--set NAME]... [--no-wait] [--no-prune] [--json] [KEY OPTIONS]\n"
	  "\n"
	  "The scheduled command: for each set of the configuration, take the level\n"
	  "that is due (monthly > full > differential > incremental) from the policy\n"
	  "and the catalog, run the set's pre-hook, back up, run its post-hook, then\n"
	  "prune.  A run that finds nothing due does nothing.  STRATA_NOW (seconds\n"
	  "since the epoch) replaces the clock.\n"
	  "\n"
	  "  -s, --set NAME  only this set (repeatable)\n"
	  "      --no-wait   exit with code 7 instead of waiting for the repository lock\n"
	  "      --no-prune  do not prune after the backups\n"
	  "      --json      print what was done as JSON\n"
	  SET_KEYS_HELP
	  , "back up what the schedule says is due, then prune" },
	{ "prune", cli_cmd_prune,
	  "usage: strata [--config FILE] prune [--set NAME]... [--dry-run] [--no-wait] [--json] [KEY OPTIONS]\n"
	  "\n"
	  "Remove the snapshots the retention policy no longer keeps, then the entries\n"
	  "and archives no remaining snapshot needs.  A snapshot a kept one depends on\n"
	  "(its base, or data it still shows) is kept past its own period.\n"
	  "\n"
	  "  -s, --set NAME  only this set (repeatable)\n"
	  "      --dry-run   print every keep and remove with its reason, change nothing\n"
	  "      --no-wait   exit with code 7 instead of waiting for the repository lock\n"
	  "      --json      print the decisions as JSON\n"
	  SET_KEYS_HELP
	  , "remove snapshots by the retention policy" },
	{ "status", cli_cmd_status,
	  "usage: strata [--config FILE] status [--set NAME]... [--json] [KEY OPTIONS]\n"
	  "\n"
	  "Per set and level: the newest complete snapshot, its age and when the level\n"
	  "is due.  Exits with code 9 when a set's newest snapshot is older than its RPO.\n"
	  "\n"
	  "  -s, --set NAME  only this set (repeatable)\n"
	  "      --json      print the status as JSON\n"
	  SET_KEYS_HELP
	  , "newest snapshots against the RPO" },
	{ "config", cli_cmd_config,
	  "usage: strata [--config FILE] config check [--json]\n"
	  "\n"
	  "Read and validate the configuration file (default /etc/strata/strata.conf)\n"
	  "without touching the repository, and print what it says.\n",
	  "check the configuration file" },
};

#define CLI_NCOMMANDS (sizeof(cli_commands) / sizeof(cli_commands[0]))

const struct cli_command *cli_command_find(const char *name)
{
	for (size_t i = 0; i < CLI_NCOMMANDS; i++)
		if (strcmp(cli_commands[i].name, name) == 0)
			return &cli_commands[i];
	return NULL;
}

void cli_command_usage(const struct cli_command *cmd, FILE *f)
{
	fputs(cmd->usage, f);
}

static void cli_usage(FILE *f)
{
	fputs("usage: strata [-r REPO] [OPTION...] COMMAND [ARG...]\n"
	      "\n"
	      "Global options (before the command):\n"
	      "  -r, --repo REPO              the repository (default: $STRATA_REPOSITORY,\n"
	      "                               or [repository] path of the configuration)\n"
	      "  -c, --config FILE            configuration (default: /etc/strata/strata.conf)\n"
	      "      --passphrase-file FILE   read the passphrase from the first line of FILE\n"
	      "      --passphrase-command CMD run CMD with /bin/sh, use its first output line\n"
	      "  -q, --quiet                  no progress and no summaries\n"
	      "  -v, --verbose                more detail\n"
	      "      --json                   machine-readable output\n"
	      "  -h, --help                   this help; `strata help COMMAND` for a command\n"
	      "      --version                print the version\n"
	      "\n"
	      "Commands:\n", f);
	for (size_t i = 0; i < CLI_NCOMMANDS; i++)
		fprintf(f, "  %-9s %s\n", cli_commands[i].name, cli_commands[i].summary);
	fputs("\nThe passphrase of an encrypted repository is never taken from the command\n"
	      "line: use --passphrase-file, --passphrase-command or STRATA_PASSPHRASE.\n"
	      "See strata(1).\n", f);
}

void cli_getopt_reset(void)
{
	optind = 0;
	opterr = 0;
}

/* An error message for getopt's '?' or ':' (opterr is off: we print ourselves). */
static int cli_getopt_error(int c, const char *cmd, char **argv, struct strata_error *err)
{
	const char *word = optind > 0 ? argv[optind - 1] : "";
	char quoted[256];

	if (optopt && optopt < 0x100 && c == '?')
		return strata_error_set(err, -EINVAL, STRATA_ERR_USAGE,
					"%s%sunknown option '-%c' (see strata %s%s--help)",
					cmd ? cmd : "", cmd ? ": " : "", optopt,
					cmd ? cmd : "", cmd ? " " : "");
	strata_quote(quoted, sizeof(quoted), word, strlen(word));
	if (c == ':')
		return strata_error_set(err, -EINVAL, STRATA_ERR_USAGE,
					"%s%soption '%s' requires an argument",
					cmd ? cmd : "", cmd ? ": " : "", quoted);
	return strata_error_set(err, -EINVAL, STRATA_ERR_USAGE,
				"%s%sunknown option '%s' (see strata %s%s--help)",
				cmd ? cmd : "", cmd ? ": " : "", quoted,
				cmd ? cmd : "", cmd ? " " : "");
}

int cli_common_option(int c, const char *cmd, char **argv, struct strata_error *err)
{
	switch (c) {
	case 'h':
		cli_command_usage(cli_command_find(cmd), stdout);
		return CLI_HELP_SHOWN;
	case CLI_OPT_JSON:
		arg_json = true;
		return 1;
	case 'q':
		arg_quiet = true;
		return 1;
	case 'v':
		arg_verbose++;
		return 1;
	case '?':
	case ':':
		return cli_getopt_error(c, cmd, argv, err);
	default:
		return 0;
	}
}

enum {
	OPT_PASSPHRASE_FILE = 0x100,
	OPT_PASSPHRASE_COMMAND,
	OPT_VERSION,
	OPT_EXIT_CODES,
};


/* Returns -1 to go on with the command at argv[optind], else an exit code. */
static int cli_parse_global(int argc, char **argv, struct strata_error *err)
{
	static const struct option options[] = {
		{ "repo", required_argument, NULL, 'r' },
		{ "config", required_argument, NULL, 'c' },
		{ "passphrase-file", required_argument, NULL, OPT_PASSPHRASE_FILE },
		{ "passphrase-command", required_argument, NULL, OPT_PASSPHRASE_COMMAND },
		{ "quiet", no_argument, NULL, 'q' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "json", no_argument, NULL, CLI_OPT_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ "exit-codes", no_argument, NULL, OPT_EXIT_CODES },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	cli_getopt_reset();
	while ((c = getopt_long(argc, argv, "+:r:c:qvh", options, NULL)) != -1) {
		switch (c) {
		case 'r':
			arg_repo = optarg;
			break;
		case 'c':
			arg_config = optarg;
			break;
		case OPT_PASSPHRASE_FILE:
			arg_passphrase_file = optarg;
			break;
		case OPT_PASSPHRASE_COMMAND:
			arg_passphrase_command = optarg;
			break;
		case 'q':
			arg_quiet = true;
			break;
		case 'v':
			arg_verbose++;
			break;
		case CLI_OPT_JSON:
			arg_json = true;
			break;
		case 'h':
			cli_usage(stdout);
			return CLI_EXIT_OK;
		case OPT_VERSION:
			printf("strata %s\n", STRATA_VERSION);
			return CLI_EXIT_OK;
		case OPT_EXIT_CODES:
			cli_exit_print_table(stdout);
			return CLI_EXIT_OK;
		default:
			cli_getopt_error(c, NULL, argv, err);
			return cli_exit_code(err->kind);
		}
	}
	if (!arg_repo) {
		const char *env = getenv("STRATA_REPOSITORY");

		if (env && *env)
			arg_repo = env;
	}
	if (arg_repo && !*arg_repo) {
		strata_error_set(err, -EINVAL, STRATA_ERR_USAGE, "empty repository path");
		return cli_exit_code(err->kind);
	}
	if (optind >= argc) {
		strata_error_set(err, -EINVAL, STRATA_ERR_USAGE, "no command given (see strata --help)");
		return cli_exit_code(err->kind);
	}
	return -1;
}

/* "strata help [COMMAND]" */
static int cli_help(int argc, char **argv, struct strata_error *err)
{
	const struct cli_command *cmd;
	char quoted[128];

	if (argc < 2) {
		cli_usage(stdout);
		return 0;
	}
	if (argc > 2)
		return strata_error_set(err, -EINVAL, STRATA_ERR_USAGE,
					"help: too many arguments");
	cmd = cli_command_find(argv[1]);
	if (!cmd)
		return strata_error_set(err, -EINVAL, STRATA_ERR_USAGE,
					"help: unknown command '%s'",
					strata_quote(quoted, sizeof(quoted), argv[1], strlen(argv[1])));
	cli_command_usage(cmd, stdout);
	return 0;
}

int main(int argc, char **argv)
{
	struct strata_error err;
	const struct cli_command *cmd;
	char quoted[128];
	int r;

	strata_error_init(&err);
	r = cli_parse_global(argc, argv, &err);
	if (r >= 0)
		goto out;

	argc -= optind;
	argv += optind;
	if (strcmp(argv[0], "help") == 0) {
		r = cli_help(argc, argv, &err);
	} else {
		cmd = cli_command_find(argv[0]);
		if (!cmd)
			r = strata_error_set(&err, -EINVAL, STRATA_ERR_USAGE,
					     "unknown command '%s' (see strata --help)",
					     strata_quote(quoted, sizeof(quoted), argv[0],
							  strlen(argv[0])));
		else
			r = cmd->run(argc, argv, &err);
	}
	if (r < 0) {
		if (err.kind == STRATA_ERR_NONE)
			strata_error_set(&err, r, STRATA_ERR_INTERNAL, "%s", strerror(-r));
		r = cli_exit_code(err.kind);
	}
out:
	if (err.kind != STRATA_ERR_NONE)
		fprintf(stderr, "strata: %s\n", err.msg[0] ? err.msg : strata_error_kind_name(err.kind));
	if (fflush(stdout) != 0 && r == 0) {
		fprintf(stderr, "strata: cannot write output: %s\n", strerror(errno));
		r = CLI_EXIT_IO;
	}
	return r;
}
