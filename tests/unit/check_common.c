/*
 * check_common.c - unit tests of common/: quoting of hostile bytes, path
 * safety, checked number and size parsing, the buffer cap, hex.
 */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

START_TEST(test_quote)
{
	char out[64];

	ck_assert_str_eq(strata_quote(out, sizeof(out), "plain", 5), "plain");
	ck_assert_str_eq(strata_quote(out, sizeof(out), "a\nb\tc\\d", 7), "a\\nb\\tc\\\\d");
	ck_assert_str_eq(strata_quote(out, sizeof(out), "\xff\x01\x7f", 3), "\\xff\\x01\\x7f");
	ck_assert_str_eq(strata_quote(out, sizeof(out), "a\0b", 3), "a\\x00b");
	/* truncation keeps within size and says so */
	{
		char small[10];
		const char *longs = "abcdefghijklmnopqrstuvwxyz";

		strata_quote(small, sizeof(small), longs, strlen(longs));
		ck_assert_uint_lt(strlen(small), sizeof(small));
		ck_assert(strstr(small, "...") != NULL);
		strata_quote(small, sizeof(small), "\n\n\n\n\n\n", 6);
		ck_assert_uint_lt(strlen(small), sizeof(small));
	}
	ck_assert_str_eq(strata_quote(out, sizeof(out), "", 0), "");
}
END_TEST

START_TEST(test_path_is_safe)
{
	static const char *const good[] = { "a", "etc/erp/settings.ini", "a/.b", "..a", "a../b",
					    "x\ny" };
	static const char *const bad[] = { "", "/", "/etc", ".", "..", "a/..", "../a", "a/./b",
					   "a//b", "a/", "./a", "a/b/../../c" };

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		ck_assert_msg(strata_path_is_safe(good[i], strlen(good[i])), "%s", good[i]);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(!strata_path_is_safe(bad[i], strlen(bad[i])), "%s", bad[i]);
	ck_assert(!strata_path_is_safe("a\0b", 3));
	ck_assert(strata_path_is_safe("ab/..", 2));   /* only len bytes count */
}
END_TEST

START_TEST(test_parse)
{
	uint64_t u;
	int64_t i;

	ck_assert_int_eq(strata_parse_size("4096", &u), 0);
	ck_assert_uint_eq(u, 4096);
	ck_assert_int_eq(strata_parse_size("64k", &u), 0);
	ck_assert_uint_eq(u, 65536);
	ck_assert_int_eq(strata_parse_size("256M", &u), 0);
	ck_assert_uint_eq(u, 256u << 20);
	ck_assert_int_eq(strata_parse_size("1G", &u), 0);
	ck_assert_uint_eq(u, 1u << 30);
	ck_assert_int_eq(strata_parse_size("2GiB", &u), 0);
	ck_assert_uint_eq(u, 2ull << 30);
	ck_assert_int_eq(strata_parse_size("1T", &u), 0);
	ck_assert_uint_eq(u, 1ull << 40);
	ck_assert_int_eq(strata_parse_size("", &u), -EINVAL);
	ck_assert_int_eq(strata_parse_size("-1", &u), -EINVAL);
	ck_assert_int_eq(strata_parse_size("1X", &u), -EINVAL);
	ck_assert_int_eq(strata_parse_size("k", &u), -EINVAL);
	ck_assert_int_eq(strata_parse_size(" 1", &u), -EINVAL);
	ck_assert_int_eq(strata_parse_size("1 ", &u), -EINVAL);
	ck_assert_int_eq(strata_parse_size("99999999999999999T", &u), -ERANGE);
	ck_assert_int_eq(strata_parse_size("99999999999999999999999", &u), -ERANGE);

	ck_assert_int_eq(strata_parse_u64("18446744073709551615", &u), 0);
	ck_assert_uint_eq(u, UINT64_MAX);
	ck_assert_int_eq(strata_parse_u64("18446744073709551616", &u), -ERANGE);
	ck_assert_int_eq(strata_parse_u64("-1", &u), -EINVAL);
	ck_assert_int_eq(strata_parse_u64("12a", &u), -EINVAL);
	ck_assert_int_eq(strata_parse_i64("-42", &i), 0);
	ck_assert_int_eq(i, -42);
	ck_assert_int_eq(strata_parse_i64("9223372036854775808", &i), -ERANGE);
	ck_assert_int_eq(strata_parse_i64("", &i), -EINVAL);
}
END_TEST

