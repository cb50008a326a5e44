#include "runtimes.h"

#include "buf.h"
#include "log.h"
#include "errbuf.h"
#include "clock.h"
#include "lang.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define CONF_MAX_BYTES (64 * 1024)
#define CONF_MAX_RUNTIMES 64
#define VERSION_OUTPUT_MAX 4096
/* A version command on a cold page cache (a compiler's first start after its files were
 * evicted: rustc and javac were seen to take 8 s on a 2-core VM that was otherwise idle) may
 * take several seconds; a timeout would drop a runtime that is there, or end the worker when
 * RUNTIMES_EXTRA names it. */
#define VERSION_TIMEOUT_MS 30000
#define VERSION_SLOW_MS 2000

static char *trim(char *s)
{
	while (*s && isspace((unsigned char)*s))
		s++;
	size_t n = strlen(s);
	while (n && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
	return s;
}

static int copy_field(char *dst, size_t cap, const char *v)
{
	size_t n = strlen(v);
	if (n >= cap)
		return -1;
	memcpy(dst, v, n + 1);
	return 0;
}

/* Splits a copy of v on spaces into argv (NULL-terminated). *line receives the copy,
 * which the argv strings point into. */
static int split_argv(const char *v, char **line, char **argv)
{
	char *copy = strdup(v);
	if (!copy)
		return -1;
	size_t n = 0;
	char *save = NULL;
	for (char *t = strtok_r(copy, " \t", &save); t; t = strtok_r(NULL, " \t", &save)) {
		if (n == RUNTIMES_ARGV_MAX) {
			free(copy);
			return -1;
		}
		argv[n++] = t;
	}
	argv[n] = NULL;
	if (n == 0) {
		free(copy);
		return -1;
	}
	*line = copy;
	return 0;
}

static void runtime_free(struct runtime *r)
{
	free(r->compile_line);
	free(r->run_line);
	r->compile_line = r->run_line = NULL;
	r->compile[0] = r->run[0] = NULL;
	for (size_t i = 0; i < 2 * r->nenv; i++)
		free(r->env[i]);
	for (size_t i = 0; i < 2 * r->nbinds; i++)
		free(r->binds[i]);
	r->nenv = r->nbinds = 0;
}

static int valid_name(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("+-_.#", *s))
			return 0;
	return 1;
}

/* A file name in the work dir: no slashes, no dot-only names. */
static int valid_file(const char *s)
{
	return *s && !strchr(s, '/') && strcmp(s, ".") && strcmp(s, "..");
}

/* "NAME=value" (NAME a C identifier, value without spaces) into r->env. */
static int add_env(struct runtime *r, const char *tok)
{
	const char *eq = strchr(tok, '=');
	if (!eq || eq == tok || eq - tok > 63 || strlen(eq + 1) > 255 ||
	    r->nenv == RUNTIMES_ENV_MAX || isdigit((unsigned char)tok[0]))
		return -1;
	for (const char *p = tok; p < eq; p++)
		if (!isalnum((unsigned char)*p) && *p != '_')
			return -1;
	char *k = strndup(tok, (size_t)(eq - tok)), *v = strdup(eq + 1);
	if (!k || !v) {
		free(k);
		free(v);
		return -1;
	}
	r->env[2 * r->nenv] = k;
	r->env[2 * r->nenv + 1] = v;
	r->nenv++;
	return 0;
}

/* Where a bind may land: an absolute path without "..", not / itself and not the
 * sandbox's own mounts (/tmp holds the work directory, /proc and /dev are fresh). */
static int valid_bind_dest(const char *d)
{
	static const char *const own[] = {"/tmp", "/proc", "/dev"};
	if (d[0] != '/' || !d[1] || strstr(d, "..") || strlen(d) > 255)
		return 0;
	for (size_t i = 0; i < sizeof own / sizeof own[0]; i++) {
		size_t n = strlen(own[i]);
		if (!strncmp(d, own[i], n) && (d[n] == '\0' || d[n] == '/'))
			return 0;
	}
	return 1;
}

