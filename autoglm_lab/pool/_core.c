/*
 * autoglm_lab.pool._core: the pool's hot path, compiled.
 *
 * Four types, each a drop-in for its pure-Python twin in _pycore.py / _freeindex.py / _events.py
 * (used when this module is not built; tests run both and compare them):
 *
 *   FreeIndex   the free-run index: best fit in O(log n) (a per-length LIFO list of runs and a
 *               64-ary bitset over lengths), first fit in O(log n) (a max tree over run starts),
 *               eager or lazy coalescing, runs never crossing segment barriers.
 *   EventRing   the bounded ring of (time_s, kind, block_id, pages, latency_s, info) events.
 *   BlockBase   the fields of a Block (the Python class Block adds its methods).
 *   Core        alloc / free bookkeeping: the block table, the counters, Block handles, events,
 *               under the pool's RLock. Anything unusual (bad arguments, no run fits) is handed
 *               back to the Python pool, so error messages and policies live in one place.
 *
 * Per-page arrays are int32 (runs are at most 2^31 - 1 pages): about 21 bytes of host memory per
 * page, plus 8 per page for the first-fit tree.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#ifndef CORE_SOURCE_HASH
#define CORE_SOURCE_HASH "unknown"
#endif

#define MAX_PAGES ((int64_t)INT32_MAX - 1)

/* ================================================================== bitset over lengths */

#define BS_LEVELS 8

typedef struct {
    int levels;
    int64_t nwords[BS_LEVELS];
    uint64_t *w[BS_LEVELS];
} BitSet;

static void bs_free(BitSet *b)
{
    for (int l = 0; l < BS_LEVELS; l++) {
        PyMem_Free(b->w[l]);
        b->w[l] = NULL;
        b->nwords[l] = 0;
    }
    b->levels = 0;
}

static int bs_init(BitSet *b, int64_t nbits)
{
    bs_free(b);
    int64_t n = nbits < 1 ? 1 : nbits;
    int l = 0;
    for (;;) {
        int64_t words = (n + 63) >> 6;
        b->nwords[l] = words;
        b->w[l] = PyMem_Calloc((size_t)words, sizeof(uint64_t));
        l++;
        b->levels = l;
        if (b->w[l - 1] == NULL) {
            bs_free(b);
            PyErr_NoMemory();
            return -1;
        }
        if (words == 1 || l == BS_LEVELS)
            break;
        n = words;
    }
    return 0;
}

static inline void bs_set(BitSet *b, int64_t i)
{
    for (int l = 0; l < b->levels; l++) {
        int64_t w = i >> 6;
        uint64_t was = b->w[l][w];
        b->w[l][w] = was | (1ULL << (i & 63));
        if (was)
            return;
        i = w;
    }
}

static inline void bs_clear(BitSet *b, int64_t i)
{
    for (int l = 0; l < b->levels; l++) {
        int64_t w = i >> 6;
        b->w[l][w] &= ~(1ULL << (i & 63));
        if (b->w[l][w])
            return;
        i = w;
    }
}

static inline int bs_get(const BitSet *b, int64_t i)
{
    return (int)((b->w[0][i >> 6] >> (i & 63)) & 1);
}

/* smallest set index >= i, or -1 */
static inline int64_t bs_next(const BitSet *b, int64_t i)
{
    int l = 0;
    for (;;) {
        int64_t w = i >> 6;
        if (w >= b->nwords[l])
            return -1;
        uint64_t m = b->w[l][w] & (~0ULL << (i & 63));
        if (m) {
            i = (w << 6) + __builtin_ctzll(m);
            break;
        }
        if (l + 1 == b->levels)
            return -1;
        i = w + 1;
        l++;
    }
    while (l > 0) {
        l--;
        i = (i << 6) + __builtin_ctzll(b->w[l][i]);
    }
    return i;
}

/* largest set index, or -1 */
static inline int64_t bs_last(const BitSet *b)
{
    int l = b->levels - 1;
    int64_t i = -1;
    for (int64_t w = b->nwords[l] - 1; w >= 0; w--) {
        if (b->w[l][w]) {
            i = (w << 6) + 63 - __builtin_clzll(b->w[l][w]);
            break;
        }
    }
    if (i < 0)
        return -1;
    while (l > 0) {
        l--;
        i = (i << 6) + 63 - __builtin_clzll(b->w[l][i]);
    }
    return i;
}

/* ================================================================== FreeIndex */

typedef struct {
    PyObject_HEAD
    int64_t total;      /* pages indexed */
    int64_t cap;        /* the per-page arrays hold cap + 1 entries */
    int32_t *len;       /* len[p] > 0: a free run of len[p] pages starts at p */
    int32_t *tail;      /* tail[p] = start + 1 when a free run's last page is p, else 0 */
    int32_t *next;      /* next / prev run of the same length (by start), -1 at the ends */
    int32_t *prev;
    int32_t *head;      /* head[L]: the most recently indexed run of length L, -1 if none */
    uint8_t *barrier;   /* barrier[p]: p is a segment boundary (runs never merge across it) */
    BitSet lens;        /* bit L set: some run has length L */
    int32_t *tree;      /* max tree over len[], 2 * leaves entries; only while first fit */
    int64_t leaves;
    int64_t free_pages;
    int64_t nruns;
    int first_fit;
    int dirty;          /* lazy frees may have left neighbouring runs unmerged */
} FreeIndex;

static PyTypeObject FreeIndexType;

static void fi_tree_set(FreeIndex *s, int64_t pos, int32_t value)
{
    int32_t *t = s->tree;
    int64_t i = pos + s->leaves;
    t[i] = value;
    i >>= 1;
    while (i) {
        int32_t a = t[2 * i], b = t[2 * i + 1];
        int32_t m = a > b ? a : b;
        if (t[i] == m)
            break;
        t[i] = m;
        i >>= 1;
    }
}

