/* Unit tests for slurm: shell quoting (checked by a real shell), running a program and
 * capturing its output, the submission record round trip, and the two batch scripts run by
 * bash with a stand-in evalrun that records the arguments it was given. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cluster/slurm.h"

struct fx {
    char dir[64];
};

static int setup(void **state) {
    struct fx *f = xcalloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/evalrun-slurm-unit-XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    *state = f;
    return 0;
}

static int teardown(void **state) {
    struct fx *f = *state;
    char      *cmd = xasprintf("rm -rf %s", f->dir);
    int        rc = system(cmd);
    free(cmd);
    free(f);
    return rc == 0 ? 0 : -1;
}

static void test_quote_through_a_shell(void **state) {
    (void)state;
    static const char *cases[] = {"plain", "two words", "it's", "'", "''", "$HOME `id` \\ \"x\"",
                                  "line\nbreak", "*?[a]", ""};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char       *q = slurm_quote(cases[i]);
        char       *script = xasprintf("printf %%s %s", q);
        const char *argv[] = {"sh", "-c", script, NULL};
        char       *out = NULL, *errt = NULL;
        int         status = -1;
        struct ev_err err;
        assert_int_equal(slurm_exec(argv, &out, &errt, &status, &err), EV_OK);
        assert_int_equal(status, 0);
        assert_string_equal(out, cases[i]);
        free(q), free(script), free(out), free(errt);
    }
}

static void test_exec_captures_and_reports(void **state) {
    (void)state;
    const char   *argv[] = {"sh", "-c", "echo out; echo err >&2; exit 3", NULL};
    char         *out = NULL, *errt = NULL;
    int           status = -1;
    struct ev_err err;
    assert_int_equal(slurm_exec(argv, &out, &errt, &status, &err), EV_OK);
    assert_string_equal(out, "out\n");
    assert_string_equal(errt, "err\n");
    assert_int_equal(status, 3);
    free(out), free(errt);
    const char *missing[] = {"no-such-program-evalrun", NULL};
    assert_int_equal(slurm_exec(missing, NULL, NULL, &status, &err), EV_EFAIL);
    assert_non_null(strstr(err.msg, "cannot run no-such-program-evalrun"));
    assert_non_null(strstr(err.msg, "PATH"));
    assert_true(slurm_is_batch_command("specificity"));
    assert_true(slurm_is_batch_command("train-sae"));
    assert_false(slurm_is_batch_command("runs"));
    assert_false(slurm_is_batch_command("merge"));
}

/* sbatch's answers, from a stand-in sbatch first on PATH. */
static void test_sbatch_answers(void **state) {
    struct fx    *f = *state;
    struct ev_err err;
    char         *bin = path_join(f->dir, "sbatch"), *id = NULL;
    char         *path = xasprintf("%s:%s", f->dir, getenv("PATH"));
    char         *old = xstrdup(getenv("PATH"));
    setenv("PATH", path, 1);
    static const char *ok = "#!/bin/sh\necho \"$@\" > \"$0.args\"\necho '123;cluster'\n";
    assert_int_equal(file_write_atomic(bin, ok, strlen(ok), &err), EV_OK);
    assert_int_equal(chmod(bin, 0755), 0);
    const char *extra[] = {"--array=1,3"};
    assert_int_equal(slurm_sbatch("/x/shards.sbatch", extra, 1, &id, &err), EV_OK);
    assert_string_equal(id, "123");
    free(id);
    char  *args = xasprintf("%s.args", bin), *text = NULL;
    size_t n = 0;
    assert_int_equal(file_read_all(args, &text, &n, &err), EV_OK);
    assert_string_equal(text, "--parsable --array=1,3 /x/shards.sbatch\n");
    free(text);
    static const char *no = "#!/bin/sh\necho 'sbatch: error: Batch job submission failed: "
                            "Invalid partition name specified' >&2\nexit 1\n";
    assert_int_equal(file_write_atomic(bin, no, strlen(no), &err), EV_OK);
    assert_int_equal(chmod(bin, 0755), 0);
    assert_int_equal(slurm_sbatch("/x/shards.sbatch", NULL, 0, &id, &err), EV_EFAIL);
    assert_non_null(strstr(err.msg, "sbatch refused /x/shards.sbatch"));
    assert_non_null(strstr(err.msg, "Invalid partition name specified"));
    setenv("PATH", old, 1);
    free(bin), free(path), free(old), free(args);
}

static void fill(struct slurm_submission *s, const char *dir, int shards) {
    memset(s, 0, sizeof *s);
    s->run = xstrdup("spec4");
    s->dir = xstrdup(dir);
    s->workdir = xstrdup(dir);
    s->evalrun = path_join(dir, "fake-evalrun");
    s->n_command = 3;
    s->command = xcalloc(3, sizeof *s->command);
    s->command[0] = xstrdup("specificity");
    s->command[1] = xstrdup("--features");
    s->command[2] = xstrdup("my 'odd' file.txt");
    s->shards = shards;
    s->partition = xstrdup("debug");
    s->cpus_per_task = 2;
    s->array_job = xstrdup("41");
    s->merge_job = xstrdup("42");
    s->shard_job = xcalloc((size_t)shards, sizeof *s->shard_job);
    for (int k = 0; k < shards; k++) s->shard_job[k] = xasprintf("41_%d", k);
    s->resubmits = 2;
    s->has_base = 1;
    s->submitted_ms = 1700000000123;
}

