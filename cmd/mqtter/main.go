// Command mqtter is MQTTER's one binary: the central server, the node daemon
// and the command line that drives a running node.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/mqtter/mqtter/demo"
)

const usage = `usage:
  mqtter server --data DIR [--mqtt ADDR] [--ws ADDR] [--http ADDR] [flags]
  mqtter user add NAME --data DIR [--thing]     password: $MQTTER_PASSWORD or stdin
  mqtter thing adopt NAME --data DIR --profile tasmota|zigbee2mqtt --topic TOPIC [--bridge BRIDGE]
                                                a device on stock firmware as thing NAME
  mqtter node --home DIR --server tcp://HOST:PORT --user NAME [--p2p MULTIADDR]...
              [--api ADDR] [--no-mdns] [--password-file FILE] [flags]
                                                password: $MQTTER_PASSWORD or --password-file
  mqtter demo                                   run a local demo on loopback

Drive the node running in DIR (--home may be anywhere; default $MQTTER_HOME):
  mqtter --home DIR status [--json]
  mqtter --home DIR send <user|feeds> <text...>  prints the MsgId
  mqtter --home DIR history <user|feeds> [--json] [--limit N]
  mqtter --home DIR friend add|accept|reject|remove|restore USER
  mqtter --home DIR friend list [--json]
  mqtter --home DIR group create NAME [MEMBER...]  prints the feeds id
  mqtter --home DIR group apply FEEDS | agree FEEDS APPLICANT | remove FEEDS MEMBER
  mqtter --home DIR group dissolve FEEDS | list [--json]
  mqtter --home DIR thing code | bind THING CODE | unbind THING
  mqtter --home DIR thing associate A B | dissociate A B
  mqtter --home DIR thing do THING [ACTION [JSON-input]] [--set PROP=JSON]... [--timeout 10s] [--json]
                                                waits for the result; exit 1 unless done or partial
  mqtter --home DIR thing state THING [--json]  the properties it last reported, with their age
  mqtter --home DIR thing describe THING [--json]
  mqtter --home DIR thing commands THING [--json] [--limit N]
  mqtter --home DIR thing rule add A B --when event:NAME|prop:NAME [--if 'PATH OP JSON']...
              --then ACTION [--input JSON | --input-from PATH] [--id ID]
  mqtter --home DIR thing rule list [THING] [--json] | rule remove ID
  mqtter --home DIR peers [--json]
  mqtter --home DIR sync
  mqtter --home DIR events [--json]             follow the node's events
  mqtter --home DIR backup export FILE | import FILE   the history as JSON lines

Run "mqtter COMMAND -h" for a command's flags.
`

// errUsage marks an error caused by how the command was called.
var errUsage = errors.New("usage")

func main() {
	if len(os.Args) > 1 && os.Args[1] == "server" {
		reexecWithSmallStacks()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "mqtter:", err)
		if errors.Is(err, errUsage) {
			fmt.Fprint(os.Stderr, usage)
			os.Exit(2)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: no command", errUsage)
	}
	switch args[0] {
	case "server":
		return runServer(ctx, args[1:], stderr)
	case "user":
		return runUser(ctx, args[1:], stdin, stdout, stderr)
	case "thing":
		if len(args) > 1 && args[1] == "adopt" {
			return runAdopt(ctx, args[2:], stdin, stdout, stderr)
		}
	case "demo":
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("demo: find own binary: %w", err)
		}
		return demo.Run(ctx, stdout, exe)
	case "node":
		return runNode(ctx, args[1:], stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	if isCLI(args[0]) {
		return runCLI(ctx, args, stdout, stderr)
	}
	return fmt.Errorf("%w: unknown command %q", errUsage, args[0])
}

// parseInterspersed parses fs from args, allowing flags after positional
// arguments ("user add alice --data DIR"), and returns the positionals.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// reexecWithSmallStacks restarts the server with GODEBUG
// adaptivestackstart=0 unless the operator set it. The runtime otherwise
// sizes new goroutine stacks by the average of the stacks it has seen, and
// the server's few deep ones (SQLite is transpiled C) make every one of the
// two goroutines per idle MQTT connection start at 16 KiB or more: about a
// quarter of the memory of 1,000 idle connections. If the exec fails the
// server simply runs as it is.
func reexecWithSmallStacks() {
	godebug := os.Getenv("GODEBUG")
	if strings.Contains(godebug, "adaptivestackstart") {
		return
	}
	exe, err := os.Executable()
	if err != nil {
		return
	}
	if godebug != "" {
		godebug += ","
	}
	env := append(os.Environ(), "GODEBUG="+godebug+"adaptivestackstart=0")
	syscall.Exec(exe, os.Args, env)
}
