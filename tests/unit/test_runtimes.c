/* runtimes.conf and RUNTIMES_EXTRA as the worker reads them at start (queue-worker/runtimes.c),
 * the compile step's script, and the one alias table (lib/lang.c) the runtimes announce.
 * Pure parsing, except runtimes_load, which reads files this test writes under /tmp and
 * looks for binaries that every Debian has (/bin/sh) or none has. */
#include "../../queue-worker/runtimes.h"
#include "lang.h"
#include "log.h"
#include "unit.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

/* A section with everything required, plus the extra lines. */
#define SECTION(name, extra)                                                             \
	"[" name "]\nbinary = /bin/sh\nversion = 1.0\nfile = main.x\nrun = /bin/sh main.x\n" extra

static int parses(const char *text, char *err, size_t errlen)
{
	struct runtimes t;
	int rc = runtimes_parse(&t, text, err, errlen);
	if (rc == 0)
		runtimes_free(&t);
	return rc;
}

static void test_new_keys(void)
{
	struct runtimes t;
	char err[300] = "";
	CHECK(runtimes_parse(&t,
			     SECTION("java", "packages = default-jdk-headless\noptional = yes\n"
					     "env = A=1 B_2=x=y\nenv = C=\n"
					     "bind = /etc/java-17-openjdk share:/opt/x\n"
					     "compile = /bin/a -o main.x && /bin/b --file main.jar\n"
					     "artifact = main.jar\n"),
			     err, sizeof err) == 0);
	CHECK(t.n == 1);
	const struct runtime *r = &t.v[0];
	CHECK(r->optional == 1);
	CHECK_STR(r->packages, "default-jdk-headless");
	CHECK(r->nenv == 3);
	CHECK_STR(r->env[0], "A");
	CHECK_STR(r->env[1], "1");
	CHECK_STR(r->env[2], "B_2");
	CHECK_STR(r->env[3], "x=y"); /* the first = splits */
	CHECK_STR(r->env[4], "C");
	CHECK_STR(r->env[5], "");
	CHECK(r->nbinds == 2);
	CHECK_STR(r->binds[0], "/etc/java-17-openjdk");
	CHECK_STR(r->binds[1], "/etc/java-17-openjdk");
	CHECK_STR(r->binds[2], "share"); /* relative: resolved by runtimes_load */
	CHECK_STR(r->binds[3], "/opt/x");

	char script[512];
	CHECK(runtimes_compile_script(r, script, sizeof script) == 0);
	CHECK_STR(script, "'/bin/a' '-o' 'main.x' && '/bin/b' '--file' 'main.jar' && exec cat -- "
			  "'main.jar' >&3");
	CHECK(runtimes_compile_script(r, script, 40) == -1); /* does not fit: refused, not cut */
	runtimes_free(&t);

	/* a quote in an argument stays one argument */
	CHECK(runtimes_parse(&t, SECTION("q", "compile = /bin/cc it's\nartifact = a\n"), err,
			     sizeof err) == 0);
	CHECK(runtimes_compile_script(&t.v[0], script, sizeof script) == 0);
	CHECK_STR(script, "'/bin/cc' 'it'\\''s' && exec cat -- 'a' >&3");
	runtimes_free(&t);

	/* without a compile step there is no script */
	CHECK(runtimes_parse(&t, SECTION("ruby", "optional = no\n"), err, sizeof err) == 0);
	CHECK(t.v[0].optional == 0);
	CHECK(runtimes_compile_script(&t.v[0], script, sizeof script) == -1);
	runtimes_free(&t);
}

