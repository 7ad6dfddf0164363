/* PLACEHOLDER: replaced by the real `memtrail cycles` command. */
#include "cli.h"
static int cycles_main(int argc, char **argv) { (void)argc; (void)argv; mta_cli_error("cycles", "not built yet"); return MTA_EXIT_USAGE; }
const mta_command_t mta_cmd_cycles = { .name = "cycles", .summary = "(in progress)", .usage = "", .print_usage = 0, .main = cycles_main };
