/*
 * cli_schedule.c - the time side of the backup policy: calendars ("daily
 * 02:00", "sun 01:00", "last-day 01:00"), durations ("24h", "7d", "1y"),
 * the default policy, and STRATA_NOW.
 *
 * Calendars are evaluated in local time (the TZ environment variable), as
 * cron and systemd timers do; `strata run` asks for the most recent
 * scheduled time at or before now, so a missed time is caught up at the
 * next run whatever the wall clock did in between.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cli.h"

#define CAL_SEARCH_DAYS 400

static const char *const weekday_names[7] = { "sun", "mon", "tue", "wed", "thu", "fri", "sat" };
static const char *const weekday_long[7] = {
	"sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday",
};

static int parse_hhmm(const char *s, int *h, int *m)
{
	if (strlen(s) != 5 || s[2] != ':' || s[0] < '0' || s[0] > '2' || s[1] < '0' || s[1] > '9' ||
	    s[3] < '0' || s[3] > '5' || s[4] < '0' || s[4] > '9')
		return -EINVAL;
	*h = (s[0] - '0') * 10 + (s[1] - '0');
	*m = (s[3] - '0') * 10 + (s[4] - '0');
	return *h < 24 ? 0 : -EINVAL;
}

static int parse_weekdays(const char *s, unsigned *ret)
{
	unsigned mask = 0;

	while (*s) {
		size_t len = strcspn(s, ",");
		int found = -1;

		for (int i = 0; i < 7; i++)
			if ((strlen(weekday_names[i]) == len &&
			     strncasecmp(s, weekday_names[i], len) == 0) ||
			    (strlen(weekday_long[i]) == len && strncasecmp(s, weekday_long[i], len) == 0))
				found = i;
		if (found < 0)
			return -EINVAL;
		mask |= 1u << found;
		s += len;
		if (*s == ',' && !*++s)
			return -EINVAL;
	}
	if (!mask)
		return -EINVAL;
	*ret = mask;
	return 0;
}

int cli_calendar_parse(const char *s, struct cli_calendar *ret)
{
	struct cli_calendar c = { 0 };
	char w[3][64];
	int n = 0;
	const char *p = s;

	while (*p && n < 4) {
		size_t len;

		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p)
			break;
		len = strcspn(p, " \t");
		if (n == 3 || len >= sizeof(w[0]))
			return -EINVAL;
		memcpy(w[n], p, len);
		w[n][len] = '\0';
		n++;
		p += len;
	}
	if (n == 0)
		return -EINVAL;
	if (strcasecmp(w[0], "never") == 0 || strcasecmp(w[0], "off") == 0) {
		if (n != 1)
			return -EINVAL;
		c.type = CLI_CAL_NEVER;
	} else if (strcasecmp(w[0], "hourly") == 0) {
		c.type = CLI_CAL_HOURLY;
		if (n == 2) {
			if (strlen(w[1]) != 3 || w[1][0] != ':' || w[1][1] < '0' || w[1][1] > '5' ||
			    w[1][2] < '0' || w[1][2] > '9')
				return -EINVAL;
			c.minute = (w[1][1] - '0') * 10 + (w[1][2] - '0');
		} else if (n != 1) {
			return -EINVAL;
		}
	} else if (strcasecmp(w[0], "daily") == 0) {
		c.type = CLI_CAL_DAYS;
		c.weekdays = 0x7f;
		if (n != 2 || parse_hhmm(w[1], &c.hour, &c.minute) < 0)
			return -EINVAL;
	} else if (strcasecmp(w[0], "last-day") == 0) {
		c.type = CLI_CAL_LASTDAY;
		if (n != 2 || parse_hhmm(w[1], &c.hour, &c.minute) < 0)
			return -EINVAL;
	} else if (strcasecmp(w[0], "day") == 0) {
		uint64_t d;

		c.type = CLI_CAL_MONTHDAY;
		if (n != 3 || strata_parse_u64(w[1], &d) < 0 || d < 1 || d > 31 ||
		    parse_hhmm(w[2], &c.hour, &c.minute) < 0)
			return -EINVAL;
		c.mday = (int)d;
	} else {
		c.type = CLI_CAL_DAYS;
		if (n != 2 || parse_weekdays(w[0], &c.weekdays) < 0 ||
		    parse_hhmm(w[1], &c.hour, &c.minute) < 0)
			return -EINVAL;
	}
	*ret = c;
	return 0;
}

void cli_calendar_format(const struct cli_calendar *c, char *dst, size_t size)
{
	char days[64] = "";
	size_t len = 0;

	switch (c->type) {
	case CLI_CAL_NEVER:
		snprintf(dst, size, "never");
		return;
	case CLI_CAL_HOURLY:
		if (c->minute)
			snprintf(dst, size, "hourly :%02d", c->minute);
		else
			snprintf(dst, size, "hourly");
		return;
	case CLI_CAL_LASTDAY:
		snprintf(dst, size, "last-day %02d:%02d", c->hour, c->minute);
		return;
	case CLI_CAL_MONTHDAY:
		snprintf(dst, size, "day %d %02d:%02d", c->mday, c->hour, c->minute);
		return;
	case CLI_CAL_DAYS:
		if (c->weekdays == 0x7f) {
			snprintf(dst, size, "daily %02d:%02d", c->hour, c->minute);
			return;
		}
		for (int i = 0; i < 7; i++)
			if (c->weekdays & (1u << i))
				len += (size_t)snprintf(days + len, sizeof(days) - len, "%s%s",
							len ? "," : "", weekday_names[i]);
		snprintf(dst, size, "%s %02d:%02d", days, c->hour, c->minute);
		return;
	}
	snprintf(dst, size, "?");
}

/* The scheduled time on the day 'delta' days from now's local date, or false. */
static bool day_time(const struct cli_calendar *c, int64_t now, int delta, int64_t *ret)
{
	time_t tnow = (time_t)now, t;
	struct tm tm, next;

	if (!localtime_r(&tnow, &tm))
		return false;
	tm.tm_mday += delta;
	tm.tm_hour = c->hour;
	tm.tm_min = c->minute;
	tm.tm_sec = 0;
	tm.tm_isdst = -1;
	t = mktime(&tm);
	if (t == (time_t)-1)
		return false;
	switch (c->type) {
	case CLI_CAL_DAYS:
		if (!(c->weekdays & (1u << tm.tm_wday)))
			return false;
		break;
	case CLI_CAL_MONTHDAY:
		if (tm.tm_mday != c->mday)
			return false;
		break;
	case CLI_CAL_LASTDAY:
		next = tm;
		next.tm_mday += 1;
		next.tm_hour = 12;
		next.tm_isdst = -1;
		if (mktime(&next) == (time_t)-1 || next.tm_mon == tm.tm_mon)
			return false;
		break;
	default:
		return false;
	}
	*ret = (int64_t)t;
	return true;
}

