/* lib/rds without a server: the settings read from the environment (REDIS_URL,
 * REDIS_CLUSTER, REDIS_PASSWORD, REDIS_WAIT_*, REDIS_RETRY_MS) with bad and hostile values,
 * which commands may be resent, and a client that cannot reach anything failing at once.
 * The client against real servers and a real cluster: tests/programs/test_rds_cluster.c. */
#include <stdlib.h>
#include <string.h>

#include "rds.h"
#include "unit.h"

static void clear_env(void)
{
	unsetenv("REDIS_URL");
	unsetenv("REDIS_CLUSTER");
	unsetenv("REDIS_PASSWORD");
	unsetenv("REDIS_WAIT_REPLICAS");
	unsetenv("REDIS_WAIT_MS");
	unsetenv("REDIS_RETRY_MS");
}

static void test_defaults(void)
{
	struct rds_target t;
	char err[256];
	clear_env();
	CHECK(rds_config_env(&t, NULL, err, sizeof err) == 0);
	CHECK_STR(t.host, "127.0.0.1");
	CHECK(t.port == 6379 && !t.cluster[0] && t.wait_replicas == 0 && t.wait_ms == 200 &&
	      t.retry_ms == 0);
	/* one server: the URL's password wins over REDIS_PASSWORD, which fills in otherwise */
	setenv("REDIS_PASSWORD", "envpw", 1);
	CHECK(rds_config_env(&t, "redis://:urlpw@h:1", err, sizeof err) == 0);
	CHECK_STR(t.password, "urlpw");
	CHECK(rds_config_env(&t, "redis://h:1", err, sizeof err) == 0);
	CHECK_STR(t.password, "envpw");
	/* a cluster: WAIT for one replica and 5 s of retries by default; the URL's password
	 * and database are not the cluster's */
	setenv("REDIS_URL", "redis://:urlpw@h:1/3", 1);
	setenv("REDIS_CLUSTER", "10.0.0.1:7000, 10.0.0.2:7001,[::1]:7002", 1);
	unsetenv("REDIS_PASSWORD");
	CHECK(rds_config_env(&t, NULL, err, sizeof err) == 0);
	CHECK(t.wait_replicas == 1 && t.wait_ms == 200 && t.retry_ms == 5000 && t.db == 0);
	CHECK_STR(t.password, "");
	CHECK_STR(t.cluster, "10.0.0.1:7000, 10.0.0.2:7001,[::1]:7002");
	setenv("REDIS_PASSWORD", "secret", 1);
	setenv("REDIS_WAIT_REPLICAS", "2", 1);
	setenv("REDIS_WAIT_MS", "50", 1);
	setenv("REDIS_RETRY_MS", "0", 1);
	CHECK(rds_config_env(&t, NULL, err, sizeof err) == 0);
	CHECK_STR(t.password, "secret");
	CHECK(t.wait_replicas == 2 && t.wait_ms == 50 && t.retry_ms == 0);
	clear_env();
}

