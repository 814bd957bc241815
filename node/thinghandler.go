package node

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/mqtter/mqtter/thing"
)

// Limits and timings of the device program (--thing-handler).
const (
	// maxProgramLine bounds one line the program writes (a description may
	// be up to thing.MaxDescription, so a little over that).
	maxProgramLine = thing.MaxDescription + 16<<10
	// maxStderrLine bounds one logged line of its stderr.
	maxStderrLine = 4 << 10
	// programStdinQueue bounds the invocations waiting to be written to
	// its stdin.
	programStdinQueue = 64
	// programBackoffMin, programBackoffMax: the wait before a restart
	// doubles from min to max (jittered: half to all of it), and starts
	// over once the program stayed up programStable.
	programBackoffMin = 250 * time.Millisecond
	programBackoffMax = 30 * time.Second
	programStable     = 10 * time.Second
	// programKillGrace is how long a stopping program has between SIGTERM
	// and SIGKILL.
	programKillGrace = 3 * time.Second
)

// errEmptyLine is parseProgramLine's answer to a blank line: skipped, not
// malformed.
var errEmptyLine = errors.New("empty line")

// parseProgramLine decodes one line a device program wrote: a Feedback of
// kind result, state, event or description (acks are the node's own).
// State and event may leave Cause (and Rev) out: the node fills them in.
// The trace is the node's to set, so one the program gives is dropped.
func parseProgramLine(line []byte) (thing.Feedback, error) {
	line = bytes.TrimSpace(line)
	if len(line) == 0 {
		return thing.Feedback{}, errEmptyLine
	}
	if len(line) > maxProgramLine {
		return thing.Feedback{}, fmt.Errorf("%w: line over %d bytes", thing.ErrBadFeedback, maxProgramLine)
	}
	var f thing.Feedback
	d := json.NewDecoder(bytes.NewReader(line))
	if err := d.Decode(&f); err != nil {
		return thing.Feedback{}, fmt.Errorf("%w: %v", thing.ErrBadFeedback, err)
	}
	if d.More() {
		return thing.Feedback{}, fmt.Errorf("%w: more than one JSON value on a line", thing.ErrBadFeedback)
	}
	switch f.Kind {
	case thing.KindResult, thing.KindState, thing.KindEvent, thing.KindDescription:
	default:
		return thing.Feedback{}, fmt.Errorf("%w: kind %.40q: a device program writes result, state, event or description", thing.ErrBadFeedback, f.Kind)
	}
	f.Trace = nil
	if f.Kind == thing.KindResult {
		f.Props, f.Cause, f.Event, f.Data, f.Description, f.Rev = nil, "", "", nil, nil, 0
	}
	// Check it as it will go out, with the fields the node fills in.
	check := f
	if (check.Kind == thing.KindState || check.Kind == thing.KindEvent) && check.Cause == "" {
		check.Cause = thing.CauseLocal
	}
	if check.Kind == thing.KindDescription && check.Description != nil && check.Description.Thing == "" {
		d := *check.Description
		d.Thing = "placeholder"
		check.Description = &d
	}
	if err := check.Validate(); err != nil {
		return thing.Feedback{}, err
	}
	if f.Rev < 0 {
		return thing.Feedback{}, fmt.Errorf("%w: negative rev", thing.ErrBadFeedback)
	}
	return f, nil
}

// readLines calls fn with each line of r (without its newline), and
// tooLong (with the line's start) for a line over max bytes, whose rest
// is skipped. It returns at the end of r, or fn's error.
func readLines(r io.Reader, max int, fn func(line []byte, tooLong bool) error) error {
	br := bufio.NewReaderSize(r, max)
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			if ferr := fn(line, true); ferr != nil {
				return ferr
			}
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice('\n')
			}
			if err != nil {
				return nil
			}
			continue
		}
		if len(line) > 0 {
			if ferr := fn(bytes.TrimSuffix(line, []byte("\n")), false); ferr != nil {
				return ferr
			}
		}
		if err != nil {
			return nil // io.EOF, or a closed pipe: the program is gone
		}
	}
}

// deviceProgram keeps the --thing-handler command running: started with
// /bin/sh -c in a process group of its own, restarted with backoff when
// it exits, stopped (SIGTERM to the group, SIGKILL after
// programKillGrace) when ctx ends. Its stdout lines go to onLine, its
// stderr to the log.
type deviceProgram struct {
	command string
	log     *slog.Logger
	// onUp is told each time the program starts, with the queue of its
	// stdin, and onDown each time it ends.
	onUp   func(stdin chan<- []byte)
	onDown func(err error)
	// onLine gets each stdout line (tooLong: only its start).
	onLine func(line []byte, tooLong bool)
}

// run keeps the program running until ctx ends.
func (p *deviceProgram) run(ctx context.Context) {
	backoff := programBackoffMin
	for {
		started := time.Now()
		err := p.runOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		up := time.Since(started)
		if up >= programStable {
			backoff = programBackoffMin
		}
		wait := backoff/2 + rand.N(backoff/2+1)
		p.log.Warn("device program exited; restarting", "err", err, "up", up.Round(time.Millisecond), "restart_in", wait.Round(time.Millisecond))
		backoff = min(backoff*2, programBackoffMax)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// runOnce starts the program and returns once it ended and every pipe
// goroutine is done.
func (p *deviceProgram) runOnce(ctx context.Context) error {
	outR, outW, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("device program: %w", err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return fmt.Errorf("device program: %w", err)
	}
	cmd := exec.Command("/bin/sh", "-c", p.command)
	cmd.Stdout, cmd.Stderr = outW, errW
	// A group of its own, so that a stop reaches what the shell started;
	// and a signal when the node dies without stopping it (SIGKILL, a
	// crash), so that no orphan keeps running commands nobody answers.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	stdin, err := cmd.StdinPipe()
	if err == nil {
		err = cmd.Start()
	}
	// The child has its copies of the write ends; ours must go, so that
	// the readers see the end once every process of the group is gone.
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		return fmt.Errorf("device program: start: %w", err)
	}
	pgid := cmd.Process.Pid
	p.log.Info("device program started", "pid", pgid)

	in := make(chan []byte, programStdinQueue)
	exited := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(3)
	go func() {
		defer wg.Done()
		defer outR.Close()
		readLines(outR, maxProgramLine, func(line []byte, tooLong bool) error {
			p.onLine(line, tooLong)
			return nil
		})
	}()
	go func() {
		defer wg.Done()
		defer errR.Close()
		readLines(errR, maxStderrLine, func(line []byte, _ bool) error {
			p.log.Info("device program", "stderr", string(line))
			return nil
		})
	}()
	go func() {
		defer wg.Done()
		defer stdin.Close()
		for {
			select {
			case <-exited:
				return
			case b := <-in:
				if _, err := stdin.Write(b); err != nil {
					p.log.Warn("device program: write to stdin", "err", err)
					return
				}
			}
		}
	}()
	p.onUp(in)

	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	var werr error
	select {
	case werr = <-waited:
	case <-ctx.Done():
		syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case werr = <-waited:
		case <-time.After(programKillGrace):
			p.log.Warn("device program ignored SIGTERM; killing it", "pid", pgid)
			syscall.Kill(-pgid, syscall.SIGKILL)
			werr = <-waited
		}
	}
	// What the shell started and left behind goes with it, so that the
	// pipes close and no orphan keeps the device busy.
	syscall.Kill(-pgid, syscall.SIGKILL)
	close(exited)
	wg.Wait()
	p.onDown(werr)
	return werr
}
