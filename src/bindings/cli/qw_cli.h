/* qw_cli.h - subcommands of the qwasm command-line program, one file each (src/bindings/cli/qw_cli_*.c).
 * Each returns the process exit code: 0 success, 1 failure (message on stderr), 2 usage error. */
#ifndef QW_CLI_H
#define QW_CLI_H

int qw_cli_inspect(int argc, char **argv);    /* qwasm inspect MODEL.onnx [--json] */
int qw_cli_run(int argc, char **argv);        /* qwasm run MODEL_DIR [options] */
int qw_cli_tokenize(int argc, char **argv);   /* qwasm tokenize MODEL_DIR TEXT [--json] */
int qw_cli_detokenize(int argc, char **argv); /* qwasm detokenize MODEL_DIR IDS [--json] */

#endif
