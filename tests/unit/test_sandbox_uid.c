/* The steps' host uids (queue-worker/sandbox_uid.c, sandbox_config.c): SANDBOX_UID_BASE and
 * SANDBOX_UID_COUNT read (malformed, out of range, a range past the last uid or holding
 * nobody's), the passwd and subuid lines that give a uid of the range away, and the
 * leases: every uid of a range once, the next one refused while they are held, one given
 * back taken again. The leases are abstract unix sockets of this network namespace, in a
 * range of this test's own (by its pid) so that a worker or another run of the test beside
 * it holds none of them. */
#include "../../queue-worker/sandbox.h"
#include "../../queue-worker/sandbox_uid.h"
#include "unit.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void test_range_parse(void)
{
	char err[256];
	unsigned base = 7, count = 7;
	CHECK(sandbox_uid_range_parse(NULL, NULL, &base, &count, err, sizeof err) == 0);
	CHECK(base == 2147418112u && count == 1024);
	CHECK(sandbox_uid_range_parse("", "", &base, &count, err, sizeof err) == 0);
	CHECK(base == 2147418112u && count == 1024);
	CHECK(sandbox_uid_range_parse("100000", "64", &base, &count, err, sizeof err) == 0);
	CHECK(base == 100000 && count == 64);
	/* the ends: uid 1; the last uid 4294967294; 65536 uids; just below nobody */
	CHECK(sandbox_uid_range_parse("1", "1", &base, &count, err, sizeof err) == 0);
	CHECK(base == 1 && count == 1);
	CHECK(sandbox_uid_range_parse("4294967294", "1", &base, &count, err, sizeof err) == 0);
	CHECK(base == 4294967294u && count == 1);
	CHECK(sandbox_uid_range_parse("4294901759", "65536", &base, &count, err, sizeof err) == 0);
	CHECK(base == 4294901759u && count == 65536);
	CHECK(sandbox_uid_range_parse("65500", "34", &base, &count, err, sizeof err) == 0);
	CHECK(sandbox_uid_range_parse("65536", "10", &base, &count, err, sizeof err) == 0);

	const struct {
		const char *base, *count, *names;
	} bad[] = {
		{"0", NULL, "SANDBOX_UID_BASE"},
		{"-5", NULL, "SANDBOX_UID_BASE"},
		{"+5", NULL, "SANDBOX_UID_BASE"},
		{" 5", NULL, "SANDBOX_UID_BASE"},
		{"5 ", NULL, "SANDBOX_UID_BASE"},
		{"1e6", NULL, "SANDBOX_UID_BASE"},
		{"0x10000", NULL, "SANDBOX_UID_BASE"},
		{"abc", NULL, "SANDBOX_UID_BASE"},
		{"4294967295", "1", "SANDBOX_UID_BASE"},
		{"99999999999999999999999", NULL, "SANDBOX_UID_BASE"},
		{NULL, "0", "SANDBOX_UID_COUNT"},
		{NULL, "-1", "SANDBOX_UID_COUNT"},
		{NULL, "65537", "SANDBOX_UID_COUNT"},
		{NULL, "1.5", "SANDBOX_UID_COUNT"},
		{NULL, "ten", "SANDBOX_UID_COUNT"},
		{"100000", "18446744073709551617", "SANDBOX_UID_COUNT"},
		/* past the last uid */
		{"4294967294", "2", "SANDBOX_UID_BASE + SANDBOX_UID_COUNT - 1"},
		{"4294967000", "65536", "SANDBOX_UID_BASE + SANDBOX_UID_COUNT - 1"},
		/* nobody (65534) or 65535 in the range */
		{"65534", "1", "65534"},
		{"65535", "1", "65534"},
		{"65000", "535", "65534"},
		{"60000", "10000", "65534"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		base = count = 7;
		err[0] = '\0';
		int rc = sandbox_uid_range_parse(bad[i].base, bad[i].count, &base, &count, err, sizeof err);
		CHECK(rc == -1);
		CHECK(base == 7 && count == 7);
		if (rc != -1 || !strstr(err, bad[i].names))
			fprintf(stderr, "  base \"%s\" count \"%s\": rc %d, message \"%s\"\n",
				bad[i].base ? bad[i].base : "", bad[i].count ? bad[i].count : "", rc, err);
		CHECK(strstr(err, bad[i].names) != NULL);
	}
}

/* sandbox_config_from_env: the variables, and SANDBOX_UID refused */
static void test_config_env(void)
{
	struct sandbox_config c;
	char err[512];
	unsetenv("SANDBOX_UID");
	unsetenv("SANDBOX_UID_BASE");
	unsetenv("SANDBOX_UID_COUNT");
	unsetenv("SANDBOX_GID");
	CHECK(sandbox_config_from_env(&c, err, sizeof err) == 0);
	CHECK(c.uid_base == 2147418112u && c.uid_count == 1024 && c.gid == 65534);
	setenv("SANDBOX_UID_BASE", "300000", 1);
	setenv("SANDBOX_UID_COUNT", "16", 1);
	CHECK(sandbox_config_from_env(&c, err, sizeof err) == 0);
	CHECK(c.uid_base == 300000 && c.uid_count == 16);
	setenv("SANDBOX_UID_COUNT", "16x", 1);
	CHECK(sandbox_config_from_env(&c, err, sizeof err) == -1);
	CHECK(strstr(err, "SANDBOX_UID_COUNT") != NULL);
	setenv("SANDBOX_UID_COUNT", "16", 1);
	setenv("SANDBOX_UID", "65534", 1);
	CHECK(sandbox_config_from_env(&c, err, sizeof err) == -1);
	CHECK(strstr(err, "SANDBOX_UID is no longer read") != NULL);
	setenv("SANDBOX_UID", "", 1); /* empty is unset, as for every setting */
	CHECK(sandbox_config_from_env(&c, err, sizeof err) == 0);
	unsetenv("SANDBOX_UID");
	unsetenv("SANDBOX_UID_BASE");
	unsetenv("SANDBOX_UID_COUNT");
}

static void test_range_used(void)
{
	char who[64];
	const char *passwd = "root:x:0:0:root:/root:/bin/bash\n"
			     "# a comment:x:150000:\n"
			     "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
			     "broken line\n"
			     "short:x:\n"
			     "alice:x:150010:150010::/home/alice:/bin/sh\n"
			     "last:x:160000:1:";
	CHECK(sandbox_uid_range_used(passwd, 'p', 150000, 10, who, sizeof who) == 0);
	CHECK(sandbox_uid_range_used(passwd, 'p', 150000, 11, who, sizeof who) == 1);
	CHECK_STR(who, "alice");
	CHECK(sandbox_uid_range_used(passwd, 'p', 150011, 100, who, sizeof who) == 0);
	CHECK(sandbox_uid_range_used(passwd, 'p', 160000, 1, who, sizeof who) == 1); /* no newline */
	CHECK_STR(who, "last");
	CHECK(sandbox_uid_range_used(passwd, 'p', 2147418112u, 1024, who, sizeof who) == 0);
	CHECK(sandbox_uid_range_used("", 'p', 1, 100, who, sizeof who) == 0);

	const char *subuid = "bob:100000:65536\n"
			     "carol:165536:65536\n"
			     "bad:x:1\n"
			     "zero:900000:0\n";
	CHECK(sandbox_uid_range_used(subuid, 's', 231072, 1000, who, sizeof who) == 0);
	CHECK(sandbox_uid_range_used(subuid, 's', 231071, 1, who, sizeof who) == 1);
	CHECK_STR(who, "carol");
	CHECK(sandbox_uid_range_used(subuid, 's', 50000, 50001, who, sizeof who) == 1);
	CHECK_STR(who, "bob");
	CHECK(sandbox_uid_range_used(subuid, 's', 50000, 50000, who, sizeof who) == 0);
	CHECK(sandbox_uid_range_used(subuid, 's', 900000, 10, who, sizeof who) == 0);
	/* a range wholly inside someone's */
	CHECK(sandbox_uid_range_used(subuid, 's', 120000, 4, who, sizeof who) == 1);
	CHECK_STR(who, "bob");
}

static void test_leases(void)
{
	/* 2147418112 + 34000 + one of 3,000 ranges of 8: in the block the default range starts,
	 * past the default's 1024 and tests/programs/test_sandbox.c's ranges */
	unsigned base = 2147418112u + 34000u + (unsigned)(getpid() % 3000) * 8u, count = 4;
	struct uid_lease l[4], extra;
	int seen[4] = {0};
	for (int i = 0; i < 4; i++) {
		CHECK(uid_lease_take(base, count, &l[i]) == 0);
		CHECK(l[i].fd >= 0 && l[i].uid >= base && l[i].uid < base + count);
		if (l[i].uid >= base && l[i].uid < base + count)
			seen[l[i].uid - base]++;
	}
	for (int i = 0; i < 4; i++)
		CHECK(seen[i] == 1);
	errno = 0;
	CHECK(uid_lease_take(base, count, &extra) == -1);
	CHECK(errno == EADDRINUSE && extra.fd == -1);
	uid_lease_give(&extra); /* nothing held: nothing done */
	unsigned freed = l[2].uid;
	uid_lease_give(&l[2]);
	CHECK(l[2].fd == -1);
	uid_lease_give(&l[2]); /* twice: nothing more */
	CHECK(uid_lease_take(base, count, &extra) == 0);
	CHECK(extra.uid == freed);
	uid_lease_give(&extra);
	/* consecutive takes of a free range start at different uids */
	struct uid_lease a, b;
	CHECK(uid_lease_take(base + 4, count, &a) == 0);
	unsigned first = a.uid;
	uid_lease_give(&a);
	CHECK(uid_lease_take(base + 4, count, &b) == 0);
	CHECK(b.uid != first);
	uid_lease_give(&b);
	for (int i = 0; i < 4; i++)
		uid_lease_give(&l[i]);
	/* and a range of one uid */
	CHECK(uid_lease_take(base, 1, &a) == 0 && a.uid == base);
	CHECK(uid_lease_take(base, 1, &b) == -1 && errno == EADDRINUSE);
	uid_lease_give(&a);
	CHECK(uid_lease_take(base, 1, &b) == 0 && b.uid == base);
	uid_lease_give(&b);
}

int main(void)
{
	test_range_parse();
	test_config_env();
	test_range_used();
	test_leases();
	return unit_summary("sandbox_uid");
}
