#include "lang.h"

#include <stddef.h>
#include <strings.h>

const char *const lang_names[] = {"c", "c++", "python", "javascript", "typescript", "bash",
				  "java", "go", "rust", "ruby", "php", "plaintext", NULL};

/* Grouped by language, in the order GET /api/runtimes lists them. */
static const struct {
	const char *alias;
	const char *name;
} aliases[] = {
	{"gcc", "c"},
	{"cpp", "c++"},		 {"g++", "c++"},	{"cxx", "c++"},
	{"py", "python"},	 {"python3", "python"},
	{"js", "javascript"},	 {"node", "javascript"}, {"node-js", "javascript"},
	{"nodejs", "javascript"},
	{"ts", "typescript"},
	{"sh", "bash"},
	{"golang", "go"},
	{"rs", "rust"},
	{"rb", "ruby"},
	{"text", "plaintext"},	 {"txt", "plaintext"},
};

const char *lang_canonical(const char *name)
{
	if (!name)
		return NULL;
	for (size_t i = 0; lang_names[i]; i++)
		if (strcasecmp(name, lang_names[i]) == 0)
			return lang_names[i];
	for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
		if (strcasecmp(name, aliases[i].alias) == 0)
			return aliases[i].name;
	return NULL;
}

const char *lang_alias(const char *name, size_t i)
{
	const char *canon = lang_canonical(name);
	if (!canon)
		return NULL;
	for (size_t k = 0; k < sizeof aliases / sizeof aliases[0]; k++)
		if (aliases[k].name == canon && i-- == 0)
			return aliases[k].alias;
	return NULL;
}
