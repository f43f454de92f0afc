/* The `lumen` host: the standalone `lua` interpreter with the lumen module
 * preloaded (and bound to the global `lm`). Same options: a script with its
 * arguments in `arg`, -e, -l, -i, -v, - for stdin; a bare `lumen` opens the
 * REPL. Ctrl-C stops a running chunk through a debug hook, so a long training
 * loop stops cleanly back at the prompt. */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#ifdef LUMEN_USE_READLINE
#include <readline/history.h>
#include <readline/readline.h>
#endif

#include "l_common.h"
#include "lm_blas_kernel.h"
#include "lm_dist.h"

#define PROMPT "lumen> "
#define PROMPT_MORE "   >> "
#define EOF_MARK "<eof>"
#define HISTORY_LINES 2000

static const char *progname = "lumen";
static lua_State *global_L;

/* ---- interruption (as in lua.c: a hook set from the signal handler) ----------------------- */

static void stop_hook(lua_State *L, lua_Debug *ar) {
    (void)ar;
    lua_sethook(L, NULL, 0, 0);
    luaL_error(L, "interrupted!");
}

static void on_sigint(int sig) {
    signal(sig, SIG_DFL); /* a second Ctrl-C kills the process */
    lua_sethook(global_L, stop_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
}

static void print_error(const char *msg) {
    if (progname) /* NULL in the REPL, where a message stands alone */
        fprintf(stderr, "%s: %s\n", progname, msg);
    else
        fprintf(stderr, "%s\n", msg);
    fflush(stderr);
}

static int report(lua_State *L, int status) {
    if (status != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        if (!msg) msg = "(error object is not a string)";
        if (lm_dist_active() && lm_dist_size() > 1) {
            /* under mpirun the other ranks would wait for this one in their
             * next collective: end the whole job, naming the rank */
            fprintf(stderr, "rank %d: %s\n", lm_dist_rank(), msg);
            fflush(stderr);
            lm_dist_abort(1);
        }
        print_error(msg);
        lua_pop(L, 1);
    }
    return status;
}

static int traceback(lua_State *L) {
    const char *msg = lua_tostring(L, 1);
    if (msg == NULL) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) return 1;
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    /* an error rethrown by a container (nn.Sequential) left the traceback of
     * where it happened: print that one, not the rethrow's */
    if (lua_getfield(L, LUA_REGISTRYINDEX, "lumen.error_traceback") == LUA_TTABLE) {
        lua_getfield(L, -1, "message");
        bool same = lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), msg) == 0;
        lua_pop(L, 1);
        if (same && lua_getfield(L, -1, "traceback") == LUA_TSTRING) return 1;
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

static int docall(lua_State *L, int narg, int nres) {
    int base = lua_gettop(L) - narg;
    lua_pushcfunction(L, traceback);
    lua_insert(L, base);
    global_L = L;
    signal(SIGINT, on_sigint);
    int status = lua_pcall(L, narg, nres, base);
    signal(SIGINT, SIG_DFL);
    lua_remove(L, base);
    return status;
}

static int dochunk(lua_State *L, int status) {
    if (status == LUA_OK) status = docall(L, 0, 0);
    return report(L, status);
}

static int dostring(lua_State *L, const char *s, const char *name) {
    return dochunk(L, luaL_loadbuffer(L, s, strlen(s), name));
}

/* -l mod or -l g=mod (as lua 5.4.4): require mod into the global g (mod). */
static int dolibrary(lua_State *L, const char *spec) {
    const char *eq = strchr(spec, '=');
    const char *mod = eq ? eq + 1 : spec;
    lua_getglobal(L, "require");
    lua_pushstring(L, mod);
    int status = docall(L, 1, 1);
    if (status == LUA_OK) {
        if (eq)
            lua_pushlstring(L, spec, (size_t)(eq - spec));
        else
            lua_pushstring(L, mod);
        lua_insert(L, -2);
        lua_setglobal(L, lua_tostring(L, -2));
        lua_pop(L, 1);
    }
    return report(L, status);
}

