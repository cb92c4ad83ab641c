/* weir guest support for C: see weir.h. */
#include "weir.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *copy(const void *src, size_t n) {
    void *p = malloc(n ? n : 1);
    if (n) memcpy(p, src, n);
    return p;
}

weir_record_t weir_record(const void *key, size_t key_len, const void *value, size_t value_len) {
    weir_record_t r;
    memset(&r, 0, sizeof r);
    if (key) {
        r.key.is_some = true;
        r.key.val.ptr = copy(key, key_len);
        r.key.val.len = key_len;
    }
    r.value.ptr = copy(value, value_len);
    r.value.len = value_len;
    return r;
}

bool weir_fail(weir_string_t *err, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    if ((size_t)n >= sizeof msg) n = sizeof msg - 1;
    err->ptr = copy(msg, (size_t)n);
    err->len = (size_t)n;
    return false;
}

char *weir_config_get(const weir_config_t *cfg, const char *key) {
    size_t klen = strlen(key);
    for (size_t i = 0; i < cfg->len; i++) {
        const weir_string_t *k = &cfg->ptr[i].f0;
        if (k->len == klen && memcmp(k->ptr, key, klen) == 0) {
            const weir_string_t *v = &cfg->ptr[i].f1;
            char *out = malloc(v->len + 1);
            memcpy(out, v->ptr, v->len);
            out[v->len] = 0;
            return out;
        }
    }
    return NULL;
}

void weir_log(uint8_t level, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    weir_string_t s = {(uint8_t *)msg, (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1};
    weir_plugin_host_log_log(level, &s);
}

void weir_buf_put(weir_buf_t *b, const void *data, size_t n) {
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n) cap *= 2;
        b->ptr = realloc(b->ptr, cap);
        b->cap = cap;
    }
    memcpy(b->ptr + b->len, data, n);
    b->len += n;
}

void weir_buf_put_u64(weir_buf_t *b, uint64_t v) {
    uint8_t le[8];
    for (int i = 0; i < 8; i++) le[i] = (uint8_t)(v >> (8 * i));
    weir_buf_put(b, le, 8);
}

weir_bytes_t weir_buf_take(weir_buf_t *b) {
    weir_bytes_t out = {b->ptr ? b->ptr : malloc(1), b->len};
    b->ptr = NULL;
    b->len = b->cap = 0;
    return out;
}

bool weir_read_u64(weir_reader_t *r, uint64_t *v) {
    if (r->len < 8) return false;
    uint64_t x = 0;
    for (int i = 0; i < 8; i++) x |= (uint64_t)r->ptr[i] << (8 * i);
    *v = x;
    r->ptr += 8;
    r->len -= 8;
    return true;
}

bool weir_read_bytes(weir_reader_t *r, size_t n, const uint8_t **out) {
    if (r->len < n) return false;
    *out = r->ptr;
    r->ptr += n;
    r->len -= n;
    return true;
}

#ifdef WEIR_PACKED
/* Packed batches: see weir.h and guest-sdk/batch for the format. */

static bool read_varint(const uint8_t **p, size_t *len, uint64_t *v) {
    uint64_t x = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (*len == 0) return false;
        uint8_t byte = **p;
        (*p)++;
        (*len)--;
        x |= (uint64_t)(byte & 0x7f) << shift;
        if (!(byte & 0x80)) {
            *v = x;
            return true;
        }
    }
    return false;
}

static bool read_slice(const uint8_t **p, size_t *len, const uint8_t **out, size_t *n) {
    uint64_t l;
    if (!read_varint(p, len, &l) || l > *len) return false;
    *out = *p;
    *n = (size_t)l;
    *p += l;
    *len -= l;
    return true;
}

static bool read_flag(const uint8_t **p, size_t *len, bool *flag) {
    if (*len == 0 || **p > 1) return false;
    *flag = **p == 1;
    (*p)++;
    (*len)--;
    return true;
}

bool weir_batch_read(weir_batch_reader_t *r, const weir_packed_t *batch) {
    r->ptr = batch->ptr;
    r->len = batch->len;
    return read_varint(&r->ptr, &r->len, &r->left);
}

void weir_batch_free(weir_packed_t *batch) {
    weir_plugin_packed_types_packed_batch_free(batch);
}

