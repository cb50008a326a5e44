/* The broker's rights question: subjects, the command it sends, the answers, cc:access. */
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
	/* EVALSHA hash numkeys, members, visibility, then per subject its session and
	 * generation keys; ARGV: user id and gen per subject, in the same order */
	CHECK(cmd.argc == 13);
	if (cmd.argc == 13) {
		CHECK_STR(cmd.argv[0], "EVALSHA");
		CHECK(cmd.argv[1] == rs_access_stream.sha);
		CHECK_STR(cmd.argv[2], "6");
		CHECK_STR(cmd.argv[3], "cc:room:{room1}:members");
		CHECK_STR(cmd.argv[4], "cc:room:{room1}:visibility");
		CHECK_STR(cmd.argv[5], "cc:sess:aaaaaaaaaaaaaaaaaaaaaaaa:revoked");
		CHECK_STR(cmd.argv[6], "cc:user:3:tokgen");
		CHECK_STR(cmd.argv[7], "cc:sess:bbbbbbbbbbbbbbbbbbbbbbbb:revoked");
		CHECK_STR(cmd.argv[8], "cc:user:41:tokgen");
		CHECK_STR(cmd.argv[9], "3");
		CHECK_STR(cmd.argv[10], "1");
		CHECK_STR(cmd.argv[11], "41");
		CHECK_STR(cmd.argv[12], "0");
	}
	rights_cmd_free(&cmd);
	/* bounded: at most RIGHTS_BATCH subjects in one command, at least one */
	struct rights_subject *many = calloc(RIGHTS_BATCH + 1, sizeof *many);
	CHECK(many != NULL);
	if (many) {
		CHECK(rights_cmd_build(&cmd, "r", many, RIGHTS_BATCH) == 0 &&
		      cmd.argc == 5 + 4 * RIGHTS_BATCH);
		rights_cmd_free(&cmd);
		CHECK(rights_cmd_build(&cmd, "r", many, RIGHTS_BATCH + 1) == -1);
		rights_cmd_free(&cmd);
		free(many);
	}
	CHECK(rights_cmd_build(&cmd, "r", v, 0) == -1);
	rights_cmd_free(&cmd);
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
	long long u = 0;
	CHECK(rights_access_message("{\"user\":42}", 11, &u) == 0 && u == 42);
	CHECK(rights_access_message("{\"user\":9007199254740991}", 25, &u) == 0 &&
	      u == 9007199254740991LL);
	static const char *bad[] = {"{\"user\":0}", "{\"user\":-3}", "{\"user\":1.5}",
				    "{\"user\":\"42\"}", "{}", "[42]", "", "{\"user\":1e300}"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		CHECK(rights_access_message(bad[i], strlen(bad[i]), &u) == -1);
}

int main(void)
{
	test_subjects();
	test_command();
	test_verdicts();
	test_access_message();
	return unit_summary("test_broker_rights");
}