static void test_submission_round_trip(void **state) {
    struct fx              *f = *state;
    struct slurm_submission a, b;
    struct ev_err           err;
    fill(&a, f->dir, 3);
    assert_int_equal(slurm_submission_save(&a, &err), EV_OK);
    assert_int_equal(slurm_submission_load(f->dir, &b, &err), EV_OK);
    assert_string_equal(b.run, a.run);
    assert_string_equal(b.evalrun, a.evalrun);
    assert_int_equal(b.n_command, 3);
    assert_string_equal(b.command[2], "my 'odd' file.txt");
    assert_int_equal(b.shards, 3);
    assert_string_equal(b.partition, "debug");
    assert_null(b.time_limit);
    assert_int_equal(b.cpus_per_task, 2);
    assert_string_equal(b.shard_job[2], "41_2");
    assert_string_equal(b.merge_job, "42");
    assert_int_equal(b.resubmits, 2);
    assert_int_equal(b.has_base, 1);
    assert_int_equal(b.submitted_ms, a.submitted_ms);
    slurm_submission_release(&b);
    slurm_submission_release(&a);

    /* damaged records are refused with the file named */
    char *path = path_join(f->dir, "submit.json");
    static const char *bad[] = {"{", "{\"format\":\"other\"}",
                                "{\"format\":\"evalrun-submit\",\"version\":2}",
                                "{\"format\":\"evalrun-submit\",\"version\":1,\"run\":\"r\","
                                "\"dir\":\"/d\",\"workdir\":\"/d\",\"evalrun\":\"/e\","
                                "\"command\":[\"specificity\"],\"shards\":2,"
                                "\"shard_jobs\":[\"1_0\"]}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(file_write_atomic(path, bad[i], strlen(bad[i]), &err), EV_OK);
        assert_int_equal(slurm_submission_load(f->dir, &b, &err), EV_EFAIL);
        assert_non_null(strstr(err.msg, "submit.json"));
    }
    free(path);
}

/* Runs a generated script with bash as Slurm would (task K), with a stand-in evalrun that
 * writes its arguments one per line; returns them. */
static char *run_script(struct fx *f, const char *script_text, int k) {
    struct ev_err err;
    char *script = path_join(f->dir, "job.sh"), *args = path_join(f->dir, "args.txt");
    char *fake = path_join(f->dir, "fake-evalrun");
    char *fake_text = xasprintf("#!/bin/sh\nfor a in \"$@\"; do printf '%%s\\n' \"$a\"; done "
                                "> %s\n", args);
    assert_int_equal(file_write_atomic(fake, fake_text, strlen(fake_text), &err), EV_OK);
    assert_int_equal(chmod(fake, 0755), 0);
    assert_int_equal(file_write_atomic(script, script_text, strlen(script_text), &err), EV_OK);
    char *cmd = xasprintf("SLURM_ARRAY_TASK_ID=%d bash %s", k, script);
    assert_int_equal(system(cmd), 0);
    char  *text = NULL;
    size_t n = 0;
    assert_int_equal(file_read_all(args, &text, &n, &err), EV_OK);
    free(script), free(args), free(fake), free(fake_text), free(cmd);
    return text;
}

static void test_scripts_run_the_right_command(void **state) {
    struct fx              *f = *state;
    struct slurm_submission s;
    struct ev_err           err;
    fill(&s, f->dir, 3);
    char *base = path_join(f->dir, "base.db");
    assert_int_equal(file_write_atomic(base, "BASE", 4, &err), EV_OK);

    char *a = slurm_array_script(&s);
    assert_non_null(strstr(a, "#SBATCH --array=0-2\n"));
    assert_non_null(strstr(a, "#SBATCH --partition=debug\n"));
    assert_non_null(strstr(a, "#SBATCH --cpus-per-task=2\n"));
    assert_non_null(strstr(a, "#SBATCH --export=ALL\n"));
    assert_null(strstr(a, "--time"));
    char *got = run_script(f, a, 2);
    char *want = xasprintf("--db\n%s/shard-2.db\nspecificity\n--features\nmy 'odd' file.txt\n"
                           "--shard\n2/3\n", f->dir);
    assert_string_equal(got, want);
    free(got), free(want);
    /* the shard's database started as a copy of base.db; a second start keeps it */
    char *db = path_join(f->dir, "shard-2.db"), *text = NULL;
    size_t n = 0;
    assert_int_equal(file_read_all(db, &text, &n, &err), EV_OK);
    assert_string_equal(text, "BASE");
    free(text);
    assert_int_equal(file_write_atomic(db, "WORK", 4, &err), EV_OK);
    free(run_script(f, a, 2));
    assert_int_equal(file_read_all(db, &text, &n, &err), EV_OK);
    assert_string_equal(text, "WORK");
    free(text);

    char *m = slurm_merge_script(&s);
    assert_null(strstr(m, "--array"));
    got = run_script(f, m, 0);
    want = xasprintf("--db\n%s/merged.db\nmerge\n%s/shard-0.db\n%s/shard-1.db\n%s/shard-2.db\n",
                     f->dir, f->dir, f->dir, f->dir);
    assert_string_equal(got, want);
    free(got), free(want), free(a), free(m), free(db), free(base);
    slurm_submission_release(&s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quote_through_a_shell),
        cmocka_unit_test(test_exec_captures_and_reports),
        cmocka_unit_test_setup_teardown(test_sbatch_answers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_submission_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scripts_run_the_right_command, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
