/*
 * cli_cmd_list.c - the commands that answer from the catalog alone, never
 * reading an archive (so they need no passphrase): `list` (snapshots),
 * `ls` (a directory of a snapshot, like ls -l) and `diff` (what changed
 * between two snapshots of a set).  Names are bytes: every name printed
 * goes through strata_quote, in text and in JSON.
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>

#include "cli.h"

/* Parse the options shared by list, ls and diff: --set, -R (ls only). */
static int cli_catalog_opts(int argc, char **argv, const char *cmd, bool allow_recursive,
			    const char **ret_set, bool *ret_recursive, struct strata_error *err)
{
	static const struct option options[] = {
		CLI_COMMON_LONG,
		{ "set", required_argument, NULL, 's' },
		{ "recursive", no_argument, NULL, 'R' },
		{ NULL, 0, NULL, 0 },
	};
	int c, r;

	cli_getopt_reset();
	while ((c = getopt_long(argc, argv, CLI_COMMON_SHORT "s:R", options, NULL)) != -1) {
		r = cli_common_option(c, cmd, argv, err);
		if (r < 0 || r == CLI_HELP_SHOWN)
			return r;
		if (r > 0)
			continue;
		switch (c) {
		case 's':
			*ret_set = optarg;
			break;
		case 'R':
			if (!allow_recursive)
				return strata_error_set(err, -EINVAL, STRATA_ERR_USAGE,
							"%s: unknown option '-R' (see strata %s --help)",
							cmd, cmd);
			*ret_recursive = true;
			break;
		default:
			return strata_error_set(err, -EINVAL, STRATA_ERR_INTERNAL,
						"%s: unhandled option", cmd);
		}
	}
	return 0;
}

static int cli_nomem(struct strata_error *err)
{
	return strata_error_set(err, -ENOMEM, STRATA_ERR_INTERNAL, "out of memory");
}

/* ---- list ---------------------------------------------------------------- */

int cli_cmd_list(int argc, char **argv, struct strata_error *err)
{
	static const char *const headers[] = {
		"ID", "NAME", "SET", "KIND", "BASE", "STARTED", "DURATION", "FILES", "READ",
		"STORED", "STATE",
	};
	static const bool right[] = {
		true, false, false, false, true, false, true, true, true, true, false,
	};
	struct cli_repo repo = { 0 };
	struct strata_snapshot *snaps = NULL;
	struct cli_table *t = NULL;
	struct json_object *arr = NULL;
	const char *arg_set = NULL;
	bool unused = false;
	char quoted[256];
	size_t n = 0;
	int r;

	r = cli_catalog_opts(argc, argv, "list", false, &arg_set, &unused, err);
	if (r < 0 || r == CLI_HELP_SHOWN)
		return r < 0 ? r : 0;
	if (optind < argc)
		return strata_error_set(err, -EINVAL, STRATA_ERR_USAGE,
					"list: unexpected argument (see strata list --help)");
	r = cli_repo_open(&repo, 0, err);
	if (r < 0)
		return r;
	r = strata_catalog_snapshot_list(repo.cat, arg_set, &snaps, &n, err);
	if (r < 0)
		goto out;

	if (arg_json) {
		arr = json_object_new_array();
		if (!arr) {
			r = cli_nomem(err);
			goto out;
		}
		for (size_t i = 0; i < n; i++) {
			struct json_object *o = cli_json_snapshot(&snaps[i]);

			if (!o || json_object_array_add(arr, o) < 0) {
				json_object_put(o);
				r = cli_nomem(err);
				goto out;
			}
		}
		cli_json_print(arr);
		arr = NULL;
		goto out;
	}

	t = cli_table_new(11, headers, right);
	if (!t) {
		r = cli_nomem(err);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		const struct strata_snapshot *s = &snaps[i];
		char id[24], base[24], started[32], dur[32], files[24], rd[32], st[32];
		const char *cells[11];

		snprintf(id, sizeof(id), "%lld", (long long)s->id);
		if (s->base)
			snprintf(base, sizeof(base), "%lld", (long long)s->base);
		else
			snprintf(base, sizeof(base), "-");
		cli_format_time(started, sizeof(started), s->started_ns);
		cli_format_duration(dur, sizeof(dur), s->finished_ns - s->started_ns);
		snprintf(files, sizeof(files), "%llu", (unsigned long long)s->files);
		cli_format_size(rd, sizeof(rd), s->bytes_read, true);
		cli_format_size(st, sizeof(st), s->bytes_stored, true);
		cells[0] = id;
		cells[1] = s->name;
		cells[2] = s->set;
		cells[3] = strata_level_name(s->kind);
		cells[4] = base;
		cells[5] = started;
		cells[6] = dur;
		cells[7] = files;
		cells[8] = rd;
		cells[9] = st;
		cells[10] = strata_snapshot_state_name(s->state);
		if (cli_table_add(t, cells) < 0) {
			r = cli_nomem(err);
			goto out;
		}
	}
	if (n > 0)
		cli_table_print(t, stdout);
	else if (!arg_quiet && arg_set)
		fprintf(stderr, "no snapshots in set '%s'\n",
			strata_quote(quoted, sizeof(quoted), arg_set, strlen(arg_set)));
	else if (!arg_quiet)
		fprintf(stderr, "no snapshots\n");
out:
	json_object_put(arr);
	cli_table_free(t);
	free(snaps);
	cli_repo_close(&repo);
	return r;
}

