#include "metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Series of a metric: the product of its labels' value counts. */
static size_t series_count(const struct metric *m)
{
	size_t s = 1;
	for (size_t i = 0; i < m->nlabels; i++)
		s *= m->label[i].n;
	return s;
}

/* Cells of one series: one for a counter or gauge; a histogram's buckets (the bounds and
 * +Inf) and its sum. */
static size_t series_cells(const struct metric *m)
{
	return m->type == METRIC_HISTOGRAM ? m->nbounds + 2 : 1;
}

size_t metrics_cells(const struct metric *m, size_t n)
{
	size_t total = 0;
	for (size_t i = 0; i < n; i++)
		total += series_count(&m[i]) * series_cells(&m[i]);
	return total;
}

static int power_of_ten(long long u)
{
	if (u <= 0)
		return 0;
	while (u % 10 == 0)
		u /= 10;
	return u == 1;
}

static int well_formed(const struct metric *m)
{
	if (!m->name || !m->help || m->nlabels > METRIC_LABELS_MAX)
		return 0;
	for (size_t i = 0; i < m->nlabels; i++)
		if (!m->label[i].name || !m->label[i].values || m->label[i].n == 0)
			return 0;
	if (m->unit != 0 && !power_of_ten(m->unit))
		return 0;
	if (m->type == METRIC_HISTOGRAM) {
		if (!m->bounds || m->nbounds == 0 || m->nbounds > METRIC_BOUNDS_MAX)
			return 0;
		for (size_t i = 1; i < m->nbounds; i++)
			if (m->bounds[i] <= m->bounds[i - 1])
				return 0;
	}
	return 1;
}

int metrics_bind(struct metric *m, size_t n, metric_cell *store, size_t ncells)
{
	if (!store || ncells < metrics_cells(m, n))
		return -1;
	for (size_t i = 0; i < n; i++)
		if (!well_formed(&m[i]))
			return -1;
	size_t at = 0;
	for (size_t i = 0; i < n; i++) {
		m[i].cells = store + at;
		at += series_count(&m[i]) * series_cells(&m[i]);
	}
	return 0;
}

void metrics_unbind(struct metric *m, size_t n)
{
	for (size_t i = 0; i < n; i++)
		m[i].cells = NULL;
}

/* The first cell of series (a, b), or NULL when not bound or out of range. */
static metric_cell *series_at(const struct metric *m, size_t a, size_t b)
{
	if (!m->cells)
		return NULL;
	size_t na = m->nlabels > 0 ? m->label[0].n : 1;
	size_t nb = m->nlabels > 1 ? m->label[1].n : 1;
	if (a >= na || b >= nb)
		return NULL;
	return m->cells + (a * nb + b) * series_cells(m);
}

void metric_add(const struct metric *m, size_t a, size_t b, long long v)
{
	metric_cell *c = series_at(m, a, b);
	if (c && m->type != METRIC_HISTOGRAM)
		atomic_fetch_add_explicit(c, v, memory_order_relaxed);
}

void metric_set(const struct metric *m, size_t a, size_t b, long long v)
{
	metric_cell *c = series_at(m, a, b);
	if (c && m->type == METRIC_GAUGE)
		atomic_store_explicit(c, v, memory_order_relaxed);
}

void metric_observe(const struct metric *m, size_t a, size_t b, long long v)
{
	metric_cell *c = series_at(m, a, b);
	if (!c || m->type != METRIC_HISTOGRAM)
		return;
	size_t i = 0;
	while (i < m->nbounds && v > m->bounds[i])
		i++;
	atomic_fetch_add_explicit(&c[i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&c[m->nbounds + 1], v, memory_order_relaxed);
}

long long metric_value(const struct metric *m, size_t a, size_t b)
{
	metric_cell *c = series_at(m, a, b);
	if (!c)
		return 0;
	if (m->type != METRIC_HISTOGRAM)
		return atomic_load_explicit(c, memory_order_relaxed);
	long long total = 0;
	for (size_t i = 0; i <= m->nbounds; i++)
		total += atomic_load_explicit(&c[i], memory_order_relaxed);
	return total;
}

long long metric_sum(const struct metric *m, size_t a, size_t b)
{
	metric_cell *c = series_at(m, a, b);
	if (!c || m->type != METRIC_HISTOGRAM)
		return 0;
	return atomic_load_explicit(&c[m->nbounds + 1], memory_order_relaxed);
}

int metric_label_index(const struct metric_label *l, const char *s)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->values[i], s) == 0)
			return (int)i;
	return -1;
}