/* "SRC" (absolute; bound at the same place) or "SRC:DEST" into r->binds. */
static int add_bind(struct runtime *r, const char *tok)
{
	if (r->nbinds == RUNTIMES_BINDS_MAX || !*tok || strlen(tok) > 511)
		return -1;
	const char *colon = strchr(tok, ':');
	char *src = colon ? strndup(tok, (size_t)(colon - tok)) : strdup(tok);
	char *dst = strdup(colon ? colon + 1 : tok);
	if (!src || !dst || !*src || strchr(dst, ':') || !valid_bind_dest(dst)) {
		free(src);
		free(dst);
		return -1;
	}
	r->binds[2 * r->nbinds] = src;
	r->binds[2 * r->nbinds + 1] = dst;
	r->nbinds++;
	return 0;
}

/* Applies add to each space-separated word of val. */
static int each_word(struct runtime *r, const char *val, int (*add)(struct runtime *, const char *))
{
	char *copy = strdup(val);
	if (!copy)
		return -1;
	int rc = 0;
	char *save = NULL;
	for (char *t = strtok_r(copy, " \t", &save); t && rc == 0; t = strtok_r(NULL, " \t", &save))
		rc = add(r, t);
	free(copy);
	return rc;
}

/* Debian package names: lower-case letters, digits, + - . */
static int valid_packages(const char *s)
{
	for (; *s; s++)
		if (!islower((unsigned char)*s) && !isdigit((unsigned char)*s) && !strchr("+-. \t", *s))
			return 0;
	return 1;
}

static int set_key(struct runtime *r, const char *key, const char *val)
{
	if (!strcmp(key, "aliases")) {
		char tmp[512];
		if (copy_field(tmp, sizeof tmp, val) < 0)
			return -1;
		char *save = NULL;
		r->naliases = 0;
		for (char *t = strtok_r(tmp, " \t", &save); t; t = strtok_r(NULL, " \t", &save)) {
			if (r->naliases == RUNTIMES_ALIASES_MAX || !valid_name(t) ||
			    copy_field(r->aliases[r->naliases], RUNTIMES_NAME_MAX, t) < 0)
				return -1;
			r->naliases++;
		}
		return 0;
	}
	if (!strcmp(key, "binary"))
		return val[0] == '/' ? copy_field(r->binary, sizeof r->binary, val) : -1;
	if (!strcmp(key, "version"))
		return copy_field(r->version, sizeof r->version, val);
	if (!strcmp(key, "version_cmd"))
		return copy_field(r->version_cmd, sizeof r->version_cmd, val);
	if (!strcmp(key, "file"))
		return valid_file(val) ? copy_field(r->file, sizeof r->file, val) : -1;
	if (!strcmp(key, "artifact"))
		return valid_file(val) ? copy_field(r->artifact, sizeof r->artifact, val) : -1;
	if (!strcmp(key, "compile")) {
		free(r->compile_line);
		r->compile_line = NULL;
		return split_argv(val, &r->compile_line, r->compile);
	}
	if (!strcmp(key, "run")) {
		free(r->run_line);
		r->run_line = NULL;
		return split_argv(val, &r->run_line, r->run);
	}
	if (!strcmp(key, "env"))
		return each_word(r, val, add_env);
	if (!strcmp(key, "bind"))
		return each_word(r, val, add_bind);
	if (!strcmp(key, "packages"))
		return valid_packages(val) ? copy_field(r->packages, sizeof r->packages, val) : -1;
	if (!strcmp(key, "optional")) {
		if (strcmp(val, "yes") && strcmp(val, "no"))
			return -1;
		r->optional = !strcmp(val, "yes");
		return 0;
	}
	return -1;
}