/* LUA_INIT_5_4 or LUA_INIT: a chunk, or @file, run before the options (as lua does). */
static int handle_luainit(lua_State *L) {
    const char *name = "=LUA_INIT_5_4";
    const char *init = getenv(name + 1);
    if (!init) {
        name = "=LUA_INIT";
        init = getenv(name + 1);
    }
    if (!init) return LUA_OK;
    if (init[0] == '@') return dochunk(L, luaL_loadfile(L, init + 1));
    return dostring(L, init, name);
}

/* arg table: script name at 0, its arguments at 1.., options before at negatives */
static void create_arg_table(lua_State *L, char **argv, int argc, int script) {
    lua_createtable(L, argc - script - 1, script + 1);
    for (int i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i - script);
    }
    lua_setglobal(L, "arg");
}

static int handle_script(lua_State *L, char **argv, int script, int argc) {
    const char *fname = argv[script];
    if (strcmp(fname, "-") == 0 && strcmp(argv[script - 1], "--") != 0) fname = NULL; /* stdin */
    int status = luaL_loadfile(L, fname);
    if (status == LUA_OK) {
        int n = argc - script - 1;
        luaL_checkstack(L, n + 3, "too many arguments to script");
        for (int i = script + 1; i < argc; i++) lua_pushstring(L, argv[i]);
        status = docall(L, n, LUA_MULTRET);
    }
    return report(L, status);
}

/* ---- REPL
 * ----------------------------------------------------------------------------------------- */

static char *read_line(const char *prompt) {
#ifdef LUMEN_USE_READLINE
    return readline(prompt);
#else
    static char buf[4096];
    fputs(prompt, stdout);
    fflush(stdout);
    if (!fgets(buf, sizeof buf, stdin)) return NULL;
    size_t n = strlen(buf);
    if (n && buf[n - 1] == '\n') buf[n - 1] = 0;
    char *copy = malloc(strlen(buf) + 1);
    if (copy) strcpy(copy, buf);
    return copy;
#endif
}

static char history_path[1024];

#ifdef LUMEN_USE_READLINE
/* ---- tab completion: lumen.repl.complete(line before the cursor) --------------------------------
 */

static char **completions; /* NULL-terminated, malloc'ed; handed to readline one by one */
static int completion_next;

static void clear_completions(void) {
    if (!completions) return;
    for (int i = 0; completions[i]; i++) free(completions[i]);
    free(completions);
    completions = NULL;
}

static int call_complete(lua_State *L) {
    lua_getglobal(L, "require");
    lua_pushliteral(L, "lumen.repl");
    lua_call(L, 1, 1);
    lua_getfield(L, -1, "complete");
    lua_pushvalue(L, 1);
    lua_call(L, 1, 2);
    return 2;
}

/* Asks the Lua side; on any error there are simply no completions. */
static void compute_completions(void) {
    clear_completions();
    lua_State *L = global_L;
    int top = lua_gettop(L);
    lua_pushcfunction(L, call_complete);
    lua_pushlstring(L, rl_line_buffer, (size_t)rl_point);
    if (lua_pcall(L, 1, 2, 0) == LUA_OK && lua_istable(L, -2)) {
        lua_Integer n = luaL_len(L, -2);
        completions = calloc((size_t)n + 1, sizeof *completions);
        for (lua_Integer i = 0; completions && i < n; i++) {
            lua_geti(L, -2, i + 1);
            const char *c = lua_tostring(L, -1);
            completions[i] = strdup(c ? c : "");
            lua_pop(L, 1);
        }
        const char *append = lua_tostring(L, -1);
        rl_completion_append_character = append && append[0] ? append[0] : '\0';
    }
    lua_settop(L, top);
}

static char *completion_generator(const char *text, int state) {
    (void)text; /* the Lua side matched the word already */
    if (state == 0) {
        compute_completions();
        completion_next = 0;
    }
    if (!completions || !completions[completion_next]) return NULL;
    return strdup(completions[completion_next++]);
}

static char **attempt_completion(const char *text, int start, int end) {
    (void)start;
    (void)end;
    rl_attempted_completion_over = 1; /* never fall back to file names */
    return rl_completion_matches(text, completion_generator);
}

static void setup_completion(void) {
    rl_readline_name = "lumen";
    /* '.' and ':' end a word, so `lm.nn.Li` completes `Li` in the context `lm.nn` */
    rl_basic_word_break_characters = " \t\n\"\\'`@$><=;|&{(}[]),.:+-*/%^~#";
    rl_attempted_completion_function = attempt_completion;
}
#endif

