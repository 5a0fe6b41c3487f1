package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// child is a process the harness started: nats-server, the exporter, or a
// baseline (the harness run again with a subcommand).
type child struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error // set when done is closed
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// stop sends SIGTERM and waits up to grace, then kills.
func (c *child) stop(grace time.Duration) error {
	select {
	case <-c.done:
		return c.err
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
		return c.err
	case <-time.After(grace):
	}
	_ = c.cmd.Process.Kill()
	<-c.done
	return fmt.Errorf("%s did not stop within %v after SIGTERM; killed", c.name, grace)
}

// logLine is one JSON log line of the exporter (zap).
type logLine struct {
	Level       string    `json:"level"`
	Time        time.Time `json:"time"`
	Msg         string    `json:"msg"`
	MetricsAddr string    `json:"metrics_addr"`
}

// exporterProc is an exporter running as its own process, its log in a file.
type exporterProc struct {
	child
	logPath string

	mu       sync.Mutex
	events   map[string]time.Time // first time each watched message was logged
	errs     []string             // error-level lines
	readyCh  chan struct{}
	readyErr error
}

// watchedMsgs are the log messages whose time the harness reads.
var watchedMsgs = map[string]bool{"starting": true, "integration cache caught up": true, "exporter ready": true}

// startExporter runs bin with env (added to a minimal environment) and
// returns once it logged "exporter ready" or failed.
func startExporter(name, bin string, args []string, env map[string]string, logPath string, timeout time.Duration) (*exporterProc, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "TMPDIR=" + os.TempDir()}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		logf.Close()
		return nil, err
	}
	cmd.Stdout = logf
	p := &exporterProc{child: child{name: name, cmd: cmd, done: make(chan struct{})}, logPath: logPath,
		events: map[string]time.Time{}, readyCh: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		p.scanLog(stderr, logf)
	}()
	go func() {
		<-scanned
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	select {
	case <-p.readyCh:
		if p.readyErr != nil {
			_ = p.stop(5 * time.Second)
			return nil, p.readyErr
		}
		return p, nil
	case <-p.done:
		return nil, fmt.Errorf("%s exited before it was ready (%v); log %s:\n%s", name, p.err, logPath, tail(logPath, 15))
	case <-time.After(timeout):
		_ = p.stop(5 * time.Second)
		return nil, fmt.Errorf("%s not ready after %v; log %s:\n%s", name, timeout, logPath, tail(logPath, 15))
	}
}

func (p *exporterProc) scanLog(r io.Reader, w io.Writer) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	readyOnce := sync.Once{}
	for sc.Scan() {
		line := sc.Bytes()
		_, _ = w.Write(line)
		_, _ = w.Write([]byte{'\n'})
		// Cheap filter first: most lines are per-scan or per-integration.
		if !bytes.Contains(line, []byte(`"level":"error"`)) && !bytes.Contains(line, []byte(`"level":"fatal"`)) &&
			!bytes.Contains(line, []byte(`"msg":"starting"`)) && !bytes.Contains(line, []byte(`"msg":"integration cache caught up"`)) &&
			!bytes.Contains(line, []byte(`"msg":"exporter ready"`)) {
			continue
		}
		var l logLine
		if json.Unmarshal(line, &l) != nil {
			continue
		}
		p.mu.Lock()
		if watchedMsgs[l.Msg] {
			if _, ok := p.events[l.Msg]; !ok {
				p.events[l.Msg] = l.Time
			}
		}
		if l.Level == "error" || l.Level == "fatal" {
			p.errs = append(p.errs, string(line))
		}
		p.mu.Unlock()
		if l.Msg == "exporter ready" {
			readyOnce.Do(func() { close(p.readyCh) })
		}
	}
	readyOnce.Do(func() {
		p.readyErr = fmt.Errorf("%s: log ended before \"exporter ready\"", p.name)
		close(p.readyCh)
	})
}

// logged returns when msg was first logged (the exporter's clock).
func (p *exporterProc) logged(msg string) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t, ok := p.events[msg]
	return t, ok
}

// errorLines returns the error-level log lines so far.
func (p *exporterProc) errorLines() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.errs...)
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// runChild runs the harness itself with a subcommand, feeds it in (JSON) on
// stdin and decodes its JSON result from stdout into out.
func runChild(self, sub string, in, out any, logPath string) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	logf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(self, sub)
	cmd.Stdin = bytes.NewReader(b)
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w; log %s:\n%s", sub, err, logPath, tail(logPath, 15))
	}
	if err := json.Unmarshal(stdout.Bytes(), out); err != nil {
		return fmt.Errorf("%s: reading its result %q: %w", sub, stdout.String(), err)
	}
	return nil
}

// startURLChild runs this program with args as a server child that prints
// its URL (with prefix) on its first line of output, and returns the child
// and that URL.
func startURLChild(self, name, prefix string, args ...string) (*child, string, error) {
	cmd := exec.Command(self, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	c := &child{name: name, cmd: cmd, done: make(chan struct{})}
	urlCh := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		if sc.Scan() {
			urlCh <- strings.TrimSpace(sc.Text())
		}
		close(urlCh)
		_, _ = io.Copy(io.Discard, out)
		c.err = cmd.Wait()
		close(c.done)
	}()
	select {
	case u, ok := <-urlCh:
		if !ok || !strings.HasPrefix(u, prefix) {
			_ = c.stop(5 * time.Second)
			return nil, "", fmt.Errorf("%s did not start (%q)", name, u)
		}
		return c, u, nil
	case <-time.After(30 * time.Second):
		_ = c.stop(5 * time.Second)
		return nil, "", fmt.Errorf("%s not ready after 30s", name)
	}
}