static int check_section(const struct runtime *r, char *err, size_t errlen)
{
	const char *missing = !r->binary[0]	 ? "binary"
			      : !r->version[0] ? "version"
			      : !r->file[0]	 ? "file"
			      : !r->run[0]	 ? "run"
					       : NULL;
	if (missing) {
		errbuf_set(err, errlen, "[%s]: %s is missing", r->language, missing);
		return -1;
	}
	if (!strcmp(r->version, "auto") && !r->version_cmd[0]) {
		errbuf_set(err, errlen, "[%s]: version = auto needs version_cmd", r->language);
		return -1;
	}
	if (!!r->compile[0] != !!r->artifact[0]) {
		errbuf_set(err, errlen, "[%s]: compile and artifact go together", r->language);
		return -1;
	}
	/* "&&" only between two commands */
	for (size_t i = 0; r->compile[i]; i++)
		if (!strcmp(r->compile[i], "&&") &&
		    (i == 0 || !r->compile[i + 1] || !strcmp(r->compile[i + 1], "&&"))) {
			errbuf_set(err, errlen, "[%s]: && must stand between two commands", r->language);
			return -1;
		}
	for (size_t i = 0; r->run[i]; i++)
		if (!strcmp(r->run[i], "&&")) {
			errbuf_set(err, errlen, "[%s]: run is one command (no &&)", r->language);
			return -1;
		}
	if (r->optional && !r->packages[0]) {
		errbuf_set(err, errlen, "[%s]: an optional runtime names its packages", r->language);
		return -1;
	}
	return 0;
}

int runtimes_parse(struct runtimes *rt, const char *text, char *err, size_t errlen)
{
	rt->v = NULL;
	rt->n = 0;
	char *copy = strdup(text);
	if (!copy) {
		errbuf_set(err, errlen, "out of memory");
		return -1;
	}
	struct runtime *cur = NULL;
	int lineno = 0, rc = -1;
	for (char *line = copy, *next; line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		lineno++;
		/* '#' starts a comment only at the start of a line or after a space, so "c#"
		 * stays a valid language name */
		for (char *hash = strchr(line, '#'); hash; hash = strchr(hash + 1, '#'))
			if (hash == line || isspace((unsigned char)hash[-1])) {
				*hash = '\0';
				break;
			}
		char *s = trim(line);
		if (!*s)
			continue;
		if (*s == '[') {
			size_t n = strlen(s);
			if (s[n - 1] != ']') {
				errbuf_set(err, errlen, "line %d: unterminated section", lineno);
				goto out;
			}
			s[n - 1] = '\0';
			char *name = trim(s + 1);
			if (!valid_name(name) || strlen(name) >= RUNTIMES_NAME_MAX) {
				errbuf_set(err, errlen, "line %d: bad language name", lineno);
				goto out;
			}
			if (cur && check_section(cur, err, errlen) < 0)
				goto out;
			if (rt->n == CONF_MAX_RUNTIMES) {
				errbuf_set(err, errlen, "line %d: more than %d runtimes", lineno,
					CONF_MAX_RUNTIMES);
				goto out;
			}
			struct runtime *v = realloc(rt->v, (rt->n + 1) * sizeof *v);
			if (!v) {
				errbuf_set(err, errlen, "out of memory");
				goto out;
			}
			rt->v = v;
			cur = &rt->v[rt->n++];
			memset(cur, 0, sizeof *cur);
			snprintf(cur->language, sizeof cur->language, "%s", name);
			continue;
		}
		char *eq = strchr(s, '=');
		if (!cur || !eq) {
			errbuf_set(err, errlen, "line %d: expected [language] or key = value", lineno);
			goto out;
		}
		*eq = '\0';
		char *key = trim(s), *val = trim(eq + 1);
		if (set_key(cur, key, val) < 0) {
			errbuf_set(err, errlen, "line %d: bad value for %s", lineno, key);
			goto out;
		}
	}
	if (cur && check_section(cur, err, errlen) < 0)
		goto out;
	rc = 0;
out:
	free(copy);
	if (rc < 0)
		runtimes_free(rt);
	return rc;
}

