/*
 * cli_repo.c - opening the repository the same way in every command:
 * which path (-r or STRATA_REPOSITORY), the one "no repository" message,
 * unlocking an encrypted repository only for commands that read or write
 * archives, and opening REPO/catalog.db read-only or read-write.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

void cli_repo_close(struct cli_repo *r)
{
	strata_catalog_close(r->cat);
	strata_repo_close(r->repo);
	r->cat = NULL;
	r->repo = NULL;
}

static int cli_repo_unlock(struct cli_repo *r, struct strata_error *err)
{
	char what[600], quoted[512];
	char *pass = NULL;
	size_t len = 0;
	int ret;

	strata_quote(quoted, sizeof(quoted), arg_repo, strlen(arg_repo));
	snprintf(what, sizeof(what), "encrypted repository '%s'", quoted);
	ret = cli_passphrase_get(what, false, &pass, &len, err);
	if (ret < 0)
		return ret;
	ret = strata_repo_unlock(r->repo, pass, len, err);
	cli_passphrase_free(pass, len);
	return ret;
}

int cli_repo_open(struct cli_repo *r, unsigned flags, struct strata_error *err)
{
	struct strata_catalog_options copts = { .readonly = !(flags & CLI_REPO_WRITE) };
	struct strata_buf path = STRATA_BUF_INIT(0);
	char quoted[512];
	int ret;

	r->repo = NULL;
	r->cat = NULL;
	if (!arg_repo)
		return strata_error_set(err, -EINVAL, STRATA_ERR_USAGE,
					"no repository given (use -r or STRATA_REPOSITORY)");
	strata_quote(quoted, sizeof(quoted), arg_repo, strlen(arg_repo));

	ret = strata_repo_open(arg_repo, &r->repo, err);
	if (ret == -ENOENT || (ret < 0 && err->kind == STRATA_ERR_NOT_FOUND)) {
		/* one message for every command, whatever store/ said */
		strata_error_init(err);
		ret = strata_error_set(err, -ENOENT, STRATA_ERR_NOT_FOUND,
				       "no repository at '%s' (use -r or STRATA_REPOSITORY)",
				       quoted);
	}
	if (ret < 0)
		goto out;

	if (strata_repo_encrypted(r->repo) &&
	    ((flags & CLI_REPO_KEY) || ((flags & CLI_REPO_KEY_IF_GIVEN) && cli_passphrase_given()))) {
		ret = cli_repo_unlock(r, err);
		if (ret < 0)
			goto out;
	}

	ret = strata_buf_printf(&path, "%s/catalog.db", strata_repo_path(r->repo));
	if (ret < 0) {
		ret = strata_error_set(err, ret, STRATA_ERR_INTERNAL, "out of memory");
		goto out;
	}
	ret = strata_catalog_open((const char *)path.data, &copts, &r->cat, err);
out:
	strata_buf_release(&path);
	if (ret < 0)
		cli_repo_close(r);
	return ret;
}

int cli_snapshot_find(struct cli_repo *r, const char *spec, const char *default_set,
		      struct strata_snapshot *ret, struct strata_error *err)
{
	return strata_catalog_snapshot_find(r->cat, spec, default_set, ret, err);
}
