/*
 * tui — the review screen with ncursesw (see tui.h). The only file that includes curses.h;
 * the curses state is the one global STYLE rule 18 allows here, plus the caught-signal flag.
 */
#define _XOPEN_SOURCE_EXTENDED 1
#include "base/tui.h"

#include <curses.h>
#include <locale.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <wchar.h>

static volatile sig_atomic_t tui_signalled;
static int                   tui_active, tui_colour;
static int                   fast_errors; /* getch() ERR long before its time-out, in a row */
static SCREEN               *tui_screen;
static struct sigaction      old_int, old_term, old_hup;

static void on_signal(int sig) {
    tui_signalled = sig;
}

int tui_signal(void) { return (int)tui_signalled; }

int tui_begin(struct ev_err *err) {
    if (!isatty(STDIN_FILENO))
        return ev_fail(err, EV_EFAIL, "review needs a terminal: standard input is not one "
                                      "(closed or redirected)");
    if (!isatty(STDOUT_FILENO))
        return ev_fail(err, EV_EFAIL, "review needs a terminal: standard output is not one");
    setlocale(LC_ALL, "");
    tui_screen = newterm(NULL, stdout, stdin);
    if (!tui_screen)
        return ev_fail(err, EV_EFAIL, "review cannot use the terminal (TERM=%s)",
                       getenv("TERM") ? getenv("TERM") : "unset");
    set_term(tui_screen);
    tui_active = 1;
    int rows, cols;
    getmaxyx(stdscr, rows, cols);
    if (cols < TUI_MIN_COLS || rows < TUI_MIN_ROWS) {
        tui_end();
        return ev_fail(err, EV_EFAIL,
                       "terminal too small for review: %dx%d, need at least %dx%d (columns x rows)",
                       cols, rows, TUI_MIN_COLS, TUI_MIN_ROWS);
    }
    cbreak();
    noecho();
    keypad(stdscr, TRUE);
    curs_set(0);
    if (has_colors()) {
        start_color();
        use_default_colors();
        /* activation strength 1..4: light to strong backgrounds */
        init_pair(1, COLOR_BLACK, COLOR_CYAN);
        init_pair(2, COLOR_BLACK, COLOR_GREEN);
        init_pair(3, COLOR_BLACK, COLOR_YELLOW);
        init_pair(4, COLOR_WHITE, COLOR_RED);
        init_pair(5, COLOR_CYAN, -1);
        tui_colour = 1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    sigaction(SIGHUP, &sa, &old_hup);
    tui_signalled = 0;
    return EV_OK;
}

void tui_end(void) {
    if (!tui_active) return;
    tui_active = 0;
    curs_set(1);
    endwin();
    delscreen(tui_screen);
    tui_screen = NULL;
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGHUP, &old_hup, NULL);
}

void tui_size(int *cols, int *rows) {
    int r, c;
    getmaxyx(stdscr, r, c);
    *cols = c;
    *rows = r;
}

/* Display width of a UTF-8 string (control characters count 1: they are shown as '.'). */
static int text_width(const char *s) {
    mbstate_t st;
    memset(&st, 0, sizeof st);
    int w = 0;
    while (*s) {
        wchar_t wc;
        size_t  n = mbrtowc(&wc, s, MB_CUR_MAX, &st);
        if (n == (size_t)-1 || n == (size_t)-2 || n == 0) {
            w++;
            s++;
            memset(&st, 0, sizeof st);
            continue;
        }
        int cw = wcwidth(wc);
        w += cw > 0 ? cw : 1;
        s += n;
    }
    return w;
}

/* Writes s at the cursor, control characters and newlines as visible marks. */
static void put_text(const char *s) {
    for (const char *p = s; *p; p++) {
        if (*p == '\n') addstr("\xe2\x86\xb5"); /* ↵ */
        else if ((unsigned char)*p < 0x20) addch('.');
        else addnstr(p, 1);
    }
}

/* Lays the context out from row y, wrapping at the screen's width; returns the next row. */
static int draw_context(const struct tui_view *v, int y, int cols, int max_y) {
    int x = 2;
    move(y, x);
    if (v->n_tok == 0) {
        /* text: wrapped at spaces to the width, a newline starts a new line */
        const char *t = v->text ? v->text : "";
        size_t      len = strlen(t), start = 0;
        int         per = cols - 4;
        while (start < len && y < max_y) {
            size_t end = start, last_space = 0;
            int    width = 0;
            while (end < len && t[end] != '\n' && width < per) {
                if (t[end] == ' ') last_space = end;
                if (((unsigned char)t[end] & 0xC0) != 0x80) width++;
                end++;
            }
            if (end < len && t[end] != '\n' && last_space > start) end = last_space + 1;
            char *line = xmalloc(end - start + 1);
            memcpy(line, t + start, end - start);
            line[end - start] = 0;
            move(y, 2);
            put_text(line);
            free(line);
            start = end < len && t[end] == '\n' ? end + 1 : end;
            y++;
        }
        return y;
    }
    for (int i = 0; i < v->n_tok && y < max_y; i++) {
        const char *p     = v->pieces[i];
        float       a     = v->acts[i];
        int         level = 0;
        if (a > 0 && v->max_act > 0) {
            level = (int)(4.0f * a / v->max_act + 0.999f);
            level = level < 1 ? 1 : level > 4 ? 4 : level;
        }
        int w = text_width(p) + (level ? 2 : 0);
        if (x + w > cols - 2 && x > 2) {
            y++;
            x = 2;
            if (y >= max_y) break;
            move(y, x);
        }
        if (level) {
            attr_t at = A_BOLD;
            if (tui_colour) at |= COLOR_PAIR(level);
            else if (level >= 3) at |= A_REVERSE;
            else at |= A_UNDERLINE;
            attron(at);
            addstr("\xe2\x9f\xa6"); /* ⟦ */
            put_text(p);
            addstr("\xe2\x9f\xa7"); /* ⟧ */
            attroff(at);
        } else {
            put_text(p);
        }
        x += w;
        if (strchr(p, '\n')) {
            y++;
            x = 2;
            move(y, x);
        }
    }
    return y + 1;
}