/* v / unit written exactly in decimal: "1.5", "0.005", "12" (unit a power of ten). */
static int put_scaled(struct buf *out, long long v, long long unit)
{
	if (unit <= 1)
		return buf_printf(out, "%lld", v);
	const char *sign = v < 0 ? "-" : "";
	unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
	unsigned long long whole = u / (unsigned long long)unit;
	unsigned long long frac = u % (unsigned long long)unit;
	if (frac == 0)
		return buf_printf(out, "%s%llu", sign, whole);
	/* the fraction's digits, as many as the unit has zeros (at most 18), from the right */
	char f[24];
	size_t len = 0;
	for (long long x = unit; x > 1 && len < sizeof f - 1; x /= 10)
		len++;
	f[len] = '\0';
	for (size_t i = len; i > 0; i--, frac /= 10)
		f[i - 1] = (char)('0' + frac % 10);
	while (len > 0 && f[len - 1] == '0')
		f[--len] = '\0';
	return buf_printf(out, "%s%llu.%s", sign, whole, f);
}

/* name+suffix{labels…[,le="…"]}: the series' label values, and its bucket bound when
 * with_le (le_inf: "+Inf"). */
static int put_series_name(struct buf *out, const struct metric *m, const char *suffix,
			   size_t a, size_t b, int with_le, long long le, int le_inf)
{
	if (buf_printf(out, "%s%s", m->name, suffix) < 0)
		return -1;
	if (m->nlabels == 0 && !with_le)
		return 0;
	if (buf_putc(out, '{') < 0)
		return -1;
	const size_t idx[METRIC_LABELS_MAX] = {a, b};
	for (size_t i = 0; i < m->nlabels; i++)
		if (buf_printf(out, "%s%s=\"%s\"", i ? "," : "", m->label[i].name,
			       m->label[i].values[idx[i]]) < 0)
			return -1;
	if (with_le) {
		if (buf_printf(out, "%sle=\"", m->nlabels ? "," : "") < 0)
			return -1;
		if (le_inf ? buf_puts(out, "+Inf") < 0 : put_scaled(out, le, m->unit) < 0)
			return -1;
		if (buf_putc(out, '"') < 0)
			return -1;
	}
	return buf_putc(out, '}');
}

static int render_series(struct buf *out, const struct metric *m, size_t a, size_t b)
{
	metric_cell *c = series_at(m, a, b);
	if (m->type != METRIC_HISTOGRAM) {
		long long v = atomic_load_explicit(c, memory_order_relaxed);
		return put_series_name(out, m, "", a, b, 0, 0, 0) < 0 ||
			       buf_printf(out, " %lld\n", v) < 0
			   ? -1
			   : 0;
	}
	long long cum = 0;
	for (size_t i = 0; i <= m->nbounds; i++) {
		cum += atomic_load_explicit(&c[i], memory_order_relaxed);
		int inf = i == m->nbounds;
		if (put_series_name(out, m, "_bucket", a, b, 1, inf ? 0 : m->bounds[i], inf) < 0 ||
		    buf_printf(out, " %lld\n", cum) < 0)
			return -1;
	}
	long long sum = atomic_load_explicit(&c[m->nbounds + 1], memory_order_relaxed);
	if (put_series_name(out, m, "_sum", a, b, 0, 0, 0) < 0 || buf_putc(out, ' ') < 0 ||
	    put_scaled(out, sum, m->unit) < 0 || buf_putc(out, '\n') < 0)
		return -1;
	if (put_series_name(out, m, "_count", a, b, 0, 0, 0) < 0 ||
	    buf_printf(out, " %lld\n", cum) < 0)
		return -1;
	return 0;
}

int metrics_render(const struct metric *m, size_t n, struct buf *out)
{
	static const char *const type_name[] = {"counter", "gauge", "histogram"};
	for (size_t i = 0; i < n; i++) {
		const struct metric *x = &m[i];
		if (!x->cells)
			continue;
		if (buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", x->name, x->help, x->name,
			       type_name[x->type]) < 0)
			return -1;
		size_t na = x->nlabels > 0 ? x->label[0].n : 1;
		size_t nb = x->nlabels > 1 ? x->label[1].n : 1;
		for (size_t a = 0; a < na; a++)
			for (size_t b = 0; b < nb; b++)
				if (render_series(out, x, a, b) < 0)
					return -1;
	}
	return 0;
}

int metrics_disabled_by_env(void)
{
	const char *v = getenv("METRICS");
	return v && (strcmp(v, "off") == 0 || strcmp(v, "0") == 0 || strcmp(v, "no") == 0);
}
