/*
 * prompt — grader prompt templates: text files prompts/NAME.txt with {{name}} placeholders
 * (STYLE rule 26: prompt text is never embedded in C).
 *
 * Included by: graders, evals and harness/cli.
 *
 * Invariants:
 *   - A template is immutable once loaded; its hash is the sha256 of the file's bytes, stored
 *     with every grade so that grades from different prompt versions never mix silently.
 *   - Rendering is strict: a placeholder with no value, or a value the template does not use,
 *     fails with a message naming it. Placeholders are {{name}} with name in [a-z0-9_];
 *     anything else between braces is literal text.
 *   - A template may start with a system part: the lines up to a line "---" when the file's
 *     first line is "--- system". The system part takes no placeholders.
 *
 * Untrusted text (corpus windows, generated text, descriptions written by a model) goes
 * through prompt_escape_untrusted() before it is put between the templates' delimiters
 * (<context>…</context> and the like), so that it can neither close a delimiter nor open a
 * new one; activating tokens are marked with ⟦ ⟧ (U+27E6, U+27E7), which escaped text never
 * contains (see docs/graders.md).
 *
 * Ownership: prompt_load() returns a heap object freed with prompt_free(); rendered text is
 * returned in a new string that the caller frees with free().
 */
#ifndef EV_PROMPT_H
#define EV_PROMPT_H

#include "base/util.h"

struct prompt {
    char *name;      /* "specificity" */
    char *path;      /* where it was read from */
    char *system;    /* system part, or NULL */
    char *text;      /* the user-message template */
    char  hash[65];  /* sha256 of the whole file */
};

struct prompt_var {
    const char *name;
    const char *value;
};

/* The templates folder: $EVALRUN_PROMPTS, else prompts/ next to the evalrun build
 * (../prompts or ../../prompts from the executable), else ./prompts. Caller frees. */
char *prompt_default_dir(void);

/* Loads dir/NAME.txt (dir NULL means prompt_default_dir()). NAME is [a-z0-9_-]+. */
int  prompt_load(const char *dir, const char *name, struct prompt **out, struct ev_err *err);
void prompt_free(struct prompt *p);

/* Renders the user-message template with exactly the variables vars[0..n-1]. */
int prompt_render(const struct prompt *p, const struct prompt_var *vars, int n, char **out,
                  struct ev_err *err);

/* The bytes of the user-message template before its first placeholder: the text that every
 * rendering starts with (the whole text when it has none). Templates put their instructions
 * and rubric there, so that the provider can cache that prefix (docs/graders.md). */
size_t prompt_fixed_len(const struct prompt *p);

/* Lists the placeholder names a template uses, in order of first use, into names[] (at most
 * max; borrowed: pointers into a new string *buf that the caller frees). Returns the count. */
int prompt_placeholders(const struct prompt *p, const char **names, int max, char **buf);

/* Makes untrusted text safe to put between the templates' delimiters; caller frees:
 *   - "<" that starts something tag-like ("<x", "</x", "<!") becomes "‹" (U+2039), so no
 *     text can open or close <context>, <description>, … ;
 *   - the token markers ⟦ ⟧ become [ ];
 *   - "{{" becomes "{ {", so the text can never be taken for a placeholder;
 *   - control characters other than tab and newline are dropped; each ill-formed UTF-8
 *     subpart becomes one U+FFFD (base/utf8.h). */
char *prompt_escape_untrusted(const char *text);

/* Builds a context from token pieces (decoded text per token), escaping each and wrapping
 * every run of consecutive marked tokens (marked[i] != 0) in ⟦ ⟧. Caller frees. */
char *prompt_mark_tokens(const char *const *pieces, const int *marked, int n);

#endif
