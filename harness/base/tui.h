/*
 * tui — the ncursesw screen of `evalrun review` (STYLE rule 28): one function draws the
 * whole screen from one view struct; keys come back as enum tui_key values. No business
 * logic: the caller (cmd_review.c) reads and stores grades through graders/human.h.
 *
 * Included by: every wing (base is the bottom: it includes only base).
 *
 * Invariants: between tui_begin() and tui_end() the terminal is in curses mode; tui_end()
 * restores it and is safe to call more than once; every exit path of the caller must call
 * it. SIGINT, SIGTERM and SIGHUP (a closed terminal, a killed tmux session) are caught while
 * the screen is up: tui_key() then returns TUI_KEY_QUIT, so the caller leaves through its
 * normal path (grades are already stored at each keypress).
 *
 * Activating tokens are highlighted by strength with background colours when the terminal
 * has them, and always marked with ⟦ ⟧ (reverse video for the strongest quarter on a
 * monochrome terminal), so that no highlight depends on colour alone.
 */
#ifndef EV_TUI_H
#define EV_TUI_H

#include "base/util.h"

enum { TUI_MIN_COLS = 60, TUI_MIN_ROWS = 16 };

enum tui_key {
    TUI_KEY_NONE = -1, /* time-out: nothing pressed */
    TUI_KEY_0 = 0, TUI_KEY_1, TUI_KEY_2, TUI_KEY_3,
    TUI_KEY_SKIP,
    TUI_KEY_UNDO,
    TUI_KEY_HELP,
    TUI_KEY_QUIT,
    TUI_KEY_RESIZE,
    TUI_KEY_OTHER,
};

/* What the screen shows; every pointer is borrowed for the duration of tui_draw(). */
struct tui_view {
    const char         *header;      /* "review run 3 as alice" */
    int                 pos, total;  /* item pos (1-based) of total */
    int                 answered;    /* items the rater has answered */
    int                 feature;
    const char         *description; /* NULL: "(no description)" */
    const char         *interval;    /* "interval 3 of 10" or "non-activating" */
    double              activation;
    int                 hide_activation; /* items without one (steering) */
    int                 n_tok;       /* 0: show text */
    const char *const  *pieces;      /* (n_tok) */
    const float        *acts;        /* (n_tok) */
    float               max_act;
    const char         *text;        /* when n_tok is 0 */
    const char         *agreement;   /* a line, or NULL */
    const char         *message;     /* status line, or NULL */
    int                 help;        /* show the help panel */
    int                 done;        /* every item answered */
};

/* Starts the screen on the terminal of stdin/stdout. EV_EFAIL with a clear message when
 * either is not a terminal (a closed or redirected stdin), TERM is unusable, or the terminal
 * is smaller than TUI_MIN_COLS x TUI_MIN_ROWS (the message says both sizes). */
int  tui_begin(struct ev_err *err);
/* Restores the terminal (endwin) and the previous signal handlers; idempotent. */
void tui_end(void);
/* The terminal's size now. */
void tui_size(int *cols, int *rows);
/* Redraws everything from v. */
void tui_draw(const struct tui_view *v);
/* The signal that ended the screen (SIGINT, SIGTERM, SIGHUP), or 0. */
int tui_signal(void);
/* Waits up to timeout_ms for a key. TUI_KEY_QUIT after a caught signal, or when input keeps
 * failing at once (end of file: the terminal went away without a SIGHUP). */
enum tui_key tui_key(int timeout_ms);

#endif
