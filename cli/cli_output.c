/*
 * cli_output.c - how the strata command prints: human sizes, durations and
 * ISO 8601 times, ls -l mode strings, quoting of arbitrary name bytes,
 * aligned tables, JSON through json-c, and the one-line progress display
 * (only on a terminal, at most ten updates a second).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

void cli_format_size(char *dst, size_t size, uint64_t bytes, bool compact)
{
	static const char units[] = "KMGTPE";
	double v = (double)bytes;
	int u = -1;

	if (bytes < 1024) {
		snprintf(dst, size, compact ? "%llu" : "%llu B", (unsigned long long)bytes);
		return;
	}
	while (v >= 1024.0 && u < 5) {
		v /= 1024.0;
		u++;
	}
	if (v < 9.95)
		snprintf(dst, size, compact ? "%.1f%c" : "%.1f %ciB", v, units[u]);
	else
		snprintf(dst, size, compact ? "%.0f%c" : "%.0f %ciB", v, units[u]);
}

void cli_format_duration(char *dst, size_t size, int64_t ns)
{
	int64_t s;

	if (ns < 0)
		ns = 0;
	s = ns / 1000000000;
	if (s < 10)
		snprintf(dst, size, "%.1fs", (double)ns / 1e9);
	else if (s < 60)
		snprintf(dst, size, "%llds", (long long)s);
	else if (s < 3600)
		snprintf(dst, size, "%lldm%02llds", (long long)(s / 60), (long long)(s % 60));
	else
		snprintf(dst, size, "%lldh%02lldm", (long long)(s / 3600),
			 (long long)(s % 3600 / 60));
}

void cli_format_time(char *dst, size_t size, int64_t ns)
{
	if (ns == 0)
		snprintf(dst, size, "-");
	else
		strata_format_time(dst, size, ns, true);
}

void cli_format_mode(char dst[11], char type, uint32_t mode)
{
	static const char rwx[] = "rwxrwxrwx";

	switch (type) {
	case STRATA_T_REG: dst[0] = '-'; break;
	case STRATA_T_DIR: dst[0] = 'd'; break;
	case STRATA_T_LNK: dst[0] = 'l'; break;
	case STRATA_T_FIFO: dst[0] = 'p'; break;
	case STRATA_T_CHR: dst[0] = 'c'; break;
	case STRATA_T_BLK: dst[0] = 'b'; break;
	case STRATA_T_SOCK: dst[0] = 's'; break;
	default: dst[0] = '?'; break;
	}
	for (int i = 0; i < 9; i++)
		dst[1 + i] = (mode & (1u << (8 - i))) ? rwx[i] : '-';
	if (mode & S_ISUID)
		dst[3] = (mode & S_IXUSR) ? 's' : 'S';
	if (mode & S_ISGID)
		dst[6] = (mode & S_IXGRP) ? 's' : 'S';
	if (mode & S_ISVTX)
		dst[9] = (mode & S_IXOTH) ? 't' : 'T';
	dst[10] = '\0';
}

char *cli_quote(const char *s, size_t len)
{
	size_t size;
	char *q;

	if (len > (SIZE_MAX - 8) / 4)
		return NULL;
	size = len * 4 + 8;  /* every byte may become \xNN */
	q = malloc(size);
	if (q)
		strata_quote(q, size, s, len);
	return q;
}

/* ---- JSON ---------------------------------------------------------------- */

void cli_json_print(struct json_object *o)
{
	puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
					    JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
}

int cli_json_add_quoted(struct json_object *o, const char *key, const char *s, size_t len)
{
	struct json_object *v = NULL;

	if (s) {
		char *q = cli_quote(s, len);

		if (!q)
			return -ENOMEM;
		v = json_object_new_string(q);
		free(q);
		if (!v)
			return -ENOMEM;
	}
	return json_object_object_add(o, key, v) < 0 ? -ENOMEM : 0;
}

struct json_object *cli_json_snapshot(const struct strata_snapshot *s)
{
	struct json_object *o = json_object_new_object();
	char started[32], finished[32];

