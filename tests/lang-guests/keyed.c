/*
 * Test guest (tests/e2e/languages.rs): the word count in C with its counts in keyed value state
 * (built with -DWEIR_EVENT_TIME against wit/v0.2). Words as examples/wordcount-c splits them;
 * each count is stored as its decimal digits (JSON), under state `counts`, keyed by the word.
 */
#include "weir.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void empty(exports_weir_plugin_operator_list_record_t *ret) {
    ret->ptr = malloc(1);
    ret->len = 0;
}

static bool is_word_byte(uint8_t c) {
    return c >= 0x80 || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Add one occurrence of `w` to its keyed count and return the count. */
static unsigned long long bump(const char *w, size_t n) {
    uint8_t *v;
    size_t vlen;
    unsigned long long count = 0;
    if (weir_state_get("counts", w, n, &v, &vlen)) {
        char digits[32] = {0};
        memcpy(digits, v, vlen < sizeof digits - 1 ? vlen : sizeof digits - 1);
        count = strtoull(digits, NULL, 10);
        free(v);
    }
    count++;
    char digits[32];
    int m = snprintf(digits, sizeof digits, "%llu", count);
    weir_state_set("counts", w, n, digits, (size_t)m);
    return count;
}

bool exports_weir_plugin_operator_open(weir_config_t *cfg, weir_plugin_types_context_t *ctx, weir_string_t *err) {
    (void)err;
    weir_plugin_types_config_free(cfg);
    weir_plugin_types_context_free(ctx);
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
            unsigned long long count = bump(word, len);
            char line[1100];
            int m = snprintf(line, sizeof line, "%.*s\t%llu", (int)len, word, count);
            if (out_len == out_cap) out = realloc(out, (out_cap *= 2) * sizeof *out);
            out[out_len++] = weir_record(word, len, line, (size_t)m);
        }
    }
    exports_weir_plugin_operator_list_record_free(batch);
    ret->ptr = out;
    ret->len = out_len;
    return true;
}

bool exports_weir_plugin_operator_on_timers(exports_weir_plugin_operator_list_timer_t *fired,
                                            exports_weir_plugin_operator_list_record_t *ret,
                                            weir_string_t *err) {
    (void)err;
    exports_weir_plugin_operator_list_timer_free(fired);
    empty(ret);
    return true;
}

bool exports_weir_plugin_operator_on_watermark(int64_t ts, exports_weir_plugin_operator_list_record_t *ret, weir_string_t *err) {
    (void)ts;
    (void)err;
    empty(ret);
    return true;
}

bool exports_weir_plugin_operator_finish(exports_weir_plugin_operator_list_record_t *ret, weir_string_t *err) {
    (void)err;
    empty(ret);
    return true;
}

/* Everything is in keyed state: the plugin's own state is empty. */
bool exports_weir_plugin_state_snapshot(weir_bytes_t *ret, weir_string_t *err) {
    (void)err;
    ret->ptr = malloc(1);
    ret->len = 0;
    return true;
}

bool exports_weir_plugin_state_restore(weir_bytes_t *state, weir_string_t *err) {
    (void)err;
    /* An empty list's pointer is not the allocator's. */
    if (state->len) free(state->ptr);
    return true;
}
