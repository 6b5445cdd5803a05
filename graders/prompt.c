/*
 * prompt — template loading and strict {{name}} rendering, untrusted-text escaping.
 */
#include "graders/prompt.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/hash.h"
#include "base/utf8.h"

#define MARK_OPEN  "\xe2\x9f\xa6" /* ⟦ U+27E6 */
#define MARK_CLOSE "\xe2\x9f\xa7" /* ⟧ U+27E7 */
#define ANGLE_OPEN "\xe2\x80\xb9" /* ‹ U+2039 */

char *prompt_default_dir(void) {
    /* the templates of the binary's own repository first: they are what its grades expect */
    const char *env = getenv("EVALRUN_PROMPTS");
    if (env && *env) return xstrdup(env);
    char *beside = path_beside_binary("prompts");
    return beside ? beside : xstrdup("prompts");
}

void prompt_free(struct prompt *p) {
    if (!p) return;
    free(p->name);
    free(p->path);
    free(p->system);
    free(p->text);
    free(p);
}

static int name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

int prompt_load(const char *dir, const char *name, struct prompt **out, struct ev_err *err) {
    *out = NULL;
    char *own_dir = NULL, *file = NULL, *path = NULL, *data = NULL;
    int   rc;
    if (!name || !*name) return ev_fail(err, EV_EFAIL, "prompt: empty template name");
    for (const char *c = name; *c; c++)
        if (!name_char(*c) && *c != '-')
            return ev_fail(err, EV_EFAIL, "prompt: bad template name '%s' (want [a-z0-9_-])",
                           name);
    if (!dir) dir = own_dir = prompt_default_dir();
    file = xasprintf("%s.txt", name);
    path = path_join(dir, file);
    size_t len = 0;
    if ((rc = file_read_all(path, &data, &len, err)) != EV_OK) {
        ev_fail(err, EV_EFAIL,
                "prompt template %s cannot be read (set EVALRUN_PROMPTS to the prompts folder)",
                path);
        goto out;
    }
    if (strlen(data) != len) {
        rc = ev_fail(err, EV_EFAIL, "prompt template %s: contains a NUL byte", path);
        goto out;
    }
    struct prompt *p = xcalloc(1, sizeof *p);
    p->name = xstrdup(name);
    p->path = path;
    path = NULL;
    sha256_hex(data, len, p->hash);
    static const char sys_head[] = "--- system\n";
    if (strncmp(data, sys_head, sizeof sys_head - 1) == 0) {
        const char *body = data + sizeof sys_head - 1;
        const char *sep = strstr(body, "\n---\n");
        if (!sep) {
            rc = ev_fail(err, EV_EFAIL,
                         "prompt template %s: '--- system' part has no closing '---' line",
                         p->path);
            prompt_free(p);
            goto out;
        }
        size_t n = (size_t)(sep - body);
        p->system = xmalloc(n + 1);
        memcpy(p->system, body, n);
        p->system[n] = 0;
        p->text = xstrdup(sep + 5);
    } else {
        p->text = data;
        data = NULL;
    }
    *out = p;
    rc = EV_OK;
out:
    free(own_dir);
    free(file);
    free(path);
    free(data);
    return rc;
}

/* If s starts a placeholder {{name}}, returns its name length and sets *total to the whole
 * placeholder length; else 0. */
static size_t placeholder_at(const char *s, size_t *total) {
    if (s[0] != '{' || s[1] != '{') return 0;
    size_t i = 2;
    while (name_char(s[i])) i++;
    if (i == 2 || s[i] != '}' || s[i + 1] != '}') return 0;
    *total = i + 2;
    return i - 2;
}

size_t prompt_fixed_len(const struct prompt *p) {
    for (const char *s = p->text; *s; s++) {
        size_t total;
        if (placeholder_at(s, &total)) return (size_t)(s - p->text);
    }
    return strlen(p->text);
}

int prompt_placeholders(const struct prompt *p, const char **names, int max, char **buf) {
    struct sbuf sb;
    sbuf_init(&sb);
    size_t offs[256];
    int    n = 0;
    for (const char *s = p->text; *s; s++) {
        size_t total, len = placeholder_at(s, &total);
        if (!len) continue;
        int dup = 0;
        for (int i = 0; i < n; i++)
            dup |= strlen(sb.buf + offs[i]) == len && strncmp(sb.buf + offs[i], s + 2, len) == 0;
        if (!dup && n < max && n < 256) {
            offs[n++] = sb.len;
            sbuf_add(&sb, s + 2, len);
            sbuf_add(&sb, "", 1); /* keep the NUL between names */
        }
        s += total - 1;
    }
    *buf = sbuf_detach(&sb);
    for (int i = 0; i < n; i++) names[i] = *buf + offs[i];
    return n;
}

