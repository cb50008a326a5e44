/* The broker's rights question: subjects, the command it sends, the answers, cc:access. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../sse-broker/rights.h"
#include "rscript.h"
#include "unit.h"

static struct rights_subject subj(long long uid, long long gen, const char *sid)
{
	struct rights_subject s;
	memset(&s, 0, sizeof s);
	s.user_id = uid;
	s.gen = gen;
	snprintf(s.sid, sizeof s.sid, "%s", sid);
	return s;
}

static void test_subjects(void)
{
	/* two streams of one session count once; another session of the same user does not */
	struct rights_subject v[] = {
		subj(7, 0, "bbbbbbbbbbbbbbbbbbbbbbbb"), subj(3, 1, "aaaaaaaaaaaaaaaaaaaaaaaa"),
		subj(7, 0, "bbbbbbbbbbbbbbbbbbbbbbbb"), subj(7, 0, "cccccccccccccccccccccccc"),
		subj(7, 2, "bbbbbbbbbbbbbbbbbbbbbbbb"),
	};
	size_t n = rights_subjects_unique(v, 5);
	CHECK(n == 4);
	CHECK(v[0].user_id == 3);
	CHECK(v[1].user_id == 7 && v[1].gen == 0 && strcmp(v[1].sid, "bbbbbbbbbbbbbbbbbbbbbbbb") == 0);
	CHECK(v[2].user_id == 7 && v[2].gen == 0 && strcmp(v[2].sid, "cccccccccccccccccccccccc") == 0);
	CHECK(v[3].user_id == 7 && v[3].gen == 2);
	struct rights_subject key = subj(7, 0, "cccccccccccccccccccccccc");
	const struct rights_subject *at = bsearch(&key, v, n, sizeof *v, rights_subject_cmp);
	CHECK(at == &v[2]);
	CHECK(rights_subjects_unique(v, 0) == 0);
}

static void test_command(void)
{
	struct rights_subject v[] = {subj(3, 1, "aaaaaaaaaaaaaaaaaaaaaaaa"),
				     subj(41, 0, "bbbbbbbbbbbbbbbbbbbbbbbb")};
	struct rights_cmd cmd;
	CHECK(rights_cmd_build(&cmd, "room1", v, 2) == 0);
	/* the room's part, one slot: EVALSHA hash 2, members, visibility; ARGV the user ids */
	CHECK(cmd.argc == 7);
	if (cmd.argc == 7) {
		CHECK_STR(cmd.argv[0], "EVALSHA");
		CHECK(cmd.argv[1] == rs_access_stream.sha);
		CHECK_STR(cmd.argv[2], "2");
		CHECK_STR(cmd.argv[3], "cc:room:{room1}:members");
		CHECK_STR(cmd.argv[4], "cc:room:{room1}:visibility");
		CHECK_STR(cmd.argv[5], "3");
		CHECK_STR(cmd.argv[6], "41");
	}
	/* each subject's part: its session key and its user's generation key (other slots) */
	CHECK(cmd.n == 2);
	if (cmd.n == 2) {
		CHECK_STR(cmd.skey[0], "cc:sess:aaaaaaaaaaaaaaaaaaaaaaaa:revoked");
		CHECK_STR(cmd.gkey[0], "cc:user:3:tokgen");
		CHECK_STR(cmd.skey[1], "cc:sess:bbbbbbbbbbbbbbbbbbbbbbbb:revoked");
		CHECK_STR(cmd.gkey[1], "cc:user:41:tokgen");
	}
	rights_cmd_free(&cmd);
	/* bounded: at most RIGHTS_BATCH subjects in one command, at least one */
	struct rights_subject *many = calloc(RIGHTS_BATCH + 1, sizeof *many);
	CHECK(many != NULL);
	if (many) {
		CHECK(rights_cmd_build(&cmd, "r", many, RIGHTS_BATCH) == 0 &&
		      cmd.argc == 5 + RIGHTS_BATCH && cmd.n == RIGHTS_BATCH);
		rights_cmd_free(&cmd);
		CHECK(rights_cmd_build(&cmd, "r", many, RIGHTS_BATCH + 1) == -1);
		rights_cmd_free(&cmd);
		free(many);
	}
	CHECK(rights_cmd_build(&cmd, "r", v, 0) == -1);
	rights_cmd_free(&cmd);
}

