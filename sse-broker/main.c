#include <unistd.h>
/* placeholder until the real program lands: stays up so the stack can start */
int main(void)
{
	pause();
	return 0;
}
