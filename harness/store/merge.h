/*
 * merge — folds shard databases into one (`evalrun merge --db OUT SHARD.db…`).
 *
 * Included by: store and the wings above it (cluster, graders, evals, cli).
 *
 * A sharded evaluation (`COMMAND --shard K/N`, one SQLite file per shard, never one file
 * shared between machines) leaves N databases; merge_databases() copies their rows into OUT:
 *
 *   - Runs: every input run becomes ONE run in OUT with shard 0/1, found by (kind,
 *     config_hash) the way store_run_begin() finds a run to resume. Convention: the config
 *     JSON that batch commands store never contains the shard (it lives in the shard_k/shard_n
 *     columns), so the N shard runs of one evaluation share one config_hash. (Should a config
 *     hold a top-level "shard", "shard_k" or "shard_n" key anyway, merge drops that key and
 *     hashes the rest.) Each shard run merged is recorded in merge_shards (schema 006); the
 *     merged run is 'done' only when shards 0..N-1 were all merged done, else 'interrupted'
 *     with the missing or unfinished shards named in its error column.
 *   - Mismatched shards are refused: among the inputs' sharded runs (shard_n > 1), all runs
 *     of one kind must have the same configuration, seed and shard count. A shard database
 *     from another evaluation therefore stops the merge before anything is written. A
 *     control run (issue 17.2; "control": {"kind", "of"} in its configuration) is compared
 *     with the other shards of its control kind, and must control the same evaluation (its
 *     control.of is the configuration hash of the kind's other runs): a run and its
 *     controls, sharded alike, merge together into one run each.
 *   - Every other table is copied by the static table merge_tables[] in merge.c: for each,
 *     its natural key (the columns that identify a row across databases), its integer id
 *     column (if other tables reference it) and its foreign keys (column -> table). Ids are
 *     remapped to OUT's; a row whose natural key OUT already holds is not copied again, so
 *     merging the same shard twice adds nothing. Per-run counters (grader_usage) become the
 *     sums over the run's shards when one merge reads all of them. A shard holding rows in a table that
 *     merge_tables[] does not list is refused (adding the table there is the fix), so no
 *     data is silently left behind.
 *   - All or nothing: shards are read into temporary tables first (ATTACH, one at a time, so
 *     there is no limit on their number), checked, then written to OUT in one transaction.
 *
 * Inputs must be evalrun databases at this build's schema version; none may be OUT itself.
 * The inputs are only read.
 */
#ifndef EV_MERGE_H
#define EV_MERGE_H

#include <stdint.h>

#include "store/store.h"
#include "base/util.h"

#define MERGE_MAX_TABLES 32

struct merge_stats {
    int64_t runs_new;      /* merged runs created in OUT */
    int64_t runs_done;     /* merged runs (touched by this merge) now complete */
    int64_t runs_partial;  /* merged runs (touched by this merge) with shards missing/unfinished */
    int     n_tables;
    struct {
        const char *name;  /* static string */
        int64_t     read;  /* rows read from the inputs */
        int64_t     added; /* rows new to OUT */
    } tables[MERGE_MAX_TABLES];
};

/*
 * Merges the n databases in paths into out (opened read-write; created and migrated by the
 * caller). On error nothing is written to out (EV_EFAIL: a bad, foreign or mismatched
 * input, named in err; EV_EUSAGE: an input is OUT itself). stats may be NULL.
 */
int merge_databases(struct store *out, const char *const *paths, int n,
                    struct merge_stats *stats, struct ev_err *err);

#endif