bool weir_batch_next(weir_batch_reader_t *r, weir_view_t *v) {
    if (r->left == 0) return false;
    const uint8_t *p = r->ptr;
    size_t len = r->len;
    uint64_t ts, count;
    memset(v, 0, sizeof *v);
    if (!read_flag(&p, &len, &v->has_key)) return false;
    if (v->has_key && !read_slice(&p, &len, &v->key, &v->key_len)) return false;
    if (!read_slice(&p, &len, &v->value, &v->value_len)) return false;
    if (!read_flag(&p, &len, &v->has_timestamp)) return false;
    if (v->has_timestamp) {
        if (!read_varint(&p, &len, &ts)) return false;
        v->timestamp = (int64_t)(ts >> 1) ^ -(int64_t)(ts & 1);
    }
    if (!read_varint(&p, &len, &count)) return false;
    v->header_count = (size_t)count;
    v->headers = p;
    for (uint64_t i = 0; i < count; i++) {
        const uint8_t *skip;
        size_t n;
        if (!read_slice(&p, &len, &skip, &n) || !read_slice(&p, &len, &skip, &n)) return false;
    }
    v->headers_len = (size_t)(p - v->headers);
    r->ptr = p;
    r->len = len;
    r->left--;
    return true;
}

weir_headers_t weir_headers(const weir_view_t *v) {
    weir_headers_t h = {v->headers, v->headers_len, v->header_count};
    return h;
}

bool weir_header_next(weir_headers_t *h, const uint8_t **name, size_t *name_len,
                      const uint8_t **value, size_t *value_len) {
    if (h->left == 0) return false;
    if (!read_slice(&h->ptr, &h->len, name, name_len)) return false;
    if (!read_slice(&h->ptr, &h->len, value, value_len)) return false;
    h->left--;
    return true;
}

/* Bytes the record count takes at the front: a varint padded to five, filled in by take. */
#define WEIR_COUNT_SLOT 5

static void put_varint(weir_buf_t *b, uint64_t v) {
    uint8_t out[10];
    size_t n = 0;
    while (v >= 0x80) {
        out[n++] = (uint8_t)v | 0x80;
        v >>= 7;
    }
    out[n++] = (uint8_t)v;
    weir_buf_put(b, out, n);
}

static void put_slice(weir_buf_t *b, const void *data, size_t n) {
    put_varint(b, n);
    weir_buf_put(b, data, n);
}

static void begin_record(weir_batch_t *b) {
    if (b->buf.len == 0) {
        uint8_t slot[WEIR_COUNT_SLOT] = {0};
        weir_buf_put(&b->buf, slot, sizeof slot);
    }
    b->count++;
}

static void put_key(weir_batch_t *b, bool has, const void *key, size_t key_len) {
    uint8_t flag = has ? 1 : 0;
    weir_buf_put(&b->buf, &flag, 1);
    if (has) put_slice(&b->buf, key, key_len);
}

static void put_timestamp(weir_batch_t *b, const int64_t *ts) {
    uint8_t flag = ts ? 1 : 0;
    weir_buf_put(&b->buf, &flag, 1);
    if (ts) put_varint(&b->buf, ((uint64_t)*ts << 1) ^ (uint64_t)(*ts >> 63));
}

void weir_batch_push(weir_batch_t *b, const void *key, size_t key_len, const void *value,
                     size_t value_len, const int64_t *timestamp) {
    begin_record(b);
    put_key(b, key != NULL, key, key_len);
    put_slice(&b->buf, value, value_len);
    put_timestamp(b, timestamp);
    put_varint(&b->buf, 0);
}

void weir_batch_push_like(weir_batch_t *b, const weir_view_t *v, const void *value,
                          size_t value_len) {
    begin_record(b);
    put_key(b, v->has_key, v->key, v->key_len);
    put_slice(&b->buf, value, value_len);
    put_timestamp(b, v->has_timestamp ? &v->timestamp : NULL);
    put_varint(&b->buf, v->header_count);
    weir_buf_put(&b->buf, v->headers, v->headers_len);
}

void weir_batch_push_view(weir_batch_t *b, const weir_view_t *v) {
    weir_batch_push_like(b, v, v->value, v->value_len);
}