bool cli_calendar_last(const struct cli_calendar *c, int64_t now, int64_t *ret)
{
	time_t tnow = (time_t)now;
	struct tm tm;
	int64_t t;

	switch (c->type) {
	case CLI_CAL_NEVER:
		return false;
	case CLI_CAL_HOURLY:
		if (!localtime_r(&tnow, &tm))
			return false;
		t = now - (tm.tm_min * 60 + tm.tm_sec) + c->minute * 60;
		if (t > now)
			t -= 3600;
		*ret = t;
		return true;
	default:
		for (int d = 1; d >= -CAL_SEARCH_DAYS; d--)
			if (day_time(c, now, d, &t) && t <= now) {
				*ret = t;
				return true;
			}
		return false;
	}
}

bool cli_calendar_next(const struct cli_calendar *c, int64_t now, int64_t *ret)
{
	int64_t t;

	switch (c->type) {
	case CLI_CAL_NEVER:
		return false;
	case CLI_CAL_HOURLY:
		if (!cli_calendar_last(c, now, &t))
			return false;
		*ret = t + 3600;
		return true;
	default:
		for (int d = -1; d <= CAL_SEARCH_DAYS; d++)
			if (day_time(c, now, d, &t) && t > now) {
				*ret = t;
				return true;
			}
		return false;
	}
}

