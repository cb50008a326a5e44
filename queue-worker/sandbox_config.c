/* sandbox_config: the sandbox's settings: the default limits of a job step, the size of
 * /dev/shm that follows from them, and the host side (bwrap path, sandbox uid and gid,
 * cgroup choice) read from the environment. */
#include "sandbox.h"

#include "cfg.h"
#include "errbuf.h"

#include <string.h>

void sandbox_limits_default(struct sandbox_limits *l)
{
	l->run_ms = 5000;
	l->compile_ms = 10000;
	l->cpu_s = 5;
	l->memory = 256LL << 20;
	l->processes = 64;
	l->file_size = 16LL << 20;
	l->open_files = 256;
	l->output = 64 * 1024;
	l->tmpfs = 64LL << 20;
}

long long sandbox_shm_size(const struct sandbox_limits *l)
{
	long long q = l->tmpfs / 4;
	return q < (1LL << 20) ? 1LL << 20 : q;
}

int sandbox_config_from_env(struct sandbox_config *c, char *err, size_t errlen)
{
	long uid, gid;
	char e[200];
	c->bwrap = cfg_str("SANDBOX_BWRAP", "/usr/bin/bwrap");
	c->cgroup = cfg_str("SANDBOX_CGROUP", "auto");
	c->cgroup_root = "/sys/fs/cgroup";
	c->cgroup_group = "codecollab";
	if (cfg_long("SANDBOX_UID", 65534, 1, 4294967294L, &uid, e, sizeof e) < 0 ||
	    cfg_long("SANDBOX_GID", 65534, 1, 4294967294L, &gid, e, sizeof e) < 0) {
		errbuf_set(err, errlen, "%s", e);
		return -1;
	}
	c->uid = (unsigned)uid;
	c->gid = (unsigned)gid;
	if (strcmp(c->cgroup, "auto") && strcmp(c->cgroup, "v1") && strcmp(c->cgroup, "v2") &&
	    strcmp(c->cgroup, "none")) {
		errbuf_set(err, errlen, "SANDBOX_CGROUP must be auto, v1, v2 or none");
		return -1;
	}
	return 0;
}