/* A subject's own half: signed out, or a token older than the user's generation. */
static void test_subject_revoked(void)
{
	redisReply zero = {.type = REDIS_REPLY_INTEGER, .integer = 0};
	redisReply one = {.type = REDIS_REPLY_INTEGER, .integer = 1};
	redisReply nil = {.type = REDIS_REPLY_NIL};
	redisReply g3 = {.type = REDIS_REPLY_STRING, .str = "3", .len = 1};
	redisReply junk = {.type = REDIS_REPLY_STRING, .str = "3x", .len = 2};
	redisReply err = {.type = REDIS_REPLY_ERROR, .str = "ERR", .len = 3};
	CHECK(rights_subject_revoked(&zero, &nil, 0) == 0);   /* no generation stored: 0 */
	CHECK(rights_subject_revoked(&one, &nil, 5) == 1);    /* signed out */
	CHECK(rights_subject_revoked(&zero, &g3, 2) == 1);    /* older than the generation */
	CHECK(rights_subject_revoked(&zero, &g3, 3) == 0);
	CHECK(rights_subject_revoked(&zero, &g3, 4) == 0);
	CHECK(rights_subject_revoked(&zero, &junk, 0) == 0);  /* not a number: counts as 0 */
	CHECK(rights_subject_revoked(&err, &g3, 3) == -1);
	CHECK(rights_subject_revoked(&zero, &err, 3) == -1);
	CHECK(rights_subject_revoked(&g3, &g3, 3) == -1);     /* EXISTS answers an integer */
	CHECK(rights_subject_revoked(NULL, &g3, 3) == -1);
}

static void test_verdicts(void)
{
	static const struct {
		const char *answer;
		enum rights_verdict v;
	} cases[] = {
		{"owner", RIGHTS_READ},	  {"editor", RIGHTS_READ},   {"viewer", RIGHTS_READ},
		{"public", RIGHTS_READ},  {"", RIGHTS_DENIED},	    {"revoked", RIGHTS_REVOKED},
		{"gone", RIGHTS_NO_ROOM}, {"Owner", RIGHTS_UNKNOWN}, {"publicx", RIGHTS_UNKNOWN},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		CHECK(rights_verdict_of(cases[i].answer, strlen(cases[i].answer)) == cases[i].v);
	/* length-delimited: a prefix is not the word */
	CHECK(rights_verdict_of("owner", 3) == RIGHTS_UNKNOWN);
}

static void test_access_message(void)
{
	struct rights_access a;
	CHECK(rights_access_message("{\"user\":42}", 11, &a) == 0 && a.user_id == 42 &&
	      a.room[0] == 0);
	CHECK(rights_access_message("{\"user\":9007199254740991}", 25, &a) == 0 &&
	      a.user_id == 9007199254740991LL);
	/* other keys are ignored, as before the room's form */
	CHECK(rights_access_message("{\"user\":7,\"why\":\"x\"}", 20, &a) == 0 && a.user_id == 7);
	CHECK(rights_access_message("{\"room\":\"aB3_-z\"}", 17, &a) == 0 && a.user_id == 0 &&
	      strcmp(a.room, "aB3_-z") == 0);
	CHECK(rights_access_message("{\"room\":\"r1\",\"why\":2}", 21, &a) == 0 &&
	      strcmp(a.room, "r1") == 0);
	/* the longest id (ID_MAX) fits; one byte more is none */
	char msg[128];
	int n = snprintf(msg, sizeof msg, "{\"room\":\"%0*d\"}", ID_MAX, 0);
	CHECK(rights_access_message(msg, (size_t)n, &a) == 0 && strlen(a.room) == ID_MAX);
	n = snprintf(msg, sizeof msg, "{\"room\":\"%0*d\"}", ID_MAX + 1, 0);
	CHECK(rights_access_message(msg, (size_t)n, &a) == -1);
	/* the length given is the message: a valid one followed by more bytes is not read */
	CHECK(rights_access_message("{\"room\":\"r1\"}garbage", 13, &a) == 0);
	static const char *bad[] = {
		"{\"user\":0}", "{\"user\":-3}", "{\"user\":1.5}", "{\"user\":\"42\"}", "{}", "[42]", "",
		"{\"user\":1e300}", "{\"user\":9007199254740992}", "{\"user\":1e400}",
		"{\"user\":null}", "{\"user\":true}", "{\"user\":[1]}",
		/* both, or a room of the wrong type or syntax */
		"{\"user\":1,\"room\":\"r1\"}", "{\"room\":\"r1\",\"user\":1}", "{\"room\":7}",
		"{\"room\":null}", "{\"room\":[\"r1\"]}", "{\"room\":{}}", "{\"room\":\"\"}",
		"{\"room\":\"a b\"}", "{\"room\":\"a/b\"}", "{\"room\":\"a.b\"}", "{\"room\":\"\xc3\xa9\"}",
		"{\"room\":\"r1\\u0000x\"}", "{\"room\":\"r\\u0031\"}", "{\"room\":\"r1\\\"\"}",
		"{\"Room\":\"r1\"}", "[\"room\",\"r1\"]", "\"room\"", "r1", "{\"room\":\"r1\"",
		"null", "{\"room\":\"r1\",}",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		a.user_id = 99;
		CHECK(rights_access_message(bad[i], strlen(bad[i]), &a) == -1);
	}
	/* a raw NUL inside the message: not a string's end */
	static const char nul[] = "{\"room\":\"r1\0x\"}";
	CHECK(rights_access_message(nul, sizeof nul - 1, &a) == -1);
	static const char nul_after[] = "{\"room\":\"r1\"}\0";
	CHECK(rights_access_message(nul_after, sizeof nul_after - 1, &a) == -1);
}

int main(void)
{
	test_subjects();
	test_command();
	test_verdicts();
	test_subject_revoked();
	test_access_message();
	return unit_summary("test_broker_rights");
}
