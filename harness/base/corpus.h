/*
 * corpus — reading a text corpus: the one reader behind every --corpus (collect, train-sae,
 * sweep, sae-metrics, index, autointerp and the on-demand index of the evaluations).
 *
 * A corpus is one of:
 *   - a plain-text file: one document; handed out in pieces of whole lines of about 2,000
 *     bytes (a line longer than that is one piece), which is how it is tokenized;
 *   - a JSON Lines file (name ending .jsonl, .ndjson or .json, or any file when a text field
 *     is given): one JSON object per line, its string field `text` (or the field named by
 *     --text-field) one document; blank lines are skipped. This is what Hugging Face's
 *     `Dataset.to_json(path)` writes;
 *   - a folder: every file below it (hidden names skipped), in byte order of their paths,
 *     each read by the rules above; archives and columnar files (.parquet, .arrow, .gz, ...)
 *     are refused with a hint to export them with to_json.
 *
 * Refused, with the culprit named (EV_EFAIL): a NUL byte anywhere in what is read (its byte
 * offset in the file), a JSON text holding the escape \u0000 (file:line), a line that is not
 * a JSON object or lacks the string field (file:line, listing the record's fields), a JSON
 * array instead of JSON Lines, an empty folder. A NUL is never a silent end of the text.
 *
 * The reader is lazy: pieces are read as they are asked for, so a caller that needs the first
 * million tokens of a 50 GB folder reads only what those need. corpus_hash() identifies what
 * was handed out so far (the pieces' bytes and document boundaries), whatever the file names.
 *
 * Included by: harness/sae/acts.c (the corpus of every command that reads text), its tests,
 * and harness/cli/common_opts.c (which checks a --corpus before any work).
 *
 * Ownership: struct corpus is opaque (corpus_open / corpus_close). A piece is borrowed and
 * valid until the next corpus_next() or corpus_close().
 */
#ifndef EV_CORPUS_H
#define EV_CORPUS_H

#include <stddef.h>
#include <stdint.h>

#include "base/util.h"

struct corpus;

/* Opens path (a file or a folder). text_field: the JSON Lines field holding the text (NULL:
 * "text"); given, every file is read as JSON Lines. A folder is listed here (errors for
 * refused files come here, before anything is read). Caller frees with corpus_close(). */
int  corpus_open(const char *path, const char *text_field, struct corpus **out,
                 struct ev_err *err);
void corpus_close(struct corpus *c);

/* The next piece of text: 1 with *text and *len set (borrowed; NUL-terminated, and free of NUL
 * bytes) and *doc_start 1 when the piece begins a document other than the first (a JSON
 * Lines record, or a new file of a folder); 0 at the end; EV_EFAIL on bad data. */
int corpus_next(struct corpus *c, const char **text, size_t *len, int *doc_start,
                struct ev_err *err);

/* sha256 (hex) of what corpus_next() has handed out so far. */
void corpus_hash(const struct corpus *c, char hex[65]);
/* What the corpus is, for messages: "plain text", "JSON Lines (field text)", "a folder of N
 * files". Borrowed. */
const char *corpus_kind(const struct corpus *c);
/* Documents handed out so far (a plain-text file counts as one). */
int64_t corpus_n_docs(const struct corpus *c);

#endif
