/* ai_local: see ai_local.h. */
#include "ai_local.h"

#include "ai_openai.h"
#include "ai_text.h"
#include "buf.h"
#include "errbuf.h"
#include "prompts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AI_CHECKER_OUTPUT_SHOWN 4096

enum diag_style { DIAG_GCC, DIAG_NODE, DIAG_BASH };

/* Python's compile() with its warnings, printed the way gcc prints diagnostics. */
static const char python_check[] =
	"import sys, warnings\n"
	"src = open('main.py', 'rb').read()\n"
	"status = 0\n"
	"with warnings.catch_warnings(record=True) as caught:\n"
	"    warnings.simplefilter('always')\n"
	"    try:\n"
	"        compile(src, 'main.py', 'exec')\n"
	"    except (SyntaxError, ValueError) as e:\n"
	"        line = getattr(e, 'lineno', None) or 1\n"
	"        col = getattr(e, 'offset', None) or 0\n"
	"        print('main.py:%d:%d: error: %s: %s' % (line, col, type(e).__name__,\n"
	"              getattr(e, 'msg', None) or str(e)))\n"
	"        status = 1\n"
	"for w in caught:\n"
	"    print('main.py:%d:0: warning: %s: %s' % (w.lineno or 1, w.category.__name__,\n"
	"          w.message))\n"
	"sys.exit(status)\n";

struct checker {
	const char *language; /* canonical (lib/lang.c), also its runtimes.conf section */
	const char *file;
	const char *args[8]; /* after the runtime's binary */
	enum diag_style style;
	const char *label;
};

static const struct checker checkers[] = {
	{"c", "main.c",
	 {"-std=gnu17", "-fsyntax-only", "-Wall", "-Wextra", "-fdiagnostics-plain-output",
	  "-fno-diagnostics-color", "main.c", NULL},
	 DIAG_GCC, "gcc -fsyntax-only -Wall -Wextra"},
	{"c++", "main.cpp",
	 {"-std=gnu++17", "-fsyntax-only", "-Wall", "-Wextra", "-fdiagnostics-plain-output",
	  "-fno-diagnostics-color", "main.cpp", NULL},
	 DIAG_GCC, "g++ -fsyntax-only -Wall -Wextra"},
	{"python", "main.py", {"-B", "-I", "-c", python_check, NULL}, DIAG_GCC, "python3 compile()"},
	{"javascript", "main.js", {"--check", "main.js", NULL}, DIAG_NODE, "node --check"},
	{"bash", "main.sh", {"-n", "main.sh", NULL}, DIAG_BASH, "bash -n"},
};

static const struct checker *find_checker(const char *language)
{
	for (size_t i = 0; i < sizeof checkers / sizeof checkers[0]; i++)
		if (language && strcmp(checkers[i].language, language) == 0)
			return &checkers[i];
	return NULL;
}

int ai_checker(const char *language, const char **file, const char **label)
{
	const struct checker *ck = find_checker(language);
	if (!ck)
		return -1;
	*file = ck->file;
	*label = ck->label;
	return 0;
}

/* Does the path name our file ("main.c", "./main.c", "/tmp/work/main.c")? */
static int is_our_file(const char *path, size_t len, const char *file)
{
	size_t fl = strlen(file);
	return len >= fl && memcmp(path + len - fl, file, fl) == 0 &&
	       (len == fl || path[len - fl - 1] == '/');
}

static int add_diag(cJSON *arr, long line, long col, const char *severity, const char *msg,
		    size_t msg_len)
{
	if (cJSON_GetArraySize(arr) >= AI_DIAG_MAX)
		return -1;
	while (msg_len && (msg[msg_len - 1] == ' ' || msg[msg_len - 1] == '\r'))
		msg_len--;
	char *m = ai_clean_text(msg, msg_len, AI_DIAG_MESSAGE_MAX, NULL);
	if (!m)
		return -1;
	cJSON *d = cJSON_CreateObject();
	cJSON_AddNumberToObject(d, "line", (double)line);
	if (col > 0)
		cJSON_AddNumberToObject(d, "column", (double)col);
	cJSON_AddStringToObject(d, "severity", severity);
	cJSON_AddStringToObject(d, "message", m);
	free(m);
	cJSON_AddItemToArray(arr, d);
	return 0;
}

/* Reads a decimal number at *p (advancing it); -1 when there is none or it is absurd. */
static long read_num(const char **p, const char *end)
{
	long v = 0;
	const char *s = *p;
	while (s < end && *s >= '0' && *s <= '9' && v < 100000000)
		v = v * 10 + (*s++ - '0');
	if (s == *p || (s < end && *s >= '0' && *s <= '9'))
		return -1;
	*p = s;
	return v;
}

