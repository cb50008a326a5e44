#include "runtimes.h"

#include "buf.h"
#include "log.h"
#include "errbuf.h"
#include "clock.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
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
#define VERSION_TIMEOUT_MS 5000

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

/* Runs a trusted, installed binary (argv, no shell) and collects its stdout and stderr,
 * bounded in size and time. */
static int capture(char *const argv[], struct buf *out)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, p[1], 1);
	posix_spawn_file_actions_adddup2(&fa, p[1], 2);
	pid_t pid;
	int rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(p[1]);
	if (rc != 0) {
		close(p[0]);
		return -1;
	}
	long long deadline = clock_mono_ms() + VERSION_TIMEOUT_MS;
	char chunk[512];
	for (;;) {
		long long left = deadline - clock_mono_ms();
		struct pollfd pfd = {.fd = p[0], .events = POLLIN};
		if (left <= 0 || poll(&pfd, 1, (int)left) <= 0) {
			kill(pid, SIGKILL);
			break;
		}
		ssize_t n = read(p[0], chunk, sizeof chunk);
		if (n <= 0)
			break;
		if (buf_append(out, chunk, (size_t)n) < 0)
			break; /* enough to find a version in */
	}
	close(p[0]);
	int status;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return 0;
}

static int detect_version(struct runtime *r)
{
	char *line = NULL;
	char *argv[RUNTIMES_ARGV_MAX + 1];
	if (split_argv(r->version_cmd, &line, argv) < 0)
		return -1;
	struct buf out;
	buf_init(&out, VERSION_OUTPUT_MAX);
	int rc = capture(argv, &out);
	if (rc == 0)
		rc = runtimes_extract_version(out.data ? out.data : "", r->version,
					      sizeof r->version);
	buf_free(&out);
	free(line);
	return rc;
}

int runtimes_load(struct runtimes *rt, const char *path, char *err, size_t errlen)
{
	rt->v = NULL;
	rt->n = 0;
	FILE *f = fopen(path, "r");
	if (!f) {
		errbuf_set(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	struct buf text;
	buf_init(&text, CONF_MAX_BYTES);
	char chunk[4096];
	size_t n;
	int rc = 0;
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
		if (buf_append(&text, chunk, n) < 0) {
			rc = -1;
			errbuf_set(err, errlen, "%s: larger than %d bytes", path, CONF_MAX_BYTES);
			break;
		}
	fclose(f);
	if (rc == 0) {
		char why[200];
		rc = runtimes_parse(rt, text.data ? text.data : "", why, sizeof why);
		if (rc < 0)
			errbuf_set(err, errlen, "%s: %s", path, why);
	}
	buf_free(&text);
	if (rc < 0)
		return -1;
	size_t kept = 0;
	for (size_t i = 0; i < rt->n; i++) {
		struct runtime *r = &rt->v[i];
		const char *drop = NULL;
		if (access(r->binary, X_OK) < 0)
			drop = "not installed";
		else if (!strcmp(r->version, "auto") && detect_version(r) < 0)
			drop = "version not found";
		if (drop) {
			log_info("runtime %s (%s): %s, not offered", r->language, r->binary, drop);
			runtime_free(r);
			continue;
		}
		rt->v[kept++] = *r;
	}
	rt->n = kept;
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
		int named = !strcmp(r->language, language);
		for (size_t a = 0; !named && a < r->naliases; a++)
			named = !strcmp(r->aliases[a], language);
		if (named && version_matches(r->version, want))
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
		for (size_t a = 0; a < r->naliases; a++)
			cJSON_AddItemToArray(aliases, cJSON_CreateString(r->aliases[a]));
		cJSON_AddItemToObject(o, "aliases", aliases);
	}
	char *s = cJSON_PrintUnformatted(arr);
	cJSON_Delete(arr);
	return s;
}

void runtimes_free(struct runtimes *rt)
{
	for (size_t i = 0; i < rt->n; i++)
		runtime_free(&rt->v[i]);
	free(rt->v);
	rt->v = NULL;
	rt->n = 0;
}