static int fi_build_tree(FreeIndex *s)
{
    PyMem_Free(s->tree);
    s->tree = NULL;
    s->leaves = 0;
    if (!s->first_fit)
        return 0;
    int64_t leaves = 1;
    while (leaves < (s->total > 1 ? s->total : 1))
        leaves <<= 1;
    int32_t *t = PyMem_Calloc((size_t)(2 * leaves), sizeof(int32_t));
    if (t == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    memcpy(t + leaves, s->len, (size_t)s->total * sizeof(int32_t));
    for (int64_t i = leaves - 1; i >= 1; i--)
        t[i] = t[2 * i] > t[2 * i + 1] ? t[2 * i] : t[2 * i + 1];
    s->tree = t;
    s->leaves = leaves;
    return 0;
}

static inline void fi_insert(FreeIndex *s, int64_t start, int64_t length)
{
    int32_t st = (int32_t)start, L = (int32_t)length;
    s->len[st] = L;
    s->tail[st + L - 1] = st + 1;
    int32_t h = s->head[L];
    s->prev[st] = -1;
    s->next[st] = h;
    if (h >= 0)
        s->prev[h] = st;
    else
        bs_set(&s->lens, L);
    s->head[L] = st;
    s->free_pages += L;
    s->nruns++;
    if (s->tree)
        fi_tree_set(s, st, L);
}

static inline int64_t fi_delete(FreeIndex *s, int64_t start)
{
    int32_t st = (int32_t)start;
    int32_t L = s->len[st];
    s->len[st] = 0;
    s->tail[st + L - 1] = 0;
    int32_t p = s->prev[st], n = s->next[st];
    if (p >= 0)
        s->next[p] = n;
    else
        s->head[L] = n;
    if (n >= 0)
        s->prev[n] = p;
    if (s->head[L] < 0)
        bs_clear(&s->lens, L);
    s->free_pages -= L;
    s->nruns--;
    if (s->tree)
        fi_tree_set(s, st, 0);
    return L;
}

/* forget every run (keeps barriers and sizes) */
static int fi_clear(FreeIndex *s)
{
    size_t n = (size_t)s->cap + 1;
    memset(s->len, 0, n * sizeof(int32_t));
    memset(s->tail, 0, n * sizeof(int32_t));
    memset(s->head, 0xff, n * sizeof(int32_t));
    s->free_pages = 0;
    s->nruns = 0;
    s->dirty = 0;
    if (bs_init(&s->lens, s->total + 1) < 0)
        return -1;
    return fi_build_tree(s);
}

/* make room for `total` pages; existing runs stay (the bitset and tree are rebuilt) */
static int fi_resize(FreeIndex *s, int64_t total)
{
    if (total < 0 || total > MAX_PAGES) {
        PyErr_Format(PyExc_OverflowError, "the free-run index holds at most %lld pages, not %lld",
                     (long long)MAX_PAGES, (long long)total);
        return -1;
    }
    if (total > s->cap) {
        size_t n = (size_t)total + 1;
        int32_t **arrays[5] = {&s->len, &s->tail, &s->next, &s->prev, &s->head};
        for (int k = 0; k < 5; k++) {
            int32_t *a = PyMem_Realloc(*arrays[k], n * sizeof(int32_t));
            if (a == NULL) {
                PyErr_NoMemory();
                return -1;
            }
            *arrays[k] = a;
        }
        uint8_t *b = PyMem_Realloc(s->barrier, n);
        if (b == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        s->barrier = b;
        size_t old = (size_t)s->cap + 1;
        if (s->len == NULL || s->cap < 0)
            old = 0;
        memset(s->len + old, 0, (n - old) * sizeof(int32_t));
        memset(s->tail + old, 0, (n - old) * sizeof(int32_t));
        memset(s->head + old, 0xff, (n - old) * sizeof(int32_t));
        memset(s->barrier + old, 0, n - old);
        s->cap = total;
    }
    s->total = total;
    if (bs_init(&s->lens, total + 1) < 0)
        return -1;
    for (int64_t L = 1; L <= total; L++)
        if (s->head[L] >= 0)
            bs_set(&s->lens, L);
    return fi_build_tree(s);
}

static inline int64_t fi_find(FreeIndex *s, int64_t pages)
{
    if (pages < 1)
        pages = 1;
    if (s->first_fit) {
        int32_t *t = s->tree;
        if (pages > t[1])
            return -1;
        int64_t i = 1, leaves = s->leaves;
        while (i < leaves) {
            i <<= 1;
            if (t[i] < pages)
                i++;
        }
        return i - leaves;
    }
    if (pages > s->total)
        return -1;
    int64_t L = bs_next(&s->lens, pages);
    return L < 0 ? -1 : s->head[L];
}

static inline int64_t fi_take(FreeIndex *s, int64_t pages)
{
    int64_t start = fi_find(s, pages);
    if (start < 0)
        return -1;
    if (pages < 1)
        pages = 1;
    int64_t L = fi_delete(s, start);
    if (L > pages)
        fi_insert(s, start + pages, L - pages);
    return start;
}

static inline int fi_left_free(FreeIndex *s, int64_t start)
{
    return start > 0 && !s->barrier[start] && s->tail[start - 1];
}

static inline int fi_right_free(FreeIndex *s, int64_t end)
{
    return end < s->total && !s->barrier[end] && s->len[end];
}

static int fi_release(FreeIndex *s, int64_t start, int64_t length, int merge)
{
    int64_t end = start + length;
    if (start < 0 || length < 1 || end > s->total || s->len[start] || s->tail[end - 1]) {
        PyErr_Format(PyExc_ValueError, "cannot release pages %lld..%lld: outside the pool or already free",
                     (long long)start, (long long)end);
        return -1;
    }
    if (merge) {
        if (fi_left_free(s, start)) {
            int64_t left = s->tail[start - 1] - 1;
            fi_delete(s, left);
            start = left;
        }
        if (fi_right_free(s, end))
            end += fi_delete(s, end);
    }
    else if (!s->dirty && (fi_left_free(s, start) || fi_right_free(s, end))) {
        s->dirty = 1;
    }
    fi_insert(s, start, end - start);
    return 0;
}

/* ------------------------------------------------------------------ FreeIndex: Python API */

static int fi_init(FreeIndex *s, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"fit", NULL};
    const char *fit = "best";
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|s", kwlist, &fit))
        return -1;
    if (strcmp(fit, "best") && strcmp(fit, "first")) {
        PyErr_Format(PyExc_ValueError, "fit='%s' is not allowed: use 'first' or 'best'", fit);
        return -1;
    }
    s->first_fit = strcmp(fit, "first") == 0;
    s->cap = -1;
    if (fi_resize(s, 0) < 0)
        return -1;
    s->barrier[0] = 1;
    return 0;
}

static void fi_dealloc(FreeIndex *s)
{
    PyMem_Free(s->len);
    PyMem_Free(s->tail);
    PyMem_Free(s->next);
    PyMem_Free(s->prev);
    PyMem_Free(s->head);
    PyMem_Free(s->barrier);
    PyMem_Free(s->tree);
    bs_free(&s->lens);
    Py_TYPE(s)->tp_free((PyObject *)s);
}

static int parse_run(PyObject *item, int64_t *start, int64_t *length)
{
    long long a, b;
    if (!PyArg_ParseTuple(item, "LL", &a, &b))
        return -1;
    *start = a;
    *length = b;
    return 0;
}

static PyObject *fi_py_reset(FreeIndex *s, PyObject *args)
{
    long long total;
    PyObject *barriers, *runs;
    if (!PyArg_ParseTuple(args, "LOO", &total, &barriers, &runs))
        return NULL;
    if (fi_resize(s, total) < 0)
        return NULL;
    memset(s->barrier, 0, (size_t)s->cap + 1);
    s->barrier[0] = 1;
    s->barrier[total] = 1;
    PyObject *it = PyObject_GetIter(barriers), *item;
    if (it == NULL)
        return NULL;
    while ((item = PyIter_Next(it))) {
        long long b = PyLong_AsLongLong(item);
        Py_DECREF(item);
        if (b == -1 && PyErr_Occurred())
            break;
        if (b < 0 || b > total) {
            PyErr_Format(PyExc_ValueError, "barrier %lld outside 0..%lld", b, total);
            break;
        }
        s->barrier[b] = 1;
    }
    Py_DECREF(it);
    if (PyErr_Occurred() || fi_clear(s) < 0)
        return NULL;
    it = PyObject_GetIter(runs);
    if (it == NULL)
        return NULL;
    while ((item = PyIter_Next(it))) {
        int64_t a, n;
        int bad = parse_run(item, &a, &n);
        Py_DECREF(item);
        if (bad < 0)
            break;
        if (fi_release(s, a, n, 0) < 0)
            break;
    }
    Py_DECREF(it);
    if (PyErr_Occurred())
        return NULL;
    s->dirty = 0;
    Py_RETURN_NONE;
}

static PyObject *fi_py_add_segment(FreeIndex *s, PyObject *args)
{
    long long first, n;
    if (!PyArg_ParseTuple(args, "LL", &first, &n))
        return NULL;
    if (first != s->total || n < 1) {
        PyErr_Format(PyExc_ValueError, "a segment must start at page %lld and hold >= 1 page", (long long)s->total);
        return NULL;
    }
    if (fi_resize(s, first + n) < 0)
        return NULL;
    s->barrier[first] = 1;
    s->barrier[first + n] = 1;
    fi_insert(s, first, n);
    Py_RETURN_NONE;
}

static PyObject *fi_py_take(FreeIndex *s, PyObject *arg)
{
    long long pages = PyLong_AsLongLong(arg);
    if (pages == -1 && PyErr_Occurred())
        return NULL;
    return PyLong_FromLongLong(fi_take(s, pages));
}

static PyObject *fi_py_find(FreeIndex *s, PyObject *arg)
{
    long long pages = PyLong_AsLongLong(arg);
    if (pages == -1 && PyErr_Occurred())
        return NULL;
    return PyLong_FromLongLong(fi_find(s, pages));
}

static PyObject *fi_py_release(FreeIndex *s, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"start", "length", "merge", NULL};
    long long start, length;
    int merge;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "LLp", kwlist, &start, &length, &merge))
        return NULL;
    if (fi_release(s, start, length, merge) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* mark [start, start + length) used; it must lie inside one indexed run */
static int fi_carve(FreeIndex *s, long long start, long long length)
{
    if (start < 0 || length < 1 || start + length > s->total) {
        PyErr_Format(PyExc_AssertionError, "pages %lld..%lld are outside the pool", start, start + length);
        return -1;
    }
    int64_t run = start;
    while (run >= 0 && s->len[run] == 0)  /* the planner places blocks at run starts: rarely loops */
        run--;
    int64_t run_end = run >= 0 ? run + s->len[run] : -1;
    if (run < 0 || start + length > run_end) {
        PyErr_Format(PyExc_AssertionError, "pages %lld..%lld are not inside a free run", start, start + length);
        return -1;
    }
    fi_delete(s, run);
    if (start > run)
        fi_insert(s, run, start - run);
    if (run_end > start + length)
        fi_insert(s, start + length, run_end - start - length);
    return 0;
}

static PyObject *fi_py_carve(FreeIndex *s, PyObject *args)
{
    long long start, length;
    if (!PyArg_ParseTuple(args, "LL", &start, &length))
        return NULL;
    if (fi_carve(s, start, length) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *fi_py_largest(FreeIndex *s, PyObject *Py_UNUSED(ignored))
{
    int64_t L = bs_last(&s->lens);
    return PyLong_FromLongLong(L < 0 ? 0 : L);
}

static Py_ssize_t fi_length(FreeIndex *s)
{
    return (Py_ssize_t)s->nruns;
}

static int append_run(PyObject *list, int64_t start, int64_t length)
{
    PyObject *t = Py_BuildValue("(LL)", (long long)start, (long long)length);
    int bad = t == NULL || PyList_Append(list, t) < 0;
    Py_XDECREF(t);
    return bad ? -1 : 0;
}

/* (start, length) of the indexed runs in address order; merged: neighbours joined */
static PyObject *fi_runs_list(FreeIndex *s, int merged)
{
    PyObject *out = PyList_New(0);
    if (out == NULL)
        return NULL;
    int64_t cur = -1, cur_len = 0;
    for (int64_t p = 0; p < s->total; p++) {
        int32_t L = s->len[p];
        if (!L)
            continue;
        if (merged && cur >= 0 && cur + cur_len == p && !s->barrier[p]) {
            cur_len += L;
        }
        else {
            if (cur >= 0 && append_run(out, cur, cur_len) < 0) {
                Py_DECREF(out);
                return NULL;
            }
            cur = p;
            cur_len = L;
        }
        p += L - 1;
    }
    if (cur >= 0 && append_run(out, cur, cur_len) < 0) {
        Py_DECREF(out);
        return NULL;
    }
    return out;
}

static PyObject *fi_py_runs(FreeIndex *s, PyObject *Py_UNUSED(ignored))
{
    return fi_runs_list(s, 0);
}

static PyObject *fi_py_merged_runs(FreeIndex *s, PyObject *Py_UNUSED(ignored))
{
    return fi_runs_list(s, 1);
}

static PyObject *fi_py_merge_all(FreeIndex *s, PyObject *Py_UNUSED(ignored))
{
    if (!s->dirty)
        Py_RETURN_FALSE;
    /* the maximal runs, then the index rebuilt from them in address order (as the reference does:
       the same run order in every length list, so both cores pick the same runs afterwards) */
    int64_t *runs = PyMem_Malloc((size_t)(2 * (s->nruns + 1)) * sizeof(int64_t));
    if (runs == NULL)
        return PyErr_NoMemory();
    int64_t n = 0, before = s->nruns;
    for (int64_t p = 0; p < s->total;) {
        int32_t L = s->len[p];
        if (!L) {
            p++;
            continue;
        }
        if (n && runs[2 * (n - 1)] + runs[2 * (n - 1) + 1] == p && !s->barrier[p])
            runs[2 * (n - 1) + 1] += L;
        else {
            runs[2 * n] = p;
            runs[2 * n + 1] = L;
            n++;
        }
        p += L;
    }
    if (fi_clear(s) < 0) {
        PyMem_Free(runs);
        return NULL;
    }
    for (int64_t k = 0; k < n; k++)
        fi_insert(s, runs[2 * k], runs[2 * k + 1]);
    PyMem_Free(runs);
    s->dirty = 0;
    return PyBool_FromLong(n != before);
}

/* lengths of the indexed runs, no particular order: O(runs), not O(pages) */
static PyObject *fi_py_lengths(FreeIndex *s, PyObject *Py_UNUSED(ignored))
{
    PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(s->nruns * 8));
    if (out == NULL)
        return NULL;
    int64_t *dst = (int64_t *)PyBytes_AS_STRING(out);
    int64_t k = 0;
    for (int64_t L = bs_next(&s->lens, 1); L >= 0 && k < s->nruns; L = bs_next(&s->lens, L + 1))
        for (int32_t p = s->head[L]; p >= 0 && k < s->nruns; p = s->next[p])
            dst[k++] = L;
    if (k != s->nruns) {
        Py_DECREF(out);
        PyErr_SetString(PyExc_AssertionError, "length lists disagree with the run count");
        return NULL;
    }
    return out;
}

static PyObject *fail_check(const char *msg, long long a)
{
    PyErr_Format(PyExc_AssertionError, "free index: %s (%lld)", msg, a);
    return NULL;
}

/* every internal structure agrees with len[] */
static PyObject *fi_py_check(FreeIndex *s, PyObject *Py_UNUSED(ignored))
{
    int64_t runs = 0, pages = 0, prev_end = 0, tails = 0;
    for (int64_t p = 0; p < s->total; p++) {
        if (s->tail[p])
            tails++;
        int32_t L = s->len[p];
        if (!L)
            continue;
        if (L < 0 || p + L > s->total)
            return fail_check("run outside the pool at page", p);
        if (p < prev_end)
            return fail_check("runs overlap at page", p);
        if (s->tail[p + L - 1] != p + 1)
            return fail_check("run end not recorded, run at page", p);
        for (int64_t q = p + 1; q < p + L; q++)
            if (s->barrier[q])
                return fail_check("run crosses a segment boundary at page", q);
        if (!bs_get(&s->lens, L))
            return fail_check("length bitset misses length", L);
        prev_end = p + L;
        runs++;
        pages += L;
    }
    if (runs != s->nruns || pages != s->free_pages || tails != runs)
        return fail_check("run count or free pages disagree, runs", runs);
    int64_t listed = 0;
    for (int64_t L = 1; L <= s->total; L++) {
        int32_t h = s->head[L];
        if ((h >= 0) != bs_get(&s->lens, L))
            return fail_check("length bitset disagrees with the lists at length", L);
        int32_t before = -1;
        for (int32_t p = h; p >= 0; p = s->next[p]) {
            if (s->len[p] != L || s->prev[p] != before)
                return fail_check("length list broken at page", p);
            before = p;
            if (++listed > runs)
                return fail_check("length lists hold too many runs", listed);
        }
    }
    if (listed != runs)
        return fail_check("length lists hold a different number of runs", listed);
    if (s->tree) {
        for (int64_t p = 0; p < s->leaves; p++)
            if (s->tree[s->leaves + p] != (p < s->total ? s->len[p] : 0))
                return fail_check("first-fit tree leaf disagrees at page", p);
        for (int64_t i = s->leaves - 1; i >= 1; i--) {
            int32_t m = s->tree[2 * i] > s->tree[2 * i + 1] ? s->tree[2 * i] : s->tree[2 * i + 1];
            if (s->tree[i] != m)
                return fail_check("first-fit tree node disagrees", i);
        }
    }
    Py_RETURN_NONE;
}

static PyObject *fi_get_fit(FreeIndex *s, void *Py_UNUSED(c))
{
    return PyUnicode_FromString(s->first_fit ? "first" : "best");
}

static int fi_set_fit(FreeIndex *s, PyObject *v, void *Py_UNUSED(c))
{
    if (v == NULL || !PyUnicode_Check(v)) {
        PyErr_SetString(PyExc_TypeError, "fit must be 'first' or 'best'");
        return -1;
    }
    int first;
    if (PyUnicode_CompareWithASCIIString(v, "first") == 0)
        first = 1;
    else if (PyUnicode_CompareWithASCIIString(v, "best") == 0)
        first = 0;
    else {
        PyErr_Format(PyExc_ValueError, "fit=%R is not allowed: use 'first' or 'best'", v);
        return -1;
    }
    s->first_fit = first;
    return fi_build_tree(s);
}

static PyObject *fi_get_dirty(FreeIndex *s, void *Py_UNUSED(c))
{
    return PyBool_FromLong(s->dirty);
}

static int fi_set_dirty(FreeIndex *s, PyObject *v, void *Py_UNUSED(c))
{
    int d = v ? PyObject_IsTrue(v) : 0;
    if (d < 0)
        return -1;
    s->dirty = d;
    return 0;
}

static PyMethodDef fi_methods[] = {
    {"reset", (PyCFunction)fi_py_reset, METH_VARARGS, "reset(total_pages, barriers, runs): rebuild from scratch."},
    {"add_segment", (PyCFunction)fi_py_add_segment, METH_VARARGS, "add_segment(first, num_pages): index a new, free segment."},
    {"take", (PyCFunction)fi_py_take, METH_O, "take(pages) -> start of the run used, or -1."},
    {"find", (PyCFunction)fi_py_find, METH_O, "find(pages) -> the start take() would use, or -1."},
    {"release", (PyCFunction)(void (*)(void))fi_py_release, METH_VARARGS | METH_KEYWORDS, "release(start, length, merge): index pages as free."},
    {"carve", (PyCFunction)fi_py_carve, METH_VARARGS, "carve(start, length): mark pages of one free run used."},
    {"largest", (PyCFunction)fi_py_largest, METH_NOARGS, "largest() -> length of the longest indexed run."},
    {"runs", (PyCFunction)fi_py_runs, METH_NOARGS, "runs() -> [(start, length)] in address order."},
    {"merged_runs", (PyCFunction)fi_py_merged_runs, METH_NOARGS, "merged_runs() -> maximal runs in address order."},
    {"merge_all", (PyCFunction)fi_py_merge_all, METH_NOARGS, "merge_all() -> True if neighbouring runs merged."},
    {"lengths", (PyCFunction)fi_py_lengths, METH_NOARGS, "lengths() -> int64 bytes of every run's length."},
    {"check", (PyCFunction)fi_py_check, METH_NOARGS, "check(): raise AssertionError if inconsistent."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef fi_members[] = {
    {"free_pages", T_LONGLONG, offsetof(FreeIndex, free_pages), READONLY, NULL},
    {"total_pages", T_LONGLONG, offsetof(FreeIndex, total), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyGetSetDef fi_getset[] = {
    {"fit", (getter)fi_get_fit, (setter)fi_set_fit, NULL, NULL},
    {"dirty", (getter)fi_get_dirty, (setter)fi_set_dirty, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PySequenceMethods fi_as_sequence = {.sq_length = (lenfunc)fi_length};

static PyTypeObject FreeIndexType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "autoglm_lab.pool._core.FreeIndex",
    .tp_basicsize = sizeof(FreeIndex),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The pool's free-run index (see _freeindex.py for the reference implementation).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)fi_init,
    .tp_dealloc = (destructor)fi_dealloc,
    .tp_methods = fi_methods,
    .tp_members = fi_members,
    .tp_getset = fi_getset,
    .tp_as_sequence = &fi_as_sequence,
};

/* ================================================================== EventRing */

typedef struct {
    double time_s;
    int64_t kind;
    int64_t block_id;
    int64_t pages;
    double latency_s;
    int64_t info;
} Event;

typedef struct {
    PyObject_HEAD
    Event *buf;
    Py_ssize_t cap;
    Py_ssize_t first;  /* index of the oldest event */
    Py_ssize_t n;
    long long total;   /* events ever recorded */
} EventRing;

static PyTypeObject EventRingType;

static inline void ring_push(EventRing *r, double t, int64_t kind, int64_t bid, int64_t pages, double lat,
                             int64_t info)
{
    r->total++;
    if (r->cap == 0)
        return;
    Py_ssize_t i;
    if (r->n < r->cap) {
        i = r->first + r->n;
        if (i >= r->cap)
            i -= r->cap;
        r->n++;
    }
    else {
        i = r->first;
        r->first = i + 1 == r->cap ? 0 : i + 1;
    }
    Event *e = &r->buf[i];
    e->time_s = t;
    e->kind = kind;
    e->block_id = bid;
    e->pages = pages;
    e->latency_s = lat;
    e->info = info;
}

static int ring_set_capacity(EventRing *r, Py_ssize_t cap)
{
    if (cap < 0) {
        PyErr_SetString(PyExc_ValueError, "event capacity must be >= 0");
        return -1;
    }
    Event *buf = PyMem_Calloc(cap ? (size_t)cap : 1, sizeof(Event));
    if (buf == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    Py_ssize_t keep = r->n < cap ? r->n : cap;  /* the newest events survive */
    for (Py_ssize_t k = 0; k < keep; k++)
        buf[k] = r->buf[(r->first + r->n - keep + k) % r->cap];
    PyMem_Free(r->buf);
    r->buf = buf;
    r->cap = cap;
    r->first = 0;
    r->n = keep;
    return 0;
}

static int ring_init(EventRing *r, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"capacity", NULL};
    Py_ssize_t cap;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "n", kwlist, &cap))
        return -1;
    r->n = 0;
    r->first = 0;
    r->total = 0;
    return ring_set_capacity(r, cap);
}

static void ring_dealloc(EventRing *r)
{
    PyMem_Free(r->buf);
    Py_TYPE(r)->tp_free((PyObject *)r);
}

static PyObject *ring_record(EventRing *r, PyObject *ev)
{
    double t, lat;
    long long kind, bid, pages, info;
    if (!PyArg_ParseTuple(ev, "dLLLdL", &t, &kind, &bid, &pages, &lat, &info))
        return NULL;
    ring_push(r, t, kind, bid, pages, lat, info);
    Py_RETURN_NONE;
}

static PyObject *ring_resize(EventRing *r, PyObject *arg)
{
    Py_ssize_t cap = PyLong_AsSsize_t(arg);
    if (cap == -1 && PyErr_Occurred())
        return NULL;
    if (ring_set_capacity(r, cap) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* the ring, oldest first, as packed records (EventArrays.from_rows reads them with numpy) */
static PyObject *ring_rows(EventRing *r, PyObject *Py_UNUSED(ignored))
{
    PyObject *out = PyBytes_FromStringAndSize(NULL, r->n * (Py_ssize_t)sizeof(Event));
    if (out == NULL)
        return NULL;
    Event *dst = (Event *)PyBytes_AS_STRING(out);
    Py_ssize_t head = r->cap - r->first < r->n ? r->cap - r->first : r->n;
    memcpy(dst, r->buf + r->first, (size_t)head * sizeof(Event));
    memcpy(dst + head, r->buf, (size_t)(r->n - head) * sizeof(Event));
    return out;
}

static PyObject *ring_get_capacity(EventRing *r, void *Py_UNUSED(c))
{
    return PyLong_FromSsize_t(r->cap);
}

static Py_ssize_t ring_length(EventRing *r)
{
    return r->n;
}

static PyMethodDef ring_methods[] = {
    {"record", (PyCFunction)ring_record, METH_O, "record((time_s, kind, block_id, pages, latency_s, info))"},
    {"resize", (PyCFunction)ring_resize, METH_O, "resize(capacity): keep the newest events."},
    {"rows", (PyCFunction)ring_rows, METH_NOARGS, "rows() -> packed records, oldest first."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef ring_members[] = {
    {"total", T_LONGLONG, offsetof(EventRing, total), 0, "events ever recorded"},
    {NULL, 0, 0, 0, NULL},
};

static PyGetSetDef ring_getset[] = {
    {"capacity", (getter)ring_get_capacity, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PySequenceMethods ring_as_sequence = {.sq_length = (lenfunc)ring_length};

static PyTypeObject EventRingType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "autoglm_lab.pool._core.EventRing",
    .tp_basicsize = sizeof(EventRing),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Fixed-capacity ring of (time_s, kind, block_id, pages, latency_s, info) events.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)ring_init,
    .tp_dealloc = (destructor)ring_dealloc,
    .tp_methods = ring_methods,
    .tp_members = ring_members,
    .tp_getset = ring_getset,
    .tp_as_sequence = &ring_as_sequence,
};

/* ================================================================== BlockBase */

typedef struct {
    PyObject_HEAD
    long long id;
    long long nbytes;
    long long num_pages;
    PyObject *tag;
    PyObject *dtype;
    PyObject *shape;
    PyObject *pool;
    PyObject *seg;
    PyObject *tensor;
    long long start;
    long long slot;
    long long pins;
    double created_s;
    char freed;
} BlockBase;

static PyTypeObject BlockBaseType;

static int block_traverse(BlockBase *b, visitproc visit, void *arg)
{
    Py_VISIT(b->tag);
    Py_VISIT(b->dtype);
    Py_VISIT(b->shape);
    Py_VISIT(b->pool);
    Py_VISIT(b->seg);
    Py_VISIT(b->tensor);
    /* the type is visited by the Python subclass's traverse (the base is static) */
    return 0;
}

static int block_clear(BlockBase *b)
{
    Py_CLEAR(b->tag);
    Py_CLEAR(b->dtype);
    Py_CLEAR(b->shape);
    Py_CLEAR(b->pool);
    Py_CLEAR(b->seg);
    Py_CLEAR(b->tensor);
    return 0;
}

static void block_dealloc(BlockBase *b)
{
    PyObject_GC_UnTrack(b);
    block_clear(b);
    PyTypeObject *tp = Py_TYPE(b);
    tp->tp_free((PyObject *)b);
}

static PyMemberDef block_members[] = {
    /* the public fields are the pool's books: read-only (num_pages = 3 would make free() release
       another block's pages) */
    {"id", T_LONGLONG, offsetof(BlockBase, id), READONLY, NULL},
    {"nbytes", T_LONGLONG, offsetof(BlockBase, nbytes), READONLY, NULL},
    {"num_pages", T_LONGLONG, offsetof(BlockBase, num_pages), READONLY, NULL},
    {"tag", T_OBJECT, offsetof(BlockBase, tag), READONLY, NULL},
    {"dtype", T_OBJECT, offsetof(BlockBase, dtype), READONLY, NULL},
    {"shape", T_OBJECT, offsetof(BlockBase, shape), READONLY, NULL},
    {"created_s", T_DOUBLE, offsetof(BlockBase, created_s), READONLY, NULL},
    {"_pool", T_OBJECT, offsetof(BlockBase, pool), 0, NULL},
    {"_seg", T_OBJECT, offsetof(BlockBase, seg), 0, NULL},
    {"_tensor", T_OBJECT, offsetof(BlockBase, tensor), 0, NULL},
    {"_start", T_LONGLONG, offsetof(BlockBase, start), 0, NULL},
    {"_slot", T_LONGLONG, offsetof(BlockBase, slot), 0, NULL},
    {"_pins", T_LONGLONG, offsetof(BlockBase, pins), 0, NULL},
    {"_freed", T_BOOL, offsetof(BlockBase, freed), 0, NULL},
    {NULL, 0, 0, 0, NULL},
};

/* the public fields are read-only (the members say so); this says which and why, in words. Private
   names (a leading underscore: the pool's own) go straight through */
static const char *const block_public[] = {"id", "nbytes", "num_pages", "tag", "dtype", "shape", "created_s", NULL};

static int block_setattro(PyObject *self, PyObject *name, PyObject *value)
{
    if (PyUnicode_Check(name) && PyUnicode_GET_LENGTH(name) > 0 && PyUnicode_READ_CHAR(name, 0) != '_') {
        for (const char *const *p = block_public; *p; p++) {
            if (PyUnicode_CompareWithASCIIString(name, *p) == 0) {
                PyErr_Format(PyExc_AttributeError,
                             "Block.%U is read-only (tried to set it to %R): it is the pool's own bookkeeping "
                             "(freeing would release the wrong pages); allocate a new block for another size or tag",
                             name, value ? value : Py_None);
                return -1;
            }
        }
    }
    return PyObject_GenericSetAttr(self, name, value);
}

static PyTypeObject BlockBaseType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "autoglm_lab.pool._core.BlockBase",
    .tp_basicsize = sizeof(BlockBase),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The fields of a Block; the pool's Core fills them in.",
    .tp_new = PyType_GenericNew,
    .tp_traverse = (traverseproc)block_traverse,
    .tp_clear = (inquiry)block_clear,
    .tp_dealloc = (destructor)block_dealloc,
    .tp_members = block_members,
    .tp_setattro = block_setattro,
};

/* ================================================================== Core */

enum { EV_ALLOC = 0, EV_FREE = 1 };

typedef struct {
    PyObject_HEAD
    FreeIndex *index;
    EventRing *events;
    PyObject *pool;           /* the PagedPool */
    PyTypeObject *block_type; /* Block (a subclass of BlockBase) */
    PyObject *lock_acquire;   /* the pool's RLock, bound methods */
    PyObject *lock_release;
    PyObject *pinned_error;   /* PinnedBlockError */
    PyObject *dtype_type;     /* type(torch.float32) */
    PyObject *uint8;          /* torch.uint8 */
    PyObject *blocks;         /* {id: Block} */
    PyObject *tags;           /* {tag: tag id} */
    PyObject *tag_names;      /* [tag, ...] */
    PyObject *segments;       /* [segment, ...] */
    int64_t *seg_first;
    Py_ssize_t nsegs;
    /* block table: one slot per live block; pages == 0 marks a free slot */
    int64_t *b_id, *b_start, *b_pages, *b_nbytes, *b_tag, *b_pins;
    double *b_created;
    int64_t *free_slots;
    Py_ssize_t nslots, capslots, nfree;
    /* tag ids: live blocks per id, and the ids no block carries any more (reused first) */
    int64_t *tag_refs, *tag_free;
    Py_ssize_t tag_cap, ntag_free;
    /* dtype -> itemsize, a few entries */
    PyObject *dt_key[16];
    long long dt_size[16];
    int ndt;
    long long page_size;
    double clock_offset;      /* add to the C clock to get seconds since the pool was created */
    int merge_on_free;
    long long next_id, used_pages, peak_used_pages, requested_bytes;
    long long num_allocs, num_frees, consecutive_failures, seq;
} Core;

static PyTypeObject CoreType;

static inline double clock_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int core_traverse(Core *c, visitproc visit, void *arg)
{
    Py_VISIT(c->index);
    Py_VISIT(c->events);
    Py_VISIT(c->pool);
    Py_VISIT(c->block_type);
    Py_VISIT(c->lock_acquire);
    Py_VISIT(c->lock_release);
    Py_VISIT(c->pinned_error);
    Py_VISIT(c->dtype_type);
    Py_VISIT(c->uint8);
    Py_VISIT(c->blocks);
    Py_VISIT(c->tags);
    Py_VISIT(c->tag_names);
    Py_VISIT(c->segments);
    for (int k = 0; k < c->ndt; k++)
        Py_VISIT(c->dt_key[k]);
    return 0;
}

static int core_clear(Core *c)
{
    Py_CLEAR(c->index);
    Py_CLEAR(c->events);
    Py_CLEAR(c->pool);
    Py_CLEAR(c->block_type);
    Py_CLEAR(c->lock_acquire);
    Py_CLEAR(c->lock_release);
    Py_CLEAR(c->pinned_error);
    Py_CLEAR(c->dtype_type);
    Py_CLEAR(c->uint8);
    Py_CLEAR(c->blocks);
    Py_CLEAR(c->tags);
    Py_CLEAR(c->tag_names);
    Py_CLEAR(c->segments);
    for (int k = 0; k < c->ndt; k++)
        Py_CLEAR(c->dt_key[k]);
    c->ndt = 0;
    return 0;
}

static void core_dealloc(Core *c)
{
    PyObject_GC_UnTrack(c);
    core_clear(c);
    int64_t *arrays[7] = {c->b_id, c->b_start, c->b_pages, c->b_nbytes, c->b_tag, c->b_pins, c->free_slots};
    for (int k = 0; k < 7; k++)
        PyMem_Free(arrays[k]);
    PyMem_Free(c->b_created);
    PyMem_Free(c->seg_first);
    PyMem_Free(c->tag_refs);
    PyMem_Free(c->tag_free);
    Py_TYPE(c)->tp_free((PyObject *)c);
}

/* Core(owner, lock, blocks, tags, tag_names, page_size, index, events, block_type, pinned_error,
   uint8, t0): everything it works on is handed in; it calls nothing back. `owner` is what a Block's
   `_pool` names; the lock's acquire/release guard every call */
static int core_init(Core *c, PyObject *args, PyObject *kw)
{
    PyObject *pool, *lock, *blocks, *tags, *tag_names, *index, *events, *block_type, *pinned, *torch_uint8;
    long long page_size;
    double t0;
    if (!PyArg_ParseTuple(args, "OOO!O!O!LO!O!O!OOd", &pool, &lock, &PyDict_Type, &blocks, &PyDict_Type, &tags,
                          &PyList_Type, &tag_names, &page_size, &FreeIndexType, &index, &EventRingType, &events,
                          &PyType_Type, &block_type, &pinned, &torch_uint8, &t0))
        return -1;
    if (!PyType_IsSubtype((PyTypeObject *)block_type, &BlockBaseType)) {
        PyErr_SetString(PyExc_TypeError, "block_type must subclass BlockBase");
        return -1;
    }
    if (!PyDict_CheckExact(blocks) || !PyDict_CheckExact(tags) || !PyList_CheckExact(tag_names)) {
        PyErr_SetString(PyExc_TypeError, "blocks and tags must be dicts, tag_names a list");
        return -1;
    }
    if (page_size <= 0) {
        PyErr_SetString(PyExc_ValueError, "page_size must be > 0");
        return -1;
    }
    core_clear(c);
    Py_INCREF(pool);
    c->pool = pool;
    Py_INCREF(index);
    c->index = (FreeIndex *)index;
    Py_INCREF(events);
    c->events = (EventRing *)events;
    Py_INCREF(block_type);
    c->block_type = (PyTypeObject *)block_type;
    Py_INCREF(pinned);
    c->pinned_error = pinned;
    Py_INCREF(torch_uint8);
    c->uint8 = torch_uint8;
    c->dtype_type = (PyObject *)Py_TYPE(torch_uint8);
    Py_INCREF(c->dtype_type);
    c->lock_acquire = PyObject_GetAttrString(lock, "acquire");
    c->lock_release = PyObject_GetAttrString(lock, "release");
    if (!c->lock_acquire || !c->lock_release)
        return -1;
    Py_INCREF(blocks);
    c->blocks = blocks;
    Py_INCREF(tags);
    c->tags = tags;
    Py_INCREF(tag_names);
    c->tag_names = tag_names;
    c->page_size = page_size;
    /* time.perf_counter() and the C clock tick together; events count from the pool's t0 */
    PyObject *time_mod = PyImport_ImportModule("time");
    if (time_mod == NULL)
        return -1;
    PyObject *pc = PyObject_CallMethod(time_mod, "perf_counter", NULL);
    Py_DECREF(time_mod);
    if (pc == NULL)
        return -1;
    double now_py = PyFloat_AsDouble(pc);
    Py_DECREF(pc);
    c->clock_offset = now_py - clock_now() - t0;
    c->merge_on_free = 1;
    return 0;
}

static inline int core_lock(Core *c)
{
    PyObject *r = PyObject_CallNoArgs(c->lock_acquire);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

static inline PyObject *core_unlock(Core *c, PyObject *result)
{
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyObject *r = PyObject_CallNoArgs(c->lock_release);
    if (r == NULL) {  /* cannot happen while we hold it; do not mask the first error */
        Py_XDECREF(result);
        if (type) {
            PyErr_Clear();
            PyErr_Restore(type, value, tb);
        }
        return NULL;
    }
    Py_DECREF(r);
    PyErr_Restore(type, value, tb);
    return result;
}

static int core_grow_slots(Core *c)
{
    Py_ssize_t cap = c->capslots ? c->capslots * 2 : 1024;
    int64_t **arrays[7] = {&c->b_id, &c->b_start, &c->b_pages, &c->b_nbytes, &c->b_tag, &c->b_pins, &c->free_slots};
    for (int k = 0; k < 7; k++) {
        int64_t *a = PyMem_Realloc(*arrays[k], (size_t)cap * sizeof(int64_t));
        if (a == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        *arrays[k] = a;
    }
    double *d = PyMem_Realloc(c->b_created, (size_t)cap * sizeof(double));
    if (d == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    c->b_created = d;
    c->capslots = cap;
    return 0;
}

/* The id of `tag` for one more live block: tag ids are reference-counted by the blocks that carry
   them, so a pool that sees a new tag per request keeps only the live ones. Returns -1 for None,
   -2 with an exception set on failure. */
static long long core_tag_acquire(Core *c, PyObject *tag)
{
    if (tag == Py_None)
        return -1;
    long long id;
    PyObject *v = PyDict_GetItemWithError(c->tags, tag);
    if (v != NULL) {
        id = PyLong_AsLongLong(v);
        if (id < 0 || id >= c->tag_cap) {
            if (!PyErr_Occurred())
                PyErr_Format(PyExc_AssertionError, "tag %R has id %lld outside the tag table", tag, id);
            return -2;
        }
        c->tag_refs[id]++;
        return id;
    }
    if (PyErr_Occurred())
        return -2;
    Py_ssize_t n = PyList_GET_SIZE(c->tag_names);
    int reuse = c->ntag_free > 0;
    id = reuse ? c->tag_free[c->ntag_free - 1] : n;
    if (id >= c->tag_cap) {
        Py_ssize_t cap = c->tag_cap ? c->tag_cap * 2 : 64;
        int64_t *refs = PyMem_Realloc(c->tag_refs, (size_t)cap * sizeof(int64_t));
        if (refs == NULL) {
            PyErr_NoMemory();
            return -2;
        }
        c->tag_refs = refs;
        int64_t *ids = PyMem_Realloc(c->tag_free, (size_t)cap * sizeof(int64_t));
        if (ids == NULL) {
            PyErr_NoMemory();
            return -2;
        }
        c->tag_free = ids;
        c->tag_cap = cap;
    }
    PyObject *iv = PyLong_FromLongLong(id);
    if (iv == NULL)
        return -2;
    int bad = PyDict_SetItem(c->tags, tag, iv) < 0;
    Py_DECREF(iv);
    if (bad)
        return -2;
    if (reuse) {
        Py_INCREF(tag);
        bad = PyList_SetItem(c->tag_names, (Py_ssize_t)id, tag) < 0;  /* steals the new reference */
    }
    else {
        bad = PyList_Append(c->tag_names, tag) < 0;
    }
    if (bad) {
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        if (PyDict_DelItem(c->tags, tag) < 0)
            PyErr_Clear();
        PyErr_Restore(type, value, tb);
        return -2;
    }
    if (reuse)
        c->ntag_free--;
    c->tag_refs[id] = 1;
    return id;
}

/* one live block less carries tag `id`: the last one gives the name back (its entry becomes None)
   and the id to the free list. Keeps any exception being raised. */
static void core_tag_release(Core *c, long long id)
{
    if (id < 0 || --c->tag_refs[id] > 0)
        return;
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyObject *name = PyList_GET_ITEM(c->tag_names, (Py_ssize_t)id);
    if (PyDict_DelItem(c->tags, name) < 0)
        PyErr_Clear();
    Py_INCREF(Py_None);
    PyList_SetItem(c->tag_names, (Py_ssize_t)id, Py_None);
    c->tag_free[c->ntag_free++] = id;
    PyErr_Restore(type, value, tb);
}

static inline long long core_itemsize(Core *c, PyObject *dtype)
{
    for (int k = 0; k < c->ndt; k++)
        if (c->dt_key[k] == dtype)
            return c->dt_size[k];
    PyObject *v = PyObject_GetAttrString(dtype, "itemsize");
    if (v == NULL)
        return -1;
    long long size = PyLong_AsLongLong(v);
    Py_DECREF(v);
    if (size <= 0) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "dtype itemsize must be > 0");
        return -1;
    }
    if (c->ndt < 16) {
        Py_INCREF(dtype);
        c->dt_key[c->ndt] = dtype;
        c->dt_size[c->ndt] = size;
        c->ndt++;
    }
    return size;
}

static inline long long core_pages_for(Core *c, long long nbytes)
{
    long long ps = c->page_size;
    return nbytes ? (nbytes / ps + (nbytes % ps != 0)) : 1;
}

/* a Block on pages [start, start + pages) that the caller took from the index (lock held); t0 is
   when the allocation began on the C clock. Steals `shape`; on failure the pages go back. */
static PyObject *core_place_locked(Core *c, int64_t start, long long pages, long long nbytes, PyObject *dtype,
                                   PyObject *shape, PyObject *tag, double t0)
{
    FreeIndex *idx = c->index;
    PyObject *blk = NULL, *key = NULL;
    long long tag_id = core_tag_acquire(c, tag);
    if (tag_id == -2)
        goto fail;
    if (c->nfree == 0 && c->nslots == c->capslots && core_grow_slots(c) < 0)
        goto fail;
    blk = c->block_type->tp_alloc(c->block_type, 0);
    if (blk == NULL)
        goto fail;
    long long bid = c->next_id;
    key = PyLong_FromLongLong(bid);
    if (key == NULL || PyDict_SetItem(c->blocks, key, blk) < 0)
        goto fail;
    Py_DECREF(key);
    c->next_id = bid + 1;
    /* the block's segment: the last one starting at or before `start` */
    Py_ssize_t lo = 0, hi = c->nsegs;
    while (hi - lo > 1) {
        Py_ssize_t mid = (lo + hi) >> 1;
        if (c->seg_first[mid] <= start)
            lo = mid;
        else
            hi = mid;
    }
    Py_ssize_t slot = c->nfree ? c->free_slots[--c->nfree] : c->nslots++;
    double created = t0 + c->clock_offset;
    BlockBase *b = (BlockBase *)blk;
    b->id = bid;
    b->nbytes = nbytes;
    b->num_pages = pages;
    Py_INCREF(tag);
    b->tag = tag;
    Py_INCREF(dtype);
    b->dtype = dtype;
    b->shape = shape;
    Py_INCREF(c->pool);
    b->pool = c->pool;
    b->seg = PyList_GET_ITEM(c->segments, lo);
    Py_INCREF(b->seg);
    b->tensor = NULL;
    b->start = start;
    b->slot = slot;
    b->pins = 0;
    b->created_s = created;
    b->freed = 0;
    c->b_id[slot] = bid;
    c->b_start[slot] = start;
    c->b_pages[slot] = pages;
    c->b_nbytes[slot] = nbytes;
    c->b_tag[slot] = tag_id;
    c->b_pins[slot] = 0;
    c->b_created[slot] = created;
    c->used_pages += pages;
    if (c->used_pages > c->peak_used_pages)
        c->peak_used_pages = c->used_pages;
    c->requested_bytes += nbytes;
    c->num_allocs++;
    c->consecutive_failures = 0;
    c->seq++;
    double t1 = clock_now();  /* stamped at completion, so the ring stays in time order */
    ring_push(c->events, t1 + c->clock_offset, EV_ALLOC, bid, pages, t1 - t0, 0);
    return blk;

fail:
    Py_XDECREF(key);
    Py_XDECREF(blk);
    Py_DECREF(shape);
    if (tag_id >= 0)
        core_tag_release(c, tag_id);
    {
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        if (fi_release(idx, start, pages, c->merge_on_free) < 0)
            PyErr_Clear();
        PyErr_Restore(type, value, tb);
    }
    return NULL;
}

/* the allocation on the fast path, arguments already valid; steals `shape`. None when no indexed run
   fits: the pool's own slow path (merge, grow, compaction hook, PoolExhausted) then calls place() */
static PyObject *core_alloc_common(Core *c, long long nbytes, PyObject *dtype, PyObject *shape, PyObject *tag)
{
    long long pages = core_pages_for(c, nbytes);
    if (core_lock(c) < 0) {
        Py_DECREF(shape);
        return NULL;
    }
    double t0 = clock_now();
    int64_t start = fi_take(c->index, pages);
    if (start < 0) {
        Py_DECREF(shape);
        Py_INCREF(Py_None);
        return core_unlock(c, Py_None);
    }
    return core_unlock(c, core_place_locked(c, start, pages, nbytes, dtype, shape, tag, t0));
}

/* place(start, nbytes, dtype, shape, tag, started_s): the Block for a run the pool's slow path took
   from the index at `start` (the lock held across both); started_s is when that allocation began,
   in the pool's seconds, so its event's latency covers the slow path too */
static PyObject *core_place(Core *c, PyObject *args)
{
    long long start, nbytes;
    double started_s;
    PyObject *dtype, *shape, *tag;
    if (!PyArg_ParseTuple(args, "LLOO!Od", &start, &nbytes, &dtype, &PyTuple_Type, &shape, &tag, &started_s))
        return NULL;
    if (start < 0 || nbytes < 0) {
        PyErr_SetString(PyExc_ValueError, "place: start and nbytes must be >= 0");
        return NULL;
    }
    if (core_lock(c) < 0)
        return NULL;
    Py_INCREF(shape);
    long long pages = core_pages_for(c, nbytes);
    return core_unlock(c, core_place_locked(c, start, pages, nbytes, dtype, shape, tag, started_s - c->clock_offset));
}

/* alloc_bytes(nbytes, tag) */
static PyObject *core_alloc_bytes(Core *c, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "alloc_bytes(nbytes, tag)");
        return NULL;
    }
    PyObject *n = args[0], *tag = args[1];
    if (PyLong_CheckExact(n) && (tag == Py_None || PyUnicode_CheckExact(tag))) {
        int overflow;
        long long nb = PyLong_AsLongLongAndOverflow(n, &overflow);
        if (!overflow && nb >= 0) {
            PyObject *shape = PyTuple_Pack(1, n);
            if (shape == NULL)
                return NULL;
            return core_alloc_common(c, nb, c->uint8, shape, tag);
        }
    }
    Py_RETURN_NONE;  /* unusual arguments: the pool validates them and goes on through alloc_shaped */
}

/* the largest byte span a block's view may cover (its strides and offsets are int64) */
#define MAX_VIEW_BYTES (((long long)1 << 62) - 1)

/* alloc(shape, dtype, tag) */
static PyObject *core_alloc(Core *c, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "alloc(shape, dtype, tag)");
        return NULL;
    }
    PyObject *shape = args[0], *dtype = args[1], *tag = args[2];
    if ((PyObject *)Py_TYPE(dtype) != c->dtype_type || !(tag == Py_None || PyUnicode_CheckExact(tag)))
        goto generic;
    long long count = 1, span = 1;  /* span: count with zero dims as 1, what the view's strides reach */
    PyObject *dims;
    if (PyLong_CheckExact(shape)) {
        int overflow;
        count = PyLong_AsLongLongAndOverflow(shape, &overflow);
        if (overflow || count < 0)
            goto generic;
        dims = PyTuple_Pack(1, shape);
        if (dims == NULL)
            return NULL;
    }
    else if (PyTuple_Check(shape)) {
        Py_ssize_t nd = PyTuple_GET_SIZE(shape);
        for (Py_ssize_t k = 0; k < nd; k++) {
            PyObject *d = PyTuple_GET_ITEM(shape, k);
            int overflow;
            long long v = PyLong_CheckExact(d) ? PyLong_AsLongLongAndOverflow(d, &overflow) : -1;
            if (!PyLong_CheckExact(d) || overflow || v < 0 || __builtin_mul_overflow(count, v, &count)
                || __builtin_mul_overflow(span, v ? v : 1, &span))
                goto generic;
        }
        if (PyTuple_CheckExact(shape)) {
            Py_INCREF(shape);
            dims = shape;
        }
        else {
            dims = PyTuple_GetSlice(shape, 0, nd);
            if (dims == NULL)
                return NULL;
        }
    }
    else {
        goto generic;
    }
    long long itemsize = core_itemsize(c, dtype);
    long long nbytes;
    if (itemsize < 0) {
        Py_DECREF(dims);
        return NULL;
    }
    long long reach;
    if (__builtin_mul_overflow(count, itemsize, &nbytes) || __builtin_mul_overflow(span, itemsize, &reach)
        || reach > MAX_VIEW_BYTES) {
        Py_DECREF(dims);
        goto generic;
    }
    return core_alloc_common(c, nbytes, dtype, dims, tag);
generic:
    Py_RETURN_NONE;  /* unusual arguments: the pool validates them and goes on through alloc_shaped */
}

/* alloc_shaped(nbytes, dtype, shape, tag): for callers that validated everything */
static PyObject *core_alloc_shaped(Core *c, PyObject *args)
{
    long long nbytes;
    PyObject *dtype, *shape, *tag;
    if (!PyArg_ParseTuple(args, "LOO!O", &nbytes, &dtype, &PyTuple_Type, &shape, &tag))
        return NULL;
    if (nbytes < 0) {
        PyErr_SetString(PyExc_ValueError, "nbytes must be >= 0");
        return NULL;
    }
    Py_INCREF(shape);
    return core_alloc_common(c, nbytes, dtype, shape, tag);
}

static PyObject *core_free(Core *c, PyObject *block)
{
    if (core_lock(c) < 0)
        return NULL;
    double t0 = clock_now();
    BlockBase *b = (BlockBase *)block;
    if (Py_TYPE(block) != c->block_type || b->pool != c->pool || b->freed) {
        Py_INCREF(Py_False);  /* not a live block of this pool: the pool says which error */
        return core_unlock(c, Py_False);
    }
    if (b->pins) {
        PyErr_Format(c->pinned_error, "block %lld is pinned; leave its pool.pin(...) before freeing it", b->id);
        return core_unlock(c, NULL);
    }
    long long pages = b->num_pages;
    if (fi_release(c->index, b->start, pages, c->merge_on_free) < 0)
        return core_unlock(c, NULL);
    PyObject *key = PyLong_FromLongLong(b->id);
    if (key == NULL || PyDict_DelItem(c->blocks, key) < 0) {  /* only if the pool was already corrupt */
        Py_XDECREF(key);
        return core_unlock(c, NULL);
    }
    Py_DECREF(key);
    b->freed = 1;
    Py_CLEAR(b->tensor);
    Py_ssize_t slot = (Py_ssize_t)b->slot;
    c->b_pages[slot] = 0;  /* pins are 0 too: a pinned block cannot be freed */
    c->free_slots[c->nfree++] = slot;
    core_tag_release(c, c->b_tag[slot]);
    c->used_pages -= pages;
    c->requested_bytes -= b->nbytes;
    c->num_frees++;
    c->seq++;
    double t1 = clock_now();
    ring_push(c->events, t1 + c->clock_offset, EV_FREE, b->id, pages, t1 - t0, 0);
    Py_INCREF(Py_None);
    return core_unlock(c, Py_None);
}

static PyObject *core_set_segments(Core *c, PyObject *segs)
{
    if (!PyList_CheckExact(segs) || PyList_GET_SIZE(segs) < 1) {
        PyErr_SetString(PyExc_TypeError, "set_segments expects a non-empty list of segments");
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(segs);
    int64_t *firsts = PyMem_Malloc((size_t)n * sizeof(int64_t));
    if (firsts == NULL)
        return PyErr_NoMemory();
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *v = PyObject_GetAttrString(PyList_GET_ITEM(segs, k), "first_page");
        long long f = v ? PyLong_AsLongLong(v) : -1;
        Py_XDECREF(v);
        if (f == -1 && PyErr_Occurred()) {
            PyMem_Free(firsts);
            return NULL;
        }
        firsts[k] = f;
    }
    PyMem_Free(c->seg_first);
    c->seg_first = firsts;
    c->nsegs = n;
    Py_INCREF(segs);
    Py_XSETREF(c->segments, segs);
    Py_RETURN_NONE;
}

static int core_slot_arg(Core *c, PyObject *args, Py_ssize_t *slot, long long *value)
{
    Py_ssize_t s;
    long long v;
    if (!PyArg_ParseTuple(args, "nL", &s, &v))
        return -1;
    if (s < 0 || s >= c->nslots) {
        PyErr_Format(PyExc_IndexError, "block table slot %zd out of range", s);
        return -1;
    }
    *slot = s;
    *value = v;
    return 0;
}

static PyObject *core_set_start(Core *c, PyObject *args)
{
    Py_ssize_t s;
    long long v;
    if (core_slot_arg(c, args, &s, &v) < 0)
        return NULL;
    c->b_start[s] = v;
    Py_RETURN_NONE;
}

static PyObject *core_set_pins(Core *c, PyObject *args)
{
    Py_ssize_t s;
    long long v;
    if (core_slot_arg(c, args, &s, &v) < 0)
        return NULL;
    c->b_pins[s] = v;
    Py_RETURN_NONE;
}

/* undo moves[0:k] of relocate (all checked and applied), last first: each block's new place goes
   back to the index and its old place is carved out again; the error being raised is kept */
static void core_unrelocate(Core *c, PyObject **items, Py_ssize_t k)
{
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    for (Py_ssize_t j = k - 1; j >= 0; j--) {
        PyObject *m = items[j];
        BlockBase *b = (BlockBase *)PyDict_GetItem(c->blocks, PyTuple_GET_ITEM(m, 0));
        long long src = PyLong_AsLongLong(PyTuple_GET_ITEM(m, 1));
        if (fi_release(c->index, b->start, b->num_pages, 1) < 0 || fi_carve(c->index, src, b->num_pages) < 0)
            PyErr_Clear();  /* cannot happen: these pages were exactly as undone here a moment ago */
        b->start = src;
        Py_CLEAR(b->tensor);
        c->b_start[b->slot] = src;
    }
    PyErr_Restore(type, value, tb);
}

/* relocate(moves): bookkeeping of moves, [(block id, old first page, new first page)], in order:
   each block's pages go back to the index (merged) and its new place is carved out. All or
   nothing: a move that does not fit the pool as the earlier ones left it (no such block, not at
   its old place, pinned, new place not free) raises and undoes the earlier ones, so the compactor
   checks a step here before it copies a byte */
static PyObject *core_relocate(Core *c, PyObject *moves)
{
    PyObject *seq = PySequence_Fast(moves, "relocate expects a sequence of (block id, src, dst)");
    if (seq == NULL)
        return NULL;
    if (core_lock(c) < 0) {
        Py_DECREF(seq);
        return NULL;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject **items = PySequence_Fast_ITEMS(seq);
    Py_ssize_t k = 0;
    for (; k < n; k++) {
        PyObject *m = items[k];
        if (!PyTuple_Check(m) || PyTuple_GET_SIZE(m) != 3) {
            PyErr_SetString(PyExc_TypeError, "relocate expects (block id, src, dst) tuples");
            goto fail;
        }
        PyObject *blk = PyDict_GetItemWithError(c->blocks, PyTuple_GET_ITEM(m, 0));
        long long src = PyLong_AsLongLong(PyTuple_GET_ITEM(m, 1));
        long long dst = PyLong_AsLongLong(PyTuple_GET_ITEM(m, 2));
        if (PyErr_Occurred())
            goto fail;
        if (blk == NULL || !PyObject_TypeCheck(blk, &BlockBaseType)) {
            PyErr_Format(PyExc_AssertionError, "relocate: no live block %R", PyTuple_GET_ITEM(m, 0));
            goto fail;
        }
        BlockBase *b = (BlockBase *)blk;
        if (b->start != src || b->pins) {
            PyErr_Format(PyExc_AssertionError, "relocate: block %lld is at page %lld (pins %lld), not %lld",
                         b->id, b->start, b->pins, src);
            goto fail;
        }
        if (fi_release(c->index, src, b->num_pages, 1) < 0)
            goto fail;
        if (fi_carve(c->index, dst, b->num_pages) < 0) {
            PyObject *type, *value, *tb;
            PyErr_Fetch(&type, &value, &tb);
            if (fi_carve(c->index, src, b->num_pages) < 0)  /* its old place, released just now */
                PyErr_Clear();
            PyErr_Restore(type, value, tb);
            goto fail;
        }
        b->start = dst;
        Py_CLEAR(b->tensor);
        c->b_start[b->slot] = dst;
    }
    Py_DECREF(seq);
    c->seq++;
    Py_INCREF(Py_None);
    return core_unlock(c, Py_None);
fail:
    core_unrelocate(c, items, k);
    Py_DECREF(seq);
    c->seq++;
    return core_unlock(c, NULL);
}

/* the block table's columns over every slot (free slots have pages == 0), as read-only
   memoryviews of the core's own arrays: copy them at once, under the pool's lock */
static PyObject *core_table(Core *c, PyObject *Py_UNUSED(ignored))
{
    Py_ssize_t nb = c->nslots * 8;
    char *cols[7] = {(char *)c->b_id, (char *)c->b_start, (char *)c->b_pages, (char *)c->b_nbytes,
                     (char *)c->b_tag, (char *)c->b_pins, (char *)c->b_created};
    static char empty[8];
    PyObject *out = PyTuple_New(7);
    if (out == NULL)
        return NULL;
    for (int k = 0; k < 7; k++) {
        PyObject *mv = PyMemoryView_FromMemory(nb ? cols[k] : empty, nb, PyBUF_READ);
        if (mv == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyTuple_SET_ITEM(out, k, mv);
    }
    return out;
}

static PyMethodDef core_methods[] = {
    {"alloc_bytes", (PyCFunction)(void (*)(void))core_alloc_bytes, METH_FASTCALL, "alloc_bytes(nbytes, tag) -> Block, or None (unusual arguments or no indexed run: the pool goes on)"},
    {"alloc", (PyCFunction)(void (*)(void))core_alloc, METH_FASTCALL, "alloc(shape, dtype, tag) -> Block, or None (unusual arguments or no indexed run: the pool goes on)"},
    {"alloc_shaped", (PyCFunction)core_alloc_shaped, METH_VARARGS, "alloc_shaped(nbytes, dtype, shape, tag) -> Block, or None when no indexed run fits"},
    {"place", (PyCFunction)core_place, METH_VARARGS, "place(start, nbytes, dtype, shape, tag, started_s) -> Block on a run taken from the index"},
    {"free", (PyCFunction)core_free, METH_O, "free(block) -> None, or False when it is not a live block of this pool"},
    {"relocate", (PyCFunction)core_relocate, METH_O, "relocate([(block id, src, dst)]): bookkeeping of copied moves"},
    {"set_segments", (PyCFunction)core_set_segments, METH_O, "set_segments(list): after segments change"},
    {"set_start", (PyCFunction)core_set_start, METH_VARARGS, "set_start(slot, first_page)"},
    {"set_pins", (PyCFunction)core_set_pins, METH_VARARGS, "set_pins(slot, pins)"},
    {"table", (PyCFunction)core_table, METH_NOARGS, "table() -> 7 column views: id, start, pages, nbytes, tag, pins, created"},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef core_members[] = {
    {"merge_on_free", T_INT, offsetof(Core, merge_on_free), 0, NULL},
    {"next_id", T_LONGLONG, offsetof(Core, next_id), 0, NULL},
    {"used_pages", T_LONGLONG, offsetof(Core, used_pages), 0, NULL},
    {"peak_used_pages", T_LONGLONG, offsetof(Core, peak_used_pages), 0, NULL},
    {"requested_bytes", T_LONGLONG, offsetof(Core, requested_bytes), 0, NULL},
    {"num_allocs", T_LONGLONG, offsetof(Core, num_allocs), 0, NULL},
    {"num_frees", T_LONGLONG, offsetof(Core, num_frees), 0, NULL},
    {"consecutive_failures", T_LONGLONG, offsetof(Core, consecutive_failures), 0, NULL},
    {"seq", T_LONGLONG, offsetof(Core, seq), 0, NULL},
    {"nslots", T_PYSSIZET, offsetof(Core, nslots), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject CoreType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "autoglm_lab.pool._core.Core",
    .tp_basicsize = sizeof(Core),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Core(pool, index, events, block_type, pinned_error, torch_uint8, t0): alloc/free bookkeeping.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)core_init,
    .tp_traverse = (traverseproc)core_traverse,
    .tp_clear = (inquiry)core_clear,
    .tp_dealloc = (destructor)core_dealloc,
    .tp_methods = core_methods,
    .tp_members = core_members,
};

/* ================================================================== copies for the compactor */

/* the copies of copy_ranges, rows already checked; called without the GIL */
static void copy_rows(char *base, const int64_t *r, Py_ssize_t k, int64_t chunk)
{
    for (Py_ssize_t i = 0; i < k; i++) {
        int64_t a = r[3 * i], b = r[3 * i + 1], n = r[3 * i + 2];
        if (n <= chunk || a == b) {
            if (a != b)
                memmove(base + b, base + a, (size_t)n);
        }
        else if (b < a) {  /* front to back */
            for (int64_t off = 0; off < n; off += chunk) {
                int64_t m = n - off < chunk ? n - off : chunk;
                memmove(base + b + off, base + a + off, (size_t)m);
            }
        }
        else {  /* back to front */
            for (int64_t off = ((n - 1) / chunk) * chunk; off >= 0; off -= chunk) {
                int64_t m = n - off < chunk ? n - off : chunk;
                memmove(base + b + off, base + a + off, (size_t)m);
            }
        }
    }
}

/* copy_ranges(buffer, ranges, chunk): for each row (src, dst, nbytes) of the int64 (k, 3) array
   `ranges`, in order, move nbytes bytes of the writable `buffer` from offset src to offset dst
   (overlap allowed), in pieces of at most `chunk` bytes ordered so that a piece never overwrites
   bytes a later piece still has to read. Every range is checked before anything is copied; the
   copies run without the GIL. (Splitting them over two threads measured no faster here: one core
   already moves ~22 GB/s, about what this machine's memory gives two.) */
static PyObject *copy_ranges(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *buf_obj, *ranges_obj;
    Py_ssize_t chunk;
    if (!PyArg_ParseTuple(args, "OOn", &buf_obj, &ranges_obj, &chunk))
        return NULL;
    if (chunk < 1) {
        PyErr_SetString(PyExc_ValueError, "chunk must be >= 1 byte");
        return NULL;
    }
    Py_buffer buf, rng;
    if (PyObject_GetBuffer(buf_obj, &buf, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0)
        return NULL;
    if (PyObject_GetBuffer(ranges_obj, &rng, PyBUF_C_CONTIGUOUS) < 0) {
        PyBuffer_Release(&buf);
        return NULL;
    }
    PyObject *result = NULL;
    if (rng.len % 24) {
        PyErr_SetString(PyExc_ValueError, "ranges must be int64 rows of (src, dst, nbytes)");
        goto done;
    }
    Py_ssize_t k = rng.len / 24;
    const int64_t *r = (const int64_t *)rng.buf;
    for (Py_ssize_t i = 0; i < k; i++) {
        int64_t a = r[3 * i], b = r[3 * i + 1], n = r[3 * i + 2];
        if (a < 0 || b < 0 || n < 0 || a > buf.len - n || b > buf.len - n) {
            PyErr_Format(PyExc_ValueError, "range %zd (%lld -> %lld, %lld bytes) lies outside the %zd-byte buffer",
                         i, (long long)a, (long long)b, (long long)n, buf.len);
            goto done;
        }
    }
    Py_BEGIN_ALLOW_THREADS
    copy_rows((char *)buf.buf, r, k, chunk);
    Py_END_ALLOW_THREADS
    Py_INCREF(Py_None);
    result = Py_None;
done:
    PyBuffer_Release(&rng);
    PyBuffer_Release(&buf);
    return result;
}

static PyMethodDef module_methods[] = {
    {"copy_ranges", (PyCFunction)copy_ranges, METH_VARARGS,
     "copy_ranges(buffer, ranges, chunk): ordered, overlap-safe byte moves inside one buffer, without the GIL."},
    {NULL, NULL, 0, NULL},
};

/* ================================================================== module */

static struct PyModuleDef core_module = {
    PyModuleDef_HEAD_INIT, "_core", "The paged pool's hot path, compiled (see _pycore.py for the reference).", -1,
    module_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__core(void)
{
    PyTypeObject *types[4] = {&FreeIndexType, &EventRingType, &BlockBaseType, &CoreType};
    const char *names[4] = {"FreeIndex", "EventRing", "BlockBase", "Core"};
    for (int k = 0; k < 4; k++)
        if (PyType_Ready(types[k]) < 0)
            return NULL;
    PyObject *m = PyModule_Create(&core_module);
    if (m == NULL)
        return NULL;
    for (int k = 0; k < 4; k++) {
        Py_INCREF(types[k]);
        if (PyModule_AddObject(m, names[k], (PyObject *)types[k]) < 0) {
            Py_DECREF(types[k]);
            Py_DECREF(m);
            return NULL;
        }
    }
    if (PyModule_AddStringConstant(m, "SOURCE_HASH", CORE_SOURCE_HASH) < 0
        || PyModule_AddIntConstant(m, "EVENT_RECORD_BYTES", (long)sizeof(Event)) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