int prompt_render(const struct prompt *p, const struct prompt_var *vars, int n, char **out,
                  struct ev_err *err) {
    *out = NULL;
    int        *used = xcalloc((size_t)(n > 0 ? n : 1), sizeof *used);
    struct sbuf sb;
    int         rc = EV_OK;
    sbuf_init(&sb);
    for (int i = 0; i < n; i++) {
        if (!vars[i].name || !vars[i].value) {
            rc = ev_fail(err, EV_EFAIL, "prompt %s: variable %d has no name or value", p->name,
                         i);
            goto out;
        }
    }
    const char *s = p->text, *lit = s;
    while (*s) {
        size_t total, len = placeholder_at(s, &total);
        if (!len) {
            s++;
            continue;
        }
        sbuf_add(&sb, lit, (size_t)(s - lit));
        int k = -1;
        for (int i = 0; i < n && k < 0; i++)
            if (strlen(vars[i].name) == len && strncmp(vars[i].name, s + 2, len) == 0) k = i;
        if (k < 0) {
            rc = ev_fail(err, EV_EFAIL, "prompt %s: no value for placeholder {{%.*s}} (in %s)",
                         p->name, (int)len, s + 2, p->path);
            goto out;
        }
        sbuf_adds(&sb, vars[k].value);
        used[k] = 1;
        s += total;
        lit = s;
    }
    sbuf_add(&sb, lit, (size_t)(s - lit));
    for (int i = 0; i < n; i++) {
        if (!used[i]) {
            rc = ev_fail(err, EV_EFAIL, "prompt %s: variable '%s' is not used by template %s",
                         p->name, vars[i].name, p->path);
            goto out;
        }
    }
    *out = sbuf_detach(&sb);
out:
    sbuf_release(&sb);
    free(used);
    return rc;
}

static void escape_into(struct sbuf *sb, const char *text) {
    const unsigned char *s = (const unsigned char *)text, *end = s + strlen(text);
    while (*s) {
        if (*s == '<') {
            unsigned char c = s[1] == '/' ? s[2] : s[1];
            int tag = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '!' ||
                      c == '?' || (s[1] == '/');
            sbuf_adds(sb, tag ? ANGLE_OPEN : "<");
            s++;
        } else if (*s == '{' && s[1] == '{') {
            sbuf_adds(sb, "{ ");
            s++;
        } else if (*s < 0x20 && *s != '\n' && *s != '\t') {
            s++;
        } else if (*s == 0x7f) {
            s++;
        } else if (*s < 0x80) {
            sbuf_add(sb, (const char *)s, 1);
            s++;
        } else {
            uint32_t cp;
            size_t   n = utf8_next((const char *)s, (size_t)(end - s), &cp);
            if (cp == UTF8_REPLACEMENT) { /* ill-formed (or U+FFFD itself): one U+FFFD */
                sbuf_adds(sb, "\xef\xbf\xbd");
                s += n;
            } else if (n == 3 && memcmp(s, MARK_OPEN, 3) == 0) {
                sbuf_adds(sb, "[");
                s += 3;
            } else if (n == 3 && memcmp(s, MARK_CLOSE, 3) == 0) {
                sbuf_adds(sb, "]");
                s += 3;
            } else {
                sbuf_add(sb, (const char *)s, (size_t)n);
                s += n;
            }
        }
    }
}

char *prompt_escape_untrusted(const char *text) {
    struct sbuf sb;
    sbuf_init(&sb);
    escape_into(&sb, text ? text : "");
    return sbuf_detach(&sb);
}

char *prompt_mark_tokens(const char *const *pieces, const int *marked, int n) {
    struct sbuf sb;
    sbuf_init(&sb);
    for (int i = 0; i < n; i++) {
        int on = marked && marked[i];
        int prev = i > 0 && marked && marked[i - 1];
        int next = i + 1 < n && marked && marked[i + 1];
        if (on && !prev) sbuf_adds(&sb, MARK_OPEN);
        escape_into(&sb, pieces[i] ? pieces[i] : "");
        if (on && !next) sbuf_adds(&sb, MARK_CLOSE);
    }
    return sbuf_detach(&sb);
}
