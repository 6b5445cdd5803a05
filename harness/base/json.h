/*
 * json — the one wrapper around cJSON (STYLE rule 16).
 *
 * Included by: every wing (base is the bottom: it includes only base).
 *
 * Parsed documents are cJSON trees; read them with the json_get_* helpers (which check types
 * and name the key at fault) or cJSON's read-only accessors, and free them with json_free().
 * Only this header includes <cjson/cJSON.h>; include json.h, not cJSON.h.
 */
#ifndef EV_JSON_H
#define EV_JSON_H

#include <cjson/cJSON.h>

#include "base/util.h"

/* Parses text of length n; what names the source in error messages. Caller frees with
 * json_free(). */
int json_parse(const char *text, size_t n, const char *what, cJSON **out, struct ev_err *err);
int json_parse_file(const char *path, cJSON **out, struct ev_err *err);
void json_free(cJSON *j);

/* Typed lookups of obj[key]. Return EV_OK, or EV_EFAIL with "WHAT: KEY ..." in err when the
 * key is missing or of the wrong type. The *_opt forms leave *out untouched and return EV_OK
 * when the key is absent (or null). Strings are borrowed from the tree. */
int json_get_str(const cJSON *obj, const char *key, const char *what, const char **out,
                 struct ev_err *err);
int json_get_long(const cJSON *obj, const char *key, const char *what, long *out,
                  struct ev_err *err);
int json_get_double(const cJSON *obj, const char *key, const char *what, double *out,
                    struct ev_err *err);
int json_get_bool(const cJSON *obj, const char *key, const char *what, int *out,
                  struct ev_err *err);
int json_get_str_opt(const cJSON *obj, const char *key, const char *what, const char **out,
                     struct ev_err *err);
int json_get_long_opt(const cJSON *obj, const char *key, const char *what, long *out,
                      struct ev_err *err);
int json_get_double_opt(const cJSON *obj, const char *key, const char *what, double *out,
                        struct ev_err *err);
int json_get_bool_opt(const cJSON *obj, const char *key, const char *what, int *out,
                      struct ev_err *err);

/* Serialises without whitespace; caller frees with free(). Always valid UTF-8: bytes of a
 * string that are not (a token piece holding part of a character) become U+FFFD. */
char *json_print(const cJSON *j);
/* Serialises indented; caller frees with free(). */
char *json_print_pretty(const cJSON *j);

/* How json_write_file lays the text out. */
enum json_write_flags {
    JSON_WRITE_PRETTY  = 1 << 0, /* indented (json_print_pretty), else one line */
    JSON_WRITE_NEWLINE = 1 << 1, /* a final newline after the text */
};
/* Writes j to path atomically (file_write_atomic: a temporary file in the same folder, renamed
 * over path), so that a reader never sees half a file and an interrupted write leaves the old
 * one. Every JSON file evalrun writes goes through here. */
int json_write_file(const char *path, const cJSON *j, unsigned flags, struct ev_err *err);

#endif
