#include "aicfg.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#include "cfg.h"
#include "url.h"

static const char *const provider_names[] = {
	[AICFG_OFF] = "off",
	[AICFG_LOCAL] = "local",
	[AICFG_OPENAI] = "openai",
};

const char *aicfg_provider_name(enum aicfg_provider p)
{
	if ((unsigned)p >= sizeof provider_names / sizeof provider_names[0])
		return "off";
	return provider_names[p];
}

int aicfg_provider_parse(const char *name, enum aicfg_provider *out)
{
	for (size_t i = 0; i < sizeof provider_names / sizeof provider_names[0]; i++) {
		if (name && strcmp(name, provider_names[i]) == 0) {
			*out = (enum aicfg_provider)i;
			return 0;
		}
	}
	return -1;
}

int aicfg_load(struct aicfg *c, char *err, size_t errlen)
{
	memset(c, 0, sizeof *c);
	c->api_key = cfg_str("AI_API_KEY", "");
	const char *p = cfg_str("AI_PROVIDER", NULL);
	if (!p)
		c->provider = c->api_key[0] ? AICFG_OPENAI : AICFG_LOCAL;
	else if (aicfg_provider_parse(p, &c->provider) < 0) {
		snprintf(err, errlen, "AI_PROVIDER must be openai, local or off (got \"%s\")", p);
		return -1;
	}
	c->base_url = cfg_str("AI_BASE_URL", AICFG_DEFAULT_BASE_URL);
	c->model = c->provider == AICFG_LOCAL ? AICFG_LOCAL_MODEL
					      : cfg_str("AI_MODEL", AICFG_DEFAULT_MODEL);
	/* the message quotes the URL without its userinfo and query: it reaches the API's
	 * callers (500 ai_misconfigured) and the logs, and an operator may put a key there */
	if (url_http_check(c->base_url, "AI_BASE_URL", err, errlen) < 0)
		return -1;
	return cfg_long("AI_TIMEOUT_MS", 30000, 100, 600000, &c->timeout_ms, err, (int)errlen);
}

static int put_field(EVP_MD_CTX *md, const char *s, size_t len)
{
	char head[32];
	int n = snprintf(head, sizeof head, "%zu:", len);
	return EVP_DigestUpdate(md, head, (size_t)n) == 1 && EVP_DigestUpdate(md, s, len) == 1 &&
			       EVP_DigestUpdate(md, ",", 1) == 1
		       ? 0
		       : -1;
}

int aicfg_cache_key(const struct aicfg_key_fields *f, char out[AICFG_KEY_HEX + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char digest[EVP_MAX_MD_SIZE];
	unsigned int dlen = 0;
	char line[32];
	int rc = -1;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
		goto out;
	snprintf(line, sizeof line, "%ld", f->first_line);
	const char *q = f->question ? f->question : "";
	if (put_field(md, AICFG_CACHE_VERSION, strlen(AICFG_CACHE_VERSION)) < 0 ||
	    put_field(md, f->provider, strlen(f->provider)) < 0 ||
	    put_field(md, f->kind, strlen(f->kind)) < 0 ||
	    put_field(md, f->model, strlen(f->model)) < 0 ||
	    put_field(md, f->language, strlen(f->language)) < 0 ||
	    put_field(md, line, strlen(line)) < 0 || put_field(md, f->code, f->code_len) < 0 ||
	    put_field(md, q, strlen(q)) < 0 || EVP_DigestFinal_ex(md, digest, &dlen) != 1 ||
	    dlen * 2 != AICFG_KEY_HEX)
		goto out;
	for (unsigned i = 0; i < dlen; i++) {
		out[2 * i] = hex[digest[i] >> 4];
		out[2 * i + 1] = hex[digest[i] & 15];
	}
	out[AICFG_KEY_HEX] = '\0';
	rc = 0;
out:
	EVP_MD_CTX_free(md);
	return rc;
}

long aicfg_pending_ttl_s(const struct aicfg *c)
{
	long per_call = (c->timeout_ms + 999) / 1000;
	return AICFG_ATTEMPTS * per_call + (AICFG_ATTEMPTS - 1) * AICFG_RETRY_AFTER_MAX_S +
	       AICFG_PENDING_SLACK_S;
}