/* ---- ls ------------------------------------------------------------------ */

struct cli_ls_ctx {
	struct cli_table *t;
	struct json_object *arr;
	struct strata_error *err;
};

static int cli_ls_json(struct cli_ls_ctx *ctx, const struct strata_entry *e,
		       const char *path, size_t path_len)
{
	struct json_object *o = json_object_new_object();
	char type[2] = { e->type, '\0' };
	char mtime[32], mode[16];

	if (!o)
		return -ENOMEM;
	strata_format_time(mtime, sizeof(mtime), e->mtime_ns, true);
	snprintf(mode, sizeof(mode), "%04o", (unsigned)(e->mode & 07777));
	if (cli_json_add_quoted(o, "name", e->name, e->name_len) < 0 ||
	    cli_json_add_quoted(o, "path", path, path_len) < 0 ||
	    cli_json_add_quoted(o, "link", e->link, e->link ? e->link_len : 0) < 0 ||
	    cli_json_add_quoted(o, "user", e->uname, e->uname ? strlen(e->uname) : 0) < 0 ||
	    cli_json_add_quoted(o, "group", e->gname, e->gname ? strlen(e->gname) : 0) < 0) {
		json_object_put(o);
		return -ENOMEM;
	}
	json_object_object_add(o, "type", json_object_new_string(type));
	json_object_object_add(o, "mode", json_object_new_string(mode));
	json_object_object_add(o, "uid", json_object_new_int64(e->uid));
	json_object_object_add(o, "gid", json_object_new_int64(e->gid));
	json_object_object_add(o, "size", json_object_new_uint64(e->size));
	json_object_object_add(o, "nlink", json_object_new_int64(e->nlink));
	json_object_object_add(o, "mtime", json_object_new_string(mtime));
	json_object_object_add(o, "mtime_ns", json_object_new_int64(e->mtime_ns));
	if (e->has_sha256) {
		char hex[65];

		strata_hex(hex, e->sha256, 32);
		json_object_object_add(o, "sha256", json_object_new_string(hex));
	}
	if (json_object_array_add(ctx->arr, o) < 0) {
		json_object_put(o);
		return -ENOMEM;
	}
	return 0;
}