/* "file:line[:col]: severity: message" (gcc, and our python check). */
static void parse_gcc_line(cJSON *arr, const char *s, const char *end, const char *file,
			   long shift)
{
	const char *colon = memchr(s, ':', (size_t)(end - s));
	if (!colon || !is_our_file(s, (size_t)(colon - s), file))
		return;
	const char *p = colon + 1;
	long line = read_num(&p, end), col = 0;
	if (line < 0 || p >= end || *p != ':')
		return;
	p++;
	if (p < end && *p >= '0' && *p <= '9') {
		col = read_num(&p, end);
		if (col < 0 || p >= end || *p != ':')
			return;
		p++;
	}
	while (p < end && *p == ' ')
		p++;
	static const struct {
		const char *word, *severity;
	} sev[] = {{"fatal error: ", "error"}, {"error: ", "error"}, {"warning: ", "warning"},
		   {"note: ", "note"}};
	for (size_t i = 0; i < sizeof sev / sizeof sev[0]; i++) {
		size_t wl = strlen(sev[i].word);
		if ((size_t)(end - p) >= wl && memcmp(p, sev[i].word, wl) == 0) {
			add_diag(arr, line + shift, col, sev[i].severity, p + wl,
				 (size_t)(end - p - (long)wl));
			return;
		}
	}
}

/* "main.sh: line N: message" (bash -n). */
static void parse_bash_line(cJSON *arr, const char *s, const char *end, const char *file,
			    long shift)
{
	static const char mid[] = ": line ";
	const char *m = memmem(s, (size_t)(end - s), mid, sizeof mid - 1);
	if (!m || !is_our_file(s, (size_t)(m - s), file))
		return;
	const char *p = m + sizeof mid - 1;
	long line = read_num(&p, end);
	if (line < 0 || end - p < 2 || p[0] != ':' || p[1] != ' ')
		return;
	add_diag(arr, line + shift, 0, "error", p + 2, (size_t)(end - p - 2));
}

cJSON *ai_diag_parse(const char *language, const char *output, long first_line)
{
	cJSON *arr = cJSON_CreateArray();
	const struct checker *ck = find_checker(language);
	if (!arr || !ck || !output)
		return arr;
	long shift = first_line > 1 ? first_line - 1 : 0;
	long node_line = -1, node_col = 0; /* node: "file:N", the code, a caret, "XError: msg" */
	const char *s = output;
	while (*s) {
		const char *end = strchr(s, '\n');
		if (!end)
			end = s + strlen(s);
		if (ck->style == DIAG_GCC) {
			parse_gcc_line(arr, s, end, ck->file, shift);
		} else if (ck->style == DIAG_BASH) {
			parse_bash_line(arr, s, end, ck->file, shift);
		} else {
			const char *colon = NULL;
			for (const char *q = s; q < end; q++)
				if (*q == ':')
					colon = q;
			const char *p = colon ? colon + 1 : NULL;
			long n = p ? read_num(&p, end) : -1;
			size_t blank = strspn(s, " \t");
			if (colon && n > 0 && (p == end || *p == '\r') &&
			    is_our_file(s, (size_t)(colon - s), ck->file)) {
				node_line = n;
				node_col = 0;
			} else if (node_line > 0 && s + blank < end && s[blank] == '^') {
				node_col = (long)blank + 1;
			} else if (node_line > 0) {
				const char *e = memmem(s, (size_t)(end - s), "Error: ", 7);
				int word = e != NULL;
				for (const char *q = s; word && q < e; q++)
					if (!((*q >= 'A' && *q <= 'Z') || (*q >= 'a' && *q <= 'z')))
						word = 0;
				if (word) {
					add_diag(arr, node_line + shift, node_col, "error", s,
						 (size_t)(end - s));
					node_line = -1;
				}
			}
		}
		s = *end ? end + 1 : end;
	}
	return arr;
}

/* The local provider's text: the label, the checker, then one line per diagnostic. */
static char *local_text(const char *label, const cJSON *diags, const char *note,
			const char *raw, size_t raw_len)
{
	struct buf b;
	buf_init(&b, AI_TEXT_MAX + 1024);
	int rc = buf_printf(&b, "%s\nChecked with: %s\n\n", prompts_local_label, label);
	const cJSON *d;
	cJSON_ArrayForEach(d, diags)
	{
		const cJSON *col = cJSON_GetObjectItemCaseSensitive(d, "column");
		rc |= buf_printf(&b, "line %ld", (long)cJSON_GetNumberValue(cJSON_GetObjectItem(d, "line")));
		if (cJSON_IsNumber(col))
			rc |= buf_printf(&b, ", column %ld", (long)col->valuedouble);
		rc |= buf_printf(&b, ": %s: %s\n", ai_json_str(d, "severity"), ai_json_str(d, "message"));
	}
	if (note)
		rc |= buf_printf(&b, "%s\n", note);
	if (raw_len) {
		char *t = ai_clean_text(raw, raw_len, AI_CHECKER_OUTPUT_SHOWN, NULL);
		rc |= t ? buf_printf(&b, "The checker said:\n%s\n", t) : -1;
		free(t);
	}
	if (rc) {
		buf_free(&b);
		return NULL;
	}
	return buf_detach(&b);
}

