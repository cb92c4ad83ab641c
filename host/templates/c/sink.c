/* {{name}}: a weir sink. Prints every value to stdout (grant it: grants.stdout = true); counts
 * what it wrote (checkpointed state). At-least-once: a replay after a crash prints again. */
#include "weir.h"

#include <stdio.h>

static uint64_t written;

bool exports_weir_plugin_packed_sink_open(weir_config_t *cfg, weir_plugin_types_context_t *ctx, weir_string_t *err) {
    (void)err;
    weir_plugin_types_config_free(cfg);
    weir_plugin_types_context_free(ctx);
    return true;
}

/* A batch arrives packed in one buffer: its records are read in place. */
bool exports_weir_plugin_packed_sink_write(weir_packed_t *batch, weir_string_t *err) {
    weir_batch_reader_t in;
    weir_view_t r;
    if (!weir_batch_read(&in, batch)) return weir_fail(err, "not a packed batch");
    while (weir_batch_next(&in, &r)) {
        printf("%.*s\n", (int)r.value_len, (const char *)r.value);
        written++;
    }
    fflush(stdout);
    weir_batch_free(batch);
    return true;
}

bool exports_weir_plugin_packed_sink_finish(weir_string_t *err) { (void)err; return true; }
bool exports_weir_plugin_packed_sink_prepare(uint64_t id, weir_string_t *err) { (void)id; (void)err; return true; }
bool exports_weir_plugin_packed_sink_commit(uint64_t id, weir_string_t *err) { (void)id; (void)err; return true; }
void exports_weir_plugin_packed_sink_abort(uint64_t id) { (void)id; }

bool exports_weir_plugin_state_snapshot(weir_bytes_t *ret, weir_string_t *err) {
    (void)err;
    weir_buf_t b = {0};
    weir_buf_put_u64(&b, written);
    *ret = weir_buf_take(&b);
    return true;
}

bool exports_weir_plugin_state_restore(weir_bytes_t *state, weir_string_t *err) {
    weir_reader_t r = {state->ptr, state->len};
    bool ok = weir_read_u64(&r, &written);
    {{cworld}}_list_u8_free(state);
    return ok ? true : weir_fail(err, "the stored state is not from this plugin");
}