/* One row of ls -l; 'name' is what to show (a name, or a path with -R). */
static int cli_ls_row(struct cli_ls_ctx *ctx, const struct strata_entry *e,
		      const char *name, size_t name_len)
{
	char mode[11], nlink[16], user[64], group[64], size[48], mtime[32];
	struct strata_buf shown = STRATA_BUF_INIT(0);
	char *qname = NULL, *qlink = NULL;
	const char *cells[7];
	int r = -ENOMEM;

	cli_format_mode(mode, e->type, e->mode);
	snprintf(nlink, sizeof(nlink), "%u", (unsigned)e->nlink);
	if (e->uname && *e->uname)
		strata_quote(user, sizeof(user), e->uname, strlen(e->uname));
	else
		snprintf(user, sizeof(user), "%u", (unsigned)e->uid);
	if (e->gname && *e->gname)
		strata_quote(group, sizeof(group), e->gname, strlen(e->gname));
	else
		snprintf(group, sizeof(group), "%u", (unsigned)e->gid);
	if (e->type == STRATA_T_CHR || e->type == STRATA_T_BLK)
		snprintf(size, sizeof(size), "%u, %u", major((dev_t)e->rdev),
			 minor((dev_t)e->rdev));
	else
		snprintf(size, sizeof(size), "%llu", (unsigned long long)e->size);
	strata_format_time(mtime, sizeof(mtime), e->mtime_ns, true);

	qname = cli_quote(name, name_len);
	if (!qname)
		goto out;
	if (strata_buf_printf(&shown, "%s", qname) < 0)
		goto out;
	if (e->type == STRATA_T_LNK && e->link) {
		qlink = cli_quote(e->link, e->link_len);
		if (!qlink || strata_buf_printf(&shown, " -> %s", qlink) < 0)
			goto out;
	}
	cells[0] = mode;
	cells[1] = nlink;
	cells[2] = user;
	cells[3] = group;
	cells[4] = size;
	cells[5] = mtime;
	cells[6] = (const char *)shown.data;
	r = cli_table_add(ctx->t, cells);
out:
	free(qname);
	free(qlink);
	strata_buf_release(&shown);
	return r;
}

static int cli_ls_entry(struct cli_ls_ctx *ctx, const struct strata_entry *e,
			const char *name, size_t name_len, const char *path, size_t path_len)
{
	if (ctx->arr)
		return cli_ls_json(ctx, e, path, path_len);
	return cli_ls_row(ctx, e, name, name_len);
}

static int cli_ls_walk(void *vctx, const struct strata_entry *e, const char *path,
		       size_t path_len)
{
	struct cli_ls_ctx *ctx = vctx;
	int r = cli_ls_entry(ctx, e, path, path_len, path, path_len);

	return r < 0 ? strata_error_set(ctx->err, r, STRATA_ERR_INTERNAL, "out of memory") : 0;
}

int cli_cmd_ls(int argc, char **argv, struct strata_error *err)
{
	static const bool right[] = { false, true, false, false, true, false, false };
	struct cli_repo repo = { 0 };
	struct strata_snapshot snap;
	struct strata_entry_list found = { 0 }, children = { 0 };
	struct strata_buf dirpath = STRATA_BUF_INIT(0), pathbuf = STRATA_BUF_INIT(0);
	struct cli_ls_ctx ctx = { .err = err };
	const char *arg_set = NULL, *spec, *path = "";
	bool arg_recursive = false;
	int64_t dir_node = 0;
	bool is_dir = true;
	int r;

	r = cli_catalog_opts(argc, argv, "ls", true, &arg_set, &arg_recursive, err);
	if (r < 0 || r == CLI_HELP_SHOWN)
		return r < 0 ? r : 0;
	if (optind >= argc)
		return strata_error_set(err, -EINVAL, STRATA_ERR_USAGE,
					"ls: no SNAPSHOT given (see strata ls --help)");
	if (argc - optind > 2)
		return strata_error_set(err, -EINVAL, STRATA_ERR_USAGE,
					"ls: too many arguments (see strata ls --help)");
	spec = argv[optind];
	if (argc - optind == 2) {
		/* "/etc/erp/" and "etc/erp" name the same entry */
		size_t len;

		path = argv[optind + 1];
		while (*path == '/')
			path++;
		len = strlen(path);
		while (len > 0 && path[len - 1] == '/')
			len--;
		if (strata_buf_append(&pathbuf, path, len) < 0)
			return cli_nomem(err);
		path = (const char *)pathbuf.data;
	}

	r = cli_repo_open(&repo, 0, err);
	if (r < 0)
		goto out;
	r = cli_snapshot_find(&repo, spec, arg_set, &snap, err);
	if (r < 0)
		goto out;
	r = strata_catalog_resolve(repo.cat, snap.set_id, snap.id, path, &found, err);
	if (r < 0)
		goto out;
	if (found.n > 0) {
		const struct strata_entry *e = &found.v[found.n - 1];

		is_dir = e->type == STRATA_T_DIR;
		dir_node = e->node_id;
	}

	if (arg_json) {
		ctx.arr = json_object_new_array();
		if (!ctx.arr) {
			r = cli_nomem(err);
			goto out;
		}
	} else {
		ctx.t = cli_table_new(7, NULL, right);
		if (!ctx.t) {
			r = cli_nomem(err);
			goto out;
		}
	}

	if (!is_dir) {
		const struct strata_entry *e = &found.v[found.n - 1];

		r = cli_ls_entry(&ctx, e, path, strlen(path), path, strlen(path));
		if (r < 0) {
			r = cli_nomem(err);
			goto out;
		}
	} else if (arg_recursive) {
		r = strata_catalog_walk(repo.cat, snap.set_id, snap.id, dir_node, cli_ls_walk,
					&ctx, err);
		if (r < 0)
			goto out;
	} else {
		r = strata_catalog_children(repo.cat, snap.set_id, snap.id, dir_node, &children,
					    err);
		if (r < 0)
			goto out;
		for (size_t i = 0; i < children.n; i++) {
			const struct strata_entry *e = &children.v[i];

			strata_buf_reset(&dirpath);
			if ((*path && (strata_buf_append(&dirpath, path, strlen(path)) < 0 ||
				       strata_buf_append(&dirpath, "/", 1) < 0)) ||
			    strata_buf_append(&dirpath, e->name, e->name_len) < 0) {
				r = cli_nomem(err);
				goto out;
			}
			r = cli_ls_entry(&ctx, e, e->name, e->name_len,
					 (const char *)dirpath.data, dirpath.len);
			if (r < 0) {
				r = cli_nomem(err);
				goto out;
			}
		}
	}
	if (ctx.arr) {
		cli_json_print(ctx.arr);
		ctx.arr = NULL;
	} else {
		cli_table_print(ctx.t, stdout);
	}
	r = 0;
out:
	json_object_put(ctx.arr);
	cli_table_free(ctx.t);
	strata_buf_release(&dirpath);
	strata_buf_release(&pathbuf);
	strata_entry_list_release(&children);
	strata_entry_list_release(&found);
	cli_repo_close(&repo);
	return r;
}

