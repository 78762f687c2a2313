/*
 * cli_cmd_repo.c - `strata init`: create a repository (store/) and its
 * empty catalog (catalog/), optionally encrypted with a passphrase.
 * STRATA_KDF_COST="t,m_kib" (an undocumented hook for tests) lowers the
 * Argon2id cost.
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static int cli_kdf_cost(struct strata_repo_create_options *o, struct strata_error *err)
{
	const char *env = getenv("STRATA_KDF_COST");
	char buf[64], *comma;
	uint64_t t, m;

	if (!env || !*env)
		return 0;
	if (strlen(env) >= sizeof(buf))
		goto bad;
	memcpy(buf, env, strlen(env) + 1);
	comma = strchr(buf, ',');
	if (!comma)
		goto bad;
	*comma = '\0';
	if (strata_parse_u64(buf, &t) < 0 || strata_parse_u64(comma + 1, &m) < 0 ||
	    t == 0 || t > UINT32_MAX || m == 0 || m > UINT32_MAX)
		goto bad;
	o->kdf_t_cost = (uint32_t)t;
	o->kdf_m_cost_kib = (uint32_t)m;
	return 0;
bad:
	return strata_error_set(err, -EINVAL, STRATA_ERR_USAGE,
				"STRATA_KDF_COST must be \"T,M_KIB\" (two positive numbers)");
}

int cli_cmd_init(int argc, char **argv, struct strata_error *err)
{
	enum { OPT_ENCRYPT = 0x100 };
	static const struct option options[] = {
		CLI_COMMON_LONG,
		{ "encrypt", no_argument, NULL, OPT_ENCRYPT },
		{ NULL, 0, NULL, 0 },
	};
	struct strata_repo_create_options copts = { 0 };
	struct strata_catalog_options catopts = { .create = true };
	struct strata_catalog *cat = NULL;
	struct strata_repo *repo = NULL;
	struct strata_buf path = STRATA_BUF_INIT(0);
	bool encrypt = false;
	char *pass = NULL;
	size_t pass_len = 0;
	char quoted[512];
	int c, r = 0;

	cli_getopt_reset();
	while ((c = getopt_long(argc, argv, CLI_COMMON_SHORT, options, NULL)) != -1) {
		r = cli_common_option(c, "init", argv, err);
		if (r < 0)
			return r;
		if (r == CLI_HELP_SHOWN)
			return 0;
		if (r > 0)
			continue;
		switch (c) {
		case OPT_ENCRYPT:
			encrypt = true;
			break;
		default:
			return strata_error_set(err, -EINVAL, STRATA_ERR_INTERNAL,
						"init: unhandled option");
		}
	}
	if (optind < argc)
		return strata_error_set(err, -EINVAL, STRATA_ERR_USAGE,
					"init: unexpected argument '%s'",
					strata_quote(quoted, sizeof(quoted), argv[optind],
						     strlen(argv[optind])));
	if (!arg_repo)
		return strata_error_set(err, -EINVAL, STRATA_ERR_USAGE,
					"no repository given (use -r or STRATA_REPOSITORY)");
	strata_quote(quoted, sizeof(quoted), arg_repo, strlen(arg_repo));

	r = cli_kdf_cost(&copts, err);
	if (r < 0)
		goto out;
	if (encrypt) {
		char what[600];

		snprintf(what, sizeof(what), "an encrypted repository");
		r = cli_passphrase_get(what, true, &pass, &pass_len, err);
		if (r < 0)
			goto out;
		copts.passphrase = pass;
		copts.passphrase_len = pass_len;
	}
	r = strata_repo_create(arg_repo, &copts, err);
	if (r < 0)
		goto out;
	r = strata_repo_open(arg_repo, &repo, err);
	if (r < 0)
		goto out;
	r = strata_buf_printf(&path, "%s/catalog.db", strata_repo_path(repo));
	if (r < 0) {
		r = strata_error_set(err, r, STRATA_ERR_INTERNAL, "out of memory");
		goto out;
	}
	r = strata_catalog_open((const char *)path.data, &catopts, &cat, err);
	if (r < 0)
		goto out;

	if (arg_json) {
		struct json_object *o = json_object_new_object();

		if (!o) {
			r = strata_error_set(err, -ENOMEM, STRATA_ERR_INTERNAL, "out of memory");
			goto out;
		}
		json_object_object_add(o, "path", json_object_new_string(strata_repo_path(repo)));
		json_object_object_add(o, "id", json_object_new_string(strata_repo_id(repo)));
		json_object_object_add(o, "encrypted", json_object_new_boolean(encrypt));
		cli_json_print(o);
	} else if (!arg_quiet) {
		printf("initialized %srepository '%s' (id %s)\n", encrypt ? "encrypted " : "",
		       quoted, strata_repo_id(repo));
	}
out:
	strata_buf_release(&path);
	strata_catalog_close(cat);
	strata_repo_close(repo);
	cli_passphrase_free(pass, pass_len);
	return r;
}
