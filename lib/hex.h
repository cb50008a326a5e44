/* hex: the one hexadecimal digit reader of the percent-escape decoders. */
#ifndef CC_HEX_H
#define CC_HEX_H

/* The value of one hexadecimal digit, either case; -1 for any other character. For the
 * percent escapes of query strings and request targets (fcgi/query.c, the broker's head). */
static inline int hex_digit(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

#endif