static void add_history_line(const char *line) {
#ifdef LUMEN_USE_READLINE
    if (line[0]) {
        add_history(line);
        if (history_path[0]) append_history(1, history_path);
    }
#else
    (void)line;
#endif
}

static int incomplete(lua_State *L, int status) {
    if (status == LUA_ERRSYNTAX) {
        size_t lmsg;
        const char *msg = lua_tolstring(L, -1, &lmsg);
        size_t lmark = sizeof(EOF_MARK) - 1;
        if (lmsg >= lmark && strcmp(msg + lmsg - lmark, EOF_MARK) == 0) {
            lua_pop(L, 1);
            return 1;
        }
    }
    return 0;
}

/* Reads one statement (several lines when incomplete); leaves a compiled chunk. */
static int load_statement(lua_State *L) {
    lua_settop(L, 0);
    char *line = read_line(PROMPT);
    if (!line) return -1;
    /* "=expr" prints expr, as in lua's REPL */
    if (line[0] == '=')
        lua_pushfstring(L, "return %s", line + 1);
    else
        lua_pushstring(L, line);
    free(line);
    const char *text = lua_tostring(L, 1);
    /* first try as an expression whose value gets printed */
    const char *retline = lua_pushfstring(L, "return %s;", text);
    int status = luaL_loadbuffer(L, retline, strlen(retline), "=stdin");
    if (status == LUA_OK) {
        lua_remove(L, -2);
        add_history_line(text);
        lua_remove(L, 1);
        return status;
    }
    lua_pop(L, 2);
    for (;;) {
        size_t len;
        const char *code = lua_tolstring(L, 1, &len);
        status = luaL_loadbuffer(L, code, len, "=stdin");
        if (!incomplete(L, status)) break;
        char *more = read_line(PROMPT_MORE);
        if (!more)
            return -1; /* end of input inside a statement: it is dropped, as the session ends */
        lua_pushliteral(L, "\n");
        lua_pushstring(L, more);
        free(more);
        lua_concat(L, 3);
        lua_insert(L, 1);
        lua_settop(L, 1);
    }
    add_history_line(lua_tostring(L, 1));
    lua_remove(L, 1);
    return status;
}

static void print_results(lua_State *L) {
    int n = lua_gettop(L);
    if (n == 0) return;
    luaL_checkstack(L, LUA_MINSTACK, "too many results to print");
    lua_getglobal(L, "print");
    lua_insert(L, 1);
    if (lua_pcall(L, n, 0, 0) != LUA_OK)
        print_error(lua_pushfstring(L, "error calling 'print' (%s)", lua_tostring(L, -1)));
}

/* An error in the REPL: the message and the traceback without the frames
 * every statement has (the chunk itself and the C call into it). */
static void print_repl_error(const char *msg) {
    if (!msg) msg = "(error object is not a string)";
    size_t n = strlen(msg);
    static const char *const tails[] = {"\n\t[C]: in ?", "\n\tstdin:1: in main chunk"};
    for (int k = 0; k < 2; k++) {
        size_t t = strlen(tails[k]);
        if (n >= t && memcmp(msg + n - t, tails[k], t) == 0) n -= t;
    }
    static const char *const bare = "\nstack traceback:";
    size_t b = strlen(bare);
    if (n >= b && memcmp(msg + n - b, bare, b) == 0) n -= b; /* nothing left of it */
    fprintf(stderr, "%.*s\n", (int)n, msg);
    fflush(stderr);
}

static void repl(lua_State *L) {
#ifdef LUMEN_USE_READLINE
    const char *home = getenv("HOME");
    if (home && !getenv("LUMEN_NO_HISTORY")) {
        snprintf(history_path, sizeof history_path, "%s/.lumen_history", home);
        FILE *f = fopen(history_path, "a"); /* make sure it exists */
        if (f) fclose(f);
        history_truncate_file(history_path, HISTORY_LINES); /* the newest lines only */
        read_history(history_path);
    }
    global_L = L;
    setup_completion();
#endif
    const char *old = progname;
    progname = NULL;
    int status;
    while ((status = load_statement(L)) != -1) {
        if (status == LUA_OK) status = docall(L, 0, LUA_MULTRET);
        if (status == LUA_OK)
            print_results(L);
        else {
            print_repl_error(lua_tostring(L, -1));
        }
        lua_settop(L, 0);
    }
    lua_settop(L, 0);
    fputs("\n", stdout);
    progname = old;
#ifdef LUMEN_USE_READLINE
    clear_completions();
#endif
}