static void test_bad_values(void)
{
	char err[300];
	static const struct {
		const char *text, *why;
	} bad[] = {
		{SECTION("x", "env = 1A=x\n"), "line 6: bad value for env"},
		{SECTION("x", "env = NOEQUALS\n"), "line 6: bad value for env"},
		{SECTION("x", "env = =x\n"), "line 6: bad value for env"},
		{SECTION("x", "env = A-B=x\n"), "line 6: bad value for env"},
		{SECTION("x", "env = A=1 B=2 C=3 D=4 E=5 F=6 G=7 H=8 I=9\n"), "line 6: bad value for env"},
		{SECTION("x", "bind = /tmp/x\n"), "line 6: bad value for bind"},
		{SECTION("x", "bind = /etc:/tmp\n"), "line 6: bad value for bind"},
		{SECTION("x", "bind = /etc:/proc/x\n"), "line 6: bad value for bind"},
		{SECTION("x", "bind = /etc:/dev\n"), "line 6: bad value for bind"},
		{SECTION("x", "bind = /etc:/\n"), "line 6: bad value for bind"},
		{SECTION("x", "bind = share\n"), "line 6: bad value for bind"}, /* relative, no dest */
		{SECTION("x", "bind = share:opt\n"), "line 6: bad value for bind"},
		{SECTION("x", "bind = /a:/opt/../etc\n"), "line 6: bad value for bind"},
		{SECTION("x", "bind = :/opt\n"), "line 6: bad value for bind"},
		{SECTION("x", "bind = /a:/b:/c\n"), "line 6: bad value for bind"},
		{SECTION("x", "bind = /a /b /c /d /e\n"), "line 6: bad value for bind"},
		{SECTION("x", "packages = Default-JDK\n"), "line 6: bad value for packages"},
		{SECTION("x", "packages = a;rm\n"), "line 6: bad value for packages"},
		{SECTION("x", "optional = maybe\n"), "line 6: bad value for optional"},
		{SECTION("x", "optional = yes\n"), "[x]: an optional runtime names its packages"},
		{SECTION("x", "compile = && /bin/a\nartifact = a\n"),
		 "[x]: && must stand between two commands"},
		{SECTION("x", "compile = /bin/a &&\nartifact = a\n"),
		 "[x]: && must stand between two commands"},
		{SECTION("x", "compile = /bin/a && && /bin/b\nartifact = a\n"),
		 "[x]: && must stand between two commands"},
		{"[x]\nbinary = /bin/sh\nversion = 1\nfile = f\nrun = /bin/a && /bin/b\n",
		 "[x]: run is one command (no &&)"},
		{SECTION("x", "unknown = 1\n"), "line 6: bad value for unknown"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		err[0] = '\0';
		CHECK(parses(bad[i].text, err, sizeof err) == -1);
		CHECK_STR(err, bad[i].why);
	}
}

static struct runtimes two_optional(void)
{
	struct runtimes t;
	char err[300];
	int rc = runtimes_parse(&t,
				SECTION("c", "") SECTION("java", "packages = default-jdk-headless\noptional = yes\n")
					SECTION("go", "packages = golang-go\noptional = yes\n")
						SECTION("typescript", "packages = node-typescript\noptional = yes\n"),
				err, sizeof err);
	CHECK(rc == 0);
	return t;
}

static void test_choose(void)
{
	struct runtimes t = two_optional();
	unsigned char chosen[4];
	char err[400];
	static const struct {
		const char *extra;
		unsigned char want[4];
	} good[] = {
		{NULL, {0, 0, 0, 0}},
		{"", {0, 0, 0, 0}},
		{"   ", {0, 0, 0, 0}},
		{"java", {0, 1, 0, 0}},
		{"go java", {0, 1, 1, 0}},
		{"golang,ts", {0, 0, 1, 1}}, /* lib/lang.c's aliases, commas */
		{"GOLANG , TypeScript", {0, 0, 1, 1}},
		{"all", {0, 1, 1, 1}},
		{"c java java", {1, 1, 0, 0}}, /* always offered, and named twice: fine */
	};
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		memset(chosen, 0, sizeof chosen);
		CHECK(runtimes_choose(&t, good[i].extra, chosen, err, sizeof err) == 0);
		CHECK(memcmp(chosen, good[i].want, sizeof chosen) == 0);
	}
	static const char *const bad[] = {"cobol", "java cobol", "java;go", "\"; rm -rf /",
					  "java\ngo", "al", "python3.11"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		memset(chosen, 0, sizeof chosen);
		err[0] = '\0';
		CHECK(runtimes_choose(&t, bad[i], chosen, err, sizeof err) == -1);
		/* the message names the setting and the spellings that work */
		CHECK(strstr(err, "RUNTIMES_EXTRA: \"") == err);
		CHECK(strstr(err, "the ones that can be added are: java go typescript or all"));
	}
	CHECK(runtimes_choose(&t, "cobol", chosen, err, sizeof err) == -1);
	CHECK_STR(err, "RUNTIMES_EXTRA: \"cobol\" is no runtime of runtimes.conf; the ones that "
		       "can be added are: java go typescript or all");
	/* oversized: refused as a whole, not cut */
	char big[2100];
	memset(big, 'a', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	CHECK(runtimes_choose(&t, big, chosen, err, sizeof err) == -1);
	CHECK_STR(err, "RUNTIMES_EXTRA is longer than 1024 characters");
	/* a long unknown word is quoted shortened */
	memset(big, 'b', 300);
	big[300] = '\0';
	CHECK(runtimes_choose(&t, big, chosen, err, sizeof err) == -1);
	CHECK(strlen(err) < 200);
	runtimes_free(&t);
}

/* Aliases come from lib/lang.c, whatever the section says; a section of a language
 * lib/lang.c does not know keeps its own. */
static void test_aliases(void)
{
	struct runtimes t;
	char err[300];
	CHECK(runtimes_parse(&t, SECTION("c", "") SECTION("javascript", "aliases = js\n")
				     SECTION("c#", "aliases = csharp cs\n"),
			     err, sizeof err) == 0);
	CHECK(runtimes_find(&t, "gcc", NULL) == &t.v[0]);
	CHECK(runtimes_find(&t, "GCC", NULL) == &t.v[0]);
	CHECK(runtimes_find(&t, "node-js", NULL) == &t.v[1]);
	CHECK(runtimes_find(&t, "nodejs", "1") == &t.v[1]);
	CHECK(runtimes_find(&t, "node", "2") == NULL);
	CHECK(runtimes_find(&t, "csharp", NULL) == &t.v[2]);
	CHECK(runtimes_find(&t, "cpp", NULL) == NULL);
	CHECK(runtimes_find(&t, NULL, NULL) == NULL);
	char *json = runtimes_json(&t);
	CHECK_STR(json, "[{\"language\":\"c\",\"version\":\"1.0\",\"aliases\":[\"gcc\"]},"
			"{\"language\":\"javascript\",\"version\":\"1.0\",\"aliases\":[\"js\",\"node\","
			"\"node-js\",\"nodejs\"]},"
			"{\"language\":\"c#\",\"version\":\"1.0\",\"aliases\":[\"csharp\",\"cs\"]}]");
	free(json);
	runtimes_free(&t);

	/* the table itself: every alias leads to a known language, and lists back */
	CHECK_STR(lang_canonical("gcc"), "c");
	CHECK_STR(lang_canonical("g++"), "c++");
	CHECK_STR(lang_canonical("node-js"), "javascript");
	CHECK_STR(lang_canonical("rb"), "ruby");
	CHECK_STR(lang_canonical("PHP"), "php");
	CHECK_STR(lang_alias("c++", 1), "g++");
	CHECK_STR(lang_alias("cpp", 0), "cpp");
	CHECK(lang_alias("php", 0) == NULL);
	CHECK(lang_alias("cobol", 0) == NULL);
	CHECK(lang_alias(NULL, 0) == NULL);
	for (size_t i = 0; lang_names[i]; i++) {
		const char *a;
		for (size_t k = 0; (a = lang_alias(lang_names[i], k)); k++)
			CHECK(lang_canonical(a) == lang_names[i]);
	}
}

/* The shipped file: it parses, every optional runtime names its packages, and every
 * runtime is a language a room can be in. */
static void test_shipped_file(void)
{
	FILE *f = fopen("queue-worker/runtimes.conf", "r");
	CHECK(f != NULL);
	if (!f)
		return;
	static char text[65536];
	size_t n = fread(text, 1, sizeof text - 1, f);
	fclose(f);
	text[n] = '\0';
	struct runtimes t;
	char err[300] = "";
	CHECK(runtimes_parse(&t, text, err, sizeof err) == 0);
	if (err[0])
		fprintf(stderr, "runtimes.conf: %s\n", err);
	int optional = 0;
	for (size_t i = 0; i < t.n; i++) {
		CHECK(lang_canonical(t.v[i].language) == t.v[i].language ||
		      (lang_canonical(t.v[i].language) &&
		       !strcmp(lang_canonical(t.v[i].language), t.v[i].language)));
		CHECK(t.v[i].packages[0] != '\0');
		CHECK(t.v[i].naliases == 0); /* aliases come from lib/lang.c */
		optional += t.v[i].optional;
	}
	CHECK(optional == 6);
	unsigned char chosen[64] = {0};
	CHECK(runtimes_choose(&t, "java go rust typescript ruby php", chosen, err, sizeof err) == 0);
	runtimes_free(&t);
}

static char dir[] = "/tmp/cc-test-runtimes-XXXXXX";

static int write_conf(const char *text, char *path, size_t cap)
{
	snprintf(path, cap, "%s/runtimes.conf", dir);
	FILE *f = fopen(path, "w");
	if (!f)
		return -1;
	fputs(text, f);
	return fclose(f);
}

static void test_load(void)
{
	CHECK(mkdtemp(dir) != NULL);
	char path[256], share[300], err[600];
	snprintf(share, sizeof share, "%s/share", dir);
	CHECK(mkdir(share, 0755) == 0);
	struct runtimes t;
	CHECK(write_conf(SECTION("bash", "")
			 "[gone]\nbinary = /nonexistent/x\nversion = 1\nfile = f\nrun = /nonexistent/x\n"
			 SECTION("ruby", "packages = ruby\noptional = yes\nbind = share:/opt/s\n")
			 "[php]\npackages = php-cli\noptional = yes\nbinary = /nonexistent/php\n"
			 "version = 1\nfile = f\nrun = /nonexistent/php f\n",
			 path, sizeof path) == 0);
	/* nothing extra: the optional ones are left out, a missing ordinary one is dropped */
	CHECK(runtimes_load(&t, path, "", err, sizeof err) == 0);
	CHECK(t.n == 1 && !strcmp(t.v[0].language, "bash"));
	runtimes_free(&t);
	/* ruby chosen: its relative bind becomes the absolute directory */
	CHECK(runtimes_load(&t, path, "rb", err, sizeof err) == 0);
	CHECK(t.n == 2);
	const struct runtime *rb = runtimes_find(&t, "ruby", NULL);
	CHECK(rb && rb->nbinds == 1);
	char real[300];
	CHECK(realpath(share, real) != NULL);
	CHECK(rb && !strcmp(rb->binds[0], real) && !strcmp(rb->binds[1], "/opt/s"));
	runtimes_free(&t);
	/* a chosen runtime that is not installed stops the start, naming what to install */
	CHECK(runtimes_load(&t, path, "ruby php", err, sizeof err) == -1);
	CHECK(t.n == 0 && t.v == NULL);
	CHECK_STR(err, "RUNTIMES_EXTRA names php, but it cannot be offered (/nonexistent/php: not "
		       "installed); install the Debian packages php-cli (scripts/deps.sh does "
		       "when RUNTIMES_EXTRA is set)");
	/* a chosen runtime whose bind source is missing */
	CHECK(rmdir(share) == 0);
	CHECK(runtimes_load(&t, path, "ruby", err, sizeof err) == -1);
	CHECK(strstr(err, "a bind source is missing") != NULL);
	/* an unknown name */
	CHECK(runtimes_load(&t, path, "cobol", err, sizeof err) == -1);
	CHECK(strstr(err, "the ones that can be added are: ruby php or all") != NULL);
	CHECK(unlink(path) == 0);
	CHECK(rmdir(dir) == 0);
}

int main(void)
{
	log_init("test_runtimes");
	test_new_keys();
	test_bad_values();
	test_choose();
	test_aliases();
	test_shipped_file();
	test_load();
	return unit_summary("runtimes");
}