int cli_duration_parse(const char *s, int64_t *ret)
{
	static const struct { const char *unit; int64_t mult; } units[] = {
		{ "s", 1 }, { "min", 60 }, { "h", 3600 }, { "d", 86400 }, { "w", 7 * 86400 },
		{ "y", 365 * 86400 },
	};
	char num[32];
	size_t n = strspn(s, "0123456789");
	uint64_t v;

	if (strcmp(s, "forever") == 0) {
		*ret = 0;
		return 0;
	}
	if (n == 0 || n >= sizeof(num))
		return -EINVAL;
	memcpy(num, s, n);
	num[n] = '\0';
	if (strata_parse_u64(num, &v) < 0 || v > 100000000)
		return -EINVAL;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(s + n, units[i].unit) == 0) {
			if (v == 0)
				return -EINVAL;
			*ret = (int64_t)v * units[i].mult;
			return *ret / units[i].mult == (int64_t)v ? 0 : -ERANGE;
		}
	}
	return -EINVAL;
}

void cli_duration_format(int64_t s, char *dst, size_t size)
{
	if (s == 0)
		snprintf(dst, size, "forever");
	else if (s % (365 * 86400) == 0)
		snprintf(dst, size, "%lldy", (long long)(s / (365 * 86400)));
	else if (s % 86400 == 0 && s >= 2 * 86400)
		snprintf(dst, size, "%lldd", (long long)(s / 86400));
	else if (s % 3600 == 0)
		snprintf(dst, size, "%lldh", (long long)(s / 3600));
	else if (s % 60 == 0)
		snprintf(dst, size, "%lldmin", (long long)(s / 60));
	else
		snprintf(dst, size, "%llds", (long long)s);
}

void cli_set_defaults(struct cli_set *s)
{
	static const struct cli_level_policy defaults[CLI_LV_COUNT] = {
		[CLI_LV_MONTHLY] = { "monthly", STRATA_LEVEL_FULL, "monthly",
				     { CLI_CAL_LASTDAY, 0, 0, 1, 0 }, 365 * 86400 },
		[CLI_LV_FULL] = { "full", STRATA_LEVEL_FULL, NULL,
				  { CLI_CAL_DAYS, 0x7f, 0, 2, 0 }, 7 * 86400 },
		[CLI_LV_DIFFERENTIAL] = { "differential", STRATA_LEVEL_DIFFERENTIAL, NULL,
					  { CLI_CAL_DAYS, 0x01, 0, 1, 0 }, 30 * 86400 },
		[CLI_LV_INCREMENTAL] = { "incremental", STRATA_LEVEL_INCREMENTAL, NULL,
					 { CLI_CAL_HOURLY, 0, 0, 0, 0 }, 24 * 3600 },
	};

	memcpy(s->levels, defaults, sizeof(defaults));
	s->rpo = 3600;
	s->hook_timeout = 600;
}

int cli_now_seconds(int64_t *ret, struct strata_error *err)
{
	const char *env = getenv("STRATA_NOW");
	int64_t s;

	if (!env || !*env) {
		*ret = (int64_t)time(NULL);
		return 0;
	}
	if (strata_parse_i64(env, &s) < 0 || s < 0 || s > INT64_MAX / 1000000000)
		return strata_error_set(err, -EINVAL, STRATA_ERR_USAGE,
					"STRATA_NOW must be seconds since the epoch");
	*ret = s;
	return 0;
}