START_TEST(test_buf)
{
	struct strata_buf b = STRATA_BUF_INIT(16);
	struct strata_buf z = { 0 };

	ck_assert_int_eq(strata_buf_append(&b, "0123456789", 10), 0);
	ck_assert_int_eq(strata_buf_append(&b, "abcdef", 6), 0);
	ck_assert_uint_eq(b.len, 16);
	ck_assert_int_eq(b.data[16], 0);   /* always NUL-terminated */
	ck_assert_int_eq(strata_buf_append(&b, "x", 1), -E2BIG);
	ck_assert_uint_eq(b.len, 16);
	ck_assert_int_eq(strata_buf_append(&b, "x", SIZE_MAX), -E2BIG);
	strata_buf_reset(&b);
	ck_assert_uint_eq(b.len, 0);
	ck_assert_int_eq(strata_buf_printf(&b, "%d-%s", 7, "x"), 0);
	ck_assert_str_eq((char *)b.data, "7-x");
	ck_assert_int_eq(strata_buf_printf(&b, "%0100d", 1), -E2BIG);
	strata_buf_release(&b);
	strata_buf_release(&b);
	/* zero cap means 1 GiB; long printf goes through the heap path */
	ck_assert_int_eq(strata_buf_printf(&z, "%0300d", 5), 0);
	ck_assert_uint_eq(z.len, 300);
	ck_assert_int_eq(z.data[299], '5');
	strata_buf_release(&z);
	strata_buf_release(&z);
}
END_TEST

START_TEST(test_hex)
{
	uint8_t in[4] = { 0x00, 0xab, 0x7f, 0xff }, out[4];
	char h[9];

	strata_hex(h, in, 4);
	ck_assert_str_eq(h, "00ab7fff");
	ck_assert_int_eq(strata_unhex(out, 4, "00AB7fff"), 0);
	ck_assert(memcmp(in, out, 4) == 0);
	ck_assert_int_eq(strata_unhex(out, 4, "00ab7ff"), -EINVAL);
	ck_assert_int_eq(strata_unhex(out, 4, "00ab7fff0"), -EINVAL);
	ck_assert_int_eq(strata_unhex(out, 4, "00ab7fxf"), -EINVAL);
	ck_assert_int_eq(strata_unhex(out, 0, ""), 0);
}
END_TEST

START_TEST(test_error)
{
	struct strata_error err;

	strata_error_init(&err);
	ck_assert_int_eq(strata_error_set(&err, -ENOENT, STRATA_ERR_NOT_FOUND, "no '%s'", "x"),
			 -ENOENT);
	ck_assert_int_eq(strata_error_set(&err, -EIO, STRATA_ERR_IO, "second"), -EIO);
	ck_assert_str_eq(err.msg, "no 'x'");   /* the first message wins */
	ck_assert_int_eq(err.kind, STRATA_ERR_NOT_FOUND);
	ck_assert_int_eq(strata_error_set(NULL, -EIO, STRATA_ERR_IO, "x"), -EIO);
	ck_assert_str_eq(strata_error_kind_name(STRATA_ERR_CORRUPT), "corrupt");
	ck_assert_str_eq(strata_error_kind_name(STRATA_ERR_NOT_FOUND), "not-found");
}
END_TEST

START_TEST(test_format_time)
{
	char t[32];

	strata_format_time(t, sizeof(t), 1795000000000000000LL, false);
	ck_assert_str_eq(t, "2026-11-18T110640Z");
	strata_format_time(t, sizeof(t), 1795000000999999999LL, true);
	ck_assert_str_eq(t, "2026-11-18T11:06:40Z");
	strata_format_time(t, sizeof(t), -1, false);
	ck_assert_str_eq(t, "1969-12-31T235959Z");
}
END_TEST

START_TEST(test_inomap)
{
	struct strata_inomap m = { 0 };

	ck_assert_uint_eq(strata_inomap_get(&m, 1, 2), SIZE_MAX);
	for (size_t i = 0; i < 10000; i++)
		ck_assert_int_eq(strata_inomap_put(&m, i % 7, i * 31, i), 0);
	for (size_t i = 0; i < 10000; i++)
		ck_assert_uint_eq(strata_inomap_get(&m, i % 7, i * 31), i);
	ck_assert_uint_eq(strata_inomap_get(&m, 8, 31), SIZE_MAX);
	ck_assert_int_eq(strata_inomap_put(&m, 0, 0, 42), 0);   /* replace */
	ck_assert_uint_eq(strata_inomap_get(&m, 0, 0), 42);
	ck_assert_uint_eq(m.n, 10000);
	strata_inomap_release(&m);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("common");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_quote);
	tcase_add_test(tc, test_path_is_safe);
	tcase_add_test(tc, test_parse);
	tcase_add_test(tc, test_buf);
	tcase_add_test(tc, test_hex);
	tcase_add_test(tc, test_error);
	tcase_add_test(tc, test_format_time);
	tcase_add_test(tc, test_inomap);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
