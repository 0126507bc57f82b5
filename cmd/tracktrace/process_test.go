package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// childEnv, set in the environment of the test binary, makes it run
// `tracktrace serve` as main does instead of the tests (see TestMain), so
// that tests can kill a real server process.
const childEnv = "TRACKTRACE_TEST_CHILD"

// childMain is main for a re-executed test binary.
func childMain() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	environ := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, childEnv+"=") })
	if err := run(ctx, []string{"serve"}, environ, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "tracktrace:", err)
		return 1
	}
	return 0
}

// process is a tracktrace server in a process of its own.
type process struct {
	URL  string
	cmd  *exec.Cmd
	logs *logBuffer

	done    chan struct{} // closed when the process has exited
	waitErr error
	once    sync.Once
}

// startProcess starts a server process with env (plus test defaults) on a
// free port and waits until it listens. It is killed at the test's end.
func startProcess(t *testing.T, env []string) *process {
	t.Helper()
	logs := &logBuffer{addr: make(chan string, 1)}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append([]string{childEnv + "=serve", "PATH=" + os.Getenv("PATH"),
		"Server__Address=127.0.0.1:0", "ReadModels__ConsistencyWait=00:00:20"}, env...)
	cmd.Stdout, cmd.Stderr = logs, logs
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start server process: %v", err)
	}
	p := &process{cmd: cmd, logs: logs, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("server process log:\n%s", logs.String())
		}
	})
	select {
	case addr := <-logs.addr:
		p.URL = "http://" + addr
		return p
	case <-p.done:
		t.Fatalf("server process exited before listening: %v\n%s", p.waitErr, logs.String())
	case <-time.After(30 * time.Second):
		p.kill()
		t.Fatalf("server process did not listen within 30s\n%s", logs.String())
	}
	return nil
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *process) kill() {
	p.once.Do(func() { _ = p.cmd.Process.Kill() })
	<-p.done
}

// terminate sends SIGTERM and waits up to timeout for a clean exit.
func (p *process) terminate(t *testing.T, timeout time.Duration) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	select {
	case <-p.done:
		if p.waitErr != nil {
			t.Fatalf("server exited with %v after SIGTERM", p.waitErr)
		}
	case <-time.After(timeout):
		p.kill()
		t.Fatalf("server did not exit within %s of SIGTERM", timeout)
	}
}

// tryDo sends a request to the process (see server.tryDo).
func (p *process) tryDo(method, path string, body any, headers ...string) (response, error) {
	return (&server{URL: p.URL}).tryDo(method, path, body, headers...)
}