static void test_bad_values(void)
{
	struct rds_target t;
	char err[256];
	static const char *const bad_cluster[] = {
		"nohost", ":7000", "h:", "h:0", "h:70000", "h:12x", ",", "h:1,,h:2", "h:1,",
	};
	for (size_t i = 0; i < sizeof bad_cluster / sizeof bad_cluster[0]; i++) {
		clear_env();
		setenv("REDIS_CLUSTER", bad_cluster[i], 1);
		err[0] = '\0';
		int rc = rds_config_env(&t, NULL, err, sizeof err);
		CHECK(rc == -1 && strstr(err, "REDIS_CLUSTER"));
		if (rc != -1)
			fprintf(stderr, "  accepted REDIS_CLUSTER=\"%s\"\n", bad_cluster[i]);
	}
	/* oversized: a list longer than the setting holds, a password longer than AUTH's field */
	char big[4096];
	memset(big, 'a', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	clear_env();
	setenv("REDIS_CLUSTER", big, 1);
	CHECK(rds_config_env(&t, NULL, err, sizeof err) == -1 && strstr(err, "REDIS_CLUSTER"));
	clear_env();
	setenv("REDIS_PASSWORD", big, 1);
	CHECK(rds_config_env(&t, NULL, err, sizeof err) == -1 && strstr(err, "REDIS_PASSWORD"));
	/* 65 seeds: more than a cluster client keeps */
	char many[2048] = "";
	for (int i = 0; i < 65; i++)
		snprintf(many + strlen(many), sizeof many - strlen(many), "%sh:%d", i ? "," : "",
			 7000 + i);
	clear_env();
	setenv("REDIS_CLUSTER", many, 1);
	CHECK(rds_config_env(&t, NULL, err, sizeof err) == -1 && strstr(err, "64"));
	static const struct {
		const char *name, *value;
	} bad_num[] = {
		{"REDIS_WAIT_REPLICAS", "x"},	{"REDIS_WAIT_REPLICAS", "-1"},
		{"REDIS_WAIT_REPLICAS", "17"},	{"REDIS_WAIT_MS", "0"},
		{"REDIS_WAIT_MS", "60001"},	{"REDIS_RETRY_MS", "1e3"},
		{"REDIS_RETRY_MS", "99999999999999999999"},
	};
	for (size_t i = 0; i < sizeof bad_num / sizeof bad_num[0]; i++) {
		clear_env();
		setenv(bad_num[i].name, bad_num[i].value, 1);
		CHECK(rds_config_env(&t, NULL, err, sizeof err) == -1 && strstr(err, bad_num[i].name));
	}
	clear_env();
	setenv("REDIS_URL", "http://h", 1);
	CHECK(rds_config_env(&t, NULL, err, sizeof err) == -1 && strstr(err, "REDIS_URL"));
	clear_env();
}

static void test_read_only(void)
{
	CHECK(rds_read_only("GET", 3) && rds_read_only("get", 3) && rds_read_only("HMGET", 5));
	CHECK(rds_read_only("XPENDING", 8) && rds_read_only("LRANGE", 6) && rds_read_only("PING", 4));
	/* writes, scripts and the blocking stream read (it claims entries) are never resent */
	static const char *const writes[] = {"SET",	"INCR",	  "HINCRBY", "DEL",	  "EVALSHA",
					     "EVAL",	"XADD",	  "XACK",    "XCLAIM",	  "XAUTOCLAIM",
					     "XREADGROUP", "PUBLISH", "ZADD",  "ZREM", "WAIT"};
	for (size_t i = 0; i < sizeof writes / sizeof writes[0]; i++)
		CHECK(!rds_read_only(writes[i], strlen(writes[i])));
	/* only the whole name counts */
	CHECK(!rds_read_only("GE", 2) && !rds_read_only("GETSET", 6) && !rds_read_only("", 0));
	CHECK(!rds_read_only("GETDEL", 6) && !rds_read_only("GETEX", 5));
}

static void test_unreachable(void)
{
	struct rds_target t;
	char err[256];
	CHECK(rds_parse_url("redis://127.0.0.1:1", &t, err, sizeof err) == 0);
	struct rds *d = rds_new(&t, 500);
	CHECK(d != NULL);
	if (d) {
		CHECK(!rds_is_cluster(d));
		CHECK(rds_ready(d) == -1);
		CHECK(strncmp(rds_error(d), "redis: ", 7) == 0 && strstr(rds_error(d), "127.0.0.1"));
		CHECK(rds_cmd(d, "k", "GET %s", "k") == NULL);
		CHECK(rds_reply_failed(d, NULL, err, sizeof err) == 1 && strstr(err, "redis: "));
		/* WAIT with nothing asked is no-op; asked without a write before it, a failure */
		CHECK(rds_wait(d, "k", err, sizeof err) == 0);
		rds_free(d);
	}
	t.wait_replicas = 1;
	snprintf(t.cluster, sizeof t.cluster, "127.0.0.1:1,127.0.0.1:2");
	t.retry_ms = 300;
	d = rds_new(&t, 200);
	CHECK(d != NULL);
	if (d) {
		CHECK(rds_is_cluster(d));
		CHECK(rds_ready(d) == -1);
		CHECK(rds_cmd(d, "k", "GET %s", "k") == NULL);
		CHECK(strstr(rds_error(d), "unavailable after 300 ms") != NULL);
		CHECK(rds_wait(d, "k", err, sizeof err) == -1);
		struct rds_pipe *p = rds_pipe_new(d);
		const char *argv[] = {"GET", "k"};
		CHECK(p && rds_pipe_add(p, "k", 2, argv, NULL) == -1);
		CHECK(p && rds_pipe_reply(p) == NULL);
		rds_pipe_free(p);
		rds_free(d);
	}
	/* a seed list that does not parse gives no client */
	snprintf(t.cluster, sizeof t.cluster, "nohost");
	CHECK(rds_new(&t, 200) == NULL);
}

int main(void)
{
	test_defaults();
	test_bad_values();
	test_read_only();
	test_unreachable();
	return unit_summary("rds");
}
