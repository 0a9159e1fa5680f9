// Command ferretdb runs an embedded FerretDB (MongoDB wire protocol over SQLite) for the
// qdp-server tests. It exists because `go install` of FerretDB's own command produces a binary
// that refuses to start outside FerretDB's build (it needs generated version files); embedding
// the library package sidesteps that and lets us add the lifecycle rules tests need.
//
// Lifecycle rules (so a test run can never leave it behind):
//   - SIGTERM / SIGINT: graceful stop, exit 0.
//   - stdin reaches EOF (the parent closed the pipe or died): stop (unless -stdin=false).
//   - the parent process changes (reparented because the parent died): stop.
//
// Once the listener is up it prints exactly one line to stdout:
//
//	ferretdb ready mongodb://127.0.0.1:<port>/
//
// Usage:
//
//	ferretdb -listen 127.0.0.1:0 -state-dir /tmp/x
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "TCP listen address; port 0 picks a free port (reported on the ready line)")
	stateDir := flag.String("state-dir", "", "directory for the SQLite backend's files (default: a new temp dir, removed on exit)")
	watchStdin := flag.Bool("stdin", true, "exit when stdin reaches EOF (the parent closed it or died)")
	logLevel := flag.String("log-level", "warn", "log level: debug, info, warn, error")
	flag.Parse()

	if err := run(*listen, *stateDir, *watchStdin, *logLevel); err != nil {
		fmt.Fprintf(os.Stderr, "ferretdb: %v\n", err)
		os.Exit(1)
	}
}

func run(listen, stateDir string, watchStdin bool, logLevel string) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		return fmt.Errorf("bad -log-level %q: %w", logLevel, err)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	if stateDir == "" {
		dir, err := os.MkdirTemp("", "qdp-ferretdb-")
		if err != nil {
			return err
		}
		// A temp dir we made is ours to remove: tests want a fresh, disposable database.
		defer os.RemoveAll(dir)
		stateDir = dir
	} else if err := os.MkdirAll(stateDir, 0o755); err != nil {
		return err
	}
	abs, err := filepath.Abs(stateDir)
	if err != nil {
		return err
	}

	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: listen},
		Logger:    logger,
		Handler:   "sqlite",
		SQLiteURL: "file:" + abs + "/",
	})
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	if watchStdin {
		go func() {
			// Any read result other than data means the other end is gone.
			_, _ = io.Copy(io.Discard, os.Stdin)
			logger.Info("stdin closed, stopping")
			cancel()
		}()
	}
	go watchParent(cancel, logger)

	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()

	// MongoDBURI blocks until Run has bound the listener, so the port is real when we print it.
	uri := make(chan string, 1)
	go func() { uri <- f.MongoDBURI() }()
	select {
	case u := <-uri:
		fmt.Printf("ferretdb ready %s\n", u)
	case err := <-done:
		return fmt.Errorf("stopped before ready: %v", err)
	}

	err = <-done
	if ctx.Err() != nil {
		// Cancelled on purpose (signal, stdin EOF, parent gone): a clean stop.
		return nil
	}
	return err
}

// watchParent cancels when we are reparented, i.e. the process that started us has died.
// This covers parents that passed us a stdin they do not hold (for example /dev/null with -stdin=false).
func watchParent(cancel context.CancelFunc, logger *slog.Logger) {
	ppid := os.Getppid()
	for range time.Tick(500 * time.Millisecond) {
		if os.Getppid() != ppid {
			logger.Info("parent process died, stopping")
			cancel()
			return
		}
	}
}