int runtimes_extract_version(const char *text, char *out, size_t cap)
{
	for (const char *p = text; *p; p++) {
		if (!isdigit((unsigned char)*p) || (p > text && isdigit((unsigned char)p[-1])))
			continue;
		const char *q = p;
		int dots = 0;
		while (isdigit((unsigned char)*q) || (*q == '.' && isdigit((unsigned char)q[1]))) {
			dots += *q == '.';
			q++;
		}
		if (dots >= 1 && dots <= 3) {
			size_t n = (size_t)(q - p);
			if (n >= cap)
				return -1;
			memcpy(out, p, n);
			out[n] = '\0';
			return 0;
		}
		p = q - 1;
	}
	return -1;
}

/* Starts a trusted, installed binary (argv, no shell) with its stdout and stderr on a pipe:
 * the pipe's read end, or -1. */
static int spawn_captured(char *const argv[], pid_t *pid)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, p[1], 1);
	posix_spawn_file_actions_adddup2(&fa, p[1], 2);
	int rc = posix_spawn(pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(p[1]);
	if (rc != 0) {
		close(p[0]);
		return -1;
	}
	return p[0];
}

struct probe {
	pid_t pid;
	int fd; /* -1 once read to its end (or never started) */
	char *line;
	struct buf out;
	long long took;
};

/* The version commands of the runtimes marked in want[], all at once (each a cold start may
 * take seconds, see VERSION_TIMEOUT_MS: one after the other they would add up), their
 * output bounded in size and the whole in time; found[i] is set for each whose output
 * names a version, which goes into rt->v[i].version. */
static void detect_versions(struct runtimes *rt, const unsigned char *want, unsigned char *found)
{
	struct probe *pr = calloc(rt->n ? rt->n : 1, sizeof *pr);
	struct pollfd *pf = calloc(rt->n ? rt->n : 1, sizeof *pf);
	size_t *at = calloc(rt->n ? rt->n : 1, sizeof *at);
	if (!pr || !pf || !at)
		goto out;
	long long t0 = clock_mono_ms(), deadline = t0 + VERSION_TIMEOUT_MS;
	for (size_t i = 0; i < rt->n; i++) {
		char *argv[RUNTIMES_ARGV_MAX + 1];
		pr[i].fd = -1;
		buf_init(&pr[i].out, VERSION_OUTPUT_MAX);
		if (want[i] && split_argv(rt->v[i].version_cmd, &pr[i].line, argv) == 0)
			pr[i].fd = spawn_captured(argv, &pr[i].pid);
	}
	char chunk[512];
	for (;;) {
		size_t k = 0;
		for (size_t i = 0; i < rt->n; i++)
			if (pr[i].fd >= 0) {
				pf[k] = (struct pollfd){.fd = pr[i].fd, .events = POLLIN};
				at[k++] = i;
			}
		long long left = deadline - clock_mono_ms();
		if (k == 0 || left <= 0)
			break;
		int ready = poll(pf, k, (int)left);
		if (ready < 0 && errno == EINTR)
			continue;
		if (ready <= 0)
			break;
		for (size_t j = 0; j < k; j++) {
			struct probe *q = &pr[at[j]];
			if (!pf[j].revents)
				continue;
			ssize_t n = read(q->fd, chunk, sizeof chunk);
			if (n < 0 && errno == EINTR)
				continue;
			/* the end, or enough to find a version in */
			if (n <= 0 || buf_append(&q->out, chunk, (size_t)n) < 0) {
				close(q->fd);
				q->fd = -1;
				q->took = clock_mono_ms() - t0;
			}
		}
	}
	for (size_t i = 0; i < rt->n; i++) {
		if (pr[i].fd >= 0) { /* not done in time */
			kill(pr[i].pid, SIGKILL);
			close(pr[i].fd);
			pr[i].fd = -1;
			pr[i].took = clock_mono_ms() - t0;
		}
		if (pr[i].pid > 0) {
			int status;
			while (waitpid(pr[i].pid, &status, 0) < 0 && errno == EINTR)
				;
		}
		if (!want[i])
			continue;
		if (pr[i].took >= VERSION_SLOW_MS)
			log_info("runtime %s: `%s` took %lld ms", rt->v[i].language,
				 rt->v[i].version_cmd, pr[i].took);
		found[i] = pr[i].pid > 0 &&
			   runtimes_extract_version(pr[i].out.data ? pr[i].out.data : "",
						    rt->v[i].version, sizeof rt->v[i].version) == 0;
	}
out:
	for (size_t i = 0; pr && i < rt->n; i++) {
		buf_free(&pr[i].out);
		free(pr[i].line);
	}
	free(pr);
	free(pf);
	free(at);
}

