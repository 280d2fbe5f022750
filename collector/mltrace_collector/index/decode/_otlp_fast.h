/*
 * Internal header of the C extension mltrace_collector.index.decode._otlp_fast: what its
 * translation units share. Not an API; nothing outside this folder includes it.
 *
 *   _otlp_fast.c         module definition and the two entry points (decode_spans,
 *                        prepare_plain) with their walk callbacks
 *   _otlp_fast_values.c  attribute values: the key cache, AnyValue -> Python objects,
 *                        KeyValue -> the attributes dict
 *   _otlp_fast_walk.c    the one walk of a request (resources, scope spans, spans)
 *   _otlp_fast_rows.c    store rows of a plain run span (prepare_plain's checks and rows)
 *   _otlp_fast_json.c    json.dumps(sort_keys=True) of the values the walk makes
 *
 * The protobuf wire primitives are `static inline` here: they run for every field of every
 * span, so each unit keeps them inlined as when the reader was one file. Functions shared
 * between units carry the prefix otlpf_ and hidden visibility (the .so exports only
 * PyInit__otlp_fast).
 *
 * Contract (see _otlp_fast.pyi): the caller has already parsed `data` with upb, so it is
 * valid protobuf; we still bounds-check every read and return None for anything we do not
 * model exactly. None means "use the pure-Python path", so it is always a correct answer;
 * a non-None answer must equal what walking the upb message would give. In particular we
 * return None where protobuf merge semantics would make a field-by-field walk wrong: a
 * non-repeated message field seen twice (upb merges the two), two members of the AnyValue
 * oneof (the last one wins in upb), a known field with an unexpected wire type (upb keeps
 * it as an unknown field), groups, truncated input or invalid UTF-8 in a decoded string.
 *
 * No global state is mutated (the key cache lives on the C stack of one call), and the GIL
 * is held throughout: the work is building Python objects.
 *
 * Field numbers are opentelemetry-proto v1 (checked against the installed descriptors):
 *   ExportTraceServiceRequest{1 resource_spans}
 *   ResourceSpans{1 resource, 2 scope_spans, 3 schema_url}
 *   Resource{1 attributes, 2 dropped_attributes_count, 3 entity_refs}
 *   ScopeSpans{1 scope, 2 spans, 3 schema_url}
 *   Span{1 trace_id, 2 span_id, 3 trace_state, 4 parent_span_id, 5 name, 6 kind,
 *        7 start fixed64, 8 end fixed64, 9 attributes, 10 dropped_attributes_count,
 *        11 events, 12 dropped_events_count, 13 links, 14 dropped_links_count, 15 status,
 *        16 flags fixed32}
 *   Status{2 message, 3 code}
 *   KeyValue{1 key, 2 value, 3 key_strindex}
 *   AnyValue oneof value{1 string, 2 bool, 3 int64, 4 double, 5 array, 6 kvlist, 7 bytes,
 *                        8 string_value_strindex}
 *   ArrayValue{1 values}
 */
#ifndef OTLP_FAST_H
#define OTLP_FAST_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__GNUC__)
#define OTLPF_INTERNAL __attribute__((visibility("hidden")))
#else
#define OTLPF_INTERNAL
#endif

/* Result of every parse step. BAD: the input is malformed or outside what we model (the
 * call returns None). PYERR: a Python exception is set (e.g. MemoryError), propagated. */
typedef enum { OK = 0, BAD = 1, PYERR = -1 } Status;

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };

typedef struct {
    const uint8_t *p;
    const uint8_t *end;
} Buf;

/* ---- wire primitives ------------------------------------------------------------------ */

/* Up to 10 bytes; bits beyond 64 are dropped, as upb does. */
static inline int
read_varint(Buf *b, uint64_t *out)
{
    uint64_t v = 0;
    for (int i = 0; i < 10; i++) {
        if (b->p >= b->end)
            return 0;
        uint8_t byte = *b->p++;
        v |= (uint64_t)(byte & 0x7f) << (7 * i);
        if (!(byte & 0x80)) {
            *out = v;
            return 1;
        }
    }
    return 0;
}