cJSON *ai_local_result(const struct sandbox *sb, const struct runtimes *rts,
		       const struct sandbox_limits *limits, const struct ai_request *rq,
		       const volatile sig_atomic_t *cancel, int *cacheable, char *err,
		       size_t errlen)
{
	const struct checker *ck = find_checker(rq->language);
	const struct runtime *rt = ck && rts ? runtimes_find(rts, ck->language, NULL) : NULL;
	cJSON *diags = cJSON_CreateArray(), *res = NULL;
	char *text = NULL;
	struct sandbox_result sr;
	memset(&sr, 0, sizeof sr);
	const char *note = NULL, *label = ck ? ck->label : "nothing";
	struct buf out;
	buf_init(&out, 0);
	/* only the checker's verdict is an answer about the code; each note below is about
	 * this worker (another may have the checker or the sandbox) or this moment (a loaded
	 * machine hits the time limit) */
	*cacheable = 0;
	if (!ck || !rt) {
		note = "There is no checker for this language on this server.";
	} else if (!sb) {
		note = "The sandbox that runs checkers is not available on this worker.";
	} else {
		/* the checker as a one-step runtime: its argv, our source file name (the
		 * sandbox only reads the argv strings) */
		struct runtime chk;
		memset(&chk, 0, sizeof chk);
		snprintf(chk.language, sizeof chk.language, "%s", rt->language);
		snprintf(chk.version, sizeof chk.version, "%s", rt->version);
		snprintf(chk.file, sizeof chk.file, "%s", ck->file);
		chk.run[0] = (char *)rt->binary;
		for (size_t i = 0; ck->args[i]; i++)
			chk.run[i + 1] = (char *)ck->args[i];
		struct sandbox_limits lim;
		if (limits)
			lim = *limits;
		else
			sandbox_limits_default(&lim);
		lim.run_ms = lim.compile_ms;
		lim.cpu_s = (lim.compile_ms + 999) / 1000;
		struct sandbox_request sreq = {.code = rq->code, .code_len = rq->code_len};
		if (sandbox_run(sb, &chk, &sreq, &lim, cancel, &sr, err, errlen) < 0)
			goto out;
		if (sr.status == SANDBOX_CANCELLED) {
			errbuf_set(err, errlen, "the worker is shutting down");
			goto out;
		}
		if (buf_append(&out, sr.run.out.data ? sr.run.out.data : "", sr.run.out.len) < 0 ||
		    buf_append(&out, sr.run.err.data ? sr.run.err.data : "", sr.run.err.len) < 0) {
			errbuf_set(err, errlen, "out of memory");
			goto out;
		}
		cJSON_Delete(diags);
		diags = ai_diag_parse(ck->language, out.data ? out.data : "", rq->first_line);
		if (sr.status != SANDBOX_OK)
			note = "The checker was stopped before it finished (a limit of the sandbox).";
		else if (cJSON_GetArraySize(diags) == 0 && sr.run.exit_code == 0 && !sr.run.signal)
			note = "The checker found no problems.";
		*cacheable = sr.status == SANDBOX_OK;
	}
	int show_raw = ck && rt && sb && cJSON_GetArraySize(diags) == 0 && !note;
	text = local_text(label, diags, note, show_raw ? out.data : NULL, show_raw ? out.len : 0);
	res = cJSON_CreateObject();
	if (!text || !res || !diags) {
		cJSON_Delete(res);
		res = NULL;
		errbuf_set(err, errlen, "out of memory");
		goto out;
	}
	cJSON_AddStringToObject(res, "kind", rq->kind);
	cJSON_AddStringToObject(res, "provider", "local");
	cJSON_AddStringToObject(res, "checker", label);
	cJSON_AddStringToObject(res, "text", text);
	cJSON_AddItemToObject(res, "diagnostics", diags);
	diags = NULL;
out:
	cJSON_Delete(diags);
	free(text);
	buf_free(&out);
	sandbox_result_free(&sr);
	return res;
}