/* Does section r go by name (its language, a lib/lang.c name or alias of it, or one of its
 * own aliases)? */
static int named(const struct runtime *r, const char *name)
{
	if (!strcmp(r->language, name))
		return 1;
	const char *canon = lang_canonical(name);
	if (canon && !strcmp(r->language, canon))
		return 1;
	for (size_t a = 0; a < r->naliases; a++)
		if (!strcmp(r->aliases[a], name))
			return 1;
	return 0;
}

#define EXTRA_MAX 1024

int runtimes_choose(const struct runtimes *rt, const char *extra, unsigned char *chosen,
		    char *err, size_t errlen)
{
	if (!extra)
		return 0;
	if (strlen(extra) > EXTRA_MAX) {
		errbuf_set(err, errlen, "RUNTIMES_EXTRA is longer than %d characters", EXTRA_MAX);
		return -1;
	}
	char copy[EXTRA_MAX + 1];
	memcpy(copy, extra, strlen(extra) + 1);
	char *save = NULL;
	for (char *w = strtok_r(copy, " \t,", &save); w; w = strtok_r(NULL, " \t,", &save)) {
		if (!strcmp(w, "all")) {
			for (size_t i = 0; i < rt->n; i++)
				if (rt->v[i].optional)
					chosen[i] = 1;
			continue;
		}
		size_t i = 0;
		while (i < rt->n && !named(&rt->v[i], w))
			i++;
		if (i < rt->n) {
			chosen[i] = 1;
			continue;
		}
		/* name the choices, so the operator sees the spelling we expect */
		char list[512] = "";
		size_t used = 0;
		for (size_t k = 0; k < rt->n && used < sizeof list; k++)
			if (rt->v[k].optional) {
				int m = snprintf(list + used, sizeof list - used, "%s ",
						 rt->v[k].language);
				used += m > 0 ? (size_t)m : 0;
			}
		errbuf_set(err, errlen,
			   "RUNTIMES_EXTRA: \"%.40s\" is no runtime of runtimes.conf; the ones "
			   "that can be added are: %sor all",
			   w, list);
		return -1;
	}
	return 0;
}

/* A relative bind source is relative to the directory of the runtimes.conf at path: made
 * absolute (and checked to exist) with realpath. 0, or -1 when it is not there. */
static int resolve_binds(struct runtime *r, const char *path)
{
	for (size_t i = 0; i < r->nbinds; i++) {
		char *src = r->binds[2 * i];
		char joined[PATH_MAX + 512];
		if (src[0] == '/') {
			snprintf(joined, sizeof joined, "%s", src);
		} else {
			const char *slash = strrchr(path, '/');
			int dirlen = slash ? (int)(slash - path) : 1;
			snprintf(joined, sizeof joined, "%.*s/%s", dirlen, slash ? path : ".", src);
		}
		char *real = realpath(joined, NULL);
		if (!real)
			return -1;
		free(src);
		r->binds[2 * i] = real;
	}
	return 0;
}

