package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/bucketvault/bucketvault/shared/s3client"
	"github.com/bucketvault/bucketvault/statemachine/console"
	"github.com/bucketvault/bucketvault/statemachine/localrun"
)

func (a *app) consoleCmd() *cobra.Command {
	var listen string
	var allowRemote bool
	cmd := &cobra.Command{
		Use:   "console",
		Short: "Serve the restore console: browse the backup at any moment and restore from a web page",
		Long: `Serve the restore console on 127.0.0.1 and print a link with a one-time token; opening it gives
the browser a session. Runs, browsing the backup as it was at a moment, a file's history and
downloads, what changed, and restores with a preview. Restores run locally through the restore
state machine, as bucketvault restore does. It refuses to listen beyond loopback unless told to
(--allow-remote): the token is then the only lock.`,
		Example: `  bucketvault console
  bucketvault console --listen 127.0.0.1:8080`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if a.cfg.Stack != "" {
				return a.deployedConsole(cmd.Context())
			}
			if err := a.cfg.need(a.configPath, "source", "backup", "run"); err != nil {
				return err
			}
			host, _, err := net.SplitHostPort(listen)
			if err != nil {
				return fmt.Errorf("--listen %q: %v", listen, err)
			}
			if ip := net.ParseIP(host); (ip == nil || !ip.IsLoopback()) && host != "localhost" && !allowRemote {
				return fmt.Errorf("--listen %s is beyond loopback: anyone who can reach it and has the link can restore; add --allow-remote to do so", listen)
			}
			return a.serveConsole(cmd.Context(), listen, allowRemote)
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:0", "address to listen on (port 0: any free port)")
	cmd.Flags().BoolVar(&allowRemote, "allow-remote", false, "allow listening beyond loopback (the login token is then the only lock)")
	return cmd
}

func (a *app) serveConsole(ctx context.Context, listen string, remote bool) error {
	env := a.functionEnv()
	client, err := s3client.New(ctx, s3client.Options{Endpoint: a.cfg.Endpoint, MaxConns: localrun.Connections(env, nil)})
	if err != nil {
		return err
	}
	// Restores started from the page outlive the request that started them, not the command.
	runner := func(target string) *localrun.Runner {
		e := make(map[string]string, len(env))
		for k, v := range env {
			e[k] = v
		}
		if target != "" && !slices.Contains(strings.Split(e["RESTORE_TARGETS"], ","), target) {
			e["RESTORE_TARGETS"] = strings.Trim(e["RESTORE_TARGETS"]+","+target, ",")
		}
		return &localrun.Runner{S3: client, Env: e, Logger: a.logger}
	}
	targetOf := func(input []byte) string {
		var in struct {
			TargetBucket string `json:"targetBucket"`
		}
		_ = json.Unmarshal(input, &in)
		if in.TargetBucket == "" {
			return a.cfg.Source
		}
		return in.TargetBucket
	}
	// The executions this console started, by name: their inputs (a preview's page reads its
	// selection back from it).
	var mu sync.Mutex
	started := map[string]*console.Execution{}
	srv, err := console.New(console.Options{
		S3: client, Source: a.cfg.Source, Backup: a.cfg.Backup, Run: a.cfg.Run, RestoreTargets: a.cfg.RestoreTargets,
		StartRestore: func(_ context.Context, name string, input []byte) error {
			x := &console.Execution{Input: input, Status: console.Running}
			mu.Lock()
			started[name] = x
			mu.Unlock()
			go func() {
				res, err := runner(targetOf(input)).Restore(ctx, name, input)
				mu.Lock()
				switch {
				case err != nil:
					x.Status, x.Error, x.Cause = "FAILED", "States.Runtime", err.Error()
				default:
					x.Status, x.Error, x.Cause = res.Execution.Status, res.Execution.Error, res.Execution.Cause
				}
				mu.Unlock()
				switch {
				case err != nil:
					a.logger.Error("restore from the console did not start", "execution", name, "error", err)
				case res.Report == nil:
					a.logger.Error("restore from the console ended without a report", "execution", name, "status", res.Execution.Status, "error", res.Execution.Error, "cause", res.Execution.Cause)
				}
			}()
			return nil
		},
		Execution: func(_ context.Context, name string) (console.Execution, error) {
			mu.Lock()
			defer mu.Unlock()
			if x, ok := started[name]; ok {
				return *x, nil
			}
			return console.Execution{}, console.ErrNoSuchExecution
		},
		AllowExact: env["ALLOW_EXACT_ROLLBACK"] == "true",
		Logger:     a.logger,
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(a.out, "bucketvault console for s3://%s: open\n  http://%s%s\n", a.cfg.Backup, ln.Addr(), srv.LoginPath())
	if remote {
		fmt.Fprintln(a.out, "  listening beyond loopback: the link's token is the only lock, and it is sent in clear text (no TLS)")
	}
	fmt.Fprintln(a.out, "Ctrl-C stops it.")
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := hs.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}
}

// deployedConsole prints the address of the stack's restore console: on AWS it is deployed with
// the stack, behind its Cognito sign-in.
func (a *app) deployedConsole(ctx context.Context) error {
	_, stack, err := a.loadStack(ctx)
	if err != nil {
		return err
	}
	if stack.RestoreConsoleURL == "" {
		return fmt.Errorf("stack %s has no restore console (deployed with -c console=false?)", a.cfg.Stack)
	}
	fmt.Fprintf(a.out, "the restore console of stack %s (sign in with a user of its Cognito user pool; members of its restore group may restore):\n  %s\n", a.cfg.Stack, stack.RestoreConsoleURL)
	return nil
}
