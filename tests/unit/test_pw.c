#include "pw.h"
#include "unit.h"

#include <string.h>

int main(void)
{
	char h1[PW_HASH_MAX], h2[PW_HASH_MAX];
	CHECK(pw_hash("correct horse", 13, h1) == 0);
	CHECK(strncmp(h1, "$argon2id$", 10) == 0);
	CHECK(pw_verify(h1, "correct horse", 13) == 1);
	CHECK(pw_verify(h1, "correct hors", 12) == 0);
	CHECK(pw_verify(h1, "Correct horse", 13) == 0);
	/* salted: the same password hashes differently */
	CHECK(pw_hash("correct horse", 13, h2) == 0);
	CHECK(strcmp(h1, h2) != 0);
	CHECK(pw_verify(h2, "correct horse", 13) == 1);
	/* bytes after a NUL count: the length is what is hashed */
	CHECK(pw_hash("a\0b", 3, h2) == 0);
	CHECK(pw_verify(h2, "a\0c", 3) == 0);
	CHECK(pw_verify(h2, "a\0b", 3) == 1);
	/* a malformed stored hash is an error, not a match */
	CHECK(pw_verify("not-a-hash", "x", 1) == -1);
	CHECK(pw_verify("$argon2id$v=19$m=1,t=1,p=1$$", "x", 1) == -1);
	return unit_summary("pw");
}
