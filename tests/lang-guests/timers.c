/*
 * Test guest (tests/e2e/event_time.rs): event-time timers and finish in C (built with
 * -DWEIR_EVENT_TIME against wit/v0.2). Every record registers an event-time timer `delay_ms`
 * after its timestamp, keyed by its value; a fired timer gives `fired\t<key>\t<ts>`, the end of
 * input `finish\t<records seen>`. State: the records seen.
 */
#include "weir.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int64_t delay;
static uint64_t seen;

static void empty(exports_weir_plugin_operator_list_record_t *ret) {
    ret->ptr = malloc(1);
    ret->len = 0;
}

bool exports_weir_plugin_operator_open(weir_config_t *cfg, weir_plugin_types_context_t *ctx, weir_string_t *err) {
    (void)err;
    char *d = weir_config_get(cfg, "delay_ms");
    delay = d ? strtoll(d, NULL, 10) : 0;
    free(d);
    weir_plugin_types_config_free(cfg);
    weir_plugin_types_context_free(ctx);
    return true;
}

bool exports_weir_plugin_operator_process(exports_weir_plugin_operator_list_record_t *batch,
                                          exports_weir_plugin_operator_list_record_t *ret,
                                          weir_string_t *err) {
    for (size_t i = 0; i < batch->len; i++) {
        weir_record_t *r = &batch->ptr[i];
        if (!r->timestamp.is_some) {
            exports_weir_plugin_operator_list_record_free(batch);
            return weir_fail(err, "a record without a timestamp");
        }
        weir_register_event_timer(r->value.ptr, r->value.len, r->timestamp.val + delay);
        seen++;
    }
    exports_weir_plugin_operator_list_record_free(batch);
    empty(ret);
    return true;
}

bool exports_weir_plugin_operator_on_timers(exports_weir_plugin_operator_list_timer_t *fired,
                                            exports_weir_plugin_operator_list_record_t *ret,
                                            weir_string_t *err) {
    (void)err;
    ret->ptr = malloc(sizeof(weir_record_t) * (fired->len ? fired->len : 1));
    ret->len = fired->len;
    for (size_t i = 0; i < fired->len; i++) {
        weir_timer_t *t = &fired->ptr[i];
        size_t klen = t->key.is_some ? t->key.val.len : 0;
        char *line = malloc(klen + 48);
        int n = snprintf(line, 16, "fired\t");
        if (klen) memcpy(line + n, t->key.val.ptr, klen);
        n += (int)klen;
        n += snprintf(line + n, 32, "\t%" PRId64, t->timestamp);
        ret->ptr[i] = weir_record(NULL, 0, line, (size_t)n);
        free(line);
    }
    exports_weir_plugin_operator_list_timer_free(fired);
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
    char line[40];
    int n = snprintf(line, sizeof line, "finish\t%" PRIu64, seen);
    ret->ptr = malloc(sizeof(weir_record_t));
    ret->len = 1;
    ret->ptr[0] = weir_record(NULL, 0, line, (size_t)n);
    return true;
}

bool exports_weir_plugin_state_snapshot(weir_bytes_t *ret, weir_string_t *err) {
    (void)err;
    weir_buf_t b = {0};
    weir_buf_put_u64(&b, seen);
    *ret = weir_buf_take(&b);
    return true;
}

bool exports_weir_plugin_state_restore(weir_bytes_t *state, weir_string_t *err) {
    weir_reader_t r = {state->ptr, state->len};
    uint64_t n;
    bool ok = weir_read_u64(&r, &n);
    free(state->ptr);
    if (!ok) return weir_fail(err, "state too short");
    seen = n;
    return true;
}
