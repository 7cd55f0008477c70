/* exit_codes.h — what hordec's exit status means (README.md, "Running as a service", lists them too).
 *
 * A supervisor (systemd, HordeC.Daemon) can tell a mistake that a restart will not fix (usage: a bad flag or
 * config file) from a start-up failure that may pass (a port in use, no epmd yet) and from a failure while
 * running. contrib/hordec.service does not restart on HORDEC_EXIT_USAGE. */
#ifndef HORDEC_DAEMON_EXIT_CODES_H
#define HORDEC_DAEMON_EXIT_CODES_H

enum {
    HORDEC_EXIT_OK = 0,      /* stopped as asked: SIGTERM, SIGINT, stdin closed with --watch-stdin; or --help */
    HORDEC_EXIT_STARTUP = 1, /* could not start: listen, epmd, a replica, the metrics port, out of memory */
    HORDEC_EXIT_USAGE = 2,   /* a bad command line or config file (the message names the option and line) */
    HORDEC_EXIT_RUNTIME = 3, /* the event loop failed while running */
};

#endif
