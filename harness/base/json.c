/*
 * json — cJSON parsing, typed lookups with clear messages, printing.
 */
#include "base/json.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/utf8.h"

int json_parse(const char *text, size_t n, const char *what, cJSON **out, struct ev_err *err) {
    const char *end = NULL;
    cJSON      *j = cJSON_ParseWithLengthOpts(text, n, &end, 0);
    if (!j && n == 0) return ev_fail(err, EV_EFAIL, "%s: empty (0 bytes), expected JSON", what);
    if (!j) {
        size_t off = end && end >= text ? (size_t)(end - text) : 0;
        return ev_fail(err, EV_EFAIL, "%s: invalid JSON near byte %zu", what, off);
    }
    *out = j;
    return EV_OK;
}

int json_parse_file(const char *path, cJSON **out, struct ev_err *err) {
    char  *text = NULL;
    size_t n = 0;
    int    rc = file_read_all(path, &text, &n, err);
    if (rc == EV_OK) rc = json_parse(text, n, path, out, err);
    free(text);
    return rc;
}

void json_free(cJSON *j) { cJSON_Delete(j); }

static const cJSON *lookup(const cJSON *obj, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return (v && !cJSON_IsNull(v)) ? v : NULL;
}

static int missing(const char *what, const char *key, struct ev_err *err) {
    return ev_fail(err, EV_EFAIL, "%s: missing key \"%s\"", what, key);
}

static int wrong(const char *what, const char *key, const char *type, struct ev_err *err) {
    return ev_fail(err, EV_EFAIL, "%s: key \"%s\" should be %s", what, key, type);
}

int json_get_str_opt(const cJSON *obj, const char *key, const char *what, const char **out,
                     struct ev_err *err) {
    const cJSON *v = lookup(obj, key);
    if (!v) return EV_OK;
    if (!cJSON_IsString(v)) return wrong(what, key, "a string", err);
    *out = v->valuestring;
    return EV_OK;
}

int json_get_double_opt(const cJSON *obj, const char *key, const char *what, double *out,
                        struct ev_err *err) {
    const cJSON *v = lookup(obj, key);
    if (!v) return EV_OK;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) return wrong(what, key, "a number", err);
    *out = v->valuedouble;
    return EV_OK;
}

int json_get_long_opt(const cJSON *obj, const char *key, const char *what, long *out,
                      struct ev_err *err) {
    const cJSON *v = lookup(obj, key);
    if (!v) return EV_OK;
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) ||
        fabs(v->valuedouble) > 9.0e15)
        return wrong(what, key, "an integer", err);
    *out = (long)v->valuedouble;
    return EV_OK;
}

int json_get_bool_opt(const cJSON *obj, const char *key, const char *what, int *out,
                      struct ev_err *err) {
    const cJSON *v = lookup(obj, key);
    if (!v) return EV_OK;
    if (!cJSON_IsBool(v)) return wrong(what, key, "true or false", err);
    *out = cJSON_IsTrue(v);
    return EV_OK;
}

int json_get_str(const cJSON *obj, const char *key, const char *what, const char **out,
                 struct ev_err *err) {
    if (!lookup(obj, key)) return missing(what, key, err);
    return json_get_str_opt(obj, key, what, out, err);
}

int json_get_long(const cJSON *obj, const char *key, const char *what, long *out,
                  struct ev_err *err) {
    if (!lookup(obj, key)) return missing(what, key, err);
    return json_get_long_opt(obj, key, what, out, err);
}

int json_get_double(const cJSON *obj, const char *key, const char *what, double *out,
                    struct ev_err *err) {
    if (!lookup(obj, key)) return missing(what, key, err);
    return json_get_double_opt(obj, key, what, out, err);
}

int json_get_bool(const cJSON *obj, const char *key, const char *what, int *out,
                  struct ev_err *err) {
    if (!lookup(obj, key)) return missing(what, key, err);
    return json_get_bool_opt(obj, key, what, out, err);
}

/* cJSON copies a string's bytes as they are: a token piece holding part of a character
 * would make the whole document invalid JSON (RFC 8259 requires UTF-8). Outside strings
 * the text is ASCII, so repairing the printed text repairs exactly the strings. */
char *json_print(const cJSON *j) {
    char *s = cJSON_PrintUnformatted(j);
    EV_ASSERT(s);
    return utf8_make_valid(s);
}

char *json_print_pretty(const cJSON *j) {
    char *s = cJSON_Print(j);
    EV_ASSERT(s);
    return utf8_make_valid(s);
}

int json_write_file(const char *path, const cJSON *j, unsigned flags, struct ev_err *err) {
    char  *text = flags & JSON_WRITE_PRETTY ? json_print_pretty(j) : json_print(j);
    size_t n = strlen(text);
    if (flags & JSON_WRITE_NEWLINE) {
        text = xrealloc(text, n + 2);
        text[n++] = '\n';
        text[n] = '\0';
    }
    int rc = file_write_atomic(path, text, n, err);
    free(text);
    return rc;
}
