/*
 * cli_exit.c - the one table mapping strata's error kinds to the exit
 * codes of the strata command.  docs/strata.1 (EXIT STATUS) documents the
 * same table; `strata --exit-codes` prints it so a test can compare both.
 * Change the two together.
 */
#include "cli.h"

struct cli_exit_row {
	int code;
	const char *name;            /* as strata_error_kind_name, or success/warning */
	enum strata_error_kind kind; /* STRATA_ERR_NONE for success and warning */
};

static const struct cli_exit_row cli_exit_table[] = {
	{ CLI_EXIT_OK,        "success",   STRATA_ERR_NONE },
	{ CLI_EXIT_INTERNAL,  "internal",  STRATA_ERR_INTERNAL },
	{ CLI_EXIT_USAGE,     "usage",     STRATA_ERR_USAGE },
	{ CLI_EXIT_WARNING,   "warning",   STRATA_ERR_NONE },
	{ CLI_EXIT_NOT_FOUND, "not-found", STRATA_ERR_NOT_FOUND },
	{ CLI_EXIT_CORRUPT,   "corrupt",   STRATA_ERR_CORRUPT },
	{ CLI_EXIT_AUTH,      "auth",      STRATA_ERR_AUTH },
	{ CLI_EXIT_LOCKED,    "locked",    STRATA_ERR_LOCKED },
	{ CLI_EXIT_IO,        "io",        STRATA_ERR_IO },
	{ CLI_EXIT_RPO,       "rpo-breached", STRATA_ERR_NONE },
};

int cli_exit_code(enum strata_error_kind kind)
{
	if (kind == STRATA_ERR_NONE)
		return CLI_EXIT_OK;
	for (size_t i = 0; i < sizeof(cli_exit_table) / sizeof(cli_exit_table[0]); i++)
		if (cli_exit_table[i].kind == kind)
			return cli_exit_table[i].code;
	return CLI_EXIT_INTERNAL;
}

void cli_exit_print_table(FILE *f)
{
	for (size_t i = 0; i < sizeof(cli_exit_table) / sizeof(cli_exit_table[0]); i++)
		fprintf(f, "%d %s\n", cli_exit_table[i].code, cli_exit_table[i].name);
}