void tui_draw(const struct tui_view *v) {
    int cols, rows;
    tui_size(&cols, &rows);
    erase();
    if (cols < TUI_MIN_COLS || rows < TUI_MIN_ROWS) {
        char msg[96];
        snprintf(msg, sizeof msg, "terminal too small: %dx%d, need %dx%d", cols, rows,
                 TUI_MIN_COLS, TUI_MIN_ROWS);
        mvaddnstr(0, 0, msg, cols);
        refresh();
        return;
    }
    attron(A_REVERSE);
    mvhline(0, 0, ' ', cols);
    mvaddnstr(0, 1, v->header ? v->header : "", cols - 24);
    char prog[64];
    snprintf(prog, sizeof prog, "item %d of %d  done %d", v->pos, v->total, v->answered);
    mvaddstr(0, cols - 1 - (int)strlen(prog), prog);
    attroff(A_REVERSE);
    if (v->help) {
        static const char *const lines[] = {
            "Rate how well the description matches the highlighted (activating) text:",
            "",
            "  0   the description is unrelated to the context",
            "  1   loosely related",
            "  2   related, but not exactly what the highlighted text is",
            "  3   the description cleanly identifies the highlighted text",
            "",
            "  s   skip this context            u / <-   undo the last answer",
            "  ?   this help                    q        quit (answers are saved)",
            "",
            "Tokens in \xe2\x9f\xa6 \xe2\x9f\xa7 activate the feature; brighter = stronger.",
            "Steering items: score the Concept or the Fluency, as the line above the text says.",
            "The LLM's score is never shown while you rate.",
            "",
            "Press any key to go back."};
        for (size_t i = 0; i < sizeof lines / sizeof lines[0] && (int)i + 2 < rows; i++)
            mvaddnstr(2 + (int)i, 2, lines[i], cols - 4);
        refresh();
        return;
    }
    if (v->done) {
        mvaddstr(2, 2, "All items are answered. Press u to undo the last one, q to quit.");
    } else {
        char line[160];
        if (v->hide_activation)
            snprintf(line, sizeof line, "feature %d   %s", v->feature, v->interval ? v->interval : "");
        else
            snprintf(line, sizeof line, "feature %d   %s   activation %.3g", v->feature,
                     v->interval ? v->interval : "", v->activation);
        attron(A_BOLD);
        mvaddnstr(2, 2, line, cols - 4);
        attroff(A_BOLD);
        mvaddstr(3, 2, "description: ");
        addnstr(v->description ? v->description : "(no description)", cols - 17);
        mvhline(4, 2, ACS_HLINE, cols - 4);
        draw_context(v, 5, cols, rows - 5);
    }
    if (v->agreement) {
        if (tui_colour) attron(COLOR_PAIR(5));
        mvaddnstr(rows - 4, 2, v->agreement, cols - 4);
        if (tui_colour) attroff(COLOR_PAIR(5));
    }
    if (v->message) mvaddnstr(rows - 3, 2, v->message, cols - 4);
    attron(A_REVERSE);
    mvhline(rows - 1, 0, ' ', cols);
    mvaddnstr(rows - 1, 1, "0-3 score   s skip   u/\xe2\x86\x90 undo   ? help   q quit", cols - 2);
    attroff(A_REVERSE);
    refresh();
}

enum tui_key tui_key(int timeout_ms) {
    if (tui_signalled) return TUI_KEY_QUIT;
    timeout(timeout_ms);
    double t0 = now_seconds();
    int    c  = getch();
    if (tui_signalled) return TUI_KEY_QUIT;
    if (c == ERR && timeout_ms > 20 && now_seconds() - t0 < timeout_ms / 4000.0) {
        if (++fast_errors >= 20) return TUI_KEY_QUIT;
    } else {
        fast_errors = 0;
    }
    switch (c) {
    case ERR: return TUI_KEY_NONE;
    case '0': return TUI_KEY_0;
    case '1': return TUI_KEY_1;
    case '2': return TUI_KEY_2;
    case '3': return TUI_KEY_3;
    case 's': case 'S': return TUI_KEY_SKIP;
    case 'u': case 'U': case KEY_LEFT: case KEY_BACKSPACE: return TUI_KEY_UNDO;
    case '?': case 'h': return TUI_KEY_HELP;
    case 'q': case 'Q': case 4: /* ^D */ return TUI_KEY_QUIT;
    case KEY_RESIZE: return TUI_KEY_RESIZE;
    default: return TUI_KEY_OTHER;
    }
}
