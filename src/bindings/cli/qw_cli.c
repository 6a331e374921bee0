/* qw_cli.c - the qwasm command-line program: dispatches to the subcommands in qw_cli_*.c. */
#include <stdio.h>
#include <string.h>
#include "qwasm.h"
#include "qw_cli.h"

static int cli_version(int argc, char **argv) {
    (void)argc;
    (void)argv;
    printf("qwasm %s\n", QW_VERSION_STRING);
    return 0;
}

static int cli_info(int argc, char **argv) {
    (void)argc;
    (void)argv;
    printf("%s\n", qw_build_info_json());
    return 0;
}

typedef struct cli_command {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *usage;
} cli_command;

static const cli_command commands[] = {
    {"version", cli_version, "version                      print the version"},
    {"info", cli_info, "info                         build information as JSON (SIMD, threads)"},
    {"run", qw_cli_run, "run MODEL_DIR [options]      generate (--prompt, --prompt-ids, --chat; --help)"},
    {"inspect", qw_cli_inspect, "inspect MODEL.onnx|DIR [--json] what an ONNX file holds (ops, weights, data files)"},
    {"tokenize", qw_cli_tokenize, "tokenize MODEL_DIR TEXT      text -> ids (--json, --file, --batch, --chat-json)"},
    {"detokenize", qw_cli_detokenize, "detokenize MODEL_DIR IDS     ids (comma-separated) -> text (--json, --batch)"},
    /* subcommands join here as their files land */
};

static void usage(FILE *f) {
    fprintf(f, "qwasm %s - Qwen2/Qwen2.5 ONNX decoders on CPU and WebAssembly\n\nusage: qwasm COMMAND ...\n\n",
            QW_VERSION_STRING);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) fprintf(f, "  %s\n", commands[i].usage);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "-V")) return cli_version(0, NULL);
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(cmd, commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "qwasm: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return 2;
}
