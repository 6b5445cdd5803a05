/*
 * params — model-family rules and --grader-param overrides on request bodies (see params.h).
 */
#include "graders/params.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"

int params_openai_reasoning(const char *model) {
    if (!model) return 0;
    const char *m = strrchr(model, '/');
    m = m ? m + 1 : model;
    if (m[0] == 'o' && isdigit((unsigned char)m[1])) return 1;
    return strncmp(m, "gpt-5", 5) == 0;
}

static int key_ok(const char *k, size_t n) {
    if (n == 0) return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)k[i]) && k[i] != '_' && k[i] != '-' && k[i] != '.') return 0;
    return 1;
}

int params_parse(const char *const *kv, int n, char *out, size_t n_out, struct ev_err *err) {
    out[0] = '\0';
    if (n <= 0) return EV_OK;
    cJSON *arr = cJSON_CreateArray();
    int    rc = EV_OK;
    for (int i = 0; i < n && rc == EV_OK; i++) {
        const char *eq = strchr(kv[i], '=');
        if (!eq || !key_ok(kv[i], (size_t)(eq - kv[i]))) {
            rc = ev_fail(err, EV_EUSAGE,
                         "--grader-param '%s': expected KEY=VALUE (KEY= removes the field)",
                         kv[i]);
            break;
        }
        cJSON *pair = cJSON_CreateArray();
        char  *key = xasprintf("%.*s", (int)(eq - kv[i]), kv[i]);
        cJSON_AddItemToArray(pair, cJSON_CreateString(key));
        free(key);
        if (eq[1]) {
            /* the whole value must be JSON ("7abc" is the string 7abc, not 7) */
            cJSON *v = cJSON_ParseWithOpts(eq + 1, NULL, 1);
            cJSON_AddItemToArray(pair, v ? v : cJSON_CreateString(eq + 1));
        }
        cJSON_AddItemToArray(arr, pair);
    }
    if (rc == EV_OK) {
        char *s = json_print(arr);
        if (strlen(s) >= n_out)
            rc = ev_fail(err, EV_EUSAGE, "--grader-param: the values are too long together (at "
                                         "most %zu bytes as JSON)", n_out - 1);
        else
            memcpy(out, s, strlen(s) + 1);
        free(s);
    }
    json_free(arr);
    return rc;
}

char *params_apply(enum grader_provider p, const char *model, const char *params, char *body) {
    int reasoning = p == GRADER_PROVIDER_OPENAI && params_openai_reasoning(model);
    if (!reasoning && (!params || !*params)) return body;
    cJSON        *j = NULL, *arr = NULL;
    struct ev_err ignored;
    if (json_parse(body, strlen(body), "request body", &j, &ignored) != EV_OK || !cJSON_IsObject(j)) {
        json_free(j);
        return body;
    }
    if (reasoning) {
        cJSON *mt = cJSON_DetachItemFromObjectCaseSensitive(j, "max_tokens");
        double n = cJSON_IsNumber(mt) ? mt->valuedouble : 512;
        json_free(mt);
        cJSON_DeleteItemFromObjectCaseSensitive(j, "temperature");
        cJSON_AddNumberToObject(j, "max_completion_tokens", n + PARAMS_REASONING_ALLOWANCE);
    }
    if (params && *params &&
        json_parse(params, strlen(params), "--grader-param", &arr, &ignored) != EV_OK)
        arr = NULL;
    const cJSON *pair;
    cJSON_ArrayForEach(pair, arr) {
        const cJSON *k = cJSON_GetArrayItem(pair, 0), *v = cJSON_GetArrayItem(pair, 1);
        if (!cJSON_IsString(k)) continue;
        cJSON_DeleteItemFromObjectCaseSensitive(j, k->valuestring);
        if (v) cJSON_AddItemToObject(j, k->valuestring, cJSON_Duplicate(v, 1));
    }
    json_free(arr);
    char *s = json_print(j);
    json_free(j);
    free(body);
    return s;
}
