/* The Redis contract's key table (lib/rkeys.def, lib/rkeys.h): names built from it, the
 * room hash tag, the refusal of wrong calls and of names that would not fit, the inverse
 * used by the broker, and docs/INTERNALS.md naming exactly the keys of the table. */
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "events.h"
#include "jobstate.h"
#include "rkeys.h"
#include "rscript.h"
#include "unit.h"

/* The part of a name Redis Cluster hashes: between the first '{' and the next '}'. */
static void hash_tag(const char *key, char *out, size_t cap)
{
	const char *o = strchr(key, '{'), *c = o ? strchr(o + 1, '}') : NULL;
	size_t n = (!o || !c || c == o + 1) ? strlen(key) : (size_t)(c - o - 1);
	const char *from = (!o || !c || c == o + 1) ? key : o + 1;
	if (n >= cap)
		n = cap - 1;
	memcpy(out, from, n);
	out[n] = '\0';
}

static void test_names(void)
{
	struct rkey k = rkey1(RK_ROOM_DOC, "abc123");
	CHECK_STR(k.s, "cc:room:{abc123}:doc");
	k = rkey1(RK_ROOM_CHANNEL, "r1");
	CHECK_STR(k.s, "cc:room:{r1}");
	k = rkey2(RK_ROOM_AI_PENDING, "r1", "ff00");
	CHECK_STR(k.s, "cc:room:{r1}:ai:pending:ff00");
	k = rkey_id(RK_USER_TOKGEN, 42);
	CHECK_STR(k.s, "cc:user:42:tokgen");
	k = rkey2(RK_ROOM_PRESENCE_RL, "r1", "7");
	CHECK_STR(k.s, "cc:room:{r1}:presence:rl:7");
	k = rkey2(RK_RL_USER, "exec", "7");
	CHECK_STR(k.s, "cc:rl:exec:7");
	CHECK_STR(rkey0(RK_JOBS), "cc:{jobs}:stream");
	CHECK_STR(rkey1(RK_JOB, "j1").s, "cc:{jobs}:job:j1");
	CHECK_STR(rkey0(RK_ACCESS_CHANNEL), "cc:access");
	CHECK_STR(rkey_name(RK_SNAP_DUE), "SNAP_DUE");
	/* the layout mark scripts/redis-upgrade-keys.sh reads and writes */
	CHECK_STR(rkey0(RK_LAYOUT), "cc:layout");
	CHECK(RKEYS_LAYOUT >= 1);
	CHECK(rkey_pattern(RK__COUNT) == NULL);
}

/* Every key that names a room puts the room in its hash tag, so one room's keys share a
 * slot; keys across rooms have none. */
static void test_room_slot(void)
{
	int rooms = 0;
	for (int i = 0; i < RK__COUNT; i++) {
		const char *p = rkey_pattern((enum rk)i);
		if (strncmp(p, "cc:room:", 8) != 0)
			continue;
		rooms++;
		const char *ids[] = {"room-9", "k"};
		struct rkey k = rkey_fill((enum rk)i, rkey_arity((enum rk)i), ids);
		char tag[64];
		hash_tag(k.s, tag, sizeof tag);
		CHECK_STR(tag, "room-9");
	}
	CHECK(rooms >= 9);
}

static void test_refusals(void)
{
	/* wrong number of ids: an empty name, never a half-filled one */
	struct rkey k = rkey1(RK_ROOM_AI_ASKED, "r1");
	CHECK(!rkey_ok(&k));
	k = rkey2(RK_ROOM_DOC, "r1", "x");
	CHECK(!rkey_ok(&k));
	CHECK_STR(rkey0(RK_ROOM_DOC), "");
	/* too long: refused, not cut */
	char *big = malloc(RKEY_MAX + 10);
	CHECK(big != NULL);
	if (big) {
		memset(big, 'a', RKEY_MAX + 9);
		big[RKEY_MAX + 9] = '\0';
		k = rkey1(RK_RL_LOGIN_USER, big);
		CHECK(!rkey_ok(&k));
		/* the longest canonical login name (1,024 bytes) fits */
		big[1024] = '\0';
		k = rkey1(RK_RL_LOGIN_USER, big);
		CHECK(rkey_ok(&k) && strlen(k.s) == strlen("cc:rl:login:user:") + 1024);
		free(big);
	}
	char small[16];
	CHECK(rkey1_into(RK_ROOM_EVENTS, "abcdefgh", small, sizeof small) == -1 && small[0] == 0);
	char fit[64];
	CHECK(rkey1_into(RK_ROOM_EVENTS, "abc", fit, sizeof fit) == 0);
	CHECK_STR(fit, "cc:room:{abc}:events");
}

