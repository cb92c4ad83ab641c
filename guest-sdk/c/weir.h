/*
 * weir guest support for C, over the bindings `wit-bindgen c` generates from wit/weir.wit.
 *
 * The build names the world: -DWEIR_WORLD=operator_plugin -DWEIR_WORLD_H='"operator_plugin.h"'
 * (or source_plugin / sink_plugin), the C prefix and header `wit-bindgen c` generated. This header gives plugin code
 * what the generated bindings leave out: records built from bytes, error strings the host can
 * report, config lookup, logging, and a byte buffer for snapshots.
 *
 * Ownership (the canonical ABI's, through the generated code): arguments handed to an export are
 * the export's to free; what it returns, including an error string, is freed by the generated
 * post-return code. Every helper here allocates with malloc, as that code expects.
 */
#ifndef WEIR_H
#define WEIR_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WEIR_CAT_(a, b) a##b
#define WEIR_CAT(a, b) WEIR_CAT_(a, b)

#if !defined(WEIR_WORLD) || !defined(WEIR_WORLD_H)
#error "define WEIR_WORLD (e.g. operator_plugin) and WEIR_WORLD_H (e.g. \"operator_plugin.h\")"
#endif
#include WEIR_WORLD_H

typedef WEIR_CAT(WEIR_WORLD, _string_t) weir_string_t;
typedef WEIR_CAT(WEIR_WORLD, _list_u8_t) weir_bytes_t;
typedef weir_plugin_types_record_t weir_record_t;
typedef weir_plugin_types_config_t weir_config_t;

/* A record with a copy of `value` and, when `key` is not NULL, of `key`. */
weir_record_t weir_record(const void *key, size_t key_len, const void *value, size_t value_len);

/* Set `err` to a formatted message and return false: `return weir_fail(err, "bad %s", x);` */
bool weir_fail(weir_string_t *err, const char *fmt, ...);

/* The value of `key` in the node's config as a new NUL-terminated string, or NULL. */
char *weir_config_get(const weir_config_t *cfg, const char *key);

/* Write a formatted message to the host's log (level: WEIR_PLUGIN_HOST_LOG_LEVEL_*). */
void weir_log(uint8_t level, const char *fmt, ...);

/* A growable byte buffer for snapshots; `weir_buf_take` hands its bytes to the host. */
typedef struct {
    uint8_t *ptr;
    size_t len, cap;
} weir_buf_t;
void weir_buf_put(weir_buf_t *b, const void *data, size_t n);
void weir_buf_put_u64(weir_buf_t *b, uint64_t v);
weir_bytes_t weir_buf_take(weir_buf_t *b);

/* Reading back what was put: each returns false when the input is too short. */
typedef struct {
    const uint8_t *ptr;
    size_t len;
} weir_reader_t;
bool weir_read_u64(weir_reader_t *r, uint64_t *v);
bool weir_read_bytes(weir_reader_t *r, size_t n, const uint8_t **out);

#ifdef WEIR_PACKED
/*
 * Packed batches (the `packed-*` worlds; build with -DWEIR_PACKED): a whole batch in one byte
 * list, read in place and written into one buffer, with no allocation per record. The format is
 * the Rust SDK's (guest-sdk/batch): postcard of a sequence of records.
 */
typedef weir_plugin_packed_types_packed_batch_t weir_packed_t;

/* One record of a batch being read: pointers into the batch's bytes, valid while it lives. */
typedef struct {
    bool has_key;
    const uint8_t *key;
    size_t key_len;
    const uint8_t *value;
    size_t value_len;
    bool has_timestamp;
    int64_t timestamp; /* ms since the epoch */
    /* The headers, still encoded: read them with weir_header_next. */
    size_t header_count;
    const uint8_t *headers;
    size_t headers_len;
} weir_view_t;

