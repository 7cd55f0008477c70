/* config_file.h — `hordec --config FILE`: options in a file, one per line, fed to the same parser as the command
 * line.
 *
 * A file is read into argv-like elements, one per option ("--name=value", or "--name" for an option without a
 * value), checked against the command line's own option table (cli.c), so every option hordec has — including
 * any added later — works in a file with no change here. The format:
 *
 *     # a comment: from '#' at the start of a line or after white space, to the end of the line
 *     name hordec@10.0.0.1          option name (with or without a leading "--"), white space or '=', value
 *     metrics-port = 9568
 *     cookie-file "/etc/hordec/my cookie"   a value in double quotes may hold spaces and '#'; escapes \" \\ \n \t
 *     registry MyApp.Registry:duplicate    repeatable options repeat, as on the command line
 *     watch-stdin                   an option that takes no value stands alone
 *
 * Errors name the file and the line: an unknown option, a missing or unexpected value, an unterminated quote, a
 * file that is not text or is larger than HORDEC_CONFIG_MAX_BYTES, a --config inside a config file (no nesting),
 * and a cookie in a file others may read (it would be no secret). */
#ifndef HORDEC_DAEMON_CONFIG_FILE_H
#define HORDEC_DAEMON_CONFIG_FILE_H

#include <stdbool.h>
#include <stddef.h>

#define HORDEC_CONFIG_MAX_BYTES (1u << 20)

/* An argument vector built from the command line and config files. argv[argc] is NULL. Elements read from a
 * file are owned and have an origin ("FILE:LINE"); elements of the command line are borrowed (origin NULL). */
typedef struct hordec_args {
    int argc;
    char **argv;
    char **origin;
    int cap;
} hordec_args;

/* True if argv holds a --config option (before any "--"). */
bool hordec_config_wanted(int argc, char **argv);
/* Copies argv into *out (empty on entry: zero it) with every "--config FILE" / "--config=FILE" replaced by the
 * options in FILE. HC_OK, or an HC_E* code with a message naming the file (and line) in err; *out is then empty. */
int hordec_config_expand(int argc, char **argv, hordec_args *out, char *err, size_t errlen);
/* Appends the options of the config file at `path` to *a. HC_OK, or an HC_E* code with a message in err (then
 * *a holds what it held before). */
int hordec_config_read(const char *path, hordec_args *a, char *err, size_t errlen);
/* "FILE:LINE" for an element of a that came from a config file (compared by address), or NULL. */
const char *hordec_args_origin(const hordec_args *a, const char *elem);
/* Frees what *a owns and empties it (NULL is fine). */
void hordec_args_free(hordec_args *a);

#endif
