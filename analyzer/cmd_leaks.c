/* PLACEHOLDER: replaced by the real `memtrail leaks` command. */
#include "cli.h"
static int leaks_main(int argc, char **argv) { (void)argc; (void)argv; mta_cli_error("leaks", "not built yet"); return MTA_EXIT_USAGE; }
const mta_command_t mta_cmd_leaks = { .name = "leaks", .summary = "(in progress)", .usage = "", .print_usage = 0, .main = leaks_main };