static inline int
read_tag(Buf *b, uint32_t *field, int *wire_type)
{
    uint64_t tag;
    if (!read_varint(b, &tag) || tag > UINT32_MAX || (tag >> 3) == 0)
        return 0;
    *field = (uint32_t)(tag >> 3);
    *wire_type = (int)(tag & 7);
    return 1;
}

/* A length-delimited payload as a sub-buffer; the outer buffer moves past it. */
static inline int
read_len(Buf *b, Buf *sub)
{
    uint64_t n;
    if (!read_varint(b, &n) || n > (uint64_t)(b->end - b->p))
        return 0;
    sub->p = b->p;
    sub->end = b->p + n;
    b->p += n;
    return 1;
}

static inline int
read_fixed64(Buf *b, uint64_t *out)
{
    if (b->end - b->p < 8)
        return 0;
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) /* little-endian on the wire, whatever the host */
        v = (v << 8) | b->p[i];
    b->p += 8;
    *out = v;
    return 1;
}

/* Skip one field of an unknown (or uninteresting) number. Groups (3/4) are refused: they
 * are deprecated, never produced by OTLP exporters, and skipping them needs nesting. */
static inline int
skip_field(Buf *b, int wire_type)
{
    uint64_t ignored;
    Buf sub;
    switch (wire_type) {
    case WT_VARINT:
        return read_varint(b, &ignored);
    case WT_I64:
        if (b->end - b->p < 8)
            return 0;
        b->p += 8;
        return 1;
    case WT_LEN:
        return read_len(b, &sub);
    case WT_I32:
        if (b->end - b->p < 4)
            return 0;
        b->p += 4;
        return 1;
    default:
        return 0;
    }
}

/* Expected wire types of a message's fields, by field number (-1: any); see the top. */
typedef struct {
    const int8_t *types;
    uint32_t n;
} Fields;

#define FIELDS(t) ((Fields){t, (uint32_t)(sizeof t / sizeof *t)})

/* A known field with another wire type: upb keeps it as an unknown field, so we give up. */
static inline int
wrong_type(Fields fields, uint32_t field, int wt)
{
    return field < fields.n && fields.types[field] != -1 && fields.types[field] != wt;
}

/* The next occurrence of the length-delimited field `want` in *b, every other field
 * skipped: 1 found (its payload in *sub), 0 at the end of *b, -1 malformed or of the
 * wrong_type. */
static inline int
next_field(Buf *b, uint32_t want, Fields fields, Buf *sub)
{
    while (b->p < b->end) {
        uint32_t field;
        int wt;
        if (!read_tag(b, &field, &wt))
            return -1;
        if (wrong_type(fields, field, wt))
            return -1;
        if (field == want)
            return read_len(b, sub) ? 1 : -1;
        if (!skip_field(b, wt))
            return -1;
    }
    return 0;
}

/* Strict UTF-8 decode; invalid UTF-8 (which upb also rejects for proto3 strings) -> BAD. */
static inline Status
decode_str(const Buf *s, PyObject **out)
{
    *out = PyUnicode_DecodeUTF8((const char *)s->p, s->end - s->p, NULL);
    if (*out != NULL)
        return OK;
    if (PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
        PyErr_Clear();
        return BAD;
    }
    return PYERR;
}

/* ---- attribute values (_otlp_fast_values.c) ---------------------------------------------
 * KeyCache: one interned str per distinct attribute key of a request (see the .c file). */
#define KEY_CACHE_SLOTS 64 /* power of two */
#define KEY_CACHE_MAX_LEN 128

typedef struct {
    const uint8_t *ptr;
    Py_ssize_t len;
    PyObject *str; /* owned; NULL = empty slot */
} KeyEntry;

typedef struct {
    KeyEntry slots[KEY_CACHE_SLOTS];
    int used;
} KeyCache;

/* Attributes being collected for one span or resource. `dict` becomes NULL (and stays so)
 * at the first value that is not simple. */
typedef struct {
    PyObject *dict;
    int finite;
} Attrs;

