/* sandbox_config: the sandbox's settings: the default limits of a job step, the size of
 * /dev/shm that follows from them, and the host side (bwrap path, the range of the steps'
 * host uids, their gid, cgroup choice) read from the environment. */
#include "sandbox.h"

#include "cfg.h"
#include "errbuf.h"
#include "sandbox_uid.h"

#include <stdlib.h>
#include <string.h>

void sandbox_limits_default(struct sandbox_limits *l)
{
	l->run_ms = 5000;
	l->compile_ms = 10000;
	l->cpu_s = 5;
	l->memory = 256LL << 20;
	l->processes = 64;
	l->cpu_milli = 1000;
	l->file_size = 16LL << 20;
	l->open_files = 256;
	l->output = 64 * 1024;
	l->tmpfs = 64LL << 20;
}

int sandbox_cpu_limit_parse(const char *s, int *milli, char *err, size_t errlen)
{
	/* by hand, digit by digit: strtod would take "1e3", "inf", " 1" and round 0.1 */
	long v = 0;
	int digits = 0, decimals = -1;
	for (const char *p = s; *p; p++) {
		if (*p == '.' && decimals < 0 && digits) {
			decimals = 0;
			continue;
		}
		if (*p < '0' || *p > '9' || decimals == 3 || v > SANDBOX_CPU_MILLI_MAX)
			goto bad;
		v = v * 10 + (*p - '0');
		digits++;
		if (decimals >= 0)
			decimals++;
	}
	if (!digits || decimals == 0)
		goto bad;
	for (int d = decimals < 0 ? 0 : decimals; d < 3; d++)
		v *= 10;
	if (v < SANDBOX_CPU_MILLI_MIN || v > SANDBOX_CPU_MILLI_MAX)
		goto bad;
	*milli = (int)v;
	return 0;
bad:
	errbuf_set(err, errlen, "CPU_LIMIT must be a number of cores from 0.1 to 64, at most "
				"three decimals such as 1 or 0.5 (got \"%s\")", s);
	return -1;
}

long long sandbox_shm_size(const struct sandbox_limits *l)
{
	long long q = l->tmpfs / 4;
	return q < (1LL << 20) ? 1LL << 20 : q;
}

int sandbox_config_from_env(struct sandbox_config *c, char *err, size_t errlen)
{
	long gid;
	char e[200];
	c->bwrap = cfg_str("SANDBOX_BWRAP", "/usr/bin/bwrap");
	c->cgroup = cfg_str("SANDBOX_CGROUP", "auto");
	c->uid_lock_dir = cfg_str("SANDBOX_UID_LOCK_DIR", SANDBOX_UID_LOCK_DIR_DEFAULT);
	c->cgroup_root = "/sys/fs/cgroup";
	c->cgroup_group = "codecollab";
	/* a deployment that chose one uid must now choose a range: not silently ignored */
	if (*cfg_str("SANDBOX_UID", "")) {
		errbuf_set(err, errlen, "SANDBOX_UID is no longer read: each step runs as a host uid of "
					"its own from SANDBOX_UID_BASE (default %ld) to SANDBOX_UID_BASE + "
					"SANDBOX_UID_COUNT (default %ld) - 1; unset it",
			   SANDBOX_UID_BASE_DEFAULT, SANDBOX_UID_COUNT_DEFAULT);
		return -1;
	}
	if (sandbox_uid_range_parse(getenv("SANDBOX_UID_BASE"), getenv("SANDBOX_UID_COUNT"),
				    &c->uid_base, &c->uid_count, err, errlen) < 0)
		return -1;
	if (cfg_long("SANDBOX_GID", 65534, 1, 4294967294L, &gid, e, sizeof e) < 0) {
		errbuf_set(err, errlen, "%s", e);
		return -1;
	}
	c->gid = (unsigned)gid;
	if (strcmp(c->cgroup, "auto") && strcmp(c->cgroup, "v1") && strcmp(c->cgroup, "v2") &&
	    strcmp(c->cgroup, "none")) {
		errbuf_set(err, errlen, "SANDBOX_CGROUP must be auto, v1, v2 or none");
		return -1;
	}
	return 0;
}