	if (!o)
		return NULL;
	strata_format_time(started, sizeof(started), s->started_ns, true);
	strata_format_time(finished, sizeof(finished), s->finished_ns, true);
	json_object_object_add(o, "id", json_object_new_int64(s->id));
	json_object_object_add(o, "name", json_object_new_string(s->name));
	json_object_object_add(o, "set", json_object_new_string(s->set));
	json_object_object_add(o, "kind", json_object_new_string(strata_level_name(s->kind)));
	json_object_object_add(o, "base", s->base ? json_object_new_int64(s->base) : NULL);
	json_object_object_add(o, "label", s->label[0] ? json_object_new_string(s->label) : NULL);
	json_object_object_add(o, "started", json_object_new_string(started));
	json_object_object_add(o, "finished",
			       s->finished_ns ? json_object_new_string(finished) : NULL);
	{
		int64_t ms = s->finished_ns > s->started_ns ?
			     (s->finished_ns - s->started_ns) / 1000000 : 0;
		char text[32];

		/* milliseconds, printed as such rather than as a binary fraction */
		snprintf(text, sizeof(text), "%lld.%03lld", (long long)(ms / 1000),
			 (long long)(ms % 1000));
		json_object_object_add(o, "duration_s",
				       json_object_new_double_s((double)ms / 1000.0, text));
	}
	json_object_object_add(o, "state",
			       json_object_new_string(strata_snapshot_state_name(s->state)));
	json_object_object_add(o, "files", json_object_new_uint64(s->files));
	json_object_object_add(o, "files_stored", json_object_new_uint64(s->files_stored));
	json_object_object_add(o, "bytes_read", json_object_new_uint64(s->bytes_read));
	json_object_object_add(o, "bytes_stored", json_object_new_uint64(s->bytes_stored));
	json_object_object_add(o, "warnings", json_object_new_uint64(s->warnings));
	return o;
}

/* ---- tables -------------------------------------------------------------- */

struct cli_table {
	size_t ncols;
	const char *const *headers;
	const bool *right;
	char **cells;        /* rows * ncols, owned */
	size_t rows, alloc;
};

struct cli_table *cli_table_new(size_t ncols, const char *const *headers, const bool *right)
{
	struct cli_table *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->ncols = ncols;
	t->headers = headers;
	t->right = right;
	return t;
}

int cli_table_add(struct cli_table *t, const char *const *cells)
{
	if (t->rows == t->alloc) {
		size_t na = t->alloc ? t->alloc * 2 : 16;
		char **nc;

		if (na > SIZE_MAX / sizeof(char *) / t->ncols)
			return -ENOMEM;
		nc = realloc(t->cells, na * t->ncols * sizeof(char *));
		if (!nc)
			return -ENOMEM;
		t->cells = nc;
		t->alloc = na;
	}
	for (size_t c = 0; c < t->ncols; c++) {
		char *d = strdup(cells[c] ? cells[c] : "");

		if (!d) {
			for (size_t k = 0; k < c; k++)
				free(t->cells[t->rows * t->ncols + k]);
			return -ENOMEM;
		}
		t->cells[t->rows * t->ncols + c] = d;
	}
	t->rows++;
	return 0;
}

static void cli_table_row(const struct cli_table *t, FILE *f, const size_t *w,
			  const char *const *row)
{
	for (size_t c = 0; c < t->ncols; c++) {
		bool last = c + 1 == t->ncols;

		if (t->right && t->right[c])
			fprintf(f, "%*s", (int)w[c], row[c]);
		else if (last)
			fputs(row[c], f);
		else
			fprintf(f, "%-*s", (int)w[c], row[c]);
		fputs(last ? "\n" : "  ", f);
	}
}

void cli_table_print(const struct cli_table *t, FILE *f)
{
	size_t *w = calloc(t->ncols, sizeof(*w));

	if (!w)
		return;
	for (size_t c = 0; c < t->ncols; c++) {
		w[c] = t->headers ? strlen(t->headers[c]) : 0;
		for (size_t r = 0; r < t->rows; r++) {
			size_t l = strlen(t->cells[r * t->ncols + c]);

			if (l > w[c])
				w[c] = l;
		}
	}
	if (t->headers)
		cli_table_row(t, f, w, t->headers);
	for (size_t r = 0; r < t->rows; r++)
		cli_table_row(t, f, w, (const char *const *)&t->cells[r * t->ncols]);
	free(w);
}

void cli_table_free(struct cli_table *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->rows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t);
}

/* ---- progress ------------------------------------------------------------ */

void cli_progress_init(struct cli_progress *p)
{
	p->enabled = !arg_quiet && isatty(STDERR_FILENO);
	p->last_ns = 0;
	p->last_len = 0;
}

void cli_progress_update(struct cli_progress *p, const char *fmt, ...)
{
	char line[160];
	int64_t now;
	va_list ap;
	int n;

	if (!p->enabled)
		return;
	now = strata_now_ns();
	if (p->last_ns && now - p->last_ns < 100000000)
		return;
	p->last_ns = now;
	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line))
		n = sizeof(line) - 1;
	/* pad over the rest of the previous, longer line */
	fprintf(stderr, "\r%s%*s", line, p->last_len > (size_t)n ? (int)(p->last_len - (size_t)n) : 0, "");
	fflush(stderr);
	p->last_len = (size_t)n;
}

void cli_progress_clear(struct cli_progress *p)
{
	if (!p->enabled || !p->last_len)
		return;
	fprintf(stderr, "\r%*s\r", (int)p->last_len, "");
	fflush(stderr);
	p->last_len = 0;
	p->last_ns = 0;
}