static inline Status
attrs_init(Attrs *a)
{
    a->dict = PyDict_New();
    a->finite = 1;
    return a->dict ? OK : PYERR;
}

OTLPF_INTERNAL void otlpf_key_cache_clear(KeyCache *cache);
/* One KeyValue message `b` into `a` (see the .c file). */
OTLPF_INTERNAL Status otlpf_add_key_value(KeyCache *cache, Buf b, Attrs *a);

/* ---- the walk (_otlp_fast_walk.c) --------------------------------------------------------
 * Reads each ResourceSpans' resource before its spans (wherever it is on the wire) and hands
 * both, in wire order, to its callbacks. */

/* Span tuple: (r, s, k, trace_id, span_id, parent_span_id, start, end, status_code,
 * status_message, attributes, safe, has_events). */
#define SPAN_TUPLE_SIZE 13

typedef struct Walk Walk;
struct Walk {
    KeyCache keys;
    /* attributes (dict, or None when not simple) of the next ResourceSpans; borrowed */
    Status (*on_resource)(Walk *w, PyObject *resource);
    /* one span tuple (SPAN_TUPLE_SIZE items) of the last resource; borrowed */
    Status (*on_span)(Walk *w, PyObject *span);
    void *ctx;
    PyObject *error; /* a callback's exception, raised when the walk is OK */
#if PY_VERSION_HEX < 0x030C0000
    PyObject *error_type, *error_tb;
#endif
};

/* Walks `view`, calling w's callbacks: OK, BAD (the pure-Python path is needed) or PYERR
 * (a Python exception set, the walk's or a callback's). */
OTLPF_INTERNAL Status otlpf_walk_request(Walk *w, const Py_buffer *view);

/* ---- store rows of plain run spans (_otlp_fast_rows.c) ----------------------------------- */
enum {
    S_COMPONENT, S_RUN_ID, S_INPUTS, S_OUTPUTS, S_TAGS, S_RECORDS_RUN_ID, S_RUN_START_RUN_ID,
    S_SERVICE, S_REVISION, S_REPOSITORY, S_FUNCTION, S_FILE, /* processor._CODE_KEYS order */
    S_PARAM_PREFIX, S_METRIC_PREFIX, S_RESOURCE_PREFIX,
    S_IN, S_OUT, S_UNSET, S_OK, S_ERROR, S_EMPTY_MAP, S_EMPTY_LIST, S_FFFD, S_NUL,
    N_STRINGS
};

typedef struct {
    PyObject *s[N_STRINGS]; /* owned, interned (dict lookups hit the identity fast path) */
    PyObject *dumps;        /* borrowed: writes.dumps_sorted */
    PyObject *split;        /* borrowed: writes._split_artifact_id */
} Rows;

/* 0, or -1 with an exception set; otlpf_rows_clear in both cases. */
OTLPF_INTERNAL int otlpf_rows_init(Rows *c);
OTLPF_INTERNAL void otlpf_rows_clear(Rows *c);
/* One span tuple `t` whose attributes name a component -> (run_row, io_rows, artifacts) in
 * *out, or *out = NULL to hand it back; OK or PYERR. */
OTLPF_INTERNAL Status otlpf_run_rows(Rows *c, PyObject *t, PyObject *attrs,
                                     PyObject *resource, PyObject *stored, PyObject **out);
/* processor._resource_attributes of a simple resource (new reference), None when not
 * simple, NULL on error. */
OTLPF_INTERNAL PyObject *otlpf_stored_resource(Rows *c, PyObject *resource);

/* ---- JSON text (_otlp_fast_json.c) ------------------------------------------------------- */

/* dumps_sorted(value) as a str (new reference; NULL on error). */
OTLPF_INTERNAL PyObject *otlpf_json_text(Rows *c, PyObject *value);
/* dumps_sorted(value), or `empty` (a new reference to it) when the dict/list is empty. */
OTLPF_INTERNAL PyObject *otlpf_json_or(Rows *c, PyObject *value, PyObject *empty);

#endif /* OTLP_FAST_H */
