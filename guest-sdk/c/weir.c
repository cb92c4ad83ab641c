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
