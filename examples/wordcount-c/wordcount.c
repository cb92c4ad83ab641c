/*
 * Word count in C: the same operator as examples/wordcount, state and all.
 *
 * Words are maximal runs of alphanumeric characters, lowercased; for each word it emits
 * `word<TAB>count` with the running count, keyed by the word. Bytes of multi-byte UTF-8
 * characters count as letters and only ASCII is lowercased (C has no Unicode tables here), which
 * agrees with the other builds for text whose non-ASCII characters are lowercase letters.
 *
 * State: an open-addressing hash table word → count; snapshot = [count u64][len u64, bytes,
 * count u64]... in table order.
 */
#include "weir.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *word; /* NULL: empty slot */
    size_t len;
    uint64_t count;
} slot_t;

static slot_t *table;
static size_t cap, used;

static uint64_t fnv(const char *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)p[i]) * 0x100000001b3ULL;
    return h;
}

static slot_t *find(const char *w, size_t n) {
    size_t i = fnv(w, n) & (cap - 1);
    while (table[i].word && !(table[i].len == n && memcmp(table[i].word, w, n) == 0)) i = (i + 1) & (cap - 1);
    return &table[i];
}

static void grow(void) {
    slot_t *old = table;
    size_t old_cap = cap;
    cap = cap ? cap * 2 : 1024;
    table = calloc(cap, sizeof(slot_t));
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].word) *find(old[i].word, old[i].len) = old[i];
    free(old);
}

/* Add one occurrence of `w` and return its count. */
static uint64_t bump(const char *w, size_t n) {
    if ((used + 1) * 2 > cap) grow();
    slot_t *s = find(w, n);
    if (!s->word) {
        s->word = malloc(n);
        memcpy(s->word, w, n);
        s->len = n;
        used++;
    }
    return ++s->count;
}

static void clear(void) {
    for (size_t i = 0; i < cap; i++) free(table[i].word);
    free(table);
    table = NULL;
    cap = used = 0;
}

static bool is_word_byte(uint8_t c) {
    return c >= 0x80 || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

bool exports_weir_plugin_operator_open(weir_config_t *cfg, weir_plugin_types_context_t *ctx, weir_string_t *err) {
    (void)err;
    weir_plugin_types_config_free(cfg);
    weir_plugin_types_context_free(ctx);
    clear();
    grow();
    return true;
}

bool exports_weir_plugin_operator_process(exports_weir_plugin_operator_list_record_t *batch,
                                          exports_weir_plugin_operator_list_record_t *ret,
                                          weir_string_t *err) {
    (void)err;
    size_t out_cap = 16, out_len = 0;
    weir_record_t *out = malloc(out_cap * sizeof *out);
    char word[1024];
    for (size_t r = 0; r < batch->len; r++) {
        const uint8_t *v = batch->ptr[r].value.ptr;
        size_t n = batch->ptr[r].value.len;
        for (size_t i = 0; i <= n; i++) {
            size_t start = i;
            while (i < n && is_word_byte(v[i])) i++;
            size_t len = i - start;
            if (len == 0) continue;
            if (len > sizeof word) len = sizeof word;
            for (size_t k = 0; k < len; k++) {
                uint8_t c = v[start + k];
                word[k] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
            }
            uint64_t count = bump(word, len);
            char line[1100];
            int m = snprintf(line, sizeof line, "%.*s\t%llu", (int)len, word, (unsigned long long)count);
            if (out_len == out_cap) out = realloc(out, (out_cap *= 2) * sizeof *out);
            out[out_len++] = weir_record(word, len, line, (size_t)m);
        }
    }
    exports_weir_plugin_operator_list_record_free(batch);
    ret->ptr = out;
    ret->len = out_len;
    return true;
}

bool exports_weir_plugin_operator_on_watermark(int64_t ts, exports_weir_plugin_operator_list_record_t *ret, weir_string_t *err) {
    (void)ts;
    (void)err;
    ret->ptr = malloc(1);
    ret->len = 0;
    return true;
}

bool exports_weir_plugin_state_snapshot(weir_bytes_t *ret, weir_string_t *err) {
    (void)err;
    weir_buf_t b = {0};
    weir_buf_put_u64(&b, used);
    for (size_t i = 0; i < cap; i++) {
        if (!table[i].word) continue;
        weir_buf_put_u64(&b, table[i].len);
        weir_buf_put(&b, table[i].word, table[i].len);
        weir_buf_put_u64(&b, table[i].count);
    }
    *ret = weir_buf_take(&b);
    return true;
}

bool exports_weir_plugin_state_restore(weir_bytes_t *state, weir_string_t *err) {
    weir_reader_t r = {state->ptr, state->len};
    uint64_t n, len, count;
    const uint8_t *word;
    bool ok = weir_read_u64(&r, &n);
    clear();
    grow();
    for (uint64_t i = 0; ok && i < n; i++) {
        ok = weir_read_u64(&r, &len) && weir_read_bytes(&r, len, &word) && weir_read_u64(&r, &count);
        if (ok) {
            bump((const char *)word, len);
            find((const char *)word, len)->count = count;
        }
    }
    operator_plugin_list_u8_free(state);
    return ok ? true : weir_fail(err, "the stored state is truncated or not from this plugin");
}