/* ---- main
 * ------------------------------------------------------------------------------------------ */

static void print_usage(const char *bad) {
    if (bad[1] == 'e' || bad[1] == 'l')
        fprintf(stderr, "%s: '%s' needs argument\n", progname, bad);
    else
        fprintf(stderr, "%s: unrecognized option '%s'\n", progname, bad);
    fprintf(stderr,
            "usage: %s [options] [script [args]]\n"
            "Available options are:\n"
            "  -e stat   execute string 'stat'\n"
            "  -i        enter interactive mode after executing 'script'\n"
            "  -l mod    require library 'mod' into global 'mod'\n"
            "  -l g=mod  require library 'mod' into global 'g'\n"
            "  -v        show version information\n"
            "  -E        ignore environment variables\n"
            "  -W        turn warnings on\n"
            "  --        stop handling options\n"
            "  -         stop handling options and execute stdin\n",
            progname);
}

static void print_version(void) {
    /* native: -march=native, for this machine; portable: LUMEN_NATIVE=OFF, for packages */
    printf("Lumen %s (%s), %s build\n", LUMEN_VERSION, LUA_RELEASE, LUMEN_BUILD_KIND);
    printf("OpenBLAS kernels: %s (%s)\n", lm_blas_corename(), lm_blas_choice());
    fflush(stdout);
}

/* Before OpenBLAS is used: where it settled for generic kernels on a
 * processor with AVX2 or AVX-512 (and the user set no OPENBLAS_CORETYPE),
 * start again with the matching set, which OpenBLAS reads only as it loads;
 * a chosen set that fails its check starts again without it
 * (core/lm_blas_kernel.h). If exec fails, Lumen goes on as it is. */
/* The environment variable `name` as it was (NULL: unset) comes back. */
static void restore_env(const char *name, const char *old) {
    if (old)
        setenv(name, old, 1);
    else
        unsetenv(name);
}

static void choose_blas_kernels(char **argv) {
    const char *plan = lm_blas_reexec_plan();
    if (!plan) return;
    char value[128];
    snprintf(value, sizeof value, "%s", plan);
    bool fallback = !strncmp(value, "fallback:", 9);
    /* started through the dynamic loader (ld.so ./lumen ...), /proc/self/exe
     * is the loader, which would take the script for the program */
    if (getauxval(AT_BASE) == 0) {
        lm_blas_restart_failed(value);
        fprintf(stderr, "lumen: cannot restart under the dynamic loader; %s\n",
                fallback ? "set OPENBLAS_CORETYPE to a kernel set that works"
                         : "start it with OPENBLAS_CORETYPE set for faster products");
        return;
    }
    char *old_core = getenv("OPENBLAS_CORETYPE"), *old_detected = getenv("LUMEN_BLAS_DETECTED");
    old_core = old_core ? strdup(old_core) : NULL;
    old_detected = old_detected ? strdup(old_detected) : NULL;
    if (fallback) {
        setenv("LUMEN_BLAS_KERNEL", value, 1);
        unsetenv("OPENBLAS_CORETYPE");
    } else {
        setenv("LUMEN_BLAS_DETECTED", lm_blas_corename(), 1);
        setenv("OPENBLAS_CORETYPE", value, 1);
        setenv("LUMEN_BLAS_KERNEL", value, 1);
    }
    execv("/proc/self/exe", argv);
    /* exec failed: the kernels that run stay, the environment as it was, the label says so */
    unsetenv("LUMEN_BLAS_KERNEL");
    restore_env("OPENBLAS_CORETYPE", old_core);
    restore_env("LUMEN_BLAS_DETECTED", old_detected);
    free(old_core);
    free(old_detected);
    lm_blas_restart_failed(value);
    if (fallback)
        fprintf(stderr, "lumen: could not restart without the %s kernels: products may be wrong\n",
                value + 9);
}

