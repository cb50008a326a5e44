#include "lang.h"

#include <stddef.h>
#include <strings.h>

const char *const lang_names[] = {"c", "c++", "python", "javascript", "typescript", "bash",
				  "java", "go", "rust", "plaintext", NULL};

static const struct {
	const char *alias;
	const char *name;
} aliases[] = {
	{"cpp", "c++"},        {"cxx", "c++"},         {"py", "python"},
	{"python3", "python"}, {"js", "javascript"},   {"node", "javascript"},
	{"nodejs", "javascript"}, {"ts", "typescript"}, {"sh", "bash"},
	{"golang", "go"},      {"rs", "rust"},         {"text", "plaintext"},
	{"txt", "plaintext"},
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