static void test_match(void)
{
	char id[16];
	CHECK(rkey_match1(RK_ROOM_CHANNEL, "cc:room:{x_1}", id, sizeof id) == 0);
	CHECK_STR(id, "x_1");
	CHECK(rkey_match1(RK_ROOM_CHANNEL, "cc:room:{}", id, sizeof id) == -1);
	CHECK(rkey_match1(RK_ROOM_CHANNEL, "cc:access", id, sizeof id) == -1);
	CHECK(rkey_match1(RK_ROOM_CHANNEL, "cc:room:{abc", id, sizeof id) == -1);
	CHECK(rkey_match1(RK_ROOM_CHANNEL, "cc:room:x}", id, sizeof id) == -1);
	CHECK(rkey_match1(RK_ROOM_CHANNEL, "cc:room:{0123456789abcdef}", id, sizeof id) == -1);
	CHECK(rkey_match1(RK_ROOM_AI_ASKED, "cc:room:{a}:ai:asked:b", id, sizeof id) == -1);
	/* round trip for every one-id key */
	for (int i = 0; i < RK__COUNT; i++) {
		if (rkey_arity((enum rk)i) != 1)
			continue;
		struct rkey k = rkey1((enum rk)i, "id7");
		CHECK(rkey_match1((enum rk)i, k.s, id, sizeof id) == 0 && strcmp(id, "id7") == 0);
	}
}

/* Every pattern is well formed: starts with cc:, placeholders closed, no spaces. */
static void test_patterns(void)
{
	for (int i = 0; i < RK__COUNT; i++) {
		const char *p = rkey_pattern((enum rk)i);
		CHECK(strncmp(p, "cc:", 3) == 0 && !strchr(p, ' '));
		int open = 0, ok = 1;
		for (const char *c = p; *c; c++) {
			if (*c == '<')
				ok &= !open, open = 1;
			else if (*c == '>')
				ok &= open, open = 0;
		}
		CHECK(ok && !open);
		for (int j = 0; j < i; j++)
			CHECK(strcmp(p, rkey_pattern((enum rk)j)) != 0);
	}
}

/* docs/INTERNALS.md: its table rows (| `cc:…` |) and the table of rkeys.def agree. */
static void test_docs(const char *path)
{
	FILE *f = fopen(path, "r");
	CHECK(f != NULL);
	if (!f)
		return;
	int seen[RK__COUNT] = {0};
	char line[4096];
	int rows = 0;
	while (fgets(line, sizeof line, f)) {
		if (strncmp(line, "| `cc:", 6) != 0)
			continue;
		char *end = strchr(line + 3, '`');
		if (!end)
			continue;
		*end = '\0';
		const char *key = line + 3;
		rows++;
		int found = 0;
		for (int i = 0; i < RK__COUNT; i++)
			if (strcmp(key, rkey_pattern((enum rk)i)) == 0)
				seen[i] = found = 1;
		if (!found)
			fprintf(stderr, "docs/INTERNALS.md names %s, which lib/rkeys.def lacks\n", key);
		CHECK(found);
	}
	fclose(f);
	for (int i = 0; i < RK__COUNT; i++) {
		if (!seen[i])
			fprintf(stderr, "lib/rkeys.def has %s, which docs/INTERNALS.md lacks\n",
				rkey_pattern((enum rk)i));
		CHECK(seen[i]);
	}
	CHECK(rows == RK__COUNT);
}

/* The generated scripts: a 40-hex hash, and the key functions they were given name keys
 * exactly as C does. */