static int open_lumen(lua_State *L) {
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    lua_pushcfunction(L, lm_lua_open);
    lua_setfield(L, -2, "lumen");
    lua_pop(L, 1);
    lua_getglobal(L, "require");
    lua_pushliteral(L, "lumen");
    int status = docall(L, 1, 1);
    if (status == LUA_OK) {
        lua_getfield(L, -1, "help"); /* help(x) prints the reference entry */
        lua_setglobal(L, "help");
        lua_setglobal(L, "lm");
    }
    return report(L, status);
}

typedef struct {
    int argc;
    char **argv;
    int status;
} main_args;

/* The text of -e or -l at argv[*i]: attached (-eSTAT) or the next argument
 * (not one that starts with '-', as lua); NULL when there is none. */
static const char *option_text(char **argv, int argc, int *i) {
    if (argv[*i][2]) return argv[*i] + 2;
    if (*i + 1 >= argc || argv[*i + 1][0] == '-') return NULL;
    return argv[++*i];
}

static int pmain(lua_State *L) {
    main_args *a = lua_touserdata(L, 1);
    int argc = a->argc;
    char **argv = a->argv;
    bool interactive = false, version = false, ran_e = false, no_env = false, warnings = false;
    int script = 0;
    luaL_checkversion(L);
    /* first pass: validate options, find the script */
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        if (o[0] != '-') {
            script = i;
            break;
        }
        if (!strcmp(o, "--")) {
            if (i + 1 < argc) script = i + 1;
            break;
        }
        if (!strcmp(o, "-")) {
            script = i;
            break;
        }
        if (!strcmp(o, "-i"))
            interactive = version = true;
        else if (!strcmp(o, "-v"))
            version = true;
        else if (!strcmp(o, "-E"))
            no_env = true;
        else if (!strcmp(o, "-W"))
            warnings = true;
        else if ((o[1] == 'e' || o[1] == 'l') && option_text(argv, argc, &i)) {
            if (o[1] == 'e') ran_e = true;
        } else {
            print_usage(o);
            return 0;
        }
    }
    if (no_env) { /* the package library then ignores LUA_PATH and LUA_CPATH */
        lua_pushboolean(L, 1);
        lua_setfield(L, LUA_REGISTRYINDEX, "LUA_NOENV");
    }
    luaL_openlibs(L);
    if (warnings) lua_warning(L, "@on", 0);
    lua_gc(L, LUA_GCRESTART);
    lua_gc(L, LUA_GCGEN, 0, 0);
    if (version) print_version();
    create_arg_table(L, argv, argc, script);
    if (open_lumen(L) != LUA_OK) return 0;
    if (!no_env && handle_luainit(L) != LUA_OK) return 0;
    /* second pass: run -e and -l in order */
    int last = script ? script : argc;
    for (int i = 1; i < last; i++) {
        const char *o = argv[i];
        if (o[0] != '-' || (o[1] != 'e' && o[1] != 'l')) continue;
        const char *text = option_text(argv, argc, &i);
        if (o[1] == 'e' && dostring(L, text, "=(command line)") != LUA_OK) return 0;
        if (o[1] == 'l' && dolibrary(L, text) != LUA_OK) return 0;
    }
    if (script && handle_script(L, argv, script, argc) != LUA_OK) return 0;
    if (interactive) {
        repl(L);
    } else if (!script && !ran_e && !version) {
        if (isatty(0)) {
            print_version();
            repl(L);
        } else {
            if (dochunk(L, luaL_loadfile(L, NULL)) != LUA_OK) return 0;
        }
    }
    a->status = 1;
    return 0;
}

int main(int argc, char **argv) {
    if (argv[0] && argv[0][0]) progname = argv[0];
    choose_blas_kernels(argv);
    lua_State *L = luaL_newstate();
    if (!L) {
        print_error("cannot create state: not enough memory");
        return EXIT_FAILURE;
    }
    main_args a = {argc, argv, 0};
    lua_gc(L, LUA_GCSTOP);
    lua_pushcfunction(L, pmain);
    lua_pushlightuserdata(L, &a);
    int status = lua_pcall(L, 1, 1, 0);
    report(L, status);
    lua_close(L);
    return (status == LUA_OK && a.status) ? EXIT_SUCCESS : EXIT_FAILURE;
}