weir_packed_t weir_batch_take(weir_batch_t *b) {
    if (b->buf.len == 0) {
        uint8_t slot[WEIR_COUNT_SLOT] = {0};
        weir_buf_put(&b->buf, slot, sizeof slot);
    }
    for (int i = 0; i < WEIR_COUNT_SLOT; i++) {
        uint8_t bits = (uint8_t)((b->count >> (7 * i)) & 0x7f);
        b->buf.ptr[i] = i < WEIR_COUNT_SLOT - 1 ? (bits | 0x80) : bits;
    }
    b->count = 0;
    weir_bytes_t bytes = weir_buf_take(&b->buf);
    weir_packed_t out = {bytes.ptr, bytes.len};
    return out;
}
#endif

#ifdef WEIR_EVENT_TIME
static void timer_call(uint8_t domain, const void *key, size_t key_len, int64_t ts, bool add) {
    weir_timer_t t;
    memset(&t, 0, sizeof t);
    t.domain = domain;
    if (key) {
        t.key.is_some = true;
        t.key.val.ptr = (uint8_t *)key;
        t.key.val.len = key_len;
    }
    t.timestamp = ts;
    /* Imports borrow their arguments: nothing to free. */
    if (add)
        weir_plugin_timers_register(&t);
    else
        weir_plugin_timers_delete(&t);
}

void weir_register_event_timer(const void *key, size_t key_len, int64_t ts) {
    timer_call(WEIR_PLUGIN_TIMERS_TIME_DOMAIN_EVENT_TIME, key, key_len, ts, true);
}

void weir_register_processing_timer(const void *key, size_t key_len, int64_t ts) {
    timer_call(WEIR_PLUGIN_TIMERS_TIME_DOMAIN_PROCESSING_TIME, key, key_len, ts, true);
}

void weir_delete_event_timer(const void *key, size_t key_len, int64_t ts) {
    timer_call(WEIR_PLUGIN_TIMERS_TIME_DOMAIN_EVENT_TIME, key, key_len, ts, false);
}

int64_t weir_current_watermark(void) {
    return weir_plugin_timers_current_watermark();
}

void weir_emit_late(weir_record_t record) {
    weir_plugin_late_list_record_t list = {&record, 1};
    weir_plugin_late_emit(&list);
    weir_plugin_types_record_free(&record);
}

/* A scope borrowing `name` and `key` (imports borrow their arguments). */
static weir_plugin_keyed_state_scope_t scope_of(const char *name, const void *key, size_t key_len) {
    weir_plugin_keyed_state_scope_t s;
    s.state.ptr = (uint8_t *)name;
    s.state.len = strlen(name);
    s.key.ptr = (uint8_t *)key;
    s.key.len = key_len;
    return s;
}

bool weir_state_get(const char *name, const void *key, size_t key_len, uint8_t **value,
                    size_t *value_len) {
    weir_plugin_keyed_state_scope_t s = scope_of(name, key, key_len);
    weir_bytes_t got;
    if (!weir_plugin_keyed_state_get(&s, &got)) return false;
    /* An empty list's pointer is not the allocator's: hand out one free() takes. */
    if (got.len == 0) got.ptr = malloc(1);
    *value = got.ptr;
    *value_len = got.len;
    return true;
}

void weir_state_set(const char *name, const void *key, size_t key_len, const void *value,
                    size_t value_len) {
    weir_plugin_keyed_state_change_t c;
    c.tag = WEIR_PLUGIN_KEYED_STATE_CHANGE_SET;
    c.val.set.f0 = scope_of(name, key, key_len);
    c.val.set.f1.ptr = (uint8_t *)value;
    c.val.set.f1.len = value_len;
    weir_plugin_keyed_state_list_change_t list = {&c, 1};
    weir_plugin_keyed_state_apply(&list);
}

void weir_state_clear(const char *name, const void *key, size_t key_len) {
    weir_plugin_keyed_state_change_t c;
    c.tag = WEIR_PLUGIN_KEYED_STATE_CHANGE_CLEAR;
    c.val.clear = scope_of(name, key, key_len);
    weir_plugin_keyed_state_list_change_t list = {&c, 1};
    weir_plugin_keyed_state_apply(&list);
}
#endif
