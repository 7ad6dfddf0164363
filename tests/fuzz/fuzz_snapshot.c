/* libFuzzer target: the snapshot reader (format/snapshot.c, snapshot_v2.c)
 * and every command that reads a snapshot, on arbitrary bytes, as
 * `memtrail report` would read a hostile file.
 *
 * Built only in a fuzz build (meson option `fuzz`, clang): tests/fuzz/run.sh
 * configures one, seeds the corpus with real snapshots (versions 1 and 2),
 * writes a dictionary of the format's magic and record tags (fuzz_dict) and
 * runs this for a fixed time under ASan and UBSan. Besides "no crash, no
 * leak, no undefined behaviour", it checks the reader's contract: a file is
 * either loaded whole, with every index in range and the blocks strictly
 * increasing, or refused with one line "snapshot: NAME: ...". A file the
 * reader loads then goes through every analysis and renderer, by the
 * commands' own entry points: report (each grouping, text and JSON), diff
 * against itself, leaks, cycles and the three exports, their output thrown
 * away. The custom mutator sets each record's CRC after libFuzzer's
 * mutation, so that mutated records reach the decoders behind the check. */
#include <fcntl.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cli.h"
#include "memtrail_format.h"
#include "snapshot.h"

#define NAME "fuzz"

static void check_loaded(const mta_snapshot_t *s)
{
    for (uint64_t i = 1; i < s->nblocks; i++)
        if (s->blocks[i].address <= s->blocks[i - 1].address)
            abort();
    for (uint64_t i = 0; i < s->nblocks; i++)
        if (s->blocks[i].stack >= s->nstacks)
            abort();
    for (uint32_t i = 0; i < s->nstats; i++)
        if (s->stats[i].stack >= s->nstacks)
            abort();
    if (s->has_leaks)
        for (uint64_t i = 0; i < s->nblocks; i++)
            if (s->leak_kind[i] > MTSNAP_LEAK_KIND_MAX)
                abort();
}

/* libFuzzer's entry points and its mutator. */
size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size);
size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed);
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Sets the CRC of every record whose header and bytes are within the file
 * (version 1: of the payload; version 2: of the stored bytes). */
static void fix_crcs(uint8_t *data, size_t size)
{
    mtsnap_file_header_t fh;
    if (size < sizeof(fh))
        return;
    memcpy(&fh, data, sizeof(fh));
    size_t hsize = fh.version == MTSNAP_VERSION_V1 ? sizeof(mtsnap_record_header_t)
                                                   : sizeof(mtsnap_record_header_v2_t);
    size_t off = fh.hdr_size >= sizeof(fh) && fh.hdr_size <= size ? fh.hdr_size : sizeof(fh);
    while (off + hsize <= size) {
        uint32_t tag, crc;
        uint64_t length;
        memcpy(&tag, data + off, 4);
        memcpy(&length, data + off + 8, 8);
        if (length > size - off - hsize)
            return;
        crc = mtsnap_crc32(0, data + off + hsize, (size_t)length);
        memcpy(data + off + 4, &crc, 4);
        off += hsize + (size_t)length;
        if (tag == MTSNAP_TAG_END)
            return;
    }
}

size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed)
{
    (void)seed;
    size = LLVMFuzzerMutate(data, size, max_size);
    fix_crcs(data, size);
    return size;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    int null = open("/dev/null", O_WRONLY);   /* the commands' output */
    if (null < 0 || dup2(null, STDOUT_FILENO) < 0)
        abort();
    close(null);
    return 0;
}

/* Runs command c on the file `path` with the given options. */
static void run(const mta_command_t *c, const char *path, const char *a, const char *b,
                const char *d, const char *e)
{
    char *argv[8];
    int argc = 0;
    argv[argc++] = (char *)c->name;
    argv[argc++] = (char *)path;
    const char *opts[] = {a, b, d, e};
    for (int i = 0; i < 4 && opts[i]; i++)
        argv[argc++] = (char *)opts[i];
    argv[argc] = NULL;
    optind = 0;   /* getopt starts afresh */
    int rc = c->main(argc, argv);
    fflush(stdout);
    if (rc < MTA_EXIT_OK || rc > MTA_EXIT_USAGE)
        abort();
}

static void run_commands(const uint8_t *data, size_t size)
{
    static const char *const groupings[] = {"stack", "function", "line", "file", "module"};
    char path[64];
    int fd = memfd_create("fuzz.mtsnap", MFD_CLOEXEC);
    if (fd < 0 || write(fd, data, size) != (ssize_t)size)
        abort();
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    for (size_t g = 0; g < sizeof(groupings) / sizeof(groupings[0]); g++) {
        run(&mta_cmd_report, path, "--top", "0", "--group-by", groupings[g]);
        run(&mta_cmd_diff, path, path, "--group-by", groupings[g], NULL);
    }
    run(&mta_cmd_report, path, "--format", "json", "--fail-above", "1");
    run(&mta_cmd_diff, path, path, "--format", "json", NULL);
    run(&mta_cmd_leaks, path, "--top", "0", NULL, NULL);
    run(&mta_cmd_leaks, path, "--format", "json", NULL, NULL);
    run(&mta_cmd_cycles, path, "--all", "--top", "0", NULL);
    run(&mta_cmd_cycles, path, "--all", "--format", "json", NULL);
    run(&mta_cmd_export, path, "--format", "pprof", NULL, NULL);
    run(&mta_cmd_export, path, "--format", "collapsed", NULL, NULL);
    run(&mta_cmd_export, path, "--format", "speedscope", NULL, NULL);
    close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mta_snapshot_t *s = NULL;
    char err[512] = "";
    int r = mta_snapshot_parse(data, size, NAME, &s, err, sizeof(err));
    if (r == 0) {
        if (!s)
            abort();
        check_loaded(s);
        mta_snapshot_free(s);
        run_commands(data, size);
        return 0;
    }
    /* refused: a negative errno, nothing returned, one line naming the file */
    if (r > 0 || s || strncmp(err, "snapshot: " NAME ": ", sizeof("snapshot: " NAME ": ") - 1) != 0 ||
        strchr(err, '\n'))
        abort();
    return 0;
}