static void test_scripts(void)
{
	const struct rscript *all[] = {&rs_events_emit, &rs_job_create, &rs_broker_presence,
				       &rs_doc_commit, &rs_presence_emit};
	for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
		CHECK(strlen(all[i]->sha) == 40 && strspn(all[i]->sha, "0123456789abcdef") == 40);
		CHECK(strstr(all[i]->text, "--") == NULL || strstr(all[i]->text, "\n--") == NULL);
	}
	CHECK(strstr(rs_job_create.text,
		     "local function K_FAIR_ROOM(a1) return 'cc:{jobs}:fair:room:' .. a1 end") != NULL);
	CHECK(strstr(rs_job_create.text, "local function outbox(") != NULL);
	CHECK(strstr(rs_job_create.text, "local function emit(") == NULL);
	CHECK(strstr(rs_outbox_apply.text, "local function emit(") != NULL);
	CHECK(strstr(rs_doc_commit.text, "local function emit(") != NULL);
	CHECK(strstr(rs_presence_emit.text, "local function emit(") != NULL);
}

/* Does a line of C have "cc:" inside a string literal (outside comments)? */
static int c_line_names_key(const char *l)
{
	int in_str = 0;
	for (const char *p = l; *p; p++) {
		if (!in_str && p[0] == '/' && (p[1] == '*' || p[1] == '/'))
			return 0; /* the rest is a comment (a comment's first line at least) */
		if (*p == '\\' && in_str && p[1]) {
			p++;
			continue;
		}
		if (*p == '"')
			in_str = !in_str;
		else if (in_str && strncmp(p, "cc:", 3) == 0)
			return 1;
	}
	return 0;
}

/* No key is spelled outside the contract: no "cc:…" string in the programs' C code but
 * rkeys.def, and none in a Lua script (they use K_…()). */
static void test_no_spelled_keys(void)
{
	const char *globs[] = {"lib/*.[ch]", "fcgi/*.[ch]", "sse-broker/*.[ch]", "queue-worker/*.[ch]",
			       "snapshotter/*.[ch]", "lib/lua/*.lua"};
	int files = 0;
	for (size_t g = 0; g < sizeof globs / sizeof globs[0]; g++) {
		glob_t gl;
		if (glob(globs[g], 0, NULL, &gl) != 0)
			continue;
		for (size_t i = 0; i < gl.gl_pathc; i++) {
			const char *path = gl.gl_pathv[i];
			int lua = strstr(path, ".lua") != NULL;
			FILE *f = fopen(path, "r");
			if (!f)
				continue;
			files++;
			char line[4096];
			int n = 0, spelled = 0;
			while (fgets(line, sizeof line, f)) {
				n++;
				const char *t = line + strspn(line, " \t");
				int bad = lua ? (strncmp(t, "--", 2) != 0 && strstr(t, "cc:") != NULL)
					      : (t[0] != '*' && c_line_names_key(t));
				if (bad)
					fprintf(stderr, "%s:%d spells a key: %s", path, n, line);
				spelled += bad;
			}
			fclose(f);
			CHECK(spelled == 0);
		}
		globfree(&gl);
	}
	CHECK(files > 40);
}

/* Event types and job statuses: one name each, read back to the same value; unknown
 * names refused. */
static void test_names_of_the_contract(void)
{
	const char *ev[] = {"operation", "presence", "join", "leave", "room", "snapshot", "execution",
			    "ai"};
	CHECK(sizeof ev / sizeof ev[0] == EV__COUNT);
	for (int i = 0; i < EV__COUNT; i++) {
		enum event_type t;
		CHECK_STR(event_type_name((enum event_type)i), ev[i]);
		CHECK(event_type_parse(ev[i], &t) == 0 && t == (enum event_type)i);
	}
	enum event_type t;
	CHECK(event_type_parse("Operation", &t) < 0 && event_type_parse("", &t) < 0 &&
	      event_type_parse(NULL, &t) < 0);
	CHECK_STR(event_type_name(EV__COUNT), "");
	const char *st[] = {"queued", "running", "finished", "failed", "cancelled"};
	for (int i = JOB_QUEUED; i <= JOB_CANCELLED; i++) {
		enum job_status s;
		CHECK_STR(job_status_name((enum job_status)i), st[i]);
		CHECK(job_status_parse(st[i], &s) == 0 && s == (enum job_status)i);
		CHECK(job_status_over(s) == (i >= JOB_FINISHED));
	}
	enum job_status s;
	CHECK(job_status_parse("done", &s) < 0);
}

int main(int argc, char **argv)
{
	test_names();
	test_room_slot();
	test_refusals();
	test_match();
	test_patterns();
	test_docs(argc > 1 ? argv[1] : "docs/INTERNALS.md");
	test_scripts();
	test_no_spelled_keys();
	test_names_of_the_contract();
	return unit_summary("test_rkeys");
}
