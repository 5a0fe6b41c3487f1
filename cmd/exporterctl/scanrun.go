package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

const scanRunHelp = `Usage: exporterctl scan run --tenant T --provider-id P [flags] -- SCANNER [ARGS...]

Runs the scanner (Prowler: "prowler aws -o /out ..."), then publishes the
files it wrote, as scan publish --wait does, and waits for the exports. It is
the scan engine's side in one command, e.g. for a Kubernetes CronJob.

The scanner's exit codes 0 and 3 (Prowler's "some checks failed") mean done;
any other code, or a scanner that cannot start, ends exporterctl with exit 1
and nothing published. The scanner's standard output and error both go to
exporterctl's standard error (standard output stays the scan id and the
outcomes, or the JSON document with --json). SIGINT and SIGTERM are passed
on to the scanner.

The output folder is --output-dir, else the scanner's own -o/--output-directory
(-o DIR, -o=DIR, --output-directory DIR, --output-directory=DIR), else
"output" (Prowler's default, relative to the working folder). Only the files
the scanner created or changed in it are published, so a folder that still
holds earlier runs' outputs works.

Flags:
  --output-dir DIR      the scanner's output folder (default: from its arguments)
  --tenant, --provider-id, --provider-uid, --provider-type, --scan-id,
  --started-at, --bucket, --wait-timeout
                        as for scan publish (uid and start default to the file names)

Exit codes: 0 every export succeeded (or no integration exports the provider),
4 an export failed, 1 the scanner failed or another error, 2 usage.
`

// prowlerDefaultOutput is Prowler's output folder when it is given none.
const prowlerDefaultOutput = "output"

func runScanRun(ctx context.Context, a *app, args []string) error {
	// Everything after the first "--" is the scanner's, flags included.
	own, scanner := args, []string(nil)
	for i, arg := range args {
		if arg == "--" {
			own, scanner = args[:i], args[i+1:]
			break
		}
	}
	fs := newFlagSet("scan run")
	a.g.register(fs)
	var o scanOptions
	o.register(fs)
	var outputDir string
	fs.StringVar(&outputDir, "output-dir", "", "")
	pos, err := a.parse(fs, "scan run", own)
	if err != nil {
		return err
	}
	if err := noArgs(pos); err != nil {
		return err
	}
	// Parsed first, so that --help and flag mistakes are answered as such.
	if len(scanner) == 0 {
		return usageErrorf("scan run needs the scanner's command after --, e.g. scan run --tenant t --provider-id p -- prowler aws -o /out")
	}
	o.wait = true
	// Flag mistakes are reported before the scanner runs for an hour.
	if err := o.validate(); err != nil {
		return err
	}
	if outputDir == "" {
		outputDir = scannerOutputDir(scanner)
	}

	before, err := snapshot(outputDir)
	if err != nil {
		return err
	}
	code, err := runScanner(ctx, a, scanner)
	if err != nil {
		return err
	}
	if code != 0 && code != 3 {
		return fmt.Errorf("the scanner %s exited with code %d; nothing was published", scanner[0], code)
	}
	if !a.g.json {
		fmt.Fprintf(a.stderr, "exporterctl: the scanner exited with code %d; publishing %s\n", code, outputDir)
	}
	return a.publishFolder(ctx, &o, outputDir, before.changed)
}

// scannerOutputDir finds the output folder in Prowler's arguments.
func scannerOutputDir(args []string) string {
	dir := prowlerDefaultOutput
	for i := 0; i < len(args); i++ {
		arg := args[i]
		for _, flag := range []string{"-o", "--output-directory"} {
			switch {
			case arg == flag && i+1 < len(args):
				dir = args[i+1]
				i++
			case strings.HasPrefix(arg, flag+"="):
				dir = strings.TrimPrefix(arg, flag+"=")
			}
		}
	}
	return dir
}

// fileStamps records the files of a folder before the scanner runs.
type fileStamps map[string]time.Time

// snapshot records the files under dir and their modification times (none
// when dir does not exist yet).
func snapshot(dir string) (fileStamps, error) {
	st := fileStamps{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && path == dir {
			return filepath.SkipDir
		}
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st[path] = fi.ModTime()
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading the output folder %s: %w", dir, err)
	}
	return st, nil
}

// changed reports whether the scanner created or changed path.
func (st fileStamps) changed(path string) bool {
	was, ok := st[path]
	if !ok {
		return true
	}
	fi, err := os.Stat(path)
	return err == nil && !fi.ModTime().Equal(was)
}

// runScanner runs the scanner to its end and returns its exit code. A
// canceled ctx (SIGINT, SIGTERM) is passed on as SIGTERM, then SIGKILL
// after a grace.
func runScanner(ctx context.Context, a *app, argv []string) (int, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdin = nil
	cmd.Stdout, cmd.Stderr = a.stderr, a.stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	err := cmd.Run()
	if ctx.Err() != nil {
		return 0, fmt.Errorf("the scanner was stopped (%v); nothing was published", context.Cause(ctx))
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), nil
	}
	if err != nil {
		return 0, fmt.Errorf("running the scanner: %w", err)
	}
	return 0, nil
}