/* ---- diff ---------------------------------------------------------------- */

/* CLI_SAME: a new version with nothing visible changed (a full stores everything again). */
enum cli_change { CLI_ADDED, CLI_REMOVED, CLI_MODIFIED, CLI_METADATA, CLI_NCHANGES, CLI_SAME };

static const char cli_change_mark[CLI_NCHANGES] = { '+', '-', 'M', 'm' };
static const char *const cli_change_key[CLI_NCHANGES] = {
	"added", "removed", "modified", "metadata",
};

static bool cli_bytes_differ(const void *a, size_t alen, const void *b, size_t blen)
{
	if (alen != blen)
		return true;
	if (alen == 0)
		return false;
	if (!a || !b)
		return a != b;
	return memcmp(a, b, alen) != 0;
}

/*
 * Content or kind changed: type, size, mtime, link target, sparse map, or
 * the content itself (SHA-256 when both versions have one, else where the
 * content is stored).  Anything else that differs is metadata only.
 */
static enum cli_change cli_classify(const struct strata_entry *a, const struct strata_entry *b)
{
	if (!a)
		return CLI_ADDED;
	if (!b)
		return CLI_REMOVED;
	if (a->type != b->type || a->size != b->size || a->mtime_ns != b->mtime_ns ||
	    cli_bytes_differ(a->link, a->link ? a->link_len : 0, b->link, b->link ? b->link_len : 0) ||
	    cli_bytes_differ(a->sparse, a->sparse_len, b->sparse, b->sparse_len))
		return CLI_MODIFIED;
	if (a->has_sha256 && b->has_sha256) {
		if (memcmp(a->sha256, b->sha256, 32) != 0)
			return CLI_MODIFIED;
	} else if (a->has_sha256 != b->has_sha256 || a->archive != b->archive ||
		   a->data_offset != b->data_offset) {
		return CLI_MODIFIED;
	}
	/* mode, uid, gid, names, xattrs, ACLs, ctime: metadata */
	if (a->mode != b->mode || a->uid != b->uid || a->gid != b->gid || a->ctime_ns != b->ctime_ns ||
	    a->nlink != b->nlink || a->rdev != b->rdev ||
	    cli_bytes_differ(a->xattrs, a->xattrs_len, b->xattrs, b->xattrs_len) ||
	    cli_bytes_differ(a->uname, a->uname ? strlen(a->uname) : 0, b->uname,
			     b->uname ? strlen(b->uname) : 0) ||
	    cli_bytes_differ(a->gname, a->gname ? strlen(a->gname) : 0, b->gname,
			     b->gname ? strlen(b->gname) : 0))
		return CLI_METADATA;
	return CLI_SAME;
}