int runtimes_load(struct runtimes *rt, const char *path, const char *extra, char *err,
		  size_t errlen)
{
	rt->v = NULL;
	rt->n = 0;
	struct buf text;
	buf_init(&text, CONF_MAX_BYTES);
	int rc = buf_read_file(&text, path);
	if (rc < 0 && errno == EFBIG)
		errbuf_set(err, errlen, "%s: larger than %d bytes", path, CONF_MAX_BYTES);
	else if (rc < 0)
		errbuf_set(err, errlen, "%s: %s", path, strerror(errno));
	if (rc == 0) {
		char why[200];
		rc = runtimes_parse(rt, text.data ? text.data : "", why, sizeof why);
		if (rc < 0)
			errbuf_set(err, errlen, "%s: %s", path, why);
	}
	buf_free(&text);
	if (rc < 0)
		return -1;
	unsigned char *chosen = calloc(rt->n ? rt->n : 1, 1);
	if (!chosen) {
		errbuf_set(err, errlen, "out of memory");
		runtimes_free(rt);
		return -1;
	}
	if (runtimes_choose(rt, extra, chosen, err, errlen) < 0) {
		free(chosen);
		runtimes_free(rt);
		return -1;
	}
	/* which are offered, what they need checked, then every version command at once */
	unsigned char *installed = calloc(rt->n ? rt->n : 1, 1), *probe = calloc(rt->n ? rt->n : 1, 1),
		      *versioned = calloc(rt->n ? rt->n : 1, 1);
	if (!installed || !probe || !versioned) {
		free(installed);
		free(probe);
		free(versioned);
		free(chosen);
		errbuf_set(err, errlen, "out of memory");
		runtimes_free(rt);
		return -1;
	}
	for (size_t i = 0; i < rt->n; i++) {
		struct runtime *r = &rt->v[i];
		if (r->optional && !chosen[i])
			continue;
		installed[i] = access(r->binary, X_OK) == 0 && resolve_binds(r, path) == 0;
		probe[i] = installed[i] && !strcmp(r->version, "auto");
	}
	detect_versions(rt, probe, versioned);
	size_t kept = 0;
	rc = 0;
	for (size_t i = 0; i < rt->n; i++) {
		struct runtime *r = &rt->v[i];
		const char *drop = NULL;
		if (rc < 0 || (r->optional && !chosen[i])) {
			if (rc == 0)
				log_info("runtime %s: not offered (RUNTIMES_EXTRA adds it)", r->language);
			runtime_free(r); /* not asked for (or past a failure): not offered */
			continue;
		}
		if (access(r->binary, X_OK) < 0)
			drop = "not installed";
		else if (!installed[i])
			drop = "a bind source is missing";
		else if (probe[i] && !versioned[i])
			drop = "version not found";
		if (drop && r->optional) {
			errbuf_set(err, errlen,
				   "RUNTIMES_EXTRA names %s, but it cannot be offered (%s: %s); "
				   "install the Debian packages %s (scripts/deps.sh does when "
				   "RUNTIMES_EXTRA is set)",
				   r->language, r->binary, drop, r->packages);
			rc = -1;
		}
		if (drop) {
			if (!r->optional)
				log_info("runtime %s (%s): %s, not offered", r->language, r->binary,
					 drop);
			runtime_free(r);
			continue;
		}
		rt->v[kept++] = *r;
	}
	free(installed);
	free(probe);
	free(versioned);
	free(chosen);
	rt->n = kept;
	if (rc < 0) {
		runtimes_free(rt);
		return -1;
	}
	return 0;
}

void runtimes_default_path(char *out, size_t cap)
{
	const char *env = getenv("RUNTIMES_CONF");
	if (env && *env) {
		snprintf(out, cap, "%s", env);
		return;
	}
	static const char rel[] = "queue-worker/runtimes.conf";
	if (access(rel, R_OK) == 0) {
		snprintf(out, cap, "%s", rel);
		return;
	}
	char exe[4096];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n > 0) {
		exe[n] = '\0';
		char *slash = strrchr(exe, '/');
		if (slash)
			*slash = '\0';
		snprintf(out, cap, "%s/../../../%s", exe, rel);
		return;
	}
	snprintf(out, cap, "%s", rel);
}

