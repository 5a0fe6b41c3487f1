package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/prowler-cloud/s3-exporter/exporter"
)

// rclone is the general-purpose copy tool the exporter's CPU per object is
// compared with (workload 1): `rclone copy --transfers 16` of the same files
// from disk to the same S3 server. Debian's package (v1.60) or any later
// release will do; the harness finds it on PATH.

// rcloneInstallHint says how to get rclone when it is missing.
const rcloneInstallHint = "install it with `apt-get install rclone` (Debian, Ubuntu) or `go install github.com/rclone/rclone@latest`, " +
	"or skip the workloads that run it (-workloads without small)"

// rcloneBinary returns the path of rclone on PATH, or an error that says how
// to install it.
func rcloneBinary() (string, error) {
	p, err := exec.LookPath("rclone")
	if err != nil {
		return "", fmt.Errorf("rclone is not on PATH: %s", rcloneInstallHint)
	}
	return p, nil
}

// writeRcloneConfig writes an rclone configuration file at path with one S3
// remote named remote, for the endpoint and credentials of c (path-style
// requests, as versitygw and MinIO want). The bucket is made by the caller:
// rclone is told not to check or create it, which would be one more request
// per run and a permission a bucket owner need not grant.
func writeRcloneConfig(path, remote string, c serverConf) error {
	if remote == "" || strings.ContainsAny(remote, "[]:\n") {
		return fmt.Errorf("rclone remote name %q", remote)
	}
	region := c.Region
	if region == "" {
		region = "us-east-1"
	}
	text := fmt.Sprintf("[%s]\ntype = s3\nprovider = Other\nenv_auth = false\naccess_key_id = %s\nsecret_access_key = %s\n"+
		"endpoint = %s\nregion = %s\nforce_path_style = true\nno_check_bucket = true\n",
		remote, c.AccessKey, c.SecretKey, c.Endpoint, region)
	return os.WriteFile(path, []byte(text), 0o600)
}

// rcloneRun is one rclone process: its arguments (after --config) and where
// its log goes.
type rcloneRun struct {
	Bin, Config, Log string
	Args             []string
}

// rcloneResult is what one rclone process cost: its wall time from start to
// exit (startup and listing included) and its CPU time (user + system, from
// the kernel's accounting of the child), and its peak RSS.
type rcloneResult struct {
	Wall   time.Duration
	CPU    time.Duration
	MaxRSS int64
}

// run runs rclone to its end; ctx ending kills it.
func (r rcloneRun) run(ctx context.Context) (rcloneResult, error) {
	logf, err := os.Create(r.Log)
	if err != nil {
		return rcloneResult{}, err
	}
	defer logf.Close()
	cmd := exec.CommandContext(ctx, r.Bin, append([]string{"--config", r.Config}, r.Args...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// A minimal environment, as the exporter gets: nothing of the caller's
	// (AWS_CA_BUNDLE, AWS_PROFILE, RCLONE_*) changes what rclone does.
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "TMPDIR=" + os.TempDir()}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	start := time.Now()
	err = cmd.Run()
	res := rcloneResult{Wall: time.Since(start)}
	if st := cmd.ProcessState; st != nil {
		res.CPU = st.UserTime() + st.SystemTime()
		if ru, ok := st.SysUsage().(*syscall.Rusage); ok {
			res.MaxRSS = ru.Maxrss << 10
		}
	}
	if err != nil {
		return res, fmt.Errorf("rclone %s: %w; log %s:\n%s", strings.Join(r.Args, " "), err, r.Log, tail(r.Log, 15))
	}
	return res, nil
}

// writeDataset lays out the files of data under dir as the exporter names
// them in a bucket (exporter.ObjectKey under outputDir), so that rclone
// uploads the same bytes under the same keys. Each distinct artifact (by its
// sha256) is read from the object store once, checked against its digest
// and written; the scans that share it get hard links to it.
func writeDataset(ctx context.Context, store jetstream.ObjectStore, dir, outputDir string, data dataset) error {
	written := map[string]string{} // sha256 -> first file written
	for _, sc := range data.Scans {
		for _, a := range sc.Artifacts {
			p := filepath.Join(dir, filepath.FromSlash(exporter.ObjectKey(outputDir, a, data.UID, sc.Started)))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			sum := strings.ToLower(a.SHA256)
			if first, ok := written[sum]; ok && sum != "" {
				if err := os.Link(first, p); err != nil {
					return err
				}
				continue
			}
			name, err := objectName(a)
			if err != nil {
				return err
			}
			if err := writeObject(ctx, store, name, p, sum); err != nil {
				return err
			}
			written[sum] = p
		}
	}
	return nil
}

// writeObject copies one object-store object to a file and checks its
// sha256 (when want is set).
func writeObject(ctx context.Context, store jetstream.ObjectStore, name, path, want string) error {
	res, err := store.Get(ctx, name)
	if err != nil {
		return fmt.Errorf("get %s: %w", name, err)
	}
	defer res.Close()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(f, h), res)
	if err = errors.Join(err, f.Close()); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); want != "" && got != want {
		return fmt.Errorf("object %s: sha256 %s, the event says %s", name, got, want)
	}
	return nil
}
