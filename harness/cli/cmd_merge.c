/*
 * cmd_merge — `evalrun merge --db OUT SHARD.db…`: folds shard databases into OUT (see merge.h).
 */
#include <stdio.h>
#include <stdlib.h>

#include "cli/cmd.h"
#include "cli/common_opts.h"
#include "store/merge.h"
#include "store/store.h"

int cmd_merge(int argc, char **argv, const struct cli *cli, struct ev_err *err) {
    static const struct cmd_help help = {
        "merge", "--db OUT SHARD.db...",
        "Folds the databases of a sharded evaluation (COMMAND --shard K/N, one database per\n"
        "shard) into OUT, created if absent. The N shard runs of one evaluation become one\n"
        "run (shard 0/1), 'done' only when every shard was done; grades, examples, models,\n"
        "SAEs and the grader's response cache are copied without duplicates, so merging the\n"
        "same shard twice adds nothing. Shards whose runs differ in configuration (another\n"
        "run's shard) are refused, and then nothing is merged. See docs/cluster.md."};
    int npos = 0;
    int rc = common_opts_parse_only(&help, cli, argc, argv, &npos, err);
    if (rc != EV_OK) return rc;
    if (npos < 1)
        return ev_fail(err, EV_EUSAGE, "merge: name the shard databases to merge "
                                       "(evalrun merge --db OUT SHARD.db...)");

    struct store      *out = NULL;
    struct merge_stats st;
    int                created = !path_exists(cli->db_path);
    if ((rc = store_open(cli->db_path, STORE_CREATE, &out, err)) != EV_OK) return rc;
    rc = merge_databases(out, (const char *const *)(argv + 1), npos, &st, err);
    store_close(out);
    if (rc != EV_OK) {
        if (created) { /* nothing was merged: leave no empty OUT behind */
            char *wal = xasprintf("%s-wal", cli->db_path), *shm = xasprintf("%s-shm", cli->db_path);
            remove(cli->db_path), remove(wal), remove(shm);
            free(wal), free(shm);
        }
        return rc;
    }

    printf("merged %d database%s into %s\n", npos, npos == 1 ? "" : "s", cli->db_path);
    printf("%-16s %10s %10s\n", "table", "read", "new");
    for (int i = 0; i < st.n_tables; i++) {
        if (st.tables[i].read == 0 && st.tables[i].added == 0) continue;
        printf("%-16s %10lld %10lld\n", st.tables[i].name, (long long)st.tables[i].read,
               (long long)st.tables[i].added);
    }
    printf("runs: %lld complete, %lld incomplete\n", (long long)st.runs_done,
           (long long)st.runs_partial);
    if (st.runs_partial > 0)
        ev_info("merge: %lld run%s still miss%s shards; merge again when they are done "
                "(see 'evalrun runs')", (long long)st.runs_partial,
                st.runs_partial == 1 ? "" : "s", st.runs_partial == 1 ? "es" : "");
    return EV_OK;
}