static int version_matches(const char *have, const char *want)
{
	if (!want || !*want || !strcmp(want, "*") || !strcmp(want, "latest"))
		return 1;
	size_t n = strlen(want);
	return !strncmp(have, want, n) && (have[n] == '\0' || have[n] == '.');
}

const struct runtime *runtimes_find(const struct runtimes *rt, const char *language,
				    const char *want)
{
	if (!language)
		return NULL;
	for (size_t i = 0; i < rt->n; i++) {
		const struct runtime *r = &rt->v[i];
		if (named(r, language) && version_matches(r->version, want))
			return r;
	}
	return NULL;
}

char *runtimes_json(const struct runtimes *rt)
{
	cJSON *arr = cJSON_CreateArray();
	if (!arr)
		return NULL;
	for (size_t i = 0; i < rt->n; i++) {
		const struct runtime *r = &rt->v[i];
		cJSON *o = cJSON_CreateObject();
		cJSON *aliases = cJSON_CreateArray();
		if (!o || !aliases) {
			cJSON_Delete(o);
			cJSON_Delete(aliases);
			cJSON_Delete(arr);
			return NULL;
		}
		cJSON_AddItemToArray(arr, o);
		cJSON_AddStringToObject(o, "language", r->language);
		cJSON_AddStringToObject(o, "version", r->version);
		const char *la;
		for (size_t a = 0; (la = lang_alias(r->language, a)); a++)
			cJSON_AddItemToArray(aliases, cJSON_CreateString(la));
		for (size_t a = 0; a < r->naliases; a++)
			if (!lang_canonical(r->aliases[a]))
				cJSON_AddItemToArray(aliases, cJSON_CreateString(r->aliases[a]));
		cJSON_AddItemToObject(o, "aliases", aliases);
	}
	char *s = cJSON_PrintUnformatted(arr);
	cJSON_Delete(arr);
	return s;
}

/* Appends s to out at *used, single-quoted for sh ('...' with ' as '\''). */
static int put_quoted(char *out, size_t cap, size_t *used, const char *s)
{
	char tmp[1024];
	size_t n = 0;
	tmp[n++] = '\'';
	for (; *s; s++) {
		if (n + 5 >= sizeof tmp)
			return -1;
		if (*s == '\'') {
			memcpy(tmp + n, "'\\''", 4);
			n += 4;
		} else {
			tmp[n++] = *s;
		}
	}
	tmp[n++] = '\'';
	tmp[n] = '\0';
	int m = snprintf(out + *used, cap - *used, "%s", tmp);
	if (m < 0 || (size_t)m >= cap - *used)
		return -1;
	*used += (size_t)m;
	return 0;
}

static int put_text(char *out, size_t cap, size_t *used, const char *s)
{
	int m = snprintf(out + *used, cap - *used, "%s", s);
	if (m < 0 || (size_t)m >= cap - *used)
		return -1;
	*used += (size_t)m;
	return 0;
}

int runtimes_compile_script(const struct runtime *r, char *out, size_t cap)
{
	size_t used = 0;
	if (!r->compile[0] || !cap)
		return -1;
	out[0] = '\0';
	int first = 1;
	for (size_t i = 0; r->compile[i]; i++) {
		if (!strcmp(r->compile[i], "&&")) {
			if (put_text(out, cap, &used, " && ") < 0)
				return -1;
			first = 1;
			continue;
		}
		if ((!first && put_text(out, cap, &used, " ") < 0) ||
		    put_quoted(out, cap, &used, r->compile[i]) < 0)
			return -1;
		first = 0;
	}
	if (put_text(out, cap, &used, " && exec cat -- ") < 0 ||
	    put_quoted(out, cap, &used, r->artifact) < 0 || put_text(out, cap, &used, " >&3") < 0)
		return -1;
	return 0;
}

void runtimes_free(struct runtimes *rt)
{
	for (size_t i = 0; i < rt->n; i++)
		runtime_free(&rt->v[i]);
	free(rt->v);
	rt->v = NULL;
	rt->n = 0;
}