struct cli_diff_ctx {
	uint64_t count[CLI_NCHANGES];
	struct json_object *lists[CLI_NCHANGES];
	struct strata_error *err;
};

static int cli_diff_cb(void *vctx, const struct strata_entry *ea, const struct strata_entry *eb,
		       const char *path, size_t path_len)
{
	struct cli_diff_ctx *ctx = vctx;
	enum cli_change ch;
	char *q;

	if (!ea && !eb)
		return 0;
	ch = cli_classify(ea, eb);
	if (ch == CLI_SAME)
		return 0;
	ctx->count[ch]++;
	q = cli_quote(path, path_len);
	if (!q)
		return strata_error_set(ctx->err, -ENOMEM, STRATA_ERR_INTERNAL, "out of memory");
	if (arg_json) {
		struct json_object *s = json_object_new_string(q);

		if (!s || json_object_array_add(ctx->lists[ch], s) < 0) {
			json_object_put(s);
			free(q);
			return strata_error_set(ctx->err, -ENOMEM, STRATA_ERR_INTERNAL,
						"out of memory");
		}
	} else {
		printf("%c %s\n", cli_change_mark[ch], q);
	}
	free(q);
	return 0;
}

int cli_cmd_diff(int argc, char **argv, struct strata_error *err)
{
	struct cli_repo repo = { 0 };
	struct strata_snapshot a, b;
	struct cli_diff_ctx ctx = { .err = err };
	struct json_object *o = NULL;
	const char *arg_set = NULL;
	bool unused = false;
	int r;

	r = cli_catalog_opts(argc, argv, "diff", false, &arg_set, &unused, err);
	if (r < 0 || r == CLI_HELP_SHOWN)
		return r < 0 ? r : 0;
	if (argc - optind != 2)
		return strata_error_set(err, -EINVAL, STRATA_ERR_USAGE,
					"diff: needs two snapshots, SNAP_A and SNAP_B (see strata diff --help)");
	r = cli_repo_open(&repo, 0, err);
	if (r < 0)
		return r;
	r = cli_snapshot_find(&repo, argv[optind], arg_set, &a, err);
	if (r < 0)
		goto out;
	r = cli_snapshot_find(&repo, argv[optind + 1], arg_set, &b, err);
	if (r < 0)
		goto out;
	if (a.set_id != b.set_id) {
		r = strata_error_set(err, -EINVAL, STRATA_ERR_USAGE,
				     "diff: snapshots '%s' and '%s' belong to different sets ('%s', '%s')",
				     a.name, b.name, a.set, b.set);
		goto out;
	}
	if (arg_json) {
		o = json_object_new_object();
		if (!o) {
			r = cli_nomem(err);
			goto out;
		}
		for (int i = 0; i < CLI_NCHANGES; i++) {
			ctx.lists[i] = json_object_new_array();
			if (!ctx.lists[i] ||
			    json_object_object_add(o, cli_change_key[i], ctx.lists[i]) < 0) {
				json_object_put(ctx.lists[i]);
				r = cli_nomem(err);
				goto out;
			}
		}
	}
	r = strata_catalog_diff(repo.cat, a.set_id, a.id, b.id, cli_diff_cb, &ctx, err);
	if (r < 0)
		goto out;
	if (o) {
		cli_json_print(o);
		o = NULL;
	} else if (!arg_quiet) {
		printf("%llu added, %llu removed, %llu modified, %llu metadata only\n",
		       (unsigned long long)ctx.count[CLI_ADDED],
		       (unsigned long long)ctx.count[CLI_REMOVED],
		       (unsigned long long)ctx.count[CLI_MODIFIED],
		       (unsigned long long)ctx.count[CLI_METADATA]);
	}
	r = 0;
out:
	json_object_put(o);
	cli_repo_close(&repo);
	return r;
}