/* Reads the records of a batch the host handed in, in order. */
typedef struct {
    const uint8_t *ptr;
    size_t len;
    uint64_t left;
} weir_batch_reader_t;

/* Start reading `batch` (borrowed: free it when done); false if it is not a packed batch. */
bool weir_batch_read(weir_batch_reader_t *r, const weir_packed_t *batch);
/* Free a batch the host handed in (an export's argument is the export's to free). */
void weir_batch_free(weir_packed_t *batch);
/* The next record into *v: false at the end, or where the bytes stop making sense. */
bool weir_batch_next(weir_batch_reader_t *r, weir_view_t *v);

/* The headers of a record read with weir_batch_next. */
typedef struct {
    const uint8_t *ptr;
    size_t len;
    size_t left;
} weir_headers_t;
weir_headers_t weir_headers(const weir_view_t *v);
/* The next header: its name (UTF-8, not NUL-terminated) and value; false after the last. */
bool weir_header_next(weir_headers_t *h, const uint8_t **name, size_t *name_len,
                      const uint8_t **value, size_t *value_len);

/* A batch being written: zero-initialise it (`weir_batch_t out = {0};`), push, then take. */
typedef struct {
    weir_buf_t buf;
    uint32_t count;
} weir_batch_t;
/* A record with no headers; `key` and `timestamp` may be NULL. */
void weir_batch_push(weir_batch_t *b, const void *key, size_t key_len, const void *value,
                     size_t value_len, const int64_t *timestamp);
/* The record `v` with its value replaced: key, timestamp and headers kept. */
void weir_batch_push_like(weir_batch_t *b, const weir_view_t *v, const void *value,
                          size_t value_len);
/* The record `v` as it is. */
void weir_batch_push_view(weir_batch_t *b, const weir_view_t *v);
/* The batch's bytes, for the host; `b` is empty again. */
weir_packed_t weir_batch_take(weir_batch_t *b);
#endif

#ifdef WEIR_EVENT_TIME
/*
 * Event time, for operators built against wit/v0.2 (weir:plugin@0.2.0; build with
 * -DWEIR_EVENT_TIME). Such an operator also exports `on_timers` (timers whose time came, oldest
 * first) and `finish` (end of input). Timers are kept by the host, in its checkpoints.
 */
typedef weir_plugin_timers_timer_t weir_timer_t;

/* Call `on_timers` once the watermark reaches `ts` (ms); `key` may be NULL. */
void weir_register_event_timer(const void *key, size_t key_len, int64_t ts);
/* Call `on_timers` once the host's wall clock reaches `ts` (ms since the epoch). */
void weir_register_processing_timer(const void *key, size_t key_len, int64_t ts);
/* Forget an event-time timer registered before. */
void weir_delete_event_timer(const void *key, size_t key_len, int64_t ts);
/* The subtask's watermark (INT64_MIN before the first). */
int64_t weir_current_watermark(void);
/* Send a record (taken: do not free it) to the node's `<node>.late` output. */
void weir_emit_late(weir_record_t record);

/*
 * Keyed value state (also wit/v0.2): one value per (state name, key), kept by the host beyond
 * the plugin's memory, checkpointed incrementally, redistributed when the parallelism changes.
 * The key is the record's (the operator sits behind a `hash` edge). Values are opaque bytes;
 * store JSON (a number as its digits, say) so `weir state get` shows them as they are. Unlike
 * the Rust and Python SDKs, C has no cache: every set reaches the host at once.
 */
/* The value of `name` for `key`: true and *value (free() it) / *value_len if it has one. */
bool weir_state_get(const char *name, const void *key, size_t key_len, uint8_t **value,
                    size_t *value_len);
/* Set the value of `name` for `key`. */
void weir_state_set(const char *name, const void *key, size_t key_len, const void *value,
                    size_t value_len);
/* Forget the value of `name` for `key`. */
void weir_state_clear(const char *name, const void *key, size_t key_len);
#endif

#endif
